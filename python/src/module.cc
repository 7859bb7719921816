// wenet_rt._core: the Python face of include/wenet_rt/recognizer.h, bound with nanobind.
//
// Only bindings live here; the package python/wenet_rt wraps them (argument checks with clear
// messages, int16 -> float32, single vs. list input, the command line, Triton).
//  - Audio arrays come in as nb::ndarray views (float32, 1-D, C-contiguous, CPU) and are handed
//    to the engine as borrowed AudioViews: no copy when at the model's rate. The arguments hold
//    their references while the GIL is released.
//  - The GIL is released while the engine loads a model or recognizes.
//  - A wenet_rt::Error from the engine becomes wenet_rt.Error (a RuntimeError) with its message.
//  - One Recognizer may be called from several Python threads: calls are serialized by a mutex
//    (the engine itself is one-run-at-a-time and already uses every thread it was given).
//
// Streaming (include/wenet_rt/streaming.h, when it lands): bind StreamingRecognizer / Stream in
// bind_streaming() below, next to bind_offline(), and expose them from python/wenet_rt/__init__.py.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "frontend/audio.h"
#include "wenet_rt/recognizer.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace wenet_rt {
namespace {

using FloatArray = nb::ndarray<const float, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

class PyRecognizer {
 public:
  PyRecognizer(const std::string& model_dir, const RecognizerConfig& config) {
    nb::gil_scoped_release release;
    rec_ = std::make_unique<Recognizer>(model_dir, config);
  }

  std::vector<RecognitionResult> recognize_files(const std::vector<std::pair<std::string, std::string>>& files) {
    nb::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mu_);
    return rec_->recognize_files(files);
  }

  std::vector<RecognitionResult> recognize_samples(const std::vector<std::string>& keys,
                                                   const std::vector<FloatArray>& arrays,
                                                   const std::vector<int>& sample_rates) {
    if (keys.size() != arrays.size() || sample_rates.size() != arrays.size())
      throw nb::value_error("recognize_samples: keys, arrays and sample_rates must have the same length");
    std::vector<AudioView> views(arrays.size());
    for (size_t i = 0; i < arrays.size(); ++i)
      views[i] = AudioView{keys[i], arrays[i].data(), arrays[i].shape(0), sample_rates[i]};
    nb::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mu_);
    return rec_->recognize_samples(views);
  }

  int sample_rate() const { return rec_->sample_rate(); }
  std::string describe() const { return rec_->describe(); }

 private:
  std::unique_ptr<Recognizer> rec_;
  std::mutex mu_;
};

nb::dict result_to_dict(const RecognitionResult& r) {
  // The keys and values of the command line's --format json objects.
  nb::list pieces;
  for (const WordPiece& p : r.word_pieces) {
    nb::dict piece;
    piece["word"] = p.word;
    piece["start"] = p.start_ms;
    piece["end"] = p.end_ms;
    pieces.append(piece);
  }
  nb::dict d;
  d["key"] = r.key;
  d["text"] = r.text;
  d["tokens"] = nb::cast(r.tokens);
  d["score"] = r.score;
  d["duration"] = r.duration_s;
  d["word_pieces"] = pieces;
  if (r.segments > 1) d["segments"] = r.segments;
  if (!r.error.empty()) d["error"] = r.error;
  return d;
}

void bind_offline(nb::module_& m) {
  nb::class_<RecognizerConfig>(m, "Config", "RecognizerConfig: see include/wenet_rt/recognizer.h.")
      .def(nb::init<>())
      .def_rw("device", &RecognizerConfig::device, "cpu | cuda")
      .def_rw("precision", &RecognizerConfig::precision, "fp16 | fp32 (cuda; cpu is fp32)")
      .def_prop_rw(
          "mode", [](const RecognizerConfig& c) { return std::string(decode_mode_name(c.mode)); },
          [](RecognizerConfig& c, const std::string& name) { c.mode = parse_decode_mode(name); },
          "ctc_greedy | ctc_prefix_beam | attention_rescoring")
      .def_rw("beam", &RecognizerConfig::beam)
      .def_rw("ctc_weight", &RecognizerConfig::ctc_weight)
      .def_rw("rescoring_weight", &RecognizerConfig::rescoring_weight)
      .def_rw("reverse_weight", &RecognizerConfig::reverse_weight)
      .def_rw("batch_size", &RecognizerConfig::batch_size)
      .def_rw("batch_frames", &RecognizerConfig::batch_frames)
      .def_rw("max_segment_seconds", &RecognizerConfig::max_segment_seconds)
      .def_rw("threads", &RecognizerConfig::threads)
      .def_rw("gpu_frontend", &RecognizerConfig::gpu_frontend)
      .def("validate", &RecognizerConfig::validate, "Raises wenet_rt.Error naming a bad field.")
      .def("describe", &RecognizerConfig::describe)
      .def("__repr__", [](const RecognizerConfig& c) { return "Config(" + c.describe() + ")"; });

  nb::class_<WordPiece>(m, "WordPiece", "A token (or word piece) and where the CTC places it, ms from the start.")
      .def_ro("word", &WordPiece::word)
      .def_ro("start_ms", &WordPiece::start_ms)
      .def_ro("end_ms", &WordPiece::end_ms)
      .def("__repr__", [](const WordPiece& p) {
        return nb::str("WordPiece({!r}, {}, {})").format(p.word, p.start_ms, p.end_ms);
      });

  nb::class_<RecognitionResult>(m, "Result", "One recording's transcript.")
      .def_ro("key", &RecognitionResult::key)
      .def_ro("text", &RecognitionResult::text)
      .def_ro("tokens", &RecognitionResult::tokens, "token ids (units.txt)")
      .def_ro("word_pieces", &RecognitionResult::word_pieces, "one per token, from the CTC peaks")
      .def_ro("score", &RecognitionResult::score, "the winning hypothesis' final score")
      .def_ro("duration", &RecognitionResult::duration_s, "audio duration in seconds")
      .def_ro("segments", &RecognitionResult::segments, "> 1 when a long recording was split at pauses")
      .def_ro("error", &RecognitionResult::error, "non-empty if this recording failed (text is then empty)")
      .def_prop_ro("ok", [](const RecognitionResult& r) { return r.error.empty(); })
      .def_prop_ro(
          "timestamps",
          [](const RecognitionResult& r) {
            std::vector<std::pair<int, int>> t;
            for (const WordPiece& p : r.word_pieces) t.emplace_back(p.start_ms, p.end_ms);
            return t;
          },
          "(start_ms, end_ms) per token")
      .def("to_dict", &result_to_dict, "The command line's --format json object.")
      .def("__repr__", [](const RecognitionResult& r) {
        if (!r.error.empty()) return nb::str("Result(key={!r}, error={!r})").format(r.key, r.error);
        return nb::str("Result(key={!r}, text={!r}, score={:.4f}, duration={:.3f})")
            .format(r.key, r.text, r.score, r.duration_s);
      });

  nb::class_<PyRecognizer>(m, "Recognizer", "The offline engine over one model directory (see wenet_rt.Recognizer).")
      .def(nb::init<const std::string&, const RecognizerConfig&>(), "model_dir"_a, "config"_a)
      .def("recognize_files", &PyRecognizer::recognize_files, "files"_a,
           "[(key, path)] -> [Result], batched; per-file failures in Result.error.")
      .def("recognize_samples", &PyRecognizer::recognize_samples, "keys"_a, "arrays"_a.noconvert(),
           "sample_rates"_a,
           "Arrays (float32, 1-D, C-contiguous, in [-1, 1)) -> [Result], batched, used in place; per-array "
           "failures in Result.error.")
      .def_prop_ro("sample_rate", &PyRecognizer::sample_rate)
      .def("describe", &PyRecognizer::describe);
}

}  // namespace
}  // namespace wenet_rt

NB_MODULE(_core, m) {
  m.doc() = "wenet-rt engine bindings (use the wenet_rt package)";
  nb::exception<wenet_rt::Error>(m, "Error", PyExc_RuntimeError);
  m.attr("MIN_SAMPLE_RATE") = wenet_rt::kMinSampleRate;
  m.attr("MAX_SAMPLE_RATE") = wenet_rt::kMaxSampleRate;
#ifdef WENET_RT_HAVE_CUDA
  m.attr("HAS_CUDA") = true;
#else
  m.attr("HAS_CUDA") = false;
#endif
  wenet_rt::bind_offline(m);
}
