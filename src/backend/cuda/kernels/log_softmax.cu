// Row-wise log-softmax: one block per row, a single online (max, sum-exp) pass in FP32
// (row_log_sum_exp.cuh) and a writing pass; float32 output whatever the input dtype (CTC and
// decoder scores).
#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/kernels.h"
#include "backend/cuda/kernels/row_log_sum_exp.cuh"

namespace wenet_rt::cuda_kernels {
namespace {

template <typename T>
__global__ void __launch_bounds__(kRowLogSumExpThreads) log_softmax_kernel(const T* x, int64_t ldx, float* y,
                                                                           int64_t ldy, int cols) {
  pdl_wait_and_trigger();
  const T* in = x + int64_t(blockIdx.x) * ldx;
  float* out = y + int64_t(blockIdx.x) * ldy;
  const float l = block_row_log_sum_exp<kRowLogSumExpThreads>(in, cols);
  for (int c = threadIdx.x; c < cols; c += kRowLogSumExpThreads) out[c] = to_float(in[c]) - l;
}

}  // namespace

void log_softmax(const void* x, int64_t ldx, float* y, int64_t ldy, int64_t rows, int64_t cols, bool f16,
                 KernelStream stream) {
  if (rows == 0) return;
  dispatch_type(f16, [&](auto t) {
    using E = decltype(t);
    launch_kernel(stream, log_softmax_kernel<E>, unsigned(rows), kRowLogSumExpThreads, 0, static_cast<const E*>(x), ldx,
                  y, ldy, int(cols));
  });
}

}  // namespace wenet_rt::cuda_kernels
