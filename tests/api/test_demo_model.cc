// The shipped demo model (models/demo) really recognizes speech: its examples come out exactly,
// and a held-out subset (sentences never seen in training) stays within the model card's WER.
#include <gtest/gtest.h>

#include "core/error.h"

#include <algorithm>
#include <iterator>
#include <fstream>
#include <map>
#include <sstream>

#include "common/word_errors.h"
#include "wenet_rt/recognizer.h"

namespace wenet_rt {
namespace {

using testing::edit_distance;

const std::string kModel = std::string(WENET_SOURCE_DIR) + "/models/demo";

// "key text" lines -> key -> words
std::map<std::string, std::vector<std::string>> read_text(const std::string& path) {
  std::map<std::string, std::vector<std::string>> out;
  std::ifstream f(path);
  for (std::string line; std::getline(f, line);) {
    std::istringstream s(line);
    std::string key, w;
    s >> key;
    while (s >> w) out[key].push_back(w);
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> wavs_of(const std::string& dir,
                                                         const std::map<std::string, std::vector<std::string>>& refs) {
  std::vector<std::pair<std::string, std::string>> files;
  for (const auto& [key, _] : refs) files.emplace_back(key, dir + "/" + key + ".wav");
  return files;
}

TEST(DemoModel, ExamplesAreTranscribedExactly) {
  const std::string dir = kModel + "/examples";
  const auto refs = read_text(dir + "/text");
  ASSERT_EQ(refs.size(), 5u);
  // FP32 and dynamic INT8 (--precision int8), each decoding mode that reads the CTC N-best.
  for (const char* precision : {"fp32", "int8"})
    for (const char* mode : {"attention_rescoring", "ctc_prefix_beam"}) {
      RecognizerConfig cfg;
      cfg.mode = parse_decode_mode(mode);
      cfg.precision = precision;
      Recognizer rec(kModel, cfg);
      for (const auto& r : rec.recognize_files(wavs_of(dir, refs))) {
        ASSERT_TRUE(r.error.empty()) << r.error;
        std::istringstream s(r.text);
        std::vector<std::string> words{std::istream_iterator<std::string>(s), {}};
        EXPECT_EQ(words, refs.at(r.key)) << precision << " " << mode << " " << r.key << ": " << r.text;
      }
    }
}

TEST(DemoModel, Int8IsForTheCpuOnly) {
  RecognizerConfig cfg;
  cfg.device = "cuda";
  cfg.precision = "int8";
  try {
    cfg.validate();
    ADD_FAILURE() << "int8 on cuda accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cpu device only"), std::string::npos) << e.what();
  }
}

TEST(DemoModel, HeldOutWerWithinTheModelCard) {
  const std::string dir = std::string(WENET_TEST_DATA) + "/demo_heldout";
  const auto refs = read_text(dir + "/text");
  ASSERT_EQ(refs.size(), 10u);
  Recognizer rec(kModel, RecognizerConfig{});
  size_t errors = 0, words = 0;
  for (const auto& r : rec.recognize_files(wavs_of(dir, refs))) {
    ASSERT_TRUE(r.error.empty()) << r.error;
    std::istringstream s(r.text);
    const std::vector<std::string> hyp{std::istream_iterator<std::string>(s), {}};
    errors += edit_distance(refs.at(r.key), hyp);
    words += refs.at(r.key).size();
  }
  const double wer = double(errors) / double(words);
  std::printf("demo model, held-out subset: WER %.2f%% (%zu/%zu words)\n", 100 * wer, errors, words);
  EXPECT_LE(wer, 0.05);
}

}  // namespace
}  // namespace wenet_rt
