// load_model_dir on the three golden dirs, CMVN and vocabulary files, and broken model dirs built
// by copying a golden dir into a temp dir and altering one thing.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/expect_error.h"
#include "core/error.h"
#include "model/checkpoint.h"
#include "model/checkpoint_builder.h"
#include "model/cmvn.h"
#include "model/model_dir.h"
#include "model/params.h"
#include "model/vocab.h"

namespace wenet_rt {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

const std::string kGoldens = std::string(WENET_TEST_DATA) + "/wenet-goldens";

using testing::expect_error;

std::string edit(std::string text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

// A copy of golden dir `name` in a temp dir, to alter.
struct DirCopy {
  TempDir tmp;
  explicit DirCopy(const std::string& name) { test::copy_model_dir(kGoldens + "/" + name, tmp.path()); }
  std::string file(const std::string& f) const { return tmp.file(f); }
  const std::string& path() const { return tmp.path(); }
  void edit_file(const std::string& f, const std::string& from, const std::string& to) const {
    test::write_file(file(f), edit(test::read_file(file(f)), from, to));
  }
};

// mean / istd of dimension i as WeNet computes them from the JSON statistics.
std::pair<double, double> json_cmvn(const std::string& path, size_t i) {
  const auto j = nlohmann::json::parse(test::read_file(path));
  const double n = j["frame_num"].get<double>();
  const double mean = j["mean_stat"][i].get<double>() / n;
  const double var = std::max(j["var_stat"][i].get<double>() / n - mean * mean, 1e-20);
  return {mean, 1.0 / std::sqrt(var)};
}

class GoldenDirs : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenDirs, Load) {
  const std::string dir = kGoldens + "/" + GetParam();
  const ModelDir m = load_model_dir(dir);
  EXPECT_EQ(m.config.vocab_size, 40);
  EXPECT_EQ(m.vocab.size(), 40);
  EXPECT_EQ(m.vocab.token(0), "<blank>");
  EXPECT_EQ(m.vocab.token(39), "<sos/eos>");
  EXPECT_EQ(m.vocab.id("<unk>"), 1);
  EXPECT_EQ(m.vocab.id("no such token"), -1);
  EXPECT_GT(m.num_params, 0);
  EXPECT_TRUE(m.ignored_keys.empty()) << m.ignored_keys[0];
  // The weights are exactly WeNet's parameter set for this config plus its position tables, all float32.
  const auto expected = expected_parameters(m.config);
  const size_t tables = m.config.decoder.type == DecoderType::kBiTransformer ? 3 : 2;
  EXPECT_EQ(m.weights.size(), expected.size() + tables);
  for (const auto& [name, shape] : expected) {
    ASSERT_TRUE(m.weights.count(name)) << name;
    EXPECT_EQ(m.weights.at(name).shape(), shape) << name;
    EXPECT_EQ(m.weights.at(name).dtype(), DType::kF32) << name;
  }
  EXPECT_EQ(m.weights.at("ctc.ctc_lo.weight").shape(), (Shape{40, 64}));
  EXPECT_EQ(m.weights.at("encoder.after_norm.weight").shape(), Shape{64});
  // Every checkpoint key is either a weight or a known optional key.
  const auto ckpt = read_checkpoint(m.checkpoint_file);
  for (const auto& [name, t] : ckpt) EXPECT_TRUE(expected.count(name) || is_optional_parameter(name)) << name;
  // CMVN: from the checkpoint's global_cmvn, equal to what WeNet computes from the JSON file.
  ASSERT_EQ(m.cmvn.dim(), 80u);
  for (size_t i : {size_t(0), size_t(41), size_t(79)}) {
    const auto [mean, istd] = json_cmvn(dir + "/global_cmvn", i);
    EXPECT_NEAR(m.cmvn.mean[i], mean, 1e-6 * std::abs(mean)) << i;
    EXPECT_NEAR(m.cmvn.istd[i], istd, 1e-6 * std::abs(istd)) << i;
  }
  const std::string d = describe(m);
  EXPECT_NE(d.find("40 tokens"), std::string::npos) << d;
  EXPECT_NE(d.find(std::to_string(m.num_params) + " parameters"), std::string::npos) << d;
  EXPECT_NE(d.find("supported:"), std::string::npos) << d;
}

INSTANTIATE_TEST_SUITE_P(Model, GoldenDirs, ::testing::Values("conformer_tiny", "u2pp_tiny", "transformer_tiny"));

TEST(ModelDir, ParameterCountsMatchWeNet) {
  // sum(p.numel() for p in model.parameters()) for the golden models, excluding the BatchNorm
  // running statistics (buffers): computed here from the shapes to pin the rule down.
  const ModelDir m = load_model_dir(kGoldens + "/conformer_tiny");
  int64_t n = 0;
  for (const auto& [name, t] : m.weights)
    if (!name.ends_with("running_mean") && !name.ends_with("running_var") && !name.ends_with(".pe")) n += t.numel();
  EXPECT_EQ(m.num_params, n);
  EXPECT_EQ(m.weights.size(), 147u);  // 151 keys - 2 num_batches_tracked - 2 cmvn buffers
}

TEST(ModelDir, HalfAndBfloatCheckpointsBecomeFloat32) {
  DirCopy d("u2pp_tiny");
  auto sd = read_checkpoint(d.file("final.pt"));
  const HostTensor original = sd.at("encoder.encoders.0.feed_forward.w_1.weight");
  for (auto& [name, t] : sd) {
    if (t.dtype() != DType::kF32) continue;
    t = name.starts_with("decoder") ? test::to_bf16(t) : test::to_f16(t);
  }
  test::write_state_dict(d.file("final.pt"), sd);
  const ModelDir m = load_model_dir(d.path());
  const HostTensor& w = m.weights.at("encoder.encoders.0.feed_forward.w_1.weight");
  EXPECT_EQ(w.dtype(), DType::kF32);
  for (int64_t i = 0; i < w.numel(); ++i)
    EXPECT_NEAR(w.data<float>()[i], original.data<float>()[i], 1e-3 * std::abs(original.data<float>()[i]) + 1e-7);
  EXPECT_EQ(m.weights.at("decoder.left_decoder.embed.0.weight").dtype(), DType::kF32);
}

TEST(ModelDir, FindsFilesByFallbacks) {
  DirCopy d("conformer_tiny");
  // Paths of the training machine; the same file names are in the model dir.
  d.edit_file("train.yaml", "cmvn_file: global_cmvn", "cmvn_file: /home/trainer/exp/data/train/global_cmvn");
  d.edit_file("train.yaml", "symbol_table_path: units.txt", "symbol_table_path: /home/trainer/data/dict/lang_char.txt");
  fs::rename(d.file("units.txt"), d.file("lang_char.txt"));
  fs::rename(d.file("final.pt"), d.file("avg_5.pt"));
  const ModelDir m = load_model_dir(d.path());
  EXPECT_EQ(m.units_file, d.file("lang_char.txt"));
  EXPECT_EQ(m.checkpoint_file, d.file("avg_5.pt"));
  EXPECT_EQ(m.vocab.size(), 40);
}

TEST(ModelDir, CmvnFromFileWhenCheckpointHasNone) {
  DirCopy d("transformer_tiny");
  auto sd = read_checkpoint(d.file("final.pt"));
  sd.erase("encoder.global_cmvn.mean");
  sd.erase("encoder.global_cmvn.istd");
  sd["some.extra.tensor"] = HostTensor(DType::kF32, {2});
  test::write_state_dict(d.file("final.pt"), sd);
  const ModelDir m = load_model_dir(d.path());
  EXPECT_EQ(m.cmvn_source, d.file("global_cmvn"));
  const auto [mean, istd] = json_cmvn(d.file("global_cmvn"), 3);
  EXPECT_NEAR(m.cmvn.mean[3], mean, 1e-6 * std::abs(mean));
  EXPECT_NEAR(m.cmvn.istd[3], istd, 1e-6 * std::abs(istd));
  EXPECT_EQ(m.ignored_keys, std::vector<std::string>{"some.extra.tensor"});
  EXPECT_NE(describe(m).find("ignored checkpoint tensors (1"), std::string::npos);
}

TEST(ModelDir, NoCmvnAnywhere) {
  DirCopy d("transformer_tiny");
  auto sd = read_checkpoint(d.file("final.pt"));
  sd.erase("encoder.global_cmvn.mean");
  sd.erase("encoder.global_cmvn.istd");
  test::write_state_dict(d.file("final.pt"), sd);
  d.edit_file("train.yaml", "cmvn_file: global_cmvn", "cmvn_file: null");
  const ModelDir m = load_model_dir(d.path());
  EXPECT_TRUE(m.cmvn.empty());
}

// ---- CMVN and vocabulary files

TEST(Cmvn, KaldiTextMatchesJson) {
  TempDir tmp;
  const auto j = nlohmann::json::parse(test::read_file(kGoldens + "/conformer_tiny/global_cmvn"));
  std::string kaldi = " [\n  ";
  for (double v : j["mean_stat"]) kaldi += fmt::format("{} ", v);
  kaldi += fmt::format("{}\n  ", j["frame_num"].get<double>());
  for (double v : j["var_stat"]) kaldi += fmt::format("{} ", v);
  kaldi += "0 ]\n";
  test::write_file(tmp.file("cmvn.ark"), kaldi);
  const Cmvn a = read_cmvn(tmp.file("cmvn.ark"), false);
  const Cmvn b = read_cmvn(kGoldens + "/conformer_tiny/global_cmvn", true);
  ASSERT_EQ(a.dim(), 80u);
  EXPECT_EQ(a.mean, b.mean);
  EXPECT_EQ(a.istd, b.istd);
}

TEST(Cmvn, VarianceFloor) {
  TempDir tmp;
  test::write_file(tmp.file("c.json"), R"({"mean_stat": [2.0, 4.0], "var_stat": [2.0, 8.0], "frame_num": 2})");
  const Cmvn c = read_cmvn(tmp.file("c.json"), true);  // variance 0 -> 1e-20 -> istd 1e10
  EXPECT_FLOAT_EQ(c.mean[0], 1.f);
  EXPECT_FLOAT_EQ(c.istd[0], 1e10f);
}

TEST(CmvnErrors, BadFiles) {
  TempDir tmp;
  expect_error([&] { read_cmvn(tmp.file("none"), true); }, {"cmvn file", "file not found"});
  test::write_file(tmp.file("a"), "{not json");
  expect_error([&] { read_cmvn(tmp.file("a"), true); }, {"not valid JSON"});
  test::write_file(tmp.file("b"), R"({"mean_stat": [1], "var_stat": [1, 2], "frame_num": 3})");
  expect_error([&] { read_cmvn(tmp.file("b"), true); }, {"1 mean statistics but 2 variance statistics"});
  test::write_file(tmp.file("c"), R"({"mean_stat": [1], "var_stat": [1], "frame_num": 0})");
  expect_error([&] { read_cmvn(tmp.file("c"), true); }, {"frame count must be positive"});
  test::write_file(tmp.file("d"), "[ 1 2 3 ]");
  expect_error([&] { read_cmvn(tmp.file("d"), false); }, {"expected Kaldi text statistics"});
  test::write_file(tmp.file("e"), std::string("\0BFM ", 5));
  expect_error([&] { read_cmvn(tmp.file("e"), false); }, {"Kaldi binary statistics are not supported"});
}

TEST(VocabErrors, BadFiles) {
  TempDir tmp;
  test::write_file(tmp.file("empty"), "\n\n");
  expect_error([&] { Vocabulary::load(tmp.file("empty")); }, {"units file", "empty file"});
  test::write_file(tmp.file("a"), "<blank> 0\n<unk>\n");
  expect_error([&] { Vocabulary::load(tmp.file("a")); }, {"line 2: expected 'token id', got '<unk>'"});
  test::write_file(tmp.file("b"), "<blank> 0\n<unk> one\n");
  expect_error([&] { Vocabulary::load(tmp.file("b")); }, {"line 2: 'one' is not a valid token id"});
  test::write_file(tmp.file("c"), "<blank> 0\n<unk> 0\n");
  expect_error([&] { Vocabulary::load(tmp.file("c")); }, {"id 0 is given to both '<blank>' and '<unk>'"});
  test::write_file(tmp.file("d"), "<blank> 0\n<unk> 2\n");
  expect_error([&] { Vocabulary::load(tmp.file("d")); }, {"token '<unk>' has id 2", "no gaps"});
  test::write_file(tmp.file("e"), "a 0\na 1\n");
  expect_error([&] { Vocabulary::load(tmp.file("e")); }, {"token 'a' appears twice"});
  const Vocabulary v = Vocabulary::load(kGoldens + "/conformer_tiny/units.txt");
  expect_error([&] { v.token(40); }, {"token id 40 out of range"});
}

// ---- broken model dirs

TEST(ModelDirErrors, MissingDirOrFiles) {
  expect_error([] { load_model_dir("/nonexistent/model"); }, {"model dir /nonexistent/model: not found"});
  DirCopy d("conformer_tiny");
  fs::remove(d.file("final.pt"));
  expect_error([&] { load_model_dir(d.path()); }, {"no final.pt"});
  fs::remove(d.file("train.yaml"));
  expect_error([&] { load_model_dir(d.path()); }, {"no train.yaml"});
}

TEST(ModelDirErrors, MissingTensor) {
  DirCopy d("conformer_tiny");
  auto sd = read_checkpoint(d.file("final.pt"));
  sd.erase("encoder.encoders.1.conv_module.depthwise_conv.weight");
  test::write_state_dict(d.file("final.pt"), sd);
  expect_error([&] { load_model_dir(d.path()); },
               {d.file("final.pt"), "missing 1 tensor(s)", "encoder.encoders.1.conv_module.depthwise_conv.weight [64, 1, 7]"});
}

TEST(ModelDirErrors, WrongShape) {
  DirCopy d("conformer_tiny");
  auto sd = read_checkpoint(d.file("final.pt"));
  sd["decoder.decoders.0.feed_forward.w_1.weight"] = HostTensor(DType::kF32, {64, 128});
  test::write_state_dict(d.file("final.pt"), sd);
  expect_error([&] { load_model_dir(d.path()); },
               {"tensor 'decoder.decoders.0.feed_forward.w_1.weight' has shape [64, 128], expected [128, 64]"});
}

TEST(ModelDirErrors, IntegerWeight) {
  DirCopy d("conformer_tiny");
  auto sd = read_checkpoint(d.file("final.pt"));
  sd["ctc.ctc_lo.bias"] = HostTensor(DType::kI64, {40});
  test::write_state_dict(d.file("final.pt"), sd);
  expect_error([&] { load_model_dir(d.path()); }, {"tensor 'ctc.ctc_lo.bias' is int64, expected a floating-point type"});
}

TEST(ModelDirErrors, ConfigDisagreesWithCheckpoint) {
  DirCopy d("conformer_tiny");
  d.edit_file("train.yaml", "linear_units: 128", "linear_units: 256");
  expect_error([&] { load_model_dir(d.path()); }, {"tensor 'encoder.encoders.0.feed_forward.w_1.bias' has shape [128], expected [256]"});
}

TEST(ModelDirErrors, RelativeAttentionWithAbsPos) {
  // What WeNet 2.0 built for a conformer with abs_pos: relative-position attention weights.
  DirCopy d("conformer_tiny");
  d.edit_file("train.yaml", "pos_enc_layer_type: rel_pos", "pos_enc_layer_type: abs_pos");
  d.edit_file("train.yaml", "  selfattention_layer_type: rel_selfattn\n", "");
  expect_error([&] { load_model_dir(d.path()); }, {"relative-position attention weights", "abs_pos"});
}

TEST(ModelDirErrors, UnknownEncoderType) {
  DirCopy d("conformer_tiny");
  d.edit_file("train.yaml", "encoder: conformer", "encoder: squeezeformer");
  expect_error([&] { load_model_dir(d.path()); },
               {d.file("train.yaml"), "encoder: unsupported value 'squeezeformer' (supported: conformer, transformer)"});
}

TEST(ModelDirErrors, BadYaml) {
  DirCopy d("u2pp_tiny");
  d.edit_file("train.yaml", "encoder_conf:", "encoder_conf: [");
  expect_error([&] { load_model_dir(d.path()); }, {d.file("train.yaml"), "not valid YAML"});
}

TEST(ModelDirErrors, CmvnDimensionMismatch) {
  DirCopy d("conformer_tiny");
  d.edit_file("global_cmvn", "{\"mean_stat\": [1013969.0625, ", "{\"mean_stat\": [");
  d.edit_file("global_cmvn", "\"var_stat\": [", "\"var_stat\": [1.0, 2.0, ");
  // now 79 means and 82 variances: first the file's own inconsistency
  expect_error([&] { load_model_dir(d.path()); }, {"79 mean statistics but 82 variance statistics"});
  DirCopy e("conformer_tiny");
  test::write_file(e.file("global_cmvn"), R"({"mean_stat": [1, 2], "var_stat": [5, 9], "frame_num": 1})");
  expect_error([&] { load_model_dir(e.path()); }, {"cmvn file " + e.file("global_cmvn") + ": dimension 2, but input_dim", "is 80"});
}

TEST(ModelDirErrors, CmvnFileMissing) {
  DirCopy d("transformer_tiny");
  auto sd = read_checkpoint(d.file("final.pt"));
  sd.erase("encoder.global_cmvn.mean");
  sd.erase("encoder.global_cmvn.istd");
  test::write_state_dict(d.file("final.pt"), sd);
  fs::remove(d.file("global_cmvn"));
  expect_error([&] { load_model_dir(d.path()); }, {"cmvn file 'global_cmvn' named in", "not found"});
}

TEST(ModelDirErrors, EmptyUnits) {
  DirCopy d("conformer_tiny");
  test::write_file(d.file("units.txt"), "");
  expect_error([&] { load_model_dir(d.path()); }, {"units file " + d.file("units.txt"), "empty file"});
}

TEST(ModelDirErrors, VocabularySizeMismatch) {
  DirCopy d("conformer_tiny");
  test::write_file(d.file("units.txt"), test::read_file(d.file("units.txt")) + "extra 40\n");
  expect_error([&] { load_model_dir(d.path()); },
               {"units file " + d.file("units.txt"), "41 tokens, but output_dim", "is 40", "ctc.ctc_lo"});
}

TEST(ModelDirErrors, NoUnitsFile) {
  DirCopy d("transformer_tiny");
  fs::remove(d.file("units.txt"));
  expect_error([&] { load_model_dir(d.path()); }, {"no vocabulary file", "units.txt", "lang_char.txt"});
}

TEST(ModelDirErrors, CorruptCheckpointNamesFile) {
  DirCopy d("transformer_tiny");
  const std::string bytes = test::read_file(d.file("final.pt"));
  test::write_file(d.file("final.pt"), bytes.substr(0, 1000));
  expect_error([&] { load_model_dir(d.path()); }, {"checkpoint " + d.file("final.pt"), "not a readable zip archive"});
}

}  // namespace
}  // namespace wenet_rt
