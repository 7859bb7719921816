// x * scale + positional table row (the embedding's x * sqrt(d) + PE), one pass.
#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/kernels.h"

namespace wenet_rt::cuda_kernels {
namespace {

template <typename T>
__global__ void scale_add_pos_kernel(const T* x, int64_t ldx, float scale, const T* pos, int64_t ldp, T* y,
                                     int64_t ldy, int64_t rows, int64_t cols, int64_t Tn) {
  pdl_wait_and_trigger();
  WENET_FOR_EACH_ROW_COL(r, c, rows, cols) {
    float v = to_float(x[r * ldx + c]) * scale;
    if (pos) v += to_float(pos[(r % Tn) * ldp + c]);
    y[r * ldy + c] = from_float<T>(v);
  }
}

}  // namespace

void scale_add_pos(const void* x, int64_t ldx, float scale, const void* pos, int64_t ldp, void* y, int64_t ldy,
                   int64_t rows, int64_t cols, int64_t T, bool f16, KernelStream stream) {
  if (rows * cols == 0) return;
  const int threads = threads_for_cols(cols);
  dispatch_type(f16, [&](auto t) {
    using E = decltype(t);
    launch_kernel(stream, scale_add_pos_kernel<E>, grid_for_rows(rows, cols, threads), threads, 0,
                  static_cast<const E*>(x), ldx, scale, static_cast<const E*>(pos), ldp, static_cast<E*>(y), ldy, rows,
                  cols, T);
  });
}

}  // namespace wenet_rt::cuda_kernels
