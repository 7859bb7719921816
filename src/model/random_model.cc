#include "model/random_model.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "model/params.h"

namespace wenet_rt {

const char* const kFullSizeModelYaml = R"(input_dim: 80
output_dim: 4233
encoder: conformer
decoder: transformer
encoder_conf:
  output_size: 256
  attention_heads: 4
  linear_units: 2048
  num_blocks: 12
  normalize_before: true
  input_layer: conv2d
  cnn_module_kernel: 15
  use_cnn_module: true
  activation_type: swish
  pos_enc_layer_type: rel_pos
  selfattention_layer_type: rel_selfattn
  macaron_style: true
  cnn_module_norm: batch_norm
decoder_conf:
  attention_heads: 4
  linear_units: 2048
  num_blocks: 6
model_conf:
  ctc_weight: 0.3
  reverse_weight: 0.0
)";

ModelDir make_random_model(const ModelConfig& config, uint64_t seed) {
  ModelDir m;
  m.path = "<random model>";
  m.config = config;
  std::mt19937_64 rng(seed);
  const std::map<std::string, Shape> params = expected_parameters(config);
  for (const auto& [name, shape] : params) {
    HostTensor t(DType::kF32, shape);
    float* p = t.data<float>();
    const int64_t n = t.numel();
    auto fill = [&](auto dist) {
      for (int64_t i = 0; i < n; ++i) p[i] = float(dist(rng));
    };
    // fan_in of the layer a weight or bias belongs to: its weight's elements per output row.
    auto fan_in = [&](const std::string& weight) {
      const Shape& w = params.at(weight);
      int64_t f = 1;
      for (size_t i = 1; i < w.size(); ++i) f *= w[i];
      return double(f);
    };
    const bool is_norm = name.find("norm") != std::string::npos;
    if (name.ends_with("running_mean")) {
      fill(std::uniform_real_distribution<double>(-0.1, 0.1));
    } else if (name.ends_with("running_var")) {
      fill(std::uniform_real_distribution<double>(0.5, 1.5));
    } else if (is_norm && name.ends_with(".weight")) {
      fill(std::uniform_real_distribution<double>(0.9, 1.1));
    } else if (is_norm && name.ends_with(".bias")) {
      fill(std::uniform_real_distribution<double>(-0.05, 0.05));
    } else if (name.find("embed.0.weight") != std::string::npos) {
      fill(std::normal_distribution<double>(0.0, 1.0));
    } else if (name.ends_with("pos_bias_u") || name.ends_with("pos_bias_v")) {
      const double b = std::sqrt(6.0 / double(shape[0] + shape[1]));  // xavier, as WeNet
      fill(std::uniform_real_distribution<double>(-b, b));
    } else {
      const std::string weight = name.ends_with(".bias") ? name.substr(0, name.rfind(".")) + ".weight" : name;
      const double b = 1.0 / std::sqrt(fan_in(weight));
      fill(std::uniform_real_distribution<double>(-b, b));
    }
    m.weights.emplace(name, std::move(t));
    if (!name.ends_with("running_mean") && !name.ends_with("running_var")) m.num_params += shape_numel(shape);
  }
  std::vector<std::pair<std::string, int>> units;
  const int V = config.vocab_size;
  for (int i = 0; i < V; ++i) {
    std::string unit = fmt::format("t{}", i);
    if (i == 0) unit = "<blank>";
    if (i == 1) unit = "<unk>";
    if (i == V - 1) unit = "<sos/eos>";
    units.emplace_back(std::move(unit), i);
  }
  m.vocab = Vocabulary::from_pairs(units, m.path);
  return m;
}

void dump_weights(const ModelDir& model, const std::string& train_yaml, const std::string& dir) {
  std::filesystem::create_directories(dir);
  nlohmann::json manifest;
  for (const auto& [name, t] : model.weights) {
    manifest[name] = {{"shape", t.shape()}, {"dtype", "float32"}};
    std::ofstream f(dir + "/" + name + ".bin", std::ios::binary);
    f.write(static_cast<const char*>(t.raw()), std::streamsize(t.nbytes()));
    if (!f) fail("{}: cannot write {}.bin", dir, name);
  }
  std::ofstream(dir + "/manifest.json") << manifest.dump(1);
  std::ofstream(dir + "/train.yaml") << train_yaml;
  std::ofstream units(dir + "/units.txt");
  for (int i = 0; i < model.vocab.size(); ++i) units << model.vocab.token(i) << ' ' << i << '\n';
  if (!units) fail("{}: cannot write units.txt", dir);
}

}  // namespace wenet_rt
