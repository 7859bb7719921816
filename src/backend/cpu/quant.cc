#include "backend/cpu/quant.h"

#include <algorithm>
#include <cmath>

#include "backend/cpu/gemm.h"

namespace wenet_rt::cpu {

QuantLayout int8_layout(int64_t n, int64_t k) {
  QuantLayout q;
  q.n = n;
  q.k = k;
  q.k4 = (k + 3) / 4 * 4;
  q.nr = pick_nr(n);
  q.n_padded = (n + q.nr - 1) / q.nr * q.nr;
  const size_t w = (size_t(q.n_padded * q.k4) + 63) / 64 * 64;
  q.bytes = w + size_t(q.n_padded) * (sizeof(float) + sizeof(int32_t));
  return q;
}

PackedInt8 quantize_weights(const float* w, int64_t ldw, int64_t n, int64_t k, const QuantLayout& q, std::byte* mem) {
  auto* data = reinterpret_cast<int8_t*>(mem);
  auto* scale = reinterpret_cast<float*>(mem + (size_t(q.n_padded * q.k4) + 63) / 64 * 64);
  auto* col_sum = reinterpret_cast<int32_t*>(scale + q.n_padded);
  std::fill(data, data + q.n_padded * q.k4, int8_t(0));
  for (int64_t j = 0; j < q.n_padded; ++j) {
    scale[j] = 0.f;
    col_sum[j] = 0;
    if (j >= n) continue;
    const float* row = w + j * ldw;
    float amax = 0.f;
    for (int64_t kk = 0; kk < k; ++kk) amax = std::max(amax, std::abs(row[kk]));
    const float s = amax > 0.f ? amax / 127.f : 1.f;
    scale[j] = s;
    // [panel][k / 4][nr][4]
    int8_t* panel = data + (j / q.nr) * q.k4 * q.nr;
    const int64_t c = j % q.nr;
    int32_t sum = 0;
    for (int64_t kk = 0; kk < k; ++kk) {
      const int32_t v = int32_t(std::clamp(std::nearbyint(row[kk] / s), -127.f, 127.f));
      panel[((kk / 4) * q.nr + c) * 4 + kk % 4] = int8_t(v);
      sum += v;
    }
    col_sum[j] = sum;
  }
  PackedInt8 p;
  p.data = data;
  p.scale = scale;
  p.col_sum = col_sum;
  p.n = n;
  p.k = k;
  p.k4 = q.k4;
  p.nr = q.nr;
  return p;
}

void qgemm(ThreadPool& pool, const KernelTable& kt, Arena& arena, int64_t m, const float* a, int64_t lda,
           const PackedInt8& w, float* c, int64_t ldc, const Epilogue& ep) {
  if (m <= 0 || w.n <= 0) return;
  const int64_t ldq = (w.k4 + 63) / 64 * 64;
  auto* q = static_cast<uint8_t*>(arena.allocate(size_t(m * ldq)));
  auto* scale = static_cast<float*>(arena.allocate(size_t(m) * sizeof(float)));
  auto* zero = static_cast<int32_t*>(arena.allocate(size_t(m) * sizeof(int32_t)));
  constexpr int64_t kRows = 32;
  pool.run((m + kRows - 1) / kRows, [&](int64_t task, int) {
    const int64_t m0 = task * kRows, rows = std::min(kRows, m - m0);
    kt.quantize_rows(a + m0 * lda, lda, rows, w.k, w.k4, q + m0 * ldq, ldq, scale + m0, zero + m0);
  });
  const int64_t panels = w.panels();
  int64_t rc = 96;
  while (rc > 24 && ((m + rc - 1) / rc) * panels < 4 * pool.size()) rc -= 24;
  const int64_t chunks = (m + rc - 1) / rc;
  pool.run(chunks * panels, [&](int64_t task, int) {
    const int64_t chunk = task / panels, p = task % panels;
    const int64_t m0 = chunk * rc, rows = std::min(rc, m - m0), n0 = p * w.nr;
    Epilogue e = ep;
    if (e.bias) e.bias += n0;
    if (e.row_bias) e.row_bias += m0;
    if (e.residual) e.residual += m0 * e.ldr + n0;
    QuantRows qa{q + m0 * ldq, ldq, scale + m0, zero + m0};
    kt.qgemm_panel(rows, qa, w, p, int(std::min<int64_t>(w.nr, w.n - n0)), c + m0 * ldc + n0, ldc, e);
  });
}

}  // namespace wenet_rt::cpu
