// Argument checks of the ops every backend implements alike, so that each reports a bad call the
// same way ("op: expected ..., got ..."). The dtype of activations is the backend's to check.
#pragma once

#include "backend/backend.h"

namespace wenet_rt {

inline void check_log_softmax_top_k(const Tensor& x, int blank, const Tensor& top_ids, const Tensor& top_logp,
                                    const Tensor& blank_logp) {
  const int64_t M = x.rows(), V = x.cols(), k = top_ids.cols();
  WENET_CHECK(top_ids.dtype == DType::kI32, "log_softmax_top_k: expected top_ids int32, got {}",
              dtype_name(top_ids.dtype));
  WENET_CHECK(top_logp.dtype == DType::kF32 && blank_logp.dtype == DType::kF32,
              "log_softmax_top_k: expected top_logp and blank_logp float32, got {} and {}", dtype_name(top_logp.dtype),
              dtype_name(blank_logp.dtype));
  WENET_CHECK(k >= 1 && k <= V, "log_softmax_top_k: expected k in [1, {}] (the row length), got {}", V, k);
  WENET_CHECK(top_ids.rows() == M && top_logp.rows() == M && top_logp.cols() == k,
              "log_softmax_top_k: expected top_ids and top_logp [{}, {}], got [{}, {}] and [{}, {}]", M, k,
              top_ids.rows(), k, top_logp.rows(), top_logp.cols());
  WENET_CHECK(blank_logp.numel() == M && (blank_logp.ld == 0 || blank_logp.ld == blank_logp.cols()),
              "log_softmax_top_k: expected blank_logp [{}] (contiguous), got {} values", M, blank_logp.numel());
  WENET_CHECK(blank >= 0 && blank < V, "log_softmax_top_k: expected blank in [0, {}), got {}", V, blank);
}

inline void check_linear_log_softmax_gather(const Tensor& x, const LinearWeights& w, int vocab, const Tensor& targets,
                                            const Tensor& out) {
  const int64_t M = x.rows(), K = x.cols();
  WENET_CHECK(w.w.rank == 2 && w.w.dim(1) == K && (w.w.ld == 0 || w.w.ld == K),
              "linear_log_softmax_gather: expected W [N, {}] (contiguous), got [{}, {}]", K, w.w.dim(0),
              w.w.rank > 1 ? w.w.dim(1) : 0);
  const int64_t N = w.w.dim(0);
  WENET_CHECK(vocab >= 1 && vocab <= N, "linear_log_softmax_gather: expected vocab in [1, {}] (W's rows), got {}", N,
              vocab);
  WENET_CHECK(!w.b.data || w.b.numel() == N, "linear_log_softmax_gather: expected bias [{}], got {} values", N,
              w.b.numel());
  WENET_CHECK(targets.dtype == DType::kI32 && targets.numel() == M && (targets.ld == 0 || targets.ld == targets.cols()),
              "linear_log_softmax_gather: expected targets int32 [{}] (contiguous), got {} [{} values]", M,
              dtype_name(targets.dtype), targets.numel());
  WENET_CHECK(out.dtype == DType::kF32 && out.numel() == M && (out.ld == 0 || out.ld == out.cols()),
              "linear_log_softmax_gather: expected out float32 [{}] (contiguous), got {} [{} values]", M,
              dtype_name(out.dtype), out.numel());
}

}  // namespace wenet_rt
