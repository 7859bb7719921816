#include "frontend/fbank.h"

#include <kiss_fftr.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <numbers>

#include "core/error.h"
#include "frontend/audio.h"

namespace wenet_rt {
namespace {

// Kaldi's mel scale (natural log form).
double mel_scale(double hz) { return 1127.0 * std::log(1.0 + hz / 700.0); }

int round_up_to_power_of_two(int n) {
  int p = 1;
  while (p < n) p <<= 1;
  return p;
}

const char* window_name(WindowType w) {
  switch (w) {
    case WindowType::kPovey: return "povey";
    case WindowType::kHamming: return "hamming";
    case WindowType::kHanning: return "hanning";
    case WindowType::kRectangular: return "rectangular";
  }
  return "?";
}

struct PlanDeleter {
  void operator()(kiss_fftr_state* plan) const { kiss_fftr_free(plan); }
};
using FftPlan = std::unique_ptr<kiss_fftr_state, PlanDeleter>;

}  // namespace

// kiss_fftr keeps scratch space inside its plan, so one plan cannot serve two threads at once.
// Plans are made once and reused; a concurrent caller that finds the pool empty makes another.
struct Fbank::Impl {
  int fft_size = 0;
  std::mutex mutex;
  std::vector<FftPlan> idle;

  FftPlan acquire() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (!idle.empty()) {
        FftPlan plan = std::move(idle.back());
        idle.pop_back();
        return plan;
      }
    }
    FftPlan plan(kiss_fftr_alloc(fft_size, 0, nullptr, nullptr));
    WENET_CHECK(plan != nullptr, "fbank: cannot allocate a {}-point FFT plan", fft_size);
    return plan;
  }
  void release(FftPlan plan) {
    std::lock_guard<std::mutex> lock(mutex);
    idle.push_back(std::move(plan));
  }
};

WindowType parse_window_type(const std::string& name) {
  for (WindowType w : {WindowType::kPovey, WindowType::kHamming, WindowType::kHanning,
                       WindowType::kRectangular}) {
    if (name == window_name(w)) return w;
  }
  fail("fbank window_type: expected povey, hamming, hanning or rectangular, got '{}'", name);
}

void FbankOptions::validate() const {
  WENET_CHECK(sample_rate > 0, "fbank sample_rate: expected > 0, got {}", sample_rate);
  WENET_CHECK(num_mel_bins >= 3 && num_mel_bins <= 1024,
              "fbank num_mel_bins: expected 3..1024, got {}", num_mel_bins);
  // Bounded before the casts below: a frame of more than 1 s is not a speech frame.
  WENET_CHECK(frame_length_ms > 0 && frame_shift_ms > 0 && frame_length_ms <= 1000 && frame_shift_ms <= 1000,
              "fbank frame_length/frame_shift: expected 0 < ms <= 1000, got {} / {}", frame_length_ms,
              frame_shift_ms);
  WENET_CHECK(sample_rate <= 768000, "fbank sample_rate: expected <= 768000, got {}", sample_rate);
  const int length = static_cast<int>(sample_rate * 0.001 * frame_length_ms);
  const int shift = static_cast<int>(sample_rate * 0.001 * frame_shift_ms);
  WENET_CHECK(length >= 2 && shift >= 1,
              "fbank: {} ms / {} ms at {} Hz gives frames of {} samples every {}, expected >= 2 / >= 1",
              frame_length_ms, frame_shift_ms, sample_rate, length, shift);
  WENET_CHECK(round_to_power_of_two || length % 2 == 0,
              "fbank: a frame of {} samples without round_to_power_of_two needs an even length", length);
  const double nyquist = 0.5 * sample_rate;
  const double high = high_freq > 0 ? high_freq : nyquist + high_freq;
  WENET_CHECK(low_freq >= 0 && low_freq < nyquist && high > low_freq && high <= nyquist,
              "fbank low_freq/high_freq: expected 0 <= low < high <= {} Hz, got {} / {} (high_freq {})",
              nyquist, low_freq, high, high_freq);
  WENET_CHECK(preemph_coeff >= 0 && preemph_coeff <= 1, "fbank preemph_coeff: expected 0..1, got {}",
              preemph_coeff);
  WENET_CHECK(log_floor > 0, "fbank log_floor: expected > 0, got {}", log_floor);
}

std::string FbankOptions::describe() const {
  return fmt::format(
      "fbank: {} Hz, {} mel bins, {} ms / {} ms, scale {}, preemph {}, dc {}, window {}, pow2 {}, "
      "{}..{} Hz, {}, log {} (floor {})",
      sample_rate, num_mel_bins, frame_length_ms, frame_shift_ms, input_scale, preemph_coeff,
      remove_dc_offset, window_name(window), round_to_power_of_two, low_freq, high_freq,
      use_power ? "power" : "magnitude", use_log_fbank, log_floor);
}

Fbank::Fbank(const FbankOptions& options) : options_(options), impl_(std::make_unique<Impl>()) {
  options_.validate();
  // Kaldi's arithmetic (truncation of a double) so that the sizes agree with it.
  frame_length_ = static_cast<int>(options_.sample_rate * 0.001 * options_.frame_length_ms);
  frame_shift_ = static_cast<int>(options_.sample_rate * 0.001 * options_.frame_shift_ms);
  fft_size_ = options_.round_to_power_of_two ? round_up_to_power_of_two(frame_length_) : frame_length_;
  impl_->fft_size = fft_size_;
  impl_->release(impl_->acquire());  // make the first plan now, not on the first call

  window_.resize(frame_length_);
  const double a = 2 * std::numbers::pi / (frame_length_ - 1);
  for (int i = 0; i < frame_length_; ++i) {
    const double hann = 0.5 - 0.5 * std::cos(a * i);
    switch (options_.window) {
      case WindowType::kPovey: window_[i] = static_cast<float>(std::pow(hann, 0.85)); break;
      case WindowType::kHamming: window_[i] = static_cast<float>(0.54 - 0.46 * std::cos(a * i)); break;
      case WindowType::kHanning: window_[i] = static_cast<float>(hann); break;
      case WindowType::kRectangular: window_[i] = 1.f; break;
    }
  }

  // Kaldi's MelBanks: triangles equally spaced on the mel scale between low_freq and high_freq,
  // evaluated at the FFT bin centres 0 .. fft_size/2 - 1 (the Nyquist bin never gets weight).
  const int num_fft_bins = fft_size_ / 2;
  const double nyquist = 0.5 * options_.sample_rate;
  const double high_freq = options_.high_freq > 0 ? options_.high_freq : nyquist + options_.high_freq;
  const double bin_width = static_cast<double>(options_.sample_rate) / fft_size_;
  const double mel_low = mel_scale(options_.low_freq);
  const double mel_delta = (mel_scale(high_freq) - mel_low) / (options_.num_mel_bins + 1);
  mel_filters_.resize(options_.num_mel_bins);
  for (int m = 0; m < options_.num_mel_bins; ++m) {
    const double left = mel_low + m * mel_delta;
    const double center = left + mel_delta;
    const double right = center + mel_delta;
    MelFilter& filter = mel_filters_[m];
    filter.first_bin = -1;
    for (int k = 0; k < num_fft_bins; ++k) {
      const double mel = mel_scale(bin_width * k);
      if (mel <= left || mel >= right) continue;
      const double weight = mel <= center ? (mel - left) / (center - left) : (right - mel) / (right - center);
      if (filter.first_bin < 0) filter.first_bin = k;
      filter.weights.resize(k - filter.first_bin + 1, 0.f);
      filter.weights.back() = static_cast<float>(weight);
    }
    // A filter narrower than one FFT bin (many bins, small FFT) stays empty, as in Kaldi.
    if (filter.first_bin < 0) filter.first_bin = 0;
  }
}

Fbank::~Fbank() = default;
Fbank::Fbank(Fbank&&) noexcept = default;
Fbank& Fbank::operator=(Fbank&&) noexcept = default;

int Fbank::num_frames(int n) const {
  if (n < frame_length_) return 0;
  return 1 + (n - frame_length_) / frame_shift_;
}

void Fbank::compute(const float* samples, int n, std::vector<float>& feats) const {
  WENET_CHECK(n >= 0, "fbank: expected a sample count >= 0, got {}", n);
  const int frames = num_frames(n);
  const int bins = options_.num_mel_bins;
  feats.assign(static_cast<size_t>(frames) * bins, 0.f);
  if (frames == 0) return;

  FftPlan plan = impl_->acquire();
  std::vector<float> frame(fft_size_, 0.f);
  std::vector<kiss_fft_cpx> spectrum(fft_size_ / 2 + 1);
  std::vector<float> power(fft_size_ / 2 + 1);
  const float scale = options_.input_scale;
  const float preemph = options_.preemph_coeff;

  for (int t = 0; t < frames; ++t) {
    const float* src = samples + static_cast<size_t>(t) * frame_shift_;
    for (int i = 0; i < frame_length_; ++i) frame[i] = src[i] * scale;
    if (options_.remove_dc_offset) {
      double sum = 0;
      for (int i = 0; i < frame_length_; ++i) sum += frame[i];
      const float mean = static_cast<float>(sum / frame_length_);
      for (int i = 0; i < frame_length_; ++i) frame[i] -= mean;
    }
    if (preemph != 0.f) {
      for (int i = frame_length_ - 1; i > 0; --i) frame[i] -= preemph * frame[i - 1];
      frame[0] -= preemph * frame[0];
    }
    for (int i = 0; i < frame_length_; ++i) frame[i] *= window_[i];
    // frame[frame_length_ .. fft_size_) stays zero: the padding.

    kiss_fftr(plan.get(), frame.data(), spectrum.data());
    for (int k = 0; k <= fft_size_ / 2; ++k) {
      const float p = spectrum[k].r * spectrum[k].r + spectrum[k].i * spectrum[k].i;
      power[k] = options_.use_power ? p : std::sqrt(p);
    }

    float* out = feats.data() + static_cast<size_t>(t) * bins;
    for (int m = 0; m < bins; ++m) {
      const MelFilter& filter = mel_filters_[m];
      float energy = 0.f;
      for (size_t j = 0; j < filter.weights.size(); ++j) energy += filter.weights[j] * power[filter.first_bin + j];
      out[m] = options_.use_log_fbank ? std::log(std::max(energy, options_.log_floor)) : energy;
    }
  }
  impl_->release(std::move(plan));
}

std::vector<float> Fbank::compute(const Audio& audio) const {
  WENET_CHECK(audio.sample_rate == options_.sample_rate,
              "fbank: expected audio at {} Hz, got {} Hz (resample it first)", options_.sample_rate,
              audio.sample_rate);
  WENET_CHECK(audio.samples.size() <= static_cast<size_t>(kMaxSamples),
              "fbank: expected at most {} samples, got {}", kMaxSamples, audio.samples.size());
  std::vector<float> feats;
  compute(audio.samples.data(), static_cast<int>(audio.samples.size()), feats);
  return feats;
}

void apply_cmvn(float* feats, int frames, int dim, const float* mean, const float* istd) {
  for (int t = 0; t < frames; ++t) {
    float* row = feats + static_cast<size_t>(t) * dim;
    for (int d = 0; d < dim; ++d) row[d] = (row[d] - mean[d]) * istd[d];
  }
}

}  // namespace wenet_rt
