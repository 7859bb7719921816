// FP32 GEMM against packed B with a fused epilogue: the register-blocked micro-kernel (MR rows x
// NV vectors of accumulators, A broadcast from its rows, B read from its k-major panel) and the
// loop over the row tiles of one panel. Every output element is one chain of FMAs over k = 0..K-1
// whatever the tile it falls in, so results do not depend on M or on the tiling.
#pragma once

#include "backend/cpu/kernels/kernels.h"
#include "backend/cpu/kernels/simd.h"

namespace wenet_rt::cpu {

template <class I>
inline typename I::V activate(typename I::V v, int act) {
  if (act == kActRelu) return I::max(v, I::zero());
  if (act == kActSwish) return swish<I>(v);
  return v;
}

// Stores acc (MR x NV vectors) into C[0:MR, 0:n_valid] through the epilogue.
template <class I, int MR, int NV>
inline void store_tile(typename I::V (&acc)[MR][NV], float* C, int64_t ldc, int n_valid, const Epilogue& ep) {
  using V = typename I::V;
  constexpr int W = I::kWidth;
  V bias[NV];
  for (int v = 0; v < NV; ++v) bias[v] = ep.bias ? I::load_n(ep.bias + v * W, n_valid - v * W) : I::zero();
  for (int i = 0; i < MR; ++i) {
    const V rb = ep.row_bias ? I::set1(ep.row_bias[i]) : I::zero();
    for (int v = 0; v < NV; ++v) {
      const int nn = n_valid - v * W;
      if (nn <= 0) break;
      V x = I::add(acc[i][v], bias[v]);
      if (ep.row_bias) x = I::add(x, rb);
      x = activate<I>(x, ep.act);
      if (ep.residual) x = I::add(x, I::load_n(ep.residual + i * ep.ldr + v * W, nn));
      if (nn >= W) I::store(C + i * ldc + v * W, x);
      else I::store_n(C + i * ldc + v * W, x, nn);
    }
  }
}

template <class I, int MR, int NV>
inline void gemm_tile(int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc,
                      int n_valid, const Epilogue& ep) {
  using V = typename I::V;
  constexpr int W = I::kWidth;
  V acc[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) acc[i][v] = I::zero();
  const float* a[MR];
  for (int i = 0; i < MR; ++i) a[i] = A + i * lda;
  for (int64_t k = 0; k < K; ++k) {
    V b[NV];
    for (int v = 0; v < NV; ++v) b[v] = I::load(B + k * ldb + v * W);
    for (int i = 0; i < MR; ++i) {
      const V x = I::set1(a[i][k]);
      for (int v = 0; v < NV; ++v) acc[i][v] = I::fma(x, b[v], acc[i][v]);
    }
  }
  store_tile<I, MR, NV>(acc, C, ldc, n_valid, ep);
}

// Row-tile shapes per instruction set: NV vectors of columns, MR rows (accumulators + B vectors
// + one broadcast within the register file).
template <class I>
struct GemmShape;
template <>
struct GemmShape<Scalar> {
  static constexpr int kNV = 4, kMR = 4;
};
#ifdef __AVX2__
template <>
struct GemmShape<Avx2> {
  static constexpr int kNV = 2, kMR = 6;
};
#endif
#ifdef __AVX512F__
template <>
struct GemmShape<Avx512> {
  static constexpr int kNV = 3, kMR = 8;
};
#endif

// Runs gemm_tile<I, mr, NV> for a tail of mr < MR rows (mr known only at run time).
template <class I, int NV, int MR>
inline void gemm_tile_rows(int mr, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
                           int64_t ldc, int n_valid, const Epilogue& ep) {
  if constexpr (MR > 0) {
    if (mr == MR) return gemm_tile<I, MR, NV>(K, A, lda, B, ldb, C, ldc, n_valid, ep);
    return gemm_tile_rows<I, NV, MR - 1>(mr, K, A, lda, B, ldb, C, ldc, n_valid, ep);
  }
}

// All rows of one column block of NV vectors. No blocking of k: the panels' depth (up to a few
// thousand) streams from L2 as fast as blocked variants ran (measured: 144 x 1197 x 1296 at 152
// GFLOPS on one core against 140 with blocks of 256), and every element is one chain of FMAs.
template <class I, int NV, int MR>
inline void gemm_columns(int64_t rows, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
                         int n_valid, float* C, int64_t ldc, const Epilogue& ep) {
  Epilogue e = ep;
  int64_t m = 0;
  for (; m + MR <= rows; m += MR) {
    e.row_bias = ep.row_bias ? ep.row_bias + m : nullptr;
    e.residual = ep.residual ? ep.residual + m * ep.ldr : nullptr;
    gemm_tile<I, MR, NV>(K, A + m * lda, lda, B, ldb, C + m * ldc, ldc, n_valid, e);
  }
  if (m < rows) {
    e.row_bias = ep.row_bias ? ep.row_bias + m : nullptr;
    e.residual = ep.residual ? ep.residual + m * ep.ldr : nullptr;
    gemm_tile_rows<I, NV, MR - 1>(int(rows - m), K, A + m * lda, lda, B, ldb, C + m * ldc, ldc, n_valid, e);
  }
}

// One packed panel of `nr` columns (n_valid of them real), all rows. AVX-512 takes 48-column
// panels in one tile (3 vectors x 8 rows), 64 as 4 x 6, 32 as 2 x 12, 16 as 1 x 12; the others
// walk the panel in column blocks of their own width.
template <class I>
void gemm_panel(int64_t rows, int64_t K, const float* A, int64_t lda, const float* panel, int nr, int n_valid,
                float* C, int64_t ldc, const Epilogue& ep) {
  constexpr int W = I::kWidth;
#ifdef __AVX512F__
  if constexpr (W == 16) {
    switch (nr) {
      case 64: return gemm_columns<I, 4, 6>(rows, K, A, lda, panel, nr, n_valid, C, ldc, ep);
      case 48: return gemm_columns<I, 3, 8>(rows, K, A, lda, panel, nr, n_valid, C, ldc, ep);
      case 32: return gemm_columns<I, 2, 12>(rows, K, A, lda, panel, nr, n_valid, C, ldc, ep);
      case 16: return gemm_columns<I, 1, 12>(rows, K, A, lda, panel, nr, n_valid, C, ldc, ep);
      default: break;
    }
  }
#endif
  constexpr int NV = GemmShape<I>::kNV, MR = GemmShape<I>::kMR, BW = NV * W;
  for (int c = 0; c < n_valid; c += BW) {
    Epilogue e = ep;
    e.bias = ep.bias ? ep.bias + c : nullptr;
    e.residual = ep.residual ? ep.residual + c : nullptr;
    gemm_columns<I, NV, MR>(rows, K, A, lda, panel + c, nr, n_valid - c, C + c, ldc, e);
  }
}

}  // namespace wenet_rt::cpu
