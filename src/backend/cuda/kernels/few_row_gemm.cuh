// The 16 x 16 warp tile both few-row float16 GEMM kernels compute (layer_norm_gemm.cu,
// split_k_gemm.cu): 16 rows of x staged in shared memory times 16 rows of W, on mma.sync
// m16n8k16 with FP32 accumulation, and its epilogue.
#pragma once
#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/kernels.h"
#include "backend/cuda/kernels/mma.cuh"

namespace wenet_rt::cuda_kernels {

// acc += As[16 x K] Ws[16 x K]^T (row strides LDS, (LDS / 8) odd so that ldmatrix rows hit
// distinct banks); acc[nt] holds the C fragment of columns 8 nt .. 8 nt + 7.
template <int K, int LDS>
__device__ __forceinline__ void mma_warp_tile(float (&acc)[2][4], const __half* As, const __half* Ws, int lane) {
#pragma unroll
  for (int k = 0; k < K; k += 16) {
    uint32_t a[4], b[4];
    ldmatrix_x4(a, As + (lane % 16) * LDS + k + (lane / 16) * 8);
    ldmatrix_x4(b, Ws + (lane % 8 + (lane / 16) * 8) * LDS + k + ((lane / 8) % 2) * 8);
    mma_16816(acc[0], a, b[0], b[1]);
    mma_16816(acc[1], a, b[2], b[3]);
  }
}

// y[m0 .. m0 + 16, n0 .. n0 + 16] = act(acc + bias) (+ residual), rows >= M and columns >= N left
// alone; pairs of columns as 4-byte stores where y's and the residual's rows allow. The residual
// is read here, so y may alias it.
__device__ __forceinline__ void store_warp_tile(const float (&acc)[2][4], const GemmOperands& g, int64_t m0, int n0,
                                                int lane) {
  __half* y = static_cast<__half*>(g.y);
  const __half* bias = static_cast<const __half*>(g.bias);
  const __half* res = static_cast<const __half*>(g.residual);
  const bool pairs = g.ldy % 2 == 0 && (reinterpret_cast<uintptr_t>(g.y) & 3u) == 0 &&
                     (!res || (g.ldr % 2 == 0 && (reinterpret_cast<uintptr_t>(res) & 3u) == 0));
  const int t4 = lane % 4, act = int(g.act);
#pragma unroll
  for (int nt = 0; nt < 2; ++nt) {
    const int col = n0 + nt * 8 + 2 * t4;
    const float b0 = bias && col < g.N ? __half2float(bias[col]) : 0.f;
    const float b1 = bias && col + 1 < g.N ? __half2float(bias[col + 1]) : 0.f;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int64_t row = m0 + lane / 4 + h * 8;
      if (row >= g.M || col >= g.N) continue;
      float v0 = apply_act(acc[nt][2 * h] + b0, act), v1 = apply_act(acc[nt][2 * h + 1] + b1, act);
      __half* out = y + row * g.ldy + col;
      const __half* r = res ? res + row * g.ldr + col : nullptr;
      if (pairs && col + 1 < g.N) {
        if (r) {
          const float2 rv = __half22float2(*reinterpret_cast<const __half2*>(r));
          v0 += rv.x, v1 += rv.y;
        }
        *reinterpret_cast<__half2*>(out) = __floats2half2_rn(v0, v1);
      } else {
        out[0] = __float2half_rn(v0 + (r ? __half2float(r[0]) : 0.f));
        if (col + 1 < g.N) out[1] = __float2half_rn(v1 + (r ? __half2float(r[1]) : 0.f));
      }
    }
  }
}

}  // namespace wenet_rt::cuda_kernels
