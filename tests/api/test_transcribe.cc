// End to end through wenet_rt::Recognizer on CPU: WAV files -> text on the tiny models, against
// the PyTorch reference pipeline (tests/data/e2e, reference/make_e2e_goldens.py); batching,
// per-file failures, in-memory samples and configuration errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "api/e2e_goldens.h"
#include "core/error.h"
#include "frontend/audio.h"
#include "frontend/segmenter.h"
#include "wenet_rt/recognizer.h"

namespace wenet_rt {
namespace {

namespace fs = std::filesystem;
using testing::E2eGolden;
using testing::e2e_models;
using testing::load_e2e_golden;
using Files = std::vector<std::pair<std::string, std::string>>;

const std::vector<DecodeMode> kModes = {DecodeMode::kCtcGreedy, DecodeMode::kCtcPrefixBeam,
                                        DecodeMode::kAttentionRescoring};

RecognizerConfig cpu_config(DecodeMode mode, int batch_size = 16) {
  RecognizerConfig cfg;
  cfg.device = "cpu";
  cfg.mode = mode;
  cfg.beam = 10;
  cfg.batch_size = batch_size;
  return cfg;
}

std::vector<RecognitionResult> transcribe(const std::string& model_dir, const Files& files, DecodeMode mode,
                                          int batch_size = 16) {
  Recognizer rec(model_dir, cpu_config(mode, batch_size));
  return rec.recognize_files(files);
}

// --- against the reference pipeline ---------------------------------------------------------

struct GoldenCase {
  std::string model;
  DecodeMode mode;
};

class TranscribeGoldenTest : public ::testing::TestWithParam<GoldenCase> {};

TEST_P(TranscribeGoldenTest, MatchesReferencePipeline) {
  const auto& [model, mode] = GetParam();
  const E2eGolden g = load_e2e_golden(model);
  const Files files = g.files();
  ASSERT_FALSE(files.empty());
  const auto results = transcribe(g.model_dir, files, mode);
  ASSERT_EQ(results.size(), files.size());
  int compared = 0;
  for (size_t i = 0; i < files.size(); ++i) {
    const RecognitionResult& r = results[i];
    const auto& e = g.entry(files[i].first, decode_mode_name(mode));
    SCOPED_TRACE(model + " " + files[i].first + " " + decode_mode_name(mode));
    EXPECT_EQ(r.key, files[i].first);
    EXPECT_EQ(r.error, "");
    EXPECT_NEAR(r.duration_s, g.utterances.at(files[i].first).at("duration").get<double>(), 1e-9);
    if (!e.at("kept").get<bool>()) continue;  // a near-tie in the reference: not comparable
    ++compared;
    EXPECT_EQ(r.tokens, e.at("tokens").get<std::vector<int>>());
    EXPECT_EQ(r.text, e.at("text").get<std::string>());
    if (e.at("score_checked").get<bool>()) EXPECT_NEAR(r.score, e.at("score").get<double>(), 1e-3);
  }
  EXPECT_GT(compared, 0) << "no robust golden to compare against";
}

std::vector<GoldenCase> golden_cases() {
  std::vector<GoldenCase> out;
  for (const auto& m : e2e_models())
    for (DecodeMode mode : kModes) out.push_back({m, mode});
  return out;
}

INSTANTIATE_TEST_SUITE_P(TinyModels, TranscribeGoldenTest, ::testing::ValuesIn(golden_cases()),
                         [](const auto& info) {
                           return info.param.model + "_" + decode_mode_name(info.param.mode);
                         });

// --- batching -------------------------------------------------------------------------------

// Batch size 1 (no padding) against 16 (all files in one padded batch). Conformers with a
// non-causal conv module see padded frames near the end of shorter rows (WeNet's semantics), so
// their log-probs move with the batch: only results the reference found stable are compared.
TEST(TranscribeBatching, BatchSizeOneMatchesSixteen) {
  for (const auto& model : e2e_models()) {
    const E2eGolden g = load_e2e_golden(model);
    const Files files = g.files();
    for (DecodeMode mode : {DecodeMode::kCtcPrefixBeam, DecodeMode::kAttentionRescoring}) {
      const auto one = transcribe(g.model_dir, files, mode, 1);
      const auto all = transcribe(g.model_dir, files, mode, 16);
      int compared = 0;
      for (size_t i = 0; i < files.size(); ++i) {
        SCOPED_TRACE(model + " " + files[i].first + " " + decode_mode_name(mode));
        ASSERT_EQ(one[i].error, "");
        if (!g.entry(files[i].first, decode_mode_name(mode)).at("batch1_same").get<bool>()) continue;
        ++compared;
        EXPECT_EQ(one[i].tokens, all[i].tokens);
        EXPECT_EQ(one[i].text, all[i].text);
        if (testing::padding_independent(model)) EXPECT_NEAR(one[i].score, all[i].score, 1e-4);
      }
      EXPECT_GT(compared, 0) << model;
    }
  }
}

// Where padding cannot matter, every batch size and order gives the same results: 2 and 3 split
// the files over several batches, and a reversed file list changes the sort's ties and batches.
TEST(TranscribeBatching, PaddingIndependentModelsAgreeForAnyBatching) {
  for (const auto& model : e2e_models()) {
    if (!testing::padding_independent(model)) continue;
    const E2eGolden g = load_e2e_golden(model);
    const Files files = g.files();
    const auto ref = transcribe(g.model_dir, files, DecodeMode::kAttentionRescoring, 16);
    Files reversed(files.rbegin(), files.rend());
    for (int batch : {1, 2, 3}) {
      const auto got = transcribe(g.model_dir, batch == 2 ? reversed : files, DecodeMode::kAttentionRescoring, batch);
      for (size_t i = 0; i < files.size(); ++i) {
        const size_t j = batch == 2 ? files.size() - 1 - i : i;
        SCOPED_TRACE(model + " batch " + std::to_string(batch) + " " + files[i].first);
        EXPECT_EQ(got[j].key, files[i].first);
        EXPECT_EQ(got[j].tokens, ref[i].tokens);
        EXPECT_NEAR(got[j].score, ref[i].score, 1e-4);
      }
    }
  }
}

// Many files over many batches (batch size 2): audio is read while earlier batches decode;
// results stay in input order and equal the single-file results; progress is reported per batch.
TEST(TranscribeBatching, ManyFilesAcrossChunks) {
  const E2eGolden g = load_e2e_golden("transformer_tiny");
  const Files base = g.files();
  Files files;
  for (int i = 0; i < 23; ++i) {
    const auto& f = base[size_t(i) % base.size()];
    files.emplace_back(f.first + "_" + std::to_string(i), f.second);
  }
  std::vector<size_t> progress;
  Recognizer rec(g.model_dir, cpu_config(DecodeMode::kCtcPrefixBeam, 2));
  const auto results = rec.recognize_files(files, [&](size_t done, size_t total) {
    EXPECT_EQ(total, files.size());
    progress.push_back(done);
  });
  ASSERT_EQ(results.size(), files.size());
  for (size_t i = 0; i < files.size(); ++i) {
    const auto& e = g.entry(base[i % base.size()].first, "ctc_prefix_beam");
    EXPECT_EQ(results[i].key, files[i].first);
    EXPECT_EQ(results[i].tokens, e.at("tokens").get<std::vector<int>>()) << files[i].first;
  }
  ASSERT_EQ(progress.size(), 12u);  // 23 utterances, 2 per batch
  EXPECT_TRUE(std::is_sorted(progress.begin(), progress.end()));
  EXPECT_EQ(progress.back(), files.size());
}

// --- per-file failures ----------------------------------------------------------------------

class TranscribeErrorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("wenet_rt_test_transcribe_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& bytes) const {
    std::ofstream((dir_ / name).string(), std::ios::binary) << bytes;
    return (dir_ / name).string();
  }
  // A 16 kHz mono 16-bit WAV of `samples` (normalized floats).
  std::string write_wav(const std::string& name, const std::vector<float>& samples) const {
    std::string wav;
    auto put = [&](uint32_t v, int bytes) {
      for (int k = 0; k < bytes; ++k) wav += char((v >> (8 * k)) & 0xFF);
    };
    const auto data_bytes = uint32_t(samples.size() * 2);
    wav += "RIFF";
    put(36 + data_bytes, 4);
    wav += "WAVEfmt ";
    put(16, 4), put(1, 2), put(1, 2), put(16000, 4), put(32000, 4), put(2, 2), put(16, 2);
    wav += "data";
    put(data_bytes, 4);
    for (float x : samples) put(uint16_t(int16_t(std::lround(std::clamp(x, -1.f, 0.99997f) * 32768))), 2);
    return write(name, wav);
  }
  fs::path dir_;
};

// Bad files in the middle of good ones: the good ones come out exactly as without the bad ones,
// the bad ones carry an error naming the file, and nothing is thrown.
TEST_F(TranscribeErrorsTest, BadFilesDoNotDisturbGoodOnes) {
  const std::string missing = (dir_ / "missing.wav").string();
  const std::string text = write("notes.wav", "this is not audio, just text that is long enough to look at\n");
  const std::string empty = write("empty.wav", "");
  for (const std::string model : {"conformer_tiny", "transformer_tiny"}) {
    const E2eGolden g = load_e2e_golden(model);
    const Files good = g.files();
    Files mixed;
    for (size_t i = 0; i < good.size(); ++i) {
      mixed.push_back(good[i]);
      if (i == 0) mixed.emplace_back("missing", missing);
      if (i == 2) mixed.emplace_back("notes", text);
    }
    mixed.emplace_back("empty", empty);
    const auto expected = transcribe(g.model_dir, good, DecodeMode::kAttentionRescoring);
    std::vector<RecognitionResult> got;
    ASSERT_NO_THROW(got = transcribe(g.model_dir, mixed, DecodeMode::kAttentionRescoring));
    ASSERT_EQ(got.size(), mixed.size());
    std::map<std::string, const RecognitionResult*> by_key;
    for (const auto& r : got) by_key[r.key] = &r;
    for (const auto& r : expected) {
      SCOPED_TRACE(model + " " + r.key);
      const RecognitionResult& m = *by_key.at(r.key);
      EXPECT_EQ(m.error, "");
      EXPECT_EQ(m.tokens, r.tokens);
      EXPECT_EQ(m.text, r.text);
      EXPECT_EQ(m.score, r.score);
    }
    for (const auto& [key, path] : {std::pair{"missing", missing}, {"notes", text}, {"empty", empty}}) {
      SCOPED_TRACE(model + " " + key);
      const RecognitionResult& b = *by_key.at(key);
      EXPECT_NE(b.error.find(path), std::string::npos) << b.error;
      EXPECT_EQ(b.text, "");
      EXPECT_TRUE(b.tokens.empty());
    }
  }
}

TEST_F(TranscribeErrorsTest, AllFilesBadStillReturnsResults) {
  const E2eGolden g = load_e2e_golden("transformer_tiny");
  const std::string missing = (dir_ / "nope.wav").string();
  const auto got = transcribe(g.model_dir, {{"a", missing}, {"b", missing}}, DecodeMode::kCtcGreedy);
  ASSERT_EQ(got.size(), 2u);
  for (const auto& r : got) EXPECT_NE(r.error.find(missing), std::string::npos) << r.error;
  EXPECT_TRUE(transcribe(g.model_dir, {}, DecodeMode::kCtcGreedy).empty());
}

// Audio too short for one output frame after subsampling is a per-file error naming the file.
TEST_F(TranscribeErrorsTest, TooShortAudioIsAnErrorNamingTheFile) {
  const E2eGolden g = load_e2e_golden("transformer_tiny");
  const std::string path = write_wav("blip.wav", std::vector<float>(800, 0.1f));  // 50 ms: 3 fbank frames
  const auto got = transcribe(g.model_dir, {{"blip", path}, g.files()[0]}, DecodeMode::kCtcGreedy);
  EXPECT_NE(got[0].error.find("too short"), std::string::npos) << got[0].error;
  EXPECT_NE(got[0].error.find(path), std::string::npos) << got[0].error;
  EXPECT_EQ(got[1].error, "");
}

// Audio longer than the model's position table (conformer_causal keeps 500 positions: about 20 s
// after x4 subsampling) is cut at its pauses into utterances that fit and comes back as one result:
// the speech file eight times with pauses between, transcribed as its pieces are one by one.
// The files batched with it come out as without it.
TEST_F(TranscribeErrorsTest, LongAudioIsCutIntoUtterances) {
  const E2eGolden g = load_e2e_golden("conformer_causal");
  const std::string speech_path = std::string(WENET_TEST_DATA) + "/frontend/speech_16k_s16.wav";
  const Audio speech = read_audio(speech_path, 16000);
  std::vector<float> long_audio;
  for (int i = 0; i < 8; ++i) {
    long_audio.insert(long_audio.end(), 16000, 0.f);  // 1 s pause
    long_audio.insert(long_audio.end(), speech.samples.begin(), speech.samples.end());
  }
  long_audio.insert(long_audio.end(), 16000, 0.f);
  ASSERT_GT(long_audio.size(), size_t(16000 * 20)) << "the file must exceed the model's 20 s";
  const std::string path = write_wav("long.wav", long_audio);
  const Files good = g.files();
  Files files = good;
  files.insert(files.begin() + 1, {"long", path});
  const auto expected = transcribe(g.model_dir, good, DecodeMode::kCtcGreedy);
  std::vector<RecognitionResult> got;
  ASSERT_NO_THROW(got = transcribe(g.model_dir, files, DecodeMode::kCtcGreedy));
  ASSERT_EQ(got.size(), files.size());
  EXPECT_EQ(got[1].error, "");
  EXPECT_EQ(got[1].segments, 8);
  // The same cuts made here (the engine keeps segments under 95% of the model's 20 s), each piece
  // transcribed as a file of its own: the long file's result is theirs joined.
  SegmentOptions o;
  o.max_seconds = 0.95 * 20;
  const auto cuts = split_into_utterances(long_audio.data(), int64_t(long_audio.size()), 16000, o);
  ASSERT_EQ(cuts.size(), 8u);  // one per copy: cut in the middle of each pause
  Files pieces;
  for (const Segment& c : cuts)
    pieces.emplace_back("piece" + std::to_string(pieces.size()),
                        write_wav("piece" + std::to_string(pieces.size()) + ".wav",
                                  std::vector<float>(long_audio.begin() + c.begin, long_audio.begin() + c.end)));
  // Texts are joined with a space for models whose units mark words with "▁", else with nothing.
  std::ifstream units(g.model_dir + "/units.txt");
  const std::string all((std::istreambuf_iterator<char>(units)), {});
  const std::string sep = all.find("\u2581") != std::string::npos ? " " : "";
  std::vector<int> joined;
  std::string text;
  for (const auto& r : transcribe(g.model_dir, pieces, DecodeMode::kCtcGreedy)) {
    joined.insert(joined.end(), r.tokens.begin(), r.tokens.end());
    if (!r.text.empty()) text += (text.empty() ? "" : sep) + r.text;
  }
  EXPECT_EQ(got[1].tokens, joined);
  EXPECT_EQ(got[1].text, text);
  EXPECT_NEAR(got[1].duration_s, double(long_audio.size()) / 16000, 1e-9);
  for (size_t i = 0, j = 0; i < got.size(); ++i) {
    if (i == 1) continue;
    EXPECT_EQ(got[i].error, "") << got[i].key;
    EXPECT_EQ(got[i].tokens, expected[j++].tokens) << got[i].key;
  }
}

// --- samples in memory ----------------------------------------------------------------------

// recognize() on the samples of a file gives what recognize_files gives for that file alone,
// also through the resampler (an 8 kHz file).
TEST(TranscribeSamples, RecognizeEqualsRecognizeFiles) {
  const std::string frontend = std::string(WENET_TEST_DATA) + "/frontend/";
  for (const auto& model : e2e_models()) {
    const E2eGolden g = load_e2e_golden(model);
    for (DecodeMode mode : kModes) {
      Recognizer rec(g.model_dir, cpu_config(mode));
      for (const std::string name : {"speech_16k_s16", "stereo_16k_s16", "speech_8k_s16"}) {
        SCOPED_TRACE(model + " " + name + " " + decode_mode_name(mode));
        const std::string path = frontend + name + ".wav";
        const Audio audio = read_audio(path, 0);  // the file's own rate
        const RecognitionResult a = rec.recognize(name, audio.samples, audio.sample_rate);
        const RecognitionResult b = rec.recognize_files({{name, path}})[0];
        EXPECT_EQ(a.key, name);
        EXPECT_EQ(a.error, "");
        EXPECT_EQ(b.error, "");
        EXPECT_EQ(a.tokens, b.tokens);
        EXPECT_EQ(a.text, b.text);
        EXPECT_EQ(a.score, b.score);
        EXPECT_NEAR(a.duration_s, b.duration_s, 1e-9);
        if (name != "speech_8k_s16" && g.entry(name, decode_mode_name(mode)).at("batch1_same").get<bool>())
          EXPECT_EQ(a.tokens, g.entry(name, decode_mode_name(mode)).at("tokens").get<std::vector<int>>());
      }
    }
  }
}

TEST(TranscribeSamples, TooShortSamplesThrow) {
  Recognizer rec(load_e2e_golden("transformer_tiny").model_dir, cpu_config(DecodeMode::kCtcGreedy));
  EXPECT_THROW(rec.recognize("x", std::vector<float>(100, 0.f), 16000), Error);
  EXPECT_THROW(rec.recognize("x", {}, 16000), Error);
}

// recognize_samples: borrowed recordings, batched like files; same results as the files, in order,
// failures per input.
TEST(TranscribeSamples, BatchOfViewsMatchesFiles) {
  const E2eGolden g = load_e2e_golden("transformer_tiny");
  const Files files = g.files();
  Recognizer rec(g.model_dir, cpu_config(DecodeMode::kAttentionRescoring));
  const auto by_file = rec.recognize_files(files);
  std::vector<std::vector<float>> pcm;
  std::vector<AudioView> views;
  for (const auto& [key, path] : files) {
    Audio a = read_audio(path, 0);  // at the file's own rate: the 8 kHz one is resampled by the engine
    pcm.push_back(std::move(a.samples));
    views.push_back({key, pcm.back().data(), pcm.back().size(), a.sample_rate});
  }
  const std::vector<float> too_short(100, 0.f);
  views.push_back({"short", too_short.data(), too_short.size(), 16000});
  views.push_back({"empty", nullptr, 0, 16000});
  views.push_back({"bad_rate", too_short.data(), too_short.size(), 0});
  const auto by_view = rec.recognize_samples(views);
  ASSERT_EQ(by_view.size(), files.size() + 3);
  for (size_t i = 0; i < files.size(); ++i) {
    SCOPED_TRACE(files[i].first);
    EXPECT_EQ(by_view[i].key, files[i].first);
    EXPECT_EQ(by_view[i].error, "");
    EXPECT_EQ(by_view[i].tokens, by_file[i].tokens);
    EXPECT_EQ(by_view[i].score, by_file[i].score);
  }
  EXPECT_NE(by_view[files.size()].error.find("too short"), std::string::npos) << by_view[files.size()].error;
  EXPECT_NE(by_view[files.size() + 1].error.find("no samples"), std::string::npos) << by_view[files.size() + 1].error;
  EXPECT_NE(by_view[files.size() + 2].error.find("sample rate"), std::string::npos) << by_view[files.size() + 2].error;
}

// --- configuration --------------------------------------------------------------------------

// The message of the Error thrown by constructing a Recognizer with `cfg` ("" if none).
std::string construct_error(const std::string& model_dir, const RecognizerConfig& cfg) {
  try {
    Recognizer rec(model_dir, cfg);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(TranscribeConfig, BadValuesThrowNamingTheField) {
  const std::string dir = load_e2e_golden("transformer_tiny").model_dir;
  struct Bad {
    std::function<void(RecognizerConfig&)> set;
    std::string field, value;
  };
  const std::vector<Bad> bad = {
      {[](RecognizerConfig& c) { c.beam = 0; }, "beam", "0"},
      {[](RecognizerConfig& c) { c.beam = -3; }, "beam", "-3"},
      {[](RecognizerConfig& c) { c.device = "tpu"; }, "device", "tpu"},
      {[](RecognizerConfig& c) { c.precision = "int3"; }, "precision", "int3"},
      {[](RecognizerConfig& c) { c.batch_size = 0; }, "batch_size", "0"},
      {[](RecognizerConfig& c) { c.threads = -1; }, "threads", "-1"},
      {[](RecognizerConfig& c) { c.reverse_weight = 1.5f; }, "reverse_weight", "1.5"},
  };
  for (const auto& b : bad) {
    RecognizerConfig cfg = cpu_config(DecodeMode::kAttentionRescoring);
    b.set(cfg);
    EXPECT_THROW(cfg.validate(), Error) << b.field;
    const std::string what = construct_error(dir, cfg);
    EXPECT_NE(what.find(b.field), std::string::npos) << what;
    EXPECT_NE(what.find(b.value), std::string::npos) << what;
  }
  EXPECT_NO_THROW(cpu_config(DecodeMode::kAttentionRescoring).validate());
}

TEST(TranscribeConfig, DecodeModeNames) {
  for (DecodeMode mode : kModes) EXPECT_EQ(parse_decode_mode(decode_mode_name(mode)), mode);
  EXPECT_EQ(parse_decode_mode("ctc_prefix_beam_search"), DecodeMode::kCtcPrefixBeam);
  try {
    parse_decode_mode("beam_of_light");
    ADD_FAILURE() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("beam_of_light"), std::string::npos) << e.what();
  }
}

TEST(TranscribeConfig, MissingModelDirNamesIt) {
  const std::string dir = (fs::temp_directory_path() / "wenet_rt_no_such_model_dir").string();
  const std::string what = construct_error(dir, cpu_config(DecodeMode::kCtcGreedy));
  EXPECT_NE(what.find(dir), std::string::npos) << what;
}

#ifndef WENET_RT_HAVE_CUDA
TEST(TranscribeConfig, CudaWithoutCudaBuildIsAnError) {
  RecognizerConfig cfg = cpu_config(DecodeMode::kCtcGreedy);
  cfg.device = "cuda";
  const std::string what = construct_error(load_e2e_golden("transformer_tiny").model_dir, cfg);
  EXPECT_NE(what.find("cuda"), std::string::npos) << what;
}
#endif

TEST(TranscribeConfig, DescribeAndSampleRate) {
  Recognizer rec(load_e2e_golden("u2pp_tiny").model_dir, cpu_config(DecodeMode::kAttentionRescoring));
  EXPECT_EQ(rec.sample_rate(), 16000);
  const std::string d = rec.describe();
  EXPECT_NE(d.find("attention_rescoring"), std::string::npos) << d;
  EXPECT_NE(d.find("beam 10"), std::string::npos) << d;
}

}  // namespace
}  // namespace wenet_rt
