// Hostile checkpoints: pickles and zips built to run code, escape the archive or exhaust memory
// the way a malicious final.pt would under torch.load. Every one must be refused with an Error
// whose text says why, nothing may run (the payloads would create a marker file), nothing may
// crash. Each file goes through read_checkpoint (from disk) and read_checkpoint_bytes (in memory).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "model/checkpoint.h"
#include "model/checkpoint_builder.h"
#include "model/pickle.h"

namespace wenet_rt {
namespace {

namespace fs = std::filesystem;
using test::PickleWriter;
using test::TempDir;

std::string floats(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) {
    const float f = float(i);
    s.append(reinterpret_cast<const char*>(&f), 4);
  }
  return s;
}

class Hostile : public ::testing::Test {
 protected:
  // The shell command every payload carries: if anything ever ran it, the marker would appear.
  std::string payload() const { return "touch " + marker(); }
  std::string marker() const { return dir_.file("pwned"); }

  // Expects `fn` to throw a wenet_rt::Error containing every one of `parts`, and no marker.
  template <typename Fn>
  void expect_refused(Fn&& fn, const std::vector<std::string>& parts) {
    try {
      fn();
      ADD_FAILURE() << "accepted; expected an error mentioning '" << parts.front() << "'";
    } catch (const Error& e) {
      const std::string what = e.what();
      for (const auto& p : parts) EXPECT_NE(what.find(p), std::string::npos) << "message: " << what << "\nmissing: " << p;
    }
    EXPECT_FALSE(fs::exists(marker())) << "a payload ran";
  }

  // A checkpoint of `pickle` (plus storage "0" of 4 floats and any `extra` records), read from
  // disk and from memory; both must refuse it with `parts`.
  void expect_checkpoint_refused(const std::string& pickle, const std::vector<std::string>& parts,
                                 std::map<std::string, std::string> extra = {}) {
    extra.emplace("archive/data.pkl", pickle);
    extra.emplace("archive/byteorder", "little");
    extra.emplace("archive/data/0", floats(4));
    expect_zip_refused(extra, parts);
  }

  void expect_zip_refused(const std::map<std::string, std::string>& records, const std::vector<std::string>& parts) {
    const std::string path = dir_.file("hostile.pt");
    test::write_zip(path, records);
    expect_file_refused(path, parts);
  }

  void expect_file_refused(const std::string& path, const std::vector<std::string>& parts) {
    expect_refused([&] { read_checkpoint(path); }, parts);
    const std::string bytes = test::read_file(path);
    expect_refused([&] { read_checkpoint_bytes(bytes, "hostile.pt"); }, parts);
  }

  // A state dict {"w": <value the writer `value` emits>}.
  template <typename Value>
  std::string state_dict_with(Value&& value) {
    PickleWriter w;
    w.proto().global("collections", "OrderedDict").empty_tuple().reduce().str("w");
    value(w);
    return w.setitem().stop().bytes();
  }

  // A state dict holding one tensor of storage "0" with the given view.
  std::string tensor_pickle(const std::string& key, int64_t numel, int64_t offset, const Shape& size,
                            const Shape& stride, const std::string& type = "FloatStorage") {
    return state_dict_with([&](PickleWriter& w) { w.tensor(type, key, numel, offset, size, stride); });
  }

  TempDir dir_;
};

// The fuzzers drive read_checkpoint_bytes; it must be the same reader as read_checkpoint.
TEST(InMemoryReader, AgreesWithTheFileReader) {
  const std::string data = WENET_TEST_DATA;
  for (const std::string& path : {data + "/wenet-goldens/u2pp_tiny/final.pt", data + "/checkpoints/dtypes.pt",
                                  data + "/checkpoints/views.pt", data + "/checkpoints/parameter_protocol4.pt"}) {
    SCOPED_TRACE(path);
    const auto from_file = read_checkpoint(path);
    const auto from_bytes = read_checkpoint_bytes(test::read_file(path), path);
    ASSERT_EQ(from_file.size(), from_bytes.size());
    for (const auto& [name, t] : from_file) {
      const HostTensor& u = from_bytes.at(name);
      ASSERT_EQ(t.dtype(), u.dtype()) << name;
      ASSERT_EQ(t.shape(), u.shape()) << name;
      if (t.nbytes() > 0) EXPECT_EQ(std::memcmp(t.raw(), u.raw(), t.nbytes()), 0) << name;
    }
  }
  try {
    read_checkpoint_bytes("not a zip", "memory.pt");
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("checkpoint memory.pt: not a readable zip archive"), std::string::npos) << e.what();
  }
}

// ---- globals that run code under torch.load(weights_only=False)

struct Callable {
  const char* module;
  const char* name;
};

const Callable kDangerous[] = {
    {"os", "system"},
    {"posix", "system"},
    {"nt", "system"},
    {"os", "popen"},
    {"os", "execv"},
    {"builtins", "eval"},
    {"builtins", "exec"},
    {"builtins", "compile"},
    {"builtins", "getattr"},
    {"builtins", "__import__"},
    {"builtins", "open"},
    {"__builtin__", "eval"},
    {"subprocess", "Popen"},
    {"subprocess", "run"},
    {"subprocess", "check_output"},
    {"subprocess", "call"},
    {"runpy", "_run_code"},
    {"pickle", "loads"},
    {"_pickle", "loads"},
    {"shutil", "rmtree"},
    {"webbrowser", "open"},
    {"socket", "create_connection"},
    {"ctypes", "CDLL"},
    {"importlib", "import_module"},
    {"numpy.core.multiarray", "_reconstruct"},
    {"numpy", "load"},
    // torch.load tricks: entry points that load, rebuild or call what they are given.
    {"torch", "load"},
    {"torch.serialization", "load"},
    {"torch.jit", "load"},
    {"torch.storage", "_load_from_bytes"},
    {"torch._tensor", "_rebuild_from_type_v2"},
    {"torch._utils", "_rebuild_wrapper_subclass"},
    {"torch._utils", "_rebuild_device_tensor_from_numpy"},
    {"torch._utils", "_rebuild_tensor"},
    {"torch._utils", "_rebuild_qtensor"},
    {"torch._ops", "ops"},
    {"torch", "Tensor"},
    {"torch.nn.modules.module", "Module"},
    {"torch._C", "_set_grad_enabled"},
};

TEST_F(Hostile, ReduceOnDangerousCallables) {
  for (const Callable& c : kDangerous) {
    SCOPED_TRACE(std::string(c.module) + "." + c.name);
    const std::string full = std::string(c.module) + "." + c.name;
    // As the whole pickle, as a state dict value, and pushed then dropped before a valid dict:
    // a forbidden global is refused where it appears, whether or not it would be used.
    PickleWriter whole;
    whole.proto().global(c.module, c.name).str(payload()).op(0x85).reduce().stop();
    expect_checkpoint_refused(whole.bytes(), {"checkpoint ", "forbidden global '" + full + "'"});
    expect_checkpoint_refused(state_dict_with([&](PickleWriter& w) {
                                w.global(c.module, c.name).str(payload()).op(0x85).reduce();
                              }),
                              {"forbidden global '" + full + "'"});
    PickleWriter dropped;
    dropped.proto().global(c.module, c.name).op('0').empty_dict().stop();
    expect_checkpoint_refused(dropped.bytes(), {"forbidden global '" + full + "'"});
  }
}

TEST_F(Hostile, PayloadsAreLiveForPython) {
  // The test of the tests: Python's own unpickler does run the os.system payload, so the marker
  // checks above would notice if the reader ever did the same.
  if (std::system("command -v python3 >/dev/null 2>&1") != 0) GTEST_SKIP() << "python3 not installed";
  PickleWriter w;
  w.proto().global("os", "system").str(payload()).op(0x85).reduce().stop();
  const std::string pkl = dir_.file("payload.pkl");
  test::write_file(pkl, w.bytes());
  ASSERT_EQ(std::system(("python3 -c \"import pickle,sys; pickle.loads(open(sys.argv[1],'rb').read())\" " + pkl).c_str()), 0);
  ASSERT_TRUE(fs::exists(marker())) << "python did not run the payload";
  fs::remove(marker());
  expect_checkpoint_refused(w.bytes(), {"forbidden global 'os.system'"});
}

TEST_F(Hostile, ReduceOnValuesThatAreNotAllowedCallables) {
  const auto reduce_on = [&](auto push_callable, const std::string& what) {
    PickleWriter w;
    w.proto();
    push_callable(w);
    w.str(payload()).op(0x85).reduce().stop();
    expect_checkpoint_refused(w.bytes(), {what});
  };
  reduce_on([](PickleWriter& w) { w.str("os.system"); }, "REDUCE on a str (only allowed globals may be called)");
  reduce_on([](PickleWriter& w) { w.op('B').raw(std::string("\x09\x00\x00\x00os.system", 13)); }, "REDUCE on a bytes");
  reduce_on([](PickleWriter& w) { w.integer(7); }, "REDUCE on a int");
  reduce_on([](PickleWriter& w) { w.op('N'); }, "REDUCE on a None");
  reduce_on([](PickleWriter& w) { w.empty_dict(); }, "REDUCE on a dict");
  reduce_on([](PickleWriter& w) { w.mark().str("os").str("system").tuple(); }, "REDUCE on a tuple");
  // Allowed globals that are types, not functions wenet-rt interprets.
  reduce_on([](PickleWriter& w) { w.global("torch", "FloatStorage"); }, "REDUCE on 'torch.FloatStorage' is not allowed");
  reduce_on([](PickleWriter& w) { w.global("torch", "HalfStorage"); }, "REDUCE on 'torch.HalfStorage' is not allowed");
  // Allowed functions with arguments they do not take.
  reduce_on([](PickleWriter& w) { w.global("collections", "OrderedDict"); },
            "collections.OrderedDict called with 1 arguments, expected none");
  reduce_on([](PickleWriter& w) { w.global("torch._utils", "_rebuild_tensor_v2"); }, "takes 6 or 7 arguments, got 1");
  reduce_on([](PickleWriter& w) { w.global("torch._utils", "_rebuild_parameter"); }, "takes 3 arguments, got 1");
  // REDUCE whose arguments are not a tuple.
  PickleWriter w;
  w.proto().global("collections", "OrderedDict").str(payload()).reduce().stop();
  expect_checkpoint_refused(w.bytes(), {"REDUCE arguments: expected a tuple, got a str"});
}

// Python's pickle calls the argument of a rebuild function if it is callable; wenet-rt checks
// each argument's kind instead.
TEST_F(Hostile, RebuildFunctionsGivenForeignArguments) {
  expect_checkpoint_refused(state_dict_with([&](PickleWriter& w) {
                              w.global("torch._utils", "_rebuild_parameter").mark();
                              w.global("torch", "FloatStorage").newfalse().global("collections", "OrderedDict");
                              w.tuple().reduce();
                            }),
                            {"parameter data: expected a tensor, got a global"});
  expect_checkpoint_refused(state_dict_with([&](PickleWriter& w) {
                              w.global("torch._utils", "_rebuild_tensor_v2").mark();
                              w.str(payload()).integer(0).mark().integer(1).tuple().mark().integer(1).tuple();
                              w.newfalse().empty_dict().tuple().reduce();
                            }),
                            {"tensor storage: expected a storage, got a str"});
  expect_checkpoint_refused(state_dict_with([&](PickleWriter& w) {
                              w.global("torch._utils", "_rebuild_tensor_v2").mark();
                              w.mark().str("storage").global("torch", "FloatStorage").str("0").str("cpu").integer(4).tuple().persid();
                              w.integer(0).str("4").mark().integer(1).tuple().newfalse().empty_dict().tuple().reduce();
                            }),
                            {"tensor size: expected a tuple, got a str"});
}

// ---- GLOBAL / STACK_GLOBAL with odd names

TEST_F(Hostile, GlobalWithOddModuleNames) {
  const auto global_raw = [&](const std::string& record, const std::vector<std::string>& parts) {
    PickleWriter w;
    w.proto().op('c').raw(record).str(payload()).op(0x85).reduce().stop();
    expect_checkpoint_refused(w.bytes(), parts);
  };
  global_raw("\nsystem\n", {"forbidden global '.system'"});
  global_raw("os\n\n", {"forbidden global 'os.'"});
  global_raw("\n\n", {"forbidden global '.'"});
  global_raw("collections.OrderedDict\n\n", {"forbidden global 'collections.OrderedDict.'"});
  global_raw("collections\r\nOrderedDict\r\n", {"forbidden global 'collections\r.OrderedDict\r'"});
  global_raw(std::string("collections\0x\nOrderedDict\n", 26), {"forbidden global 'collections"});
  global_raw("collections \nOrderedDict\n", {"forbidden global 'collections .OrderedDict'"});
  global_raw("coll\xc3\xa9" "ctions\nOrderedDict\n", {"forbidden global"});
  global_raw("torch\nFloatStorage.__init__\n", {"forbidden global 'torch.FloatStorage.__init__'"});
  global_raw("torch\nEvilStorage\n", {"unsupported storage type 'torch.EvilStorage'"});
  global_raw(std::string(5000, 'a') + "\nsystem\n", {"malformed GLOBAL record"});
  global_raw("os\n" + std::string(5000, 'b') + "\n", {"malformed GLOBAL record"});
  global_raw("os\nsystem", {"malformed GLOBAL record"});  // no newline before the end
  global_raw("os", {"malformed GLOBAL record"});
}

TEST_F(Hostile, StackGlobal) {
  const auto stack_global = [&](auto push_names, const std::vector<std::string>& parts) {
    PickleWriter w;
    w.op(0x80).byte(4);
    push_names(w);
    w.op(0x93).str(payload()).op(0x85).reduce().stop();
    expect_checkpoint_refused(w.bytes(), parts);
  };
  stack_global([](PickleWriter& w) { w.str("os").str("system"); }, {"forbidden global 'os.system'"});
  stack_global([](PickleWriter& w) { w.str("builtins").str("eval"); }, {"forbidden global 'builtins.eval'"});
  stack_global([](PickleWriter& w) { w.str("subprocess").str("Popen"); }, {"forbidden global 'subprocess.Popen'"});
  stack_global([](PickleWriter& w) { w.str("").str(""); }, {"forbidden global '.'"});
  stack_global([](PickleWriter& w) { w.str("collections\nOrderedDict").str("x"); }, {"forbidden global 'collections"});
  stack_global([](PickleWriter& w) { w.str(std::string(100000, 'm')).str("system"); },
               {"STACK_GLOBAL names a global of 100000 + 6 bytes"});
  stack_global([](PickleWriter& w) { w.integer(1).str("system"); }, {"STACK_GLOBAL module: expected a str, got a int"});
  stack_global([](PickleWriter& w) { w.str("os").global("collections", "OrderedDict"); },
               {"STACK_GLOBAL name: expected a str, got a global"});
  stack_global([](PickleWriter& w) { w.str("os"); }, {"stack underflow"});
}

// ---- opcodes that build arbitrary objects

TEST_F(Hostile, ObjectBuildingOpcodes) {
  const auto refused = [&](const std::string& body, const std::string& what) {
    expect_checkpoint_refused(std::string("\x80\x02", 2) + body + ".", {what});
  };
  const std::string cmd = "X" + std::string(1, char(payload().size())) + std::string(3, '\0') + payload();
  refused("(" + cmd + "ios\nsystem\n", "unsupported pickle opcode 'i' (0x69)");                    // INST
  refused("(cos\nsystem\n" + cmd + "o", "forbidden global 'os.system'");                           // OBJ
  refused("(ccollections\nOrderedDict\n" + cmd + "o", "unsupported pickle opcode 'o' (0x6f)");     // OBJ, allowed class
  refused("ccollections\nOrderedDict\n)\x81", "unsupported pickle opcode 0x81");                    // NEWOBJ
  refused("ccollections\nOrderedDict\n)}\x92", "unsupported pickle opcode 0x92");                   // NEWOBJ_EX
  refused("\x82\x01", "unsupported pickle opcode 0x82");                                            // EXT1
  refused("\x83\x01\x00", "unsupported pickle opcode 0x83");                                        // EXT2
  refused("\x84\x01\x00\x00\x00", "unsupported pickle opcode 0x84");                                // EXT4
  refused("P0\n", "unsupported pickle opcode 'P'");                                                 // PERSID (text)
  refused("S'touch x'\n", "unsupported pickle opcode 'S'");                                         // STRING
  refused("Vx\n", "unsupported pickle opcode 'V'");                                                 // UNICODE
  refused("I1\n", "unsupported pickle opcode 'I'");                                                 // INT
  refused("L1L\n", "unsupported pickle opcode 'L'");                                                // LONG
  refused("F1.0\n", "unsupported pickle opcode 'F'");                                               // FLOAT
  refused("p0\n", "unsupported pickle opcode 'p'");                                                 // PUT
  refused("g0\n", "unsupported pickle opcode 'g'");                                                 // GET
  refused("\x8f", "unsupported pickle opcode 0x8f");                                                // EMPTY_SET
  refused("(\x91", "unsupported pickle opcode 0x91");                                               // FROZENSET
  refused("\x96\x00\x00\x00\x00\x00\x00\x00\x00", "unsupported pickle opcode 0x96");                // BYTEARRAY8
  refused("\x97", "unsupported pickle opcode 0x97");                                                // NEXT_BUFFER
  refused("\x98", "unsupported pickle opcode 0x98");                                                // READONLY_BUFFER
  refused(std::string("\x00", 1), "unsupported pickle opcode 0x00");
  refused("\xff", "unsupported pickle opcode 0xff");
  expect_checkpoint_refused(std::string("\x80\x06.", 3), {"pickle protocol 6 is not supported"});
}

// ---- BUILD (__setstate__ in Python) on anything but a dict

TEST_F(Hostile, BuildOnForeignObjects) {
  const auto build_on = [&](auto push_target, const std::string& what) {
    PickleWriter w;
    w.proto();
    push_target(w);
    w.str(payload()).build().stop();
    expect_checkpoint_refused(w.bytes(), {what});
  };
  build_on([](PickleWriter& w) { w.global("collections", "OrderedDict"); }, "BUILD on a global");
  build_on([](PickleWriter& w) { w.global("torch", "FloatStorage"); }, "BUILD on a global");
  build_on([](PickleWriter& w) { w.op(']'); }, "BUILD on a list");
  build_on([](PickleWriter& w) { w.str("x"); }, "BUILD on a str");
  build_on([](PickleWriter& w) { w.op('N'); }, "BUILD on a None");
  build_on([](PickleWriter& w) { w.empty_tuple(); }, "BUILD on a tuple");
  build_on([](PickleWriter& w) {
    w.mark().str("storage").global("torch", "FloatStorage").str("0").str("cpu").integer(4).tuple().persid();
  }, "BUILD on a storage");
  build_on([](PickleWriter& w) { w.tensor("FloatStorage", "0", 4, 0, {4}, {1}); }, "BUILD on a tensor");
  // BUILD on a dict is how torch attaches _metadata; its state is ignored, never applied. A
  // forbidden global inside that state is still refused.
  PickleWriter meta;
  meta.proto().global("collections", "OrderedDict").empty_tuple().reduce();
  meta.empty_dict().str("_metadata").global("os", "system").str(payload()).op(0x85).reduce().setitem().build().stop();
  expect_checkpoint_refused(meta.bytes(), {"forbidden global 'os.system'"});
}

// ---- persistent ids: where the tensor bytes come from

TEST_F(Hostile, PersistentIdsPointingOutsideTheArchive) {
  for (const std::string& key : std::vector<std::string>{"../../../../etc/passwd", "/etc/passwd", "..", "../data.pkl", "data/0", "0/../0",
                                "..\\..\\windows", "C:\\x", "0 ", " 0", "0\n", std::string("0\0evil", 6), "", "~",
                                "$HOME", "0;touch x", std::string(300, '7')}) {
    SCOPED_TRACE(key);
    expect_checkpoint_refused(tensor_pickle(key, 4, 0, {4}, {1}), {"invalid storage key"});
  }
  // A well-formed key whose record is absent (or is another kind of record) is missing.
  expect_checkpoint_refused(tensor_pickle("byteorder", 4, 0, {4}, {1}), {"storage 'byteorder' of tensor 'w' is missing"});
  expect_checkpoint_refused(tensor_pickle("7", 4, 0, {4}, {1}), {"storage '7' of tensor 'w' is missing"});
  // The storage type must be one of the storage globals.
  expect_checkpoint_refused(state_dict_with([&](PickleWriter& w) {
                              w.global("torch._utils", "_rebuild_tensor_v2").mark();
                              w.mark().str("storage").global("collections", "OrderedDict").str("0").str("cpu").integer(4).tuple().persid();
                            }),
                            {"persistent id: 'collections.OrderedDict' is not a storage type"});
  expect_checkpoint_refused(state_dict_with([&](PickleWriter& w) {
                              w.mark().str("storage").str("FloatStorage").str("0").str("cpu").integer(4).tuple().persid();
                            }),
                            {"persistent id storage type: expected a global, got a str"});
  // Not a storage id at all.
  expect_checkpoint_refused(state_dict_with([&](PickleWriter& w) {
                              w.mark().str("module").global("torch", "FloatStorage").str("0").str("cpu").integer(4).tuple().persid();
                            }),
                            {"persistent id: expected the tag 'storage'"});
  expect_checkpoint_refused(state_dict_with([&](PickleWriter& w) { w.str(payload()).persid(); }),
                            {"persistent id: expected a tuple, got a str"});
  expect_checkpoint_refused(state_dict_with([&](PickleWriter& w) { w.mark().str("storage").tuple().persid(); }),
                            {"persistent id: expected 5 items, got 1"});
  expect_checkpoint_refused(state_dict_with([&](PickleWriter& w) {
                              w.mark().str("storage").global("torch", "FloatStorage").str("0").str("cpu").integer(-4).tuple().persid();
                            }),
                            {"storage '0' has a negative size -4"});
}

TEST_F(Hostile, ZipRecordsNamedToEscape) {
  // Zip-slip names are never extracted or followed: only <prefix>/data/<key> records are read.
  const fs::path outside = fs::path(dir_.path()) / "escaped";
  expect_zip_refused({{"archive/data.pkl", tensor_pickle("../../escaped", 4, 0, {4}, {1})},
                      {"archive/data/../../escaped", floats(4)},
                      {"../../escaped", floats(4)}},
                     {"invalid storage key"});
  EXPECT_FALSE(fs::exists(outside));
  expect_zip_refused({{"archive/data.pkl", "."}, {"other/data.pkl", "."}}, {"has 2 data.pkl records"});
  expect_zip_refused({{"/data.pkl", "."}}, {"no <prefix>/data.pkl record"});
  expect_zip_refused({{"archive/data.pkl", "."}, {"archive/code/__torch__.py", "import os"}}, {"TorchScript archive"});
}

// ---- views: overlapping, overflowing, out of bounds, oversized

TEST_F(Hostile, OverlappingAndOverflowingViews) {
  const auto view = [&](int64_t numel, int64_t offset, const Shape& size, const Shape& stride, const std::string& what) {
    const std::string storage = floats(int(std::min<int64_t>(numel, 64)));
    const std::string pkl = tensor_pickle("0", numel, offset, size, stride);
    expect_zip_refused({{"archive/data.pkl", pkl}, {"archive/data/0", storage}}, {what});
  };
  constexpr int64_t kMax = INT64_MAX;
  view(9, 0, {3, 3}, {1, 1}, "overlaps itself");         // rows share elements
  view(4, 0, {2}, {0}, "overlaps itself");               // stride 0: an expanded view
  view(8, 0, {2, 2, 2}, {2, 1, 1}, "overlaps itself");
  view(1, 0, {1000000000}, {0}, "repeating views are not supported");
  view(4, 0, {kMax, 2}, {1, 1}, "impossibly large");
  view(4, 0, {int64_t(1) << 32, int64_t(1) << 32}, {1, 1}, "impossibly large");
  view(4, 0, {3, 1}, {kMax, 1}, "view overflows");
  view(4, 1, {2}, {kMax}, "view overflows");
  view(4, kMax, {1}, {1}, "starts at element");
  view(4, -1, {1}, {1}, "starts at element -1");
  view(4, 0, {-1}, {1}, "negative size or stride");
  view(4, 3, {2}, {-1}, "negative size or stride");
  view(4, 0, {5}, {1}, "reaches element 4");             // one past the storage
  view(4, 2, {2, 2}, {2, 1}, "view out of bounds");
  view(4, 4, {1}, {1}, "view out of bounds");
  std::vector<int64_t> deep(17, 1);
  view(4, 0, deep, deep, "tensor rank 17 exceeds 16");
}

TEST_F(Hostile, StorageBytesShorterThanDeclared) {
  const std::string pkl = tensor_pickle("0", 8, 0, {8}, {1});
  expect_zip_refused({{"archive/data.pkl", pkl}, {"archive/data/0", floats(4)}},
                     {"should hold 8 x FloatStorage = 32 bytes, the record has 16"});
  expect_zip_refused({{"archive/data.pkl", pkl}, {"archive/data/0", "ab"}}, {"the record has 2"});
  // Two tensors sharing one storage under different types: the record matches only one.
  PickleWriter w;
  w.proto().global("collections", "OrderedDict").empty_tuple().reduce().mark();
  w.str("a").tensor("FloatStorage", "0", 4, 0, {4}, {1});
  w.str("b").tensor("DoubleStorage", "0", 4, 0, {4}, {1});
  w.setitems().stop();
  expect_zip_refused({{"archive/data.pkl", w.bytes()}, {"archive/data/0", floats(4)}},
                     {"storage '0' of tensor 'b' should hold 32 bytes as DoubleStorage, the record has 16"});
}

TEST_F(Hostile, HugeClaimedSizes) {
  expect_checkpoint_refused(tensor_pickle("0", int64_t(1) << 62, 0, {1}, {1}), {"declares an impossible size"});
  expect_checkpoint_refused(tensor_pickle("0", int64_t(1) << 40, 0, {1}, {1}), {"should hold 1099511627776 x FloatStorage"});
  expect_checkpoint_refused(tensor_pickle("0", 4, 0, {int64_t(1) << 40}, {1}), {"reaches element"});
  // Integers that do not fit in 64 bits.
  PickleWriter w;
  w.proto().op(0x8a).byte(9).raw(std::string(9, '\x7f')).stop();
  expect_checkpoint_refused(w.bytes(), {"integer of 9 bytes is too large"});
  // Length fields claiming more bytes than the pickle holds.
  for (const std::string& op : {std::string("X\xff\xff\xff\xff"), std::string("\x8d\xff\xff\xff\xff\xff\xff\xff\xff"),
                                std::string("B\xff\xff\xff\x7f"), std::string("\x8e\x00\x00\x00\x00\x00\x00\x00\x80", 9)}) {
    expect_checkpoint_refused(std::string("\x80\x02", 2) + op, {"runs past the end of data.pkl"});
  }
  expect_checkpoint_refused(std::string("\x80\x02\x8b\xff\xff\xff\xff", 7), {"integer of 4294967295 bytes is too large"});
}

// Patches the sizes libzip reads for `name` (local and central headers) to `size`.
void patch_zip_sizes(std::string& zip, const std::string& name, uint32_t size) {
  const auto put32 = [&](size_t at, uint32_t v) {
    for (int k = 0; k < 4; ++k) zip[at + size_t(k)] = char(v >> (8 * k));
  };
  for (const auto& [sig, name_at, size_at] : {std::tuple{std::string("PK\x03\x04"), 30, 22}, std::tuple{std::string("PK\x01\x02"), 46, 24}}) {
    for (size_t at = zip.find(sig); at != std::string::npos; at = zip.find(sig, at + 1)) {
      if (zip.compare(at + size_t(name_at), name.size(), name) == 0) put32(at + size_t(size_at), size);
    }
  }
}

TEST_F(Hostile, ZipHeadersClaimingHugeRecords) {
  const std::string path = dir_.file("hostile.pt");
  {  // data.pkl claiming 2 GiB
    test::write_zip(path, {{"archive/data.pkl", "."}, {"archive/data/0", floats(4)}});
    std::string bytes = test::read_file(path);
    patch_zip_sizes(bytes, "archive/data.pkl", 0x7fffffff);
    test::write_file(path, bytes);
    expect_file_refused(path, {"checkpoint "});
  }
  {  // a storage record claiming 1 GiB from 16 stored bytes, with a pickle that agrees
    test::write_zip(path, {{"archive/data.pkl", tensor_pickle("0", 1 << 28, 0, {1}, {1})}, {"archive/data/0", floats(4)}});
    std::string bytes = test::read_file(path);
    patch_zip_sizes(bytes, "archive/data/0", 1u << 30);
    test::write_file(path, bytes);
    expect_file_refused(path, {"checkpoint "});
  }
}

// ---- the unpickler's own resource limits, on bytes alone

TEST_F(Hostile, UnpicklerResourceLimits) {
  const auto refused = [&](const std::string& pkl, const std::string& what, const UnpickleLimits& limits = {}) {
    expect_refused([&] { unpickle_state_dict(pkl, "checkpoint t", limits); }, {what});
  };
  const std::string proto("\x80\x02", 2);
  // Memo entries: one per LONG_BINPUT, each under a fresh index.
  std::string memo = proto + "N";
  for (uint32_t i = 0; i < 2000; ++i) memo += "r" + std::string(reinterpret_cast<const char*>(&i), 4);
  UnpickleLimits small;
  small.max_memo_entries = 1000;
  refused(memo + ".", "more than 1000 memo entries", small);
  // Tensors: one REDUCE of memoized callable and arguments (five bytes) each.
  PickleWriter t;
  t.proto().global("torch._utils", "_rebuild_tensor_v2").op('q').byte(0);
  t.mark().mark().str("storage").global("torch", "FloatStorage").str("0").str("cpu").integer(4).tuple().persid();
  t.integer(0).mark().integer(4).tuple().mark().integer(1).tuple().newfalse().empty_dict().tuple().op('q').byte(1);
  std::string tensors = t.bytes();
  for (int i = 0; i < 300; ++i) tensors += std::string("h\x00h\x01R0", 6);
  small.max_tensors = 200;
  refused(tensors + ".", "more than 200 tensors", small);
  // A long storage key, copied into every tensor, is refused before it is copied.
  PickleWriter k;
  k.proto().mark().str("storage").global("torch", "FloatStorage").str(std::string(100000, '0')).str("cpu").integer(4).tuple().persid().stop();
  refused(k.bytes(), "a storage key of 100000 bytes");
  // State dict entries that all alias one tensor.
  std::string entries = t.bytes() + std::string("h\x00h\x01Rq\x02" "0}", 9);
  for (int i = 0; i < 300; ++i) entries += std::string("X\x04\x00\x00\x00", 5) + fmt::format("{:04d}", i) + "h\x02s";
  small.max_tensors = 200;
  refused(entries + ".", "the state dict has more than 200 entries", small);
  // Deep MARK nesting and a huge stack (the defaults).
  refused(proto + std::string(70000, '(') + ".", "nested MARKs");
  refused(proto + "N" + std::string(1100000, '2') + ".", "stack deeper than");
}

}  // namespace
}  // namespace wenet_rt
