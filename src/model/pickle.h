// A restricted unpickler for the data.pkl of a torch.save(state_dict) archive. It understands the
// pickle opcodes torch emits (protocol 2, plus the protocol 4 ones a custom pickle_protocol adds)
// and accepts only the globals a state dict needs: collections.OrderedDict, the tensor/parameter
// rebuild functions and the torch.<T>Storage types. It never calls anything: "calls" to the
// allowed functions are interpreted here, so a hostile file can at worst produce an Error.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wenet_rt {

// Element types of torch's legacy typed storages (the GLOBAL 'torch <T>Storage' of a persistent id).
enum class StorageType : uint8_t { kF32, kF16, kBF16, kF64, kI64, kI32, kI16, kI8, kU8, kBool };

size_t storage_element_size(StorageType t);
std::string_view storage_type_name(StorageType t);  // "FloatStorage", ...

// One tensor as the pickle describes it: a strided view of a storage record `<prefix>/data/<key>`.
struct TensorRef {
  std::string storage_key;
  StorageType type = StorageType::kF32;
  int64_t storage_numel = 0;  // elements in the storage record, as the persistent id says
  int64_t offset = 0;         // in elements
  std::vector<int64_t> sizes, strides;
};

// Limits that keep a hostile pickle from exhausting memory or time; real state dicts stay far below.
struct UnpickleLimits {
  size_t max_stack = size_t(1) << 20;
  size_t max_marks = size_t(1) << 16;
  uint64_t max_memo_index = uint64_t(1) << 24;
  size_t max_objects = size_t(1) << 21;  // ~100 bytes each; a 1000-tensor state dict needs ~20k
  size_t max_memo_entries = size_t(1) << 21;
  // Tensors (and storages, and state dict entries): each costs a few hundred bytes of TensorRef
  // from as little as five bytes of pickle, so their number is capped apart from the objects.
  size_t max_tensors = size_t(1) << 18;
  size_t max_rank = 16;
  size_t max_name_bytes = 1024;  // global module / name and storage keys (torch writes "0", "1", ...)
};

// Interprets `pickle` (the bytes of data.pkl) and returns the state dict's (name, tensor) entries in
// file order. `origin` starts every error message (e.g. "checkpoint /m/final.pt").
std::vector<std::pair<std::string, TensorRef>> unpickle_state_dict(std::string_view pickle, const std::string& origin,
                                                                   const UnpickleLimits& limits = {});

}  // namespace wenet_rt
