// Launchers of the CUDA fbank kernels (fbank_kernels.cu). Plain C++ so that fbank_cuda.cc, compiled
// as C++20, does not need nvcc. Every launcher only enqueues on `stream`.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace wenet_rt::fbank_kernels {

// What both kernels need to know about the batch: frame row (b, t) is row b * max_frames + t;
// rows with t >= frames[b] are padding.
struct BatchLayout {
  int batch = 0;
  int max_frames = 0;
  const int* frames = nullptr;  // device, [batch]
};

struct FramingParams {
  int frame_length = 0;
  int frame_shift = 0;
  int fft_size = 0;
  float input_scale = 1.f;
  bool remove_dc_offset = true;
  float preemph_coeff = 0.f;
};

// One block per frame row: samples[offsets[b] + t * shift ...] scaled, minus the frame's mean,
// pre-emphasized, windowed, zero-padded to fft_size -> frames_out row (padding rows all zero).
void frame_dc_preemph_window(const float* samples, const int64_t* offsets, const float* window,
                             const FramingParams& params, const BatchLayout& layout, float* frames_out,
                             cudaStream_t stream);

struct MelParams {
  int fft_size = 0;     // the spectrum row has fft_size / 2 + 1 complex values
  int num_bins = 0;     // mel bins
  bool use_power = true;
  bool use_log = true;
  float log_floor = 0.f;
  // Compact mel filters: filter m has weights[offsets[m] .. offsets[m + 1]) for FFT bins
  // first_bin[m], first_bin[m] + 1, ... (all device arrays).
  const int* first_bin = nullptr;
  const int* offsets = nullptr;
  const float* weights = nullptr;
};

// One block per frame row: |X|^2 (or |X|) of the R2C spectrum (float2 rows) -> mel energies ->
// log(max(e, floor)) -> feats row of num_bins floats (padding rows zero).
void power_mel_log(const void* spectrum, const MelParams& params, const BatchLayout& layout, float* feats,
                   cudaStream_t stream);

}  // namespace wenet_rt::fbank_kernels
