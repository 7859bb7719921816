// INT8 GEMM of dynamically quantized linear layers: activations quantized per row to uint8
// (asymmetric: q = round(x / s) + z), weights per output channel to int8 (symmetric), products
// summed exactly in int32, then C = s_a s_w (acc - z_a colsum_w) through the FP32 epilogue.
// AVX-512 VNNI (vpdpbusd: 64 u8 x s8 products per instruction) where the CPU has it; exact int32
// arithmetic in plain C++ elsewhere.
#pragma once

#include <cmath>

#include "backend/cpu/kernels/gemm.h"
#include "backend/cpu/kernels/kernels.h"
#include "backend/cpu/kernels/simd.h"

namespace wenet_rt::cpu {

// Per-row asymmetric uint8 quantization; the range always holds 0 (so padding is exact).
template <class I>
void quantize_rows(const float* x, int64_t ldx, int64_t rows, int64_t K, int64_t k4, uint8_t* q, int64_t ldq,
                   float* scale, int32_t* zero) {
  using V = typename I::V;
  constexpr int W = I::kWidth;
  for (int64_t r = 0; r < rows; ++r) {
    const float* in = x + r * ldx;
    uint8_t* out = q + r * ldq;
    V lo = I::zero(), hi = I::zero();
    int64_t k = 0;
    for (; k + W <= K; k += W) {
      const V v = I::load(in + k);
      lo = I::min(lo, v);
      hi = I::max(hi, v);
    }
    float mn = -I::reduce_max(I::sub(I::zero(), lo)), mx = I::reduce_max(hi);
    for (; k < K; ++k) mn = in[k] < mn ? in[k] : mn, mx = in[k] > mx ? in[k] : mx;
    const float s = mx > mn ? (mx - mn) / 255.f : 1.f;
    const float zf = std::nearbyint(-mn / s);
    const int32_t z = int32_t(zf < 0.f ? 0.f : zf > 255.f ? 255.f : zf);
    scale[r] = s;
    zero[r] = z;
    const float inv = 1.f / s;
    k = 0;
#ifdef __AVX512F__
    if constexpr (W == 16) {
      const __m512 vi = _mm512_set1_ps(inv);
      const __m512i vz = _mm512_set1_epi32(z), zero_i = _mm512_setzero_si512();
      for (; k + 16 <= K; k += 16) {
        // round to nearest even (as nearbyint), + zero point, clamp at 0; the unsigned saturating
        // narrowing clamps at 255.
        const __m512i q = _mm512_max_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(in + k), vi)), vz), zero_i);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + k), _mm512_cvtusepi32_epi8(q));
      }
    }
#endif
    for (; k < K; ++k) {
      float v = std::nearbyint(in[k] * inv) + float(z);
      v = v < 0.f ? 0.f : v > 255.f ? 255.f : v;
      out[k] = uint8_t(v);
    }
    for (; k < k4; ++k) out[k] = uint8_t(z);
  }
}

// Plain C++ tile: exact int32 sums.
template <class I, int MR, int NV>
inline void qgemm_tile_plain(int64_t groups, const QuantRows& a, const int8_t* b, int nr, const float* sw,
                             const int32_t* colsum, float* C, int64_t ldc, int n_valid, const Epilogue& ep) {
  constexpr int W = I::kWidth, N = NV * W;
  int32_t acc[MR][N] = {};
  for (int64_t g = 0; g < groups; ++g)
    for (int i = 0; i < MR; ++i) {
      const uint8_t* x = a.q + i * a.ldq + g * 4;
      for (int j = 0; j < N; ++j) {
        const int8_t* w = b + (g * nr + j) * 4;
        acc[i][j] += int32_t(x[0]) * w[0] + int32_t(x[1]) * w[1] + int32_t(x[2]) * w[2] + int32_t(x[3]) * w[3];
      }
    }
  typename I::V f[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) {
      float tmp[W];
      for (int l = 0; l < W; ++l) {
        const int j = v * W + l;
        tmp[l] = float(acc[i][j] - a.zero[i] * colsum[j]) * (a.scale[i] * sw[j]);
      }
      f[i][v] = I::load(tmp);
    }
  store_tile<I, MR, NV>(f, C, ldc, n_valid, ep);
}

#if defined(__AVX512F__) && defined(__AVX512VNNI__)
template <int MR, int NV>
inline void qgemm_tile_vnni(int64_t groups, const QuantRows& a, const int8_t* b, int nr, const float* sw,
                            const int32_t* colsum, float* C, int64_t ldc, int n_valid, const Epilogue& ep) {
  __m512i acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_si512();
  const uint8_t* x[MR];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) x[i] = a.q + i * a.ldq;
  for (int64_t g = 0; g < groups; ++g) {
    __m512i w[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) w[v] = _mm512_loadu_si512(b + (g * nr + v * 16) * 4);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      int32_t four;
      __builtin_memcpy(&four, x[i] + g * 4, 4);
      const __m512i xi = _mm512_set1_epi32(four);
#pragma GCC unroll 4
      // (inline asm: with _mm512_dpbusd_epi32, whose only form overwrites the accumulator, GCC 12
      // copies and spills the accumulators every step; an in-place operand keeps them put.)
      for (int v = 0; v < NV; ++v) asm("vpdpbusd %2, %1, %0" : "+v"(acc[i][v]) : "v"(xi), "v"(w[v]));
    }
  }
  __m512 f[MR][NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) {
    const __m512i cs = _mm512_loadu_si512(colsum + v * 16);
    const __m512 s = _mm512_loadu_ps(sw + v * 16);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512i c = _mm512_sub_epi32(acc[i][v], _mm512_mullo_epi32(_mm512_set1_epi32(a.zero[i]), cs));
      f[i][v] = _mm512_mul_ps(_mm512_cvtepi32_ps(c), _mm512_mul_ps(_mm512_set1_ps(a.scale[i]), s));
    }
  }
  store_tile<Avx512, MR, NV>(f, C, ldc, n_valid, ep);
}
#endif

template <class I, int MR, int NV>
inline void qgemm_tile(int64_t groups, const QuantRows& a, const int8_t* b, int nr, const float* sw,
                       const int32_t* colsum, float* C, int64_t ldc, int n_valid, const Epilogue& ep) {
#if defined(__AVX512F__) && defined(__AVX512VNNI__)
  if constexpr (I::kWidth == 16) return qgemm_tile_vnni<MR, NV>(groups, a, b, nr, sw, colsum, C, ldc, n_valid, ep);
#endif
  qgemm_tile_plain<I, MR, NV>(groups, a, b, nr, sw, colsum, C, ldc, n_valid, ep);
}

template <class I, int NV, int MR>
inline void qgemm_tile_rows(int mr, int64_t groups, const QuantRows& a, const int8_t* b, int nr, const float* sw,
                            const int32_t* colsum, float* C, int64_t ldc, int n_valid, const Epilogue& ep) {
  if constexpr (MR > 0) {
    if (mr == MR) return qgemm_tile<I, MR, NV>(groups, a, b, nr, sw, colsum, C, ldc, n_valid, ep);
    return qgemm_tile_rows<I, NV, MR - 1>(mr, groups, a, b, nr, sw, colsum, C, ldc, n_valid, ep);
  }
}

template <class I, int NV, int MR>
inline void qgemm_columns(int64_t rows, int64_t groups, const QuantRows& a, const int8_t* b, int nr, const float* sw,
                          const int32_t* colsum, float* C, int64_t ldc, int n_valid, const Epilogue& ep) {
  Epilogue e = ep;
  QuantRows ar = a;
  for (int64_t m = 0; m < rows; m += MR) {
    ar.q = a.q + m * a.ldq;
    ar.scale = a.scale + m;
    ar.zero = a.zero + m;
    e.row_bias = ep.row_bias ? ep.row_bias + m : nullptr;
    e.residual = ep.residual ? ep.residual + m * ep.ldr : nullptr;
    if (m + MR <= rows) qgemm_tile<I, MR, NV>(groups, ar, b, nr, sw, colsum, C + m * ldc, ldc, n_valid, e);
    else qgemm_tile_rows<I, NV, MR - 1>(int(rows - m), groups, ar, b, nr, sw, colsum, C + m * ldc, ldc, n_valid, e);
  }
}

// Rows [0, rows) of `a` against panel p of w (columns p * nr ...), n_valid of them stored.
template <class I>
void qgemm_panel(int64_t rows, const QuantRows& a, const PackedInt8& w, int64_t p, int n_valid, float* C, int64_t ldc,
                 const Epilogue& ep) {
  const int nr = w.nr;
  const int8_t* b = w.panel(p);
  const float* sw = w.scale + p * nr;
  const int32_t* cs = w.col_sum + p * nr;
  const int64_t groups = w.k4 / 4;
#if defined(__AVX512F__) && defined(__AVX512VNNI__)
  if constexpr (I::kWidth == 16) {
    switch (nr) {
      case 64: return qgemm_columns<I, 4, 6>(rows, groups, a, b, nr, sw, cs, C, ldc, n_valid, ep);
      case 48: return qgemm_columns<I, 3, 8>(rows, groups, a, b, nr, sw, cs, C, ldc, n_valid, ep);
      case 32: return qgemm_columns<I, 2, 12>(rows, groups, a, b, nr, sw, cs, C, ldc, n_valid, ep);
      case 16: return qgemm_columns<I, 1, 12>(rows, groups, a, b, nr, sw, cs, C, ldc, n_valid, ep);
      default: break;
    }
  }
#endif
  // Column blocks of 16 (any vector width divides it).
  constexpr int NV = 16 / I::kWidth;
  for (int c = 0; c < n_valid; c += 16) {
    Epilogue e = ep;
    e.bias = ep.bias ? ep.bias + c : nullptr;
    e.residual = ep.residual ? ep.residual + c : nullptr;
    qgemm_columns<I, NV, 4>(rows, groups, a, b + c * 4, nr, sw + c, cs + c, C + c, ldc, n_valid - c, e);
  }
}

}  // namespace wenet_rt::cpu
