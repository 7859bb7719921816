#include "engine/offline_engine.h"

#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <deque>
#include <thread>

#include "backend/backend.h"
#include "core/error.h"
#include "decode/attention_rescoring.h"
#include "decode/ctc_search.h"
#include "decode/text.h"
#include "decode/timestamps.h"
#include "engine/batch_plan.h"
#include "engine/engine_setup.h"
#include "engine/thread_pool.h"
#include "frontend/audio.h"
#include "frontend/fbank.h"
#include "frontend/segmenter.h"
#include "graph/asr_model.h"
#ifdef WENET_RT_HAVE_CUDA
#include "frontend/cuda/fbank_cuda.h"
#endif

namespace wenet_rt {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Adds the seconds fn takes to `acc` (shared by threads).
template <typename F>
void timed(std::atomic<double>& acc, F&& fn) {
  const auto t0 = Clock::now();
  fn();
  acc.fetch_add(seconds_since(t0));
}

constexpr int kReadAhead = 2;  // batches whose audio is read while the device works on another
constexpr int kSlots = 3;      // batches in flight: encoding k, searching k - 1, rescoring k - 2
constexpr int64_t kStagingSlack = 64;  // samples a resampled file may hold beyond its header's estimate

// One utterance of the batch plan: a whole input, or a segment of a long one.
struct Item {
  size_t input = 0;
  int segment = 0;
  int64_t offset = 0;    // first sample within the input
  int64_t planned = 0;   // samples: from the header, exact for audio decoded while planning
  const float* pcm = nullptr;  // the input's samples when in memory (decoded while planning, or borrowed)
  std::shared_ptr<const std::vector<float>> audio;  // owns them, unless borrowed from the caller
  // Read stage.
  int64_t samples = 0;
  int64_t staging_offset = 0;  // where its samples go in the batch's page-locked staging
  std::vector<float> feats;    // cpu front end: frames x dim
  int frames = 0;              // fbank frames
  std::string error;
  // Decode.
  std::vector<int> tokens;
  std::vector<WordPiece> pieces;
  double score = 0;
};

struct Group;

struct Batch {
  Group* group = nullptr;  // null: a bubble (nothing was ready to enter the pipeline at its turn)
  std::vector<Item*> items;
  std::vector<std::future<void>> reads;
  int staging = -1;
  // Device stages.
  std::vector<Item*> live;  // items that were read and encoded, in batch order
  EncoderOutput enc;
  int k = 0;
  uint64_t f_begin = 0, f_frontend = 0, f_encoded = 0, f_ctc = 0, f_rescore_begin = 0, f_rescored = 0;
  double host_frontend_ms = 0, host_encoder_ms = 0, host_ctc_ms = 0, host_rescore_ms = 0;
  bool rescored = false;
  // Search.
  std::vector<std::vector<Hypothesis>> nbest;
  std::vector<std::future<void>> searches, finals;
};

// One job's inputs planned together: their items (per input), results, and its batches still in the
// pipeline.
struct Group {
  EngineJob job;
  std::vector<RecognitionResult> results;
  std::vector<std::vector<Item>> items;
  size_t item_count = 0, items_done = 0, batches_left = 0;
};

// Buffers of one batch in flight.
struct Slot {
  EncoderStore store;
  HostBuffer top_ids, top_logp;
  std::unique_ptr<BatchRescorer> rescorer;
};

size_t peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return size_t(u.ru_maxrss) * 1024;  // kilobytes on Linux
}

}  // namespace

std::string EngineStats::describe() const {
  const double wall_ms = wall_s * 1e3;
  auto share = [&](double ms) { return wall_ms > 0 ? 100 * ms / wall_ms : 0.0; };
  std::string s = fmt::format(
      "{} inputs ({} segments, {} failed) in {} batches (at most {} utterances), {:.1f} s of audio in {:.3f} s: "
      "{:.0f}x real time\n",
      inputs, segments, failed, batches, max_batch, audio_s, wall_s, wall_s > 0 ? audio_s / wall_s : 0.0);
  s += fmt::format("  plan {:.1f}% | CPU threads (summed): read {:.1f}%, fbank {:.1f}%, search {:.1f}%, results {:.1f}%\n",
                   share(plan_s * 1e3), share(read_s * 1e3), share(fbank_cpu_s * 1e3), share(search_s * 1e3),
                   share(finalize_s * 1e3));
  s += fmt::format("  {}: front end {:.1f}%, encoder {:.1f}%, CTC top-k {:.1f}%, rescoring {:.1f}% (busy {:.0f}%)\n",
                   device_timed ? "device" : "driver", share(frontend_ms), share(encoder_ms), share(ctc_ms),
                   share(rescoring_ms), 100 * device_busy());
  s += fmt::format("  driver waits: audio {:.1f}%, CPU tasks {:.1f}%, device {:.1f}%\n", share(wait_read_s * 1e3),
                   share(wait_search_s * 1e3), share(wait_device_s * 1e3));
  s += fmt::format("  peak host RSS {:.0f} MB, device memory {:.0f} MB, CUDA graphs {}", peak_rss_bytes / 1048576.0,
                   device_bytes / 1048576.0, cuda_graphs);
  return s;
}

struct OfflineEngine::Impl {
  RecognizerConfig cfg;
  ModelDir model;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<AsrModel> asr;
  Fbank fbank;
#ifdef WENET_RT_HAVE_CUDA
  std::unique_ptr<CudaFbank> cuda_fbank;
#endif
  std::vector<std::string> units;
  std::string separator;  // between the texts of a long recording's segments
  RescoreOptions rescore;
  CtcPrefixBeamOptions search_opts;
  SegmentOptions segment_opts;
  int frame_ms = 40;  // per encoder frame
  std::unique_ptr<ThreadPool> pool;
  std::array<Slot, kSlots> slots;
  std::array<HostBuffer, kReadAhead + 1> staging;  // page-locked PCM of the batches being read
  std::vector<float> padded;                       // cpu front end: the batch's features, padded
  EngineStats stats;

  // Stats summed by pool threads.
  std::atomic<double> read_s{0}, fbank_s{0}, search_s{0}, finalize_s{0};

  Impl(ModelDir m, const RecognizerConfig& c) : cfg(c), model(std::move(m)) {
    cfg.validate();
    const int threads = cfg.threads > 0 ? cfg.threads : int(std::max(1u, std::thread::hardware_concurrency()));
    // No CUDA graphs: batches cut by a frame budget rarely repeat a shape, and capturing one
    // costs an eager run plus the capture; their kernels are long enough to hide launches.
    backend = make_engine_backend(cfg.device, cfg.precision, cfg.threads, /*cuda_graphs=*/false);
    if (cfg.batch_frames == 0) cfg.batch_frames = cfg.device == "cuda" ? 48000 : 3000;
    asr = std::make_unique<AsrModel>(model, *backend);
    const FbankOptions fo = fbank_options(model.config);
    fbank = Fbank(fo);
#ifdef WENET_RT_HAVE_CUDA
    if (cfg.device == "cuda" && cfg.gpu_frontend) cuda_fbank = std::make_unique<CudaFbank>(fo);
#endif
    units = unit_table(model.vocab);
    separator = piece_separator(units);
    rescore = rescore_options(cfg.ctc_weight, cfg.rescoring_weight, cfg.reverse_weight, model, *asr);
    cfg.reverse_weight = rescore.reverse_weight;
    search_opts.beam = cfg.beam;
    search_opts.blank = model.config.blank_id;
    frame_ms = encoder_frame_ms(model.config);
    // Segments must fit the model's positions (5000 encoder frames, 200 s, for WeNet's models;
    // fewer for models trained with a shorter table): shorter than 95% of what they cover.
    segment_opts.max_seconds = std::min(cfg.max_segment_seconds, 0.95 * asr->max_subsampled_frames() * frame_ms / 1e3);
    segment_opts.min_seconds = std::min(segment_opts.min_seconds, segment_opts.max_seconds / 4);
    segment_opts.validate();
    pool = std::make_unique<ThreadPool>(threads);
    reserve_buffers();
  }

  // Buffers for the largest batch the options allow, so that runs allocate nothing: a batch holds
  // at most batch_frames padded frames, or one segment of up to max_seconds. (Past ~30 minutes of
  // padded audio a batch's buffers grow when such a batch comes instead.)
  void reserve_buffers() {
    Backend& be = *backend;
    const int64_t shift = fbank.frame_shift();
    const int64_t frames = std::min<int64_t>(
        180000, std::max<int64_t>(cfg.batch_frames, int64_t(segment_opts.max_seconds * rate() / shift) + 1));
    const int64_t rows = frames / subsampling_rate(model.config.encoder.input_layer) + cfg.batch_size;
    const size_t hyps = size_t(cfg.batch_size) * size_t(cfg.beam), width = 128;
    for (Slot& slot : slots) {
      slot.store = asr->make_encoder_store(cfg.batch_size, rows);
      slot.top_ids.get<int>(be, size_t(rows) * size_t(top_k()));
      slot.top_logp.get<float>(be, size_t(rows) * size_t(top_k()));
      if (cfg.mode != DecodeMode::kAttentionRescoring) continue;
      slot.rescorer = std::make_unique<BatchRescorer>(*asr, rescore, model.config.sos_id, model.config.eos_id);
      slot.rescorer->reserve(hyps, width);
    }
    if (gpu_frontend())
      for (HostBuffer& s : staging)
        s.get<float>(be, size_t((frames + 3 * cfg.batch_size) * shift + cfg.batch_size * kStagingSlack));
  }

  bool gpu_frontend() const {
#ifdef WENET_RT_HAVE_CUDA
    return cuda_fbank != nullptr;
#else
    return false;
#endif
  }
  int rate() const { return fbank.options().sample_rate; }
  int top_k() const { return cfg.mode == DecodeMode::kCtcGreedy ? 1 : std::min(cfg.beam, model.config.vocab_size); }

  // --- plan ---------------------------------------------------------------------------------------
  // The items of one input; long recordings are decoded and split at pauses here.
  std::vector<Item> plan_input(size_t index, EngineInput& in, RecognitionResult& r) {
    std::vector<Item> items;
    std::shared_ptr<std::vector<float>> audio;
    const float* pcm = nullptr;
    int64_t n = 0;
    if (in.path.empty() && !in.encoded.empty()) {
      Audio a = decode_audio(in.encoded, rate(), in.key);
      in.encoded = std::string();
      in.samples = std::move(a.samples);
      in.sample_rate = a.sample_rate;
    }
    if (in.path.empty()) {
      if (in.borrowed != nullptr && in.sample_rate == rate()) {
        pcm = in.borrowed;
        n = int64_t(in.borrowed_size);
      } else {
        std::vector<float> samples =
            in.borrowed != nullptr ? std::vector<float>(in.borrowed, in.borrowed + in.borrowed_size) : std::move(in.samples);
        Audio a = audio_from_samples(std::move(samples), in.sample_rate, rate());
        audio = std::make_shared<std::vector<float>>(std::move(a.samples));
        pcm = audio->data();
        n = int64_t(audio->size());
      }
      WENET_CHECK(n > 0, "{}: no samples", in.key);
    } else {
      n = probe_audio(in.path).samples_at(rate());
    }
    r.duration_s = double(n) / rate();
    if (double(n) > segment_opts.max_seconds * rate()) {
      if (!pcm) {
        audio = std::make_shared<std::vector<float>>(read_audio(in.path, rate()).samples);
        pcm = audio->data();
        n = int64_t(audio->size());
      }
      r.duration_s = double(n) / rate();
      const std::vector<Segment> segments = split_into_utterances(pcm, n, rate(), segment_opts);
      for (const Segment& s : segments) {
        Item it;
        it.input = index;
        it.segment = int(items.size());
        it.offset = s.begin;
        it.planned = s.end - s.begin;
        it.pcm = pcm;
        it.audio = audio;
        items.push_back(std::move(it));
      }
      r.segments = int(items.size());
      return items;
    }
    Item it;
    it.input = index;
    it.planned = n;
    it.pcm = pcm;
    it.audio = audio;
    items.push_back(std::move(it));
    return items;
  }

  // --- read (pool threads) ------------------------------------------------------------------------
  void read_item(Item& it, const EngineInput& in, float* staging) {
    try {
      std::vector<float> owned;
      const float* pcm = nullptr;
      {
        const auto t0 = Clock::now();
        if (it.pcm) {
          pcm = it.pcm + it.offset;
          it.samples = it.planned;
        } else {
          owned = read_audio(in.path, rate()).samples;
          pcm = owned.data();
          it.samples = int64_t(owned.size());
        }
        it.frames = fbank.num_frames(int(std::min<int64_t>(it.samples, INT32_MAX)));
        const double seconds = double(it.samples) / rate();
        WENET_CHECK(asr->subsampled_length(it.frames) > 0, "audio of {:.3f} s is too short to recognize", seconds);
        WENET_CHECK(asr->subsampled_length(it.frames) <= asr->max_subsampled_frames(),
                    "audio of {:.1f} s is too long for the model: {} encoder frames, expected at most {}", seconds,
                    asr->subsampled_length(it.frames), asr->max_subsampled_frames());
        if (staging) {
          WENET_CHECK(it.samples <= it.planned + kStagingSlack,
                      "decodes to {} samples where its header promised {}: the file is inconsistent", it.samples,
                      it.planned);
          std::memcpy(staging + it.staging_offset, pcm, size_t(it.samples) * sizeof(float));
        }
        read_s.fetch_add(seconds_since(t0));
      }
      if (!staging) timed(fbank_s, [&] { fbank.compute(pcm, int(it.samples), it.feats); });
    } catch (const std::exception& e) {
      const std::string what = e.what();
      it.error = in.path.empty() || what.find(in.path) != std::string::npos
                     ? what
                     : fmt::format("audio file '{}': {}", in.path, what);
    }
  }

  void start_reading(Batch& b, int staging_slot) {
    const std::vector<EngineInput>& inputs = b.group->job.inputs;
    float* pcm = nullptr;
    if (gpu_frontend()) {
      int64_t total = 0;
      for (Item* it : b.items) {
        it->staging_offset = total;
        total += it->planned + (it->pcm ? 0 : kStagingSlack);
      }
      pcm = staging[size_t(staging_slot)].get<float>(*backend, size_t(total));
      b.staging = staging_slot;
    }
    for (Item* it : b.items) {
      const EngineInput* in = &inputs[it->input];
      b.reads.push_back(pool->submit([this, it, in, pcm] { read_item(*it, *in, pcm); }));
    }
  }

  // --- device: front end, encoder, CTC top-k ---------------------------------------------------------
  void encode(Batch& b, Slot& slot) {
    Backend& be = *backend;
    be.reset_arena();
    for (Item* it : b.items)
      if (it->error.empty()) b.live.push_back(it);
    if (b.live.empty()) return;
    const int B = int(b.live.size());
    std::vector<int> frames(static_cast<size_t>(B), 0);
    int T = 0;
    for (int i = 0; i < B; ++i) T = std::max(T, frames[size_t(i)] = b.live[size_t(i)]->frames);
    const int Tp = asr->subsampled_length(T);
    if (slot.store.max_batch < B || slot.store.rows < int64_t(B) * Tp)  // past the reservation: grow
      slot.store = asr->make_encoder_store(B, int64_t(B) * Tp);
    auto t0 = Clock::now();
    b.f_begin = be.fence();
    Tensor feats;
    if (gpu_frontend()) {
#ifdef WENET_RT_HAVE_CUDA
      std::vector<int> lengths;
      std::vector<int64_t> offsets;
      for (Item* it : b.live) lengths.push_back(int(it->samples)), offsets.push_back(it->staging_offset);
      cuda_fbank->compute(staging[size_t(b.staging)].data<float>(), lengths,
                          static_cast<cudaStream_t>(be.native_stream()), &offsets);
      feats = make_view(const_cast<float*>(cuda_fbank->features()), {B, cuda_fbank->max_frames(), fbank.dim()},
                        DType::kF32);
#endif
    } else {
      padded.assign(size_t(B) * size_t(T) * size_t(fbank.dim()), 0.f);
      for (int i = 0; i < B; ++i)
        std::copy(b.live[size_t(i)]->feats.begin(), b.live[size_t(i)]->feats.end(),
                  padded.begin() + long(size_t(i) * size_t(T) * size_t(fbank.dim())));
      feats = be.alloc({B, T, fbank.dim()}, DType::kF32);
      be.copy_in(padded.data(), feats);
    }
    b.f_frontend = be.fence();
    b.host_frontend_ms = seconds_since(t0) * 1e3;
    t0 = Clock::now();
    b.enc = asr->encode(feats, frames.data(), slot.store);
    b.f_encoded = be.fence();
    b.host_encoder_ms = seconds_since(t0) * 1e3;
    t0 = Clock::now();
    b.k = top_k();
    const CtcTopK top = asr->ctc_top_k(b.enc, b.k);
    const size_t cells = size_t(B) * size_t(Tp) * size_t(b.k);
    be.copy_out_async(top.ids, slot.top_ids.get<int>(be, cells));
    be.copy_out_async(top.logp, slot.top_logp.get<float>(be, cells));
    b.f_ctc = be.fence();
    b.host_ctc_ms = seconds_since(t0) * 1e3;
  }

  // --- CPU: prefix searches ----------------------------------------------------------------------------
  void start_search(Batch& b, const Slot& slot) {
    const int B = int(b.live.size());
    b.nbest.assign(size_t(B), {});
    const size_t rows = size_t(b.enc.frames) * size_t(b.k);
    const int* ids = slot.top_ids.data<int>();
    const float* logp = slot.top_logp.data<float>();
    for (int i = 0; i < B; ++i) {
      b.searches.push_back(pool->submit([this, &b, i, ids, logp, rows] {
        timed(search_s, [&] {
          const int frames = b.enc.host_lens[size_t(i)];
          const int* row_ids = ids + size_t(i) * rows;
          if (cfg.mode == DecodeMode::kCtcGreedy) {
            Hypothesis h;
            for (int t = 0, prev = -1; t < frames; prev = row_ids[size_t(t)], ++t)
              if (row_ids[size_t(t)] != prev && row_ids[size_t(t)] != search_opts.blank)
                h.tokens.push_back(row_ids[size_t(t)]);
            b.nbest[size_t(i)] = {std::move(h)};
            return;
          }
          thread_local std::unique_ptr<CtcPrefixBeamSearcher> searcher;
          if (!searcher || searcher->options().beam != search_opts.beam || searcher->options().blank != search_opts.blank)
            searcher = std::make_unique<CtcPrefixBeamSearcher>(search_opts);
          b.nbest[size_t(i)] = searcher->search_top_k(row_ids, logp + size_t(i) * rows, frames, b.k);
        });
      }));
    }
  }

  // --- device: attention rescoring -------------------------------------------------------------------
  void start_rescoring(Batch& b, Slot& slot) {
    if (cfg.mode != DecodeMode::kAttentionRescoring || b.live.empty()) return;
    Backend& be = *backend;
    const auto t0 = Clock::now();
    b.f_rescore_begin = be.fence();
    slot.rescorer->enqueue(b.enc, b.nbest);
    b.f_rescored = be.fence();
    b.rescored = true;
    b.host_rescore_ms = seconds_since(t0) * 1e3;
  }

  // --- results ---------------------------------------------------------------------------------------
  // Picks each utterance's result and its timestamps, on the pool; the device times go to stats.
  void finalize(Batch& b, const Slot& slot) {
    const size_t rows = size_t(b.enc.frames) * size_t(b.k);
    for (size_t i = 0; i < b.live.size(); ++i)
      b.finals.push_back(pool->submit([this, &b, &slot, rows, i] { timed(finalize_s, [&] { finalize_item(b, slot, rows, i); }); }));
    EngineStats& s = stats;
    if (s.device_timed) {
      s.frontend_ms += backend->elapsed_ms(b.f_begin, b.f_frontend);
      s.encoder_ms += backend->elapsed_ms(b.f_frontend, b.f_encoded);
      s.ctc_ms += backend->elapsed_ms(b.f_encoded, b.f_ctc);
      if (b.rescored) s.rescoring_ms += backend->elapsed_ms(b.f_rescore_begin, b.f_rescored);
    } else {
      s.frontend_ms += b.host_frontend_ms;
      s.encoder_ms += b.host_encoder_ms;
      s.ctc_ms += b.host_ctc_ms;
      s.rescoring_ms += b.host_rescore_ms;
    }
  }

  void finalize_item(Batch& b, const Slot& slot, size_t rows, size_t i) {
    {
      Item& it = *b.live[i];
      std::vector<Hypothesis>& hyps = b.nbest[i];
      size_t best = 0;
      if (b.rescored) {
        best = size_t(slot.rescorer->pick(i, hyps));
        it.score = hyps[best].total;
      } else {
        it.score = hyps[0].ctc_score;
      }
      it.tokens = std::move(hyps[best].tokens);
      const std::vector<int> peaks =
          ctc_peak_frames(slot.top_ids.data<int>() + i * rows, slot.top_logp.data<float>() + i * rows,
                          b.enc.host_lens[i], b.k, search_opts.blank, it.tokens);
      it.pieces = word_pieces(it.tokens, peaks, units, frame_ms, int(std::lround(1e3 * double(it.offset) / rate())));
    }
  }

  RecognitionResult stitch(RecognitionResult r, std::vector<Item*>& parts) {
    for (Item* it : parts) {
      if (!it->error.empty() && r.error.empty())
        r.error = parts.size() > 1 ? fmt::format("segment {} at {:.1f} s: {}", it->segment,
                                                 double(it->offset) / rate(), it->error)
                                   : it->error;
    }
    if (!r.error.empty()) return r;
    for (Item* it : parts) {
      const std::string text = tokens_to_text(it->tokens, units);
      if (!text.empty()) r.text += (r.text.empty() ? "" : separator) + text;
      r.tokens.insert(r.tokens.end(), it->tokens.begin(), it->tokens.end());
      r.word_pieces.insert(r.word_pieces.end(), it->pieces.begin(), it->pieces.end());
      r.score += it->score;
    }
    return r;
  }

  // --- the pipeline ----------------------------------------------------------------------------------
  // Plans a job's inputs (probing headers, decoding uploads, splitting long recordings) and appends
  // its batches; a job with nothing to run is finished at once.
  void plan_job(Group& g, std::deque<Batch>& batches) {
    const auto t0 = Clock::now();
    std::vector<EngineInput>& inputs = g.job.inputs;
    g.results.assign(inputs.size(), {});
    g.items.assign(inputs.size(), {});
    pool->parallel_for(inputs.size(), [&](size_t i) {
      g.results[i].key = inputs[i].key;
      try {
        g.items[i] = plan_input(i, inputs[i], g.results[i]);
      } catch (const std::exception& e) {
        const std::string what = e.what();
        g.results[i].error = inputs[i].path.empty() || what.find(inputs[i].path) != std::string::npos
                                 ? what
                                 : fmt::format("audio file '{}': {}", inputs[i].path, what);
      }
    });
    std::vector<Item*> items;
    std::vector<int64_t> lengths;
    for (auto& v : g.items)
      for (Item& it : v) {
        items.push_back(&it);
        lengths.push_back(fbank.num_frames(int(std::min<int64_t>(it.planned, INT32_MAX))));
      }
    g.item_count = items.size();
    for (const auto& plan : plan_batches(lengths, cfg.batch_size, cfg.batch_frames)) {
      Batch& b = batches.emplace_back();
      b.group = &g;
      for (size_t i : plan) b.items.push_back(items[i]);
      stats.max_batch = std::max(stats.max_batch, int(plan.size()));
      ++stats.batches;
      ++g.batches_left;
    }
    stats.segments += items.size();
    stats.plan_s += seconds_since(t0);
    if (g.batches_left == 0) finish_job(g);
  }

  // Joins the segments of each input back into one result and hands the job's results over.
  void finish_job(Group& g) {
    std::vector<std::vector<Item*>> parts(g.results.size());
    for (auto& v : g.items)
      for (Item& it : v) parts[it.input].push_back(&it);
    for (size_t i = 0; i < g.results.size(); ++i) {
      if (g.results[i].error.empty()) g.results[i] = stitch(std::move(g.results[i]), parts[i]);
      if (!g.results[i].error.empty()) ++stats.failed;
      stats.audio_s += g.results[i].duration_s;
    }
    stats.inputs += g.results.size();
    if (g.job.done) g.job.done(std::move(g.results));
  }

  // Jobs flow through one pipeline of batches: iteration i encodes batch i, finalizes i - 2,
  // rescores i - 1 and searches i, while the audio of i + 1 and i + 2 is read. When no job is ready
  // at batch i's turn, batch i is a bubble (empty: every stage skips it), so that jobs arriving later
  // still enter at the front while earlier ones finish; with nothing in flight, `next` may block.
  void run_jobs(const std::function<std::optional<EngineJob>(bool)>& next) {
    const auto t_start = Clock::now();
    stats = EngineStats{};
    stats.device_timed = cfg.device == "cuda";
    read_s = fbank_s = search_s = finalize_s = 0;
    std::deque<Group> groups;  // jobs not yet finished, in arrival order
    std::deque<Batch> batches;
    size_t first = 0;      // index of batches.front()
    size_t next_read = 0;  // the first batch whose audio is not being read yet
    bool ended = false;
    auto at = [&](size_t j) -> Batch& { return batches[j - first]; };
    auto real = [&](size_t j) { return j >= first && j < first + batches.size() && at(j).group != nullptr; };
    // Waits for every task still holding a batch (also when unwinding an error).
    struct Drain {
      std::deque<Batch>& batches;
      ~Drain() {
        for (Batch& b : batches)
          for (auto* fs : {&b.reads, &b.searches, &b.finals})
            for (auto& f : *fs)
              if (f.valid()) f.wait();
      }
    } drain{batches};

    auto wait_all = [](std::vector<std::future<void>>& fs, double& acc) {
      const auto t0 = Clock::now();
      for (auto& f : fs) f.get();
      fs.clear();
      acc += seconds_since(t0);
    };
    auto finish = [&](size_t j) {
      Batch& b = at(j);
      const auto t0 = Clock::now();
      if (b.rescored || !b.live.empty()) backend->wait(b.rescored ? b.f_rescored : b.f_ctc);
      stats.wait_device_s += seconds_since(t0);
      if (!b.live.empty()) finalize(b, slots[j % kSlots]);
    };
    // Batch j's results are complete (its slot free again) once its finalize tasks are done; its
    // job's, once all of the job's batches are.
    auto complete = [&](size_t j) {
      Batch& b = at(j);
      wait_all(b.finals, stats.wait_search_s);
      if (Group* g = b.group) {
        g->items_done += b.items.size();
        if (g->job.progress) g->job.progress(g->items_done, g->item_count);
        if (--g->batches_left == 0) finish_job(*g);
      }
      while (!groups.empty() && groups.front().batches_left == 0) groups.pop_front();
    };
    auto start_reads = [&](size_t upto) {  // batches [next_read, upto]: their staging is free by now
      for (; next_read <= upto && next_read < first + batches.size(); ++next_read)
        if (real(next_read)) start_reading(at(next_read), int(next_read % (kReadAhead + 1)));
    };

    for (size_t i = 0;; ++i) {
      if (i >= kSlots) {
        complete(i - kSlots);
        batches.pop_front();
        ++first;
      }
      // Batch i: planned already, or a job ready now (waiting for one when nothing is in flight).
      while (!ended && i >= first + batches.size()) {
        const bool idle = !real(i - 1) && !real(i - 2);
        std::optional<EngineJob> job = next(idle);
        if (!job) {
          ended = true;
        } else if (!job->inputs.empty()) {
          Group& g = groups.emplace_back();
          g.job = std::move(*job);
          plan_job(g, batches);
        } else if (!idle) {
          break;  // nothing ready: a bubble
        }
      }
      if (i >= first + batches.size()) {
        if (ended && !real(i - 1) && !real(i - 2)) break;
        batches.emplace_back();  // a bubble
      }
      start_reads(i + kReadAhead);
      if (real(i)) {
        wait_all(at(i).reads, stats.wait_read_s);
        encode(at(i), slots[i % kSlots]);
      }
      if (i >= 2) finish(i - 2);
      if (i >= 1) {
        wait_all(at(i - 1).searches, stats.wait_search_s);
        start_rescoring(at(i - 1), slots[(i - 1) % kSlots]);
      }
      const auto t0 = Clock::now();
      if (!at(i).live.empty()) backend->wait(at(i).f_ctc);
      stats.wait_device_s += seconds_since(t0);
      start_search(at(i), slots[i % kSlots]);
    }
    for (size_t j = first; j < first + batches.size(); ++j) complete(j);

    stats.read_s = read_s;
    stats.fbank_cpu_s = fbank_s;
    stats.search_s = search_s;
    stats.finalize_s = finalize_s;
    stats.wall_s = seconds_since(t_start);
    stats.peak_rss_bytes = peak_rss_bytes();
    stats.device_bytes = backend->device_bytes();
    stats.cuda_graphs = backend->cached_graphs();
  }

  std::vector<RecognitionResult> run(std::vector<EngineInput> inputs,
                                     const std::function<void(size_t, size_t)>& progress) {
    std::vector<RecognitionResult> results;
    std::optional<EngineJob> job =
        EngineJob{std::move(inputs), [&](std::vector<RecognitionResult> r) { results = std::move(r); }, progress};
    if (job->inputs.empty()) {
      stats = EngineStats{};
      return results;
    }
    run_jobs([&](bool) {
      std::optional<EngineJob> out;
      std::swap(out, job);
      return out;
    });
    return results;
  }
};

OfflineEngine::OfflineEngine(ModelDir model, const RecognizerConfig& config)
    : impl_(std::make_unique<Impl>(std::move(model), config)) {}
OfflineEngine::~OfflineEngine() = default;

std::vector<RecognitionResult> OfflineEngine::run(std::vector<EngineInput> inputs,
                                                  const std::function<void(size_t, size_t)>& progress) {
  return impl_->run(std::move(inputs), progress);
}

void OfflineEngine::run_jobs(const std::function<std::optional<EngineJob>(bool wait)>& next) { impl_->run_jobs(next); }

const EngineStats& OfflineEngine::stats() const { return impl_->stats; }
const ModelDir& OfflineEngine::model() const { return impl_->model; }
const RecognizerConfig& OfflineEngine::config() const { return impl_->cfg; }
int OfflineEngine::sample_rate() const { return impl_->rate(); }

}  // namespace wenet_rt
