#include "decode/ctc_endpoint.h"

#include <fmt/format.h>

#include <cmath>

#include "core/error.h"

namespace wenet_rt {
namespace {

void check_rule(const CtcEndpointRule& r, const char* name) {
  WENET_CHECK(r.min_trailing_silence_ms >= 0, "ctc endpoint: {}.min_trailing_silence_ms must be >= 0, got {}", name,
              r.min_trailing_silence_ms);
  WENET_CHECK(r.min_utterance_length_ms >= 0, "ctc endpoint: {}.min_utterance_length_ms must be >= 0, got {}", name,
              r.min_utterance_length_ms);
}

std::string describe_rule(const CtcEndpointRule& r) {
  return fmt::format("{}trailing silence >= {} ms, utterance >= {} ms", r.must_decoded_sth ? "decoded something, " : "",
                     r.min_trailing_silence_ms, r.min_utterance_length_ms);
}

// WeNet's RuleActivated.
bool fires(const CtcEndpointRule& r, bool decoded_something, int64_t trailing_ms, int64_t length_ms) {
  return (decoded_something || !r.must_decoded_sth) && trailing_ms >= r.min_trailing_silence_ms &&
         length_ms >= r.min_utterance_length_ms;
}

}  // namespace

void CtcEndpointOptions::validate() const {
  WENET_CHECK(blank >= 0, "ctc endpoint: blank must be >= 0, got {}", blank);
  WENET_CHECK(std::isfinite(blank_threshold) && blank_threshold >= 0.f && blank_threshold <= 1.f,
              "ctc endpoint: blank_threshold must be a probability in [0, 1], got {}", blank_threshold);
  WENET_CHECK(std::isfinite(blank_scale) && blank_scale > 0.f, "ctc endpoint: blank_scale must be > 0, got {}",
              blank_scale);
  check_rule(rule1, "rule1");
  check_rule(rule2, "rule2");
  check_rule(rule3, "rule3");
}

std::string CtcEndpointOptions::describe() const {
  if (!enabled) return "endpointing off";
  return fmt::format("silence: blank prob > {} x {}; rule1: {}; rule2: {}; rule3: {}", blank_threshold, blank_scale,
                     describe_rule(rule1), describe_rule(rule2), describe_rule(rule3));
}

CtcEndpoint::CtcEndpoint(const CtcEndpointOptions& opts, int frame_ms) : opts_(opts), frame_ms_(frame_ms) {
  opts_.validate();
  WENET_CHECK(frame_ms > 0, "ctc endpoint: frame_ms (ms per encoder frame) must be > 0, got {}", frame_ms);
}

void CtcEndpoint::reset() {
  frames_decoded_ = 0;
  trailing_blank_ = 0;
}

bool CtcEndpoint::is_silence(float blank_logp) const {
  // expf in float, compared with the float product: WeNet's `expf(logp) > threshold * scale`.
  return std::exp(blank_logp) > opts_.silence_prob();
}

EndpointReason CtcEndpoint::advance(const float* blank_logp, int frames, bool decoded_something) {
  WENET_CHECK(frames >= 0, "ctc endpoint: expected frames >= 0, got {}", frames);
  WENET_CHECK(frames == 0 || blank_logp != nullptr, "ctc endpoint: blank log-probs are null for {} frames", frames);
  for (int t = 0; t < frames; ++t) {
    ++frames_decoded_;
    trailing_blank_ = is_silence(blank_logp[t]) ? trailing_blank_ + 1 : 0;
  }
  if (!opts_.enabled) return EndpointReason::kNone;
  const int64_t length = utterance_length_ms(), trailing = trailing_silence_ms();
  if (fires(opts_.rule1, decoded_something, trailing, length)) return EndpointReason::kRule1;
  if (fires(opts_.rule2, decoded_something, trailing, length)) return EndpointReason::kRule2;
  if (fires(opts_.rule3, decoded_something, trailing, length)) return EndpointReason::kRule3;
  return EndpointReason::kNone;
}

}  // namespace wenet_rt
