// Kaldi log-mel filterbank features exactly as WeNet computes them: torchaudio's
// compliance.kaldi.fbank on the waveform scaled to int16 range, dither 0, energy_floor 0, and
// Kaldi's defaults otherwise (povey window, pre-emphasis 0.97, per-frame DC removal, snip_edges,
// FFT size rounded up to a power of two, power spectrum, log floored at FLT_EPSILON).
#pragma once

#include <cfloat>
#include <memory>
#include <string>
#include <vector>

namespace wenet_rt {

struct Audio;

enum class WindowType { kPovey, kHamming, kHanning, kRectangular };

struct FbankOptions {
  int sample_rate = 16000;
  int num_mel_bins = 80;
  float frame_length_ms = 25.f;
  float frame_shift_ms = 10.f;
  float input_scale = 32768.f;  // WeNet multiplies torchaudio's normalized waveform by 2^15
  float preemph_coeff = 0.97f;
  bool remove_dc_offset = true;
  WindowType window = WindowType::kPovey;
  bool round_to_power_of_two = true;
  float low_freq = 20.f;
  float high_freq = 0.f;  // > 0: absolute Hz; <= 0: offset from the Nyquist frequency
  bool use_power = true;  // false: magnitude spectrum
  bool use_log_fbank = true;
  float log_floor = FLT_EPSILON;
  // Always as WeNet runs Kaldi: dither 0, snip_edges true, no energy coefficient.

  void validate() const;  // throws wenet_rt::Error naming the bad option
  std::string describe() const;
};

// Parses "povey", "hamming", "hanning", "rectangular" (WeNet's fbank_conf.window_type).
WindowType parse_window_type(const std::string& name);

// Precomputes window, mel filters and FFT plans once. compute() is const and thread-safe: each
// call uses its own scratch buffers and borrows an FFT plan from an internal pool.
class Fbank {
 public:
  explicit Fbank(const FbankOptions& options = {});
  ~Fbank();
  Fbank(Fbank&&) noexcept;
  Fbank& operator=(Fbank&&) noexcept;

  const FbankOptions& options() const { return options_; }
  int dim() const { return options_.num_mel_bins; }
  int frame_length() const { return frame_length_; }  // samples per frame (400 at 16 kHz)
  int frame_shift() const { return frame_shift_; }    // samples between frames (160)
  int fft_size() const { return fft_size_; }
  // The precomputed tables, for other implementations (CUDA) that must agree with this one.
  const std::vector<float>& window() const { return window_; }  // frame_length() values
  // Mel filter m covers FFT bins mel_first_bin(m) .. + mel_weights(m).size() - 1.
  int mel_first_bin(int m) const { return mel_filters_.at(m).first_bin; }
  const std::vector<float>& mel_weights(int m) const { return mel_filters_.at(m).weights; }

  // snip_edges: 0 when n < frame_length, else 1 + (n - frame_length) / frame_shift.
  int num_frames(int n) const;

  // samples: n normalized floats (as read_audio returns them). feats is resized to
  // num_frames(n) x dim(), row-major.
  void compute(const float* samples, int n, std::vector<float>& feats) const;
  // Checks that the audio's rate is the configured one, then computes.
  std::vector<float> compute(const Audio& audio) const;

 private:
  struct MelFilter {
    int first_bin = 0;           // first FFT bin with a non-zero weight
    std::vector<float> weights;  // weights for bins first_bin, first_bin + 1, ...
  };
  struct Impl;  // FFT plan pool

  FbankOptions options_;
  int frame_length_ = 0;
  int frame_shift_ = 0;
  int fft_size_ = 0;
  std::vector<float> window_;
  std::vector<MelFilter> mel_filters_;
  std::unique_ptr<Impl> impl_;
};

// Global CMVN in place: feats[t][d] = (feats[t][d] - mean[d]) * istd[d].
void apply_cmvn(float* feats, int frames, int dim, const float* mean, const float* istd);

}  // namespace wenet_rt
