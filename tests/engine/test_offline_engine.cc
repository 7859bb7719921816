// The offline engine's own behaviour on the CPU backend: frame-budget batching does not change
// results where padding cannot, timestamps are the CTC peaks of the result, stats add up.
// (Results against the reference pipeline: tests/api/test_transcribe.cc, through the Recognizer.)
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>

#include "api/e2e_goldens.h"
#include "backend/backend.h"
#include "common/expect_error.h"
#include "engine/offline_engine.h"
#include "frontend/audio.h"
#include "frontend/fbank.h"
#include "graph/asr_model.h"

namespace wenet_rt {
namespace {

namespace fs = std::filesystem;

std::vector<EngineInput> inputs_of(const std::vector<std::pair<std::string, std::string>>& files) {
  std::vector<EngineInput> in(files.size());
  for (size_t i = 0; i < files.size(); ++i) in[i].key = files[i].first, in[i].path = files[i].second;
  return in;
}

RecognizerConfig cpu(DecodeMode mode) {
  RecognizerConfig c;
  c.mode = mode;
  return c;
}

std::vector<std::pair<std::string, std::string>> demo_examples() {
  std::vector<std::pair<std::string, std::string>> files;
  for (const auto& e : fs::directory_iterator(std::string(WENET_SOURCE_DIR) + "/models/demo/examples"))
    if (e.path().extension() == ".wav") files.emplace_back(e.path().stem().string(), e.path().string());
  std::sort(files.begin(), files.end());
  return files;
}

// A model whose rows do not see each other's padding: any batching gives the same results, so a
// budget that cuts the files into many batches must change nothing.
TEST(OfflineEngine, FrameBudgetBatchesGiveTheSameResults) {
  const auto g = testing::load_e2e_golden("transformer_tiny");
  for (DecodeMode mode : {DecodeMode::kCtcPrefixBeam, DecodeMode::kAttentionRescoring}) {
    RecognizerConfig one = cpu(mode), many = cpu(mode);
    one.batch_frames = 10000000;
    many.batch_frames = 100;  // one second of padded audio: one utterance per batch
    OfflineEngine a(load_model_dir(g.model_dir), one), b(load_model_dir(g.model_dir), many);
    const auto ra = a.run(inputs_of(g.files())), rb = b.run(inputs_of(g.files()));
    EXPECT_EQ(a.stats().batches, 1u);
    EXPECT_EQ(b.stats().batches, ra.size());
    ASSERT_EQ(ra.size(), rb.size());
    for (size_t i = 0; i < ra.size(); ++i) {
      SCOPED_TRACE(ra[i].key);
      EXPECT_EQ(ra[i].error, "");
      EXPECT_EQ(ra[i].tokens, rb[i].tokens);
      EXPECT_NEAR(ra[i].score, rb[i].score, 1e-4);  // BLAS may round differently for other row counts
    }
  }
}

// Greedy decoding keeps only the best id per frame, so each token's time (WeNet's rule: the last
// frame of its run on the path) can be read off the argmax of the full CTC log-probs.
TEST(OfflineEngine, TimestampsAreTheCtcPeaks) {
  const std::string dir = std::string(WENET_SOURCE_DIR) + "/models/demo";
  const ModelDir model = load_model_dir(dir);
  OfflineEngine engine(load_model_dir(dir), cpu(DecodeMode::kCtcGreedy));
  const auto files = demo_examples();
  const auto results = engine.run(inputs_of(files));

  auto backend = make_cpu_backend();
  AsrModel asr(model, *backend);
  const Fbank fbank;
  const int V = model.config.vocab_size;
  for (size_t f = 0; f < files.size(); ++f) {
    SCOPED_TRACE(files[f].first);
    const std::vector<float> feats = fbank.compute(read_audio(files[f].second, 16000));
    const int T = int(feats.size() / 80);
    backend->reset_arena();
    const EncoderOutput enc = asr.encode(feats.data(), 1, T, &T);
    std::vector<float> lp(size_t(enc.frames) * V);
    backend->copy_out(asr.ctc_log_probs(enc), lp.data());
    std::vector<int> tokens, ends;
    for (int t = 0, prev = 0; t < enc.frames; ++t) {
      const int id = int(std::max_element(lp.begin() + long(t) * V, lp.begin() + long(t + 1) * V) -
                         (lp.begin() + long(t) * V));
      if (id != 0 && id != prev) tokens.push_back(id), ends.push_back(t);
      if (id != 0 && id == prev) ends.back() = t;
      prev = id;
    }
    const RecognitionResult& r = results[f];
    ASSERT_EQ(r.tokens, tokens);
    ASSERT_EQ(r.word_pieces.size(), tokens.size());
    for (size_t j = 0; j < tokens.size(); ++j) {
      EXPECT_EQ(r.word_pieces[j].word, model.vocab.token(tokens[j]));
      // A piece ends at its peak unless the next peak is closer than 100 ms (then half way).
      const int peak_ms = ends[j] * 40;
      if (j + 1 == tokens.size() || (ends[j + 1] - ends[j]) * 40 >= 100)
        EXPECT_EQ(r.word_pieces[j].end_ms, peak_ms) << "token " << j;
      EXPECT_LE(r.word_pieces[j].start_ms, r.word_pieces[j].end_ms);
      if (j > 0) EXPECT_GE(r.word_pieces[j].start_ms, r.word_pieces[j - 1].start_ms);
    }
  }
}

TEST(OfflineEngine, StatsAccountForTheRun) {
  OfflineEngine engine(load_model_dir(std::string(WENET_SOURCE_DIR) + "/models/demo"),
                       cpu(DecodeMode::kAttentionRescoring));
  auto in = inputs_of(demo_examples());
  in.push_back(EngineInput{.key = "missing", .path = "/nonexistent/x.wav"});
  const auto results = engine.run(std::move(in));
  const EngineStats& s = engine.stats();
  EXPECT_EQ(s.inputs, 6u);
  EXPECT_EQ(s.failed, 1u);
  EXPECT_NE(results.back().error.find("/nonexistent/x.wav"), std::string::npos);
  double audio = 0;
  for (const auto& r : results) audio += r.duration_s;
  EXPECT_NEAR(s.audio_s, audio, 1e-9);
  EXPECT_GT(s.wall_s, 0);
  EXPECT_GT(s.encoder_ms, 0);
  EXPECT_GT(s.rescoring_ms, 0);
  EXPECT_GT(s.search_s, 0);
  EXPECT_GT(s.peak_rss_bytes, 0u);
  EXPECT_NE(s.describe().find("real time"), std::string::npos);
}

// A server's use: jobs come while earlier ones are in the pipeline, with gaps (nothing ready:
// bubbles), a job that fails whole while planning, and the engine idle in between. Every job gets
// exactly its own results, the same as run() gives for its inputs alone.
TEST(OfflineEngine, JobsFedWhileOthersAreInFlightGetTheirOwnResults) {
  RecognizerConfig c = cpu(DecodeMode::kAttentionRescoring);
  c.batch_frames = 600;  // several batches per job
  OfflineEngine engine(load_model_dir(std::string(WENET_SOURCE_DIR) + "/models/demo"), c);
  const auto files = demo_examples();
  std::vector<RecognitionResult> alone = engine.run(inputs_of(files));
  ASSERT_EQ(alone.size(), 5u);

  // Jobs: {0, 1}, nothing ready twice, {2}, a missing file, {3, 4, 0}; `wait` must be set when nothing
  // is in flight (and only then may a feed block).
  const std::vector<std::vector<size_t>> jobs = {{0, 1}, {}, {}, {2}, {99}, {3, 4, 0}};
  std::vector<std::vector<RecognitionResult>> got(jobs.size());
  std::vector<int> done_calls(jobs.size(), 0);
  size_t next = 0, waits = 0;
  engine.run_jobs([&](bool wait) -> std::optional<EngineJob> {
    waits += wait;
    if (next == jobs.size()) return std::nullopt;
    const size_t j = next++;
    EngineJob job;
    for (size_t f : jobs[j]) {
      if (f >= files.size()) {
        job.inputs.push_back(EngineInput{.key = "missing", .path = "/nonexistent/y.wav"});
      } else if (f == 4) {  // an upload in memory, as the server passes them
        std::ifstream in(files[f].second, std::ios::binary);
        std::string bytes(std::istreambuf_iterator<char>(in), {});
        job.inputs.push_back(EngineInput{.key = files[f].first, .encoded = std::move(bytes)});
      } else {
        job.inputs.push_back(EngineInput{.key = files[f].first, .path = files[f].second});
      }
    }
    job.done = [&, j](std::vector<RecognitionResult> r) {
      ++done_calls[j];
      got[j] = std::move(r);
    };
    return job;
  });
  EXPECT_GE(waits, 1u);  // the first call: nothing in flight
  for (size_t j = 0; j < jobs.size(); ++j) {
    SCOPED_TRACE(j);
    if (jobs[j].empty()) {
      EXPECT_EQ(done_calls[j], 0);  // no inputs: not a job
      continue;
    }
    EXPECT_EQ(done_calls[j], 1);
    ASSERT_EQ(got[j].size(), jobs[j].size());
    for (size_t k = 0; k < jobs[j].size(); ++k) {
      const size_t f = jobs[j][k];
      if (f >= files.size()) {
        EXPECT_NE(got[j][k].error.find("/nonexistent/y.wav"), std::string::npos) << got[j][k].error;
        continue;
      }
      EXPECT_EQ(got[j][k].key, files[f].first);
      EXPECT_EQ(got[j][k].error, "");
      EXPECT_EQ(got[j][k].text, alone[f].text);
      EXPECT_EQ(got[j][k].tokens, alone[f].tokens);
      EXPECT_NEAR(got[j][k].score, alone[f].score, 1e-4);
    }
  }
  EXPECT_EQ(engine.stats().inputs, 7u);
  EXPECT_EQ(engine.stats().failed, 1u);
}

TEST(OfflineEngine, BadConfigIsAnError) {
  const std::string dir = std::string(WENET_SOURCE_DIR) + "/models/demo";
  RecognizerConfig c;
  c.batch_frames = 5;
  testing::expect_error([&] { OfflineEngine e(load_model_dir(dir), c); }, {"batch_frames", "5"});
  c = RecognizerConfig{};
  c.max_segment_seconds = 0.5;
  testing::expect_error([&] { OfflineEngine e(load_model_dir(dir), c); }, {"max_segment_seconds", "0.5"});
}

}  // namespace
}  // namespace wenet_rt
