// The CUDA backend's vocabulary ops (log_softmax_top_k, linear_log_softmax_gather) in float32 and
// float16 against the CPU backend on the same inputs (float16 runs round the inputs to half
// precision first, so both backends see the same values), against the GPU's own log_softmax (the
// top-k values must be its values, bit for bit), on the fused kernel's K (144, 256) and the
// fallback (K 512 and others, float32, unaligned rows), and replayed from CUDA graphs. Skips
// without a GPU.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "common/cuda_device.h"
#include "common/expect_error.h"

namespace wenet_rt {
namespace {

class CudaVocabOps : public ::testing::TestWithParam<DType> {
 protected:
  void SetUp() override {
    SKIP_WITHOUT_GPU();
    dt_ = GetParam();
    cpu_ = make_cpu_backend();
    CudaBackendOptions o;
    o.dtype = dt_;
    o.cuda_graphs = false;
    gpu_ = make_cuda_backend(o);
  }
  bool f16() const { return dt_ == DType::kF16; }

  std::vector<float> random(size_t n, float lo, float hi) {
    std::uniform_real_distribution<float> u(lo, hi);
    std::vector<float> v(n);
    for (float& x : v) {
      x = u(rng_);
      if (f16()) x = half_to_float(float_to_half(x));
    }
    return v;
  }
  // The same host values on a backend: activations (scratch) or weights (uploaded).
  static Tensor act(Backend& be, const std::vector<float>& v, int64_t rows, int64_t cols) {
    Tensor t = be.alloc({rows, cols}, be.act_dtype());
    be.copy_in(v.data(), t);
    return t;
  }
  static Tensor ints(Backend& be, const std::vector<int32_t>& v) {
    Tensor t = be.alloc({int64_t(v.size())}, DType::kI32);
    be.copy_in(v.data(), t);
    return t;
  }
  static Tensor weight(Backend& be, const std::vector<float>& v, const Shape& s) {
    HostTensor h(DType::kF32, s);
    std::copy(v.begin(), v.end(), h.data<float>());
    return be.upload(h, be.act_dtype());
  }
  template <typename T>
  static std::vector<T> out(Backend& be, const Tensor& t) {
    std::vector<T> v(size_t(t.numel()));
    be.copy_out(t, v.data());
    return v;
  }

  struct TopK {
    std::vector<int32_t> ids;
    std::vector<float> logp, blank;
  };
  static TopK top_k(Backend& be, const Tensor& x, int k, int blank) {
    const int64_t M = x.rows();
    Tensor ids = be.alloc({M, k}, DType::kI32), logp = be.alloc({M, k}, DType::kF32), bl = be.alloc({M}, DType::kF32);
    be.log_softmax_top_k(x, blank, ids, logp, bl);
    return {out<int32_t>(be, ids), out<float>(be, logp), out<float>(be, bl)};
  }
  static std::vector<float> log_softmax(Backend& be, const Tensor& x) {
    Tensor y = be.alloc({x.rows(), x.cols()}, DType::kF32);
    be.log_softmax(x, y);
    return out<float>(be, y);
  }
  // The k best entries of each row of lp [M, V] by a stable sort (value desc, ties by lower id).
  static std::vector<int32_t> select(const std::vector<float>& lp, int64_t M, int64_t V, int k) {
    std::vector<int32_t> ids;
    std::vector<int32_t> order(static_cast<size_t>(V));
    for (int64_t m = 0; m < M; ++m) {
      const float* row = lp.data() + m * V;
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return row[a] > row[b]; });
      ids.insert(ids.end(), order.begin(), order.begin() + k);
    }
    return ids;
  }

  // One top-k case: x [M, V] (a column slice of a wider tensor when strided) on both backends.
  void check_top_k(int64_t M, int64_t V, int k, int blank, bool strided) {
    const std::string what = "M " + std::to_string(M) + " V " + std::to_string(V) + " k " + std::to_string(k) +
                             " blank " + std::to_string(blank) + (strided ? " strided" : "");
    SCOPED_TRACE(what);
    const int64_t width = strided ? V + 19 : V, offset = strided ? 7 : 0;
    const std::vector<float> host = random(size_t(M * width), -8.f, 8.f);
    const Tensor xc = act(*cpu_, host, M, width).col_slice(offset, V);
    const Tensor xg = act(*gpu_, host, M, width).col_slice(offset, V);
    const TopK want = top_k(*cpu_, xc, k, blank), got = top_k(*gpu_, xg, k, blank);
    const std::vector<float> cpu_lp = log_softmax(*cpu_, xc), gpu_lp = log_softmax(*gpu_, xg);

    // 1. The GPU's values are its log_softmax's values, and its ids its log_softmax's top k.
    EXPECT_EQ(got.ids, select(gpu_lp, M, V, k)) << "ids vs the GPU's log_softmax";
    for (int64_t m = 0; m < M; ++m) {
      for (int j = 0; j < k; ++j) {
        const size_t i = size_t(m * k + j);
        ASSERT_TRUE(got.ids[i] >= 0 && got.ids[i] < V) << "id " << got.ids[i] << " at row " << m;
        const float lp = gpu_lp[size_t(m * V + got.ids[i])];
        ASSERT_EQ(std::memcmp(&got.logp[i], &lp, 4), 0) << "row " << m << " rank " << j << ": " << got.logp[i]
                                                        << " vs log_softmax " << lp;
      }
      const float bl = gpu_lp[size_t(m * V + blank)];
      ASSERT_EQ(std::memcmp(&got.blank[size_t(m)], &bl, 4), 0) << "blank of row " << m;
    }
    // 2. Against the CPU: the same ids (FP16: up to swaps among values within 1e-3 of each
    // other on the CPU), values within 1e-5.
    float worst = 0.f;
    for (int64_t m = 0; m < M; ++m) {
      for (int j = 0; j < k; ++j) {
        const size_t i = size_t(m * k + j);
        worst = std::max(worst, std::fabs(got.logp[i] - want.logp[i]));
        if (got.ids[i] == want.ids[i]) continue;
        EXPECT_TRUE(f16()) << "row " << m << " rank " << j << ": id " << got.ids[i] << ", cpu " << want.ids[i];
        EXPECT_LE(std::fabs(cpu_lp[size_t(m * V + got.ids[i])] - want.logp[i]), 1e-3f)
            << "row " << m << " rank " << j << ": id " << got.ids[i] << " is not a near-tie of cpu id " << want.ids[i];
      }
      worst = std::max(worst, std::fabs(got.blank[size_t(m)] - want.blank[size_t(m)]));
    }
    std::printf("  %-8s top_k %-40s max |cuda - cpu| %.2e\n", std::string(dtype_name(dt_)).c_str(), what.c_str(),
                worst);
    EXPECT_LE(worst, 1e-5f);
  }

  // linear_log_softmax_gather on both backends: x [M, K] (a column slice at `offset` of a
  // [M, width] tensor), W [N, K] whose rows >= vocab hold large values that must be ignored.
  void check_gather(int64_t M, int64_t K, int vocab, int64_t N, int64_t width, int64_t offset, bool bias) {
    const std::string what = "M " + std::to_string(M) + " K " + std::to_string(K) + " vocab " + std::to_string(vocab) +
                             "/" + std::to_string(N) + (width != K ? " x slice at " + std::to_string(offset) : "") +
                             (bias ? "" : " no bias");
    SCOPED_TRACE(what);
    const float scale = 3.f / std::sqrt(float(K));
    std::vector<float> w = random(size_t(N * K), -scale, scale), b = random(size_t(N), -1.f, 1.f);
    for (int64_t n = vocab; n < N; ++n) {
      std::fill(w.begin() + n * K, w.begin() + (n + 1) * K, 0.5f);
      b[size_t(n)] = 50.f;
    }
    std::vector<int32_t> targets(static_cast<size_t>(M));
    std::uniform_int_distribution<int32_t> u(0, vocab - 1);
    for (size_t i = 0; i < targets.size(); ++i) targets[i] = i % 5 == 2 ? -1 : u(rng_);
    if (M > 1) targets[1] = vocab - 1;  // the last column of the last tile
    const std::vector<float> x = random(size_t(M * width), -1.f, 1.f);
    std::vector<float> result[2];
    for (int g = 0; g < 2; ++g) {
      Backend& be = g ? *gpu_ : *cpu_;
      LinearWeights lw{weight(be, w, {N, K}), bias ? weight(be, b, {N}) : Tensor{}};
      Tensor o = be.alloc({M}, DType::kF32);
      be.linear_log_softmax_gather(act(be, x, M, width).col_slice(offset, K), lw, vocab, ints(be, targets), o);
      result[g] = out<float>(be, o);
    }
    float worst = 0.f;
    for (size_t m = 0; m < targets.size(); ++m) {
      ASSERT_FALSE(std::isnan(result[1][m])) << "row " << m;
      if (targets[m] < 0) EXPECT_EQ(result[1][m], 0.f) << "row " << m << " has no target";
      worst = std::max(worst, std::fabs(result[1][m] - result[0][m]));
    }
    // FP16: the fused kernel keeps FP32 logits (~1e-6 here); the fallback rounds them to half
    // precision (|logit| <= ~6 here: <= 3e-3).
    const float tol = f16() ? 1e-2f : 1e-4f;
    std::printf("  %-8s gather %-44s max |cuda - cpu| %.2e (limit %.0e)\n", std::string(dtype_name(dt_)).c_str(),
                what.c_str(), worst, tol);
    EXPECT_LE(worst, tol);
  }

  DType dt_ = DType::kF32;
  std::mt19937 rng_{20250607};
  std::unique_ptr<Backend> cpu_, gpu_;
};

INSTANTIATE_TEST_SUITE_P(Dtypes, CudaVocabOps, ::testing::Values(DType::kF32, DType::kF16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST_P(CudaVocabOps, TopKMatchesCpuAndLogSoftmax) {
  check_top_k(13, 1, 1, 0, false);
  check_top_k(13, 50, 10, 0, false);
  check_top_k(7, 4233, 10, 0, false);
  check_top_k(5, 4233, 1, 4232, true);
  check_top_k(3, 600, 600, 17, false);  // k = V
  check_top_k(300, 5000, 16, 2, true);
  check_top_k(2, 257, 3, 256, false);
  check_top_k(3, 4233, 64, 5, false);
  check_top_k(4, 9000, 12, 8999, true);  // over 8192 columns: rescans read the row again
}

TEST_P(CudaVocabOps, TopKTies) {
  const int64_t M = 5, V = 700;
  std::vector<float> host(size_t(M * V));
  std::uniform_int_distribution<int> level(0, 3);
  for (float& e : host) e = float(level(rng_));
  std::fill(host.begin() + 4 * V, host.end(), 0.5f);  // all equal: ids 0, 1, 2, ...
  const TopK want = top_k(*cpu_, act(*cpu_, host, M, V), 20, 3);
  const TopK got = top_k(*gpu_, act(*gpu_, host, M, V), 20, 3);
  EXPECT_EQ(got.ids, want.ids);
  for (int j = 0; j < 20; ++j) EXPECT_EQ(got.ids[size_t(4 * 20 + j)], j);
}

TEST_P(CudaVocabOps, TopKRejectsBadArguments) {
  const Tensor x = act(*gpu_, random(40, -1.f, 1.f), 4, 10);
  Tensor ids = gpu_->alloc({4, 11}, DType::kI32), logp = gpu_->alloc({4, 11}, DType::kF32),
         bl = gpu_->alloc({4}, DType::kF32);
  testing::expect_error([&] { gpu_->log_softmax_top_k(x, 0, ids, logp, bl); }, {"expected k in [1, 10]", "got 11"});
  Tensor ids3 = gpu_->alloc({4, 3}, DType::kI32), logp3 = gpu_->alloc({4, 3}, DType::kF32);
  testing::expect_error([&] { gpu_->log_softmax_top_k(x, 10, ids3, logp3, bl); }, {"expected blank in [0, 10)"});
  const Tensor other = gpu_->alloc({4, 10}, f16() ? DType::kF32 : DType::kF16);
  testing::expect_error([&] { gpu_->log_softmax_top_k(other, 0, ids3, logp3, bl); },
                        {"log_softmax_top_k", "x must be"});
}

TEST_P(CudaVocabOps, GatherFusedKernelSizes) {
  check_gather(300, 256, 4233, 4240, 256, 0, true);  // the decoder's shape; M not a multiple of 128
  check_gather(1, 256, 4233, 4240, 256, 0, true);
  check_gather(129, 144, 4233, 4240, 144, 0, true);
  check_gather(64, 256, 50, 56, 256, 0, false);       // one partial tile
  check_gather(33, 64, 1, 8, 64, 0, true);            // vocab 1: every log-prob is 0
  check_gather(70, 256, 300, 304, 768, 256, true);    // strided x, aligned: still the fused kernel in FP16
}

TEST_P(CudaVocabOps, GatherFallback) {
  check_gather(200, 512, 4233, 4240, 512, 0, true);  // the larger models' K
  check_gather(150, 40, 4233, 4240, 40, 0, true);    // K not a multiple of 16
  check_gather(90, 1024, 1000, 1000, 1024, 0, true);  // K > 256, N not padded
  check_gather(77, 256, 4233, 4240, 300, 4, true);    // rows not 16-byte aligned
  // More rows than one chunk of the fallback's scratch (32 MB of logits: 1978 float32 rows of
  // 4240, 3957 float16 ones): several GEMMs.
  check_gather(4100, 40, 4233, 4240, 40, 0, false);
}

// Many rows (K 256: on 132 SMs the fused kernel's one-split plan; K 512: several fallback chunks;
// a CPU reference would be slow): against the GPU's own linear + log_softmax (FP16: logits
// rounded to half there, so within 1e-2; FP32: the same GEMM and log-sum-exp, so within 1e-5).
TEST_P(CudaVocabOps, GatherManyRowsMatchesLinearLogSoftmax) {
  for (const int64_t K : {256, 512}) {
    const int64_t M = 33792, N = 1000;
    const int vocab = 997;
    SCOPED_TRACE("K " + std::to_string(K));
    const float scale = 3.f / std::sqrt(float(K));
    const LinearWeights w{weight(*gpu_, random(size_t(N * K), -scale, scale), {N, K}),
                          weight(*gpu_, random(size_t(N), -1.f, 1.f), {N})};
    const Tensor x = act(*gpu_, random(size_t(M * K), -1.f, 1.f), M, K);
    std::vector<int32_t> targets(static_cast<size_t>(M));
    for (size_t i = 0; i < targets.size(); ++i) targets[i] = i % 11 == 5 ? -1 : int32_t((i * 7919) % vocab);
    Tensor o = gpu_->alloc({M}, DType::kF32);
    gpu_->linear_log_softmax_gather(x, w, vocab, ints(*gpu_, targets), o);
    const std::vector<float> got = out<float>(*gpu_, o);
    Tensor logits = gpu_->alloc({M, N}, dt_), lp = gpu_->alloc({M, vocab}, DType::kF32);
    gpu_->linear(x, w, Activation::kNone, nullptr, logits);
    gpu_->log_softmax(logits.col_slice(0, vocab), lp);
    const std::vector<float> all = out<float>(*gpu_, lp);
    float worst = 0.f;
    for (int64_t m = 0; m < M; ++m) {
      const int32_t t = targets[size_t(m)];
      ASSERT_FALSE(std::isnan(got[size_t(m)])) << "row " << m;
      worst = std::max(worst, std::fabs(got[size_t(m)] - (t < 0 ? 0.f : all[size_t(m * vocab + t)])));
    }
    std::printf("  %-8s gather M %ld K %ld vs linear + log_softmax: max diff %.2e\n",
                std::string(dtype_name(dt_)).c_str(), long(M), long(K), worst);
    EXPECT_LE(worst, f16() ? 1e-2f : 1e-5f);
  }
}

TEST_P(CudaVocabOps, GatherRejectsBadArguments) {
  const Tensor x = act(*gpu_, random(4 * 16, -1.f, 1.f), 4, 16);
  LinearWeights w{weight(*gpu_, random(24 * 16, -1.f, 1.f), {24, 16}), Tensor{}};
  const Tensor t = ints(*gpu_, {0, 1, -1, 3}), o = gpu_->alloc({4}, DType::kF32);
  testing::expect_error([&] { gpu_->linear_log_softmax_gather(x, w, 25, t, o); },
                        {"expected vocab in [1, 24]", "got 25"});
  const Tensor t3 = ints(*gpu_, {0, 1, 2});
  testing::expect_error([&] { gpu_->linear_log_softmax_gather(x, w, 20, t3, o); }, {"expected targets int32 [4]"});
  const Tensor o_i32 = gpu_->alloc({4}, DType::kI32);
  testing::expect_error([&] { gpu_->linear_log_softmax_gather(x, w, 20, t, o_i32); }, {"expected out float32 [4]"});
}

// Both ops inside run_cached with CUDA graphs: the first call runs eagerly and captures, the later
// ones replay; a replay on the first call's inputs gives the same bits, new inputs the CPU's answer.
TEST_P(CudaVocabOps, InsideCudaGraphs) {
  CudaBackendOptions o;
  o.dtype = dt_;
  o.cuda_graphs = true;
  auto gpu = make_cuda_backend(o);
  const int64_t M = 150, V = 4233, N = 4240, K = 256;
  const int k = 10, blank = 0;
  const float scale = 3.f / std::sqrt(float(K));
  const std::vector<float> w = random(size_t(N * K), -scale, scale), b = random(size_t(N), -1.f, 1.f);
  struct Result {
    std::vector<int32_t> ids;
    std::vector<float> logp, blank, gathered;
  };
  const auto forward = [&](Backend& be, const LinearWeights& lw, const std::vector<float>& logits,
                           const std::vector<float>& x, const std::vector<int32_t>& targets) {
    be.reset_arena();
    const DType t = be.act_dtype();
    Tensor lg = be.alloc({M, N}, t), xs = be.alloc({M, K}, t), tg = be.alloc({M}, DType::kI32);
    be.copy_in(logits.data(), lg);
    be.copy_in(x.data(), xs);
    be.copy_in(targets.data(), tg);
    Tensor ids = be.alloc({M, k}, DType::kI32), logp = be.alloc({M, k}, DType::kF32), bl = be.alloc({M}, DType::kF32),
           gathered = be.alloc({M}, DType::kF32);
    be.run_cached("vocab ops", [&] {
      be.log_softmax_top_k(lg.col_slice(0, V), blank, ids, logp, bl);
      be.linear_log_softmax_gather(xs, lw, int(V), tg, gathered);
    });
    return Result{out<int32_t>(be, ids), out<float>(be, logp), out<float>(be, bl), out<float>(be, gathered)};
  };
  const LinearWeights wc{weight(*cpu_, w, {N, K}), weight(*cpu_, b, {N})};
  const LinearWeights wg{weight(*gpu, w, {N, K}), weight(*gpu, b, {N})};
  std::vector<Result> first;
  for (int call = 0; call < 3; ++call) {
    const std::vector<float> logits = random(size_t(M * N), -8.f, 8.f), x = random(size_t(M * K), -1.f, 1.f);
    std::vector<int32_t> targets(static_cast<size_t>(M));
    for (size_t i = 0; i < targets.size(); ++i) targets[i] = i % 9 == 4 ? -1 : int32_t((i * 131 + call) % V);
    const Result got = forward(*gpu, wg, logits, x, targets), want = forward(*cpu_, wc, logits, x, targets);
    float worst_top = 0.f, worst_gather = 0.f;
    for (size_t i = 0; i < want.logp.size(); ++i)
      worst_top = std::max(worst_top, std::fabs(got.logp[i] - want.logp[i]));
    for (size_t i = 0; i < want.gathered.size(); ++i)
      worst_gather = std::max(worst_gather, std::fabs(got.gathered[i] - want.gathered[i]));
    std::printf("  %-8s graphs call %d: top-k max diff %.2e, gather max diff %.2e\n",
                std::string(dtype_name(dt_)).c_str(), call, worst_top, worst_gather);
    EXPECT_LE(worst_top, 1e-5f) << "call " << call;
    EXPECT_LE(worst_gather, f16() ? 1e-2f : 1e-4f) << "call " << call;
    if (!f16()) EXPECT_EQ(got.ids, want.ids) << "call " << call;
    if (call == 0) {
      // Replay on the same inputs: the same bits as the eager first run.
      const Result again = forward(*gpu, wg, logits, x, targets);
      EXPECT_EQ(again.ids, got.ids);
      EXPECT_EQ(std::memcmp(again.logp.data(), got.logp.data(), got.logp.size() * 4), 0);
      EXPECT_EQ(std::memcmp(again.blank.data(), got.blank.data(), got.blank.size() * 4), 0);
      EXPECT_EQ(std::memcmp(again.gathered.data(), got.gathered.data(), got.gathered.size() * 4), 0);
    }
  }
}

}  // namespace
}  // namespace wenet_rt
