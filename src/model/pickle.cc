#include "model/pickle.h"

#include <array>
#include <cstring>
#include <deque>
#include <unordered_map>

#include "core/error.h"

namespace wenet_rt {

namespace {

struct StorageTypeInfo {
  std::string_view name;
  StorageType type;
  size_t size;
};

constexpr std::array<StorageTypeInfo, 10> kStorageTypes{{
    {"FloatStorage", StorageType::kF32, 4},
    {"HalfStorage", StorageType::kF16, 2},
    {"BFloat16Storage", StorageType::kBF16, 2},
    {"DoubleStorage", StorageType::kF64, 8},
    {"LongStorage", StorageType::kI64, 8},
    {"IntStorage", StorageType::kI32, 4},
    {"ShortStorage", StorageType::kI16, 2},
    {"CharStorage", StorageType::kI8, 1},
    {"ByteStorage", StorageType::kU8, 1},
    {"BoolStorage", StorageType::kBool, 1},
}};

constexpr std::string_view kOrderedDict = "collections.OrderedDict";
constexpr std::string_view kRebuildTensor = "torch._utils._rebuild_tensor_v2";
constexpr std::string_view kRebuildParameter = "torch._utils._rebuild_parameter";
constexpr std::string_view kRebuildParameterWithState = "torch._utils._rebuild_parameter_with_state";

std::string supported_storage_names() {
  std::string s;
  for (const auto& info : kStorageTypes) s += (s.empty() ? "" : ", ") + std::string(info.name);
  return s;
}

// A string from the file as shown in a message: long ones are cut, so that a message stays a line.
std::string shown(const std::string& s) {
  constexpr size_t kMax = 200;
  return s.size() <= kMax ? s : s.substr(0, kMax) + fmt::format("... ({} bytes)", s.size());
}

// Objects live in an arena and refer to each other by index: no ownership cycles, no recursive
// destruction, whatever shape a hostile pickle builds.
using Id = uint32_t;

struct Obj {
  enum Kind : uint8_t { kNone, kBool, kInt, kFloat, kStr, kBytes, kTuple, kList, kDict, kGlobal, kStorage, kTensor };
  Kind kind = kNone;
  int64_t i = 0;           // bool / int value; index into storages_ / tensors_
  double f = 0;
  std::string s;           // str, bytes, or "module.name" of a global
  std::vector<Id> items;   // tuple / list items; dict as k0, v0, k1, v1, ...
};

const char* kind_name(Obj::Kind k) {
  switch (k) {
    case Obj::kNone: return "None";
    case Obj::kBool: return "bool";
    case Obj::kInt: return "int";
    case Obj::kFloat: return "float";
    case Obj::kStr: return "str";
    case Obj::kBytes: return "bytes";
    case Obj::kTuple: return "tuple";
    case Obj::kList: return "list";
    case Obj::kDict: return "dict";
    case Obj::kGlobal: return "global";
    case Obj::kStorage: return "storage";
    case Obj::kTensor: return "tensor";
  }
  return "?";
}

struct StorageRec {
  std::string key;
  StorageType type;
  int64_t numel;
};

class Unpickler {
 public:
  Unpickler(std::string_view data, const std::string& origin, const UnpickleLimits& limits)
      : data_(data), origin_(origin), limits_(limits) {}

  std::vector<std::pair<std::string, TensorRef>> run() {
    while (true) {
      if (pos_ >= data_.size()) error("the pickle ends without a STOP opcode (truncated data.pkl?)");
      op_pos_ = pos_;
      const uint8_t op = u8();
      if (op == '.') break;
      step(op);
    }
    return result(pop());
  }

 private:
  template <typename... Args>
  [[noreturn]] void error(fmt::format_string<Args...> f, Args&&... args) {
    fail("{}: data.pkl byte {}: {}", origin_, op_pos_, fmt::format(f, std::forward<Args>(args)...));
  }

  // ---- reading the byte stream
  std::string_view take(uint64_t n) {
    if (n > data_.size() - pos_) error("a record of {} bytes runs past the end of data.pkl ({} bytes)", n, data_.size());
    std::string_view r = data_.substr(pos_, size_t(n));
    pos_ += size_t(n);
    return r;
  }
  uint8_t u8() { return uint8_t(take(1)[0]); }
  uint64_t uint_le(size_t n) {
    const std::string_view b = take(n);
    uint64_t v = 0;
    for (size_t k = 0; k < n; ++k) v |= uint64_t(uint8_t(b[k])) << (8 * k);
    return v;
  }
  std::string_view line() {
    const size_t end = data_.find('\n', pos_);
    if (end == std::string_view::npos || end - pos_ > limits_.max_name_bytes) error("malformed GLOBAL record");
    std::string_view r = data_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return r;
  }
  int64_t signed_le(uint64_t n) {  // LONG1 / LONG4 payload: little-endian two's complement
    if (n > 8) error("integer of {} bytes is too large", n);
    if (n == 0) return 0;
    const std::string_view b = take(n);
    uint64_t v = 0;
    for (size_t k = 0; k < n; ++k) v |= uint64_t(uint8_t(b[k])) << (8 * k);
    if (n < 8 && (uint8_t(b[n - 1]) & 0x80)) v |= ~uint64_t(0) << (8 * n);
    return int64_t(v);
  }

  // ---- objects and the stacks
  Id make(Obj o) {
    if (objs_.size() >= limits_.max_objects) error("more than {} objects", limits_.max_objects);
    objs_.push_back(std::move(o));
    return Id(objs_.size() - 1);
  }
  Id make_int(int64_t v) { return make(Obj{Obj::kInt, v, 0, {}, {}}); }
  Id make_str(Obj::Kind k, std::string_view s) { return make(Obj{k, 0, 0, std::string(s), {}}); }
  Obj& at(Id id) { return objs_[id]; }

  void push(Id id) {
    if (stack_.size() >= limits_.max_stack) error("stack deeper than {} entries", limits_.max_stack);
    stack_.push_back(id);
  }
  Id pop() {
    if (stack_.size() <= stack_floor()) error("stack underflow");
    const Id id = stack_.back();
    stack_.pop_back();
    return id;
  }
  Id top() {
    if (stack_.size() <= stack_floor()) error("stack underflow");
    return stack_.back();
  }
  size_t stack_floor() const { return marks_.empty() ? 0 : marks_.back(); }
  std::vector<Id> pop_mark() {
    if (marks_.empty()) error("no MARK on the stack");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Id> items(stack_.begin() + std::ptrdiff_t(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  Id make_seq(Obj::Kind kind, std::vector<Id> items) { return make(Obj{kind, 0, 0, {}, std::move(items)}); }

  void memo_put(uint64_t index) {
    if (index >= limits_.max_memo_index) error("memo index {} exceeds the limit {}", index, limits_.max_memo_index);
    if (memo_.size() >= limits_.max_memo_entries && !memo_.count(index))
      error("more than {} memo entries", limits_.max_memo_entries);
    memo_[index] = top();
  }
  void memo_get(uint64_t index) {
    const auto it = memo_.find(index);
    if (it == memo_.end()) error("memo index {} was never stored", index);
    push(it->second);
  }

  Obj& expect(Id id, Obj::Kind kind, const char* what) {
    Obj& o = at(id);
    if (o.kind != kind) error("{}: expected a {}, got a {}", what, kind_name(kind), kind_name(o.kind));
    return o;
  }
  int64_t expect_int(Id id, const char* what) { return expect(id, Obj::kInt, what).i; }

  // ---- the opcodes
  void step(uint8_t op) {
    switch (op) {
      case 0x80: {  // PROTO
        const uint8_t v = u8();
        if (v > 5) error("pickle protocol {} is not supported", v);
        break;
      }
      case 0x95: take(8); break;  // FRAME: framing is only a hint for buffered readers
      case '(':                   // MARK
        if (marks_.size() >= limits_.max_marks) error("more than {} nested MARKs", limits_.max_marks);
        marks_.push_back(stack_.size());
        break;
      case '0': pop(); break;        // POP
      case '1': pop_mark(); break;   // POP_MARK
      case '2': push(top()); break;  // DUP
      case 'N': push(make(Obj{})); break;
      case 0x88: push(make(Obj{Obj::kBool, 1, 0, {}, {}})); break;  // NEWTRUE
      case 0x89: push(make(Obj{Obj::kBool, 0, 0, {}, {}})); break;  // NEWFALSE
      case 'J': push(make_int(int32_t(uint32_t(uint_le(4))))); break;  // BININT
      case 'K': push(make_int(int64_t(u8()))); break;                  // BININT1
      case 'M': push(make_int(int64_t(uint_le(2)))); break;            // BININT2
      case 0x8a: push(make_int(signed_le(u8()))); break;               // LONG1
      case 0x8b: push(make_int(signed_le(uint_le(4)))); break;         // LONG4
      case 'G': {                                                      // BINFLOAT: big-endian double
        const std::string_view b = take(8);
        uint64_t bits = 0;
        for (size_t k = 0; k < 8; ++k) bits = (bits << 8) | uint8_t(b[k]);
        double d;
        std::memcpy(&d, &bits, 8);
        push(make(Obj{Obj::kFloat, 0, d, {}, {}}));
        break;
      }
      case 'X': push(make_str(Obj::kStr, take(uint_le(4)))); break;     // BINUNICODE
      case 0x8c: push(make_str(Obj::kStr, take(u8()))); break;          // SHORT_BINUNICODE
      case 0x8d: push(make_str(Obj::kStr, take(uint_le(8)))); break;    // BINUNICODE8
      case 'T': push(make_str(Obj::kStr, take(uint_le(4)))); break;     // BINSTRING (python 2 str)
      case 'U': push(make_str(Obj::kStr, take(u8()))); break;           // SHORT_BINSTRING
      case 'B': push(make_str(Obj::kBytes, take(uint_le(4)))); break;   // BINBYTES
      case 'C': push(make_str(Obj::kBytes, take(u8()))); break;         // SHORT_BINBYTES
      case 0x8e: push(make_str(Obj::kBytes, take(uint_le(8)))); break;  // BINBYTES8
      case ')': push(make_seq(Obj::kTuple, {})); break;                 // EMPTY_TUPLE
      case 't': push(make_seq(Obj::kTuple, pop_mark())); break;         // TUPLE
      case 0x85:
      case 0x86:
      case 0x87: {  // TUPLE1..3
        std::vector<Id> items(size_t(op - 0x84));
        for (size_t k = items.size(); k-- > 0;) items[k] = pop();
        push(make_seq(Obj::kTuple, std::move(items)));
        break;
      }
      case ']': push(make_seq(Obj::kList, {})); break;                  // EMPTY_LIST
      case 'l': push(make_seq(Obj::kList, pop_mark())); break;          // LIST
      case '}': push(make_seq(Obj::kDict, {})); break;                  // EMPTY_DICT
      case 'd': {                                                       // DICT
        std::vector<Id> items = pop_mark();
        if (items.size() % 2) error("DICT with an odd number of items");
        push(make_seq(Obj::kDict, std::move(items)));
        break;
      }
      case 'a': {  // APPEND
        const Id v = pop();
        expect(top(), Obj::kList, "APPEND target").items.push_back(v);
        break;
      }
      case 'e': {  // APPENDS
        std::vector<Id> items = pop_mark();
        auto& list = expect(top(), Obj::kList, "APPENDS target").items;
        list.insert(list.end(), items.begin(), items.end());
        break;
      }
      case 's': {  // SETITEM
        const Id v = pop(), k = pop();
        auto& dict = expect(top(), Obj::kDict, "SETITEM target").items;
        dict.push_back(k);
        dict.push_back(v);
        break;
      }
      case 'u': {  // SETITEMS
        std::vector<Id> items = pop_mark();
        if (items.size() % 2) error("SETITEMS with an odd number of items");
        auto& dict = expect(top(), Obj::kDict, "SETITEMS target").items;
        dict.insert(dict.end(), items.begin(), items.end());
        break;
      }
      case 'q': memo_put(u8()); break;                       // BINPUT
      case 'r': memo_put(uint_le(4)); break;                 // LONG_BINPUT
      case 0x94: memo_put(memo_.size()); break;              // MEMOIZE
      case 'h': memo_get(u8()); break;                       // BINGET
      case 'j': memo_get(uint_le(4)); break;                 // LONG_BINGET
      case 'c': {                                            // GLOBAL
        const std::string module(line());
        const std::string name(line());
        push(global(module, name));
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        const Id name = pop(), module = pop();
        const std::string& m = expect(module, Obj::kStr, "STACK_GLOBAL module").s;
        const std::string& n = expect(name, Obj::kStr, "STACK_GLOBAL name").s;
        if (m.size() > limits_.max_name_bytes || n.size() > limits_.max_name_bytes)
          error("STACK_GLOBAL names a global of {} + {} bytes, more than the {} allowed", m.size(), n.size(),
                limits_.max_name_bytes);
        push(global(m, n));
        break;
      }
      case 'Q': push(persistent_load(pop())); break;  // BINPERSID
      case 'R': {                                     // REDUCE
        const Id args = pop(), callable = pop();
        push(reduce(callable, args));
        break;
      }
      case 'b': {  // BUILD: only OrderedDict attributes (state_dict()._metadata), which we ignore
        pop();
        const Obj& target = at(top());
        if (target.kind != Obj::kDict) error("BUILD on a {} (only a dict's attributes such as _metadata are accepted)", kind_name(target.kind));
        break;
      }
      default:
        if (op >= 0x20 && op < 0x7f) error("unsupported pickle opcode '{}' (0x{:02x})", char(op), op);
        error("unsupported pickle opcode 0x{:02x}", op);
    }
  }

  Id global(const std::string& module, const std::string& name) {
    const std::string full = module + "." + name;
    if (full == kOrderedDict || full == kRebuildTensor || full == kRebuildParameter || full == kRebuildParameterWithState)
      return make_str(Obj::kGlobal, full);
    if (module == "torch") {
      for (const auto& info : kStorageTypes)
        if (name == info.name) return make_str(Obj::kGlobal, full);
      if (name.ends_with("Storage"))
        error("unsupported storage type 'torch.{}' (supported: {})", name, supported_storage_names());
    }
    error("pickle references forbidden global '{}' (a state dict needs only {}, {}, {} and torch.<T>Storage types)",
          full, kOrderedDict, kRebuildTensor, kRebuildParameter);
  }

  // ('storage', torch.<T>Storage, key, location, numel)
  Id persistent_load(Id pid_id) {
    const Obj& pid = expect(pid_id, Obj::kTuple, "persistent id");
    if (pid.items.size() != 5) error("persistent id: expected 5 items, got {}", pid.items.size());
    if (at(pid.items[0]).kind != Obj::kStr || at(pid.items[0]).s != "storage")
      error("persistent id: expected the tag 'storage'");
    const Obj& type = expect(pid.items[1], Obj::kGlobal, "persistent id storage type");
    const StorageTypeInfo* info = nullptr;
    for (const auto& candidate : kStorageTypes)
      if (type.s == "torch." + std::string(candidate.name)) info = &candidate;
    if (!info) error("persistent id: '{}' is not a storage type", type.s);
    const std::string& key = expect(pid.items[2], Obj::kStr, "persistent id key").s;
    if (key.size() > limits_.max_name_bytes)
      error("persistent id: a storage key of {} bytes, more than the {} allowed", key.size(), limits_.max_name_bytes);
    expect(pid.items[3], Obj::kStr, "persistent id location");
    const int64_t numel = expect_int(pid.items[4], "persistent id numel");
    if (numel < 0) error("storage '{}' has a negative size {}", key, numel);
    if (storages_.size() >= limits_.max_tensors) error("more than {} storages", limits_.max_tensors);
    storages_.push_back({key, info->type, numel});
    return make(Obj{Obj::kStorage, int64_t(storages_.size() - 1), 0, {}, {}});
  }

  Id reduce(Id callable_id, Id args_id) {
    const Obj& callable = at(callable_id);
    if (callable.kind != Obj::kGlobal) error("REDUCE on a {} (only allowed globals may be called)", kind_name(callable.kind));
    const std::vector<Id> args = expect(args_id, Obj::kTuple, "REDUCE arguments").items;
    const std::string& fn = callable.s;
    if (fn == kOrderedDict) {
      if (!args.empty()) error("collections.OrderedDict called with {} arguments, expected none", args.size());
      return make_seq(Obj::kDict, {});
    }
    if (fn == kRebuildTensor) return rebuild_tensor(args);
    if (fn == kRebuildParameter || fn == kRebuildParameterWithState) {
      const size_t n = fn == kRebuildParameter ? 3 : 4;
      if (args.size() != n) error("{} takes {} arguments, got {}", fn, n, args.size());
      expect(args[0], Obj::kTensor, "parameter data");
      return args[0];
    }
    error("REDUCE on '{}' is not allowed (only {}, {} and {} may be called)", fn, kOrderedDict, kRebuildTensor,
          kRebuildParameter);
  }

  // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
  Id rebuild_tensor(const std::vector<Id>& args) {
    if (args.size() != 6 && args.size() != 7) error("{} takes 6 or 7 arguments, got {}", kRebuildTensor, args.size());
    if (tensors_.size() >= limits_.max_tensors) error("more than {} tensors", limits_.max_tensors);
    const StorageRec& st = storages_[size_t(expect(args[0], Obj::kStorage, "tensor storage").i)];
    TensorRef t;
    t.storage_key = st.key;
    t.type = st.type;
    t.storage_numel = st.numel;
    t.offset = expect_int(args[1], "tensor storage offset");
    const auto& size = expect(args[2], Obj::kTuple, "tensor size").items;
    const auto& stride = expect(args[3], Obj::kTuple, "tensor stride").items;
    if (size.size() != stride.size()) error("tensor size has {} dims but stride has {}", size.size(), stride.size());
    if (size.size() > limits_.max_rank) error("tensor rank {} exceeds {}", size.size(), limits_.max_rank);
    for (size_t d = 0; d < size.size(); ++d) {
      t.sizes.push_back(expect_int(size[d], "tensor size"));
      t.strides.push_back(expect_int(stride[d], "tensor stride"));
    }
    tensors_.push_back(std::move(t));
    return make(Obj{Obj::kTensor, int64_t(tensors_.size() - 1), 0, {}, {}});
  }

  std::vector<std::pair<std::string, TensorRef>> result(Id root) {
    const Obj& dict = at(root);
    if (dict.kind != Obj::kDict) error("the pickle holds a {}, not a state dict", kind_name(dict.kind));
    std::vector<std::pair<std::string, TensorRef>> out;
    std::unordered_map<std::string, size_t> index;
    for (size_t k = 0; k + 1 < dict.items.size(); k += 2) {
      const Obj& key = at(dict.items[k]);
      const Obj& value = at(dict.items[k + 1]);
      if (key.kind != Obj::kStr) error("state dict key is a {}, not a str", kind_name(key.kind));
      if (value.kind != Obj::kTensor)
        error("state dict entry '{}' is a {}, not a tensor (is this a training checkpoint rather than a state dict?)",
              shown(key.s), kind_name(value.kind));
      const TensorRef& t = tensors_[size_t(value.i)];
      const auto [it, fresh] = index.emplace(key.s, out.size());
      if (fresh) {
        if (out.size() >= limits_.max_tensors) error("the state dict has more than {} entries", limits_.max_tensors);
        out.emplace_back(key.s, t);
      } else {
        out[it->second].second = t;  // a repeated key: the last one wins, as in Python
      }
    }
    return out;
  }

  std::string_view data_;
  const std::string& origin_;
  UnpickleLimits limits_;
  size_t pos_ = 0, op_pos_ = 0;
  std::deque<Obj> objs_;
  std::vector<Id> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Id> memo_;
  std::vector<StorageRec> storages_;
  std::vector<TensorRef> tensors_;
};

}  // namespace

size_t storage_element_size(StorageType t) {
  for (const auto& info : kStorageTypes)
    if (info.type == t) return info.size;
  return 0;
}

std::string_view storage_type_name(StorageType t) {
  for (const auto& info : kStorageTypes)
    if (info.type == t) return info.name;
  return "?";
}

std::vector<std::pair<std::string, TensorRef>> unpickle_state_dict(std::string_view pickle, const std::string& origin,
                                                                   const UnpickleLimits& limits) {
  return Unpickler(pickle, origin, limits).run();
}

}  // namespace wenet_rt
