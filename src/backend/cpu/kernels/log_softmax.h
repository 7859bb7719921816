// Row reductions of the vocabulary ops: log-sum-exp (max, then the sum of exp(x - max)) and the
// subtraction that turns logits into log-probs.
#pragma once

#include <cmath>

#include "backend/cpu/kernels/simd.h"

namespace wenet_rt::cpu {

template <class I>
float log_sum_exp(const float* x, int64_t n) {
  using V = typename I::V;
  constexpr int W = I::kWidth;
  float mx = x[0];
  int64_t i = 0;
  if (n >= W) {
    V m = I::load(x);
    for (i = W; i + W <= n; i += W) m = I::max(m, I::load(x + i));
    mx = I::reduce_max(m);
  }
  for (; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
  const V vm = I::set1(mx);
  V s = I::zero();
  for (i = 0; i + W <= n; i += W) s = I::add(s, I::exp(I::sub(I::load(x + i), vm)));
  float tail = 0.f;
  for (; i < n; ++i) tail += Scalar::exp(x[i] - mx);
  return mx + std::log(I::reduce_add(s) + tail);
}

template <class I>
void sub_const(const float* x, float c, float* y, int64_t n) {
  constexpr int W = I::kWidth;
  const typename I::V vc = I::set1(c);
  int64_t i = 0;
  for (; i + W <= n; i += W) I::store(y + i, I::sub(I::load(x + i), vc));
  for (; i < n; ++i) y[i] = x[i] - c;
}

}  // namespace wenet_rt::cpu
