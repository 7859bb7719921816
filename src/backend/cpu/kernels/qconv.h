// INT8 subsampling convolution (CpuBackendOptions::int8, input channels > 4): the im2col panel of
// 48 output positions quantized per position (uint8, asymmetric, over its C x kh x kw inputs),
// the weights per output channel (int8, symmetric, once), int32 sums (VNNI where present), then
// y[o][p] = act(s_w[o] s_a[p] (acc - z_a[p] rowsum_w[o]) + b[o]).
#pragma once

#include <cmath>

#include "backend/cpu/kernels/gemm.h"
#include "backend/cpu/kernels/kernels.h"
#include "backend/cpu/kernels/simd.h"

namespace wenet_rt::cpu {

// col [K][nr] floats -> q [K4 / 4][nr][4] bytes, per column scale / zero point; rows past K hold
// the zero point.
template <class I>
void quantize_panel(const float* col, int64_t K, int64_t K4, int nr, uint8_t* q, float* scale, int32_t* zero) {
  for (int j = 0; j < nr; ++j) {
    float mn = 0.f, mx = 0.f;  // the range holds 0
    for (int64_t k = 0; k < K; ++k) {
      const float v = col[k * nr + j];
      mn = v < mn ? v : mn;
      mx = v > mx ? v : mx;
    }
    const float s = mx > mn ? (mx - mn) / 255.f : 1.f;
    const float zf = std::nearbyint(-mn / s);
    scale[j] = s;
    zero[j] = int32_t(zf < 0.f ? 0.f : zf > 255.f ? 255.f : zf);
  }
  for (int64_t k = 0; k < K4; ++k)
    for (int j = 0; j < nr; ++j) {
      uint8_t b = uint8_t(zero[j]);
      if (k < K) {
        float v = std::nearbyint(col[k * nr + j] * (1.f / scale[j])) + float(zero[j]);
        b = uint8_t(v < 0.f ? 0.f : v > 255.f ? 255.f : v);
      }
      q[((k / 4) * nr + j) * 4 + k % 4] = b;
    }
}

// The same for AVX-512: columns in vectors of 16, four rows packed into each 32-bit lane.
#ifdef __AVX512F__
template <>
inline void quantize_panel<Avx512>(const float* col, int64_t K, int64_t K4, int nr, uint8_t* q, float* scale,
                                   int32_t* zero) {
  for (int c = 0; c < nr; c += 16) {
    __m512 lo = _mm512_setzero_ps(), hi = _mm512_setzero_ps();
    for (int64_t k = 0; k < K; ++k) {
      const __m512 v = _mm512_loadu_ps(col + k * nr + c);
      lo = _mm512_min_ps(lo, v);
      hi = _mm512_max_ps(hi, v);
    }
    const __m512 range = _mm512_sub_ps(hi, lo);
    const __mmask16 flat = _mm512_cmp_ps_mask(range, _mm512_setzero_ps(), _CMP_LE_OQ);
    const __m512 s = _mm512_mask_blend_ps(flat, _mm512_div_ps(range, _mm512_set1_ps(255.f)), _mm512_set1_ps(1.f));
    const __m512 inv = _mm512_div_ps(_mm512_set1_ps(1.f), s);
    __m512i z = _mm512_cvtps_epi32(_mm512_div_ps(_mm512_sub_ps(_mm512_setzero_ps(), lo), s));
    z = _mm512_min_epi32(_mm512_max_epi32(z, _mm512_setzero_si512()), _mm512_set1_epi32(255));
    _mm512_storeu_ps(scale + c, s);
    _mm512_storeu_si512(zero + c, z);
    for (int64_t k0 = 0; k0 < K4; k0 += 4) {
      __m512i packed = _mm512_setzero_si512();
      for (int r = 0; r < 4; ++r) {
        __m512i b = z;
        if (k0 + r < K) {
          b = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(col + (k0 + r) * nr + c), inv)), z);
          b = _mm512_min_epi32(_mm512_max_epi32(b, _mm512_setzero_si512()), _mm512_set1_epi32(255));
        }
        packed = _mm512_or_si512(packed, _mm512_slli_epi32(b, 8 * r));
      }
      _mm512_storeu_si512(q + ((k0 / 4) * nr + c) * 4, packed);
    }
  }
}
#endif

// Rows [o0, o1) of y = W x panel: wq [O][K4] int8 rows, panel from quantize_panel.
template <class I, int MR, int NV>
inline void qconv_tile(int64_t groups, const int8_t* wq, int64_t ldw, const float* sw, const int32_t* rowsum,
                       const uint8_t* panel, int nr, const float* sa, const int32_t* za, float* C, int64_t ldc,
                       int n_valid, const Epilogue& ep) {
  constexpr int W = I::kWidth;
  typename I::V f[MR][NV];
#if defined(__AVX512F__) && defined(__AVX512VNNI__)
  if constexpr (W == 16) {
    __m512i acc[MR][NV];
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_si512();
    for (int64_t g = 0; g < groups; ++g) {
      __m512i x[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) x[v] = _mm512_loadu_si512(panel + (g * nr + v * 16) * 4);
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        int32_t four;
        __builtin_memcpy(&four, wq + i * ldw + g * 4, 4);
        const __m512i wi = _mm512_set1_epi32(four);
        // (in-place asm operand: see qgemm.h) acc += u8 activations x s8 weights
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) asm("vpdpbusd %2, %1, %0" : "+v"(acc[i][v]) : "v"(x[v]), "v"(wi));
      }
    }
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      const __m512 s = _mm512_loadu_ps(sa + v * 16);
      const __m512i z = _mm512_loadu_si512(za + v * 16);
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        const __m512i c = _mm512_sub_epi32(acc[i][v], _mm512_mullo_epi32(z, _mm512_set1_epi32(rowsum[i])));
        f[i][v] = _mm512_mul_ps(_mm512_cvtepi32_ps(c), _mm512_mul_ps(s, _mm512_set1_ps(sw[i])));
      }
    }
    store_tile<I, MR, NV>(f, C, ldc, n_valid, ep);
    return;
  }
#endif
  constexpr int N = NV * W;
  int32_t acc[MR][N] = {};
  for (int64_t g = 0; g < groups; ++g)
    for (int i = 0; i < MR; ++i) {
      const int8_t* w = wq + i * ldw + g * 4;
      for (int j = 0; j < N; ++j) {
        const uint8_t* x = panel + (g * nr + j) * 4;
        acc[i][j] += int32_t(x[0]) * w[0] + int32_t(x[1]) * w[1] + int32_t(x[2]) * w[2] + int32_t(x[3]) * w[3];
      }
    }
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) {
      float tmp[W];
      for (int l = 0; l < W; ++l) {
        const int j = v * W + l;
        tmp[l] = float(acc[i][j] - za[j] * rowsum[i]) * (sa[j] * sw[i]);
      }
      f[i][v] = I::load(tmp);
    }
  store_tile<I, MR, NV>(f, C, ldc, n_valid, ep);
}

template <class I, int NV, int MR>
inline void qconv_tile_rows(int mr, int64_t groups, const int8_t* wq, int64_t ldw, const float* sw,
                            const int32_t* rowsum, const uint8_t* panel, int nr, const float* sa, const int32_t* za,
                            float* C, int64_t ldc, int n_valid, const Epilogue& ep) {
  if constexpr (MR > 0) {
    if (mr == MR) return qconv_tile<I, MR, NV>(groups, wq, ldw, sw, rowsum, panel, nr, sa, za, C, ldc, n_valid, ep);
    return qconv_tile_rows<I, NV, MR - 1>(mr, groups, wq, ldw, sw, rowsum, panel, nr, sa, za, C, ldc, n_valid, ep);
  }
}

// All O rows against one quantized panel of nr = 48 positions (n_valid of them stored).
template <class I>
void qconv_panel(int64_t rows, int64_t K4, const int8_t* wq, const float* sw, const int32_t* rowsum,
                 const uint8_t* panel, int nr, const float* sa, const int32_t* za, int n_valid, float* C, int64_t ldc,
                 const Epilogue& ep) {
  constexpr int NV = 48 / I::kWidth, MR = I::kWidth == 16 ? 8 : 4;
  const int64_t groups = K4 / 4;
  Epilogue e = ep;
  for (int64_t m = 0; m < rows; m += MR) {
    e.row_bias = ep.row_bias ? ep.row_bias + m : nullptr;
    e.residual = ep.residual ? ep.residual + m * ep.ldr : nullptr;
    const int64_t mr = rows - m < MR ? rows - m : MR;
    if (mr == MR)
      qconv_tile<I, MR, NV>(groups, wq + m * K4, K4, sw + m, rowsum + m, panel, nr, sa, za, C + m * ldc, ldc, n_valid,
                            e);
    else
      qconv_tile_rows<I, NV, MR - 1>(int(mr), groups, wq + m * K4, K4, sw + m, rowsum + m, panel, nr, sa, za,
                                     C + m * ldc, ldc, n_valid, e);
  }
}

}  // namespace wenet_rt::cpu
