// wenet-rt public API: streaming recognition (U2 / U2++ models) for many concurrent streams.
//
//   wenet_rt::StreamingConfig cfg;            // chunk 16 (640 ms), all left context, endpoints on
//   cfg.device = "cuda";
//   wenet_rt::StreamingRecognizer rec("models/demo", cfg);   // one per process: shared by all streams
//   auto s = rec.create_stream();              // {nbest, continuous_decoding}
//   s->accept_waveform(samples.data(), samples.size(), 16000);   // as audio arrives, any sizes
//   for (auto& r : s->poll()) ...              // partial and final results, in order
//   s->input_finished();                       // no more audio: the last final result follows
//   while (!s->done()) for (auto& r : s->wait(1.0)) ...
//
// Every stream's ready chunks (chunk_size encoder frames of audio) are batched with those of all
// other streams into one encoder call on the device; the CTC prefix beam search runs per stream on
// CPU threads; at an endpoint (WeNet's three CTC rules) or the end of input the utterance is
// rescored with the attention decoder (batched with other streams' finished utterances) and a
// final result with timestamps is produced. With continuous_decoding a stream goes on with a fresh
// utterance after each endpoint; without it, audio after the first endpoint is ignored.
//
// Thread safety: StreamingRecognizer and Stream methods may be called from any thread, any number
// of streams at once (one thread per stream or one event loop for all). Callbacks run on the
// engine's threads, in result order per stream: keep them short (hand the result to your own
// thread or event loop).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "wenet_rt/recognizer.h"

namespace wenet_rt {

// WeNet runtime's CtcEndpoint: an utterance ends when any rule holds. Trailing silence counts
// encoder frames whose blank probability exceeds blank_threshold; lengths are of the utterance.
struct EndpointRule {
  bool must_decoded_something = false;  // only once the utterance has a non-empty result
  int min_trailing_silence_ms = 0;
  int min_utterance_length_ms = 0;
};

struct EndpointConfig {
  bool enabled = true;
  float blank_threshold = 0.8f;
  EndpointRule rule1{false, 5000, 0};   // 5 s of silence, even if nothing was decoded
  EndpointRule rule2{true, 1000, 0};    // 1 s of silence after something was decoded
  EndpointRule rule3{false, 0, 20000};  // the utterance reached 20 s
};

struct StreamingConfig {
  std::string device = "cpu";      // cpu | cuda
  std::string precision = "fp16";  // as RecognizerConfig: fp16 | fp32 on cuda; cpu: fp32 or int8
  // kCtcPrefixBeam or kAttentionRescoring (at endpoints); kCtcGreedy is the prefix search with beam 1.
  DecodeMode mode = DecodeMode::kAttentionRescoring;
  int beam = 10;
  float ctc_weight = 0.5f, rescoring_weight = 1.0f, reverse_weight = -1.0f;  // as RecognizerConfig
  int chunk_size = 16;             // encoder frames per chunk (WeNet decoding_chunk_size): 16 = 640 ms at x4
  int num_left_chunks = -1;        // chunks of attention history (num_decoding_left_chunks); -1 = all
  EndpointConfig endpoint;
  // Longest utterance kept for rescoring (and, with num_left_chunks -1, the attention history a
  // stream holds). An utterance reaching it ends there as if an endpoint had been detected.
  double max_utterance_seconds = 30.0;
  // Streams open at once: caches for this many are reserved at construction (device memory on
  // cuda). 0 = by device: cuda 1024, cpu 64. create_stream() beyond it throws.
  int max_streams = 0;
  int max_batch = 0;               // chunks per encoder call; 0 = max_streams
  int threads = 0;                 // CPU threads (front end, search); 0 = all cores

  void validate() const;           // throws wenet_rt::Error naming the bad field
  std::string describe() const;
};

struct StreamOptions {
  int nbest = 1;                     // hypotheses in each result (<= beam)
  bool continuous_decoding = false;  // go on after an endpoint with a fresh utterance
};

struct Sentence {
  std::string text;
  std::vector<int> tokens;
  std::vector<WordPiece> word_pieces;  // final results only; ms from the start of the stream
  double score = 0;
};

struct StreamResult {
  bool is_final = false;
  int utterance = 0;              // 0, 1, ... within the stream (continuous decoding)
  std::vector<Sentence> nbest;    // best first; at most StreamOptions::nbest
  int start_ms = 0, end_ms = 0;   // the audio the utterance covers so far, from the stream's start
  bool last = false;              // the stream's last result: done() is true once it was delivered
  const std::string& text() const;  // nbest[0].text, or "" when empty
};

// Counters for reports and metrics (cumulative since construction unless said otherwise).
struct StreamingStats {
  int active_streams = 0;          // now
  uint64_t streams_opened = 0, chunks = 0, encoder_calls = 0, finals = 0;
  double audio_seconds = 0;        // audio accepted
  int max_batch_seen = 0;
  double encoder_ms = 0;           // device time of the encoder calls (wall time on cpu)
};

class Stream {
 public:
  virtual ~Stream() = default;  // an unfinished stream is abandoned: its slot is freed, no more results

  // Audio as it arrives: normalized floats in [-1, 1) (or 16-bit PCM) at the model's sample rate,
  // any number of samples per call. Throws wenet_rt::Error for another rate or after input_finished().
  virtual void accept_waveform(const float* samples, size_t count, int sample_rate) = 0;
  virtual void accept_waveform(const int16_t* samples, size_t count, int sample_rate) = 0;
  // No more audio: the remaining chunk is decoded and the last final result follows.
  virtual void input_finished() = 0;

  // Results not yet taken, in order (partials and finals); never blocks.
  virtual std::vector<StreamResult> poll() = 0;
  // The same, waiting up to timeout_s for at least one (or for done()).
  virtual std::vector<StreamResult> wait(double timeout_s) = 0;
  // Waits up to timeout_s until the stream has caught up with its input: every complete chunk of
  // the audio accepted so far decoded and its result delivered (after input_finished(): done()).
  // Returns whether it has. For request / response servers: accept a piece, sync, answer with the
  // latest partial. Results are not taken: poll() them.
  virtual bool sync(double timeout_s) = 0;
  // Instead of poll()/wait(): results delivered to `callback` on an engine thread. Set it before the
  // first accept_waveform(). done() becomes true after the callback of the last result returned.
  virtual void set_callback(std::function<void(const StreamResult&)> callback) = 0;

  virtual std::string partial() const = 0;  // the current best text of the utterance in progress
  // Input finished (or decoding stopped at an endpoint without continuous decoding) and the last
  // final result produced.
  virtual bool done() const = 0;
  // Non-empty if the engine could not go on with this stream (e.g. the device failed); done() is then true.
  virtual std::string error() const = 0;
};

class StreamingRecognizer {
 public:
  // Throws wenet_rt::Error for a bad model directory, bad options, or a model not trained for
  // streaming (neither encoder_conf.use_dynamic_chunk nor static_chunk_size).
  StreamingRecognizer(const std::string& model_dir, const StreamingConfig& config);
  ~StreamingRecognizer();  // ends every stream (no more results)
  StreamingRecognizer(const StreamingRecognizer&) = delete;
  StreamingRecognizer& operator=(const StreamingRecognizer&) = delete;

  // Throws wenet_rt::Error when max_streams streams are open, or for bad options.
  std::shared_ptr<Stream> create_stream(const StreamOptions& options = {});

  int sample_rate() const;
  std::string describe() const;  // model + configuration
  const StreamingConfig& config() const;  // as given, with the device's defaults filled in (max_streams, ...)
  StreamingStats stats() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace wenet_rt
