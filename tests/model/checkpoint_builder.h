// Test helpers that write torch.save-style checkpoints by hand (a pickle byte stream + a zip made
// with libzip), so that tests can build both valid variants (float16, strided views) and hostile
// files without torch.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace wenet_rt::test {

// Emits pickle protocol 2 opcodes, the way torch does.
class PickleWriter {
 public:
  PickleWriter& proto() { return op(0x80).byte(2); }
  PickleWriter& global(const std::string& module, const std::string& name) {
    return op('c').raw(module + "\n" + name + "\n");
  }
  PickleWriter& mark() { return op('('); }
  PickleWriter& str(const std::string& s);          // BINUNICODE
  PickleWriter& integer(int64_t v);                 // BININT1 / BININT / LONG1
  PickleWriter& tuple() { return op('t'); }         // from the last MARK
  PickleWriter& empty_tuple() { return op(')'); }
  PickleWriter& empty_dict() { return op('}'); }
  PickleWriter& newfalse() { return op(0x89); }
  PickleWriter& persid() { return op('Q'); }
  PickleWriter& reduce() { return op('R'); }
  PickleWriter& setitem() { return op('s'); }
  PickleWriter& setitems() { return op('u'); }
  PickleWriter& build() { return op('b'); }
  PickleWriter& stop() { return op('.'); }
  PickleWriter& op(uint8_t code) { return byte(code); }
  PickleWriter& byte(uint8_t b) {
    out_.push_back(char(b));
    return *this;
  }
  PickleWriter& raw(const std::string& bytes) {
    out_ += bytes;
    return *this;
  }
  const std::string& bytes() const { return out_; }

  // _rebuild_tensor_v2(('storage', torch.<type>, key, 'cpu', numel), offset, size, stride, False, OrderedDict())
  PickleWriter& tensor(const std::string& storage_type, const std::string& key, int64_t storage_numel, int64_t offset,
                       const Shape& size, const Shape& stride);

 private:
  std::string out_;
};

// One tensor entry for write_checkpoint: a view of storage `key`.
struct TensorEntry {
  std::string name;
  std::string storage_type = "FloatStorage";
  std::string key;
  int64_t storage_numel = 0;
  int64_t offset = 0;
  Shape size, stride;
};

// A zip with the given records (name -> bytes), stored uncompressed like torch does.
void write_zip(const std::string& path, const std::map<std::string, std::string>& records);
// The bytes of one record of a zip file.
std::string read_zip_record(const std::string& path, const std::string& name);
// Replaces (or adds) one record of an existing zip.
void replace_zip_record(const std::string& path, const std::string& name, const std::string& bytes);
// Removes one record of an existing zip.
void remove_zip_record(const std::string& path, const std::string& name);

// The pickle torch writes for an OrderedDict of these tensors.
std::string state_dict_pickle(const std::vector<TensorEntry>& tensors);
// A complete checkpoint: "<prefix>/data.pkl" from `tensors`, "<prefix>/data/<key>" from `storages`.
void write_checkpoint(const std::string& path, const std::vector<TensorEntry>& tensors,
                      const std::map<std::string, std::string>& storages, const std::string& prefix = "archive");
// A checkpoint that stores each tensor of `weights` contiguously in its own dtype
// (FloatStorage / HalfStorage / BFloat16Storage / LongStorage / IntStorage).
void write_state_dict(const std::string& path, const std::map<std::string, HostTensor>& weights);

// float32 -> float16 / bfloat16 copies (round to nearest even).
HostTensor to_f16(const HostTensor& t);
HostTensor to_bf16(const HostTensor& t);

// A fresh empty directory under the system temp dir, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& bytes);
// Copies a model dir's files (not subdirectories) into `to`.
void copy_model_dir(const std::string& from, const std::string& to);

}  // namespace wenet_rt::test
