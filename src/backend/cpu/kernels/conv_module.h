// The conformer convolution module between its pointwise convolutions, for a range of frames of
// one utterance: GLU over channels, depthwise convolution over time, LayerNorm over channels (or
// BatchNorm folded into the convolution at load), activation; one pass, channels vectorized.
#pragma once

#include "backend/cpu/kernels/gemm.h"
#include "backend/cpu/kernels/kernels.h"
#include "backend/cpu/kernels/layer_norm.h"
#include "backend/cpu/kernels/simd.h"

namespace wenet_rt::cpu {

template <class I>
void conv_module_rows(const ConvModuleRows& c, float* scratch) {
  using V = typename I::V;
  constexpr int W = I::kWidth;
  const int64_t D = c.D, K = c.K;
  // GLU of the input frames the outputs [t0, t1) read: s in [t0 - pad, t1 - pad + K - 1).
  const int64_t s0 = c.t0 - c.pad, s1 = c.t1 - c.pad + K - 1;
  float* g = scratch;
  for (int64_t s = s0; s < s1; ++s) {
    float* out = g + (s - s0) * D;
    const bool from_left = s < 0 && c.left != nullptr;
    if (!from_left && (s < 0 || s >= c.T_in)) {
      const float* fill = s < 0 && c.causal_pad ? c.causal_pad : nullptr;
      for (int64_t d = 0; d < D; ++d) out[d] = fill ? fill[d] : 0.f;
      continue;
    }
    const float* in = from_left ? c.left + (K - 1 + s) * c.ldl : c.x + s * c.ldx;
    int64_t d = 0;
    for (; d + W <= D; d += W) I::store(out + d, I::mul(I::load(in + d), sigmoid<I>(I::load(in + D + d))));
    for (; d < D; ++d) out[d] = in[d] / (1.f + Scalar::exp(-in[D + d]));
  }
  float* row = g + (s1 - s0) * D;
  for (int64_t t = c.t0; t < c.t1; ++t) {
    const float* win = g + (t - c.t0) * D;  // frame t - pad
    int64_t d = 0;
    for (; d + W <= D; d += W) {
      V acc = I::load(c.b + d);
      for (int64_t j = 0; j < K; ++j) acc = I::fma(I::load(c.w_t + j * D + d), I::load(win + j * D + d), acc);
      I::store(row + d, acc);
    }
    for (; d < D; ++d) {
      float acc = c.b[d];
      for (int64_t j = 0; j < K; ++j) acc += c.w_t[j * D + d] * win[j * D + d];
      row[d] = acc;
    }
    if (c.gamma) layer_norm_row<I>(row, row, D, c.gamma, c.beta);
    float* y = c.y + t * c.ldy;
    for (d = 0; d + W <= D; d += W) I::store(y + d, activate<I>(I::load(row + d), c.act));
    for (; d < D; ++d) y[d] = Scalar::V(activate<Scalar>(row[d], c.act));
  }
}

}  // namespace wenet_rt::cpu
