#include "engine/streaming_engine.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "decode/ctc_search.h"
#include "decode/streaming_decoder.h"
#include "decode/text.h"
#include "decode/timestamps.h"
#include "engine/engine_setup.h"
#include "engine/thread_pool.h"
#include "frontend/fbank.h"
#include "graph/asr_model.h"
#include "graph/streaming_encoder.h"

namespace wenet_rt {
namespace {

using Clock = std::chrono::steady_clock;

// One stream's state. The fields under `mu` are shared by the client's threads and the scheduler;
// the rest belongs to the scheduler (and to one search task at a time).
struct StreamContext {
  // --- shared, under mu -------------------------------------------------------------------------
  mutable std::mutex mu;
  std::condition_variable cv;
  std::vector<float> pcm;        // samples not yet in a frame; pcm[0] starts frame `frames_total`
  std::vector<float> feats;      // fbank frames [feats_base, frames_total), row-major
  int64_t feats_base = 0, frames_total = 0;
  int64_t next_window = 0;       // fbank frame where the next chunk's window starts
  int64_t window_end = 0;        // fbank frame after the last window taken
  bool input_done = false;       // input_finished() called
  bool abandoned = false;        // the client dropped the stream
  bool queued = false;           // in the engine's ready queue
  bool busy = false;             // a chunk (or the final result) being decoded by the scheduler
  bool done = false;             // no more results will come
  std::deque<StreamResult> results;
  std::function<void(const StreamResult&)> callback;
  std::string partial, error;

  // --- scheduler ---------------------------------------------------------------------------------
  StreamOptions opts;
  int slot = -1;
  bool final_pending = false;    // the utterance ended; rescoring and the final result follow
  int utterance = 0;
  std::unique_ptr<StreamingCtcDecoder> decoder;  // search, lattice, endpoint of the utterance
};

}  // namespace

struct StreamingEngine::Impl : std::enable_shared_from_this<StreamingEngine::Impl> {
  StreamingConfig cfg;
  ModelDir model;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<AsrModel> asr;
  std::unique_ptr<StreamingEncoder> encoder;
  std::unique_ptr<BatchRescorer> rescorer;
  Fbank fbank;
  std::vector<std::string> units;
  RescoreOptions rescore;
  int frame_ms = 40, k = 1, dim = 0, out_dim = 0;
  int max_utterance_frames = 0;
  StreamingDecoderOptions decoder_opts;
  std::unique_ptr<ThreadPool> pool;

  // Slots: every stream's encoder caches (attention K / V and conv rings) and its utterance's
  // encoder output (for rescoring) in backend memory, reserved at construction. The pool's slots
  // are all allocated once; which are free is kept here (open() runs on client threads).
  EncoderCachePool caches;
  Tensor utterances, zero_row;  // [max_streams * max_utterance_frames, d]; [d] zeros
  std::vector<int> free_slots;

  // The ready queue and the slots, shared with client threads.
  mutable std::mutex mu;
  std::condition_variable cv;
  std::deque<std::shared_ptr<StreamContext>> ready;
  std::vector<std::shared_ptr<StreamContext>> live;  // every open stream, by slot
  bool stopping = false;
  StreamingStats stats;
  std::thread scheduler;

  Impl(ModelDir m, const StreamingConfig& c) : cfg(c), model(std::move(m)) {
    cfg.validate();
    if (cfg.max_streams == 0) cfg.max_streams = cfg.device == "cuda" ? 256 : 32;
    if (cfg.max_batch == 0) cfg.max_batch = cfg.max_streams;
    check_streaming_model(model.config);
    backend = make_engine_backend(cfg.device, cfg.precision, cfg.threads, /*cuda_graphs=*/false);
    asr = std::make_unique<AsrModel>(model, *backend);
    StreamingOptions so;
    so.chunk_size = cfg.chunk_size;
    so.num_left_chunks = cfg.num_left_chunks;
    encoder = std::make_unique<StreamingEncoder>(*asr, so);
    fbank = Fbank(fbank_options(model.config));
    units = unit_table(model.vocab);
    rescore = rescore_options(cfg.ctc_weight, cfg.rescoring_weight, cfg.reverse_weight, model, *asr);
    cfg.reverse_weight = rescore.reverse_weight;
    if (cfg.mode == DecodeMode::kAttentionRescoring)
      rescorer = std::make_unique<BatchRescorer>(*asr, rescore, model.config.sos_id, model.config.eos_id);
    CtcPrefixBeamOptions& search = decoder_opts.search;
    search.beam = cfg.mode == DecodeMode::kCtcGreedy ? 1 : cfg.beam;
    search.blank = model.config.blank_id;
    CtcEndpointOptions& ep = decoder_opts.endpoint;
    ep.enabled = cfg.endpoint.enabled;
    ep.blank = search.blank;
    ep.blank_threshold = cfg.endpoint.blank_threshold;
    const auto rule = [](const EndpointRule& r) {
      return CtcEndpointRule{r.must_decoded_something, r.min_trailing_silence_ms, r.min_utterance_length_ms};
    };
    ep.rule1 = rule(cfg.endpoint.rule1);
    ep.rule2 = rule(cfg.endpoint.rule2);
    ep.rule3 = rule(cfg.endpoint.rule3);
    decoder_opts.subsampling = subsampling_rate(model.config.encoder.input_layer);
    decoder_opts.feature_shift_ms = int(std::lround(model.config.fbank.frame_shift_ms));
    decoder_opts.validate();
    k = std::min(search.beam, model.config.vocab_size);
    dim = fbank.dim();
    out_dim = model.config.encoder.output_size;
    frame_ms = encoder_frame_ms(model.config);
    max_utterance_frames = int(std::min<double>(cfg.max_utterance_seconds * 1000.0 / frame_ms,
                                                asr->max_subsampled_frames() - cfg.chunk_size));
    WENET_CHECK(max_utterance_frames >= cfg.chunk_size,
                "max_utterance_seconds: {} s is shorter than one chunk ({} ms)", cfg.max_utterance_seconds,
                cfg.chunk_size * frame_ms);
    caches = encoder->make_pool(cfg.max_streams, max_utterance_frames);
    for (int s = 0; s < cfg.max_streams; ++s) caches.allocate();
    utterances = backend->upload(HostTensor(DType::kF32, {int64_t(cfg.max_streams) * max_utterance_frames, out_dim}),
                                 backend->act_dtype());
    zero_row = backend->upload(HostTensor(DType::kF32, {out_dim}), backend->act_dtype());
    live.resize(size_t(cfg.max_streams));
    for (int s = cfg.max_streams - 1; s >= 0; --s) free_slots.push_back(s);
    const int threads = cfg.threads > 0 ? cfg.threads : int(std::max(1u, std::thread::hardware_concurrency()));
    pool = std::make_unique<ThreadPool>(threads);
  }

  void start() { scheduler = std::thread([self = shared_from_this()] { self->run(); }); }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(mu);
      stopping = true;
    }
    cv.notify_all();
    if (scheduler.joinable()) scheduler.join();
    std::vector<std::shared_ptr<StreamContext>> open_streams;
    {
      std::lock_guard<std::mutex> lock(mu);
      open_streams = live;
    }
    for (auto& s : open_streams)
      if (s) finish_with_error(*s, "the streaming recognizer was destroyed");
  }

  int rate() const { return fbank.options().sample_rate; }

  // --- client side ----------------------------------------------------------------------------------
  std::shared_ptr<StreamContext> open(const StreamOptions& opts) {
    WENET_CHECK(opts.nbest >= 1 && opts.nbest <= cfg.beam, "stream nbest: expected 1..{} (the beam), got {}",
                cfg.beam, opts.nbest);
    auto s = std::make_shared<StreamContext>();
    s->opts = opts;
    s->decoder = std::make_unique<StreamingCtcDecoder>(decoder_opts);
    std::lock_guard<std::mutex> lock(mu);
    WENET_CHECK(!stopping, "create_stream: the streaming recognizer is shutting down");
    WENET_CHECK(!free_slots.empty(), "create_stream: all {} streams are in use (max_streams)", cfg.max_streams);
    s->slot = free_slots.back();
    free_slots.pop_back();
    live[size_t(s->slot)] = s;
    ++stats.streams_opened;
    ++stats.active_streams;
    return s;
  }

  // Under s.mu: whether the scheduler has something to do for s.
  bool has_work(const StreamContext& s) const {
    if (s.done) return false;
    if (s.abandoned) return true;
    const int64_t avail = s.frames_total - s.next_window;
    if (avail >= encoder->window_frames()) return true;
    return s.input_done;  // the last (short) window, or the final result
  }

  // Under s.mu: the input is finished and too little of it is left for another window.
  bool no_more_windows(const StreamContext& s) const {
    return s.input_done && s.frames_total - s.next_window < encoder->min_window_frames();
  }

  // Under s.mu: forgets the fbank frames before the next window's start.
  void drop_frames_before_next_window(StreamContext& s) const {
    const int64_t drop = std::min(s.next_window, s.frames_total) - s.feats_base;
    if (drop <= 0) return;
    s.feats.erase(s.feats.begin(), s.feats.begin() + std::ptrdiff_t(size_t(drop) * size_t(dim)));
    s.feats_base += drop;
  }

  // Under s.mu: queues s when it has work and is not queued yet.
  void notify_locked(const std::shared_ptr<StreamContext>& s) {
    if (s->queued || !has_work(*s)) return;
    s->queued = true;
    {
      std::lock_guard<std::mutex> lock(mu);
      ready.push_back(s);
    }
    cv.notify_one();
  }

  void accept(const std::shared_ptr<StreamContext>& s, const float* samples, size_t count, int sample_rate) {
    WENET_CHECK(sample_rate == rate(), "accept_waveform: expected {} Hz audio (the model's rate), got {} Hz", rate(),
                sample_rate);
    WENET_CHECK(samples != nullptr || count == 0, "accept_waveform: null samples");
    std::unique_lock<std::mutex> lock(s->mu);
    WENET_CHECK(!s->input_done, "accept_waveform: input_finished() was already called on this stream");
    if (s->done) return;  // decoding stopped at an endpoint: the rest is ignored
    s->pcm.insert(s->pcm.end(), samples, samples + count);
    const int n = fbank.num_frames(int(std::min<size_t>(s->pcm.size(), INT32_MAX)));
    if (n > 0) {
      const size_t used = size_t(n - 1) * size_t(fbank.frame_shift()) + size_t(fbank.frame_length());
      // fbank is thread-safe; computing under the stream's lock keeps frames in order.
      thread_local std::vector<float> frames;
      fbank.compute(s->pcm.data(), int(used), frames);
      s->feats.insert(s->feats.end(), frames.begin(), frames.end());
      s->frames_total += n;
      s->pcm.erase(s->pcm.begin(), s->pcm.begin() + std::ptrdiff_t(size_t(n) * size_t(fbank.frame_shift())));
    }
    {
      std::lock_guard<std::mutex> stats_lock(mu);
      stats.audio_seconds += double(count) / rate();
    }
    notify_locked(s);
  }

  void finish_input(const std::shared_ptr<StreamContext>& s) {
    std::lock_guard<std::mutex> lock(s->mu);
    if (s->input_done) return;
    s->input_done = true;
    notify_locked(s);
  }

  void abandon(const std::shared_ptr<StreamContext>& s) {
    std::lock_guard<std::mutex> lock(s->mu);
    s->abandoned = true;
    s->callback = nullptr;
    notify_locked(s);
  }

  // --- scheduler ------------------------------------------------------------------------------------
  void run() {
    for (;;) {
      std::vector<std::shared_ptr<StreamContext>> batch;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return stopping || !ready.empty(); });
        if (stopping) return;
        while (!ready.empty() && int(batch.size()) < cfg.max_batch) {
          batch.push_back(std::move(ready.front()));
          ready.pop_front();
        }
      }
      try {
        step(batch);
      } catch (const std::exception& e) {
        // The device (or an internal check) failed: these streams cannot go on; the others may.
        for (auto& s : batch) finish_with_error(*s, e.what());
      }
    }
  }

  struct Job {
    std::shared_ptr<StreamContext> s;
    std::vector<float> window;  // fbank frames x dim, empty: no chunk (final result only)
    int frames = 0;             // fbank frames in the window
  };

  void step(std::vector<std::shared_ptr<StreamContext>>& batch) {
    std::vector<Job> jobs;
    for (auto& s : batch) {
      std::lock_guard<std::mutex> lock(s->mu);
      s->queued = false;
      if (s->done) continue;
      if (s->abandoned) {
        release(*s);
        continue;
      }
      Job j{s, {}, 0};
      const int64_t avail = s->frames_total - s->next_window;
      const bool full = avail >= encoder->window_frames();
      if (full || (s->input_done && avail >= encoder->min_window_frames())) {
        j.frames = int(std::min<int64_t>(avail, encoder->window_frames()));
        const float* src = s->feats.data() + size_t(s->next_window - s->feats_base) * size_t(dim);
        j.window.assign(src, src + size_t(j.frames) * size_t(dim));
        s->window_end = s->next_window + j.frames;
        s->next_window += encoder->stride_frames();
        drop_frames_before_next_window(*s);  // windows overlap: the rest is still needed
      } else if (!s->input_done) {
        continue;  // woken for nothing
      }
      s->busy = true;
      jobs.push_back(std::move(j));
    }
    if (jobs.empty()) return;

    encode(jobs);
    pool->parallel_for(jobs.size(), [&](size_t i) { search(jobs[i], chunk_top_k[i]); });
    finalize(jobs);

    // Streams with more ready chunks go back in the queue (behind the others: fair).
    for (Job& j : jobs) {
      {
        std::lock_guard<std::mutex> lock(j.s->mu);
        j.s->busy = false;
        notify_locked(j.s);
      }
      j.s->cv.notify_all();
    }
  }

  // Under s.mu: nothing left to decode until more audio (or input_finished()) arrives.
  bool caught_up(const StreamContext& s) const { return s.done || (!s.queued && !s.busy && !has_work(s)); }

  // Per chunk job: its top-k rows (ids, log-probs [T][k]) and blank log-probs [T].
  struct ChunkTopK {
    std::vector<int> ids;
    std::vector<float> logp, blank;
    int frames = 0;
  };
  std::vector<ChunkTopK> chunk_top_k;

  // The chunks of all jobs through the encoder in one batch (each stream's caches in its slot), the
  // CTC top-k, and the encoder output into each stream's utterance store.
  void encode(std::vector<Job>& jobs) {
    Backend& be = *backend;
    const auto t0 = Clock::now();
    std::vector<size_t> chunked;
    for (size_t i = 0; i < jobs.size(); ++i)
      if (!jobs[i].window.empty()) chunked.push_back(i);
    chunk_top_k.assign(jobs.size(), {});
    const int B = int(chunked.size());
    if (B == 0) return;
    be.reset_arena();
    // Windows padded to a full window: steady shapes.
    const int W = encoder->window_frames();
    std::vector<float> windows(size_t(B) * size_t(W) * size_t(dim), 0.f);
    const size_t nb = static_cast<size_t>(B);
    std::vector<int> lens(nb), slots(nb), first(nb);
    for (int b = 0; b < B; ++b) {
      const Job& j = jobs[chunked[size_t(b)]];
      std::copy(j.window.begin(), j.window.end(), windows.begin() + std::ptrdiff_t(size_t(b) * size_t(W) * size_t(dim)));
      lens[size_t(b)] = j.frames;
      slots[size_t(b)] = j.s->slot;
      first[size_t(b)] = j.s->decoder->frames();
    }
    const EncoderOutput enc = encoder->encode_chunks(windows.data(), B, W, lens.data(), slots.data(), caches);
    const CtcTopK top = asr->ctc_top_k(enc, k);
    Tensor d_slots = be.alloc({B}, DType::kI32), d_first = be.alloc({B}, DType::kI32);
    be.copy_in(slots.data(), d_slots);
    be.copy_in(first.data(), d_first);
    be.ring_write(enc.out, enc.lens, d_slots, d_first, max_utterance_frames, utterances);
    const int T = enc.frames;
    std::vector<int> ids(size_t(B) * size_t(T) * size_t(k));
    std::vector<float> logp(ids.size()), blank(size_t(B) * size_t(T));
    be.copy_out(top.ids, ids.data());
    be.copy_out(top.logp, logp.data());
    be.copy_out(top.blank, blank.data());
    for (int b = 0; b < B; ++b) {
      ChunkTopK& c = chunk_top_k[chunked[size_t(b)]];
      c.frames = enc.host_lens[size_t(b)];
      const size_t row = size_t(b) * size_t(T), n = size_t(c.frames);
      c.ids.assign(ids.begin() + std::ptrdiff_t(row * size_t(k)), ids.begin() + std::ptrdiff_t((row + n) * size_t(k)));
      c.logp.assign(logp.begin() + std::ptrdiff_t(row * size_t(k)), logp.begin() + std::ptrdiff_t((row + n) * size_t(k)));
      c.blank.assign(blank.begin() + std::ptrdiff_t(row), blank.begin() + std::ptrdiff_t(row + n));
    }
    std::lock_guard<std::mutex> lock(mu);
    stats.chunks += uint64_t(B);
    ++stats.encoder_calls;
    stats.max_batch_seen = std::max(stats.max_batch_seen, B);
    stats.encoder_ms += std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  }

  // The prefix search goes on over the chunk; the endpoint rules (a search task).
  void search(Job& j, const ChunkTopK& c) {
    StreamContext& s = *j.s;
    const EndpointReason reason =
        s.decoder->advance_top_k(c.ids.data(), c.logp.data(), c.blank.data(), c.frames, k);
    bool input_over;
    {
      std::lock_guard<std::mutex> lock(s.mu);
      input_over = no_more_windows(s);
    }
    s.final_pending = input_over || reason != EndpointReason::kNone ||
                      s.decoder->frames() + cfg.chunk_size > max_utterance_frames;
  }

  int start_ms(const StreamContext& s) const { return int(s.decoder->utterance_offset_ms()); }
  int end_ms(const StreamContext& s) const { return start_ms(s) + s.decoder->frames() * frame_ms; }

  Sentence sentence_of(const StreamContext& s, const Hypothesis& h, double score, bool with_pieces) const {
    Sentence out;
    out.tokens = h.tokens;
    out.text = tokens_to_text(h.tokens, units);
    out.score = score;
    if (with_pieces) out.word_pieces = s.decoder->word_pieces(h.tokens, units);
    return out;
  }

  // Partial results for the streams that go on; rescoring and final results for the others.
  void finalize(std::vector<Job>& jobs) {
    std::vector<Job*> ending, empty;
    for (Job& j : jobs) {
      StreamContext& s = *j.s;
      if (s.final_pending) {
        (s.decoder->frames() > 0 ? ending : empty).push_back(&j);
        continue;
      }
      StreamResult r;
      r.utterance = s.utterance;
      r.start_ms = start_ms(s);
      r.end_ms = end_ms(s);
      const std::vector<Hypothesis> nbest = s.decoder->nbest();
      for (size_t n = 0; n < nbest.size() && int(n) < s.opts.nbest; ++n)
        r.nbest.push_back(sentence_of(s, nbest[n], nbest[n].ctc_score, false));
      deliver(s, std::move(r));
    }
    for (Job* j : empty) {  // no audio in the utterance: an empty final result
      StreamContext& s = *j->s;
      StreamResult r;
      r.is_final = true;
      r.utterance = s.utterance;
      r.start_ms = r.end_ms = start_ms(s);
      r.nbest.emplace_back();
      end_utterance(s, std::move(r));
    }
    if (ending.empty()) return;

    // Attention rescoring of every ending utterance at once, over their encoder outputs read from
    // the utterance store.
    const int B = int(ending.size());
    const size_t nb = static_cast<size_t>(B);
    std::vector<std::vector<Hypothesis>> nbest(nb);
    std::vector<std::vector<size_t>> order(nb);
    for (int b = 0; b < B; ++b) {
      nbest[size_t(b)] = ending[size_t(b)]->s->decoder->nbest();
      if (nbest[size_t(b)].empty()) nbest[size_t(b)].emplace_back();
    }
    if (rescorer) {
      Backend& be = *backend;
      be.reset_arena();
      std::vector<int> lens(nb), slots(nb), first(nb, 0);
      int T = 1;
      for (int b = 0; b < B; ++b) {
        lens[size_t(b)] = ending[size_t(b)]->s->decoder->frames();
        slots[size_t(b)] = ending[size_t(b)]->s->slot;
        T = std::max(T, lens[size_t(b)]);
      }
      EncoderOutput enc;
      enc.batch = B;
      enc.frames = T;
      enc.host_lens = lens;
      enc.out = be.alloc({B, T, out_dim}, be.act_dtype());
      enc.lens = be.alloc({B}, DType::kI32);
      Tensor d_slots = be.alloc({B}, DType::kI32), d_first = be.alloc({B}, DType::kI32);
      be.copy_in(lens.data(), enc.lens);
      be.copy_in(slots.data(), d_slots);
      be.copy_in(first.data(), d_first);
      be.ring_read(utterances, d_slots, d_first, max_utterance_frames, zero_row, enc.out);
      rescorer->enqueue(enc, nbest);
      be.wait(be.fence());
      for (int b = 0; b < B; ++b) {
        std::vector<Hypothesis>& hyps = nbest[size_t(b)];
        rescorer->pick(size_t(b), hyps);
        for (size_t i = 0; i < hyps.size(); ++i) order[size_t(b)].push_back(i);
        std::stable_sort(order[size_t(b)].begin(), order[size_t(b)].end(),
                         [&](size_t a, size_t c) { return hyps[a].total > hyps[c].total; });
      }
    } else {
      for (int b = 0; b < B; ++b)
        for (size_t i = 0; i < nbest[size_t(b)].size(); ++i) order[size_t(b)].push_back(i);
    }
    for (int b = 0; b < B; ++b) {
      StreamContext& s = *ending[size_t(b)]->s;
      StreamResult r;
      r.is_final = true;
      r.utterance = s.utterance;
      r.start_ms = start_ms(s);
      r.end_ms = end_ms(s);
      for (size_t n = 0; n < order[size_t(b)].size() && int(n) < s.opts.nbest; ++n) {
        const Hypothesis& h = nbest[size_t(b)][order[size_t(b)][n]];
        r.nbest.push_back(sentence_of(s, h, rescorer ? h.total : h.ctc_score, true));
      }
      end_utterance(s, std::move(r));
    }
  }

  // After a final result: a fresh utterance (continuous decoding, more input to come) or the end.
  void end_utterance(StreamContext& s, StreamResult final_result) {
    bool more;
    {
      std::lock_guard<std::mutex> lock(s.mu);
      more = s.opts.continuous_decoding && !no_more_windows(s);
      if (more) {
        // As WeNet's runtime: the next utterance's first window starts after the last one read
        // (its model forgets the overlap), and its times count the fbank frames read so far.
        s.next_window = s.window_end;
        drop_frames_before_next_window(s);
      }
    }
    s.final_pending = false;
    caches.reset(s.slot);
    if (more) {
      s.decoder->reset_continuous(s.window_end);
      ++s.utterance;
      deliver(s, std::move(final_result));
      return;
    }
    deliver(s, std::move(final_result), /*last=*/true);
  }

  // Under s.mu, on the scheduler thread (or after it stopped): frees the stream's slot.
  void release(StreamContext& s) {
    if (s.slot < 0) return;
    caches.reset(s.slot);  // the slot's next stream starts fresh (host bookkeeping only)
    std::lock_guard<std::mutex> lock(mu);
    free_slots.push_back(s.slot);
    live[size_t(s.slot)].reset();
    s.slot = -1;
    --stats.active_streams;
    s.done = true;
    s.cv.notify_all();
  }

  // Hands a result to the client (callback or queue); after the last one the stream is done and
  // its slot free, in one step, so that a client seeing done() has every result.
  void deliver(StreamContext& s, StreamResult r, bool last = false) {
    r.last = last;
    if (r.is_final) {
      std::lock_guard<std::mutex> lock(mu);
      ++stats.finals;
    }
    std::function<void(const StreamResult&)> cb;
    {
      std::lock_guard<std::mutex> lock(s.mu);
      s.partial = r.is_final ? std::string() : r.text();
      cb = s.callback;
    }
    if (cb) cb(r);
    {
      std::lock_guard<std::mutex> lock(s.mu);
      if (!cb) s.results.push_back(std::move(r));
      if (last) release(s);
    }
    s.cv.notify_all();
  }

  void finish_with_error(StreamContext& s, const std::string& message) {
    std::lock_guard<std::mutex> lock(s.mu);
    if (s.done) return;
    s.error = message;
    release(s);
  }
};

namespace {

// What the client holds: dropping it abandons the stream (its slot is freed by the scheduler).
class StreamHandle final : public Stream {
 public:
  StreamHandle(std::shared_ptr<StreamingEngine::Impl> engine, std::shared_ptr<StreamContext> state)
      : engine_(std::move(engine)), s_(std::move(state)) {}
  ~StreamHandle() override { engine_->abandon(s_); }

  void accept_waveform(const float* samples, size_t count, int sample_rate) override {
    engine_->accept(s_, samples, count, sample_rate);
  }
  void accept_waveform(const int16_t* samples, size_t count, int sample_rate) override {
    WENET_CHECK(samples != nullptr || count == 0, "accept_waveform: null samples");
    std::vector<float> f(count);
    for (size_t i = 0; i < count; ++i) f[i] = float(samples[i]) / 32768.f;
    engine_->accept(s_, f.data(), count, sample_rate);
  }
  void input_finished() override { engine_->finish_input(s_); }

  std::vector<StreamResult> poll() override {
    std::lock_guard<std::mutex> lock(s_->mu);
    return take();
  }
  std::vector<StreamResult> wait(double timeout_s) override {
    std::unique_lock<std::mutex> lock(s_->mu);
    s_->cv.wait_for(lock, std::chrono::duration<double>(std::max(0.0, timeout_s)),
                    [&] { return !s_->results.empty() || s_->done; });
    return take();
  }
  bool sync(double timeout_s) override {
    std::unique_lock<std::mutex> lock(s_->mu);
    return s_->cv.wait_for(lock, std::chrono::duration<double>(std::max(0.0, timeout_s)),
                           [&] { return engine_->caught_up(*s_); });
  }
  void set_callback(std::function<void(const StreamResult&)> callback) override {
    std::lock_guard<std::mutex> lock(s_->mu);
    s_->callback = std::move(callback);
  }
  std::string partial() const override {
    std::lock_guard<std::mutex> lock(s_->mu);
    return s_->partial;
  }
  bool done() const override {
    std::lock_guard<std::mutex> lock(s_->mu);
    return s_->done;
  }
  std::string error() const override {
    std::lock_guard<std::mutex> lock(s_->mu);
    return s_->error;
  }

 private:
  std::vector<StreamResult> take() {
    std::vector<StreamResult> out(std::make_move_iterator(s_->results.begin()),
                                  std::make_move_iterator(s_->results.end()));
    s_->results.clear();
    return out;
  }

  std::shared_ptr<StreamingEngine::Impl> engine_;
  std::shared_ptr<StreamContext> s_;
};

}  // namespace

StreamingEngine::StreamingEngine(ModelDir model, const StreamingConfig& config)
    : impl_(std::make_shared<Impl>(std::move(model), config)) {
  impl_->start();
}

StreamingEngine::~StreamingEngine() { impl_->stop(); }

std::shared_ptr<Stream> StreamingEngine::create_stream(const StreamOptions& options) {
  return std::make_shared<StreamHandle>(impl_, impl_->open(options));
}

StreamingStats StreamingEngine::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->stats;
}
const StreamingConfig& StreamingEngine::config() const { return impl_->cfg; }
const ModelDir& StreamingEngine::model() const { return impl_->model; }
int StreamingEngine::sample_rate() const { return impl_->rate(); }

}  // namespace wenet_rt
