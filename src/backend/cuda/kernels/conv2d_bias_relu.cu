// Direct NCHW convolution + bias + ReLU for small C * kh * kw (the subsampling's first conv: C = 1,
// 3x3), where a GEMM would be all overhead: one thread per output position keeps its input patch
// in registers and walks a slice of the output channels (blockIdx.y; weights are warp-uniform
// loads, served by L1).
#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/kernels.h"

namespace wenet_rt::cuda_kernels {
namespace {

constexpr int kChannelsPerThread = 16;

template <typename T, int kMaxK>
__global__ void conv2d_bias_relu_kernel(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b,
                                        T* __restrict__ y, int B, int C, int H, int W, int O, int kh, int kw,
                                        int stride, int Ho, int Wo, bool relu) {
  pdl_wait_and_trigger();
  const int P = Ho * Wo, K = C * kh * kw;
  const int idx = blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= B * P) return;
  const int bi = idx / P, p = idx % P, ho = p / Wo, wo = p % Wo;
  float patch[kMaxK];
#pragma unroll
  for (int k = 0; k < kMaxK; ++k) {
    patch[k] = 0.f;
    if (k < K) {
      const int c = k / (kh * kw), r = k % (kh * kw), i = r / kw, j = r % kw;
      patch[k] = to_float(x[(size_t(bi * C + c) * H + ho * stride + i) * W + wo * stride + j]);
    }
  }
  T* out = y + size_t(bi) * O * P + p;
  const int o_end = min(O, int(blockIdx.y + 1) * kChannelsPerThread);
  for (int o = blockIdx.y * kChannelsPerThread; o < o_end; ++o) {
    const T* wk = w + size_t(o) * K;
    float acc = to_float(b[o]);
#pragma unroll
    for (int k = 0; k < kMaxK; ++k)
      if (k < K) acc += to_float(wk[k]) * patch[k];
    out[size_t(o) * P] = from_float<T>(relu && acc < 0.f ? 0.f : acc);
  }
}

}  // namespace

void conv2d_bias_relu(const void* x, const void* w, const void* b, void* y, int64_t B, int64_t C, int64_t H, int64_t W,
                      int64_t O, int64_t kh, int64_t kw, int64_t stride, int64_t Ho, int64_t Wo, bool relu, bool f16,
                      KernelStream stream) {
  const int64_t positions = B * Ho * Wo;
  if (positions * O == 0) return;
  constexpr int kThreads = 128;
  const dim3 grid(unsigned((positions + kThreads - 1) / kThreads), unsigned((O + kChannelsPerThread - 1) / kChannelsPerThread));
  dispatch_type(f16, [&](auto t) {
    using E = decltype(t);
    const auto launch = [&](auto kernel) {
      launch_kernel(stream, kernel, grid, kThreads, 0, static_cast<const E*>(x), static_cast<const E*>(w),
                    static_cast<const E*>(b), static_cast<E*>(y), int(B), int(C), int(H), int(W), int(O), int(kh),
                    int(kw), int(stride), int(Ho), int(Wo), relu);
    };
    if (C * kh * kw <= 9) launch(conv2d_bias_relu_kernel<E, 9>);
    else launch(conv2d_bias_relu_kernel<E, kMaxDirectConvK>);
  });
}

}  // namespace wenet_rt::cuda_kernels
