// Reads the WeNet goldens (tests/data/wenet-goldens/<model>/goldens): manifest.json names each
// NAME.bin's shape and dtype (raw little-endian float32 / int32, row-major).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <fstream>
#include <string>
#include <type_traits>
#include <vector>

#include "core/error.h"

namespace wenet_rt::test {

inline std::string golden_dir(const std::string& model) {
  return std::string(WENET_TEST_DATA) + "/wenet-goldens/" + model + "/goldens";
}

inline nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  WENET_CHECK(in.good(), "cannot open {}", path);
  return nlohmann::json::parse(in);
}

template <typename T>
struct GoldenArray {
  std::vector<int64_t> shape;
  std::vector<T> data;
};

template <typename T>
GoldenArray<T> read_golden(const std::string& model, const std::string& name) {
  const std::string dir = golden_dir(model);
  const nlohmann::json manifest = read_json(dir + "/manifest.json");
  WENET_CHECK(manifest.contains(name), "{}/manifest.json: no entry {}", dir, name);
  const std::string dtype = manifest[name]["dtype"];
  const char* want = std::is_floating_point_v<T> ? "float32" : "int32";
  WENET_CHECK(dtype == want, "{}/{}.bin: expected dtype {}, got {}", dir, name, want, dtype);
  GoldenArray<T> a;
  a.shape = manifest[name]["shape"].get<std::vector<int64_t>>();
  int64_t n = 1;
  for (int64_t d : a.shape) n *= d;
  a.data.resize(size_t(n));
  std::ifstream in(dir + "/" + name + ".bin", std::ios::binary);
  WENET_CHECK(in.good(), "cannot open {}/{}.bin", dir, name);
  in.read(reinterpret_cast<char*>(a.data.data()), std::streamsize(n * sizeof(T)));
  WENET_CHECK(in.gcount() == std::streamsize(n * sizeof(T)), "{}/{}.bin: expected {} bytes, got {}", dir, name,
              n * sizeof(T), in.gcount());
  return a;
}

inline const std::vector<std::string>& golden_models() {
  static const std::vector<std::string> models = {"conformer_tiny", "u2pp_tiny", "transformer_tiny"};
  return models;
}

}  // namespace wenet_rt::test
