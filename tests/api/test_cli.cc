// The `wenet-rt` command line, run as a process (WENET_RT_BIN is the built binary): transcribe's
// outputs (text, json, --wav-scp, --output), its errors, and `info`.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "api/e2e_goldens.h"

namespace wenet_rt {
namespace {

namespace fs = std::filesystem;
using testing::load_e2e_golden;

struct Outcome {
  int rc = -1;
  std::string out, err;
};

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("wenet_rt_test_cli_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  Outcome run(const std::vector<std::string>& args) const {
    std::string cmd = quote(WENET_RT_BIN);
    for (const auto& a : args) cmd += " " + quote(a);
    const fs::path out = dir_ / "stdout", err = dir_ / "stderr";
    cmd += " >" + quote(out.string()) + " 2>" + quote(err.string()) + " </dev/null";
    const int status = std::system(cmd.c_str());
    Outcome r;
    r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = slurp(out);
    r.err = slurp(err);
    return r;
  }

  fs::path dir_;
  // Padding-independent (causal conv): results do not depend on which files share a batch, so a
  // few files on the command line reproduce the goldens (computed with all files in one batch).
  const std::string model_ = load_e2e_golden("conformer_causal").model_dir;
  const std::string data_ = std::string(WENET_TEST_DATA) + "/frontend/";
};

// "key text" on stdout, in input order, with the reference's text; one summary line on stderr.
TEST_F(CliTest, TranscribePrintsKeyTextLines) {
  const auto g = load_e2e_golden("conformer_causal");
  const Outcome r = run({"transcribe", model_, data_ + "speech_16k_s16.wav", data_ + "short_16k_s16.wav"});
  ASSERT_EQ(r.rc, 0) << r.err;
  const auto out = lines(r.out);
  ASSERT_EQ(out.size(), 2u) << r.out;
  const std::vector<std::string> keys = {"speech_16k_s16", "short_16k_s16"};
  for (size_t i = 0; i < keys.size(); ++i) {
    const auto& e = g.entry(keys[i], "attention_rescoring");
    if (e.at("kept").get<bool>()) EXPECT_EQ(out[i], keys[i] + " " + e.at("text").get<std::string>());
    EXPECT_EQ(out[i].rfind(keys[i] + " ", 0), 0u) << out[i];
  }
  const auto err = lines(r.err);
  ASSERT_EQ(err.size(), 1u) << r.err;
  EXPECT_NE(err[0].find("2 files (0 failed)"), std::string::npos) << err[0];
  EXPECT_NE(err[0].find("real time"), std::string::npos) << err[0];
}

// --streaming on the shipped (U2++) demo model: the examples come out exactly, as offline; with
// --partial the partial and final results go to stderr. A model not trained for streaming is refused.
TEST_F(CliTest, StreamingTranscribesTheDemoExamples) {
  const std::string demo = std::string(WENET_SOURCE_DIR) + "/models/demo";
  std::map<std::string, std::string> refs;
  {
    std::ifstream in(demo + "/examples/text");
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) refs[line.substr(0, line.find(' '))] = line.substr(line.find(' ') + 1);
  }
  std::vector<std::string> args = {"transcribe", demo, "--streaming", "--chunk-size", "16", "--partial"};
  for (const auto& [key, text] : refs) args.push_back(demo + "/examples/" + key + ".wav");
  const Outcome r = run(args);
  ASSERT_EQ(r.rc, 0) << r.err;
  const auto out = lines(r.out);
  ASSERT_EQ(out.size(), refs.size()) << r.out;
  for (const auto& l : out) {
    const std::string key = l.substr(0, l.find(' '));
    EXPECT_EQ(l, key + " " + refs.at(key));
  }
  EXPECT_NE(r.err.find(" partial: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(" final: "), std::string::npos) << r.err;
  const std::string full_context = std::string(WENET_TEST_DATA) + "/goldens/conformer_layernorm";
  const Outcome refused = run({"transcribe", full_context, "--streaming", data_ + "short_16k_s16.wav"});
  EXPECT_EQ(refused.rc, 1);
  EXPECT_NE(refused.err.find("not trained for streaming"), std::string::npos) << refused.err;
}

TEST_F(CliTest, JsonFormatOneObjectPerLine) {
  const auto g = load_e2e_golden("conformer_causal");
  const Outcome r = run({"transcribe", model_, "--format", "json", "--mode", "ctc_prefix_beam",
                     data_ + "speech_16k_s24.wav", data_ + "stereo_16k_s16.wav"});
  ASSERT_EQ(r.rc, 0) << r.err;
  const auto out = lines(r.out);
  ASSERT_EQ(out.size(), 2u) << r.out;
  const std::vector<std::string> keys = {"speech_16k_s24", "stereo_16k_s16"};
  for (size_t i = 0; i < keys.size(); ++i) {
    const auto j = nlohmann::json::parse(out[i]);
    for (const char* field : {"key", "text", "tokens", "score", "duration"})
      EXPECT_TRUE(j.contains(field)) << field << " missing in " << out[i];
    EXPECT_FALSE(j.contains("error")) << out[i];
    EXPECT_EQ(j.at("key"), keys[i]);
    EXPECT_NEAR(j.at("duration").get<double>(), 1.0, 1e-9);
    const auto& e = g.entry(keys[i], "ctc_prefix_beam");
    if (!e.at("kept").get<bool>()) continue;
    EXPECT_EQ(j.at("tokens").get<std::vector<int>>(), e.at("tokens").get<std::vector<int>>());
    EXPECT_EQ(j.at("text"), e.at("text"));
    if (e.at("score_checked").get<bool>()) EXPECT_NEAR(j.at("score").get<double>(), e.at("score").get<double>(), 1e-3);
  }
}

// wav.scp keys replace file stems; comments and blank lines are skipped; --output writes the
// results to a file and leaves stdout empty.
TEST_F(CliTest, WavScpAndOutputFile) {
  const fs::path scp = dir_ / "wav.scp", result = dir_ / "result.txt";
  std::ofstream(scp) << "# test list\n"
                     << "uttA " << data_ << "speech_16k_f32.wav\n\n"
                     << "uttB\t" << data_ << "short_16k_s16.wav\n";
  const Outcome r = run({"transcribe", model_, "--wav-scp", scp.string(), "--output", result.string(), "--mode",
                     "ctc_greedy", data_ + "speech_16k_s16.wav"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, "");
  const auto out = lines(slurp(result));
  ASSERT_EQ(out.size(), 3u);
  const auto g = load_e2e_golden("conformer_causal");
  const std::vector<std::pair<std::string, std::string>> expect = {
      {"uttA", "speech_16k_f32"}, {"uttB", "short_16k_s16"}, {"speech_16k_s16", "speech_16k_s16"}};
  for (size_t i = 0; i < expect.size(); ++i) {
    const auto& e = g.entry(expect[i].second, "ctc_greedy");
    EXPECT_EQ(out[i].rfind(expect[i].first + " ", 0), 0u) << out[i];
    if (e.at("kept").get<bool>()) EXPECT_EQ(out[i], expect[i].first + " " + e.at("text").get<std::string>());
  }
  EXPECT_NE(r.err.find("3 files (0 failed)"), std::string::npos) << r.err;
}

// A bad file among good ones: reported on stderr (naming the file), the others still printed,
// exit 0; a json line carries the error. All files bad: exit non-zero.
TEST_F(CliTest, BadAudioIsReportedAndTheRestGoesOn) {
  const std::string missing = (dir_ / "gone.wav").string();
  Outcome r = run({"transcribe", model_, data_ + "short_16k_s16.wav", missing});
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(lines(r.out).size(), 1u) << r.out;
  EXPECT_NE(r.err.find(missing), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("2 files (1 failed)"), std::string::npos) << r.err;

  r = run({"transcribe", model_, "--format", "json", data_ + "short_16k_s16.wav", missing});
  const auto out = lines(r.out);
  ASSERT_EQ(out.size(), 2u) << r.out;
  const auto j = nlohmann::json::parse(out[1]);
  EXPECT_EQ(j.at("key"), "gone");
  EXPECT_NE(j.at("error").get<std::string>().find(missing), std::string::npos) << out[1];

  r = run({"transcribe", model_, missing});
  EXPECT_NE(r.rc, 0);
}

TEST_F(CliTest, MissingModelDirFails) {
  const std::string dir = (dir_ / "no_model_here").string();
  const Outcome r = run({"transcribe", dir, data_ + "short_16k_s16.wav"});
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find(dir), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST_F(CliTest, UsageErrorsFail) {
  EXPECT_NE(run({"transcribe", model_}).rc, 0);  // no audio
  EXPECT_NE(run({"transcribe", model_, "--mode", "psychic", data_ + "short_16k_s16.wav"}).rc, 0);
  EXPECT_NE(run({"transcribe", model_, "--device", "tpu", data_ + "short_16k_s16.wav"}).rc, 0);
  const Outcome r = run({"transcribe", model_, "--beam", "0", data_ + "short_16k_s16.wav"});
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("beam"), std::string::npos) << r.err;
  EXPECT_NE(run({}).rc, 0);
}

// bench --chunk-batches: the streaming encoder's step timed for each number of streams; a model
// not trained for streaming and a bad count are errors that name the problem.
TEST_F(CliTest, BenchChunkBatchesTimesEachStreamCount) {
  const std::string json = (dir_ / "chunks.json").string();
  const std::string demo = std::string(WENET_SOURCE_DIR) + "/models/demo";
  const Outcome r = run(
      {"bench", demo, "--device", "cpu", "--chunk-batches", "1,3", "--runs", "2", "--warmup", "1", "--json", json});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("x real time"), std::string::npos) << r.out;
  const std::string j = slurp(json);
  EXPECT_NE(j.find("\"streams\": 1"), std::string::npos) << j;
  EXPECT_NE(j.find("\"streams\": 3"), std::string::npos) << j;
  const Outcome full = run({"bench", load_e2e_golden("u2pp_tiny").model_dir, "--device", "cpu", "--chunk-batches", "1",
                            "--runs", "1"});
  EXPECT_NE(full.rc, 0);
  EXPECT_NE(full.err.find("stream"), std::string::npos) << full.err;
  const Outcome bad = run({"bench", model_, "--device", "cpu", "--chunk-batches", "0"});
  EXPECT_NE(bad.rc, 0);
  EXPECT_NE(bad.err.find("--chunk-batches"), std::string::npos) << bad.err;
}

TEST_F(CliTest, InfoPrintsVocabularySize) {
  const Outcome r = run({"info", load_e2e_golden("u2pp_tiny").model_dir});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("40 tokens"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("bitransformer"), std::string::npos) << r.out;
  const Outcome bad = run({"info", (dir_ / "nothing").string()});
  EXPECT_NE(bad.rc, 0);
  EXPECT_NE(bad.err.find((dir_ / "nothing").string()), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace wenet_rt
