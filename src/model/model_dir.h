// A WeNet model directory, loaded and cross-checked: train.yaml, final.pt (or another *.pt), the
// CMVN statistics and the vocabulary.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/cmvn.h"
#include "model/config.h"
#include "model/vocab.h"

namespace wenet_rt {

struct ModelDir {
  std::string path;
  ModelConfig config;
  // Exactly expected_parameters(config) plus the optional `*.pe` position tables when the
  // checkpoint has them, converted to float32 (from float16 / bfloat16 / float64).
  std::map<std::string, HostTensor> weights;
  // What the model normalizes its input with: the checkpoint's encoder.global_cmvn buffers when it
  // has them (the values the model really used), else the file train.yaml names; empty when the
  // model has no CMVN.
  Cmvn cmvn;
  Vocabulary vocab;
  std::vector<std::string> ignored_keys;  // checkpoint tensors no part of the model reads
  int64_t num_params = 0;                 // trainable parameters (BatchNorm running stats excluded)

  // Where each part came from, and remarks worth showing the user (for describe()).
  std::string config_file, checkpoint_file, cmvn_source, units_file;
  std::vector<std::string> notes;
};

// Loads and validates `dir`. Files: train.yaml; final.pt, else the only / newest *.pt; the CMVN file
// from train.yaml (relative to the dir, or an absolute path of the training machine, then its file
// name in the dir, then `global_cmvn`); units from tokenizer_conf.symbol_table_path, units.txt or
// lang_char.txt. Every expected tensor must be present with WeNet's shape; vocabulary size must equal
// output_dim; CMVN dimension must equal input_dim. Errors name the file at fault.
ModelDir load_model_dir(const std::string& dir);

// Several lines for `wenet-rt info`: the configuration, the files used, parameter count,
// vocabulary, ignored checkpoint keys, and what wenet-rt supports.
std::string describe(const ModelDir& model);

// One line listing the model variants wenet-rt runs.
std::string supported_variants();

}  // namespace wenet_rt
