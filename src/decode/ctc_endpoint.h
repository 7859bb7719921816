// Endpoint detection for streaming recognition, as WeNet's C++ runtime does it
// (runtime/core/decoder/ctc_endpoint.{h,cc}, driven by asr_decoder.cc):
//
// - Frames are encoder frames (CTC output rows), each frame_ms long (WeNet: subsampling rate x the
//   fbank shift, 4 x 10 = 40 ms for conv2d x4). A frame is silence when its blank probability
//   exp(logp[blank]) > blank_threshold * blank_scale (strictly; float arithmetic, as WeNet).
// - The detector counts the frames decoded since the utterance began and the trailing run of silent
//   frames; utterance length = frames x frame_ms, trailing silence = silent run x frame_ms (ms).
// - The rules are evaluated once per chunk, after all of the chunk's frames are counted (WeNet calls
//   IsEndpoint once per chunk): a rule fires when (something was decoded or the rule does not need
//   it) and trailing silence >= min_trailing_silence_ms and utterance length >=
//   min_utterance_length_ms. Any rule firing is an endpoint. "Decoded something" is WeNet's
//   DecodedSomething(): the current best hypothesis (after this chunk's search) is not empty.
// - WeNet does not ask for an endpoint on the last chunk of the input (that result is final anyway),
//   and resets the detector when an utterance ends (Reset / ResetContinuousDecoding).
#pragma once

#include <cstdint>
#include <string>

namespace wenet_rt {

struct CtcEndpointRule {
  bool must_decoded_sth = true;     // fires only after something was decoded
  int min_trailing_silence_ms = 1000;
  int min_utterance_length_ms = 0;
};

struct CtcEndpointOptions {
  bool enabled = true;            // false: never an endpoint (the frame counts are still kept)
  int blank = 0;
  float blank_threshold = 0.8f;   // silence: blank probability > blank_threshold * blank_scale
  float blank_scale = 1.f;        // WeNet's CtcEndpointConfig::blank_scale
  // WeNet's defaults (CtcEndpointConfig()):
  CtcEndpointRule rule1{false, 5000, 0};   // 5 s of silence, even if nothing was decoded
  CtcEndpointRule rule2{true, 1000, 0};    // 1 s of trailing silence after something was decoded
  CtcEndpointRule rule3{false, 0, 20000};  // the utterance reaches 20 s
  // Silence threshold as a probability: blank_threshold * blank_scale, computed in float.
  float silence_prob() const { return blank_threshold * blank_scale; }

  void validate() const;  // throws wenet_rt::Error naming the bad field
  std::string describe() const;
};

// Which rule ended the utterance (0: none).
enum class EndpointReason { kNone = 0, kRule1 = 1, kRule2 = 2, kRule3 = 3 };

// One per stream; not thread-safe.
class CtcEndpoint {
 public:
  // frame_ms: length of one encoder frame in ms (> 0).
  CtcEndpoint(const CtcEndpointOptions& opts, int frame_ms);

  // Starts a new utterance: no frames decoded, no trailing silence.
  void reset();

  // Counts one chunk: blank_logp[t] is frame t's blank log-prob (t < frames, frames >= 0), then
  // evaluates the rules with `decoded_something` (the best hypothesis after this chunk is not
  // empty). Returns the first rule that fires (rule1, rule2, rule3 in that order), or kNone. With
  // enabled = false, counts and returns kNone.
  EndpointReason advance(const float* blank_logp, int frames, bool decoded_something);

  // Whether frame probability exp(blank_logp) counts as silence.
  bool is_silence(float blank_logp) const;

  int64_t frames_decoded() const { return frames_decoded_; }           // encoder frames since reset()
  int64_t trailing_silence_frames() const { return trailing_blank_; }  // encoder frames
  // In ms, as WeNet computes them (int64 here: no overflow on a stream that runs for weeks).
  int64_t utterance_length_ms() const { return frames_decoded_ * frame_ms_; }
  int64_t trailing_silence_ms() const { return trailing_blank_ * frame_ms_; }
  int frame_ms() const { return frame_ms_; }
  const CtcEndpointOptions& options() const { return opts_; }

 private:
  CtcEndpointOptions opts_;
  int frame_ms_;
  int64_t frames_decoded_ = 0;
  int64_t trailing_blank_ = 0;
};

}  // namespace wenet_rt
