// wenet-rt public API: a batched speech recognizer over a WeNet model directory.
//
//   wenet_rt::RecognizerConfig cfg;           // cpu, attention rescoring, beam 10
//   cfg.device = "cuda";
//   wenet_rt::Recognizer rec("models/demo", cfg);
//   for (auto& r : rec.recognize_files({{"utt1", "a.wav"}, {"utt2", "b.flac"}}))
//     std::cout << r.key << ' ' << r.text << '\n';
//
// A Recognizer is not thread-safe: use one per thread (they may share nothing but the files).
// It is a thin face over the offline engine (src/engine): reading, batching and the overlap of
// GPU and CPU work happen there.
// Errors (bad model directory, bad options) are thrown as wenet_rt::Error (a std::runtime_error);
// per-file failures (unreadable or empty audio) are reported in RecognitionResult::error and the
// rest of the batch goes on.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace wenet_rt {

enum class DecodeMode { kCtcGreedy, kCtcPrefixBeam, kAttentionRescoring };

DecodeMode parse_decode_mode(const std::string& name);
// Throws wenet_rt::Error unless `precision` is one the device supports (see RecognizerConfig).
void check_precision(const std::string& device, const std::string& precision);  // ctc_greedy | ctc_prefix_beam | attention_rescoring
const char* decode_mode_name(DecodeMode mode);

struct RecognizerConfig {
  std::string device = "cpu";      // cpu | cuda
  // cuda: fp16 | fp32; cpu: fp32 (fp16 means fp32 there) or int8 (linear layers with per-channel
  // int8 weights and activations quantized per row at run time, as ONNX Runtime's quantize_dynamic)
  std::string precision = "fp16";
  DecodeMode mode = DecodeMode::kAttentionRescoring;
  int beam = 10;                   // CTC prefix beam, and the N-best that rescoring scores
  // Rescoring: final = rescoring_weight * decoder score + ctc_weight * CTC prefix score, the
  // decoder score mixing l2r and r2l as (1 - reverse_weight) * l2r + reverse_weight * r2l.
  // Defaults are WeNet's C++ runtime's; reverse_weight < 0 takes train.yaml's model_conf value.
  float ctc_weight = 0.5f;
  float rescoring_weight = 1.0f;
  float reverse_weight = -1.0f;
  // Batches: utterances sorted by length, cut when a batch would hold more than batch_size of
  // them or more than batch_frames padded feature frames (batch x longest; 100 frames = 1 s).
  int batch_size = 64;
  int batch_frames = 0;            // 0 = by device: cuda 48000, cpu 3000
  // Recordings longer than this are cut into utterances at their pauses (and anything still
  // longer at its quietest point), which are batched like any other utterance; their results
  // are joined back into one, with timestamps relative to the recording.
  double max_segment_seconds = 30.0;
  int threads = 0;                 // CPU threads (BLAS, audio, front end, search); 0 = all cores
  // Front end on the GPU (batched fbank + CMVN fed straight to the encoder) with device cuda;
  // false computes fbank on CPU threads as the cpu device does.
  bool gpu_frontend = true;

  void validate() const;           // throws wenet_rt::Error naming the bad field
  std::string describe() const;
};

// One token (char units) or word piece (BPE units) and where the CTC places it, in milliseconds
// from the start of the recording: WeNet runtime's `word_pieces`.
struct WordPiece {
  std::string word;
  int start_ms = 0;
  int end_ms = 0;
};

struct RecognitionResult {
  std::string key;
  std::string text;
  std::vector<int> tokens;
  std::vector<WordPiece> word_pieces;  // one per token, from the CTC peaks
  double score = 0;         // the winning hypothesis' final score (summed over segments)
  double duration_s = 0;    // audio duration
  int segments = 1;         // > 1 when a long recording was split at pauses
  std::string error;        // non-empty if this utterance failed; text is then empty
};

// A recording in memory, borrowed (not owned): normalized floats in [-1, 1) at sample_rate Hz.
struct AudioView {
  std::string key;
  const float* samples = nullptr;
  size_t num_samples = 0;
  int sample_rate = 0;
};

class Recognizer {
 public:
  Recognizer(const std::string& model_dir, const RecognizerConfig& config);
  ~Recognizer();
  Recognizer(const Recognizer&) = delete;
  Recognizer& operator=(const Recognizer&) = delete;

  // (key, path) pairs, in order; results come back in the same order. `progress(done, total)` is
  // called after each batch.
  std::vector<RecognitionResult> recognize_files(
      const std::vector<std::pair<std::string, std::string>>& files,
      const std::function<void(size_t, size_t)>& progress = {});

  // Recordings in memory, batched exactly as files are; results in input order, per-input failures
  // (no samples, a sample rate outside 1000..768000 Hz, too short) in RecognitionResult::error.
  // The samples are borrowed for the call and used in place when at the model's sample_rate().
  std::vector<RecognitionResult> recognize_samples(const std::vector<AudioView>& inputs,
                                                   const std::function<void(size_t, size_t)>& progress = {});

  // One utterance from samples in memory (normalized floats in [-1, 1)); its failure is thrown.
  RecognitionResult recognize(const std::string& key, const std::vector<float>& samples, int sample_rate);

  int sample_rate() const;
  std::string describe() const;  // model + configuration summary

 private:
  std::unique_ptr<class OfflineEngine> engine_;
};

}  // namespace wenet_rt
