// Linear layers (with LayerNorm in front, bias / activation / residual fused into the stores; FP32 or
// INT8), the LayerNorm alone, and the subsampling's Conv2d: a direct convolution for one input
// channel, GEMMs of im2col panels (FP32 or INT8) for many.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/gemm.h"
#include "backend/cpu/quant.h"

namespace wenet_rt::cpu {

namespace {

int act_code(Activation a) {
  switch (a) {
    case Activation::kRelu: return kActRelu;
    case Activation::kSwish: return kActSwish;
    case Activation::kNone: break;
  }
  return kActNone;
}

void check_f32(const Tensor& t, const char* op, const char* what) {
  WENET_CHECK(t.dtype == DType::kF32, "{}: expected {} float32, got {}", op, what, dtype_name(t.dtype));
}

}  // namespace

const CpuBackend::PackedLinear& CpuBackend::packed(const Tensor& w, bool int8, PackedLinear& temp) {
  check_f32(w, "linear", "W");
  WENET_CHECK(w.rank == 2, "linear: expected W [N, K], got rank {}", w.rank);
  const int64_t n = w.dim(0), k = w.dim(1), ldw = w.row_stride();
  PackedLinear* p = &temp;
  const bool cache = is_uploaded(w.data);
  if (cache) {
    std::unique_ptr<PackedLinear>& slot = packed_[w.data];
    if (!slot || slot->n != n || slot->k != k) slot = std::make_unique<PackedLinear>();
    p = slot.get();
  }
  p->n = n;
  p->k = k;
  if (int8 && !p->int8.data) {
    const QuantLayout q = int8_layout(n, k);
    std::byte* mem = cache ? (p->int8_storage = aligned_buffer(q.bytes)).get()
                           : static_cast<std::byte*>(arena_.allocate(q.bytes));
    p->int8 = quantize_weights(w.ptr<float>(), ldw, n, k, q, mem);
  } else if (!int8 && !p->fp32.data) {
    const int nr = pick_nr(n);
    const size_t bytes = packed_floats(n, k, nr) * sizeof(float);
    float* mem = cache ? reinterpret_cast<float*>((p->fp32_storage = aligned_buffer(bytes)).get())
                       : static_cast<float*>(arena_.allocate(bytes));
    pack_nk(w.ptr<float>(), ldw, n, k, nr, mem);
    p->fp32 = PackedB{mem, n, k, nr};
  }
  return *p;
}

void CpuBackend::matmul(const Tensor& x, const PackedLinear& w, bool int8, const Epilogue& ep, float* c,
                        int64_t ldc) {
  if (int8) {
    qgemm(pool_, kt_, arena_, x.rows(), x.ptr<float>(), x.row_stride(), w.int8, c, ldc, ep);
    return;
  }
  gemm(pool_, x.rows(), x.ptr<float>(), x.row_stride(), w.fp32, c, ldc, ep);
}

void CpuBackend::linear(const Tensor& x, const LinearWeights& w, Activation act, const Tensor* residual,
                        const Tensor& y) {
  Scope s(this, "linear");
  check_f32(x, "linear", "x");
  const bool int8 = opts_.int8;
  PackedLinear temp;
  const PackedLinear& pw = packed(w.w, int8, temp);
  const int64_t M = x.rows(), K = x.cols(), N = pw.n;
  WENET_CHECK(pw.k == K && y.rows() == M && y.cols() == N,
              "linear: expected x [M, {}] and y [M, {}], got x [{}, {}] and y [{}, {}]", pw.k, N, M, K, y.rows(),
              y.cols());
  WENET_CHECK(!residual || act == Activation::kNone, "linear: a residual after an activation is not supported");
  WENET_CHECK(!w.b.data || w.b.numel() == N, "linear: expected bias [{}], got {} values", N, w.b.numel());
  Epilogue ep;
  ep.bias = w.b.data ? w.b.ptr<float>() : nullptr;
  ep.act = act_code(act);
  if (residual) {
    WENET_CHECK(residual->rows() == M && residual->cols() == N, "linear: residual shape mismatch");
    ep.residual = residual->ptr<float>();
    ep.ldr = residual->row_stride();
  }
  matmul(x, pw, int8, ep, y.ptr<float>(), y.row_stride());
}

void CpuBackend::norm_linear(const Tensor& x, const LayerNormWeights& norm, const LinearWeights& w, Activation act,
                             const Tensor& y, const Tensor* zero_lens) {
  Tensor normed = make_view(scratch(x.numel()), {x.rows(), x.cols()}, DType::kF32);
  layer_norm(x, norm, normed, zero_lens);
  linear(normed, w, act, nullptr, y);
}

void CpuBackend::layer_norm(const Tensor& x, const LayerNormWeights& w, const Tensor& y, const Tensor* zero_lens) {
  Scope s(this, "layer_norm");
  check_f32(x, "layer_norm", "x");
  const int64_t M = x.rows(), D = x.cols();
  WENET_CHECK(y.rows() == M && y.cols() == D && w.gamma.numel() == D && w.beta.numel() == D,
              "layer_norm: shape mismatch");
  const int64_t T = x.rank >= 3 ? x.dim(-2) : M;
  constexpr int64_t kRows = 16;
  pool_.run((M + kRows - 1) / kRows, [&](int64_t task, int) {
    const int64_t m0 = task * kRows, m1 = std::min(M, m0 + kRows);
    for (int64_t m = m0; m < m1; ++m) {
      float* out = y.ptr<float>() + m * y.row_stride();
      if (zero_lens && (m % T) >= zero_lens->ptr<int32_t>()[m / T]) {
        std::fill(out, out + D, 0.f);
        continue;
      }
      kt_.layer_norm(x.ptr<float>() + m * x.row_stride(), 0, out, 0, 1, D, w.gamma.ptr<float>(), w.beta.ptr<float>());
    }
  });
}

const CpuBackend::QuantConv& CpuBackend::quant_conv(const Tensor& w, QuantConv& temp) {
  const int64_t O = w.dim(0), K = w.numel() / O, K4 = (K + 3) / 4 * 4;
  QuantConv* q = &temp;
  const bool cache = is_uploaded(w.data);
  if (cache) {
    std::unique_ptr<QuantConv>& slot = quant_conv_[w.data];
    if (slot && slot->o == O && slot->k == K) return *slot;
    slot = std::make_unique<QuantConv>();
    q = slot.get();
  }
  const size_t wbytes = (size_t(O * K4) + 63) / 64 * 64, bytes = wbytes + size_t(O) * 8;
  std::byte* mem = cache ? (q->storage = aligned_buffer(bytes)).get() : static_cast<std::byte*>(arena_.allocate(bytes));
  auto* wq = reinterpret_cast<int8_t*>(mem);
  auto* scale = reinterpret_cast<float*>(mem + wbytes);
  auto* rowsum = reinterpret_cast<int32_t*>(scale + O);
  for (int64_t o = 0; o < O; ++o) {
    const float* row = w.ptr<float>() + o * K;
    float amax = 0.f;
    for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::abs(row[k]));
    const float s = amax > 0.f ? amax / 127.f : 1.f;
    int32_t sum = 0;
    for (int64_t k = 0; k < K4; ++k) {
      const int32_t v = k < K ? int32_t(std::clamp(std::nearbyint(row[k] / s), -127.f, 127.f)) : 0;
      wq[o * K4 + k] = int8_t(v);
      sum += v;
    }
    scale[o] = s;
    rowsum[o] = sum;
  }
  q->o = O;
  q->k = K;
  q->k4 = K4;
  q->w = wq;
  q->scale = scale;
  q->rowsum = rowsum;
  return *q;
}

void CpuBackend::conv2d(const Tensor& x, const Tensor& w, const Tensor& b, int stride, bool relu, const Tensor& y) {
  Scope s(this, x.dim(1) == 1 ? "conv2d (1 channel in)" : "conv2d");
  check_f32(x, "conv2d", "x");
  const int64_t B = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  const int64_t O = w.dim(0), kh = w.dim(2), kw = w.dim(3), Ho = y.dim(2), Wo = y.dim(3);
  const int64_t S = stride, taps = kh * kw;
  WENET_CHECK(S >= 1 && S <= 8 && taps <= 64 && w.dim(1) == C && y.dim(0) == B && y.dim(1) == O &&
                  (Ho - 1) * S + kh <= H && (Wo - 1) * S + kw <= W,
              "conv2d: shape mismatch");
  const int64_t K = C * taps, P = Ho * Wo;
  Epilogue ep;
  ep.row_bias = b.ptr<float>();
  ep.act = relu ? kActRelu : kActNone;
  if (C <= 4) {
    // Few input channels: direct convolution on phase planes (kernels/conv2d.h),
    // phases[b][ri][pr][pc][c][ci], output channels in groups over the pool.
    const int64_t Hp = (H + S - 1) / S, Wp = (W + S - 1) / S;
    const int64_t row_stride = S * S * C * Wp, utt = Hp * row_stride;
    float* phases = scratch(B * utt + 16);  // + what the kernel reads past a row
    pool_.run(B * C, [&](int64_t task, int) {
      const int64_t bi = task / C, c = task % C;
      const float* in = x.ptr<float>() + (bi * C + c) * H * W;
      float* out[8];
      for (int64_t r = 0; r < H; ++r) {
        for (int64_t pc = 0; pc < S; ++pc)
          out[pc] = phases + bi * utt + (r / S) * row_stride + ((r % S) * S + pc) * C * Wp + c * Wp;
        kt_.deinterleave(in + r * W, W, int(S), out);
      }
    });
    constexpr int64_t kGroup = 16;
    const int64_t groups = (O + kGroup - 1) / kGroup;
    pool_.run(B * groups, [&](int64_t task, int) {
      const int64_t bi = task / groups, o0 = (task % groups) * kGroup;
      const float* base[4 * 64];
      for (int64_t c = 0; c < C; ++c)
        for (int64_t i = 0; i < kh; ++i)
          for (int64_t j = 0; j < kw; ++j)
            base[(c * kh + i) * kw + j] =
                phases + bi * utt + (i / S) * row_stride + ((i % S) * S + j % S) * C * Wp + j / S + c * Wp;
      kt_.conv2d_direct(base, row_stride, C, int(taps), w.ptr<float>(), b.ptr<float>(), o0, std::min(O, o0 + kGroup),
                        Ho, Wo, relu, y.ptr<float>() + bi * O * P);
    });
    return;
  }
  // y[b] [O, P] = W [O, K] x col [K, P]: the im2col matrix is built panel by panel (48 output
  // positions, k-major, as the GEMM kernel reads packed B) in per-thread scratch, never whole.
  // INT8: each panel quantized per position, the weights per output channel (kernels/qconv.h).
  constexpr int kNr = 48;
  const int64_t panels = (P + kNr - 1) / kNr;
  QuantConv qtemp;
  const QuantConv* qw = opts_.int8 ? &quant_conv(w, qtemp) : nullptr;
  const int64_t K4 = (K + 3) / 4 * 4;
  // Per thread: the float panel (+ what im2col writes past), and for INT8 its bytes and the
  // positions' scales and zero points.
  const int64_t per_thread = K * kNr + 16 + (qw ? (K4 * kNr + 8 * kNr) / 4 + 16 : 0);
  float* thread_scratch = scratch(int64_t(pool_.size()) * per_thread);
  pool_.run(B * panels, [&](int64_t task, int thread) {
    const int64_t bi = task / panels, n0 = (task % panels) * kNr, cols = std::min<int64_t>(kNr, P - n0);
    float* col = thread_scratch + thread * per_thread;
    const float* tap_base[64];
    for (int64_t i = 0; i < kh; ++i)
      for (int64_t j = 0; j < kw; ++j) tap_base[i * kw + j] = x.ptr<float>() + (bi * C * H + i) * W + j;
    // Runs of consecutive output columns of one output row in this panel (the same for every tap
    // and channel).
    CopyRun runs[kNr];
    int nruns = 0;
    for (int64_t p = n0; p < n0 + cols; ++nruns) {
      const int64_t ho = p / Wo, wo = p % Wo, run = std::min(Wo - wo, n0 + cols - p);
      runs[nruns] = CopyRun{ho * S * W + wo * S, int(p - n0), int(run)};
      p += run;
    }
    kt_.im2col_panel(tap_base, int(taps), C, H * W, int(S), runs, nruns, int(cols), kNr, col);
    float* out = y.ptr<float>() + bi * O * P + n0;
    if (qw) {
      auto* q = reinterpret_cast<uint8_t*>(col + K * kNr + 16);
      auto* sa = reinterpret_cast<float*>(q + K4 * kNr);
      auto* za = reinterpret_cast<int32_t*>(sa + kNr);
      kt_.quantize_panel(col, K, K4, kNr, q, sa, za);
      kt_.qconv_panel(O, K4, qw->w, qw->scale, qw->rowsum, q, kNr, sa, za, int(cols), out, P, ep);
    } else {
      kt_.gemm_panel(O, K, w.ptr<float>(), K, col, kNr, int(cols), out, P, ep);
    }
  });
}

}  // namespace wenet_rt::cpu
