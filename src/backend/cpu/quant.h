// INT8 linear layers (CpuBackendOptions::int8): weights quantized once per output channel,
// activations per row at every call, as ONNX Runtime's quantize_dynamic (which quantizes
// activations per tensor; per row costs the same and keeps more precision).
#pragma once

#include <cstddef>
#include <cstdint>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/kernels/kernels.h"
#include "backend/cpu/thread_pool.h"

namespace wenet_rt::cpu {

struct QuantLayout {
  int64_t n = 0, k = 0, k4 = 0, n_padded = 0;
  int nr = 0;
  size_t bytes = 0;  // weights + scales + column sums
};
QuantLayout int8_layout(int64_t n, int64_t k);
// W [N, K] float32 (row stride ldw) into `mem` (layout.bytes, 64-byte aligned).
PackedInt8 quantize_weights(const float* w, int64_t ldw, int64_t n, int64_t k, const QuantLayout& layout,
                            std::byte* mem);
// C[0:M, 0:N] = epilogue(A W^T) with A quantized per row into arena scratch.
void qgemm(ThreadPool& pool, const KernelTable& kt, Arena& arena, int64_t m, const float* a, int64_t lda,
           const PackedInt8& w, float* c, int64_t ldc, const Epilogue& ep);

}  // namespace wenet_rt::cpu
