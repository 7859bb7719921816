#include "wenet_rt/recognizer.h"

#include <algorithm>
#include <future>
#include <numeric>
#include <thread>

#include "backend/backend.h"
#include "core/error.h"
#include "decode/attention_rescoring.h"
#include "decode/ctc_search.h"
#include "decode/text.h"
#include "frontend/audio.h"
#include "frontend/fbank.h"
#include "graph/asr_model.h"
#include "model/model_dir.h"

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

void RecognizerConfig::validate() const {
  WENET_CHECK(device == "cpu" || device == "cuda", "device: expected cpu or cuda, got '{}'", device);
  WENET_CHECK(precision == "fp16" || precision == "fp32", "precision: expected fp16 or fp32, got '{}'", precision);
  WENET_CHECK(beam >= 1 && beam <= 1000, "beam: expected 1..1000, got {}", beam);
  WENET_CHECK(batch_size >= 1 && batch_size <= 4096, "batch_size: expected 1..4096, got {}", batch_size);
  WENET_CHECK(threads >= 0, "threads: expected >= 0, got {}", threads);
  WENET_CHECK(reverse_weight <= 1.f, "reverse_weight: expected <= 1, got {}", reverse_weight);
}

std::string RecognizerConfig::describe() const {
  return fmt::format("device {}{}, mode {}, beam {}, ctc_weight {}, rescoring_weight {}, reverse_weight {}, batch {}",
                     device, device == "cuda" ? " " + precision : "", decode_mode_name(mode), beam, ctc_weight,
                     rescoring_weight, reverse_weight < 0 ? std::string("(model)") : fmt::format("{}", reverse_weight),
                     batch_size);
}

namespace {

// Calls fn(i) for i in [0, n) on up to `threads` threads (the caller's included).
template <typename F>
void parallel_for(size_t n, int threads, F&& fn) {
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < n;) fn(i);
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads && size_t(t) < n; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
}

}  // namespace

struct Recognizer::Impl {
  RecognizerConfig cfg;
  ModelDir model;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<AsrModel> asr;
  Fbank fbank;
  std::vector<std::string> units;
  RescoreOptions rescore;
  int threads = 1;

  Impl(const std::string& dir, const RecognizerConfig& c) : cfg(c), model(load_model_dir(dir)) {
    cfg.validate();
    threads = cfg.threads > 0 ? cfg.threads : int(std::max(1u, std::thread::hardware_concurrency()));
    if (cfg.device == "cuda") {
#ifdef WENET_RT_HAVE_CUDA
      CudaBackendOptions o;
      o.dtype = cfg.precision == "fp16" ? DType::kF16 : DType::kF32;
      o.cuda_graphs = cfg.cuda_graphs;
      backend = make_cuda_backend(o);
#else
      fail("device cuda: this build of wenet-rt has no CUDA backend");
#endif
    } else {
      backend = make_cpu_backend(cfg.threads);
    }
    asr = std::make_unique<AsrModel>(model, *backend);
    FbankOptions fo;
    fo.sample_rate = model.config.fbank.sample_rate;
    fo.num_mel_bins = model.config.fbank.num_mel_bins;
    fo.frame_length_ms = model.config.fbank.frame_length_ms;
    fo.frame_shift_ms = model.config.fbank.frame_shift_ms;
    fbank = Fbank(fo);
    for (int i = 0; i < model.vocab.size(); ++i) units.push_back(model.vocab.token(i));
    rescore.ctc_weight = cfg.ctc_weight;
    rescore.rescoring_weight = cfg.rescoring_weight;
    rescore.reverse_weight = cfg.reverse_weight >= 0 ? cfg.reverse_weight : model.config.reverse_weight;
    if (!asr->has_right_decoder()) rescore.reverse_weight = 0.f;
    rescore.validate();
  }

  struct Features {
    std::vector<float> feats;  // frames x dim
    int frames = 0;
  };

  Features features(const Audio& audio) const {
    Features f;
    f.feats = fbank.compute(audio);
    f.frames = int(f.feats.size() / size_t(fbank.dim()));
    const int frames = asr->subsampled_length(f.frames);
    WENET_CHECK(frames > 0, "audio of {:.3f} s is too short to recognize", audio.duration());
    // Checked here, per file: the encoder would reject the whole batch.
    WENET_CHECK(frames <= asr->max_subsampled_frames(),
                "audio of {:.1f} s is too long for the model: {} encoder frames, expected at most {}",
                audio.duration(), frames, asr->max_subsampled_frames());
    return f;
  }

  // Recognizes utterances whose features are ready; results[i] belongs to feats[i].
  void decode_batch(const std::vector<const Features*>& feats, std::vector<RecognitionResult*>& results) {
    const int B = int(feats.size()), dim = fbank.dim();
    int T = 0;
    for (const Features* f : feats) T = std::max(T, f->frames);
    std::vector<float> padded(size_t(B) * size_t(T) * size_t(dim), 0.f);
    std::vector<int> lens(static_cast<size_t>(B));
    for (int b = 0; b < B; ++b) {
      std::copy(feats[size_t(b)]->feats.begin(), feats[size_t(b)]->feats.end(), padded.begin() + long(size_t(b) * T * dim));
      lens[size_t(b)] = feats[size_t(b)]->frames;
    }
    backend->reset_arena();
    const EncoderOutput enc = asr->encode(padded.data(), B, T, lens.data());
    const int V = model.config.vocab_size, Tp = enc.frames;
    std::vector<float> log_probs(size_t(B) * size_t(Tp) * size_t(V));
    backend->copy_out(asr->ctc_log_probs(enc), log_probs.data());

    if (cfg.mode == DecodeMode::kCtcGreedy) {
      for (int b = 0; b < B; ++b) {
        RecognitionResult& r = *results[size_t(b)];
        r.tokens = ctc_greedy_search(log_probs.data() + size_t(b) * Tp * V, enc.host_lens[size_t(b)], V,
                                     model.config.blank_id);
        r.score = 0;
      }
      return;
    }
    CtcPrefixBeamOptions po;
    po.beam = cfg.beam;
    po.blank = model.config.blank_id;
    // Utterances are searched in parallel on the CPU while nothing else is queued.
    std::vector<std::vector<Hypothesis>> nbest(static_cast<size_t>(B));
    parallel_for(size_t(B), threads, [&](size_t b) {
      nbest[b] = CtcPrefixBeamSearcher(po).search(log_probs.data() + b * size_t(Tp) * V, enc.host_lens[b], V);
    });
    if (cfg.mode == DecodeMode::kCtcPrefixBeam) {
      for (int b = 0; b < B; ++b) {
        results[size_t(b)]->tokens = nbest[size_t(b)][0].tokens;
        results[size_t(b)]->score = nbest[size_t(b)][0].ctc_score;
      }
      return;
    }

    // Attention rescoring: every utterance's N-best in one decoder batch of B x N hypotheses
    // (utterances with fewer hypotheses are padded with empty ones that are never read).
    size_t N = 0;
    int width = 1;
    for (const auto& h : nbest) {
      N = std::max(N, h.size());
      width = std::max(width, decoder_input_width(h));
    }
    const int sos = model.config.sos_id, eos = model.config.eos_id;
    const size_t rows = size_t(B) * N;
    std::vector<int> ids(rows * size_t(width), eos), hyp_lens(rows, 1);
    for (int b = 0; b < B; ++b) {
      for (size_t n = 0; n < N; ++n) ids[(size_t(b) * N + n) * size_t(width)] = sos;
      build_decoder_inputs(nbest[size_t(b)], sos, eos, false, width, ids.data() + size_t(b) * N * width,
                           hyp_lens.data() + size_t(b) * N);
    }
    std::vector<float> l2r(rows * size_t(width) * size_t(V)), r2l;
    backend->copy_out(asr->decode(enc, ids.data(), hyp_lens.data(), int(rows), width, false), l2r.data());
    if (rescore.reverse_weight > 0.f) {
      for (int b = 0; b < B; ++b)
        build_decoder_inputs(nbest[size_t(b)], sos, eos, true, width, ids.data() + size_t(b) * N * width);
      r2l.resize(l2r.size());
      backend->copy_out(asr->decode(enc, ids.data(), hyp_lens.data(), int(rows), width, true), r2l.data());
    }
    for (int b = 0; b < B; ++b) {
      const size_t off = size_t(b) * N * size_t(width) * size_t(V);
      const int best = attention_rescore(nbest[size_t(b)], l2r.data() + off, r2l.empty() ? nullptr : r2l.data() + off,
                                         width, V, eos, rescore);
      results[size_t(b)]->tokens = nbest[size_t(b)][size_t(best)].tokens;
      results[size_t(b)]->score = nbest[size_t(b)][size_t(best)].total;
    }
  }

  // Reads and featurizes files[begin, end) on `threads` threads; failures go to results[i].error.
  std::vector<Features> load(const std::vector<std::pair<std::string, std::string>>& files, size_t begin, size_t end,
                             std::vector<RecognitionResult>& results) const {
    std::vector<Features> out(end - begin);
    parallel_for(end - begin, threads, [&](size_t k) {
      const size_t i = begin + k;
      RecognitionResult& r = results[i];
      try {
        const Audio audio = read_audio(files[i].second, fbank.options().sample_rate);
        r.duration_s = audio.duration();
        out[i - begin] = features(audio);
      } catch (const std::exception& e) {
        // Errors name the file (read_audio's already do).
        const std::string what = e.what();
        r.error = what.find(files[i].second) == std::string::npos
                      ? fmt::format("audio file '{}': {}", files[i].second, what)
                      : what;
      }
    });
    return out;
  }
};

Recognizer::Recognizer(const std::string& model_dir, const RecognizerConfig& config)
    : impl_(std::make_unique<Impl>(model_dir, config)) {}
Recognizer::~Recognizer() = default;

int Recognizer::sample_rate() const { return impl_->fbank.options().sample_rate; }

std::string Recognizer::describe() const { return wenet_rt::describe(impl_->model) + "\n" + impl_->cfg.describe(); }

std::vector<RecognitionResult> Recognizer::recognize_files(const std::vector<std::pair<std::string, std::string>>& files,
                                                           const std::function<void(size_t, size_t)>& progress) {
  Impl& m = *impl_;
  std::vector<RecognitionResult> results(files.size());
  for (size_t i = 0; i < files.size(); ++i) results[i].key = files[i].first;
  // Files go in chunks: the next chunk's audio is read and featurized on CPU threads while the
  // current one runs through the model; within a chunk utterances are sorted by length and batched.
  const size_t chunk = size_t(m.cfg.batch_size) * 8;
  auto load = [&](size_t begin) {
    return std::async(std::launch::async, [&m, &files, &results, begin, chunk] {
      return m.load(files, begin, std::min(files.size(), begin + chunk), results);
    });
  };
  std::future<std::vector<Impl::Features>> pending = load(0);
  size_t done = 0;
  for (size_t begin = 0; begin < files.size(); begin += chunk) {
    std::vector<Impl::Features> feats = pending.get();
    if (begin + chunk < files.size()) pending = load(begin + chunk);
    std::vector<size_t> order;
    for (size_t i = 0; i < feats.size(); ++i)
      if (results[begin + i].error.empty()) order.push_back(i);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return feats[a].frames > feats[b].frames; });
    for (size_t s = 0; s < order.size(); s += size_t(m.cfg.batch_size)) {
      std::vector<const Impl::Features*> batch;
      std::vector<RecognitionResult*> out;
      for (size_t k = s; k < std::min(order.size(), s + size_t(m.cfg.batch_size)); ++k) {
        batch.push_back(&feats[order[k]]);
        out.push_back(&results[begin + order[k]]);
      }
      m.decode_batch(batch, out);
      for (RecognitionResult* r : out) r->text = tokens_to_text(r->tokens, m.units);
    }
    done = std::min(files.size(), begin + chunk);
    if (progress) progress(done, files.size());
  }
  return results;
}

RecognitionResult Recognizer::recognize(const std::string& key, const std::vector<float>& samples, int rate) {
  Impl& m = *impl_;
  RecognitionResult r;
  r.key = key;
  const Audio audio = audio_from_samples(samples, rate, sample_rate());
  r.duration_s = audio.duration();
  const Impl::Features f = m.features(audio);
  std::vector<const Impl::Features*> batch{&f};
  std::vector<RecognitionResult*> out{&r};
  m.decode_batch(batch, out);
  r.text = tokens_to_text(r.tokens, m.units);
  return r;
}

}  // namespace wenet_rt
