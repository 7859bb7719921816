// Row-wise log-softmax: one block per row, a single online (max, sum-exp) pass in FP32 and a
// writing pass; float32 output whatever the input dtype (CTC and decoder scores).
#include <cfloat>

#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/kernels.h"

namespace wenet_rt::cuda_kernels {
namespace {

constexpr int kThreads = 256;

// Merges (m, s) into (m0, s0) where s is a sum of exp(x - m).
__device__ __forceinline__ void merge(float& m0, float& s0, float m, float s) {
  if (m == -INFINITY) return;
  if (m0 == -INFINITY) {
    m0 = m;
    s0 = s;
    return;
  }
  const float mx = fmaxf(m0, m);
  s0 = s0 * expf(m0 - mx) + s * expf(m - mx);
  m0 = mx;
}

template <typename T>
__global__ void __launch_bounds__(kThreads) log_softmax_kernel(const T* x, int64_t ldx, float* y, int64_t ldy,
                                                               int cols) {
  const T* in = x + int64_t(blockIdx.x) * ldx;
  float* out = y + int64_t(blockIdx.x) * ldy;
  float m = -INFINITY, s = 0.f;
  for (int c = threadIdx.x; c < cols; c += kThreads) {
    const float v = to_float(in[c]);
    if (v > m) {
      s = (m == -INFINITY ? 0.f : s * expf(m - v)) + 1.f;
      m = v;
    } else {
      s += expf(v - m);
    }
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float mo = __shfl_xor_sync(0xffffffffu, m, o), so = __shfl_xor_sync(0xffffffffu, s, o);
    merge(m, s, mo, so);
  }
  __shared__ float sm[kThreads / 32], ss[kThreads / 32];
  __shared__ float lse;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) sm[warp] = m, ss[warp] = s;
  __syncthreads();
  if (threadIdx.x == 0) {
    float M = sm[0], S = ss[0];
    for (int w = 1; w < kThreads / 32; ++w) merge(M, S, sm[w], ss[w]);
    lse = M + logf(S);
  }
  __syncthreads();
  const float l = lse;
  for (int c = threadIdx.x; c < cols; c += kThreads) out[c] = to_float(in[c]) - l;
}

}  // namespace

void log_softmax(const void* x, int64_t ldx, float* y, int64_t ldy, int64_t rows, int64_t cols, bool f16,
                 cudaStream_t stream) {
  if (rows == 0) return;
  dispatch_type(f16, [&](auto t) {
    using E = decltype(t);
    log_softmax_kernel<E><<<unsigned(rows), kThreads, 0, stream>>>(static_cast<const E*>(x), ldx, y, ldy, int(cols));
  });
}

}  // namespace wenet_rt::cuda_kernels
