// WeNet's state-dict names and shapes, for every model variant wenet-rt runs.
#pragma once

#include <map>
#include <string>

#include "core/tensor.h"
#include "model/config.h"

namespace wenet_rt {

// Every tensor the engine needs, under WeNet's name, with the shape WeNet gives it for `config`
// (e.g. "encoder.encoders.0.self_attn.linear_q.weight" -> [d, d]). Includes BatchNorm running
// statistics; excludes the optional keys below.
std::map<std::string, Shape> expected_parameters(const ModelConfig& config);

// Keys a WeNet checkpoint may hold that the engine does not read from the weights: sinusoidal
// position tables (`*.pe`, recomputed), BatchNorm `num_batches_tracked`, and the CMVN buffers
// `encoder.global_cmvn.{mean,istd}` (load_model_dir reads those into ModelDir::cmvn).
bool is_optional_parameter(const std::string& key);

// True for buffers that are not trainable parameters (BatchNorm running statistics), so that a
// parameter count matches WeNet's sum(p.numel() for p in model.parameters()).
bool is_buffer(const std::string& key);

}  // namespace wenet_rt
