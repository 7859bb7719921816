// Scaled dot-product attention (WeNet's rel-pos variant included) for a block of query rows of one
// head: scores of the block against the keys it may see, softmax, times the values. Only the
// block's [rows x keys] scores exist at any time (in the caller's per-thread scratch).
//
// Relative positions cost no second product: with q' = [q + u, q + v] * scale and keys packed as
// [k | p], q' . [k | p] = ((q + u) k + (q + v) p) * scale, one GEMM of depth 2 dk.
#pragma once

#include "backend/cpu/kernels/gemm.h"
#include "backend/cpu/kernels/kernels.h"
#include "backend/cpu/kernels/simd.h"

namespace wenet_rt::cpu {

// Unnormalized softmax of row[0:visible] in place: exp(row - max), row[visible:width] = 0; returns
// 1 / the sum (0 when nothing is visible). The caller scales its product with the values instead
// of the row (dk columns per row rather than `width`).
template <class I>
inline float softmax_row_exp(float* row, int64_t visible, int64_t width) {
  using V = typename I::V;
  constexpr int W = I::kWidth;
  int64_t j = 0;
  float inv = 0.f;
  if (visible > 0) {
    float mx = row[0];
    if (visible >= W) {
      V m = I::load(row);
      for (j = W; j + W <= visible; j += W) m = I::max(m, I::load(row + j));
      mx = I::reduce_max(m);
    }
    for (; j < visible; ++j) mx = row[j] > mx ? row[j] : mx;
    const V vm = I::set1(mx);
    V s = I::zero();
    for (j = 0; j + W <= visible; j += W) {
      const V e = I::exp(I::sub(I::load(row + j), vm));
      I::store(row + j, e);
      s = I::add(s, e);
    }
    if (j < visible) {  // the last partial vector, masked: no scalar exp per row
      const int n = int(visible - j);
      I::store_n(row + j, I::exp(I::sub(I::load_n(row + j, n), vm)), n);
      s = I::add(s, I::load_n(row + j, n));
    }
    inv = 1.f / I::reduce_add(s);
  }
  for (j = visible < 0 ? 0 : visible; j < width; ++j) row[j] = 0.f;
  return inv;
}

template <class I>
void attention_block(const AttentionHead& a, float* scratch) {
  constexpr int W = I::kWidth;
  const int64_t rows = a.rows, dk = a.dk;
  const bool rel = a.bias_u != nullptr;
  const int64_t kd = rel ? 2 * dk : dk;
  // Keys row r sees; the block's widest row bounds the products.
  const auto visible = [&](int64_t r) {
    const int64_t v = a.causal ? a.first_query + r + 1 : a.key_len;
    return v < a.key_len ? v : a.key_len;
  };
  int64_t widest = 0;
  for (int64_t r = 0; r < rows; ++r) widest = visible(r) > widest ? visible(r) : widest;
  if (widest <= 0) {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t d = 0; d < dk; ++d) a.out[r * a.ldo + d] = 0.f;
    return;
  }
  // q' rows: [q + u | q + v] * scale (or q * scale).
  float* qs = scratch;
  const typename I::V sc = I::set1(a.scale);
  for (int64_t r = 0; r < rows; ++r) {
    const float* q = a.q + r * a.ldq;
    float* o = qs + r * kd;
    int64_t d = 0;
    for (; d + W <= dk; d += W) {
      const typename I::V x = I::load(q + d);
      if (rel) {
        I::store(o + d, I::mul(I::add(x, I::load(a.bias_u + d)), sc));
        I::store(o + dk + d, I::mul(I::add(x, I::load(a.bias_v + d)), sc));
      } else {
        I::store(o + d, I::mul(x, sc));
      }
    }
    for (; d < dk; ++d) {
      if (rel) {
        o[d] = (q[d] + a.bias_u[d]) * a.scale;
        o[dk + d] = (q[d] + a.bias_v[d]) * a.scale;
      } else {
        o[d] = q[d] * a.scale;
      }
    }
  }
  // Scores [rows x widest] against the key panels that hold visible keys.
  const int nr = a.keys.nr;
  const int64_t panels = (widest + nr - 1) / nr, ld = panels * nr;
  float* s = qs + rows * kd;
  for (int64_t p = 0; p < panels; ++p) {
    const int64_t n0 = p * nr;
    const int n_valid = int(widest - n0 < nr ? widest - n0 : nr);
    gemm_panel<I>(rows, kd, qs, kd, a.keys.panel(p), nr, n_valid, s + n0, ld, Epilogue{});
  }
  float* inv = s + rows * ld;
  for (int64_t r = 0; r < rows; ++r) inv[r] = softmax_row_exp<I>(s + r * ld, visible(r), widest);
  // out = P [rows x widest] V [widest x dk], P = the exps times their row's 1 / sum.
  for (int64_t p = 0; p < a.values.panels(); ++p) {
    const int64_t n0 = p * a.values.nr;
    const int n_valid = int(dk - n0 < a.values.nr ? dk - n0 : a.values.nr);
    gemm_panel<I>(rows, widest, s, ld, a.values.panel(p), a.values.nr, n_valid, a.out + n0, a.ldo, Epilogue{});
  }
  for (int64_t r = 0; r < rows; ++r) {
    float* o = a.out + r * a.ldo;
    const typename I::V f = I::set1(inv[r]);
    for (int64_t d = 0; d < dk; d += W) I::store_n(o + d, I::mul(I::load_n(o + d, int(dk - d)), f), int(dk - d));
  }
}

}  // namespace wenet_rt::cpu
