// The two fused fbank kernels around the cuFFT R2C: framing (+ DC removal, pre-emphasis, window)
// before it, power spectrum + mel filters + log after it. Arithmetic follows frontend/fbank.cc
// step by step (DC mean summed in double, the same float expressions) so that the two agree.
#include <cuda_runtime.h>

#include "frontend/cuda/fbank_kernels.h"

namespace wenet_rt::fbank_kernels {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ double block_sum(double v, double* scratch) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < static_cast<int>(blockDim.x / 32) ? scratch[lane] : 0.0;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (lane == 0) scratch[0] = v;
  }
  __syncthreads();
  return scratch[0];
}

__global__ void __launch_bounds__(kThreads)
    frame_dc_preemph_window_kernel(const float* __restrict__ samples, const int64_t* __restrict__ offsets,
                                   const float* __restrict__ window, FramingParams p, BatchLayout layout,
                                   float* __restrict__ frames_out) {
  extern __shared__ float frame[];  // frame_length scaled samples
  __shared__ double scratch[kThreads / 32];
  const int t = blockIdx.x, b = blockIdx.y;
  float* row = frames_out + (static_cast<int64_t>(b) * layout.max_frames + t) * p.fft_size;
  if (t >= layout.frames[b]) {  // uniform over the block
    for (int i = threadIdx.x; i < p.fft_size; i += blockDim.x) row[i] = 0.f;
    return;
  }
  const float* src = samples + offsets[b] + static_cast<int64_t>(t) * p.frame_shift;
  double sum = 0;
  for (int i = threadIdx.x; i < p.frame_length; i += blockDim.x) {
    const float v = src[i] * p.input_scale;
    frame[i] = v;
    sum += v;
  }
  float mean = 0.f;
  if (p.remove_dc_offset) mean = static_cast<float>(block_sum(sum, scratch) / p.frame_length);
  __syncthreads();
  for (int i = threadIdx.x; i < p.fft_size; i += blockDim.x) {
    float y = 0.f;  // zero padding beyond frame_length
    if (i < p.frame_length) {
      const float x = frame[i] - mean;
      const float prev = i > 0 ? frame[i - 1] - mean : x;  // Kaldi: x[0] -= coeff * x[0]
      y = (x - p.preemph_coeff * prev) * window[i];
    }
    row[i] = y;
  }
}

__global__ void __launch_bounds__(kThreads)
    power_mel_log_kernel(const float2* __restrict__ spectrum, MelParams p, BatchLayout layout,
                         float* __restrict__ feats) {
  extern __shared__ float power[];  // fft_size / 2 + 1
  const int t = blockIdx.x, b = blockIdx.y;
  const int64_t row_index = static_cast<int64_t>(b) * layout.max_frames + t;
  float* out = feats + row_index * p.num_bins;
  if (t >= layout.frames[b]) {  // uniform over the block
    for (int m = threadIdx.x; m < p.num_bins; m += blockDim.x) out[m] = 0.f;
    return;
  }
  const int spectrum_bins = p.fft_size / 2 + 1;
  const float2* row = spectrum + row_index * spectrum_bins;
  for (int k = threadIdx.x; k < spectrum_bins; k += blockDim.x) {
    const float2 c = row[k];
    const float e = c.x * c.x + c.y * c.y;
    power[k] = p.use_power ? e : sqrtf(e);
  }
  __syncthreads();
  for (int m = threadIdx.x; m < p.num_bins; m += blockDim.x) {
    const float* w = p.weights + p.offsets[m];
    const float* s = power + p.first_bin[m];
    const int n = p.offsets[m + 1] - p.offsets[m];
    float energy = 0.f;
    for (int j = 0; j < n; ++j) energy += w[j] * s[j];
    out[m] = p.use_log ? logf(fmaxf(energy, p.log_floor)) : energy;
  }
}

}  // namespace

void frame_dc_preemph_window(const float* samples, const int64_t* offsets, const float* window,
                             const FramingParams& params, const BatchLayout& layout, float* frames_out,
                             cudaStream_t stream) {
  if (layout.batch == 0 || layout.max_frames == 0) return;
  const dim3 grid(layout.max_frames, layout.batch);
  const size_t shared = sizeof(float) * params.frame_length;
  frame_dc_preemph_window_kernel<<<grid, kThreads, shared, stream>>>(samples, offsets, window, params, layout,
                                                                     frames_out);
}

void power_mel_log(const void* spectrum, const MelParams& params, const BatchLayout& layout, float* feats,
                   cudaStream_t stream) {
  if (layout.batch == 0 || layout.max_frames == 0) return;
  const dim3 grid(layout.max_frames, layout.batch);
  const size_t shared = sizeof(float) * (params.fft_size / 2 + 1);
  power_mel_log_kernel<<<grid, kThreads, shared, stream>>>(static_cast<const float2*>(spectrum), params, layout,
                                                           feats);
}

}  // namespace wenet_rt::fbank_kernels
