// The vocabulary ops: log-softmax, the CTC head's top-k (never writing [M, V]), and the rescoring
// decoder's projection + log-softmax + gather (logits only a chunk of rows at a time).
#include <algorithm>

#include "backend/cpu/cpu_backend.h"
#include "backend/op_checks.h"

namespace wenet_rt::cpu {

void CpuBackend::log_softmax(const Tensor& x, const Tensor& y) {
  Scope s(this, "log_softmax");
  const int64_t M = x.rows(), N = x.cols();
  WENET_CHECK(x.dtype == DType::kF32 && y.dtype == DType::kF32 && y.rows() == M && y.cols() == N,
              "log_softmax: expected float32 x and y of the same shape");
  constexpr int64_t kRows = 8;
  pool_.run((M + kRows - 1) / kRows, [&](int64_t task, int) {
    for (int64_t m = task * kRows; m < std::min(M, (task + 1) * kRows); ++m) {
      const float* in = x.ptr<float>() + m * x.row_stride();
      kt_.sub_const(in, kt_.log_sum_exp(in, N), y.ptr<float>() + m * y.row_stride(), N);
    }
  });
}

void CpuBackend::log_softmax_top_k(const Tensor& x, int blank, const Tensor& top_ids, const Tensor& top_logp,
                                   const Tensor& blank_logp) {
  Scope s(this, "log_softmax_top_k");
  const int64_t M = x.rows(), V = x.cols(), k = top_ids.cols();
  WENET_CHECK(x.dtype == DType::kF32, "log_softmax_top_k: expected x float32, got {}", dtype_name(x.dtype));
  check_log_softmax_top_k(x, blank, top_ids, top_logp, blank_logp);
  constexpr int64_t kRows = 8;
  pool_.run((M + kRows - 1) / kRows, [&](int64_t task, int) {
    for (int64_t m = task * kRows; m < std::min(M, (task + 1) * kRows); ++m) {
      const float* in = x.ptr<float>() + m * x.row_stride();
      const float lse = kt_.log_sum_exp(in, V);
      // The selection of ctc_top_k (decode/ctc_search.h) over the values log_softmax writes:
      // insertion into a sorted list, ties keeping the lower id first.
      int32_t* ids = top_ids.ptr<int32_t>() + m * top_ids.row_stride();
      float* vals = top_logp.ptr<float>() + m * top_logp.row_stride();
      const auto insert = [&](int64_t n, int32_t v, float p) {
        int64_t i = std::min(n, k - 1);
        while (i > 0 && p > vals[i - 1]) {
          vals[i] = vals[i - 1];
          ids[i] = ids[i - 1];
          --i;
        }
        vals[i] = p;
        ids[i] = v;
      };
      for (int64_t v = 0; v < k; ++v) insert(v, int32_t(v), in[v] - lse);
      float threshold = vals[k - 1];
      for (int64_t v = k; v < V; ++v) {
        const float p = in[v] - lse;
        if (p > threshold) {
          insert(k, int32_t(v), p);
          threshold = vals[k - 1];
        }
      }
      blank_logp.ptr<float>()[m] = in[blank] - lse;
    }
  });
}

void CpuBackend::linear_log_softmax_gather(const Tensor& x, const LinearWeights& w, int vocab, const Tensor& targets,
                                           const Tensor& out, const Tensor* rows) {
  const int64_t M = rows ? rows->numel() : x.rows(), K = x.cols();
  WENET_CHECK(x.dtype == DType::kF32 && w.w.dtype == DType::kF32 && (!w.b.data || w.b.dtype == DType::kF32),
              "linear_log_softmax_gather: expected x, W and bias float32, got {}, {} and {}", dtype_name(x.dtype),
              dtype_name(w.w.dtype), w.b.data ? dtype_name(w.b.dtype) : "none");
  check_linear_log_softmax_gather(x, w, vocab, targets, out, rows);
  const int64_t N = w.w.dim(0);
  const int32_t* tgt = targets.ptr<int32_t>();
  const int32_t* row_of = rows ? rows->ptr<int32_t>() : nullptr;
  for (int64_t m = 0; m < M; ++m) {
    WENET_CHECK(tgt[m] >= -1 && tgt[m] < vocab,
                "linear_log_softmax_gather: expected targets in [0, {}) or -1, got {} at row {}", vocab, tgt[m], m);
    WENET_CHECK(!row_of || tgt[m] < 0 || (row_of[m] >= 0 && row_of[m] < x.rows()),
                "linear_log_softmax_gather: entry {} scores row {}, expected [0, {})", m, row_of ? row_of[m] : 0,
                x.rows());
  }
  // linear() + the log-sum-exp of log_softmax(), a chunk of rows at a time (logits of all N
  // outputs, as linear() writes them; the softmax reads the first `vocab`). With `rows`, the
  // chunk's rows of x are gathered first (unscored entries read row 0: any row will do).
  constexpr int64_t kChunkRows = 256;
  float* logits = scratch(std::min(M, kChunkRows) * N);
  float* picked = row_of ? scratch(std::min(M, kChunkRows) * K) : nullptr;
  for (int64_t m0 = 0; m0 < M; m0 += kChunkRows) {
    const int64_t n = std::min(kChunkRows, M - m0);
    Tensor xc = x;
    xc.data = x.ptr<float>() + m0 * x.row_stride();
    xc.rank = 2;
    xc.dims = {n, K, 0, 0};
    xc.ld = x.row_stride();
    if (picked) {
      for (int64_t r = 0; r < n; ++r)
        std::copy_n(x.ptr<float>() + (tgt[m0 + r] < 0 ? 0 : row_of[m0 + r]) * x.row_stride(), K, picked + r * K);
      xc = make_view(picked, {n, K}, DType::kF32);
    }
    linear(xc, w, Activation::kNone, nullptr, make_view(logits, {n, N}, DType::kF32));
    Scope s(this, "log_softmax_gather");
    pool_.run(n, [&](int64_t r, int) {
      const int32_t t = tgt[m0 + r];
      const float* row = logits + r * N;
      out.ptr<float>()[m0 + r] = t < 0 ? 0.f : row[t] - kt_.log_sum_exp(row, vocab);
    });
  }
}

}  // namespace wenet_rt::cpu
