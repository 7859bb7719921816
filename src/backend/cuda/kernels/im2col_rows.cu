// im2col for channels-last convolution as one GEMM, one row per output position:
// col[(b, ho, wo)][k], k = (i, j, c), row stride ldc. With the positions as GEMM columns and the
// output channels as rows, cuBLASLt adds the bias and ReLU in its epilogue and writes the
// channels-last output directly. Tap row i of a patch (kw * C entries) is contiguous in the input
// and in the column row: a warp copies one such run, in 16-byte vectors where C allows.
#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/kernels.h"

namespace wenet_rt::cuda_kernels {
namespace {

constexpr int kThreads = 256, kWarps = kThreads / 32;

// V: the copy unit (uint4, or the element type itself where rows are not 16-byte multiples).
template <typename T, typename V>
__global__ void __launch_bounds__(kThreads) im2col_rows_kernel(const T* __restrict__ x, T* __restrict__ col,
                                                               int runs, int H, int W, int C, int kh, int kw,
                                                               int stride, int Ho, int Wo, int64_t ldc) {
  pdl_wait_and_trigger();
  // 32-bit index arithmetic (the host checks the range): 64-bit division costs ~100 instructions.
  const int run = blockIdx.x * kWarps + threadIdx.x / 32;  // (b, ho, wo, i)
  if (run >= runs) return;
  const int pos = run / kh, i = run - pos * kh, bh = pos / Wo, wo = pos - bh * Wo, bi = bh / Ho, ho = bh - bi * Ho;
  constexpr int kElems = int(sizeof(V) / sizeof(T));
  const int len = kw * C / kElems;
  const V* src = reinterpret_cast<const V*>(x + ((int64_t(bi) * H + ho * stride + i) * W + wo * stride) * C);
  V* dst = reinterpret_cast<V*>(col + pos * ldc + i * kw * C);
  for (int e = threadIdx.x % 32; e < len; e += 32) dst[e] = src[e];
}

}  // namespace

void im2col_rows(const void* x, void* col, int64_t ldc, int64_t B, int64_t C, int64_t H, int64_t W, int64_t kh,
                 int64_t kw, int64_t stride, int64_t Ho, int64_t Wo, bool f16, KernelStream stream) {
  const int64_t runs = B * Ho * Wo * kh;
  if (runs == 0) return;
  const unsigned grid = unsigned((runs + kWarps - 1) / kWarps);
  dispatch_type(f16, [&](auto t) {
    using E = decltype(t);
    const auto launch = [&](auto kernel) {
      launch_kernel(stream, kernel, grid, kThreads, 0, static_cast<const E*>(x), static_cast<E*>(col), int(runs),
                    int(H), int(W), int(C), int(kh), int(kw), int(stride), int(Ho), int(Wo), ldc);
    };
    // Every run starts at a multiple of C (input) or of C and ldc (column) elements.
    constexpr int64_t kVec = 16 / sizeof(E);
    const auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
    if (C % kVec == 0 && ldc % kVec == 0 && aligned(x) && aligned(col)) launch(im2col_rows_kernel<E, uint4>);
    else launch(im2col_rows_kernel<E, E>);
  });
}

}  // namespace wenet_rt::cuda_kernels
