// The CPU backend's vocabulary ops against the ops they replace: log_softmax_top_k against
// log_softmax + an explicit selection (bit for bit: same values, same ids, ties by lower id), and
// linear_log_softmax_gather against linear + log_softmax + reading the target (bit for bit when
// the rows fit one chunk of the op's GEMM; across chunks the GEMM runs on other shapes, which
// BLAS may sum in another order), and the errors their checks raise.
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
#include "common/expect_error.h"

namespace wenet_rt {
namespace {

using testing::expect_error;

class CpuVocabOps : public ::testing::Test {
 protected:
  Tensor upload(const std::vector<float>& v, const Shape& s) {
    HostTensor h(DType::kF32, s);
    std::copy(v.begin(), v.end(), h.data<float>());
    return be_->upload(h, DType::kF32);
  }
  Tensor tensor(const std::vector<float>& v, int64_t rows, int64_t cols) {
    Tensor t = be_->alloc({rows, cols}, DType::kF32);
    be_->copy_in(v.data(), t);
    return t;
  }
  Tensor ints(const std::vector<int32_t>& v) {
    Tensor t = be_->alloc({int64_t(v.size())}, DType::kI32);
    be_->copy_in(v.data(), t);
    return t;
  }
  std::vector<float> random(size_t n, float lo, float hi) {
    std::uniform_real_distribution<float> u(lo, hi);
    std::vector<float> v(n);
    for (float& x : v) x = u(rng_);
    return v;
  }
  template <typename T>
  std::vector<T> out(const Tensor& t) {
    std::vector<T> v(size_t(t.numel()));
    be_->copy_out(t, v.data());
    return v;
  }

  struct TopK {
    std::vector<int32_t> ids;
    std::vector<float> logp, blank;
  };
  // The op under test, on x (possibly strided), into fresh outputs.
  TopK top_k(const Tensor& x, int k, int blank) {
    const int64_t M = x.rows();
    Tensor ids = be_->alloc({M, k}, DType::kI32), logp = be_->alloc({M, k}, DType::kF32),
           bl = be_->alloc({M}, DType::kF32);
    be_->log_softmax_top_k(x, blank, ids, logp, bl);
    return {out<int32_t>(ids), out<float>(logp), out<float>(bl)};
  }
  // log_softmax, then the k best of each row by a stable sort (value desc, ties by lower id).
  TopK reference_top_k(const Tensor& x, int k, int blank) {
    const int64_t M = x.rows(), V = x.cols();
    Tensor y = be_->alloc({M, V}, DType::kF32);
    be_->log_softmax(x, y);
    const std::vector<float> lp = out<float>(y);
    TopK r;
    for (int64_t m = 0; m < M; ++m) {
      const float* row = lp.data() + m * V;
      std::vector<int32_t> order(static_cast<size_t>(V));
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return row[a] > row[b]; });
      for (int j = 0; j < k; ++j) {
        r.ids.push_back(order[size_t(j)]);
        r.logp.push_back(row[order[size_t(j)]]);
      }
      r.blank.push_back(row[blank]);
    }
    return r;
  }
  static void expect_same_bits(const std::vector<float>& a, const std::vector<float>& b, const std::string& what) {
    ASSERT_EQ(a.size(), b.size()) << what;
    for (size_t i = 0; i < a.size(); ++i) {
      uint32_t x, y;
      std::memcpy(&x, &a[i], 4);
      std::memcpy(&y, &b[i], 4);
      ASSERT_EQ(x, y) << what << " at " << i << ": " << a[i] << " vs " << b[i];
    }
  }
  void expect_top_k_matches(const Tensor& x, int k, int blank, const std::string& what) {
    SCOPED_TRACE(what);
    const TopK got = top_k(x, k, blank), want = reference_top_k(x, k, blank);
    EXPECT_EQ(got.ids, want.ids);
    expect_same_bits(got.logp, want.logp, "top_logp");
    expect_same_bits(got.blank, want.blank, "blank_logp");
  }

  std::mt19937 rng_{20250101};
  std::unique_ptr<Backend> be_ = make_cpu_backend();
};

TEST_F(CpuVocabOps, TopKEqualsLogSoftmaxThenSelect) {
  struct Case {
    int64_t M, V;
    int k, blank;
  };
  for (const Case& c : {Case{5, 1, 1, 0}, Case{7, 50, 1, 0}, Case{7, 50, 10, 49}, Case{4, 50, 50, 17},
                        Case{3, 4233, 10, 0}, Case{2, 4233, 1, 4232}, Case{2, 4233, 4233, 100}, Case{64, 300, 16, 3}}) {
    const Tensor x = tensor(random(size_t(c.M * c.V), -8.f, 8.f), c.M, c.V);
    expect_top_k_matches(x, c.k, c.blank,
                         "M " + std::to_string(c.M) + " V " + std::to_string(c.V) + " k " + std::to_string(c.k));
  }
}

TEST_F(CpuVocabOps, TopKTiesKeepTheLowerIdFirst) {
  const int64_t M = 6, V = 40;
  std::vector<float> v(size_t(M * V));
  std::uniform_int_distribution<int> level(0, 3);
  for (float& e : v) e = float(level(rng_));  // four distinct values: ties everywhere
  std::fill(v.begin() + 5 * V, v.end(), 0.25f);  // a row of equal values
  const Tensor x = tensor(v, M, V);
  expect_top_k_matches(x, 12, 7, "ties");
  const TopK got = top_k(x, 12, 7);
  for (int j = 0; j < 12; ++j) EXPECT_EQ(got.ids[size_t(5 * 12 + j)], j) << "equal row: ids in order";
  // The winners of row 0 are the lowest ids holding the row's maximum.
  const float mx = *std::max_element(v.begin(), v.begin() + V);
  int32_t first = 0;
  while (v[size_t(first)] != mx) ++first;
  EXPECT_EQ(got.ids[0], first);
}

TEST_F(CpuVocabOps, TopKStridedInputAndOutputs) {
  const int64_t M = 9, V = 77, k = 5;
  const Tensor wide = tensor(random(size_t(M * (V + 20)), -5.f, 5.f), M, V + 20);
  const Tensor x = wide.col_slice(13, V);
  expect_top_k_matches(x, int(k), 76, "strided x");
  // Outputs that are column slices of wider tensors: only their columns are written.
  Tensor ids_wide = be_->alloc({M, 3 * k}, DType::kI32), logp_wide = be_->alloc({M, 2 * k}, DType::kF32);
  std::vector<int32_t> ids_init(size_t(M * 3 * k), -7);
  std::vector<float> logp_init(size_t(M * 2 * k), 42.f);
  be_->copy_in(ids_init.data(), ids_wide);
  be_->copy_in(logp_init.data(), logp_wide);
  Tensor bl = be_->alloc({M}, DType::kF32);
  be_->log_softmax_top_k(x, 0, ids_wide.col_slice(k, k), logp_wide.col_slice(k, k), bl);
  const TopK want = reference_top_k(x, int(k), 0);
  const auto ids = out<int32_t>(ids_wide);
  const auto logp = out<float>(logp_wide);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t j = 0; j < k; ++j) {
      EXPECT_EQ(ids[size_t(m * 3 * k + j)], -7);
      EXPECT_EQ(ids[size_t(m * 3 * k + k + j)], want.ids[size_t(m * k + j)]);
      EXPECT_EQ(ids[size_t(m * 3 * k + 2 * k + j)], -7);
      EXPECT_EQ(logp[size_t(m * 2 * k + j)], 42.f);
      EXPECT_EQ(logp[size_t(m * 2 * k + k + j)], want.logp[size_t(m * k + j)]);
    }
}

TEST_F(CpuVocabOps, TopKRejectsBadArguments) {
  const Tensor x = tensor(random(4 * 10, -1.f, 1.f), 4, 10);
  Tensor ids = be_->alloc({4, 3}, DType::kI32), logp = be_->alloc({4, 3}, DType::kF32),
         bl = be_->alloc({4}, DType::kF32);
  Tensor f32_ids = be_->alloc({4, 3}, DType::kF32), i32_x = be_->alloc({4, 10}, DType::kI32);
  expect_error([&] { be_->log_softmax_top_k(i32_x, 0, ids, logp, bl); }, {"log_softmax_top_k", "x float32", "int32"});
  expect_error([&] { be_->log_softmax_top_k(x, 0, f32_ids, logp, bl); }, {"top_ids int32", "float32"});
  Tensor i32_logp = be_->alloc({4, 3}, DType::kI32), i32_bl = be_->alloc({4}, DType::kI32);
  expect_error([&] { be_->log_softmax_top_k(x, 0, ids, i32_logp, bl); },
               {"expected top_logp and blank_logp float32", "got int32 and float32"});
  expect_error([&] { be_->log_softmax_top_k(x, 0, ids, logp, i32_bl); },
               {"expected top_logp and blank_logp float32", "got float32 and int32"});
  Tensor ids11 = be_->alloc({4, 11}, DType::kI32), logp11 = be_->alloc({4, 11}, DType::kF32);
  expect_error([&] { be_->log_softmax_top_k(x, 0, ids11, logp11, bl); }, {"expected k in [1, 10]", "got 11"});
  Tensor ids0 = be_->alloc({4, 0}, DType::kI32), logp0 = be_->alloc({4, 0}, DType::kF32);
  expect_error([&] { be_->log_softmax_top_k(x, 0, ids0, logp0, bl); }, {"expected k in [1, 10]", "got 0"});
  Tensor logp_rows = be_->alloc({5, 3}, DType::kF32), logp_cols = be_->alloc({4, 2}, DType::kF32);
  expect_error([&] { be_->log_softmax_top_k(x, 0, ids, logp_rows, bl); }, {"expected top_ids and top_logp [4, 3]"});
  expect_error([&] { be_->log_softmax_top_k(x, 0, ids, logp_cols, bl); }, {"expected top_ids and top_logp [4, 3]"});
  Tensor bl5 = be_->alloc({5}, DType::kF32);
  expect_error([&] { be_->log_softmax_top_k(x, 0, ids, logp, bl5); }, {"expected blank_logp [4]", "got 5"});
  expect_error([&] { be_->log_softmax_top_k(x, 10, ids, logp, bl); }, {"expected blank in [0, 10)", "got 10"});
  expect_error([&] { be_->log_softmax_top_k(x, -1, ids, logp, bl); }, {"expected blank in [0, 10)", "got -1"});
}

// --- linear_log_softmax_gather ------------------------------------------------------------------

class CpuGather : public CpuVocabOps {
 protected:
  // W [N, K] and bias [N] with rows >= vocab set to large values: if the op read them, the
  // softmax would be dominated by them.
  LinearWeights padded_weights(int64_t vocab, int64_t N, int64_t K) {
    std::vector<float> w = random(size_t(N * K), -3.f / std::sqrt(float(K)), 3.f / std::sqrt(float(K)));
    std::vector<float> b = random(size_t(N), -1.f, 1.f);
    for (int64_t n = vocab; n < N; ++n) {
      std::fill(w.begin() + n * K, w.begin() + (n + 1) * K, 0.5f);
      b[size_t(n)] = 50.f;
    }
    return {upload(w, {N, K}), upload(b, {N})};
  }
  std::vector<int32_t> random_targets(int64_t M, int vocab) {
    std::uniform_int_distribution<int32_t> u(0, vocab - 1);
    std::vector<int32_t> t(static_cast<size_t>(M));
    for (size_t i = 0; i < t.size(); ++i) t[i] = i % 7 == 3 ? -1 : u(rng_);
    return t;
  }
  std::vector<float> gather(const Tensor& x, const LinearWeights& w, int vocab, const std::vector<int32_t>& targets) {
    Tensor o = be_->alloc({int64_t(targets.size())}, DType::kF32);
    be_->linear_log_softmax_gather(x, w, vocab, ints(targets), o);
    return out<float>(o);
  }
  // linear() over all N outputs, log_softmax() over the first vocab, the target's entry.
  std::vector<float> reference(const Tensor& x, const LinearWeights& w, int vocab,
                               const std::vector<int32_t>& targets) {
    const int64_t M = x.rows(), N = w.w.dim(0);
    Tensor logits = be_->alloc({M, N}, DType::kF32), lp = be_->alloc({M, vocab}, DType::kF32);
    be_->linear(x, w, Activation::kNone, nullptr, logits);
    be_->log_softmax(logits.col_slice(0, vocab), lp);
    const std::vector<float> all = out<float>(lp);
    std::vector<float> r(static_cast<size_t>(M));
    for (int64_t m = 0; m < M; ++m) {
      const int32_t t = targets[size_t(m)];
      r[size_t(m)] = t < 0 ? 0.f : all[size_t(m * vocab + t)];
    }
    return r;
  }
};

TEST_F(CpuGather, EqualsLinearLogSoftmaxGather) {
  struct Case {
    int64_t M, K, N;
    int vocab;
    bool bias;
  };
  for (const Case& c : {Case{1, 64, 56, 50, true}, Case{37, 256, 4240, 4233, true}, Case{256, 144, 4240, 4233, true},
                        Case{5, 40, 8, 1, true}, Case{19, 32, 24, 24, false}, Case{64, 512, 104, 100, true}}) {
    const std::string what = "M " + std::to_string(c.M) + " K " + std::to_string(c.K) + " vocab " +
                             std::to_string(c.vocab) + " of " + std::to_string(c.N);
    SCOPED_TRACE(what);
    LinearWeights w = padded_weights(c.vocab, c.N, c.K);
    if (!c.bias) w.b = Tensor{};
    const Tensor x = tensor(random(size_t(c.M * c.K), -1.f, 1.f), c.M, c.K);
    const std::vector<int32_t> t = random_targets(c.M, c.vocab);
    const std::vector<float> got = gather(x, w, c.vocab, t), want = reference(x, w, c.vocab, t);
    expect_same_bits(got, want, what);  // one chunk: the same GEMM call as linear()
    for (size_t m = 0; m < t.size(); ++m) {
      if (t[m] < 0) EXPECT_EQ(got[m], 0.f);
      else EXPECT_LE(got[m], 0.f);
    }
  }
}

TEST_F(CpuGather, ManyChunksAndStridedRows) {
  const int64_t M = 600, K = 96, N = 4240;  // three chunks of the op's GEMM: 256 + 256 + 88 rows
  const int vocab = 4233;
  const LinearWeights w = padded_weights(vocab, N, K);
  const Tensor wide = tensor(random(size_t(M * 3 * K), -1.f, 1.f), M, 3 * K);
  const Tensor x = wide.col_slice(K + 5, K);
  const std::vector<int32_t> t = random_targets(M, vocab);
  const std::vector<float> got = gather(x, w, vocab, t), want = reference(x, w, vocab, t);
  float worst = 0.f;
  for (size_t m = 0; m < t.size(); ++m) worst = std::max(worst, std::fabs(got[m] - want[m]));
  std::printf("  chunked vs one GEMM: max diff %.2e\n", worst);
  EXPECT_LE(worst, 1e-5f) << "chunked GEMM vs one GEMM";
  // Each chunk on its own is bit-exact: rows 256 .. 511 as a separate problem.
  Tensor mid = x;
  mid.data = x.ptr<float>() + 256 * x.row_stride();
  mid.dims[0] = 256;
  const std::vector<int32_t> tm(t.begin() + 256, t.begin() + 512);
  expect_same_bits(gather(mid, w, vocab, tm), reference(mid, w, vocab, tm), "one chunk, strided x");
}

// A prefix trie's scores: entry m scores row rows[m] of x (rows shared by several entries, in any
// order), exactly as the op scores those rows laid out one per entry.
TEST_F(CpuGather, RowsPickTheScoredRowOfX) {
  const int64_t X = 40, M = 300, K = 64, N = 56;  // two chunks of entries over 40 distinct rows
  const int vocab = 50;
  const LinearWeights w = padded_weights(vocab, N, K);
  const std::vector<float> xs = random(size_t(X * K), -1.f, 1.f);
  const Tensor x = tensor(xs, X, K);
  std::uniform_int_distribution<int32_t> pick(0, int32_t(X) - 1);
  std::vector<int32_t> rows(static_cast<size_t>(M));
  for (int32_t& r : rows) r = pick(rng_);
  std::vector<int32_t> t = random_targets(M, vocab);
  rows[3] = 1000;  // an unscored entry (target -1): its row is never read
  std::vector<float> laid_out(size_t(M * K));
  for (int64_t m = 0; m < M; ++m)
    if (t[size_t(m)] >= 0)
      std::copy_n(xs.begin() + rows[size_t(m)] * K, K, laid_out.begin() + m * K);
  Tensor o = be_->alloc({M}, DType::kF32);
  const Tensor r = ints(rows);
  be_->linear_log_softmax_gather(x, w, vocab, ints(t), o, &r);
  const std::vector<float> got = out<float>(o), want = gather(tensor(laid_out, M, K), w, vocab, t);
  expect_same_bits(got, want, "rows vs rows laid out");
  t[3] = 7;  // now scored: its row must be one of x's
  expect_error([&] { be_->linear_log_softmax_gather(x, w, vocab, ints(t), o, &r); },
               {"entry 3 scores row 1000, expected [0, 40)"});
  const Tensor short_rows = ints({0, 1});
  expect_error([&] { be_->linear_log_softmax_gather(x, w, vocab, ints(t), o, &short_rows); },
               {"expected targets int32 [2]", "300 values"});  // one target per entry of rows
}

TEST_F(CpuGather, RejectsBadArguments) {
  const int64_t M = 4, K = 16, N = 24;
  const LinearWeights w = padded_weights(20, N, K);
  const Tensor x = tensor(random(size_t(M * K), -1.f, 1.f), M, K);
  const Tensor t = ints({0, 1, -1, 19}), o = be_->alloc({M}, DType::kF32);
  be_->linear_log_softmax_gather(x, w, 20, t, o);  // valid
  Tensor i32_x = be_->alloc({M, K}, DType::kI32);
  expect_error([&] { be_->linear_log_softmax_gather(i32_x, w, 20, t, o); },
               {"linear_log_softmax_gather", "expected x, W and bias float32"});
  const Tensor x8 = tensor(random(size_t(M * 8), -1.f, 1.f), M, 8);
  expect_error([&] { be_->linear_log_softmax_gather(x8, w, 20, t, o); }, {"expected W [N, 8]", "got [24, 16]"});
  expect_error([&] { be_->linear_log_softmax_gather(x, w, 25, t, o); }, {"expected vocab in [1, 24]", "got 25"});
  expect_error([&] { be_->linear_log_softmax_gather(x, w, 0, t, o); }, {"expected vocab in [1, 24]", "got 0"});
  LinearWeights short_bias = w;
  short_bias.b = upload(std::vector<float>(20, 0.f), {20});
  expect_error([&] { be_->linear_log_softmax_gather(x, short_bias, 20, t, o); }, {"expected bias [24]", "got 20"});
  const Tensor t3 = ints({0, 1, 2});
  expect_error([&] { be_->linear_log_softmax_gather(x, w, 20, t3, o); }, {"expected targets int32 [4]", "3 values"});
  const Tensor f32_t = be_->alloc({M}, DType::kF32);
  expect_error([&] { be_->linear_log_softmax_gather(x, w, 20, f32_t, o); }, {"expected targets int32 [4]", "float32"});
  const Tensor o_i32 = be_->alloc({M}, DType::kI32), o5 = be_->alloc({5}, DType::kF32);
  expect_error([&] { be_->linear_log_softmax_gather(x, w, 20, t, o_i32); }, {"expected out float32 [4]", "int32"});
  expect_error([&] { be_->linear_log_softmax_gather(x, w, 20, t, o5); }, {"expected out float32 [4]", "5 values"});
  expect_error([&] { be_->linear_log_softmax_gather(x, w, 20, ints({0, 20, 1, 2}), o); },
               {"expected targets in [0, 20) or -1", "got 20 at row 1"});
  expect_error([&] { be_->linear_log_softmax_gather(x, w, 20, ints({0, 1, 2, -2}), o); },
               {"expected targets in [0, 20) or -1", "got -2 at row 3"});
}

}  // namespace
}  // namespace wenet_rt
