// im2col for convolution as one GEMM, one row per output position: col[(b, ho, wo)][k] with
// k = (c, i, j), row stride ldc. With the positions as GEMM columns and the output channels as
// rows, cuBLASLt adds the bias and ReLU in its epilogue and every operand stays aligned.
// A block owns one output row (b, ho) and a group of channels: it stages their kh input rows
// (contiguous in NCHW) and a table of patch offsets in shared memory, then writes the patch
// entries of those channels, which are contiguous in each output row.
#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/kernels.h"

namespace wenet_rt::cuda_kernels {
namespace {

constexpr int kThreads = 128, kChannelsPerBlock = 32;
constexpr size_t kMaxStagedBytes = 48 * 1024;

template <typename T, bool kStaged>
__global__ void __launch_bounds__(kThreads) im2col_rows_kernel(const T* __restrict__ x, T* __restrict__ col, int C,
                                                               int H, int W, int kh, int kw, int stride, int Ho,
                                                               int Wo, int64_t ldc) {
  pdl_wait_and_trigger();
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int ho = blockIdx.x, b = blockIdx.y, c0 = blockIdx.z * kChannelsPerBlock;
  const int nc = min(kChannelsPerBlock, C - c0), row_len = kh * W, taps = kh * kw, kg = nc * taps;
  int* offset = reinterpret_cast<int*>(smem_raw);                   // [kg]: source offset of patch entry k
  T* stage = reinterpret_cast<T*>(smem_raw + kChannelsPerBlock * taps * sizeof(int));  // [nc][kh * W]
  // Input rows ho*stride .. ho*stride+kh-1 of channel c are contiguous.
  const T* src = x + (size_t(b) * C + c0) * H * W + size_t(ho) * stride * W;
  for (int k = threadIdx.x; k < kg; k += kThreads) {
    const int c = k / taps, r = k - c * taps, i = r / kw, j = r - i * kw;
    offset[k] = (kStaged ? c * row_len : c * H * W) + i * W + j;
  }
  if constexpr (kStaged) {
#pragma unroll 4
    for (int e = threadIdx.x; e < nc * row_len; e += kThreads) {
      const int c = e / row_len, r = e - c * row_len;
      stage[e] = src[size_t(c) * H * W + r];
    }
  }
  __syncthreads();
  // A warp per output position, lanes along this channel group's contiguous patch entries, so
  // each store instruction writes 64 contiguous bytes.
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  T* out = col + size_t(b * Ho + ho) * Wo * ldc + c0 * taps;
  for (int wo = warp; wo < Wo; wo += kThreads / 32) {
    const int shift = wo * stride;
    for (int k = lane; k < kg; k += 32)
      out[size_t(wo) * ldc + k] = kStaged ? stage[offset[k] + shift] : src[offset[k] + shift];
  }
}

}  // namespace

void im2col_rows(const void* x, void* col, int64_t ldc, int64_t B, int64_t C, int64_t H, int64_t W, int64_t kh,
                 int64_t kw, int64_t stride, int64_t Ho, int64_t Wo, bool f16, KernelStream stream) {
  if (B * Ho * Wo == 0) return;
  dispatch_type(f16, [&](auto t) {
    using E = decltype(t);
    const size_t table = size_t(kChannelsPerBlock * kh * kw) * sizeof(int);
    const size_t smem = table + size_t(kChannelsPerBlock * kh * W) * sizeof(E);
    const dim3 grid{unsigned(Ho), unsigned(B), unsigned((C + kChannelsPerBlock - 1) / kChannelsPerBlock)};
    const auto args = [&](auto kernel, size_t bytes) {
      launch_kernel(stream, kernel, grid, kThreads, bytes, static_cast<const E*>(x), static_cast<E*>(col), int(C),
                    int(H), int(W), int(kh), int(kw), int(stride), int(Ho), int(Wo), ldc);
    };
    if (smem <= kMaxStagedBytes) args(im2col_rows_kernel<E, true>, smem);
    else args(im2col_rows_kernel<E, false>, table);  // a table beyond 48 KB (huge kernels) fails loudly
  });
}

}  // namespace wenet_rt::cuda_kernels
