// The end-to-end goldens tests/data/e2e/<model>.json (written by reference/make_e2e_goldens.py):
// per audio file and decoding mode, what the PyTorch reference pipeline transcribes, and whether
// the result is robust enough to compare (`kept`, `score_checked`, `batch1_same`).
#pragma once

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace wenet_rt::testing {

inline const std::vector<std::string>& e2e_models() {
  static const std::vector<std::string> models = {"conformer_tiny", "u2pp_tiny", "transformer_tiny",
                                                  "conformer_causal"};
  return models;
}

// Models whose encoder output on a row does not depend on the other rows' padding (no conv /
// subsampling window reaches padded frames): any batch size gives the same results.
inline bool padding_independent(const std::string& model) {
  return model == "transformer_tiny" || model == "conformer_causal";
}

struct E2eGolden {
  std::string model;
  std::string model_dir;    // absolute
  nlohmann::json utterances;  // key -> {wav, duration, margins, <mode>: {tokens, text, score, kept, ...}}

  // (key, absolute wav path), keys sorted (nlohmann::json keeps objects sorted).
  std::vector<std::pair<std::string, std::string>> files() const {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& [key, u] : utterances.items())
      out.emplace_back(key, std::string(WENET_SOURCE_DIR) + "/" + u.at("wav").get<std::string>());
    return out;
  }
  const nlohmann::json& entry(const std::string& key, const std::string& mode) const {
    return utterances.at(key).at(mode);
  }
};

inline E2eGolden load_e2e_golden(const std::string& model) {
  const std::string path = std::string(WENET_TEST_DATA) + "/e2e/" + model + ".json";
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot open " << path << " (python3 reference/make_e2e_goldens.py writes it)";
  const nlohmann::json doc = nlohmann::json::parse(in);
  E2eGolden g;
  g.model = model;
  g.model_dir = std::string(WENET_SOURCE_DIR) + "/" + doc.at("model_dir").get<std::string>();
  g.utterances = doc.at("utterances");
  return g;
}

}  // namespace wenet_rt::testing
