// LayerNorm of rows (statistics in float, two passes over the row held in L1).
#pragma once

#include <cmath>

#include "backend/cpu/kernels/simd.h"

namespace wenet_rt::cpu {

// y = (x - mean) / sqrt(var + 1e-5) * gamma + beta over one row of D; y may alias x.
template <class I>
inline void layer_norm_row(const float* x, float* y, int64_t D, const float* gamma, const float* beta) {
  using V = typename I::V;
  constexpr int W = I::kWidth;
  V s = I::zero();
  int64_t d = 0;
  for (; d + W <= D; d += W) s = I::add(s, I::load(x + d));
  if (d < D) s = I::add(s, I::load_n(x + d, int(D - d)));
  const float mean = I::reduce_add(s) / float(D);
  const V m = I::set1(mean);
  V q = I::zero();
  for (d = 0; d + W <= D; d += W) {
    const V c = I::sub(I::load(x + d), m);
    q = I::fma(c, c, q);
  }
  float tail = 0.f;
  for (int64_t e = d; e < D; ++e) tail += (x[e] - mean) * (x[e] - mean);
  const float inv = 1.f / std::sqrt((I::reduce_add(q) + tail) / float(D) + 1e-5f);
  const V vi = I::set1(inv);
  for (d = 0; d + W <= D; d += W)
    I::store(y + d, I::fma(I::mul(I::sub(I::load(x + d), m), vi), I::load(gamma + d), I::load(beta + d)));
  if (d < D) {
    const int n = int(D - d);
    I::store_n(y + d, I::fma(I::mul(I::sub(I::load_n(x + d, n), m), vi), I::load_n(gamma + d, n), I::load_n(beta + d, n)),
               n);
  }
}

template <class I>
void layer_norm_rows(const float* x, int64_t ldx, float* y, int64_t ldy, int64_t rows, int64_t D, const float* gamma,
                     const float* beta) {
  for (int64_t r = 0; r < rows; ++r) layer_norm_row<I>(x + r * ldx, y + r * ldy, D, gamma, beta);
}

}  // namespace wenet_rt::cpu
