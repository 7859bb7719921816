// [A, X, Y, Z] -> [A, Y, X, Z]. transpose_ct is (B, C, T, F); the GEMM convolution's
// channels-last output back to NCHW is (B, H*W, C, 1), done through a shared-memory tile so that
// both the reads and the writes are coalesced.
#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/kernels.h"

namespace wenet_rt::cuda_kernels {
namespace {

constexpr int kTile = 32;

// Z == 1: a 32 x 32 tile per block, 32 x 8 threads.
template <typename T>
__global__ void transpose_tile_kernel(const T* __restrict__ x, T* __restrict__ y, int X, int Y) {
  pdl_wait_and_trigger();
  __shared__ float tile[kTile][kTile + 1];
  const int a = blockIdx.z, x0 = blockIdx.y * kTile, y0 = blockIdx.x * kTile;
  const T* src = x + size_t(a) * X * Y;
  T* dst = y + size_t(a) * X * Y;
  for (int i = threadIdx.y; i < kTile; i += blockDim.y) {
    const int xi = x0 + i, yi = y0 + threadIdx.x;
    if (xi < X && yi < Y) tile[i][threadIdx.x] = to_float(src[size_t(xi) * Y + yi]);
  }
  __syncthreads();
  for (int i = threadIdx.y; i < kTile; i += blockDim.y) {
    const int yi = y0 + i, xi = x0 + threadIdx.x;
    if (xi < X && yi < Y) dst[size_t(yi) * X + xi] = from_float<T>(tile[threadIdx.x][i]);
  }
}

// Z > 1: rows of Z stay contiguous; one block per (a, y) output plane row.
template <typename T>
__global__ void transpose_rows_kernel(const T* __restrict__ x, T* __restrict__ y, int X, int Y, int Z) {
  pdl_wait_and_trigger();
  const int a = blockIdx.y, yi = blockIdx.x;
  const T* src = x + size_t(a) * X * Y * Z + size_t(yi) * Z;
  T* dst = y + (size_t(a) * Y + yi) * X * Z;
  for (int e = threadIdx.x; e < X * Z; e += blockDim.x) {
    const int xi = e / Z, z = e - xi * Z;
    dst[e] = src[size_t(xi) * Y * Z + z];
  }
}

}  // namespace

void transpose_middle_axes(const void* x, void* y, int64_t A, int64_t X, int64_t Y, int64_t Z, bool f16,
                           KernelStream stream) {
  if (A * X * Y * Z == 0) return;
  dispatch_type(f16, [&](auto t) {
    using E = decltype(t);
    if (Z == 1) {
      const dim3 grid(unsigned((Y + kTile - 1) / kTile), unsigned((X + kTile - 1) / kTile), unsigned(A));
      launch_kernel(stream, transpose_tile_kernel<E>, grid, dim3(kTile, 8), 0, static_cast<const E*>(x),
                    static_cast<E*>(y), int(X), int(Y));
    } else {
      launch_kernel(stream, transpose_rows_kernel<E>, dim3(unsigned(Y), unsigned(A)), 256, 0, static_cast<const E*>(x),
                    static_cast<E*>(y), int(X), int(Y), int(Z));
    }
  });
}

}  // namespace wenet_rt::cuda_kernels
