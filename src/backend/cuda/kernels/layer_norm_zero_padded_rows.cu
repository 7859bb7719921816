// LayerNorm over the last axis (FP32 statistics, eps 1e-5), one warp per row, with the option of
// writing zeros for padded frames (t >= lens[b]) in the same pass: WeNet masks the conv module's
// input that way. In place (x == y) is safe: a warp reads its whole row before writing it.
#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/kernels.h"

namespace wenet_rt::cuda_kernels {
namespace {

constexpr int kWarpsPerBlock = 4;

// kPerLane > 0: the row lives in registers (cols <= 32 * kPerLane); 0: any width, re-reading x.
template <typename T, int kPerLane>
__global__ void layer_norm_kernel(const T* x, int64_t ldx, T* y, int64_t ldy, const T* gamma, const T* beta,
                                  int64_t rows, int cols, int64_t Tn, const int32_t* zero_lens) {
  pdl_wait_and_trigger();
  const int64_t row = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const T* in = x + row * ldx;
  T* out = y + row * ldy;
  if (zero_lens && (row % Tn) >= zero_lens[row / Tn]) {
    for (int c = lane; c < cols; c += 32) out[c] = from_float<T>(0.f);
    return;
  }
  const float inv_n = 1.f / float(cols);
  if constexpr (kPerLane > 0) {
    float v[kPerLane];
    float sum = 0.f;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int c = lane + 32 * i;
      v[i] = c < cols ? to_float(in[c]) : 0.f;
      sum += v[i];
    }
    const float mean = warp_sum(sum) * inv_n;
    float sq = 0.f;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int c = lane + 32 * i;
      const float d = c < cols ? v[i] - mean : 0.f;
      sq += d * d;
    }
    const float inv = rsqrtf(warp_sum(sq) * inv_n + 1e-5f);
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int c = lane + 32 * i;
      if (c < cols) out[c] = from_float<T>((v[i] - mean) * inv * to_float(gamma[c]) + to_float(beta[c]));
    }
  } else {
    float sum = 0.f;
    for (int c = lane; c < cols; c += 32) sum += to_float(in[c]);
    const float mean = warp_sum(sum) * inv_n;
    float sq = 0.f;
    for (int c = lane; c < cols; c += 32) {
      const float d = to_float(in[c]) - mean;
      sq += d * d;
    }
    const float inv = rsqrtf(warp_sum(sq) * inv_n + 1e-5f);
    for (int c = lane; c < cols; c += 32)
      out[c] = from_float<T>((to_float(in[c]) - mean) * inv * to_float(gamma[c]) + to_float(beta[c]));
  }
}

// Fast path: the row is kChunks x 32 lanes x 16 bytes; gamma / beta are fetched together with the
// row, before the reductions, so one memory round trip covers all loads.
template <typename T, int kChunks>
__global__ void layer_norm_vec_kernel(const T* x, int64_t ldx, T* y, int64_t ldy, const T* gamma, const T* beta,
                                      int64_t rows, int64_t Tn, const int32_t* zero_lens) {
  pdl_wait_and_trigger();
  constexpr int kVec = 16 / sizeof(T), kPerLane = kChunks * kVec, cols = kChunks * 32 * kVec;
  const int64_t row = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  T* out = y + row * ldy;
  if (zero_lens && (row % Tn) >= zero_lens[row / Tn]) {
#pragma unroll
    for (int ch = 0; ch < kChunks; ++ch) reinterpret_cast<uint4*>(out)[ch * 32 + lane] = make_uint4(0, 0, 0, 0);
    return;
  }
  uint4 xv[kChunks], gv[kChunks], bv[kChunks];
#pragma unroll
  for (int ch = 0; ch < kChunks; ++ch) {
    xv[ch] = reinterpret_cast<const uint4*>(x + row * ldx)[ch * 32 + lane];
    gv[ch] = reinterpret_cast<const uint4*>(gamma)[ch * 32 + lane];
    bv[ch] = reinterpret_cast<const uint4*>(beta)[ch * 32 + lane];
  }
  float v[kPerLane];
  float sum = 0.f;
#pragma unroll
  for (int ch = 0; ch < kChunks; ++ch) {
    const T* e = reinterpret_cast<const T*>(&xv[ch]);
#pragma unroll
    for (int i = 0; i < kVec; ++i) sum += v[ch * kVec + i] = to_float(e[i]);
  }
  const float mean = warp_sum(sum) * (1.f / float(cols));
  float sq = 0.f;
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) sq += (v[i] - mean) * (v[i] - mean);
  const float inv = rsqrtf(warp_sum(sq) * (1.f / float(cols)) + 1e-5f);
#pragma unroll
  for (int ch = 0; ch < kChunks; ++ch) {
    const T* g = reinterpret_cast<const T*>(&gv[ch]);
    const T* b = reinterpret_cast<const T*>(&bv[ch]);
    uint4 o;
    T* oe = reinterpret_cast<T*>(&o);
#pragma unroll
    for (int i = 0; i < kVec; ++i)
      oe[i] = from_float<T>((v[ch * kVec + i] - mean) * inv * to_float(g[i]) + to_float(b[i]));
    reinterpret_cast<uint4*>(out)[ch * 32 + lane] = o;
  }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

template <typename T>
void launch(const void* x, int64_t ldx, void* y, int64_t ldy, const void* gamma, const void* beta, int64_t rows,
            int64_t cols, int64_t Tn, const int32_t* zero_lens, KernelStream stream) {
  const unsigned grid = unsigned((rows + kWarpsPerBlock - 1) / kWarpsPerBlock);
  const auto args = [&](auto kernel) {
    launch_kernel(stream, kernel, grid, kWarpsPerBlock * 32, 0, static_cast<const T*>(x), ldx, static_cast<T*>(y), ldy,
                  static_cast<const T*>(gamma), static_cast<const T*>(beta), rows, int(cols), Tn, zero_lens);
  };
  constexpr int kVec = 16 / sizeof(T);
  const bool vec_ok = aligned16(x) && aligned16(y) && aligned16(gamma) && aligned16(beta) && ldx % kVec == 0 &&
                      ldy % kVec == 0;
  const auto vec_args = [&](auto kernel) {
    launch_kernel(stream, kernel, grid, kWarpsPerBlock * 32, 0, static_cast<const T*>(x), ldx, static_cast<T*>(y), ldy,
                  static_cast<const T*>(gamma), static_cast<const T*>(beta), rows, Tn, zero_lens);
  };
  if (vec_ok && cols == 32 * kVec) vec_args(layer_norm_vec_kernel<T, 1>);
  else if (vec_ok && cols == 64 * kVec) vec_args(layer_norm_vec_kernel<T, 2>);
  else if (vec_ok && cols == 128 * kVec) vec_args(layer_norm_vec_kernel<T, 4>);
  else if (cols <= 128) args(layer_norm_kernel<T, 4>);
  else if (cols <= 256) args(layer_norm_kernel<T, 8>);
  else if (cols <= 512) args(layer_norm_kernel<T, 16>);
  else if (cols <= 1024) args(layer_norm_kernel<T, 32>);
  else args(layer_norm_kernel<T, 0>);
}

}  // namespace

void layer_norm_zero_padded_rows(const void* x, int64_t ldx, void* y, int64_t ldy, const void* gamma, const void* beta,
                                 int64_t rows, int64_t cols, int64_t T, const int32_t* zero_lens, bool f16,
                                 KernelStream stream) {
  if (rows == 0) return;
  dispatch_type(f16, [&](auto t) { launch<decltype(t)>(x, ldx, y, ldy, gamma, beta, rows, cols, T, zero_lens, stream); });
}

}  // namespace wenet_rt::cuda_kernels
