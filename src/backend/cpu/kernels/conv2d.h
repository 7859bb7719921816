// The subsampling's Conv2d pieces: an im2col panel per 48 output positions for the GEMM (many
// input channels; stride 2 gathered with one permute per 16 outputs), or a direct convolution
// (one input channel: 9 FMAs per output, where a GEMM would spend its time storing) on the input
// split into stride x stride phase planes, row-major by input row:
// phases[ri][pr][pc][c][ci] = x[c][ri * S + pr][ci * S + pc], so that what a tap reads for
// consecutive output columns is contiguous.
#pragma once

#include "backend/cpu/kernels/gemm.h"
#include "backend/cpu/kernels/kernels.h"
#include "backend/cpu/kernels/simd.h"

namespace wenet_rt::cpu {

// out[p][j] = in[j * S + p] for p < S, j < ceil((n - p) / S).
template <class I>
void deinterleave(const float* in, int64_t n, int S, float* const* out) {
#ifdef __AVX512F__
  if constexpr (I::kWidth == 16) {
    if (S == 2) {
      const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
      const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
      int64_t j = 0;
      for (; 2 * j + 32 <= n; j += 16) {
        const __m512 a = _mm512_loadu_ps(in + 2 * j), b = _mm512_loadu_ps(in + 2 * j + 16);
        _mm512_storeu_ps(out[0] + j, _mm512_permutex2var_ps(a, even, b));
        _mm512_storeu_ps(out[1] + j, _mm512_permutex2var_ps(a, odd, b));
      }
      for (; 2 * j < n; ++j) {
        out[0][j] = in[2 * j];
        if (2 * j + 1 < n) out[1][j] = in[2 * j + 1];
      }
      return;
    }
  }
#endif
  for (int p = 0; p < S; ++p)
    for (int64_t j = 0; p + j * S < n; ++j) out[p][j] = in[p + j * S];
}

// dst[e] = src[e * step] for e < n, in whole vectors of dst: writes up to one vector past n (the
// caller leaves room, and writes what follows afterwards); reads nothing past src[(n - 1) * step].
template <class I>
inline void copy_run(const float* src, float* dst, int n, int step) {
  constexpr int W = I::kWidth;
  if (step == 1) {
    int e = 0;
    for (; e + W <= n; e += W) I::store(dst + e, I::load(src + e));
    if (e < n) I::store(dst + e, I::load_n(src + e, n - e));
    return;
  }
#ifdef __AVX512F__
  if constexpr (W == 16) {
    if (step == 2) {
      const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
      for (int e = 0; e < n; e += 16) {
        const int out = n - e < 16 ? n - e : 16, in = 2 * out - 1;  // inputs src[2e .. 2e + in)
        const __m512 a = _mm512_maskz_loadu_ps(I::mask(in), src + 2 * e);
        const __m512 b = _mm512_maskz_loadu_ps(I::mask(in - 16), src + 2 * e + 16);
        _mm512_storeu_ps(dst + e, _mm512_permutex2var_ps(a, even, b));
      }
      return;
    }
  }
#endif
  for (int e = 0; e < n; ++e) dst[e] = src[e * step];
}

// Runs are in increasing dst order, so each one overwrites what the previous one wrote past its
// end; the row's tail is zeroed last. dst must be writable one vector past the panel.
template <class I>
void im2col_panel(const float* const* tap_base, int taps, int64_t channels, int64_t channel_stride, int step,
                  const CopyRun* runs, int nruns, int cols, int nr, float* dst) {
  // Each channel's rows are a jump of channel_stride away, which no hardware prefetcher follows:
  // ask for channel c + kAhead's rows (of every tap and run) while copying channel c.
  constexpr int64_t kAhead = 4;
  for (int64_t c = 0; c < channels; ++c)
    for (int t = 0; t < taps; ++t) {
      const float* src = tap_base[t] + c * channel_stride;
      if (c + kAhead < channels)
        for (int r = 0; r < nruns; ++r) {
          const float* ahead = src + kAhead * channel_stride + runs[r].src_offset;
          for (int e = 0; e < runs[r].len * step; e += 16) __builtin_prefetch(ahead + e, 0, 3);
        }
      float* d = dst + (c * taps + t) * nr;
      for (int r = 0; r < nruns; ++r) copy_run<I>(src + runs[r].src_offset, d + runs[r].dst_offset, runs[r].len, step);
      for (int j = cols; j < nr; ++j) d[j] = 0.f;
    }
}

// Output channels [o0, o1) of one utterance by direct convolution: y[o][ho][wo] =
// act(b[o] + sum_{c,i,j} w[o][c][i][j] x[c][ho S + i][wo S + j]), read from the phase planes
// (tap_base[c * taps + t] = where tap t of channel c reads output (0, 0); row_stride between
// output rows). Reads up to one vector past a row. kGroup output channels at a time share each
// input vector: independent FMA chains (one chain alone waits on the FMA latency at every tap),
// each the same chain over c and taps as alone.
template <class I>
void conv2d_direct(const float* const* tap_base, int64_t row_stride, int64_t C, int taps, const float* w,
                   const float* b, int64_t o0, int64_t o1, int64_t Ho, int64_t Wo, bool relu, float* y) {
  using V = typename I::V;
  constexpr int W = I::kWidth, kGroup = 8;
  const int64_t K = C * taps;
  for (int64_t og = o0; og < o1; og += kGroup) {
    const int g = int(o1 - og < kGroup ? o1 - og : kGroup);
    for (int64_t ho = 0; ho < Ho; ++ho) {
      for (int64_t x = 0; x < Wo; x += W) {
        V acc[kGroup];
        for (int i = 0; i < kGroup; ++i) acc[i] = I::set1(i < g ? b[og + i] : 0.f);
        for (int64_t k = 0; k < K; ++k) {
          const V in = I::load(tap_base[k] + ho * row_stride + x);
          for (int i = 0; i < kGroup; ++i)
            if (i < g) acc[i] = I::fma(I::set1(w[(og + i) * K + k]), in, acc[i]);
        }
        const int n = int(Wo - x < W ? Wo - x : W);
        for (int i = 0; i < g; ++i) {
          const V v = relu ? I::max(acc[i], I::zero()) : acc[i];
          float* out = y + (og + i) * Ho * Wo + ho * Wo + x;
          if (n == W) I::store(out, v);
          else I::store_n(out, v, n);
        }
      }
    }
  }
}

}  // namespace wenet_rt::cpu
