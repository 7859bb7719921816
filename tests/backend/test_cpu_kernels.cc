// The CPU backend's kernels: every instruction set this machine runs (plain C++, AVX2, AVX-512)
// against a double-precision reference and against each other, the properties the backend relies
// on (a row's result does not depend on the batch it is in, nor on the thread count), the thread
// pool, and INT8 linear layers against FP32.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/gemm.h"
#include "backend/cpu/kernels/kernels.h"
#include "backend/cpu/thread_pool.h"

namespace wenet_rt {
namespace {

using cpu::KernelTable;

std::vector<const KernelTable*> tables() {
  std::vector<const KernelTable*> t{cpu::kernels_generic()};
  if (const KernelTable* k = cpu::kernels_avx2()) t.push_back(k);
  if (const KernelTable* k = cpu::kernels_avx512()) t.push_back(k);
  return t;
}

std::vector<float> random(size_t n, uint32_t seed, float scale = 1.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// C = act(A W^T + bias) + residual over every panel of W, with one table.
std::vector<float> run_gemm(const KernelTable& kt, int64_t M, int64_t N, int64_t K, const std::vector<float>& a,
                            const std::vector<float>& w, const std::vector<float>& bias, int act,
                            const std::vector<float>* residual) {
  const int nr = cpu::pick_nr(N);
  std::vector<float> packed(cpu::packed_floats(N, K, nr));
  cpu::pack_nk(w.data(), K, N, K, nr, packed.data());
  const cpu::PackedB b{packed.data(), N, K, nr};
  std::vector<float> c(size_t(M * N), -7.f);
  if (residual) c = *residual;  // residual aliasing C, as the graph's in-place sublayers do
  for (int64_t p = 0; p < b.panels(); ++p) {
    cpu::Epilogue ep;
    ep.bias = bias.data() + p * nr;
    ep.act = act;
    if (residual) {
      ep.residual = c.data() + p * nr;
      ep.ldr = N;
    }
    kt.gemm_panel(M, K, a.data(), K, b.panel(p), nr, int(std::min<int64_t>(nr, N - p * nr)), c.data() + p * nr, N,
                  ep);
  }
  return c;
}

TEST(CpuKernels, GemmMatchesDoubleReferenceOnEveryInstructionSet) {
  struct Case {
    int64_t m, n, k;
  };
  // Row tails, panel widths 16..64 with ragged last panels, and depths past one block of k.
  for (const Case cs : {Case{1, 16, 3}, Case{13, 144, 144}, Case{29, 100, 37}, Case{7, 256, 2048}, Case{50, 30, 600},
                        Case{25, 432, 144}, Case{3, 4240, 64}}) {
    const auto a = random(size_t(cs.m * cs.k), 1), w = random(size_t(cs.n * cs.k), 2, 0.1f);
    const auto bias = random(size_t((cs.n + 63) / 64 * 64), 3), res = random(size_t(cs.m * cs.n), 4);
    for (int act : {cpu::kActNone, cpu::kActRelu, cpu::kActSwish}) {
      for (bool with_res : {false, true}) {
        if (with_res && act != cpu::kActNone) continue;
        for (const KernelTable* kt : tables()) {
          const auto c = run_gemm(*kt, cs.m, cs.n, cs.k, a, w, bias, act, with_res ? &res : nullptr);
          double worst = 0;
          for (int64_t i = 0; i < cs.m; ++i)
            for (int64_t j = 0; j < cs.n; ++j) {
              double s = bias[size_t(j)];
              for (int64_t q = 0; q < cs.k; ++q) s += double(a[size_t(i * cs.k + q)]) * w[size_t(j * cs.k + q)];
              if (act == cpu::kActRelu) s = std::max(s, 0.0);
              if (act == cpu::kActSwish) s = s / (1 + std::exp(-s));
              if (with_res) s += res[size_t(i * cs.n + j)];
              worst = std::max(worst, std::abs(s - c[size_t(i * cs.n + j)]) / (1 + std::abs(s)));
            }
          EXPECT_LT(worst, 2e-5) << kt->name << " " << cs.m << "x" << cs.n << "x" << cs.k << " act " << act
                                 << (with_res ? " +residual" : "");
        }
      }
    }
  }
}

TEST(CpuKernels, LayerNormLogSumExpAndSoftmaxAgreeAcrossInstructionSets) {
  const int64_t D = 147;  // a ragged tail for every vector width
  const auto x = random(size_t(D), 5, 3.f), g = random(size_t(D), 6), b = random(size_t(D), 7);
  std::vector<float> ref(static_cast<size_t>(D));
  cpu::kernels_generic()->layer_norm(x.data(), D, ref.data(), D, 1, D, g.data(), b.data());
  double mean = 0, var = 0;
  for (float v : x) mean += v;
  mean /= D;
  for (float v : x) var += (v - mean) * (v - mean);
  var /= D;
  double lse_ref = 0;
  for (float v : x) lse_ref += std::exp(double(v));
  lse_ref = std::log(lse_ref);
  for (const KernelTable* kt : tables()) {
    std::vector<float> y(static_cast<size_t>(D));
    kt->layer_norm(x.data(), D, y.data(), D, 1, D, g.data(), b.data());
    for (int64_t d = 0; d < D; ++d) {
      const double want = (x[size_t(d)] - mean) / std::sqrt(var + 1e-5) * g[size_t(d)] + b[size_t(d)];
      EXPECT_NEAR(y[size_t(d)], want, 2e-5) << kt->name << " d " << d;
    }
    EXPECT_NEAR(kt->log_sum_exp(x.data(), D), lse_ref, 2e-5) << kt->name;
  }
}

TEST(CpuKernels, QuantizedGemmIsExactInt32ArithmeticOnEveryInstructionSet) {
  // The same quantized operands through every table's INT8 kernel: integer sums are exact, and
  // the float epilogue runs the same operations, so the outputs agree bit for bit.
  const int64_t M = 19, N = 100, K = 70, K4 = 72;
  std::mt19937 rng(8);
  std::uniform_int_distribution<int> u8(0, 255), s8(-127, 127);
  const int nr = cpu::pick_nr(N);
  const int64_t Np = (N + nr - 1) / nr * nr;
  std::vector<int8_t> wq(size_t(Np * K4), 0);
  std::vector<float> ws(static_cast<size_t>(Np), 0.f);
  std::vector<int32_t> cs(static_cast<size_t>(Np), 0);
  std::vector<int32_t> wfull(size_t(N * K));
  for (int64_t j = 0; j < N; ++j) {
    ws[size_t(j)] = 0.01f + 0.001f * float(j);
    for (int64_t k = 0; k < K; ++k) {
      const int v = s8(rng);
      wfull[size_t(j * K + k)] = v;
      wq[size_t((j / nr) * K4 * nr + ((k / 4) * nr + j % nr) * 4 + k % 4)] = int8_t(v);
      cs[size_t(j)] += v;
    }
  }
  std::vector<uint8_t> q(size_t(M * K4));
  std::vector<float> sa(static_cast<size_t>(M));
  std::vector<int32_t> za(static_cast<size_t>(M));
  for (int64_t i = 0; i < M; ++i) {
    sa[size_t(i)] = 0.02f + 0.001f * float(i);
    za[size_t(i)] = u8(rng);
    for (int64_t k = 0; k < K4; ++k) q[size_t(i * K4 + k)] = k < K ? uint8_t(u8(rng)) : uint8_t(za[size_t(i)]);
  }
  cpu::PackedInt8 w;
  w.data = wq.data();
  w.scale = ws.data();
  w.col_sum = cs.data();
  w.n = N;
  w.k = K;
  w.k4 = K4;
  w.nr = nr;
  const cpu::QuantRows a{q.data(), K4, sa.data(), za.data()};
  std::vector<float> first;
  for (const KernelTable* kt : tables()) {
    std::vector<float> c(size_t(M * N));
    for (int64_t p = 0; p < w.panels(); ++p)
      kt->qgemm_panel(M, a, w, p, int(std::min<int64_t>(nr, N - p * nr)), c.data() + p * nr, N, cpu::Epilogue{});
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        int64_t acc = 0;
        for (int64_t k = 0; k < K; ++k) acc += int64_t(q[size_t(i * K4 + k)] - za[size_t(i)]) * wfull[size_t(j * K + k)];
        const double want = double(acc) * sa[size_t(i)] * ws[size_t(j)];
        ASSERT_NEAR(c[size_t(i * N + j)], want, 1e-4 * (1 + std::abs(want))) << kt->name << " " << i << "," << j;
      }
    if (first.empty()) first = c;
    else EXPECT_EQ(c, first) << kt->name;
  }
}

// A row's output does not depend on which rows share its batch nor on the thread count: the
// engine may batch utterances any way it likes.
TEST(CpuBackendOps, LinearRowsDoNotDependOnBatchOrThreads) {
  const int64_t N = 144, K = 576;
  const auto w = random(size_t(N * K), 9, 0.05f), bias = random(size_t(N), 10);
  const auto x = random(size_t(100 * K), 11);
  std::vector<std::vector<float>> outs;
  for (int threads : {1, 2, 3}) {
    auto be = make_cpu_backend(threads);
    HostTensor hw(DType::kF32, {N, K}), hb(DType::kF32, {N});
    std::copy(w.begin(), w.end(), hw.data<float>());
    std::copy(bias.begin(), bias.end(), hb.data<float>());
    const LinearWeights lw{be->upload(hw, DType::kF32), be->upload(hb, DType::kF32)};
    for (int64_t rows : {1, 7, 100}) {
      Tensor xt = be->alloc({rows, K}, DType::kF32), yt = be->alloc({rows, N}, DType::kF32);
      be->copy_in(x.data(), xt);
      be->linear(xt, lw, Activation::kSwish, nullptr, yt);
      std::vector<float> y(size_t(rows * N));
      be->copy_out(yt, y.data());
      y.resize(size_t(N));  // row 0
      outs.push_back(y);
    }
  }
  for (const auto& o : outs) EXPECT_EQ(o, outs[0]);
}

TEST(CpuBackendOps, Int8LinearIsCloseToFp32) {
  const int64_t M = 33, N = 144, K = 576;
  const auto w = random(size_t(N * K), 12, 0.05f), bias = random(size_t(N), 13), x = random(size_t(M * K), 14);
  std::vector<float> got[2];
  for (int mode = 0; mode < 2; ++mode) {
    CpuBackendOptions o;
    o.int8 = mode == 1;
    auto be = make_cpu_backend(o);
    HostTensor hw(DType::kF32, {N, K}), hb(DType::kF32, {N});
    std::copy(w.begin(), w.end(), hw.data<float>());
    std::copy(bias.begin(), bias.end(), hb.data<float>());
    const LinearWeights lw{be->upload(hw, DType::kF32), be->upload(hb, DType::kF32)};
    Tensor xt = be->alloc({M, K}, DType::kF32), yt = be->alloc({M, N}, DType::kF32);
    be->copy_in(x.data(), xt);
    be->linear(xt, lw, Activation::kNone, nullptr, yt);
    got[mode].resize(size_t(M * N));
    be->copy_out(yt, got[mode].data());
  }
  double err = 0, scale = 0;
  for (size_t i = 0; i < got[0].size(); ++i) {
    err = std::max(err, double(std::abs(got[0][i] - got[1][i])));
    scale = std::max(scale, double(std::abs(got[0][i])));
  }
  EXPECT_LT(err, 0.02 * scale) << "max |int8 - fp32| " << err << " of outputs up to " << scale;
  EXPECT_GT(err, 0.0) << "int8 path not taken";
}

// The subsampling conv: INT8 (panels quantized per position, weights per channel) against FP32,
// every instruction set's INT8 kernels bit for bit, and FP32 against a direct double sum.
TEST(CpuBackendOps, Conv2dFp32MatchesReferenceAndInt8IsClose) {
  const int64_t B = 2, C = 16, H = 23, W = 21, O = 20, S = 2, Ho = (H - 3) / S + 1, Wo = (W - 3) / S + 1;
  auto x = random(size_t(B * C * H * W), 15);
  for (float& v : x) v = std::max(v, 0.f);  // as after the first conv's ReLU
  const auto w = random(size_t(O * C * 9), 16, 0.2f), bias = random(size_t(O), 17);
  std::vector<float> got[2];
  for (int mode = 0; mode < 2; ++mode) {
    CpuBackendOptions o;
    o.int8 = mode == 1;
    auto be = make_cpu_backend(o);
    HostTensor hx(DType::kF32, {B, C, H, W}), hw(DType::kF32, {O, C, 3, 3}), hb(DType::kF32, {O});
    std::copy(x.begin(), x.end(), hx.data<float>());
    std::copy(w.begin(), w.end(), hw.data<float>());
    std::copy(bias.begin(), bias.end(), hb.data<float>());
    const Tensor tx = be->upload(hx, DType::kF32), tw = be->upload(hw, DType::kF32), tb = be->upload(hb, DType::kF32);
    const Tensor ty = be->alloc({B, O, Ho, Wo}, DType::kF32);
    be->conv2d(tx, tw, tb, int(S), true, ty);
    got[mode].resize(size_t(ty.numel()));
    be->copy_out(ty, got[mode].data());
  }
  double worst = 0, err = 0, scale = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t i = 0; i < Ho; ++i)
        for (int64_t j = 0; j < Wo; ++j) {
          double s = bias[size_t(o)];
          for (int64_t c = 0; c < C; ++c)
            for (int64_t di = 0; di < 3; ++di)
              for (int64_t dj = 0; dj < 3; ++dj)
                s += double(w[size_t(((o * C + c) * 3 + di) * 3 + dj)]) *
                     x[size_t(((b * C + c) * H + i * S + di) * W + j * S + dj)];
          s = std::max(s, 0.0);
          const size_t at = size_t(((b * O + o) * Ho + i) * Wo + j);
          worst = std::max(worst, std::abs(s - got[0][at]));
          err = std::max(err, std::abs(s - got[1][at]));
          scale = std::max(scale, std::abs(s));
        }
  EXPECT_LT(worst, 1e-4);
  EXPECT_LT(err, 0.02 * scale) << "int8 conv: max error " << err << " of outputs up to " << scale;
  EXPECT_GT(err, 0.0) << "int8 path not taken";
}

TEST(CpuKernels, QuantizedConvPanelsAgreeAcrossInstructionSets) {
  const int64_t O = 13, K = 37, K4 = 40;
  const int nr = 48;
  auto col = random(size_t(K * nr), 18);
  std::vector<int8_t> wq(size_t(O * K4));
  std::vector<float> sw(static_cast<size_t>(O));
  std::vector<int32_t> rowsum(size_t(O), 0);
  std::mt19937 rng(19);
  std::uniform_int_distribution<int> s8(-127, 127);
  for (int64_t o = 0; o < O; ++o) {
    sw[size_t(o)] = 0.01f * float(o + 1);
    for (int64_t k = 0; k < K4; ++k) {
      wq[size_t(o * K4 + k)] = int8_t(k < K ? s8(rng) : 0);
      rowsum[size_t(o)] += wq[size_t(o * K4 + k)];
    }
  }
  std::vector<float> first;
  for (const KernelTable* kt : tables()) {
    std::vector<uint8_t> q(size_t(K4 * nr));
    std::vector<float> sa(static_cast<size_t>(nr));
    std::vector<int32_t> za(static_cast<size_t>(nr));
    kt->quantize_panel(col.data(), K, K4, nr, q.data(), sa.data(), za.data());
    std::vector<float> c(size_t(O * nr));
    kt->qconv_panel(O, K4, wq.data(), sw.data(), rowsum.data(), q.data(), nr, sa.data(), za.data(), 45, c.data(), nr,
                    cpu::Epilogue{});
    for (int64_t o = 0; o < O; ++o)
      for (int j = 0; j < 45; ++j) {
        double want = 0, abs_w = 0;
        for (int64_t k = 0; k < K; ++k) {
          want += double(wq[size_t(o * K4 + k)]) * col[size_t(k * nr + j)];
          abs_w += std::abs(double(wq[size_t(o * K4 + k)]));
        }
        want *= sw[size_t(o)];
        // each input off by at most half a quantization step
        ASSERT_NEAR(c[size_t(o * nr + j)], want, 0.5 * sa[size_t(j)] * sw[size_t(o)] * abs_w + 1e-4) << kt->name;
      }
    if (first.empty()) first = c;
    else EXPECT_EQ(c, first) << kt->name;
  }
}

TEST(CpuThreadPool, RunsEveryTaskOnceAndRethrows) {
  for (int threads : {1, 2, 4}) {
    cpu::ThreadPool pool(threads);
    for (int round = 0; round < 2000; ++round) {
      const int64_t n = round % 7;
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      pool.run(n, [&](int64_t i, int t) {
        ASSERT_GE(t, 0);
        ASSERT_LT(t, pool.size());
        hits[size_t(i)]++;
      });
      for (auto& h : hits) ASSERT_EQ(h.load(), 1);
    }
    EXPECT_THROW(pool.run(10, [](int64_t i, int) {
      if (i == 3) throw std::runtime_error("task 3");
    }),
                 std::runtime_error);
    int after = 0;
    pool.run(1, [&](int64_t, int) { ++after; });
    EXPECT_EQ(after, 1);
  }
  for (int i = 0; i < 200; ++i) cpu::ThreadPool quick(3);  // made and dropped before its threads start
}

}  // namespace
}  // namespace wenet_rt
