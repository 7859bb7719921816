// A recording far longer than the model takes in one piece (an hour, on the CPU) comes back as one
// result: split at its pauses, every segment recognized, the texts and timestamps stitched in order.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <random>
#include <fstream>
#include <sstream>

#include "common/word_errors.h"
#include "engine/offline_engine.h"
#include "frontend/audio.h"

namespace wenet_rt {
namespace {

namespace fs = std::filesystem;

using testing::edit_distance;
using testing::split_words;

// The shipped examples, each followed by 0.8 s of quiet noise (-60 dB), repeated to `seconds`:
// the reference text is theirs, repeated.
std::vector<float> long_audio(double seconds, std::vector<std::string>& ref) {
  const std::string dir = std::string(WENET_SOURCE_DIR) + "/models/demo/examples/";
  std::map<std::string, std::string> texts;
  std::ifstream t(dir + "text");
  for (std::string key, line; t >> key && std::getline(t, line);) texts[key] = line;
  std::vector<float> pcm;
  std::mt19937 rng(3);
  std::normal_distribution<float> noise(0.f, 1e-3f);
  for (size_t i = 0; pcm.size() < size_t(seconds * 16000); ++i) {
    const auto it = std::next(texts.begin(), long(i % texts.size()));
    const Audio a = read_audio(dir + it->first + ".wav", 16000);
    pcm.insert(pcm.end(), a.samples.begin(), a.samples.end());
    for (int j = 0; j < 12800; ++j) pcm.push_back(noise(rng));
    for (const auto& w : split_words(it->second)) ref.push_back(w);
  }
  return pcm;
}

TEST(LongRecording, AnHourComesBackAsOneResult) {
  std::vector<std::string> ref;
  EngineInput in;
  in.key = "hour";
  in.samples = long_audio(3600, ref);
  in.sample_rate = 16000;
  const double duration = double(in.samples.size()) / 16000;
  RecognizerConfig cfg;
  cfg.mode = DecodeMode::kAttentionRescoring;
  OfflineEngine engine(load_model_dir(std::string(WENET_SOURCE_DIR) + "/models/demo"), cfg);
  std::vector<EngineInput> inputs;
  inputs.push_back(std::move(in));
  const auto results = engine.run(std::move(inputs));
  ASSERT_EQ(results.size(), 1u);
  const RecognitionResult& r = results[0];
  ASSERT_EQ(r.error, "");
  EXPECT_NEAR(r.duration_s, duration, 1e-6);
  EXPECT_GE(r.segments, int(duration / 30));  // at most 30 s each
  const std::vector<std::string> hyp = split_words(r.text);
  const double wer = double(edit_distance(ref, hyp)) / double(ref.size());
  std::printf("%zu words, %d segments, WER %.3f%%, %s\n", ref.size(), r.segments, 100 * wer,
              engine.stats().describe().c_str());
  // Every example alone is transcribed exactly, and so is the hour (0 errors in 7554 words when
  // written): a lost, repeated or misplaced segment would cost far more than the margin.
  EXPECT_LE(wer, 0.005);
  // Timestamps are relative to the file: in order, within it, reaching its end.
  ASSERT_EQ(r.word_pieces.size(), r.tokens.size());
  for (size_t j = 1; j < r.word_pieces.size(); ++j) ASSERT_GE(r.word_pieces[j].start_ms, r.word_pieces[j - 1].start_ms);
  EXPECT_LE(r.word_pieces.back().end_ms, int(duration * 1000));
  EXPECT_GE(r.word_pieces.back().end_ms, int(duration * 1000) - 5000);
}

}  // namespace
}  // namespace wenet_rt
