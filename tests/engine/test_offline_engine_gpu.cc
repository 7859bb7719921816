// The offline engine on CUDA (GPU front end, top-k and score gather on the device, pipelined):
// the demo examples come out exactly in FP16 and FP32, the engine agrees with the CPU engine where
// padding cannot matter, and a long recording is cut and stitched on the device too.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>

#include "api/e2e_goldens.h"
#include "common/cuda_device.h"
#include "common/word_errors.h"
#include "engine/offline_engine.h"
#include "frontend/audio.h"

namespace wenet_rt {
namespace {

namespace fs = std::filesystem;

const std::string kDemo = std::string(WENET_SOURCE_DIR) + "/models/demo";

std::vector<EngineInput> inputs_of(const std::vector<std::pair<std::string, std::string>>& files) {
  std::vector<EngineInput> in(files.size());
  for (size_t i = 0; i < files.size(); ++i) in[i].key = files[i].first, in[i].path = files[i].second;
  return in;
}

RecognizerConfig cuda(const std::string& precision, DecodeMode mode = DecodeMode::kAttentionRescoring) {
  RecognizerConfig c;
  c.device = "cuda";
  c.precision = precision;
  c.mode = mode;
  return c;
}

std::map<std::string, std::string> demo_texts() {
  std::map<std::string, std::string> texts;
  std::ifstream t(kDemo + "/examples/text");
  for (std::string key, line; t >> key && std::getline(t, line);) texts[key] = line.substr(line.find_first_not_of(' '));
  return texts;
}

TEST(OfflineEngineCuda, DemoExamplesAreExact) {
  SKIP_WITHOUT_GPU();
  std::vector<std::pair<std::string, std::string>> files;
  for (const auto& [key, text] : demo_texts()) files.emplace_back(key, kDemo + "/examples/" + key + ".wav");
  for (const std::string precision : {"fp16", "fp32"}) {
    OfflineEngine engine(load_model_dir(kDemo), cuda(precision));
    const auto results = engine.run(inputs_of(files));
    for (const auto& r : results) {
      SCOPED_TRACE(precision + " " + r.key);
      EXPECT_EQ(r.error, "");
      EXPECT_EQ(r.text, demo_texts().at(r.key));
      EXPECT_EQ(r.word_pieces.size(), r.tokens.size());
    }
    EXPECT_TRUE(engine.stats().device_timed);
    EXPECT_GT(engine.stats().encoder_ms, 0);
    EXPECT_GT(engine.stats().device_bytes, 0u);
  }
}

// The server's use on the device: uploads in memory (decoded while planning, then staged in
// page-locked memory for the GPU front end) fed as jobs of several batches while earlier jobs are
// still in the pipeline, with bubbles between them; the staging ring and the slots wrap around
// many times. Every job must come back whole with the demo's texts.
TEST(OfflineEngineCuda, JobsFedWhileOthersAreInFlightGetTheirOwnResults) {
  SKIP_WITHOUT_GPU();
  const auto texts = demo_texts();
  std::vector<std::pair<std::string, std::string>> files;  // key, WAV bytes
  for (const auto& [key, text] : texts) {
    std::ifstream f(kDemo + "/examples/" + key + ".wav", std::ios::binary);
    files.emplace_back(key, std::string(std::istreambuf_iterator<char>(f), {}));
  }
  for (const std::string precision : {"fp16", "fp32"}) {
    RecognizerConfig c = cuda(precision);
    c.batch_frames = 400;  // about one example per batch
    OfflineEngine engine(load_model_dir(kDemo), c);
    const int kJobs = 12;
    std::vector<std::vector<RecognitionResult>> got(kJobs);
    int next = 0, calls = 0;
    engine.run_jobs([&](bool) -> std::optional<EngineJob> {
      if (next == kJobs) return std::nullopt;
      if (++calls % 3 == 0) return EngineJob{};  // nothing ready this time
      const int j = next++;
      EngineJob job;
      for (size_t k = 0; k < files.size(); ++k) {  // each job a rotation of the examples
        const auto& [key, bytes] = files[(k + size_t(j)) % files.size()];
        job.inputs.push_back(EngineInput{.key = key, .encoded = bytes});
      }
      job.done = [&, j](std::vector<RecognitionResult> r) { got[size_t(j)] = std::move(r); };
      return job;
    });
    for (int j = 0; j < kJobs; ++j) {
      ASSERT_EQ(got[size_t(j)].size(), files.size()) << precision << " job " << j;
      for (size_t k = 0; k < files.size(); ++k) {
        const RecognitionResult& r = got[size_t(j)][k];
        SCOPED_TRACE(precision + " job " + std::to_string(j) + " " + r.key);
        EXPECT_EQ(r.key, files[(k + size_t(j)) % files.size()].first);
        EXPECT_EQ(r.error, "");
        EXPECT_EQ(r.text, texts.at(r.key));
      }
    }
    EXPECT_EQ(engine.stats().inputs, size_t(kJobs) * files.size());
  }
}

// transformer_tiny's rows do not see each other's padding: CUDA FP32 (GPU fbank, device top-k and
// score gather, one utterance per batch so that the pipeline's ring wraps around) gives the
// reference pipeline's tokens wherever those are robust to fbank-sized differences ("kept").
TEST(OfflineEngineCuda, MatchesTheReferencePipeline) {
  SKIP_WITHOUT_GPU();
  const auto g = testing::load_e2e_golden("transformer_tiny");
  for (DecodeMode mode : {DecodeMode::kCtcGreedy, DecodeMode::kCtcPrefixBeam, DecodeMode::kAttentionRescoring}) {
    RecognizerConfig gpu = cuda("fp32", mode);
    gpu.batch_frames = 100;
    OfflineEngine engine(load_model_dir(g.model_dir), gpu);
    const auto files = g.files();
    const auto results = engine.run(inputs_of(files));
    EXPECT_EQ(engine.stats().batches, files.size());
    size_t compared = 0;
    for (size_t i = 0; i < files.size(); ++i) {
      SCOPED_TRACE(std::string(decode_mode_name(mode)) + " " + files[i].first);
      const auto& e = g.entry(files[i].first, decode_mode_name(mode));
      EXPECT_EQ(results[i].error, "");
      if (!e.at("kept").get<bool>()) continue;
      EXPECT_EQ(results[i].tokens, e.at("tokens").get<std::vector<int>>());
      ++compared;
    }
    EXPECT_GT(compared, 0u);
  }
}

TEST(OfflineEngineCuda, LongRecordingComesBackAsOneResult) {
  SKIP_WITHOUT_GPU();
  EngineInput in;
  in.key = "long";
  in.sample_rate = 16000;
  std::string ref;
  for (int rep = 0; rep < 8; ++rep)
    for (const auto& [key, text] : demo_texts()) {
      const Audio a = read_audio(kDemo + "/examples/" + key + ".wav", 16000);
      in.samples.insert(in.samples.end(), a.samples.begin(), a.samples.end());
      for (int j = 0; j < 12800; ++j) in.samples.push_back(j % 2 ? 1e-3f : -1e-3f);  // a quiet 0.8 s
      ref += (ref.empty() ? "" : " ") + text;
    }
  const double duration = double(in.samples.size()) / 16000;
  OfflineEngine engine(load_model_dir(kDemo), cuda("fp16"));
  std::vector<EngineInput> inputs;
  inputs.push_back(std::move(in));
  const auto r = engine.run(std::move(inputs))[0];
  ASSERT_EQ(r.error, "");
  EXPECT_GE(r.segments, 30);  // cut in (nearly) every one of the 39 pauses
  EXPECT_NEAR(r.duration_s, duration, 1e-6);
  // The text (the CPU engine makes no error on the same kind of file), timestamps in order and
  // within the recording.
  const auto ref_words = testing::split_words(ref);
  EXPECT_LE(double(testing::edit_distance(ref_words, testing::split_words(r.text))), 0.02 * double(ref_words.size()))
      << r.text;
  for (size_t j = 1; j < r.word_pieces.size(); ++j) ASSERT_GE(r.word_pieces[j].start_ms, r.word_pieces[j - 1].start_ms);
  EXPECT_LE(r.word_pieces.back().end_ms, int(duration * 1000));
  EXPECT_GE(r.word_pieces.back().end_ms, int(duration * 1000) - 3000);
}

}  // namespace
}  // namespace wenet_rt
