// read_checkpoint: real torch.save files (goldens and tests/data/checkpoints), hand-built variants,
// and hostile or broken files, each asserting the error text.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "common/expect_error.h"
#include "core/error.h"
#include "model/checkpoint.h"
#include "model/checkpoint_builder.h"
#include "model/pickle.h"

namespace wenet_rt {
namespace {

using test::PickleWriter;
using test::TempDir;
using test::TensorEntry;

const std::string kData = WENET_TEST_DATA;
const std::string kGolden = kData + "/wenet-goldens/conformer_tiny/final.pt";

std::string floats(std::initializer_list<float> v) {
  return std::string(reinterpret_cast<const char*>(std::data(v)), v.size() * 4);
}

std::string ramp_bytes(int n) {  // float32 0, 1, 2, ...
  std::string s;
  for (int i = 0; i < n; ++i) {
    const float f = float(i);
    s.append(reinterpret_cast<const char*>(&f), 4);
  }
  return s;
}

std::vector<float> values(const HostTensor& t) {
  const HostTensor f = t.to_f32();
  return std::vector<float>(f.data<float>(), f.data<float>() + f.numel());
}

using testing::expect_error;

// A one-tensor checkpoint whose pickle is `pickle`.
std::string checkpoint_with_pickle(const TempDir& dir, const std::string& pickle, const std::string& storage = floats({1, 2})) {
  const std::string path = dir.file("x.pt");
  test::write_zip(path, {{"archive/data.pkl", pickle}, {"archive/byteorder", "little"}, {"archive/data/0", storage}});
  return path;
}

TEST(Checkpoint, GoldenStateDict) {
  const auto sd = read_checkpoint(kGolden);
  EXPECT_EQ(sd.size(), 151u);
  const HostTensor& conv = sd.at("encoder.embed.conv.0.weight");
  EXPECT_EQ(conv.dtype(), DType::kF32);
  EXPECT_EQ(conv.shape(), (Shape{64, 1, 3, 3}));
  const HostTensor& counter = sd.at("encoder.encoders.0.conv_module.norm.num_batches_tracked");
  EXPECT_EQ(counter.dtype(), DType::kI64);
  EXPECT_EQ(counter.shape(), Shape{});
  EXPECT_EQ(sd.at("encoder.embed.pos_enc.pe").shape(), (Shape{1, 5000, 64}));
  // The sinusoid table: pe[0, 1, 0] = sin(1), pe[0, 1, 1] = cos(1).
  const float* pe = sd.at("encoder.embed.pos_enc.pe").data<float>();
  EXPECT_NEAR(pe[64], std::sin(1.0f), 1e-6);
  EXPECT_NEAR(pe[65], std::cos(1.0f), 1e-6);
}

TEST(Checkpoint, TorchDtypes) {
  const auto sd = read_checkpoint(kData + "/checkpoints/dtypes.pt");
  const std::vector<float> ramp{-1, -0.5, 0, 0.5, 1, 1.5};
  for (const char* name : {"f32", "f16", "bf16", "f64"}) {
    EXPECT_EQ(sd.at(name).shape(), (Shape{2, 3})) << name;
    EXPECT_EQ(values(sd.at(name)), ramp) << name;
  }
  EXPECT_EQ(sd.at("f16").dtype(), DType::kF16);
  EXPECT_EQ(sd.at("bf16").dtype(), DType::kBF16);
  EXPECT_EQ(sd.at("f64").dtype(), DType::kF32);
  EXPECT_EQ(sd.at("i64").dtype(), DType::kI64);
  EXPECT_EQ(sd.at("i64").data<int64_t>()[0], -2);
  EXPECT_EQ(sd.at("i32").dtype(), DType::kI32);
  for (const char* name : {"i32", "i16", "i8"}) EXPECT_EQ(values(sd.at(name)), (std::vector<float>{-2, -1, 0, 1, 2})) << name;
  EXPECT_EQ(values(sd.at("u8")), (std::vector<float>{250, 251, 252, 253, 254}));
  EXPECT_EQ(values(sd.at("bool")), (std::vector<float>{1, 0, 1}));
  EXPECT_EQ(sd.at("scalar").shape(), Shape{});
  EXPECT_EQ(values(sd.at("scalar")), std::vector<float>{3.5f});
  EXPECT_EQ(sd.at("empty").shape(), (Shape{0, 4}));
  EXPECT_EQ(sd.at("empty").numel(), 0);
}

TEST(Checkpoint, TorchViews) {
  const auto sd = read_checkpoint(kData + "/checkpoints/views.pt");
  std::vector<float> full(24);
  for (int i = 0; i < 24; ++i) full[size_t(i)] = float(i);
  EXPECT_EQ(values(sd.at("full")), full);
  std::vector<float> transposed;
  for (int c = 0; c < 6; ++c)
    for (int r = 0; r < 4; ++r) transposed.push_back(float(r * 6 + c));
  EXPECT_EQ(sd.at("transposed").shape(), (Shape{6, 4}));
  EXPECT_EQ(values(sd.at("transposed")), transposed);
  EXPECT_EQ(values(sd.at("half_transposed")), transposed);
  EXPECT_EQ(sd.at("half_transposed").dtype(), DType::kF16);
  EXPECT_EQ(values(sd.at("sliced")), (std::vector<float>{8, 9, 10, 14, 15, 16}));
  EXPECT_EQ(values(sd.at("stepped")), (std::vector<float>{0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22}));
  EXPECT_EQ(values(sd.at("row")), (std::vector<float>{12, 13, 14, 15, 16, 17}));
}

TEST(Checkpoint, TorchParametersWithProtocol4) {
  const auto sd = read_checkpoint(kData + "/checkpoints/parameter_protocol4.pt");
  EXPECT_EQ(values(sd.at("w")), (std::vector<float>{-1, -0.5, 0, 0.5}));
  EXPECT_EQ(sd.at("w").shape(), (Shape{2, 2}));
  EXPECT_EQ(values(sd.at("b")), (std::vector<float>{-1, -0.5}));
}

TEST(Checkpoint, HandBuiltHalfBfloatAndStridedViews) {
  TempDir dir;
  HostTensor f32(DType::kF32, {2, 2});
  const float v[] = {0.5f, -1.25f, 3.0f, 1024.0f};
  std::copy(v, v + 4, f32.data<float>());
  const std::string path = dir.file("h.pt");
  test::write_state_dict(path, {{"half", test::to_f16(f32)}, {"bf", test::to_bf16(f32)}});
  auto sd = read_checkpoint(path);
  EXPECT_EQ(sd.at("half").dtype(), DType::kF16);
  EXPECT_EQ(sd.at("bf").dtype(), DType::kBF16);
  EXPECT_EQ(values(sd.at("half")), std::vector<float>(v, v + 4));
  EXPECT_EQ(values(sd.at("bf")), std::vector<float>(v, v + 4));

  // One 3 x 4 storage seen as its transpose, and as a 2 x 2 window at offset 5 (rows 1-2, cols 1-2).
  const std::vector<TensorEntry> views{{"t", "FloatStorage", "0", 12, 0, {4, 3}, {1, 4}},
                                       {"w", "FloatStorage", "0", 12, 5, {2, 2}, {4, 1}},
                                       {"h", "HalfStorage", "1", 4, 1, {3}, {1}}};
  std::string half_bytes;
  for (float x : {7.f, 1.f, 2.f, 3.f}) {
    const uint16_t h = float_to_half(x);
    half_bytes.append(reinterpret_cast<const char*>(&h), 2);
  }
  test::write_checkpoint(path, views, {{"0", ramp_bytes(12)}, {"1", half_bytes}});
  sd = read_checkpoint(path);
  EXPECT_EQ(values(sd.at("t")), (std::vector<float>{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}));
  EXPECT_EQ(values(sd.at("w")), (std::vector<float>{5, 6, 9, 10}));
  EXPECT_EQ(values(sd.at("h")), (std::vector<float>{1, 2, 3}));
}

// ---- broken files

TEST(CheckpointErrors, MissingFile) {
  expect_error([] { read_checkpoint("/nonexistent/final.pt"); }, {"checkpoint /nonexistent/final.pt", "file not found"});
}

TEST(CheckpointErrors, Directory) {
  TempDir dir;
  expect_error([&] { read_checkpoint(dir.path()); }, {"not a regular file"});
}

TEST(CheckpointErrors, TruncatedZip) {
  TempDir dir;
  const std::string bytes = test::read_file(kGolden);
  test::write_file(dir.file("final.pt"), bytes.substr(0, bytes.size() / 2));
  expect_error([&] { read_checkpoint(dir.file("final.pt")); }, {dir.file("final.pt"), "not a readable zip archive", "truncated"});
}

TEST(CheckpointErrors, CorruptStorageBytes) {
  TempDir dir;
  std::string bytes = test::read_file(kGolden);
  bytes[bytes.size() / 2] ^= 0x5a;  // inside some storage record: its CRC no longer matches
  test::write_file(dir.file("final.pt"), bytes);
  expect_error([&] { read_checkpoint(dir.file("final.pt")); }, {"corrupt archive"});
}

TEST(CheckpointErrors, NotAZip) {
  TempDir dir;
  test::write_file(dir.file("x.pt"), "hello, not a checkpoint");
  expect_error([&] { read_checkpoint(dir.file("x.pt")); }, {"not a readable zip archive"});
}

TEST(CheckpointErrors, LegacyTorchFormat) {
  TempDir dir;
  test::write_file(dir.file("old.pt"), std::string("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.rest", 19));
  expect_error([&] { read_checkpoint(dir.file("old.pt")); }, {"legacy (torch < 1.6) format"});
}

TEST(CheckpointErrors, ZipWithoutDataPkl) {
  TempDir dir;
  test::write_zip(dir.file("x.pt"), {{"archive/version", "3\n"}, {"archive/data/0", floats({1})}});
  expect_error([&] { read_checkpoint(dir.file("x.pt")); }, {"no <prefix>/data.pkl"});
}

TEST(CheckpointErrors, TorchScriptArchive) {
  TempDir dir;
  test::write_zip(dir.file("final.zip"), {{"final/data.pkl", "."}, {"final/constants.pkl", "."}});
  expect_error([&] { read_checkpoint(dir.file("final.zip")); }, {"TorchScript archive"});
}

TEST(CheckpointErrors, BigEndian) {
  TempDir dir;
  const std::string path = dir.file("final.pt");
  std::filesystem::copy_file(kGolden, path);
  test::replace_zip_record(path, "final/byteorder", "big");
  expect_error([&] { read_checkpoint(path); }, {"byteorder is 'big'"});
}

TEST(CheckpointErrors, ForeignGlobal) {
  TempDir dir;
  PickleWriter w;
  w.proto().global("os", "system").str("echo pwned").op(0x85).reduce().stop();
  expect_error([&] { read_checkpoint(checkpoint_with_pickle(dir, w.bytes())); },
               {"checkpoint ", "pickle references forbidden global 'os.system'"});
}

TEST(CheckpointErrors, ForeignGlobalInsideGolden) {
  // Same length as 'collections OrderedDict' so that only the name changes.
  TempDir dir;
  const std::string path = dir.file("final.pt");
  std::filesystem::copy_file(kGolden, path);
  std::string pkl = test::read_zip_record(path, "final/data.pkl");
  const size_t at = pkl.find("collections\nOrderedDict");
  ASSERT_NE(at, std::string::npos);
  pkl.replace(at, 23, std::string("subprocess\ncheck_output"));
  test::replace_zip_record(path, "final/data.pkl", pkl);
  expect_error([&] { read_checkpoint(path); }, {"forbidden global 'subprocess.check_output'"});
}

TEST(CheckpointErrors, ReduceOnStorageType) {
  TempDir dir;
  PickleWriter w;
  w.proto().global("torch", "FloatStorage").empty_tuple().reduce().stop();
  expect_error([&] { read_checkpoint(checkpoint_with_pickle(dir, w.bytes())); },
               {"REDUCE on 'torch.FloatStorage' is not allowed"});
}

TEST(CheckpointErrors, ReduceOnString) {
  TempDir dir;
  PickleWriter w;
  w.proto().str("os.system").empty_tuple().reduce().stop();
  expect_error([&] { read_checkpoint(checkpoint_with_pickle(dir, w.bytes())); }, {"REDUCE on a str"});
}

TEST(CheckpointErrors, UnknownStorageType) {
  TempDir dir;
  PickleWriter w;
  w.proto().global("collections", "OrderedDict").empty_tuple().reduce();
  w.str("x").tensor("ComplexFloatStorage", "0", 1, 0, {1}, {1}).setitem().stop();
  expect_error([&] { read_checkpoint(checkpoint_with_pickle(dir, w.bytes())); },
               {"unsupported storage type 'torch.ComplexFloatStorage'", "FloatStorage, HalfStorage"});
}

TEST(CheckpointErrors, ViewOutOfBounds) {
  TempDir dir;
  const std::string path = dir.file("x.pt");
  test::write_checkpoint(path, {{"w", "FloatStorage", "0", 4, 2, {2, 2}, {2, 1}}}, {{"0", ramp_bytes(4)}});
  expect_error([&] { read_checkpoint(path); }, {"tensor 'w'", "reaches element 5", "holds only 4", "out of bounds"});
}

TEST(CheckpointErrors, OffsetOutOfBounds) {
  TempDir dir;
  const std::string path = dir.file("x.pt");
  test::write_checkpoint(path, {{"w", "FloatStorage", "0", 4, 9, {1}, {1}}}, {{"0", ramp_bytes(4)}});
  expect_error([&] { read_checkpoint(path); }, {"tensor 'w' starts at element 9"});
}

TEST(CheckpointErrors, RepeatingViewRefused) {
  TempDir dir;
  const std::string path = dir.file("x.pt");
  test::write_checkpoint(path, {{"w", "FloatStorage", "0", 1, 0, {1000000000}, {0}}}, {{"0", ramp_bytes(1)}});
  expect_error([&] { read_checkpoint(path); }, {"repeating views are not supported"});
}

TEST(CheckpointErrors, StorageSizeDisagrees) {
  TempDir dir;
  const std::string path = dir.file("x.pt");
  test::write_checkpoint(path, {{"w", "FloatStorage", "0", 8, 0, {8}, {1}}}, {{"0", ramp_bytes(4)}});
  expect_error([&] { read_checkpoint(path); }, {"storage '0' of tensor 'w' should hold 8 x FloatStorage = 32 bytes, the record has 16"});
}

TEST(CheckpointErrors, HugeDeclaredStorage) {
  TempDir dir;
  const std::string path = dir.file("x.pt");
  test::write_checkpoint(path, {{"w", "FloatStorage", "0", int64_t(1) << 62, 0, {1}, {1}}}, {{"0", ramp_bytes(4)}});
  expect_error([&] { read_checkpoint(path); }, {"impossible size"});
}

TEST(CheckpointErrors, MissingStorageRecord) {
  TempDir dir;
  const std::string path = dir.file("x.pt");
  test::write_checkpoint(path, {{"w", "FloatStorage", "7", 4, 0, {4}, {1}}}, {{"0", ramp_bytes(4)}});
  expect_error([&] { read_checkpoint(path); }, {"storage '7' of tensor 'w' is missing from the archive"});
}

TEST(CheckpointErrors, StorageKeyWithPath) {
  TempDir dir;
  const std::string path = dir.file("x.pt");
  test::write_checkpoint(path, {{"w", "FloatStorage", "../../etc/passwd", 4, 0, {4}, {1}}}, {{"0", ramp_bytes(4)}});
  expect_error([&] { read_checkpoint(path); }, {"invalid storage key"});
}

TEST(CheckpointErrors, TruncatedPickle) {
  TempDir dir;
  const std::string pkl = test::state_dict_pickle({{"w", "FloatStorage", "0", 2, 0, {2}, {1}}});
  expect_error([&] { read_checkpoint(checkpoint_with_pickle(dir, pkl.substr(0, pkl.size() - 1))); }, {"without a STOP"});
  expect_error([&] { read_checkpoint(checkpoint_with_pickle(dir, pkl.substr(0, 40))); }, {"data.pkl byte"});
}

TEST(CheckpointErrors, NotAStateDict) {
  TempDir dir;
  PickleWriter w;
  w.proto().empty_dict().str("epoch").integer(3).setitem().stop();
  expect_error([&] { read_checkpoint(checkpoint_with_pickle(dir, w.bytes())); }, {"entry 'epoch' is a int, not a tensor"});
  PickleWriter list;
  list.proto().op(']').stop();
  expect_error([&] { read_checkpoint(checkpoint_with_pickle(dir, list.bytes())); }, {"holds a list, not a state dict"});
}

// ---- the unpickler's limits, on bytes alone

TEST(Unpickler, HostileStreamsFailCleanly) {
  const std::string origin = "checkpoint t";
  const auto run = [&](const std::string& bytes) { unpickle_state_dict(bytes, origin); };
  expect_error([&] { run("\x80\x02h\x05."); }, {"memo index 5 was never stored"});
  expect_error([&] { run("\x80\x02."); }, {"stack underflow"});
  expect_error([&] { run("\x80\x02X\xff\xff\xff\x7f"); }, {"runs past the end"});
  expect_error([&] { run("\x80\x02\x8a\x09" "123456789."); }, {"integer of 9 bytes is too large"});
  expect_error([&] { run(std::string("\x80\x02q\x00.", 5)); }, {"stack underflow"});
  expect_error([&] { run(std::string("\x80\x02Nr\x00\x00\x00\x10.", 9)); }, {"memo index 268435456 exceeds"});
  expect_error([&] { run("\x80\x02I01\n."); }, {"unsupported pickle opcode 'I'"});
  expect_error([&] { run("\x80\x02]N\x62."); }, {"BUILD on a list"});  // attributes are accepted on dicts only
  // Deeply nested tuples: nothing recurses, so no stack overflow.
  const std::string deep = "\x80\x02K\x01" + std::string(500000, '\x85') + ".";
  expect_error([&] { run(deep); }, {"holds a tuple, not a state dict"});
  UnpickleLimits small;
  small.max_objects = 1000;
  expect_error([&] { unpickle_state_dict(deep, origin, small); }, {"more than 1000 objects"});
  // Two million pushes exceed the stack limit.
  expect_error([&] { run("\x80\x02" + std::string(2000000, 'N') + "."); }, {"stack deeper than"});
  // Nested MARKs beyond the limit.
  expect_error([&] { run("\x80\x02" + std::string(100000, '(') + "."); }, {"nested MARKs"});
}

}  // namespace
}  // namespace wenet_rt
