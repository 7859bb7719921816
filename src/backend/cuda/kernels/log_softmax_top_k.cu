// The CTC head for the prefix search: per row, the k best log-softmax values and their ids, and
// the blank's log-prob, without writing the [rows, V] log-softmax. One block per row: the
// log-sum-exp of log_softmax.cu (row_log_sum_exp.cuh, same block size, so the values are the
// ones log_softmax writes, bit for bit), then k rounds of a block-wide argmax in the order
// (value desc, id asc).
//
// No sort. Thread t owns columns t, t + 256, ... and offers one candidate, its best column not yet
// taken (a thread's columns win in its own order). A round is a warp max / min (__reduce_*_sync on
// an order-preserving integer image of the value, then the lowest id among equal values), one
// barrier and the same over the 8 warps' winners; only the winner's thread rescans its columns.
// The row's keys stay in registers for rows of up to 8192 columns (a taken column's key becomes
// 0, below every value); longer rows are rescanned from memory (L1 / L2) for the best column
// strictly after the thread's last winner, with no state but that winner.
#include <climits>
#include <type_traits>

#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/kernels.h"
#include "backend/cuda/kernels/row_log_sum_exp.cuh"

namespace wenet_rt::cuda_kernels {
namespace {

constexpr int kThreads = kRowLogSumExpThreads, kWarps = kThreads / 32;
constexpr unsigned kFull = 0xffffffffu;

// An unsigned image of v ordered as the floats are, with NaN ranked as -inf (a total order, so k
// rounds pick k distinct ids; an all-NaN row gives ids 0..k-1 as the CPU's insertion does) and
// -0 as +0 (they compare equal). Every value maps above 0, which marks "none" / "taken".
__device__ __forceinline__ uint32_t order_key(float v) {
  if (isnan(v)) v = -INFINITY;
  if (v == 0.f) v = 0.f;
  const uint32_t b = __float_as_uint(v);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

// R > 0: this thread's keys in registers (R >= its column count); R == 0: recomputed from x.
template <typename T, int R>
__global__ void __launch_bounds__(kThreads) log_softmax_top_k_kernel(const T* x, int64_t ldx, int cols, int k,
                                                                     int blank, int32_t* ids, int64_t ld_ids,
                                                                     float* vals, int64_t ld_vals, float* blank_logp) {
  pdl_wait_and_trigger();
  const int64_t row = blockIdx.x;
  const T* in = x + row * ldx;
  const int tid = int(threadIdx.x), warp = tid / 32, lane = tid % 32;
  const float lse = block_row_log_sum_exp<kThreads>(in, cols);
  if (tid == 0) blank_logp[row] = to_float(in[blank]) - lse;
  // The value log_softmax writes for column c.
  const auto value = [&](int c) { return to_float(in[c]) - lse; };

  uint32_t keys[R > 0 ? R : 1];
  if constexpr (R > 0) {
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int c = tid + r * kThreads;
      keys[r] = c < cols ? order_key(value(c)) : 0u;
    }
  }
  // This thread's candidate (key 0: none). Columns are scanned in increasing order, so a strict
  // '>' keeps the lowest id among equal keys.
  uint32_t cand_key = 0;
  int cand_id = INT_MAX;
  const auto next_candidate = [&]() {
    const uint32_t prev_key = cand_key;
    const int prev_id = cand_id;
    cand_key = 0;
    cand_id = INT_MAX;
    if constexpr (R > 0) {
#pragma unroll
      for (int r = 0; r < R; ++r)
        if (keys[r] > cand_key) cand_key = keys[r], cand_id = tid + r * kThreads;
    } else {  // the best column strictly after the last winner (prev; none: (~0, -1))
      for (int c = tid; c < cols; c += kThreads) {
        const uint32_t key = order_key(value(c));
        if ((key < prev_key || (key == prev_key && c > prev_id)) && key > cand_key) cand_key = key, cand_id = c;
      }
    }
  };
  if constexpr (R == 0) cand_key = ~0u, cand_id = -1;  // everything comes after (max, -1)
  next_candidate();

  __shared__ uint32_t win_key[2][kWarps];  // double-buffered by round parity: one barrier a round
  __shared__ int win_id[2][kWarps];
  for (int j = 0; j < k; ++j) {
    uint32_t best_key = __reduce_max_sync(kFull, cand_key);
    int best_id = __reduce_min_sync(kFull, cand_key == best_key ? cand_id : INT_MAX);
    if (lane == 0) win_key[j & 1][warp] = best_key, win_id[j & 1][warp] = best_id;
    __syncthreads();
    const uint32_t wk = lane < kWarps ? win_key[j & 1][lane] : 0u;
    const int wi = lane < kWarps ? win_id[j & 1][lane] : INT_MAX;
    best_key = __reduce_max_sync(kFull, wk);
    best_id = __reduce_min_sync(kFull, wk == best_key ? wi : INT_MAX);
    if (best_id == INT_MAX) {  // no column left: cannot happen for k <= cols
      if (tid == 0) ids[row * ld_ids + j] = -1, vals[row * ld_vals + j] = -INFINITY;
      continue;
    }
    if (best_id == cand_id) {
      ids[row * ld_ids + j] = best_id;
      vals[row * ld_vals + j] = value(best_id);
      if constexpr (R > 0) {
#pragma unroll
        for (int r = 0; r < R; ++r)
          if (tid + r * kThreads == best_id) keys[r] = 0u;  // taken
      }
      next_candidate();
    }
  }
}

template <typename T, int R>
void launch(const void* x, int64_t ldx, int64_t rows, int64_t cols, int k, int blank, int32_t* ids, int64_t ld_ids,
            float* vals, int64_t ld_vals, float* blank_logp, KernelStream stream) {
  launch_kernel(stream, log_softmax_top_k_kernel<T, R>, unsigned(rows), kThreads, 0, static_cast<const T*>(x), ldx,
                int(cols), k, blank, ids, ld_ids, vals, ld_vals, blank_logp);
}

}  // namespace

void log_softmax_top_k(const void* x, int64_t ldx, int64_t rows, int64_t cols, int k, int blank, int32_t* ids,
                       int64_t ld_ids, float* vals, int64_t ld_vals, float* blank_logp, bool f16, KernelStream stream) {
  if (rows == 0) return;
  const int64_t per_thread = (cols + kThreads - 1) / kThreads;
  dispatch_type(f16, [&](auto t) {
    using E = decltype(t);
    const auto go = [&](auto r) {
      launch<E, decltype(r)::value>(x, ldx, rows, cols, k, blank, ids, ld_ids, vals, ld_vals, blank_logp, stream);
    };
    using std::integral_constant;
    if (per_thread <= 2) go(integral_constant<int, 2>{});
    else if (per_thread <= 4) go(integral_constant<int, 4>{});
    else if (per_thread <= 8) go(integral_constant<int, 8>{});
    else if (per_thread <= 12) go(integral_constant<int, 12>{});
    else if (per_thread <= 16) go(integral_constant<int, 16>{});
    else if (per_thread <= 20) go(integral_constant<int, 20>{});
    else if (per_thread <= 24) go(integral_constant<int, 24>{});
    else if (per_thread <= 32) go(integral_constant<int, 32>{});
    else go(integral_constant<int, 0>{});  // over 8192 columns: recompute in each rescan
  });
}

}  // namespace wenet_rt::cuda_kernels
