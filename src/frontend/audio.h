// Audio input: decode a file (anything libsndfile reads: WAV, FLAC, OGG...), keep the first channel,
// and resample it to the model's rate with libsoxr.
#pragma once

#include <string>
#include <vector>

namespace wenet_rt {

// Mono audio as normalized floats: integer PCM maps to [-1, 1) (int16 x -> x / 32768), float
// formats are kept as stored. This is what torchaudio.load gives WeNet.
struct Audio {
  std::vector<float> samples;
  int sample_rate = 0;

  double duration() const {
    return sample_rate > 0 ? static_cast<double>(samples.size()) / sample_rate : 0.0;
  }
};

// Limits on what a file may declare; anything beyond is reported as corrupt rather than allocated.
inline constexpr int kMinSampleRate = 1000;
inline constexpr int kMaxSampleRate = 768000;
inline constexpr int kMaxChannels = 1024;
inline constexpr long long kMaxSamples = (1LL << 31) - 1;  // the fbank takes an int sample count

// Reads `path`, keeps the first channel and resamples to `target_rate` when the file's rate differs
// (target_rate 0 keeps the file's rate). Throws wenet_rt::Error naming the file when it is missing,
// unreadable, not audio, empty, truncated, or declares absurd sizes.
Audio read_audio(const std::string& path, int target_rate);

// What a file's header says, without decoding it: planning a batch by length before reading.
struct AudioInfo {
  long long frames = 0;  // samples per channel as declared (a claim: read_audio checks it)
  int sample_rate = 0;
  // Samples once resampled to `target_rate` (0: the file's rate).
  long long samples_at(int target_rate) const {
    return target_rate <= 0 || target_rate == sample_rate ? frames : frames * target_rate / sample_rate;
  }
};

// Opens `path` and reads its header. Throws wenet_rt::Error naming the file as read_audio does for
// missing, empty, non-audio or implausible files.
AudioInfo probe_audio(const std::string& path);

// Decodes a whole audio file held in memory (WAV, FLAC, ... as read_audio), e.g. an HTTP upload;
// `name` names it in errors. Throws wenet_rt::Error as read_audio does.
Audio decode_audio(const std::string& bytes, int target_rate, const std::string& name);
// What such a file's header says, without decoding it (as probe_audio).
AudioInfo probe_audio_bytes(const std::string& bytes, const std::string& name);

// Wraps samples already in memory (normalized floats), resampling like read_audio.
Audio audio_from_samples(std::vector<float> samples, int sample_rate, int target_rate);

// High-quality (soxr HQ) resampling; returns `audio` unchanged when the rates already match.
Audio resample(const Audio& audio, int target_rate);

}  // namespace wenet_rt
