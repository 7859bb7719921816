// Reads a PyTorch checkpoint written by torch.save(model.state_dict()) (torch >= 1.6: a zip archive
// holding <prefix>/data.pkl and one raw little-endian record per storage, <prefix>/data/<key>).
// The pickle goes through the restricted unpickler of model/pickle.h: no code from the file runs.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "core/tensor.h"

namespace wenet_rt {

// name -> contiguous tensor. Storage types map to HostTensor dtypes as: float32 / float16 /
// bfloat16 / int64 / int32 kept; float64 -> float32; int16 / int8 / uint8 / bool -> int32.
// Strided views and storage offsets are materialized; every view is bounds-checked against its
// storage record, and every record against the size the pickle declares. Errors name the file.
std::map<std::string, HostTensor> read_checkpoint(const std::string& path);
// The same from the bytes of a checkpoint already in memory; `name` stands for the file in messages.
std::map<std::string, HostTensor> read_checkpoint_bytes(std::string_view bytes, const std::string& name);

}  // namespace wenet_rt
