#include "model/checkpoint.h"

#include <zip.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <unordered_map>
#include <vector>

#include "model/pickle.h"

namespace wenet_rt {

namespace {

namespace fs = std::filesystem;

constexpr uint64_t kMaxPickleBytes = uint64_t(64) << 20;  // a 1000-tensor state dict needs ~200 KB
// deflate cannot shrink data more than ~1032:1, so a record claiming more is a lie (zip bomb).
constexpr uint64_t kMaxDeflateRatio = 1032;

struct ZipCloser {
  void operator()(zip_t* z) const { zip_discard(z); }
};
struct ZipFileCloser {
  void operator()(zip_file_t* f) const { zip_fclose(f); }
};
using ZipPtr = std::unique_ptr<zip_t, ZipCloser>;
using ZipFilePtr = std::unique_ptr<zip_file_t, ZipFileCloser>;

bool looks_like_legacy_torch_file(std::string_view head) {
  // torch < 1.6 wrote a bare pickle stream starting with the magic number 0x1950a86a20f9469cfc6c.
  static constexpr char kMagic[] = "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19";
  return head.starts_with(std::string_view(kMagic, sizeof(kMagic) - 1));
}

class Archive {
 public:
  // Opens the zip that `source` reads (taking it over); `file_bytes` is its size, `head` its first
  // bytes (to recognize the legacy format in the error message).
  Archive(std::string origin, zip_source_t* source, uint64_t file_bytes, std::string_view head)
      : origin_(std::move(origin)), file_bytes_(file_bytes) {
    zip_error_t err;
    zip_error_init(&err);
    zip_.reset(zip_open_from_source(source, ZIP_RDONLY | ZIP_CHECKCONS, &err));
    if (!zip_) {
      zip_source_free(source);
      const std::string why = zip_error_strerror(&err);
      zip_error_fini(&err);
      if (looks_like_legacy_torch_file(head))
        fail("{}: written in the legacy (torch < 1.6) format, which is not supported; re-save it with torch >= 1.6: "
             "torch.save(torch.load(f), f)", origin_);
      fail("{}: not a readable zip archive ({}); torch.save writes a zip: is the file truncated or corrupt?", origin_, why);
    }
    zip_error_fini(&err);
    find_prefix();
  }

  const std::string& origin() const { return origin_; }
  const std::string& prefix() const { return prefix_; }
  uint64_t file_bytes() const { return file_bytes_; }

  bool has(const std::string& name) const { return zip_name_locate(zip_.get(), name.c_str(), 0) >= 0; }

  // The whole record `name`, at most `max_bytes` long; `what` says what it is, for messages.
  std::vector<std::byte> read(const std::string& name, uint64_t max_bytes, const std::string& what) const {
    const zip_int64_t index = zip_name_locate(zip_.get(), name.c_str(), 0);
    if (index < 0) fail("{}: {} is missing from the archive (no record '{}')", origin_, what, name);
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(zip_.get(), zip_uint64_t(index), 0, &st) != 0 || !(st.valid & ZIP_STAT_SIZE))
      fail("{}: cannot read the size of record '{}' ({})", origin_, name, zip_strerror(zip_.get()));
    if (st.size > max_bytes) fail("{}: record '{}' is {} bytes, more than the {} bytes allowed for {}", origin_, name, st.size, max_bytes, what);
    const bool stored = (st.valid & ZIP_STAT_COMP_METHOD) && st.comp_method == ZIP_CM_STORE;
    const uint64_t comp = (st.valid & ZIP_STAT_COMP_SIZE) ? st.comp_size : file_bytes_;
    if ((stored && st.size > comp) || (!stored && st.size > comp * kMaxDeflateRatio + 1024) || comp > file_bytes_)
      fail("{}: record '{}' claims {} bytes from {} compressed bytes in a {}-byte file: corrupt archive", origin_, name,
           st.size, comp, file_bytes_);
    ZipFilePtr f(zip_fopen_index(zip_.get(), zip_uint64_t(index), 0));
    if (!f) fail("{}: cannot open record '{}' ({})", origin_, name, zip_strerror(zip_.get()));
    std::vector<std::byte> bytes(size_t(st.size));
    uint64_t got = 0;
    while (got < st.size) {
      const zip_int64_t n = zip_fread(f.get(), bytes.data() + got, st.size - got);
      if (n < 0) fail("{}: cannot read record '{}' ({}): corrupt archive", origin_, name, zip_file_strerror(f.get()));
      if (n == 0) break;
      got += uint64_t(n);
    }
    if (got != st.size) fail("{}: record '{}' ends after {} of its {} bytes: truncated archive", origin_, name, got, st.size);
    // Reading on to the end makes libzip compare the record's CRC.
    char extra;
    if (zip_fread(f.get(), &extra, 1) != 0)
      fail("{}: record '{}' fails its checksum or is longer than declared ({}): corrupt archive", origin_, name,
           zip_file_strerror(f.get()));
    return bytes;
  }

  uint64_t record_size(const std::string& name) const {
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat(zip_.get(), name.c_str(), 0, &st) != 0 || !(st.valid & ZIP_STAT_SIZE)) return UINT64_MAX;
    return st.size;
  }

 private:
  // torch names every record "<prefix>/...", the prefix being the file's stem or "archive".
  void find_prefix() {
    const zip_int64_t n = zip_get_num_entries(zip_.get(), 0);
    std::vector<std::string> prefixes;
    for (zip_int64_t i = 0; i < n; ++i) {
      const char* raw = zip_get_name(zip_.get(), zip_uint64_t(i), 0);
      if (!raw) continue;
      const std::string_view name(raw);
      const size_t slash = name.find('/');
      if (slash != std::string_view::npos && slash > 0 && name.substr(slash + 1) == "data.pkl")
        prefixes.emplace_back(name.substr(0, slash));
    }
    if (prefixes.empty())
      fail("{}: the zip archive has no <prefix>/data.pkl record, so it is not a torch.save checkpoint", origin_);
    if (prefixes.size() > 1) fail("{}: the zip archive has {} data.pkl records; expected one", origin_, prefixes.size());
    prefix_ = prefixes[0];
    // torch.jit.save writes <prefix>/constants.pkl and <prefix>/code/*.py (no directory records).
    bool torchscript = has(prefix_ + "/constants.pkl");
    for (zip_int64_t i = 0; i < n && !torchscript; ++i) {
      const char* raw = zip_get_name(zip_.get(), zip_uint64_t(i), 0);
      torchscript = raw && std::string_view(raw).starts_with(prefix_ + "/code/");
    }
    if (torchscript)
      fail("{}: this is a TorchScript archive (torch.jit.save); wenet-rt reads the state-dict checkpoint "
           "(final.pt written by torch.save(model.state_dict()))", origin_);
  }

  std::string origin_, prefix_;
  uint64_t file_bytes_ = 0;
  ZipPtr zip_;
};

// torch names storages "0", "1", ...; anything that could leave <prefix>/data/ (a slash, "..") or
// name a record other than the one it spells (a NUL byte) is refused.
bool valid_storage_key(const std::string& key) {
  if (key.empty() || key.size() > 256 || key.find("..") != std::string::npos) return false;
  for (const char c : key)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') return false;
  return true;
}

DType output_dtype(StorageType t) {
  switch (t) {
    case StorageType::kF32:
    case StorageType::kF64: return DType::kF32;
    case StorageType::kF16: return DType::kF16;
    case StorageType::kBF16: return DType::kBF16;
    case StorageType::kI64: return DType::kI64;
    default: return DType::kI32;
  }
}

// Copies one element of storage type `t` at `src` into element `i` of `out`.
void convert_element(StorageType t, const std::byte* src, HostTensor& out, int64_t i) {
  switch (t) {
    case StorageType::kF32: std::memcpy(out.data<float>() + i, src, 4); return;
    case StorageType::kF16:
    case StorageType::kBF16: std::memcpy(out.data<uint16_t>() + i, src, 2); return;
    case StorageType::kI64: std::memcpy(out.data<int64_t>() + i, src, 8); return;
    case StorageType::kI32: std::memcpy(out.data<int32_t>() + i, src, 4); return;
    case StorageType::kF64: {
      double d;
      std::memcpy(&d, src, 8);
      out.data<float>()[i] = float(d);
      return;
    }
    case StorageType::kI16: {
      int16_t v;
      std::memcpy(&v, src, 2);
      out.data<int32_t>()[i] = v;
      return;
    }
    case StorageType::kI8: out.data<int32_t>()[i] = int8_t(src[0]); return;
    case StorageType::kU8: out.data<int32_t>()[i] = uint8_t(src[0]); return;
    case StorageType::kBool: out.data<int32_t>()[i] = src[0] != std::byte{0}; return;
  }
}

std::string view_str(const TensorRef& t) {
  return fmt::format("offset {}, size {}, stride {}", t.offset, shape_str(t.sizes), shape_str(t.strides));
}

// Checks the view against its storage and returns its element count.
int64_t checked_view_numel(const TensorRef& t, const std::string& name, const std::string& origin) {
  int64_t numel = 1, last = t.offset;  // `last`: the highest element index the view touches
  for (size_t d = 0; d < t.sizes.size(); ++d) {
    if (t.sizes[d] < 0 || t.strides[d] < 0)
      fail("{}: tensor '{}' has a negative size or stride ({})", origin, name, view_str(t));
    if (__builtin_mul_overflow(numel, t.sizes[d], &numel))
      fail("{}: tensor '{}' is impossibly large ({})", origin, name, view_str(t));
  }
  if (t.offset < 0 || t.offset > t.storage_numel)
    fail("{}: tensor '{}' starts at element {} of storage '{}', which holds {}", origin, name, t.offset, t.storage_key, t.storage_numel);
  if (numel == 0) return 0;
  for (size_t d = 0; d < t.sizes.size(); ++d) {
    int64_t reach;
    if (__builtin_mul_overflow(t.sizes[d] - 1, t.strides[d], &reach) || __builtin_add_overflow(last, reach, &last))
      fail("{}: tensor '{}' view overflows ({})", origin, name, view_str(t));
  }
  if (last >= t.storage_numel)
    fail("{}: tensor '{}' reaches element {} of storage '{}', which holds only {} elements ({}): view out of bounds",
         origin, name, last, t.storage_key, t.storage_numel, view_str(t));
  // Views that repeat elements (stride 0, overlapping strides) could make a small file expand
  // without bound; a state dict never holds them.
  if (numel > t.storage_numel)
    fail("{}: tensor '{}' has {} elements but its storage '{}' holds only {} (repeating views are not supported)",
         origin, name, numel, t.storage_key, t.storage_numel);
  // Nor do they hold views that overlap themselves (stride 0, rows sharing elements). Sufficient
  // test: with its dims sorted by stride, each stride clears the span of the dims below it.
  std::vector<std::pair<int64_t, int64_t>> dims;  // (stride, size) of the dims that move
  for (size_t d = 0; d < t.sizes.size(); ++d)
    if (t.sizes[d] > 1) dims.emplace_back(t.strides[d], t.sizes[d]);
  std::sort(dims.begin(), dims.end());
  int64_t span = 1;  // no overflow: the span is below storage_numel, checked above
  for (const auto& [stride, size] : dims) {
    if (stride < span)
      fail("{}: tensor '{}' overlaps itself ({}): its elements would repeat, and repeating views are not supported",
           origin, name, view_str(t));
    span += (size - 1) * stride;
  }
  return numel;
}

HostTensor materialize(const TensorRef& t, int64_t numel, const std::vector<std::byte>& storage) {
  HostTensor out(output_dtype(t.type), t.sizes);
  if (numel == 0) return out;
  const size_t es = storage_element_size(t.type);
  const std::byte* base = storage.data();
  // Fast path: a contiguous view kept in its own dtype is one copy.
  bool contiguous = true;
  int64_t expect = 1;
  for (size_t d = t.sizes.size(); d-- > 0;) {
    if (t.sizes[d] != 1 && t.strides[d] != expect) contiguous = false;
    expect *= t.sizes[d];
  }
  if (contiguous && es == dtype_size(out.dtype())) {  // same dtype: float32/16, bfloat16, int64/32
    std::memcpy(out.raw(), base + size_t(t.offset) * es, size_t(numel) * es);
    return out;
  }
  const size_t rank = t.sizes.size();
  std::vector<int64_t> idx(rank, 0);
  int64_t src = t.offset;
  for (int64_t i = 0; i < numel; ++i) {
    convert_element(t.type, base + size_t(src) * es, out, i);
    for (size_t d = rank; d-- > 0;) {  // odometer over the dims, last dim fastest
      if (++idx[d] < t.sizes[d]) {
        src += t.strides[d];
        break;
      }
      src -= t.strides[d] * (t.sizes[d] - 1);
      idx[d] = 0;
    }
  }
  return out;
}

std::map<std::string, HostTensor> read_state_dict(const Archive& archive) {
  const std::string& origin = archive.origin();
  const std::string& prefix = archive.prefix();

  if (archive.has(prefix + "/byteorder")) {
    const auto bytes = archive.read(prefix + "/byteorder", 16, "the byteorder record");
    const std::string order(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    if (order != "little") fail("{}: byteorder is '{}'; only little-endian checkpoints are supported", origin, order);
  }
  const auto pickle_bytes = archive.read(prefix + "/data.pkl", kMaxPickleBytes, "data.pkl");
  const auto entries = unpickle_state_dict(
      std::string_view(reinterpret_cast<const char*>(pickle_bytes.data()), pickle_bytes.size()), origin);

  // Storages are read once each and dropped after their last tensor, so a model never sits in
  // memory twice in full.
  std::unordered_map<std::string, int> uses;
  for (const auto& [name, t] : entries) ++uses[t.storage_key];
  std::unordered_map<std::string, std::vector<std::byte>> storages;
  uint64_t storage_bytes = 0, materialized_bytes = 0;

  std::map<std::string, HostTensor> out;
  for (const auto& [name, t] : entries) {
    const std::string& key = t.storage_key;
    if (!valid_storage_key(key)) fail("{}: tensor '{}' names an invalid storage key '{}'", origin, name, key);
    const size_t es = storage_element_size(t.type);
    const std::string record = prefix + "/data/" + key;
    uint64_t want;
    if (__builtin_mul_overflow(uint64_t(t.storage_numel), uint64_t(es), &want))
      fail("{}: storage '{}' of tensor '{}' declares an impossible size of {} elements", origin, key, name, t.storage_numel);
    auto it = storages.find(key);
    if (it == storages.end()) {
      const uint64_t have = archive.record_size(record);
      if (have == UINT64_MAX) fail("{}: storage '{}' of tensor '{}' is missing from the archive (no record '{}')", origin, key, name, record);
      if (have != want)
        fail("{}: storage '{}' of tensor '{}' should hold {} x {} = {} bytes, the record has {}", origin, key, name,
             t.storage_numel, storage_type_name(t.type), want, have);
      it = storages.emplace(key, archive.read(record, want, "storage '" + key + "'")).first;
      storage_bytes += want;
    } else if (it->second.size() != want) {
      fail("{}: storage '{}' of tensor '{}' should hold {} bytes as {}, the record has {}", origin, key, name, want,
           storage_type_name(t.type), it->second.size());
    }
    const int64_t numel = checked_view_numel(t, name, origin);
    materialized_bytes += uint64_t(numel) * dtype_size(output_dtype(t.type));
    if (materialized_bytes > 4 * storage_bytes + (uint64_t(1) << 20))
      fail("{}: the tensors reuse their storages far more than a state dict does ({} bytes of tensors from {} bytes of "
           "storage); refusing to expand them", origin, materialized_bytes, storage_bytes);
    out[name] = materialize(t, numel, it->second);
    if (--uses[key] == 0) storages.erase(it);
  }
  return out;
}

}  // namespace

std::map<std::string, HostTensor> read_checkpoint(const std::string& path) {
  const std::string origin = "checkpoint " + path;
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (!fs::exists(status)) fail("{}: file not found", origin);
  if (!fs::is_regular_file(status)) fail("{}: not a regular file", origin);
  const uint64_t file_bytes = fs::file_size(path, ec);
  std::string head(16, '\0');
  {
    std::ifstream in(path, std::ios::binary);
    in.read(head.data(), std::streamsize(head.size()));
    head.resize(size_t(in.gcount()));
  }
  zip_error_t err;
  zip_error_init(&err);
  zip_source_t* source = zip_source_file_create(path.c_str(), 0, -1, &err);
  if (!source) {
    const std::string why = zip_error_strerror(&err);
    zip_error_fini(&err);
    fail("{}: cannot open ({})", origin, why);
  }
  zip_error_fini(&err);
  return read_state_dict(Archive(origin, source, file_bytes, head));
}

std::map<std::string, HostTensor> read_checkpoint_bytes(std::string_view bytes, const std::string& name) {
  const std::string origin = "checkpoint " + name;
  zip_error_t err;
  zip_error_init(&err);
  // libzip only reads the buffer (freep 0: it stays ours); it must outlive the archive, which it does.
  zip_source_t* source = zip_source_buffer_create(bytes.data(), bytes.size(), 0, &err);
  if (!source) {
    const std::string why = zip_error_strerror(&err);
    zip_error_fini(&err);
    fail("{}: cannot read ({})", origin, why);
  }
  zip_error_fini(&err);
  return read_state_dict(Archive(origin, source, bytes.size(), bytes.substr(0, 16)));
}

}  // namespace wenet_rt
