// StreamingConfig (include/wenet_rt/streaming.h): checked here so that every client of the
// streaming engine (StreamingRecognizer, CLI, bench, server, Python) gets the same validation.
#include <fmt/format.h>

#include "core/error.h"
#include "wenet_rt/streaming.h"

namespace wenet_rt {
namespace {

void check_rule(const EndpointRule& r, const char* name) {
  WENET_CHECK(r.min_trailing_silence_ms >= 0 && r.min_utterance_length_ms >= 0,
              "endpoint {}: lengths must be >= 0 ms, got trailing silence {} ms, utterance {} ms", name,
              r.min_trailing_silence_ms, r.min_utterance_length_ms);
}

}  // namespace

const std::string& StreamResult::text() const {
  static const std::string empty;
  return nbest.empty() ? empty : nbest[0].text;
}

void StreamingConfig::validate() const {
  WENET_CHECK(device == "cpu" || device == "cuda", "device: expected cpu or cuda, got '{}'", device);
  check_precision(device, precision);
  WENET_CHECK(beam >= 1 && beam <= 1000, "beam: expected 1..1000, got {}", beam);
  WENET_CHECK(reverse_weight <= 1.f, "reverse_weight: expected <= 1, got {}", reverse_weight);
  WENET_CHECK(chunk_size >= 1 && chunk_size <= 1024, "chunk_size: expected 1..1024 encoder frames, got {}", chunk_size);
  WENET_CHECK(num_left_chunks >= -1, "num_left_chunks: expected -1 (all) or >= 0, got {}", num_left_chunks);
  WENET_CHECK(endpoint.blank_threshold > 0.f && endpoint.blank_threshold < 1.f,
              "endpoint blank_threshold: expected a probability in (0, 1), got {}", endpoint.blank_threshold);
  check_rule(endpoint.rule1, "rule1");
  check_rule(endpoint.rule2, "rule2");
  check_rule(endpoint.rule3, "rule3");
  WENET_CHECK(max_utterance_seconds >= 1.0 && max_utterance_seconds <= 180.0,
              "max_utterance_seconds: expected 1..180, got {}", max_utterance_seconds);
  WENET_CHECK(max_streams >= 0 && max_streams <= 100000, "max_streams: expected 0 (by device) or 1..100000, got {}",
              max_streams);
  WENET_CHECK(max_batch >= 0, "max_batch: expected >= 0, got {}", max_batch);
  WENET_CHECK(threads >= 0, "threads: expected >= 0, got {}", threads);
}

std::string StreamingConfig::describe() const {
  return fmt::format(
      "streaming: device {}{}, mode {}, beam {}, chunk {} frames, left chunks {}, endpoints {}, max {} streams "
      "(batch {})",
      device, device == "cuda" || precision == "int8" ? " " + precision : "", decode_mode_name(mode), beam, chunk_size,
      num_left_chunks < 0 ? std::string("all") : std::to_string(num_left_chunks), endpoint.enabled ? "on" : "off",
      max_streams == 0 ? std::string("(device)") : std::to_string(max_streams),
      max_batch == 0 ? std::string("all") : std::to_string(max_batch));
}

}  // namespace wenet_rt
