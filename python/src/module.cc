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
// Streaming (include/wenet_rt/streaming.h): StreamingRecognizer / Stream in bind_streaming().
//  - accept_waveform takes float32 or int16 1-D C-contiguous views, handed to the engine in place;
//    the GIL is released while the engine computes their fbank frames, and in wait() / sync().
//  - Results are taken with poll() / wait(); no Python callbacks (the engine's threads would have
//    to take the GIL: a Python-side loop or thread is simpler and as fast).
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
#include "decode/text.h"
#include "frontend/audio.h"
#include "wenet_rt/recognizer.h"
#include "wenet_rt/streaming.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace wenet_rt {
namespace {

using FloatArray = nb::ndarray<const float, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using Int16Array = nb::ndarray<const int16_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

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
      .def_rw("precision", &RecognizerConfig::precision, "cuda: fp16 | fp32; cpu: fp32 or int8")
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


// --- streaming ---------------------------------------------------------------------------------------

std::vector<std::pair<int, int>> timestamps_of(const std::vector<WordPiece>& pieces) {
  std::vector<std::pair<int, int>> t;
  for (const WordPiece& p : pieces) t.emplace_back(p.start_ms, p.end_ms);
  return t;
}

nb::list pieces_to_list(const std::vector<WordPiece>& word_pieces) {
  nb::list pieces;
  for (const WordPiece& p : word_pieces) {
    nb::dict piece;
    piece["word"] = p.word;
    piece["start"] = p.start_ms;
    piece["end"] = p.end_ms;
    pieces.append(piece);
  }
  return pieces;
}

class PyStream {
 public:
  explicit PyStream(std::shared_ptr<Stream> s) : s_(std::move(s)) {}

  void accept_f32(const FloatArray& a, int sample_rate) {
    Stream& s = get();
    nb::gil_scoped_release release;
    s.accept_waveform(a.data(), a.shape(0), sample_rate);
  }
  void accept_i16(const Int16Array& a, int sample_rate) {
    Stream& s = get();
    nb::gil_scoped_release release;
    s.accept_waveform(a.data(), a.shape(0), sample_rate);
  }
  void input_finished() { get().input_finished(); }
  std::vector<StreamResult> poll() { return get().poll(); }
  std::vector<StreamResult> wait(double timeout_s) {
    Stream& s = get();
    nb::gil_scoped_release release;
    return s.wait(timeout_s);
  }
  bool sync(double timeout_s) {
    Stream& s = get();
    nb::gil_scoped_release release;
    return s.sync(timeout_s);
  }
  std::string partial() const { return get().partial(); }
  bool done() const { return get().done(); }
  std::string error() const { return get().error(); }
  bool closed() const { return !s_; }
  // Drops the engine's stream: an unfinished one is abandoned (its slot freed, no more results).
  void close() {
    std::shared_ptr<Stream> s = std::move(s_);
    nb::gil_scoped_release release;
    s.reset();
  }

 private:
  Stream& get() const {
    if (!s_) throw Error("the stream is closed");
    return *s_;
  }
  std::shared_ptr<Stream> s_;
};

class PyStreamingRecognizer {
 public:
  PyStreamingRecognizer(const std::string& model_dir, const StreamingConfig& config) {
    nb::gil_scoped_release release;
    rec_ = std::make_unique<StreamingRecognizer>(model_dir, config);
  }
  PyStream create_stream(int nbest, bool continuous_decoding) {
    StreamOptions o;
    o.nbest = nbest;
    o.continuous_decoding = continuous_decoding;
    return PyStream(get().create_stream(o));
  }
  int sample_rate() const { return get().sample_rate(); }
  std::string describe() const { return get().describe(); }
  StreamingConfig config() const { return get().config(); }
  StreamingStats stats() const { return get().stats(); }
  // Ends every stream (their results stop; they report an error) and frees the engine.
  void close() {
    std::unique_ptr<StreamingRecognizer> r = std::move(rec_);
    nb::gil_scoped_release release;
    r.reset();
  }

 private:
  StreamingRecognizer& get() const {
    if (!rec_) throw Error("the streaming recognizer is closed");
    return *rec_;
  }
  std::unique_ptr<StreamingRecognizer> rec_;
};

void bind_streaming(nb::module_& m) {
  nb::class_<EndpointRule>(m, "EndpointRule",
                           "One of WeNet's endpoint rules: the utterance ends when it holds (0 = not checked).")
      .def(nb::init<>())
      .def_rw("must_decoded_something", &EndpointRule::must_decoded_something)
      .def_rw("min_trailing_silence_ms", &EndpointRule::min_trailing_silence_ms)
      .def_rw("min_utterance_length_ms", &EndpointRule::min_utterance_length_ms)
      .def("__repr__", [](const EndpointRule& r) {
        return nb::str("EndpointRule(must_decoded_something={}, min_trailing_silence_ms={}, min_utterance_length_ms={})")
            .format(r.must_decoded_something, r.min_trailing_silence_ms, r.min_utterance_length_ms);
      });

  nb::class_<EndpointConfig>(m, "EndpointConfig", "WeNet's CTC endpoint rules (include/wenet_rt/streaming.h).")
      .def(nb::init<>())
      .def_rw("enabled", &EndpointConfig::enabled)
      .def_rw("blank_threshold", &EndpointConfig::blank_threshold)
      .def_rw("rule1", &EndpointConfig::rule1, "5 s of silence, even if nothing was decoded")
      .def_rw("rule2", &EndpointConfig::rule2, "1 s of silence after something was decoded")
      .def_rw("rule3", &EndpointConfig::rule3, "the utterance reached 20 s");

  nb::class_<StreamingConfig>(m, "StreamingConfig", "StreamingConfig: see include/wenet_rt/streaming.h.")
      .def(nb::init<>())
      .def_rw("device", &StreamingConfig::device, "cpu | cuda")
      .def_rw("precision", &StreamingConfig::precision, "cuda: fp16 | fp32; cpu: fp32 or int8")
      .def_prop_rw(
          "mode", [](const StreamingConfig& c) { return std::string(decode_mode_name(c.mode)); },
          [](StreamingConfig& c, const std::string& name) { c.mode = parse_decode_mode(name); },
          "ctc_greedy | ctc_prefix_beam | attention_rescoring")
      .def_rw("beam", &StreamingConfig::beam)
      .def_rw("ctc_weight", &StreamingConfig::ctc_weight)
      .def_rw("rescoring_weight", &StreamingConfig::rescoring_weight)
      .def_rw("reverse_weight", &StreamingConfig::reverse_weight)
      .def_rw("chunk_size", &StreamingConfig::chunk_size, "encoder frames per chunk (16 = 640 ms at x4)")
      .def_rw("num_left_chunks", &StreamingConfig::num_left_chunks, "chunks of attention history; -1 = all")
      .def_rw("endpoint", &StreamingConfig::endpoint)
      .def_rw("max_utterance_seconds", &StreamingConfig::max_utterance_seconds)
      .def_rw("max_streams", &StreamingConfig::max_streams, "0 = by device")
      .def_rw("max_batch", &StreamingConfig::max_batch, "0 = max_streams")
      .def_rw("threads", &StreamingConfig::threads, "0 = all cores")
      .def("validate", &StreamingConfig::validate, "Raises wenet_rt.Error naming a bad field.")
      .def("describe", &StreamingConfig::describe)
      .def("__repr__", [](const StreamingConfig& c) { return "StreamingConfig(" + c.describe() + ")"; });

  nb::class_<Sentence>(m, "Sentence", "One hypothesis of a streaming result.")
      .def_ro("text", &Sentence::text)
      .def_ro("tokens", &Sentence::tokens, "token ids (units.txt)")
      .def_ro("word_pieces", &Sentence::word_pieces, "final results only; ms from the start of the stream")
      .def_ro("score", &Sentence::score)
      .def_prop_ro("timestamps", [](const Sentence& s) { return timestamps_of(s.word_pieces); },
                   "(start_ms, end_ms) per token (final results only)")
      .def("__repr__", [](const Sentence& s) { return nb::str("Sentence({!r}, score={:.4f})").format(s.text, s.score); });

  nb::class_<StreamResult>(m, "StreamResult", "A partial or final result of a stream.")
      .def_ro("is_final", &StreamResult::is_final)
      .def_ro("utterance", &StreamResult::utterance, "0, 1, ... within the stream (continuous decoding)")
      .def_ro("nbest", &StreamResult::nbest, "best first; at most the stream's nbest")
      .def_ro("start_ms", &StreamResult::start_ms, "the audio the utterance covers so far, ms from the stream's start")
      .def_ro("end_ms", &StreamResult::end_ms)
      .def_ro("last", &StreamResult::last, "the stream's last result")
      .def_prop_ro("text", [](const StreamResult& r) { return r.text(); }, "the best hypothesis' text")
      .def_prop_ro("tokens", [](const StreamResult& r) { return r.nbest.empty() ? std::vector<int>{} : r.nbest[0].tokens; })
      .def_prop_ro("word_pieces",
                   [](const StreamResult& r) { return r.nbest.empty() ? std::vector<WordPiece>{} : r.nbest[0].word_pieces; })
      .def_prop_ro("timestamps",
                   [](const StreamResult& r) {
                     return r.nbest.empty() ? std::vector<std::pair<int, int>>{} : timestamps_of(r.nbest[0].word_pieces);
                   },
                   "(start_ms, end_ms) per token of the best hypothesis (final results only)")
      .def_prop_ro("score", [](const StreamResult& r) { return r.nbest.empty() ? 0.0 : r.nbest[0].score; })
      .def("to_dict",
           [](const StreamResult& r) {
             nb::dict d;
             d["is_final"] = r.is_final;
             d["utterance"] = r.utterance;
             d["start_ms"] = r.start_ms;
             d["end_ms"] = r.end_ms;
             d["last"] = r.last;
             nb::list nbest;
             for (const Sentence& s : r.nbest) {
               nb::dict h;
               h["text"] = s.text;
               h["tokens"] = nb::cast(s.tokens);
               h["score"] = s.score;
               h["word_pieces"] = pieces_to_list(s.word_pieces);
               nbest.append(h);
             }
             d["nbest"] = nbest;
             return d;
           })
      .def("__repr__", [](const StreamResult& r) {
        return nb::str("StreamResult({}, utterance={}, text={!r}, {}-{} ms{})")
            .format(r.is_final ? "final" : "partial", r.utterance, r.text(), r.start_ms, r.end_ms, r.last ? ", last" : "");
      });

  nb::class_<StreamingStats>(m, "StreamingStats", "Counters of a streaming recognizer.")
      .def_ro("active_streams", &StreamingStats::active_streams)
      .def_ro("streams_opened", &StreamingStats::streams_opened)
      .def_ro("chunks", &StreamingStats::chunks)
      .def_ro("encoder_calls", &StreamingStats::encoder_calls)
      .def_ro("finals", &StreamingStats::finals)
      .def_ro("audio_seconds", &StreamingStats::audio_seconds)
      .def_ro("max_batch_seen", &StreamingStats::max_batch_seen)
      .def_ro("encoder_ms", &StreamingStats::encoder_ms);

  nb::class_<PyStream>(m, "Stream", "One stream of a StreamingRecognizer (see wenet_rt.Stream).")
      .def("accept_waveform_f32", &PyStream::accept_f32, "samples"_a.noconvert(), "sample_rate"_a)
      .def("accept_waveform_i16", &PyStream::accept_i16, "samples"_a.noconvert(), "sample_rate"_a)
      .def("input_finished", &PyStream::input_finished)
      .def("poll", &PyStream::poll)
      .def("wait", &PyStream::wait, "timeout_s"_a)
      .def("sync", &PyStream::sync, "timeout_s"_a)
      .def_prop_ro("partial", &PyStream::partial)
      .def_prop_ro("done", &PyStream::done)
      .def_prop_ro("error", &PyStream::error)
      .def_prop_ro("closed", &PyStream::closed)
      .def("close", &PyStream::close);

  nb::class_<PyStreamingRecognizer>(m, "StreamingRecognizer",
                                    "The streaming engine over one model directory (see wenet_rt.StreamingRecognizer).")
      .def(nb::init<const std::string&, const StreamingConfig&>(), "model_dir"_a, "config"_a)
      .def("create_stream", &PyStreamingRecognizer::create_stream, "nbest"_a, "continuous_decoding"_a)
      .def_prop_ro("sample_rate", &PyStreamingRecognizer::sample_rate)
      .def("describe", &PyStreamingRecognizer::describe)
      .def_prop_ro("config", &PyStreamingRecognizer::config, "as given, with the device's defaults filled in")
      .def("stats", &PyStreamingRecognizer::stats)
      .def("close", &PyStreamingRecognizer::close);

  m.def(
      "read_audio",
      [](const std::string& path, int sample_rate) {
        auto samples = std::make_unique<std::vector<float>>();
        int rate = 0;
        {
          nb::gil_scoped_release release;
          Audio a = read_audio(path, sample_rate);
          *samples = std::move(a.samples);
          rate = a.sample_rate;
        }
        std::vector<float>* v = samples.release();
        nb::capsule owner(v, [](void* p) noexcept { delete static_cast<std::vector<float>*>(p); });
        return nb::make_tuple(nb::ndarray<nb::numpy, float, nb::ndim<1>>(v->data(), {v->size()}, owner), rate);
      },
      "path"_a, "sample_rate"_a = 0,
      "An audio file (WAV, FLAC, ...) as (float32 samples in [-1, 1) of channel 0, rate), resampled to "
      "sample_rate unless 0 (as the command line reads it).");
  m.def(
      "append_utterance_text",
      [](std::string text, const std::string& more) {
        append_utterance_text(text, more);
        return text;
      },
      "text"_a, "more"_a,
      "text + the next utterance's text of a recording (continuous decoding), joined as the command line "
      "joins them: a space between them unless the script writes none (CJK).");
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
  wenet_rt::bind_streaming(m);
}
