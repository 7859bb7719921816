// Kaldi fbank on the GPU for a batch of waveforms, matching frontend/fbank.h (the CPU Fbank) to
// ~1e-4 on log-mel values (tested <= 1e-3): the same window and mel filter tables (taken from a CPU Fbank), the
// same framing arithmetic, and cuFFT in place of kissfft. Per call: one framing kernel (DC
// removal, pre-emphasis, window, zero padding), one batched cuFFT R2C over all frames, one
// power + mel + log kernel. cuFFT plans are cached per bucket of frame rows (batch x max frames
// rounded up to a power of two, >= 64), so a few plans serve every batch shape.
//
// Not thread-safe: an object owns its device buffers and cuFFT plans; use one per stream/thread.
// Works on the device that is current when it is constructed (and must stay current for calls).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "frontend/fbank.h"

namespace wenet_rt {

class CudaFbank {
 public:
  // Validates the options (wenet_rt::Error on bad ones) and uploads the window and mel tables.
  // Throws wenet_rt::Error when there is no CUDA device.
  explicit CudaFbank(const FbankOptions& options = {});
  ~CudaFbank();
  CudaFbank(CudaFbank&&) noexcept;
  CudaFbank& operator=(CudaFbank&&) noexcept;
  CudaFbank(const CudaFbank&) = delete;
  CudaFbank& operator=(const CudaFbank&) = delete;

  const FbankOptions& options() const { return cpu_.options(); }
  int dim() const { return cpu_.dim(); }
  int num_frames(int n) const { return cpu_.num_frames(n); }

  // samples: the batch's waveforms back to back (normalized floats, as read_audio returns them),
  // waveform b being lengths[b] samples; host or device memory (detected; host input is copied to
  // the device first). Enqueues the work on `stream`; the features are ready when it completes.
  // Replaces the previous call's results. With `offsets`, waveform b starts at samples + offsets[b]
  // instead (a staging buffer with room between waveforms); host input is then copied up to the
  // end of the last one.
  void compute(const float* samples, const std::vector<int>& lengths, cudaStream_t stream = nullptr,
               const std::vector<int64_t>* offsets = nullptr);

  // Results of the last compute().
  int batch() const { return static_cast<int>(frames_.size()); }
  int max_frames() const { return max_frames_; }
  const std::vector<int>& frames() const { return frames_; }  // per waveform, num_frames(lengths[b])
  // Device, batch x max_frames x dim() floats, row-major; rows t >= frames()[b] are zero.
  const float* features() const;
  // Device pointer to waveform b's frames()[b] x dim() block (inside features()).
  const float* features(int b) const;
  const int* device_frames() const;  // device int[batch]

  // Waits for the stream of the last compute() and copies waveform b's features to the host
  // (frames()[b] x dim(), row-major), or all of them.
  std::vector<float> copy_to_host(int b) const;
  std::vector<std::vector<float>> copy_to_host() const;

 private:
  struct State;  // device tables and buffers, cuFFT plans (fbank_cuda.cc)

  Fbank cpu_;  // owns the options, the window and mel tables, and the frame-count rule
  std::unique_ptr<State> state_;
  std::vector<int> frames_;
  int max_frames_ = 0;
};

}  // namespace wenet_rt
