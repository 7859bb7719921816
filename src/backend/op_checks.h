// Argument checks of the ops every backend implements alike, so that each reports a bad call the
// same way ("op: expected ..., got ..."). The dtype of activations is the backend's to check.
#pragma once

#include "backend/backend.h"

namespace wenet_rt {

inline void check_i32_vector(const Tensor& t, int64_t n, const char* op, const char* what) {
  WENET_CHECK(t.data && t.dtype == DType::kI32 && t.numel() == n && (t.ld == 0 || t.ld == t.cols()),
              "{}: expected {} int32 [{}] (contiguous), got {} [{} values]", op, what, n, dtype_name(t.dtype),
              t.data ? t.numel() : 0);
}

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
                                            const Tensor& out, const Tensor* rows = nullptr) {
  const int64_t M = rows ? rows->numel() : x.rows(), K = x.cols();
  if (rows) check_i32_vector(*rows, M, "linear_log_softmax_gather", "rows");
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

// The per-item ring arguments of ring_write / ring_read (backend.h) for a batch of B items of C columns.
inline void check_ring(const char* op, int64_t B, int64_t C, const Tensor& slots, const Tensor& first, int ring_rows,
                       const Tensor& pool) {
  check_i32_vector(slots, B, op, "slots");
  check_i32_vector(first, B, op, "first");
  WENET_CHECK(ring_rows > 0, "{}: expected ring_rows > 0, got {}", op, ring_rows);
  WENET_CHECK(pool.rank == 2 && pool.rows() >= ring_rows && pool.rows() % ring_rows == 0 && pool.cols() == C,
              "{}: expected a pool [slots * {}, {}], got a rank-{} tensor [{} rows, {}]", op, ring_rows, C, pool.rank,
              pool.rows(), pool.cols());
}

inline void check_ring_write(const Tensor& x, const Tensor& lens, const Tensor& slots, const Tensor& first,
                             int ring_rows, const Tensor& pool) {
  WENET_CHECK(x.rank == 3, "ring_write: expected x [B, T, C], got rank {}", x.rank);
  check_i32_vector(lens, x.dim(0), "ring_write", "lens");
  check_ring("ring_write", x.dim(0), x.cols(), slots, first, ring_rows, pool);
  WENET_CHECK(x.dtype == pool.dtype, "ring_write: x is {}, the pool {}", dtype_name(x.dtype), dtype_name(pool.dtype));
}

inline void check_ring_read(const Tensor& pool, const Tensor& slots, const Tensor& first, int ring_rows,
                            const Tensor& fill, const Tensor& y) {
  WENET_CHECK(y.rank == 3, "ring_read: expected y [B, T, C], got rank {}", y.rank);
  check_ring("ring_read", y.dim(0), y.cols(), slots, first, ring_rows, pool);
  WENET_CHECK(fill.data && fill.numel() == y.cols() && (fill.ld == 0 || fill.ld == fill.cols()),
              "ring_read: expected fill [{}] (contiguous), got {} values", y.cols(), fill.data ? fill.numel() : 0);
  WENET_CHECK(y.dtype == pool.dtype && fill.dtype == pool.dtype, "ring_read: y ({}) and fill ({}) must be the pool's {}",
              dtype_name(y.dtype), dtype_name(fill.dtype), dtype_name(pool.dtype));
}

// attention() with keys in a ring pool (a.ring_rows > 0): the per-item fields and the pools' shapes.
inline void check_attention_ring(const AttentionArgs& a) {
  const int64_t Bk = a.key_lens.numel(), HD = a.q.cols();
  WENET_CHECK(a.ring_rows > 0, "attention: expected ring_rows > 0, got {}", a.ring_rows);
  check_i32_vector(a.key_lens, Bk, "attention", "key_lens");
  check_i32_vector(a.kv_slot, Bk, "attention", "kv_slot");
  check_i32_vector(a.key_start, Bk, "attention", "key_start");
  WENET_CHECK(a.k.rank == 2 && a.v.rank == 2 && a.k.rows() == a.v.rows() && a.k.rows() >= a.ring_rows &&
                  a.k.rows() % a.ring_rows == 0 && a.k.cols() == HD && a.v.cols() == HD,
              "attention: expected k and v pools [slots * {}, {}], got [{}, {}] and [{}, {}] (rank {} / {})",
              a.ring_rows, HD, a.k.rows(), a.k.cols(), a.v.rows(), a.v.cols(), a.k.rank, a.v.rank);
  WENET_CHECK(!a.causal, "attention: keys in a ring pool cannot be causal");
  WENET_CHECK(a.queries_per_kv >= 1 && a.q.rank == 3 && a.q.dim(0) == Bk * a.queries_per_kv,
              "attention: {} query batches for {} items x {} queries_per_kv", a.q.rank == 3 ? a.q.dim(0) : -1, Bk,
              a.queries_per_kv);
}

// attention() over the rows of a prefix trie (a.query_offsets set): the shapes of the fields.
inline void check_attention_trie(const AttentionArgs& a) {
  const int64_t Bk = a.key_lens.numel(), HD = a.q.cols();
  check_i32_vector(a.key_lens, Bk, "attention", "key_lens");
  check_i32_vector(a.query_offsets, Bk + 1, "attention", "query_offsets");
  WENET_CHECK(a.ring_rows == 0 && a.queries_per_kv == 1,
              "attention: query_offsets take neither ring_rows nor queries_per_kv, got {} and {}", a.ring_rows,
              a.queries_per_kv);
  WENET_CHECK(a.q.rank == 2 && a.out.rank == 2 && a.out.rows() == a.q.rows() && a.out.cols() == HD,
              "attention: with query_offsets, expected q and out [rows, {}], got rank {} [{}, {}] and rank {} [{}, {}]",
              HD, a.q.rank, a.q.rows(), HD, a.out.rank, a.out.rows(), a.out.cols());
  if (a.key_rows.data) {
    WENET_CHECK(a.key_rows.dtype == DType::kI32 && a.key_rows.rank == 2 && a.key_rows.dim(0) == Bk &&
                    (a.key_rows.ld == 0 || a.key_rows.ld == a.key_rows.cols()),
                "attention: expected key_rows int32 [{}, Tk] (contiguous), got {} rank {}", Bk,
                dtype_name(a.key_rows.dtype), a.key_rows.rank);
    WENET_CHECK(a.k.rank == 2 && a.v.rank == 2 && a.k.rows() == a.v.rows(),
                "attention: with key_rows, expected k and v [rows, {}], got rank {} [{} rows] and rank {} [{} rows]",
                HD, a.k.rank, a.k.rows(), a.v.rank, a.v.rows());
  } else {
    WENET_CHECK(a.k.rank == 3 && a.k.dim(0) == Bk && a.v.rank == 3 && a.v.dim(0) == Bk && a.v.dim(1) == a.k.dim(1),
                "attention: expected k and v [{}, Tk, {}] (one item per query range)", Bk, HD);
  }
}

// conv_module()'s streaming fields (left context, zero_beyond_lens) for x [B, T, 2D], kernel K.
inline void check_conv_module_streaming(const ConvModuleArgs& a, int64_t B, int64_t K, int64_t D) {
  if (a.left.data) {
    WENET_CHECK(a.causal, "conv_module: a left context needs a causal conv");
    WENET_CHECK(a.left.rank == 3 && a.left.dim(0) == B && a.left.dim(1) == K - 1 && a.left.cols() == 2 * D &&
                    a.left.dtype == a.x.dtype,
                "conv_module: expected left [{}, {}, {}] of x's dtype, got a rank-{} {} tensor [{}, ..., {}]", B, K - 1,
                2 * D, a.left.rank, dtype_name(a.left.dtype), a.left.dim(0), a.left.cols());
  }
  if (a.zero_beyond_lens) check_i32_vector(a.lens, B, "conv_module", "lens");
}

}  // namespace wenet_rt
