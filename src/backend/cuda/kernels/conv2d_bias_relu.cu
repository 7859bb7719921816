// Direct channels-last convolution + bias + ReLU for small C * kh * kw (the subsampling's first
// conv: C = 1, 3x3), where a GEMM would be all overhead. threadIdx.x picks kChannels consecutive
// output channels, whose weights stay in registers while the thread walks positions (blocks over
// output rows, threadIdx.y along a row, kPositions at a time); a position's threads share its
// patch loads (broadcast) and store its channels contiguously, 16 bytes each where whole.
#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/kernels.h"

namespace wenet_rt::cuda_kernels {
namespace {

// kPositions positions a step, all their patch loads issued before any math; kChannels output
// channels a thread, whose kChannels * kMaxK weights live in registers.
template <int kMaxK>
constexpr int kPositionsFor = kMaxK <= 9 ? 2 : 1;
template <int kMaxK>
constexpr int kChannelsFor = kMaxK <= 9 ? 8 : 2;

template <typename T, int kMaxK>
__global__ void __launch_bounds__(128) conv2d_bias_relu_kernel(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b,
                                        T* __restrict__ y, int out_rows, int H, int W, int C, int O, int kh,
                                        int kw, int stride, int Ho, int Wo, bool relu, bool vectors) {
  pdl_wait_and_trigger();
  constexpr int kChannels = kChannelsFor<kMaxK>, kPositions = kPositionsFor<kMaxK>;
  const int o0 = threadIdx.x * kChannels, K = kh * kw * C, row = kw * C;
  // The weights and bias pass through shared memory: read straight into each thread's registers,
  // every warp load would touch 32 cache lines, which costs more than the convolution itself.
  extern __shared__ float staged[];  // [O * K] weights, then [O] bias
  const int threads = blockDim.x * blockDim.y, tid = threadIdx.y * blockDim.x + threadIdx.x;
  for (int e = tid; e < O * K; e += threads) staged[e] = to_float(w[e]);
  for (int e = tid; e < O; e += threads) staged[O * K + e] = to_float(b[e]);
  __syncthreads();
  float wr[kChannels][kMaxK], bias[kChannels];
  int offset[kMaxK];  // of patch entry k = (i, j, c): tap row i's kw * C entries are contiguous
#pragma unroll
  for (int k = 0; k < kMaxK; ++k) offset[k] = k < K ? k / row * W * C + k % row : 0;
#pragma unroll
  for (int o = 0; o < kChannels; ++o) {
    bias[o] = o0 + o < O ? staged[O * K + o0 + o] : 0.f;
#pragma unroll
    for (int k = 0; k < kMaxK; ++k) wr[o][k] = o0 + o < O && k < K ? staged[(o0 + o) * K + k] : 0.f;
  }
  // A block walks output rows (b, ho), grid-stride; threadIdx.y spreads over a row's positions.
  for (int bh = blockIdx.x; bh < out_rows; bh += gridDim.x) {
    const int bi = bh / Ho, ho = bh - bi * Ho;
    const T* row_src = x + (int64_t(bi) * H + ho * stride) * W * C;
    T* row_dst = y + int64_t(bh) * Wo * O + o0;
    for (int first = threadIdx.y; first < Wo; first += blockDim.y * kPositions) {
      float patch[kPositions][kMaxK];
#pragma unroll
      for (int r = 0; r < kPositions; ++r) {
        const int wo = first + r * blockDim.y;
        if (wo >= Wo) break;
#pragma unroll
        for (int k = 0; k < kMaxK; ++k) patch[r][k] = k < K ? to_float(row_src[wo * stride * C + offset[k]]) : 0.f;
      }
#pragma unroll
      for (int r = 0; r < kPositions; ++r) {
        const int wo = first + r * blockDim.y;
        if (wo >= Wo) break;
        alignas(16) T out[kChannels];
#pragma unroll
        for (int o = 0; o < kChannels; ++o) {
          float acc = bias[o];
#pragma unroll
          for (int k = 0; k < kMaxK; ++k) acc += wr[o][k] * patch[r][k];
          out[o] = from_float<T>(relu && acc < 0.f ? 0.f : acc);
        }
        T* dst = row_dst + int64_t(wo) * O;
        if constexpr (sizeof(out) % 16 == 0) {
          if (vectors) {  // a whole group at a 16-byte aligned offset
#pragma unroll
            for (int v = 0; v < int(sizeof(out) / 16); ++v)
              reinterpret_cast<uint4*>(dst)[v] = reinterpret_cast<const uint4*>(out)[v];
            continue;
          }
        }
        for (int o = 0; o < kChannels && o0 + o < O; ++o) dst[o] = out[o];
      }
    }
  }
}

}  // namespace

void conv2d_bias_relu(const void* x, const void* w, const void* b, void* y, int64_t B, int64_t C, int64_t H, int64_t W,
                      int64_t O, int64_t kh, int64_t kw, int64_t stride, int64_t Ho, int64_t Wo, bool relu, bool f16,
                      KernelStream stream) {
  const int64_t positions = B * Ho * Wo;
  if (positions * O == 0) return;
  const auto launch = [&](auto kernel, int channels) {
    // A block: every channel group of blockDim.y positions at a time; a grid that fills the GPU a
    // few times over (each block stages the weights once), its blocks striding over output rows.
    const int groups = int((O + channels - 1) / channels), rows = std::max(1, 128 / groups);
    const int64_t blocks = std::min<int64_t>(B * Ho, 1024);
    const size_t smem = size_t(O * (C * kh * kw + 1)) * sizeof(float);
    const bool vectors = O % channels == 0 && reinterpret_cast<uintptr_t>(y) % 16 == 0;
    dispatch_type(f16, [&](auto t) {
      using E = decltype(t);
      launch_kernel(stream, kernel(t), dim3(unsigned(blocks)), dim3(unsigned(groups), unsigned(rows)), smem,
                    static_cast<const E*>(x), static_cast<const E*>(w), static_cast<const E*>(b), static_cast<E*>(y),
                    int(B * Ho), int(H), int(W), int(C), int(O), int(kh), int(kw), int(stride), int(Ho), int(Wo), relu,
                    vectors);
    });
  };
  if (C * kh * kw <= 9)
    launch([](auto t) { return conv2d_bias_relu_kernel<decltype(t), 9>; }, kChannelsFor<9>);
  else
    launch([](auto t) { return conv2d_bias_relu_kernel<decltype(t), kMaxDirectConvK>; },
           kChannelsFor<kMaxDirectConvK>);
}

}  // namespace wenet_rt::cuda_kernels
