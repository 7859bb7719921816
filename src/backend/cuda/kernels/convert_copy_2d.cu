// Strided 2-D copy with float <-> half conversion: host float32 data staged on the device becomes
// F16 activations (copy_in), and F16 activations become float32 for the host (copy_out).
#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/kernels.h"

namespace wenet_rt::cuda_kernels {
namespace {

template <typename S, typename D>
__global__ void convert_copy_2d_kernel(const S* src, int64_t ld_src, D* dst, int64_t ld_dst, int64_t rows,
                                       int64_t cols) {
  pdl_wait_and_trigger();
  WENET_FOR_EACH_ROW_COL(r, c, rows, cols) {
    dst[r * ld_dst + c] = from_float<D>(to_float(src[r * ld_src + c]));
  }
}

}  // namespace

void convert_copy_2d(const void* src, int64_t ld_src, bool src_f16, void* dst, int64_t ld_dst, bool dst_f16,
                     int64_t rows, int64_t cols, KernelStream stream) {
  if (rows * cols == 0) return;
  const int threads = threads_for_cols(cols);
  const dim3 grid = grid_for_rows(rows, cols, threads);
  dispatch_type(src_f16, [&](auto s) {
    using S = decltype(s);
    dispatch_type(dst_f16, [&](auto d) {
      using D = decltype(d);
      launch_kernel(stream, convert_copy_2d_kernel<S, D>, grid, threads, 0, static_cast<const S*>(src), ld_src,
                    static_cast<D*>(dst), ld_dst, rows, cols);
    });
  });
}

}  // namespace wenet_rt::cuda_kernels
