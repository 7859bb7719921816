// Random-weight models at a realistic scale (torch's default initialization ranges), for the
// benchmark and the full-size GPU accuracy tests: no checkpoint needed.
#pragma once

#include <cstdint>
#include <string>

#include "model/model_dir.h"

namespace wenet_rt {

// The seed's full-size model as a WeNet train.yaml: 12 conformer blocks, d 256, 4 heads, FFN 2048,
// conv kernel 15, rel_pos, 6-layer transformer decoder, vocab 4233, no CMVN.
extern const char* const kFullSizeModelYaml;

// Every parameter expected_parameters(config) lists, seeded: linear/conv weights and biases
// U(-1/sqrt(fan_in), 1/sqrt(fan_in)), embeddings N(0, 1), norms near 1 / 0, BatchNorm statistics
// near 0 / 1. CMVN is empty (identity); the vocabulary is synthetic.
ModelDir make_random_model(const ModelConfig& config, uint64_t seed);

// Writes DIR/manifest.json ({name: {shape, dtype}}) + DIR/<name>.bin (float32) for every weight,
// DIR/train.yaml (`train_yaml`, the model's config text) and DIR/units.txt: how the PyTorch peers
// of the benchmark load the very same model, and what reference/dump_to_model_dir.py turns into a
// WeNet model dir (final.pt) for the server and other tools.
void dump_weights(const ModelDir& model, const std::string& train_yaml, const std::string& dir);

}  // namespace wenet_rt
