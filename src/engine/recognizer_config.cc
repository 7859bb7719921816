// RecognizerConfig (include/wenet_rt/recognizer.h): the engine's options, checked here so that
// every client of the engine (Recognizer, bench, server) gets the same validation.
#include "core/error.h"
#include "wenet_rt/recognizer.h"

namespace wenet_rt {

DecodeMode parse_decode_mode(const std::string& name) {
  if (name == "ctc_greedy" || name == "ctc_greedy_search") return DecodeMode::kCtcGreedy;
  if (name == "ctc_prefix_beam" || name == "ctc_prefix_beam_search") return DecodeMode::kCtcPrefixBeam;
  if (name == "attention_rescoring") return DecodeMode::kAttentionRescoring;
  fail("unknown decoding mode '{}' (expected ctc_greedy, ctc_prefix_beam or attention_rescoring)", name);
}

const char* decode_mode_name(DecodeMode mode) {
  switch (mode) {
    case DecodeMode::kCtcGreedy: return "ctc_greedy";
    case DecodeMode::kCtcPrefixBeam: return "ctc_prefix_beam";
    case DecodeMode::kAttentionRescoring: return "attention_rescoring";
  }
  return "?";
}

void check_precision(const std::string& device, const std::string& precision) {
  WENET_CHECK(precision == "fp16" || precision == "fp32" || precision == "int8",
              "precision: expected fp16, fp32 or int8, got '{}'", precision);
  WENET_CHECK(precision != "int8" || device == "cpu",
              "precision int8: dynamic INT8 runs on the cpu device only (cuda: fp16 or fp32)");
}

void RecognizerConfig::validate() const {
  WENET_CHECK(device == "cpu" || device == "cuda", "device: expected cpu or cuda, got '{}'", device);
  check_precision(device, precision);
  WENET_CHECK(beam >= 1 && beam <= 1000, "beam: expected 1..1000, got {}", beam);
  WENET_CHECK(batch_size >= 1 && batch_size <= 4096, "batch_size: expected 1..4096, got {}", batch_size);
  WENET_CHECK(batch_frames == 0 || (batch_frames >= 100 && batch_frames <= 10000000),
              "batch_frames: expected 0 (by device) or 100..10000000, got {}", batch_frames);
  WENET_CHECK(max_segment_seconds >= 1.0 && max_segment_seconds <= 180.0,
              "max_segment_seconds: expected 1..180, got {}", max_segment_seconds);
  WENET_CHECK(threads >= 0, "threads: expected >= 0, got {}", threads);
  WENET_CHECK(reverse_weight <= 1.f, "reverse_weight: expected <= 1, got {}", reverse_weight);
}

std::string RecognizerConfig::describe() const {
  return fmt::format("device {}{}, mode {}, beam {}, ctc_weight {}, rescoring_weight {}, reverse_weight {}, "
                     "batch {} / {} frames",
                     device, device == "cuda" || precision == "int8" ? " " + precision : "", decode_mode_name(mode), beam, ctc_weight,
                     rescoring_weight, reverse_weight < 0 ? std::string("(model)") : fmt::format("{}", reverse_weight),
                     batch_size, batch_frames == 0 ? std::string("(device)") : std::to_string(batch_frames));
}

}  // namespace wenet_rt
