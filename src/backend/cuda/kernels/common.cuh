// Device helpers shared by the kernels: float <-> storage conversions and warp reductions; and
// launch.cuh, the one way they are launched.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "backend/cuda/kernels/launch.cuh"

namespace wenet_rt::cuda_kernels {

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

__device__ __forceinline__ float apply_act(float v, int act) {
  if (act == 1) return v > 0.f ? v : 0.f;
  if (act == 2) return v / (1.f + expf(-v));
  return v;
}

// Launch shape of the row-wise elementwise kernels: blockIdx.x / threads cover the columns of a
// row, blockIdx.y the rows (looping past 65535); no per-element division.
inline int threads_for_cols(int64_t cols) { return cols >= 256 ? 256 : cols > 64 ? 128 : 64; }
inline dim3 grid_for_rows(int64_t rows, int64_t cols, int threads) {
  return dim3(unsigned((cols + threads - 1) / threads), unsigned(rows < 65535 ? rows : 65535));
}
#define WENET_FOR_EACH_ROW_COL(r, c, rows, cols)                                            \
  for (int64_t r = blockIdx.y; r < (rows); r += gridDim.y)                                  \
    for (int c = int(blockIdx.x * blockDim.x + threadIdx.x); c < (cols); c += int(gridDim.x * blockDim.x))

// Runs `launch` with the element type picked by f16.
template <typename F>
void dispatch_type(bool f16, F&& launch) {
  if (f16) launch(__half{});
  else launch(float{});
}

}  // namespace wenet_rt::cuda_kernels
