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

// A lane's bias and residual values for its 16 x 16 warp tile (columns n0 + 8 nt + 2 t4 (+ 1), rows
// m0 + lane / 4 (+ 8)), read ahead of the main loop so that their latency overlaps it instead of
// adding a round trip before the store: the bias (a model weight) before the PDL wait, the
// residual right after it (so y may still alias the residual). Entries out of range are 0.
struct WarpTileEpilogue {
  float bias[2][2] = {};    // [nt][c]
  float res[2][2][2] = {};  // [nt][h][c]
};

// y's and the residual's rows allow 4-byte column pairs.
__device__ __forceinline__ bool column_pairs(const GemmOperands& g) {
  return g.ldy % 2 == 0 && (reinterpret_cast<uintptr_t>(g.y) & 3u) == 0 &&
         (!g.residual || (g.ldr % 2 == 0 && (reinterpret_cast<uintptr_t>(g.residual) & 3u) == 0));
}

__device__ __forceinline__ void load_tile_bias(WarpTileEpilogue& e, const GemmOperands& g, int n0, int lane) {
  const __half* bias = static_cast<const __half*>(g.bias);
  if (!bias) return;
#pragma unroll
  for (int nt = 0; nt < 2; ++nt) {
    const int col = n0 + nt * 8 + 2 * (lane % 4);
    e.bias[nt][0] = col < g.N ? __half2float(bias[col]) : 0.f;
    e.bias[nt][1] = col + 1 < g.N ? __half2float(bias[col + 1]) : 0.f;
  }
}

// f(nt, h, row, col) for each pair of columns col, col + 1 (the second may lie past N) of a lane's
// rows in the 16 x 16 warp tile at (m0, n0) that lies inside y: rows m0 + lane / 4 + 8 h, columns
// n0 + 8 nt + 2 (lane % 4), as in the C fragments of mma_16816.
template <class F>
__device__ __forceinline__ void for_each_tile_pair(const GemmOperands& g, int64_t m0, int n0, int lane, F&& f) {
#pragma unroll
  for (int nt = 0; nt < 2; ++nt)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int64_t row = m0 + lane / 4 + h * 8;
      const int col = n0 + nt * 8 + 2 * (lane % 4);
      if (row < g.M && col < g.N) f(nt, h, row, col);
    }
}

__device__ __forceinline__ void load_tile_residual(WarpTileEpilogue& e, const GemmOperands& g, int64_t m0, int n0,
                                                   int lane) {
  const __half* res = static_cast<const __half*>(g.residual);
  if (!res) return;
  const bool pairs = column_pairs(g);
  for_each_tile_pair(g, m0, n0, lane, [&](int nt, int h, int64_t row, int col) {
    const __half* r = res + row * g.ldr + col;
    if (pairs && col + 1 < g.N) {
      const float2 rv = __half22float2(*reinterpret_cast<const __half2*>(r));
      e.res[nt][h][0] = rv.x, e.res[nt][h][1] = rv.y;
    } else {
      e.res[nt][h][0] = __half2float(r[0]);
      if (col + 1 < g.N) e.res[nt][h][1] = __half2float(r[1]);
    }
  });
}

// y[m0 .. m0 + 16, n0 .. n0 + 16] = act(acc + bias) (+ residual) with e's values, rows >= M and
// columns >= N left alone; pairs of columns as 4-byte stores where y's and the residual's rows allow.
__device__ __forceinline__ void store_warp_tile(const float (&acc)[2][4], const WarpTileEpilogue& e,
                                                const GemmOperands& g, int64_t m0, int n0, int lane) {
  __half* y = static_cast<__half*>(g.y);
  const bool pairs = column_pairs(g);
  const int act = int(g.act);
  for_each_tile_pair(g, m0, n0, lane, [&](int nt, int h, int64_t row, int col) {
    const float v0 = apply_act(acc[nt][2 * h] + e.bias[nt][0], act) + e.res[nt][h][0];
    const float v1 = apply_act(acc[nt][2 * h + 1] + e.bias[nt][1], act) + e.res[nt][h][1];
    __half* out = y + row * g.ldy + col;
    if (pairs && col + 1 < g.N) {
      *reinterpret_cast<__half2*>(out) = __floats2half2_rn(v0, v1);
    } else {
      out[0] = __float2half_rn(v0);
      if (col + 1 < g.N) out[1] = __float2half_rn(v1);
    }
  });
}

}  // namespace wenet_rt::cuda_kernels
