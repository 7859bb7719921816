// Direct channels-last convolution + bias + ReLU on tensor cores for small patches (K = C * kh * kw
// <= 32; the subsampling's first conv: C = 1, 3 x 3), where an im2col buffer and a GEMM would be
// all overhead. A warp takes 16 output positions as the rows of an m16n8k16 A fragment, gathered
// straight from x (each lane its 2 positions x 4 patch entries), and multiplies them by the
// weights of 128 output channels (blockIdx.y), which stay in registers as B fragments for the
// whole kernel: 16 MMAs per k-step and 16 positions, FP32 accumulation, bias and ReLU on the
// accumulators. A scalar version with its weights in registers was instruction-bound (59 us at
// 16 x 256 frames on the H200 for 40 MB of output).
#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/kernels.h"
#include "backend/cuda/kernels/mma.cuh"

namespace wenet_rt::cuda_kernels {
namespace {

constexpr int kThreads = 128, kWarps = kThreads / 32, kCols = 128, kTiles = kCols / 8;

template <int kSteps>  // k-steps of 16 patch entries
__global__ void __launch_bounds__(kThreads)
    conv2d_bias_relu_kernel(const __half* __restrict__ x, const __half* __restrict__ w, const __half* __restrict__ b,
                            __half* __restrict__ y, int positions, int H, int W, int C, int O, int kh, int kw,
                            int stride, int Ho, int Wo, bool relu) {
  const int lane = threadIdx.x % 32, g = lane / 4, t4 = lane % 4;
  const int K = kh * kw * C, row = kw * C, c0 = blockIdx.y * kCols;
  // This lane's patch entries k = 16 s + 2 t4 + {0, 1, 8, 9} (the A / B fragment columns), as
  // offsets from a position's first input: tap row i's kw * C entries are contiguous.
  int offset[kSteps][4];
#pragma unroll
  for (int s = 0; s < kSteps; ++s)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int k = 16 * s + 2 * t4 + (e & 1) + (e >> 1) * 8;
      offset[s][e] = k < K ? k / row * W * C + k % row : -1;
    }
  // B fragments: column n = g of tile j is output channel c0 + 8 j + g; bias of this lane's
  // accumulator columns 8 j + 2 t4 (+ 1). O is a multiple of 8: a tile is whole or absent.
  uint32_t wf[kTiles][kSteps][2];
  float bias[kTiles][2];
#pragma unroll
  for (int j = 0; j < kTiles; ++j) {
    const int o = c0 + 8 * j + g, col = c0 + 8 * j + 2 * t4;
#pragma unroll
    for (int s = 0; s < kSteps; ++s)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int k = 16 * s + 2 * t4 + 8 * h;
        const float w0 = o < O && k < K ? __half2float(w[o * K + k]) : 0.f;
        const float w1 = o < O && k + 1 < K ? __half2float(w[o * K + k + 1]) : 0.f;
        wf[j][s][h] = pack_half2(w0, w1);
      }
    bias[j][0] = col < O ? __half2float(b[col]) : 0.f;
    bias[j][1] = col < O ? __half2float(b[col + 1]) : 0.f;
  }
  pdl_wait_and_trigger();  // the weights above are fetched while the previous kernel may still run
  // 32-bit position arithmetic (the host checks the range): 64-bit division costs ~100 instructions.
  const int step = gridDim.x * kWarps * 16;
  for (int first = (blockIdx.x * kWarps + threadIdx.x / 32) * 16; first < positions; first += step) {
    int pos[2];
    const __half* src[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {  // A rows g and g + 8
      pos[r] = first + g + 8 * r;
      const int p = min(pos[r], positions - 1), bh = p / Wo, bi = bh / Ho, wo = p - bh * Wo, ho = bh - bi * Ho;
      src[r] = x + ((int64_t(bi) * H + ho * stride) * W + wo * stride) * C;
    }
    uint32_t a[kSteps][4];
#pragma unroll
    for (int s = 0; s < kSteps; ++s)
#pragma unroll
      for (int q = 0; q < 4; ++q) {  // a0: row g, entries 0/1; a1: row g + 8; a2 / a3: entries 8/9
        const int r = q & 1, e = (q >> 1) * 2;
        const float v0 = offset[s][e] >= 0 ? __half2float(src[r][offset[s][e]]) : 0.f;
        const float v1 = offset[s][e + 1] >= 0 ? __half2float(src[r][offset[s][e + 1]]) : 0.f;
        a[s][q] = pack_half2(v0, v1);
      }
#pragma unroll
    for (int j = 0; j < kTiles; ++j) {
      const int col = c0 + 8 * j + 2 * t4;
      if (c0 + 8 * j >= O) break;
      float acc[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
      for (int s = 0; s < kSteps; ++s) mma_16816(acc, a[s], wf[j][s][0], wf[j][s][1]);
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        if (pos[r] >= positions) continue;
        float v0 = acc[2 * r] + bias[j][0], v1 = acc[2 * r + 1] + bias[j][1];
        if (relu) v0 = fmaxf(v0, 0.f), v1 = fmaxf(v1, 0.f);
        *reinterpret_cast<__half2*>(y + int64_t(pos[r]) * O + col) = __floats2half2_rn(v0, v1);
      }
    }
  }
}

}  // namespace

bool conv2d_bias_relu_supports(int64_t K, int64_t O) { return K <= 32 && O % 8 == 0; }

void conv2d_bias_relu(const void* x, const void* w, const void* b, void* y, int64_t B, int64_t C, int64_t H, int64_t W,
                      int64_t O, int64_t kh, int64_t kw, int64_t stride, int64_t Ho, int64_t Wo, bool relu,
                      KernelStream stream) {
  const int64_t positions = B * Ho * Wo;
  if (positions * O == 0) return;
  // A few resident blocks per SM, each warp striding over 16-position groups: a warp's weight
  // fragments (per-lane global loads) are then fetched once for many groups, not once or twice.
  const int64_t chunks = (O + kCols - 1) / kCols;
  const int64_t fill = std::max<int64_t>(1, 4 * device_limits(current_device()).sms / chunks);
  const dim3 grid(unsigned(std::min<int64_t>((positions + kWarps * 16 - 1) / (kWarps * 16), fill)), unsigned(chunks));
  const auto launch = [&](auto kernel) {
    launch_kernel(stream, kernel, grid, kThreads, 0, static_cast<const __half*>(x), static_cast<const __half*>(w),
                  static_cast<const __half*>(b), static_cast<__half*>(y), int(positions), int(H), int(W), int(C),
                  int(O), int(kh), int(kw), int(stride), int(Ho), int(Wo), relu);
  };
  if (C * kh * kw <= 16) launch(conv2d_bias_relu_kernel<1>);
  else launch(conv2d_bias_relu_kernel<2>);
}

}  // namespace wenet_rt::cuda_kernels
