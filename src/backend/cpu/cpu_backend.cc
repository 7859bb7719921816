// The CPU backend: float32 throughout, GEMMs through CBLAS (OpenBLAS, multi-threaded), the other
// ops as plain loops. It is the engine's reference: clarity over speed, but no needless copies.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "backend/op_checks.h"

namespace wenet_rt {
namespace {

inline float activate(float v, Activation act) {
  switch (act) {
    case Activation::kRelu: return v > 0.f ? v : 0.f;
    case Activation::kSwish: return v / (1.f + std::exp(-v));
    case Activation::kNone: break;
  }
  return v;
}

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int threads) {
    if (threads > 0) openblas_set_num_threads(threads);
  }
  std::string name() const override { return "cpu"; }
  DType act_dtype() const override { return DType::kF32; }

  Tensor upload(const HostTensor& t, DType dtype) override {
    WENET_CHECK(dtype == DType::kF32 || dtype == DType::kI32, "cpu backend: unsupported dtype {}", dtype_name(dtype));
    auto& buf = weights_.emplace_back(size_t(t.nbytes()));
    std::memcpy(buf.data(), t.raw(), t.nbytes());
    Tensor r = make_view(buf.data(), t.shape(), dtype);
    return r;
  }

  Tensor alloc(std::initializer_list<int64_t> shape, DType dtype) override {
    // Each allocation is its own buffer; pointers stay valid until reset_arena().
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    auto& buf = arena_.emplace_back(size_t(n) * dtype_size(dtype));
    return make_view(buf.data(), Shape(shape), dtype);
  }
  void reset_arena() override { arena_.clear(); }

  void copy_in(const void* host, const Tensor& dst) override {
    for_each_row(dst, [&](std::byte* row, size_t i, size_t n) {
      std::memcpy(row, static_cast<const std::byte*>(host) + i * n, n);
    });
  }
  void copy_out(const Tensor& src, void* host) override {
    for_each_row(src, [&](std::byte* row, size_t i, size_t n) { std::memcpy(static_cast<std::byte*>(host) + i * n, row, n); });
  }

  void linear(const Tensor& x, const LinearWeights& w, Activation act, const Tensor* residual,
              const Tensor& y) override {
    const int64_t M = x.rows(), K = x.cols(), N = w.w.dim(0);
    WENET_CHECK(w.w.dim(1) == K && y.rows() == M && y.cols() == N, "linear: shape mismatch");
    WENET_CHECK(!residual || act == Activation::kNone, "linear: a residual after an activation is not supported");
    float* out = y.ptr<float>();
    const int64_t ldy = y.row_stride();
    // Seed y with residual + bias (or bias, or zero) and let the GEMM accumulate onto it.
    for (int64_t m = 0; m < M; ++m) {
      float* row = out + m * ldy;
      if (residual) {
        const float* r = residual->ptr<float>() + m * residual->row_stride();
        if (r != row) std::memcpy(row, r, size_t(N) * 4);
        if (w.b.data)
          for (int64_t n = 0; n < N; ++n) row[n] += w.b.ptr<float>()[n];
      } else if (w.b.data) {
        std::memcpy(row, w.b.ptr<float>(), size_t(N) * 4);
      } else {
        std::fill(row, row + N, 0.f);
      }
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(M), int(N), int(K), 1.f, x.ptr<float>(),
                int(x.row_stride()), w.w.ptr<float>(), int(K), 1.f, out, int(ldy));
    if (act != Activation::kNone) {
      for (int64_t m = 0; m < M; ++m) {
        float* row = out + m * ldy;
        for (int64_t n = 0; n < N; ++n) row[n] = activate(row[n], act);
      }
    }
  }

  void layer_norm(const Tensor& x, const LayerNormWeights& w, const Tensor& y, const Tensor* zero_lens) override {
    const int64_t M = x.rows(), D = x.cols();
    const int64_t T = x.rank >= 3 ? x.dim(-2) : M;
    for (int64_t m = 0; m < M; ++m) {
      const float* in = x.ptr<float>() + m * x.row_stride();
      float* out = y.ptr<float>() + m * y.row_stride();
      if (zero_lens && (m % T) >= zero_lens->ptr<int32_t>()[m / T]) {
        std::fill(out, out + D, 0.f);
        continue;
      }
      normalize(in, out, D, w);
    }
  }

  void cmvn(const Tensor& x, const Tensor& mean, const Tensor& istd, const Tensor& y) override {
    const int64_t M = x.rows(), F = x.cols();
    for (int64_t m = 0; m < M; ++m)
      for (int64_t f = 0; f < F; ++f)
        y.ptr<float>()[m * F + f] = (x.ptr<float>()[m * F + f] - mean.ptr<float>()[f]) * istd.ptr<float>()[f];
  }

  void conv2d(const Tensor& x, const Tensor& w, const Tensor& b, int stride, bool relu, const Tensor& y) override {
    // im2col + one GEMM per batch element: y[o, p] = sum_k w[o, k] col[k, p].
    const int64_t B = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
    const int64_t O = w.dim(0), kh = w.dim(2), kw = w.dim(3), Ho = y.dim(2), Wo = y.dim(3);
    const int64_t K = C * kh * kw, P = Ho * Wo;
    std::vector<float> col(size_t(K * P));
    for (int64_t bi = 0; bi < B; ++bi) {
      const float* in = x.ptr<float>() + bi * C * H * W;
      for (int64_t c = 0; c < C; ++c)
        for (int64_t i = 0; i < kh; ++i)
          for (int64_t j = 0; j < kw; ++j) {
            float* dst = col.data() + ((c * kh + i) * kw + j) * P;
            for (int64_t ho = 0; ho < Ho; ++ho) {
              const float* src = in + (c * H + ho * stride + i) * W + j;
              for (int64_t wo = 0; wo < Wo; ++wo) dst[ho * Wo + wo] = src[wo * stride];
            }
          }
      float* out = y.ptr<float>() + bi * O * P;
      for (int64_t o = 0; o < O; ++o) std::fill(out + o * P, out + (o + 1) * P, b.ptr<float>()[o]);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(O), int(P), int(K), 1.f, w.ptr<float>(), int(K),
                  col.data(), int(P), 1.f, out, int(P));
      if (relu)
        for (int64_t i = 0; i < O * P; ++i) out[i] = std::max(out[i], 0.f);
    }
  }

  void transpose_ct(const Tensor& x, const Tensor& y) override {
    const int64_t B = x.dim(0), C = x.dim(1), T = x.dim(2), F = x.dim(3);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t c = 0; c < C; ++c)
        for (int64_t t = 0; t < T; ++t)
          std::memcpy(y.ptr<float>() + ((b * T + t) * C + c) * F, x.ptr<float>() + ((b * C + c) * T + t) * F,
                      size_t(F) * 4);
  }

  void scale_add_pos(const Tensor& x, float scale, const Tensor* pos, const Tensor& y) override {
    const int64_t D = x.cols(), T = x.dim(-2), M = x.rows();
    for (int64_t m = 0; m < M; ++m) {
      const float* in = x.ptr<float>() + m * x.row_stride();
      float* out = y.ptr<float>() + m * y.row_stride();
      const float* p = pos ? pos->ptr<float>() + (m % T) * D : nullptr;
      for (int64_t d = 0; d < D; ++d) out[d] = in[d] * scale + (p ? p[d] : 0.f);
    }
  }

  void embed(const Tensor& ids, const Tensor& table, float scale, const Tensor& pos, const Tensor& y) override {
    const int64_t T = ids.cols(), M = ids.numel(), D = table.dim(1), V = table.dim(0);
    for (int64_t m = 0; m < M; ++m) {
      const int32_t id = ids.ptr<int32_t>()[m];
      WENET_CHECK(id >= 0 && id < V, "token id {} out of range [0, {})", id, V);
      const float* e = table.ptr<float>() + id * D;
      const float* p = pos.ptr<float>() + (m % T) * D;
      float* out = y.ptr<float>() + m * D;
      for (int64_t d = 0; d < D; ++d) out[d] = e[d] * scale + p[d];
    }
  }

  void attention(const AttentionArgs& a) override {
    const int64_t Bq = a.q.dim(0), Tq = a.q.dim(1), Tk = a.k.dim(1);
    const int64_t H = a.heads, dk = a.q.cols() / H;
    const int64_t ldq = a.q.row_stride(), ldk = a.k.row_stride(), ldv = a.v.row_stride(), ldo = a.out.row_stride();
    const float scale = 1.f / std::sqrt(float(dk));
    const bool rel = a.pos.data != nullptr;
    std::vector<float> scores(size_t(Tq * Tk)), qb(size_t(Tq * dk));
    for (int64_t bq = 0; bq < Bq; ++bq) {
      const int64_t bk = bq / a.queries_per_kv;
      const int64_t len = a.key_lens.ptr<int32_t>()[bk];
      for (int64_t h = 0; h < H; ++h) {
        const float* q = a.q.ptr<float>() + bq * Tq * ldq + h * dk;
        const float* k = a.k.ptr<float>() + bk * Tk * ldk + h * dk;
        const float* v = a.v.ptr<float>() + bk * Tk * ldv + h * dk;
        if (rel) {
          // scores = (q + u) k^T + (q + v) p^T
          add_bias_rows(q, ldq, a.pos_bias_u.ptr<float>() + h * dk, Tq, dk, qb.data());
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(Tq), int(Tk), int(dk), 1.f, qb.data(), int(dk), k,
                      int(ldk), 0.f, scores.data(), int(Tk));
          add_bias_rows(q, ldq, a.pos_bias_v.ptr<float>() + h * dk, Tq, dk, qb.data());
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(Tq), int(Tk), int(dk), 1.f, qb.data(), int(dk),
                      a.pos.ptr<float>() + h * dk, int(a.pos.row_stride()), 1.f, scores.data(), int(Tk));
        } else {
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(Tq), int(Tk), int(dk), 1.f, q, int(ldq), k,
                      int(ldk), 0.f, scores.data(), int(Tk));
        }
        for (int64_t i = 0; i < Tq; ++i) {
          float* row = scores.data() + i * Tk;
          const int64_t visible = std::min(len, a.causal ? i + 1 : Tk);
          masked_softmax(row, Tk, visible, scale);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(Tq), int(dk), int(Tk), 1.f, scores.data(), int(Tk),
                    v, int(ldv), 0.f, a.out.ptr<float>() + bq * Tq * ldo + h * dk, int(ldo));
      }
    }
  }

  void conv_module(const ConvModuleArgs& a, Activation act) override {
    const int64_t B = a.x.dim(0), T = a.x.dim(1), D = a.y.cols(), K = a.dw_w.dim(1), pad = a.causal ? K - 1 : (K - 1) / 2;
    std::vector<float> glu(static_cast<size_t>(T * D)), row(static_cast<size_t>(D));
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t t = 0; t < T; ++t) {
        const float* in = a.x.ptr<float>() + (b * T + t) * a.x.row_stride();
        for (int64_t d = 0; d < D; ++d) glu[size_t(t * D + d)] = in[d] / (1.f + std::exp(-in[D + d]));
      }
      for (int64_t t = 0; t < T; ++t) {
        for (int64_t d = 0; d < D; ++d) {
          float acc = a.dw_b.ptr<float>()[d];
          const float* wk = a.dw_w.ptr<float>() + d * K;
          for (int64_t j = 0; j < K; ++j) {
            const int64_t s = t + j - pad;
            if (s >= 0 && s < T) acc += wk[j] * glu[size_t(s * D + d)];
            else if (s < 0 && a.causal) acc += wk[j] * a.causal_pad.ptr<float>()[d];
          }
          row[size_t(d)] = acc;
        }
        if (a.norm.gamma.data) normalize(row.data(), row.data(), D, a.norm);
        float* out = a.y.ptr<float>() + (b * T + t) * a.y.row_stride();
        for (int64_t d = 0; d < D; ++d) out[d] = activate(row[size_t(d)], act);
      }
    }
  }

  void log_softmax(const Tensor& x, const Tensor& y) override {
    const int64_t M = x.rows(), N = x.cols();
    for (int64_t m = 0; m < M; ++m) {
      const float* in = x.ptr<float>() + m * x.row_stride();
      float* out = y.ptr<float>() + m * y.row_stride();
      const float lse = log_sum_exp(in, N);
      for (int64_t n = 0; n < N; ++n) out[n] = in[n] - lse;
    }
  }

  void log_softmax_top_k(const Tensor& x, int blank, const Tensor& top_ids, const Tensor& top_logp,
                         const Tensor& blank_logp) override {
    const int64_t M = x.rows(), V = x.cols(), k = top_ids.cols();
    WENET_CHECK(x.dtype == DType::kF32, "log_softmax_top_k: expected x float32, got {}", dtype_name(x.dtype));
    check_log_softmax_top_k(x, blank, top_ids, top_logp, blank_logp);
    for (int64_t m = 0; m < M; ++m) {
      const float* in = x.ptr<float>() + m * x.row_stride();
      const float lse = log_sum_exp(in, V);
      int32_t* ids = top_ids.ptr<int32_t>() + m * top_ids.row_stride();
      float* vals = top_logp.ptr<float>() + m * top_logp.row_stride();
      // The values log_softmax writes, selected as CtcPrefixBeamSearcher::select_top_k does:
      // insertion into a sorted list, ties keeping the lower id first.
      const auto insert = [&](int64_t n, int32_t v, float p) {
        int64_t i = std::min(n, k - 1);
        for (; i > 0 && p > vals[i - 1]; --i) vals[i] = vals[i - 1], ids[i] = ids[i - 1];
        vals[i] = p;
        ids[i] = v;
      };
      for (int64_t v = 0; v < k; ++v) insert(v, int32_t(v), in[v] - lse);
      for (int64_t v = k; v < V; ++v)
        if (const float p = in[v] - lse; p > vals[k - 1]) insert(k, int32_t(v), p);
      blank_logp.ptr<float>()[m] = in[blank] - lse;
    }
  }

  void linear_log_softmax_gather(const Tensor& x, const LinearWeights& w, int vocab, const Tensor& targets,
                                 const Tensor& out) override {
    const int64_t M = x.rows(), K = x.cols();
    WENET_CHECK(x.dtype == DType::kF32 && w.w.dtype == DType::kF32 && (!w.b.data || w.b.dtype == DType::kF32),
                "linear_log_softmax_gather: expected x, W and bias float32, got {}, {} and {}", dtype_name(x.dtype),
                dtype_name(w.w.dtype), w.b.data ? dtype_name(w.b.dtype) : "none");
    check_linear_log_softmax_gather(x, w, vocab, targets, out);
    const int64_t N = w.w.dim(0);
    const int32_t* tgt = targets.ptr<int32_t>();
    for (int64_t m = 0; m < M; ++m)
      WENET_CHECK(tgt[m] >= -1 && tgt[m] < vocab,
                  "linear_log_softmax_gather: expected targets in [0, {}) or -1, got {} at row {}", vocab, tgt[m], m);
    // linear() and log_softmax()'s log-sum-exp a chunk of rows at a time: the logits of all rows
    // are never held at once.
    constexpr int64_t kChunkRows = 256;
    std::vector<float> logits(size_t(std::min(M, kChunkRows) * N));
    for (int64_t m0 = 0; m0 < M; m0 += kChunkRows) {
      const int64_t rows = std::min(kChunkRows, M - m0);
      Tensor xc = x;
      xc.data = x.ptr<float>() + m0 * x.row_stride();
      xc.rank = 2;
      xc.dims = {rows, K, 0, 0};
      xc.ld = x.row_stride();
      linear(xc, w, Activation::kNone, nullptr, make_view(logits.data(), {rows, N}, DType::kF32));
      for (int64_t r = 0; r < rows; ++r) {
        const int32_t t = tgt[m0 + r];
        const float* row = logits.data() + r * N;
        out.ptr<float>()[m0 + r] = t < 0 ? 0.f : row[t] - log_sum_exp(row, vocab);
      }
    }
  }

 private:
  // Row log-sum-exp as log_softmax computes it: max, then the sum of exp in double.
  static float log_sum_exp(const float* in, int64_t n) {
    const float mx = *std::max_element(in, in + n);
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += std::exp(double(in[i] - mx));
    return mx + float(std::log(sum));
  }

  // f(row pointer, row index, row bytes) for each row of a possibly strided tensor.
  template <typename F>
  static void for_each_row(const Tensor& t, F&& f) {
    const size_t row_bytes = size_t(t.cols()) * dtype_size(t.dtype);
    const size_t stride = size_t(t.row_stride()) * dtype_size(t.dtype);
    for (int64_t r = 0; r < t.rows(); ++r) f(static_cast<std::byte*>(t.data) + size_t(r) * stride, size_t(r), row_bytes);
  }

  static void add_bias_rows(const float* q, int64_t ldq, const float* bias, int64_t rows, int64_t dk, float* out) {
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t d = 0; d < dk; ++d) out[i * dk + d] = q[i * ldq + d] + bias[d];
  }

  // Softmax of row[0:visible] * scale; masked entries (and fully masked rows) become 0, as WeNet's
  // masked_fill(-inf) -> softmax -> masked_fill(0).
  static void masked_softmax(float* row, int64_t n, int64_t visible, float scale) {
    if (visible <= 0) {
      std::fill(row, row + n, 0.f);
      return;
    }
    float mx = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < visible; ++j) mx = std::max(mx, row[j] * scale);
    double sum = 0;
    for (int64_t j = 0; j < visible; ++j) {
      row[j] = std::exp(row[j] * scale - mx);
      sum += row[j];
    }
    const float inv = float(1.0 / sum);
    for (int64_t j = 0; j < visible; ++j) row[j] *= inv;
    std::fill(row + visible, row + n, 0.f);
  }

  // LayerNorm of one row (eps 1e-5, statistics in double); in may alias out.
  static void normalize(const float* in, float* out, int64_t D, const LayerNormWeights& w) {
    double mean = 0, var = 0;
    for (int64_t d = 0; d < D; ++d) mean += in[d];
    mean /= double(D);
    for (int64_t d = 0; d < D; ++d) var += (in[d] - mean) * (in[d] - mean);
    const float inv = float(1.0 / std::sqrt(var / double(D) + 1e-5));
    for (int64_t d = 0; d < D; ++d)
      out[d] = (in[d] - float(mean)) * inv * w.gamma.ptr<float>()[d] + w.beta.ptr<float>()[d];
  }

  std::vector<std::vector<std::byte>> weights_;
  std::vector<std::vector<std::byte>> arena_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int threads) { return std::make_unique<CpuBackend>(threads); }

}  // namespace wenet_rt
