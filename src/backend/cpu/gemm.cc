#include "backend/cpu/gemm.h"

#include <algorithm>
#include <cstring>

namespace wenet_rt::cpu {

int pick_nr(int64_t n) {
  int best = 48;
  int64_t waste = -1;
  for (int nr : {48, 64, 32, 16}) {
    const int64_t w = (n + nr - 1) / nr * nr - n;
    if (waste < 0 || w < waste) best = nr, waste = w;
  }
  return best;
}

void pack_nk(const float* w, int64_t ldw, int64_t n, int64_t k, int nr, float* dst) {
  const int64_t panels = (n + nr - 1) / nr;
  for (int64_t p = 0; p < panels; ++p) {
    float* out = dst + p * k * nr;
    const int64_t cols = std::min<int64_t>(nr, n - p * nr);
    // Rows of W read contiguously, written with a stride of nr (the panel is the smaller side).
    for (int64_t j = 0; j < cols; ++j) {
      const float* src = w + (p * nr + j) * ldw;
      for (int64_t kk = 0; kk < k; ++kk) out[kk * nr + j] = src[kk];
    }
    for (int64_t kk = 0; kk < k; ++kk)
      for (int64_t j = cols; j < nr; ++j) out[kk * nr + j] = 0.f;
  }
}

void pack_kn(const float* b, int64_t ldb, int64_t k, int64_t n, int nr, float* dst) {
  const int64_t panels = (n + nr - 1) / nr;
  for (int64_t p = 0; p < panels; ++p) {
    float* out = dst + p * k * nr;
    const int64_t cols = std::min<int64_t>(nr, n - p * nr);
    for (int64_t kk = 0; kk < k; ++kk) {
      std::memcpy(out + kk * nr, b + kk * ldb + p * nr, size_t(cols) * sizeof(float));
      std::fill(out + kk * nr + cols, out + (kk + 1) * nr, 0.f);
    }
  }
}

void gemm(ThreadPool& pool, int64_t m, const float* a, int64_t lda, const PackedB& b, float* c, int64_t ldc,
          const Epilogue& ep) {
  if (m <= 0 || b.n <= 0) return;
  const KernelTable& kt = kernels();
  const int64_t panels = b.panels();
  // Row chunks: a multiple of every kernel's row tile (4, 6, 8, 12), small enough that the tasks
  // outnumber the threads where the shape allows.
  int64_t rc = 96;
  while (rc > 24 && ((m + rc - 1) / rc) * panels < 4 * pool.size()) rc -= 24;
  const int64_t chunks = (m + rc - 1) / rc;
  pool.run(chunks * panels, [&](int64_t task, int) {
    const int64_t chunk = task / panels, p = task % panels;
    const int64_t m0 = chunk * rc, rows = std::min(rc, m - m0), n0 = p * b.nr;
    Epilogue e = ep;
    if (e.bias) e.bias += n0;
    if (e.row_bias) e.row_bias += m0;
    if (e.residual) e.residual += m0 * e.ldr + n0;
    kt.gemm_panel(rows, b.k, a + m0 * lda, lda, b.panel(p), b.nr, int(std::min<int64_t>(b.nr, b.n - n0)),
                  c + m0 * ldc + n0, ldc, e);
  });
}

}  // namespace wenet_rt::cpu
