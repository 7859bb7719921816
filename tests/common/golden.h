// Reading golden outputs: `goldens/manifest.json` (name -> shape, dtype) + raw little-endian NAME.bin.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace wenet_rt::testing {

inline std::string test_data(const std::string& rel) { return std::string(WENET_TEST_DATA) + "/" + rel; }

// Model directories holding goldens/ with an entry `key` in their manifest.
inline std::vector<std::string> golden_dirs_with(const std::string& key) {
  std::vector<std::string> dirs;
  for (const char* root : {"wenet-goldens", "goldens"}) {
    const std::filesystem::path p = test_data(root);
    if (!std::filesystem::exists(p)) continue;
    for (const auto& e : std::filesystem::directory_iterator(p)) {
      const std::filesystem::path m = e.path() / "goldens" / "manifest.json";
      if (!std::filesystem::exists(m)) continue;
      std::ifstream f(m);
      if (nlohmann::json::parse(f).contains(key)) dirs.push_back(e.path().string());
    }
  }
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

// Model directories holding batch goldens (feats [B, T, F] + full-context outputs): WeNet's own
// (wenet-goldens) and the project's (goldens).
inline std::vector<std::string> golden_model_dirs() { return golden_dirs_with("feats"); }

// Model directories holding WeNet's chunk-by-chunk (streaming) goldens (uttU_feats, uttU_chunkC_leftL_*).
inline std::vector<std::string> streaming_golden_model_dirs() { return golden_dirs_with("utt0_encoder_out_full"); }

class Goldens {
 public:
  explicit Goldens(std::string model_dir) : dir_(std::move(model_dir) + "/goldens") {
    std::ifstream f(dir_ + "/manifest.json");
    manifest_ = nlohmann::json::parse(f);
  }
  bool has(const std::string& name) const { return manifest_.contains(name); }
  HostTensor load(const std::string& name) const {
    const auto& m = manifest_.at(name);
    Shape shape = m.at("shape").get<Shape>();
    const std::string dt = m.at("dtype");
    HostTensor t(dt == "int32" ? DType::kI32 : DType::kF32, shape);
    std::ifstream f(dir_ + "/" + name + ".bin", std::ios::binary);
    f.read(static_cast<char*>(t.raw()), std::streamsize(t.nbytes()));
    if (!f) throw std::runtime_error("short golden file " + name);
    return t;
  }
  nlohmann::json decode_json() const {
    std::ifstream f(dir_ + "/decode.json");
    return nlohmann::json::parse(f);
  }

 private:
  std::string dir_;
  nlohmann::json manifest_;
};

struct Diff {
  double max_abs = 0, median_rel = 0;
};

// Max abs diff and median relative diff (the seed's a0 / r0) over n values.
inline Diff compare(const float* got, const float* want, size_t n) {
  Diff d;
  std::vector<double> rel(n);
  for (size_t i = 0; i < n; ++i) {
    const double a = std::abs(double(got[i]) - double(want[i]));
    d.max_abs = std::max(d.max_abs, std::isnan(a) ? INFINITY : a);
    rel[i] = a / (std::abs(double(want[i])) + 1e-9);
  }
  if (n) {
    std::nth_element(rel.begin(), rel.begin() + long(n / 2), rel.end());
    d.median_rel = rel[n / 2];
  }
  return d;
}

}  // namespace wenet_rt::testing
