// Rows into and out of ring pools (the streaming encoder's per-stream caches): frame a of slot s
// is row s * R + a % R. One block row per (item, frame), threads over the columns; the per-item
// slot / first frame / length come from device memory, so a batch's copies are one launch.
#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/kernels.h"

namespace wenet_rt::cuda_kernels {
namespace {

template <typename T>
__global__ void ring_write_rows_kernel(const T* x, int64_t ldx, const int32_t* lens, const int32_t* slots,
                                       const int32_t* first, int T_, int C, int R, int slot_count, T* pool,
                                       int64_t ldp, int64_t rows) {
  pdl_wait_and_trigger();
  WENET_FOR_EACH_ROW_COL(r, c, rows, C) {
    const int b = int(r / T_), t = int(r % T_);
    const int len = lens[b], slot = slots[b], f0 = first[b];
    // The ring keeps the newest R frames: only those are written (no two rows of an item collide).
    if (slot < 0 || slot >= slot_count || f0 < 0 || len < 0 || len > T_ || t >= len || t < len - R) continue;
    const int64_t dst = int64_t(slot) * R + (int64_t(f0) + t) % R;
    pool[dst * ldp + c] = x[r * ldx + c];
  }
}

template <typename T>
__global__ void ring_read_rows_kernel(const T* pool, int64_t ldp, const int32_t* slots, const int32_t* first,
                                      int T_, int C, int R, int slot_count, const T* fill, T* y, int64_t ldy,
                                      int64_t rows) {
  pdl_wait_and_trigger();
  WENET_FOR_EACH_ROW_COL(r, c, rows, C) {
    const int b = int(r / T_), t = int(r % T_);
    const int slot = slots[b];
    const int64_t f = int64_t(first[b]) + t;
    const bool in_pool = f >= 0 && slot >= 0 && slot < slot_count;
    y[r * ldy + c] = in_pool ? pool[(int64_t(slot) * R + f % R) * ldp + c] : fill[c];
  }
}

}  // namespace

void ring_write_rows(const void* x, int64_t ldx, const int32_t* lens, const int32_t* slots, const int32_t* first, int B,
                     int T, int C, int R, int slot_count, void* pool, int64_t ldp, bool f16, KernelStream stream) {
  const int64_t rows = int64_t(B) * T;
  if (rows == 0 || C == 0) return;
  const int threads = threads_for_cols(C);
  dispatch_type(f16, [&](auto e) {
    using E = decltype(e);
    launch_kernel(stream, ring_write_rows_kernel<E>, grid_for_rows(rows, C, threads), threads, 0,
                  static_cast<const E*>(x), ldx, lens, slots, first, T, C, R, slot_count, static_cast<E*>(pool), ldp,
                  rows);
  });
}

void ring_read_rows(const void* pool, int64_t ldp, const int32_t* slots, const int32_t* first, int B, int T, int C,
                    int R, int slot_count, const void* fill, void* y, int64_t ldy, bool f16, KernelStream stream) {
  const int64_t rows = int64_t(B) * T;
  if (rows == 0 || C == 0) return;
  const int threads = threads_for_cols(C);
  dispatch_type(f16, [&](auto e) {
    using E = decltype(e);
    launch_kernel(stream, ring_read_rows_kernel<E>, grid_for_rows(rows, C, threads), threads, 0,
                  static_cast<const E*>(pool), ldp, slots, first, T, C, R, slot_count, static_cast<const E*>(fill),
                  static_cast<E*>(y), ldy, rows);
  });
}

}  // namespace wenet_rt::cuda_kernels
