// Token embedding lookup * scale + positional table row (the decoder's input layer), one pass.
#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/kernels.h"

namespace wenet_rt::cuda_kernels {
namespace {

template <typename T>
__global__ void embed_scale_add_pos_kernel(const int32_t* ids, const T* table, int64_t ld_table, float scale,
                                           const T* pos, int64_t ldp, T* y, int64_t ldy, int64_t rows, int64_t cols,
                                           int64_t Tn, int64_t V, int32_t* error_flag) {
  pdl_wait_and_trigger();
  WENET_FOR_EACH_ROW_COL(r, c, rows, cols) {
    const int32_t id = ids[r];
    if (id < 0 || id >= V) {
      // Cannot throw on the device: record the bad id for the host and write zeros.
      if (c == 0 && error_flag) {
        error_flag[1] = id;
        error_flag[2] = int32_t(V);
        __threadfence_system();
        error_flag[0] = 1;
      }
      y[r * ldy + c] = from_float<T>(0.f);
      continue;
    }
    y[r * ldy + c] = from_float<T>(to_float(table[id * ld_table + c]) * scale + to_float(pos[(r % Tn) * ldp + c]));
  }
}

}  // namespace

void embed_scale_add_pos(const int32_t* ids, const void* table, int64_t ld_table, float scale, const void* pos,
                         int64_t ldp, void* y, int64_t ldy, int64_t rows, int64_t cols, int64_t T, int64_t V,
                         int32_t* error_flag, bool f16, KernelStream stream) {
  if (rows * cols == 0) return;
  const int threads = threads_for_cols(cols);
  dispatch_type(f16, [&](auto t) {
    using E = decltype(t);
    launch_kernel(stream, embed_scale_add_pos_kernel<E>, grid_for_rows(rows, cols, threads), threads, 0, ids,
                  static_cast<const E*>(table), ld_table, scale, static_cast<const E*>(pos), ldp, static_cast<E*>(y),
                  ldy, rows, cols, T, V, error_flag);
  });
}

}  // namespace wenet_rt::cuda_kernels
