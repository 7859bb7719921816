// Swish (SiLU) applied in place after a cuBLASLt GEMM whose epilogue already added the bias:
// cuBLASLt has no swish epilogue.
#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/kernels.h"

namespace wenet_rt::cuda_kernels {
namespace {

template <typename T>
__global__ void swish_inplace_kernel(T* y, int64_t ldy, int64_t rows, int64_t cols) {
  pdl_wait_and_trigger();
  WENET_FOR_EACH_ROW_COL(r, c, rows, cols) {
    T* p = y + r * ldy + c;
    const float v = to_float(*p);
    *p = from_float<T>(v / (1.f + expf(-v)));
  }
}

// 16-byte vectors when rows are aligned (the usual case: FFN widths are multiples of 8).
template <typename T>
__global__ void swish_inplace_vec_kernel(T* y, int64_t ldy, int64_t rows, int vec_cols) {
  pdl_wait_and_trigger();
  constexpr int kVec = 16 / sizeof(T);
  WENET_FOR_EACH_ROW_COL(r, c, rows, vec_cols) {
    uint4* p = reinterpret_cast<uint4*>(y + r * ldy) + c;
    uint4 v = *p;
    T* e = reinterpret_cast<T*>(&v);
#pragma unroll
    for (int i = 0; i < kVec; ++i) {
      const float f = to_float(e[i]);
      e[i] = from_float<T>(f / (1.f + expf(-f)));
    }
    *p = v;
  }
}

}  // namespace

void swish_inplace(void* y, int64_t ldy, int64_t rows, int64_t cols, bool f16, KernelStream stream) {
  if (rows * cols == 0) return;
  const int vec = f16 ? 8 : 4;
  if ((reinterpret_cast<uintptr_t>(y) & 15u) == 0 && ldy % vec == 0 && cols % vec == 0) {
    const int64_t vcols = cols / vec;
    const int threads = threads_for_cols(vcols);
    dispatch_type(f16, [&](auto t) {
      using E = decltype(t);
      launch_kernel(stream, swish_inplace_vec_kernel<E>, grid_for_rows(rows, vcols, threads), threads, 0,
                    static_cast<E*>(y), ldy, rows, int(vcols));
    });
    return;
  }
  const int threads = threads_for_cols(cols);
  dispatch_type(f16, [&](auto t) {
    using E = decltype(t);
    launch_kernel(stream, swish_inplace_kernel<E>, grid_for_rows(rows, cols, threads), threads, 0, static_cast<E*>(y),
                  ldy, rows, cols);
  });
}

}  // namespace wenet_rt::cuda_kernels
