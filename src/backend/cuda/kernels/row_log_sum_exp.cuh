// The log-sum-exp of one row by one block: a single online (max, sum-exp) pass in FP32, merged
// across the warp by shuffles and across the warps by thread 0, in a fixed order. Every kernel that
// needs a row's log-softmax normalizer uses this one function (log_softmax.cu,
// log_softmax_top_k.cu, the fallback of linear_log_softmax_gather.cu), so that their values agree
// bit for bit: the arithmetic is written with explicit roundings (fmaf / __fmul_rn), which the
// compiler may not contract differently in different kernels.
#pragma once

#include <cuda_runtime.h>

#include "backend/cuda/kernels/common.cuh"

namespace wenet_rt::cuda_kernels {

// The block size of every kernel that calls block_row_log_sum_exp (the reduction order, and so
// the result's last bits, depend on it).
constexpr int kRowLogSumExpThreads = 256;

// Merges (m, s) into (m0, s0) where s is a sum of exp(x - m).
__device__ __forceinline__ void merge_max_sum_exp(float& m0, float& s0, float m, float s) {
  if (m == -INFINITY) return;
  if (m0 == -INFINITY) {
    m0 = m;
    s0 = s;
    return;
  }
  const float mx = fmaxf(m0, m);
  s0 = fmaf(s0, expf(m0 - mx), __fmul_rn(s, expf(m - mx)));
  m0 = mx;
}

// log(sum_c exp(in[c])) over cols values, for a block of exactly kThreads threads (a multiple of
// 32, all of them calling); every thread gets the result. Thread t reads columns t, t + kThreads, ...
template <int kThreads, typename T>
__device__ __forceinline__ float block_row_log_sum_exp(const T* in, int cols) {
  static_assert(kThreads % 32 == 0 && kThreads <= 1024, "whole warps");
  float m = -INFINITY, s = 0.f;
  const auto update = [&](float v) {
    if (v > m) {
      s = m == -INFINITY ? 1.f : fmaf(s, expf(m - v), 1.f);
      m = v;
    } else {
      s = __fadd_rn(s, expf(v - m));
    }
  };
  // Four loads in flight before the (sequential) updates; the same order as one at a time.
  int c = threadIdx.x;
  for (; c + 3 * kThreads < cols; c += 4 * kThreads) {
    float v[4];
#pragma unroll
    for (int u = 0; u < 4; ++u) v[u] = to_float(in[c + u * kThreads]);
#pragma unroll
    for (int u = 0; u < 4; ++u) update(v[u]);
  }
  for (; c < cols; c += kThreads) update(to_float(in[c]));
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float mo = __shfl_xor_sync(0xffffffffu, m, o), so = __shfl_xor_sync(0xffffffffu, s, o);
    merge_max_sum_exp(m, s, mo, so);
  }
  __shared__ float sm[kThreads / 32], ss[kThreads / 32];
  __shared__ float lse;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) sm[warp] = m, ss[warp] = s;
  __syncthreads();
  if (threadIdx.x == 0) {
    float M = sm[0], S = ss[0];
    for (int w = 1; w < kThreads / 32; ++w) merge_max_sum_exp(M, S, sm[w], ss[w]);
    lse = M + logf(S);
  }
  __syncthreads();
  const float l = lse;
  __syncthreads();  // lse and sm / ss may be reused by a following call
  return l;
}

}  // namespace wenet_rt::cuda_kernels
