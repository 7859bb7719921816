// The streaming engine (StreamingRecognizer) on the CPU backend: its results equal the chunk-by-chunk
// pipeline run by hand (the StreamingEncoder, itself checked against WeNet's goldens in
// tests/graph/test_streaming_encoder.cc; the full-vocabulary prefix search; rescoring over the full
// decoder output), whether streams run one at a time, together, or join mid-way; endpoints and
// continuous decoding; abandoned streams free their slots; bad input is a clear error.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <thread>

#include "backend/backend.h"
#include "common/expect_error.h"
#include "decode/attention_rescoring.h"
#include "decode/ctc_search.h"
#include "engine/engine_setup.h"
#include "frontend/audio.h"
#include "frontend/fbank.h"
#include "graph/streaming_encoder.h"
#include "wenet_rt/streaming.h"

namespace wenet_rt {
namespace {

namespace fs = std::filesystem;

const std::string kU2pp = std::string(WENET_TEST_DATA) + "/wenet-goldens/u2pp_stream_tiny";
const std::string kU2 = std::string(WENET_TEST_DATA) + "/wenet-goldens/u2_stream_tiny";

std::vector<std::string> demo_wavs() {
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(std::string(WENET_SOURCE_DIR) + "/models/demo/examples"))
    if (e.path().extension() == ".wav") files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  return files;
}

StreamingConfig config(int chunk, int left, DecodeMode mode = DecodeMode::kAttentionRescoring) {
  StreamingConfig c;
  c.chunk_size = chunk;
  c.num_left_chunks = left;
  c.mode = mode;
  c.beam = 4;
  c.endpoint.enabled = false;
  c.threads = 2;
  return c;
}

// The pipeline by hand: fbank of the whole file, encode_utterance chunk by chunk, prefix beam search
// over the full log-probs, rescoring over the full decoder log-probs. Returns the N-best, best first.
std::vector<Hypothesis> by_hand(const std::string& model_dir, const std::string& wav, const StreamingConfig& cfg) {
  const ModelDir model = load_model_dir(model_dir);
  auto be = make_cpu_backend(2);
  AsrModel asr(model, *be);
  StreamingOptions so;
  so.chunk_size = cfg.chunk_size;
  so.num_left_chunks = cfg.num_left_chunks;
  StreamingEncoder enc(asr, so);
  const Fbank fbank(fbank_options(model.config));
  const std::vector<float> feats = fbank.compute(read_audio(wav, fbank.options().sample_rate));
  const int frames = int(feats.size()) / fbank.dim();
  const StreamedEncoding e = enc.encode_utterance(feats.data(), frames);
  CtcPrefixBeamOptions bo;
  bo.beam = cfg.beam;
  bo.blank = model.config.blank_id;
  std::vector<Hypothesis> hyps = ctc_prefix_beam_search(e.ctc_log_probs.data(), e.frames, model.config.vocab_size, bo);
  if (cfg.mode != DecodeMode::kAttentionRescoring) return hyps;

  be->reset_arena();
  const int D = model.config.encoder.output_size, V = model.config.vocab_size, N = int(hyps.size());
  EncoderOutput out;
  out.batch = 1;
  out.frames = e.frames;
  out.host_lens = {e.frames};
  out.out = be->alloc({1, e.frames, D}, be->act_dtype());
  be->copy_in(e.encoder_out.data(), out.out);
  out.lens = be->alloc({1}, DType::kI32);
  be->copy_in(&e.frames, out.lens);
  const RescoreOptions ro = rescore_options(cfg.ctc_weight, cfg.rescoring_weight, cfg.reverse_weight, model, asr);
  const int width = decoder_input_width(hyps);
  std::vector<float> probs[2];
  for (const bool reverse : {false, true}) {
    if (reverse && ro.reverse_weight <= 0) break;
    std::vector<int> ids(static_cast<size_t>(N) * static_cast<size_t>(width)), lens(static_cast<size_t>(N));
    build_decoder_inputs(hyps, model.config.sos_id, model.config.eos_id, reverse, width, ids.data(), lens.data());
    const Tensor lp = asr.decode(out, ids.data(), lens.data(), N, width, reverse);
    probs[reverse].resize(size_t(N) * size_t(width) * size_t(V));
    be->copy_out(lp, probs[reverse].data());
  }
  attention_rescore(hyps, probs[0].data(), probs[1].empty() ? nullptr : probs[1].data(), width, V,
                    model.config.eos_id, ro);
  std::stable_sort(hyps.begin(), hyps.end(), [](const Hypothesis& a, const Hypothesis& b) { return a.total > b.total; });
  return hyps;
}

// Feeds `wav` in pieces of `piece` samples and collects every result until done.
std::vector<StreamResult> stream_file(Stream& s, const std::string& wav, size_t piece) {
  const Audio a = read_audio(wav, 16000);
  for (size_t i = 0; i < a.samples.size(); i += piece)
    s.accept_waveform(a.samples.data() + i, std::min(piece, a.samples.size() - i), a.sample_rate);
  s.input_finished();
  std::vector<StreamResult> all;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!s.done() && std::chrono::steady_clock::now() < deadline)
    for (auto& r : s.wait(1.0)) all.push_back(std::move(r));
  for (auto& r : s.poll()) all.push_back(std::move(r));
  EXPECT_TRUE(s.done()) << wav << ": no final result in 120 s";
  EXPECT_EQ(s.error(), "");
  return all;
}

const StreamResult* final_of(const std::vector<StreamResult>& rs) {
  const StreamResult* f = nullptr;
  for (size_t i = 0; i < rs.size(); ++i) EXPECT_EQ(rs[i].last, i + 1 == rs.size()) << "result " << i;
  for (const auto& r : rs)
    if (r.is_final) {
      EXPECT_EQ(f, nullptr) << "more than one final result";
      f = &r;
    }
  return f;
}

void expect_same_nbest(const StreamResult& r, const std::vector<Hypothesis>& expected, size_t n) {
  ASSERT_EQ(r.nbest.size(), std::min(n, expected.size()));
  for (size_t i = 0; i < r.nbest.size(); ++i) {
    SCOPED_TRACE("hypothesis " + std::to_string(i));
    EXPECT_EQ(r.nbest[i].tokens, expected[i].tokens);
  }
}

struct Case {
  std::string dir;
  int chunk, left;
  DecodeMode mode;
};

class StreamingEngineMatchesByHand : public ::testing::TestWithParam<Case> {};

// Streams one at a time, then all together: each final N-best equals the pipeline by hand.
TEST_P(StreamingEngineMatchesByHand, OneAtATimeAndTogether) {
  const Case& c = GetParam();
  const StreamingConfig cfg = config(c.chunk, c.left, c.mode);
  StreamingRecognizer rec(c.dir, cfg);
  const auto wavs = demo_wavs();
  std::vector<std::vector<Hypothesis>> expected;
  for (const auto& w : wavs) expected.push_back(by_hand(c.dir, w, cfg));
  StreamOptions so;
  so.nbest = 3;
  for (size_t i = 0; i < wavs.size(); ++i) {
    SCOPED_TRACE(wavs[i]);
    auto s = rec.create_stream(so);
    const auto rs = stream_file(*s, wavs[i], 1600 + 37 * i);  // odd pieces: chunks never align with them
    const StreamResult* f = final_of(rs);
    ASSERT_NE(f, nullptr);
    expect_same_nbest(*f, expected[i], 3);
    EXPECT_GT(rs.size(), 1u) << "partial results before the final one";
    for (const auto& r : rs) EXPECT_EQ(r.utterance, 0);
  }
  // Together: every stream fed from its own thread, so chunks of all of them share encoder calls.
  std::vector<std::vector<StreamResult>> together(wavs.size());
  {
    std::vector<std::shared_ptr<Stream>> streams;
    for (size_t i = 0; i < wavs.size(); ++i) streams.push_back(rec.create_stream(so));
    std::vector<std::thread> threads;
    for (size_t i = 0; i < wavs.size(); ++i)
      threads.emplace_back([&, i] { together[i] = stream_file(*streams[i], wavs[i], 640); });
    for (auto& t : threads) t.join();
  }
  for (size_t i = 0; i < wavs.size(); ++i) {
    SCOPED_TRACE(wavs[i] + " (together)");
    const StreamResult* f = final_of(together[i]);
    ASSERT_NE(f, nullptr);
    expect_same_nbest(*f, expected[i], 3);
  }
  EXPECT_GT(rec.stats().max_batch_seen, 1) << "streams fed at once never shared an encoder call";
  EXPECT_EQ(rec.stats().active_streams, 0);
}

INSTANTIATE_TEST_SUITE_P(Models, StreamingEngineMatchesByHand,
                         ::testing::Values(Case{kU2pp, 4, -1, DecodeMode::kAttentionRescoring},
                                           Case{kU2pp, 8, 1, DecodeMode::kAttentionRescoring},
                                           Case{kU2, 4, 2, DecodeMode::kAttentionRescoring},
                                           Case{kU2, 16, -1, DecodeMode::kCtcPrefixBeam}),
                         [](const ::testing::TestParamInfo<Case>& i) {
                           return fs::path(i.param.dir).filename().string() + "_chunk" +
                                  std::to_string(i.param.chunk) + "_left" +
                                  (i.param.left < 0 ? std::string("all") : std::to_string(i.param.left)) + "_" +
                                  decode_mode_name(i.param.mode);
                         });

// A stream that joins while another is half-way gives both the results they get alone.
TEST(StreamingEngine, StreamJoiningMidWay) {
  const StreamingConfig cfg = config(4, 2);
  StreamingRecognizer rec(kU2pp, cfg);
  const auto wavs = demo_wavs();
  const Audio a = read_audio(wavs[0], 16000), b = read_audio(wavs[1], 16000);
  auto sa = rec.create_stream();
  const size_t half = a.samples.size() / 2;
  sa->accept_waveform(a.samples.data(), half, 16000);
  auto sb = rec.create_stream();
  sb->accept_waveform(b.samples.data(), b.samples.size(), 16000);
  sa->accept_waveform(a.samples.data() + half, a.samples.size() - half, 16000);
  sb->input_finished();
  sa->input_finished();
  for (auto* s : {sa.get(), sb.get()}) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!s->done() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const auto ra = sa->poll(), rb = sb->poll();
  ASSERT_NE(final_of(ra), nullptr);
  ASSERT_NE(final_of(rb), nullptr);
  EXPECT_EQ(final_of(ra)->nbest[0].tokens, by_hand(kU2pp, wavs[0], cfg)[0].tokens);
  EXPECT_EQ(final_of(rb)->nbest[0].tokens, by_hand(kU2pp, wavs[1], cfg)[0].tokens);
}

// Endpoints: with every frame counted as silence and rule 1 at 1 s, an utterance ends every second;
// continuous decoding goes on with the next one (times continue), otherwise the stream stops.
TEST(StreamingEngine, EndpointsAndContinuousDecoding) {
  StreamingConfig cfg = config(4, -1, DecodeMode::kCtcPrefixBeam);
  cfg.endpoint.enabled = true;
  cfg.endpoint.blank_threshold = 1e-6f;  // blank is always above it
  cfg.endpoint.rule1 = {false, 1000, 0};
  cfg.endpoint.rule2 = {true, 100000, 0};
  cfg.endpoint.rule3 = {false, 0, 100000};
  StreamingRecognizer rec(kU2pp, cfg);
  const std::string wav = demo_wavs()[0];
  const double seconds = read_audio(wav, 16000).duration();
  ASSERT_GT(seconds, 2.2);
  StreamOptions cont;
  cont.continuous_decoding = true;
  auto s = rec.create_stream(cont);
  const auto rs = stream_file(*s, wav, 3200);
  std::vector<const StreamResult*> finals;
  for (const auto& r : rs)
    if (r.is_final) finals.push_back(&r);
  ASSERT_GE(finals.size(), 2u);
  for (size_t i = 0; i < finals.size(); ++i) {
    EXPECT_EQ(finals[i]->utterance, int(i));
    if (i + 1 < finals.size()) {
      EXPECT_GE(finals[i]->end_ms - finals[i]->start_ms, 1000);
      // As WeNet's runtime: the next utterance starts after the fbank frames the last window read,
      // 3 frames (30 ms) past the last chunk's encoder frames at chunk 4 (window 19, stride 16).
      EXPECT_EQ(finals[i + 1]->start_ms, finals[i]->end_ms + 30);
    }
  }
  EXPECT_NEAR(finals.back()->end_ms / 1e3, seconds, 0.3);

  auto once = rec.create_stream();  // no continuous decoding: one final result, then done
  const Audio a = read_audio(wav, 16000);
  once->accept_waveform(a.samples.data(), a.samples.size(), 16000);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!once->done() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_TRUE(once->done()) << "decoding did not stop at the endpoint";
  const auto r1 = once->poll();
  ASSERT_NE(final_of(r1), nullptr);
  EXPECT_LT(final_of(r1)->end_ms, 1500);
  EXPECT_NO_THROW(once->accept_waveform(a.samples.data(), 160, 16000));  // ignored after the end
  EXPECT_TRUE(once->poll().empty());
}

TEST(StreamingEngine, AbandonedStreamFreesItsSlot) {
  StreamingConfig cfg = config(4, 2);
  cfg.max_streams = 1;
  StreamingRecognizer rec(kU2pp, cfg);
  {
    auto s = rec.create_stream();
    const Audio a = read_audio(demo_wavs()[0], 16000);
    s->accept_waveform(a.samples.data(), a.samples.size() / 2, 16000);
    testing::expect_error([&] { (void)rec.create_stream(); }, {"all 1 streams are in use"});
  }  // dropped mid-utterance
  std::shared_ptr<Stream> again;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!again && std::chrono::steady_clock::now() < deadline) {
    try {
      again = rec.create_stream();
    } catch (const Error&) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  ASSERT_NE(again, nullptr) << "the abandoned stream's slot was never freed";
  const auto rs = stream_file(*again, demo_wavs()[1], 4000);
  ASSERT_NE(final_of(rs), nullptr);
  EXPECT_EQ(final_of(rs)->nbest[0].tokens, by_hand(kU2pp, demo_wavs()[1], cfg)[0].tokens);
}

TEST(StreamingEngine, SyncWaitsForEveryCompleteChunk) {
  // chunk 4 at x4 subsampling: a window of 3 * 4 + 7 fbank frames, the next one 16 frames on.
  const StreamingConfig cfg = config(4, 2);
  StreamingRecognizer rec(kU2pp, cfg);
  auto s = rec.create_stream();
  const Audio a = read_audio(demo_wavs()[0], 16000);
  size_t results = 0;
  for (size_t sent = 0; sent < a.samples.size();) {
    const size_t n = std::min<size_t>(2731, a.samples.size() - sent);  // pieces unrelated to chunks
    s->accept_waveform(a.samples.data() + sent, n, 16000);
    sent += n;
    ASSERT_TRUE(s->sync(30.0));
    const int64_t frames = sent < 400 ? 0 : 1 + int64_t(sent - 400) / 160;
    const int64_t chunks = frames < 19 ? 0 : 1 + (frames - 19) / 16;
    results += s->poll().size();
    EXPECT_EQ(int64_t(results), chunks) << "after " << sent << " samples";
  }
  s->input_finished();
  ASSERT_TRUE(s->sync(30.0));
  EXPECT_TRUE(s->done());
  const auto rest = s->poll();
  ASSERT_FALSE(rest.empty());
  EXPECT_TRUE(rest.back().is_final && rest.back().last);
}

TEST(StreamingEngine, BadInputIsAClearError) {
  // No use_dynamic_chunk / static_chunk_size in its train.yaml: trained for full context only.
  testing::expect_error([&] { (void)StreamingRecognizer(std::string(WENET_TEST_DATA) + "/goldens/conformer_layernorm", config(4, -1)); }, {"not trained for streaming"});
  testing::expect_error([&] { (void)StreamingRecognizer("/no/such/dir", config(4, -1)); }, {"/no/such/dir"});
  StreamingConfig bad = config(0, -1);
  testing::expect_error([&] { (void)StreamingRecognizer(kU2pp, bad); }, {"chunk_size"});
  StreamingRecognizer rec(kU2pp, config(4, -1));
  StreamOptions too_many;
  too_many.nbest = 5;
  testing::expect_error([&] { (void)rec.create_stream(too_many); }, {"nbest"});
  auto s = rec.create_stream();
  std::vector<float> x(1600, 0.f);
  testing::expect_error([&] { (void)s->accept_waveform(x.data(), x.size(), 8000); }, {"expected 16000 Hz"});
  s->input_finished();
  testing::expect_error([&] { (void)s->accept_waveform(x.data(), x.size(), 16000); }, {"input_finished"});
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!s->done() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  // No audio at all: one empty final result.
  const auto rs = s->poll();
  EXPECT_EQ(s->error(), "");
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_TRUE(rs[0].is_final);
  EXPECT_EQ(rs[0].text(), "");
}

}  // namespace
}  // namespace wenet_rt
