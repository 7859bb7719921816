// Fbank vs kaldi-native-fbank goldens (reference/make_fbank_goldens.py), plus its edge cases.
#include <gtest/gtest.h>

#include <limits>

#include <cfloat>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/error.h"
#include "frontend/audio.h"
#include "frontend/fbank.h"

namespace wenet_rt {
namespace {

const std::string kDataDir = std::string(WENET_TEST_DATA) + "/frontend/";

std::vector<float> read_f32(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  EXPECT_TRUE(in) << path;
  std::vector<float> data(static_cast<size_t>(in.tellg()) / sizeof(float));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(data.data()), static_cast<std::streamsize>(data.size() * sizeof(float)));
  return data;
}

nlohmann::json manifest() {
  std::ifstream in(kDataDir + "manifest.json");
  return nlohmann::json::parse(in);
}

TEST(Fbank, MatchesKaldiNativeFbankGoldens) {
  const auto cases = manifest()["cases"];
  ASSERT_GE(cases.size(), 6u);
  for (const auto& c : cases) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    const Audio audio = read_audio(kDataDir + c["wav"].get<std::string>(), c["sample_rate"]);
    ASSERT_EQ(static_cast<int>(audio.samples.size()), c["num_samples"].get<int>());
    FbankOptions options;
    options.num_mel_bins = c["num_mel_bins"];
    const Fbank fbank(options);
    const std::vector<float> feats = fbank.compute(audio);
    const std::vector<float> expected = read_f32(kDataDir + c["fbank"].get<std::string>());
    const int frames = c["num_frames"];
    ASSERT_EQ(fbank.num_frames(static_cast<int>(audio.samples.size())), frames);
    ASSERT_EQ(feats.size(), expected.size());
    ASSERT_EQ(feats.size(), static_cast<size_t>(frames) * options.num_mel_bins);
    double max_diff = 0;
    size_t worst = 0;
    for (size_t i = 0; i < feats.size(); ++i) {
      const double diff = std::abs(double(feats[i]) - expected[i]);
      if (diff > max_diff) max_diff = diff, worst = i;
    }
    std::printf("[ fbank   ] %-24s %4d frames x %2d bins: max |diff| %.3g (frame %zu bin %zu)\n",
                name.c_str(), frames, options.num_mel_bins, max_diff, worst / options.num_mel_bins,
                worst % options.num_mel_bins);
    EXPECT_LE(max_diff, 1e-3);
  }
}

TEST(Fbank, DigitalSilenceHitsTheLogFloor) {
  const Fbank fbank;
  std::vector<float> feats;
  std::vector<float> zeros(1600, 0.f);
  fbank.compute(zeros.data(), static_cast<int>(zeros.size()), feats);
  ASSERT_EQ(feats.size(), 8u * 80);
  for (float v : feats) EXPECT_FLOAT_EQ(v, std::log(FLT_EPSILON));
}

TEST(Fbank, FrameCountsFollowSnipEdges) {
  const Fbank fbank;
  EXPECT_EQ(fbank.frame_length(), 400);
  EXPECT_EQ(fbank.frame_shift(), 160);
  EXPECT_EQ(fbank.fft_size(), 512);
  EXPECT_EQ(fbank.num_frames(0), 0);
  EXPECT_EQ(fbank.num_frames(399), 0);
  EXPECT_EQ(fbank.num_frames(400), 1);
  EXPECT_EQ(fbank.num_frames(559), 1);
  EXPECT_EQ(fbank.num_frames(560), 2);
  EXPECT_EQ(fbank.num_frames(16000), 98);
  std::vector<float> feats(7, 1.f);
  std::vector<float> short_audio(399, 0.1f);
  fbank.compute(short_audio.data(), 399, feats);
  EXPECT_TRUE(feats.empty());
}

TEST(Fbank, ConcurrentCallsAgree) {
  const Audio audio = read_audio(kDataDir + "speech_16k_s16.wav", 16000);
  const Fbank fbank;
  const std::vector<float> expected = fbank.compute(audio);
  std::vector<std::vector<float>> results(4);
  std::vector<std::thread> threads;
  for (auto& r : results) {
    threads.emplace_back([&] {
      for (int k = 0; k < 5; ++k) r = fbank.compute(audio);
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& r : results) EXPECT_EQ(r, expected);
}

TEST(Fbank, ResampledAudioRuns) {
  const auto resample_case = manifest()["resample"];
  const Audio audio = read_audio(kDataDir + resample_case["wav"].get<std::string>(), 16000);
  EXPECT_EQ(audio.sample_rate, 16000);
  EXPECT_EQ(audio.samples.size(), 2 * resample_case["num_samples"].get<size_t>());
  const std::vector<float> feats = Fbank().compute(audio);
  ASSERT_EQ(feats.size(), 98u * 80);
  for (float v : feats) ASSERT_TRUE(std::isfinite(v));
}

TEST(Fbank, RejectsWrongRateAndBadOptions) {
  Audio audio;
  audio.samples.assign(8000, 0.f);
  audio.sample_rate = 8000;
  try {
    Fbank().compute(audio);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("expected audio at 16000 Hz, got 8000 Hz"), std::string::npos)
        << e.what();
  }
  FbankOptions bad;
  bad.num_mel_bins = 0;
  EXPECT_THROW(Fbank{bad}, Error);
  bad = {};
  bad.high_freq = 9000;
  EXPECT_THROW(Fbank{bad}, Error);
  // Values that would overflow the sample counts (undefined behaviour before they were bounded).
  for (float ms : {std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN(), 1e30f}) {
    bad = {};
    bad.frame_length_ms = ms;
    EXPECT_THROW(Fbank{bad}, Error) << ms;
    bad = {};
    bad.frame_shift_ms = ms;
    EXPECT_THROW(Fbank{bad}, Error) << ms;
  }
  EXPECT_EQ(parse_window_type("hamming"), WindowType::kHamming);
  EXPECT_THROW(parse_window_type("blackmann"), Error);
}

TEST(Cmvn, SubtractsMeanAndScales) {
  std::vector<float> feats = {1, 2, 3, 4, 5, 6};
  const float mean[3] = {1, 1, 1};
  const float istd[3] = {1, 2, 0.5f};
  apply_cmvn(feats.data(), 2, 3, mean, istd);
  EXPECT_EQ(feats, (std::vector<float>{0, 2, 1, 3, 8, 2.5f}));
}

}  // namespace
}  // namespace wenet_rt
