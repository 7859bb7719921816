// FP32 GEMM of the CPU backend: B packed once (weights at their first use; attention keys and
// values per call), the product split over the thread pool in (row chunk x panel) tasks, the
// epilogue fused into the stores.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backend/cpu/kernels/kernels.h"
#include "backend/cpu/thread_pool.h"

namespace wenet_rt::cpu {

// The panel width for N columns: the one of 48 / 64 / 32 / 16 that wastes the fewest padded
// columns, earlier first on ties (AVX-512 runs 48 as 8 x 3 vectors, 64 as 6 x 4, 32 as 12 x 2;
// 6 x 4 ran 5-30% faster than 12 x 2 at the full-size model's shapes).
int pick_nr(int64_t n);
inline size_t packed_floats(int64_t n, int64_t k, int nr) { return size_t((n + nr - 1) / nr * nr) * size_t(k); }
// W [N, K] (rows = output columns, as a torch.nn.Linear weight), row stride ldw, into dst.
void pack_nk(const float* w, int64_t ldw, int64_t n, int64_t k, int nr, float* dst);
// B [K, N] (k-major), row stride ldb, into dst.
void pack_kn(const float* b, int64_t ldb, int64_t k, int64_t n, int nr, float* dst);

// C[0:M, 0:N] = epilogue(A B), A [M, K] with row stride lda.
void gemm(ThreadPool& pool, int64_t m, const float* a, int64_t lda, const PackedB& b, float* c, int64_t ldc,
          const Epilogue& ep);

}  // namespace wenet_rt::cpu
