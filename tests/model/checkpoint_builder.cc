#include "model/checkpoint_builder.h"

#include <zip.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

namespace wenet_rt::test {

namespace fs = std::filesystem;

PickleWriter& PickleWriter::str(const std::string& s) {
  op('X');
  const uint32_t n = uint32_t(s.size());
  for (int k = 0; k < 4; ++k) byte(uint8_t(n >> (8 * k)));
  return raw(s);
}

PickleWriter& PickleWriter::integer(int64_t v) {
  if (v >= 0 && v < 256) return op('K').byte(uint8_t(v));
  if (v >= INT32_MIN && v <= INT32_MAX) {
    op('J');
    for (int k = 0; k < 4; ++k) byte(uint8_t(uint32_t(int32_t(v)) >> (8 * k)));
    return *this;
  }
  op(0x8a).byte(8);
  for (int k = 0; k < 8; ++k) byte(uint8_t(uint64_t(v) >> (8 * k)));
  return *this;
}

PickleWriter& PickleWriter::tensor(const std::string& storage_type, const std::string& key, int64_t storage_numel,
                                   int64_t offset, const Shape& size, const Shape& stride) {
  global("torch._utils", "_rebuild_tensor_v2").mark();
  mark().str("storage").global("torch", storage_type).str(key).str("cpu").integer(storage_numel).tuple().persid();
  integer(offset);
  mark();
  for (int64_t d : size) integer(d);
  tuple();
  mark();
  for (int64_t d : stride) integer(d);
  tuple();
  newfalse().global("collections", "OrderedDict").empty_tuple().reduce();
  return tuple().reduce();
}

std::string state_dict_pickle(const std::vector<TensorEntry>& tensors) {
  PickleWriter w;
  w.proto().global("collections", "OrderedDict").empty_tuple().reduce().mark();
  for (const auto& t : tensors) w.str(t.name).tensor(t.storage_type, t.key, t.storage_numel, t.offset, t.size, t.stride);
  w.setitems();
  // state_dict()._metadata, set through BUILD like torch does
  w.empty_dict().str("_metadata").global("collections", "OrderedDict").empty_tuple().reduce().setitem().build();
  return w.stop().bytes();
}

namespace {

struct Zip {
  zip_t* z;
  explicit Zip(const std::string& path, int flags) {
    int err = 0;
    z = zip_open(path.c_str(), flags, &err);
    if (!z) throw std::runtime_error("zip_open failed for " + path);
  }
  void close() {
    if (zip_close(z) != 0) throw std::runtime_error(std::string("zip_close: ") + zip_strerror(z));
  }
};

void add(zip_t* z, const std::string& name, const std::string& bytes) {
  // libzip copies the buffer only at zip_close, so hand it memory it may free itself (libzip does
  // not free a zero-length buffer: an empty record gets none).
  void* copy = nullptr;
  if (!bytes.empty()) {
    copy = std::malloc(bytes.size());
    std::memcpy(copy, bytes.data(), bytes.size());
  }
  zip_source_t* src = zip_source_buffer(z, copy, bytes.size(), 1);
  if (!src) throw std::runtime_error("zip_source_buffer failed");
  const zip_int64_t index = zip_file_add(z, name.c_str(), src, ZIP_FL_OVERWRITE);
  if (index < 0) {
    zip_source_free(src);
    throw std::runtime_error(std::string("zip_file_add: ") + zip_strerror(z));
  }
  zip_set_file_compression(z, zip_uint64_t(index), ZIP_CM_STORE, 0);
}

}  // namespace

void write_zip(const std::string& path, const std::map<std::string, std::string>& records) {
  Zip zip(path, ZIP_CREATE | ZIP_TRUNCATE);
  for (const auto& [name, bytes] : records) add(zip.z, name, bytes);
  zip.close();
}

std::string read_zip_record(const std::string& path, const std::string& name) {
  Zip zip(path, ZIP_RDONLY);
  zip_stat_t st;
  if (zip_stat(zip.z, name.c_str(), 0, &st) != 0) throw std::runtime_error("no record " + name);
  std::string bytes(st.size, '\0');
  zip_file_t* f = zip_fopen(zip.z, name.c_str(), 0);
  const zip_int64_t n = zip_fread(f, bytes.data(), st.size);
  zip_fclose(f);
  zip_discard(zip.z);
  if (n != zip_int64_t(st.size)) throw std::runtime_error("short read of " + name);
  return bytes;
}

void replace_zip_record(const std::string& path, const std::string& name, const std::string& bytes) {
  Zip zip(path, 0);
  add(zip.z, name, bytes);
  zip.close();
}

void remove_zip_record(const std::string& path, const std::string& name) {
  Zip zip(path, 0);
  const zip_int64_t index = zip_name_locate(zip.z, name.c_str(), 0);
  if (index < 0 || zip_delete(zip.z, zip_uint64_t(index)) != 0) throw std::runtime_error("cannot delete " + name);
  zip.close();
}

void write_checkpoint(const std::string& path, const std::vector<TensorEntry>& tensors,
                      const std::map<std::string, std::string>& storages, const std::string& prefix) {
  std::map<std::string, std::string> records;
  records[prefix + "/data.pkl"] = state_dict_pickle(tensors);
  records[prefix + "/byteorder"] = "little";
  records[prefix + "/version"] = "3\n";
  for (const auto& [key, bytes] : storages) records[prefix + "/data/" + key] = bytes;
  write_zip(path, records);
}

void write_state_dict(const std::string& path, const std::map<std::string, HostTensor>& weights) {
  std::vector<TensorEntry> tensors;
  std::map<std::string, std::string> storages;
  for (const auto& [name, t] : weights) {
    TensorEntry e;
    e.name = name;
    e.key = std::to_string(tensors.size());
    switch (t.dtype()) {
      case DType::kF32: e.storage_type = "FloatStorage"; break;
      case DType::kF16: e.storage_type = "HalfStorage"; break;
      case DType::kBF16: e.storage_type = "BFloat16Storage"; break;
      case DType::kI64: e.storage_type = "LongStorage"; break;
      case DType::kI32: e.storage_type = "IntStorage"; break;
    }
    e.storage_numel = t.numel();
    e.size = t.shape();
    e.stride.assign(t.shape().size(), 1);
    for (size_t d = t.shape().size(); d-- > 1;) e.stride[d - 1] = e.stride[d] * t.shape()[d];
    storages[e.key] = std::string(static_cast<const char*>(t.raw()), t.nbytes());
    tensors.push_back(e);
  }
  write_checkpoint(path, tensors, storages);
}

HostTensor to_f16(const HostTensor& t) {
  const HostTensor f = t.to_f32();
  HostTensor out(DType::kF16, t.shape());
  for (int64_t i = 0; i < t.numel(); ++i) out.data<uint16_t>()[i] = float_to_half(f.data<float>()[i]);
  return out;
}

HostTensor to_bf16(const HostTensor& t) {
  const HostTensor f = t.to_f32();
  HostTensor out(DType::kBF16, t.shape());
  for (int64_t i = 0; i < t.numel(); ++i) {
    uint32_t x;
    std::memcpy(&x, f.data<float>() + i, 4);
    x += 0x7fffu + ((x >> 16) & 1u);  // round to nearest even (finite inputs)
    out.data<uint16_t>()[i] = uint16_t(x >> 16);
  }
  return out;
}

TempDir::TempDir() {
  std::random_device rd;
  for (int attempt = 0; attempt < 100; ++attempt) {
    const fs::path p = fs::temp_directory_path() / ("wenet_rt_model_test_" + std::to_string(rd()));
    if (fs::create_directory(p)) {
      path_ = p.string();
      return;
    }
  }
  throw std::runtime_error("cannot create a temp dir");
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

void copy_model_dir(const std::string& from, const std::string& to) {
  for (const auto& entry : fs::directory_iterator(from))
    if (entry.is_regular_file()) fs::copy_file(entry.path(), fs::path(to) / entry.path().filename());
}

}  // namespace wenet_rt::test
