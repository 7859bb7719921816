// Global CMVN: float32 features in, (x - mean) * istd out in the activation dtype.
#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/kernels.h"

namespace wenet_rt::cuda_kernels {
namespace {

template <typename T>
__global__ void cmvn_kernel(const float* x, int64_t ldx, const float* mean, const float* istd, T* y, int64_t ldy,
                            int64_t rows, int64_t cols) {
  pdl_wait_and_trigger();
  WENET_FOR_EACH_ROW_COL(r, c, rows, cols) {
    y[r * ldy + c] = from_float<T>((x[r * ldx + c] - mean[c]) * istd[c]);
  }
}

}  // namespace

void cmvn(const float* x, int64_t ldx, const float* mean, const float* istd, void* y, int64_t ldy, int64_t rows,
          int64_t cols, bool f16, KernelStream stream) {
  if (rows * cols == 0) return;
  const int threads = threads_for_cols(cols);
  dispatch_type(f16, [&](auto t) {
    using T = decltype(t);
    launch_kernel(stream, cmvn_kernel<T>, grid_for_rows(rows, cols, threads), threads, 0, x, ldx, mean, istd,
                  static_cast<T*>(y), ldy, rows, cols);
  });
}

}  // namespace wenet_rt::cuda_kernels
