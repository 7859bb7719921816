// parse_config: the goldens' train.yaml files (both layouts), WeNet's defaults, and unsupported
// or malformed values, each asserting the error text.
#include <gtest/gtest.h>

#include "common/expect_error.h"
#include "core/error.h"
#include "model/checkpoint_builder.h"
#include "model/config.h"
#include "model/params.h"

namespace wenet_rt {
namespace {

const std::string kGoldens = std::string(WENET_TEST_DATA) + "/wenet-goldens";

using testing::expect_error;

std::string golden_yaml(const std::string& name) { return test::read_file(kGoldens + "/" + name + "/train.yaml"); }

// `text` with the first occurrence of `from` replaced by `to`.
std::string edit(std::string text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

ModelConfig parse(const std::string& text) { return parse_config_text(text, "train.yaml"); }

TEST(Config, ConformerGolden) {
  const ModelConfig c = parse_config(kGoldens + "/conformer_tiny/train.yaml");
  EXPECT_EQ(c.vocab_size, 40);
  EXPECT_EQ(c.encoder.type, EncoderType::kConformer);
  EXPECT_EQ(c.encoder.input_dim, 80);
  EXPECT_EQ(c.encoder.output_size, 64);
  EXPECT_EQ(c.encoder.attention_heads, 4);
  EXPECT_EQ(c.encoder.linear_units, 128);
  EXPECT_EQ(c.encoder.num_blocks, 2);
  EXPECT_EQ(c.encoder.input_layer, Subsampling::kConv2d4);
  EXPECT_EQ(c.encoder.pos_enc, PosEncType::kRelPos);
  EXPECT_EQ(c.encoder.activation, Activation::kSwish);
  EXPECT_TRUE(c.encoder.macaron_style);
  EXPECT_TRUE(c.encoder.use_cnn_module);
  EXPECT_EQ(c.encoder.cnn_module_kernel, 7);
  EXPECT_EQ(c.encoder.cnn_module_norm, ConvNorm::kBatchNorm);
  EXPECT_EQ(c.decoder.type, DecoderType::kTransformer);
  EXPECT_EQ(c.decoder.num_blocks, 2);
  EXPECT_EQ(c.decoder.r_num_blocks, 0);
  EXPECT_EQ(c.decoder.activation, Activation::kRelu);
  EXPECT_FLOAT_EQ(c.ctc_weight, 0.3f);
  EXPECT_FLOAT_EQ(c.reverse_weight, 0.0f);
  EXPECT_EQ(c.fbank.num_mel_bins, 80);
  EXPECT_EQ(c.fbank.sample_rate, 16000);
  EXPECT_FLOAT_EQ(c.fbank.frame_length_ms, 25.f);
  EXPECT_FLOAT_EQ(c.fbank.frame_shift_ms, 10.f);
  EXPECT_EQ(c.cmvn_file, "global_cmvn");
  EXPECT_TRUE(c.is_json_cmvn);
  EXPECT_EQ(c.units_file, "units.txt");
  EXPECT_EQ(c.blank_id, 0);
  EXPECT_EQ(c.sos_id, 39);
  EXPECT_EQ(c.eos_id, 39);
  const std::string d = describe(c);
  EXPECT_NE(d.find("conformer, 2 blocks x 64 dims"), std::string::npos) << d;
  EXPECT_NE(d.find("conv module kernel 7 + batch_norm"), std::string::npos) << d;
}

TEST(Config, U2ppGolden) {
  const ModelConfig c = parse_config(kGoldens + "/u2pp_tiny/train.yaml");
  EXPECT_EQ(c.decoder.type, DecoderType::kBiTransformer);
  EXPECT_EQ(c.decoder.num_blocks, 1);
  EXPECT_EQ(c.decoder.r_num_blocks, 1);
  EXPECT_EQ(c.encoder.cnn_module_norm, ConvNorm::kLayerNorm);
  EXPECT_EQ(c.encoder.cnn_module_kernel, 5);
  EXPECT_FLOAT_EQ(c.reverse_weight, 0.3f);
  EXPECT_NE(describe(c).find("bitransformer, 1 left-to-right + 1 right-to-left blocks"), std::string::npos) << describe(c);
}

TEST(Config, TransformerGoldenOldLayout) {
  const ModelConfig c = parse_config(kGoldens + "/transformer_tiny/train.yaml");
  EXPECT_EQ(c.encoder.type, EncoderType::kTransformer);
  EXPECT_EQ(c.encoder.input_layer, Subsampling::kConv2d8);
  EXPECT_EQ(c.encoder.pos_enc, PosEncType::kAbsPos);      // transformer default
  EXPECT_EQ(c.encoder.activation, Activation::kRelu);     // transformer default
  EXPECT_FALSE(c.encoder.macaron_style);
  EXPECT_FALSE(c.encoder.use_cnn_module);
  EXPECT_EQ(c.cmvn_file, "global_cmvn");                  // top-level cmvn_file
  EXPECT_TRUE(c.units_file.empty());
  EXPECT_EQ(c.sos_id, 39);                                // vocab_size - 1 without special_tokens
  EXPECT_EQ(subsampling_rate(c.encoder.input_layer), 8);
  EXPECT_EQ(subsampled_feature_dim(c.encoder.input_layer, 80), 9);
}

TEST(Config, WeNetDefaults) {
  const ModelConfig c = parse("input_dim: 80\noutput_dim: 100\n");
  EXPECT_EQ(c.encoder.type, EncoderType::kConformer);
  EXPECT_EQ(c.decoder.type, DecoderType::kBiTransformer);  // WeNet's default decoder
  EXPECT_EQ(c.encoder.output_size, 256);
  EXPECT_EQ(c.encoder.num_blocks, 6);
  EXPECT_EQ(c.encoder.cnn_module_kernel, 15);
  EXPECT_EQ(c.encoder.pos_enc, PosEncType::kRelPos);
  EXPECT_FLOAT_EQ(c.ctc_weight, 0.5f);
  EXPECT_EQ(c.fbank.num_mel_bins, 80);
  EXPECT_TRUE(c.cmvn_file.empty());
  EXPECT_EQ(c.sos_id, 99);
}

TEST(Config, ResampleRateAndLegacyFeatures) {
  const ModelConfig a = parse("input_dim: 80\noutput_dim: 10\ndataset_conf:\n  resample_conf:\n    resample_rate: 8000\n");
  EXPECT_EQ(a.fbank.sample_rate, 8000);
  const ModelConfig b = parse(
      "input_dim: 40\noutput_dim: 10\ncollate_conf:\n  feature_extraction_conf:\n    feature_type: fbank\n"
      "    mel_bins: 40\n    frame_shift: 10\n    frame_length: 25\n    using_pitch: false\n");
  EXPECT_EQ(b.fbank.num_mel_bins, 40);
}

TEST(Config, ConformerWithoutOptionalModules) {
  const std::string y = edit(edit(golden_yaml("conformer_tiny"), "macaron_style: true", "macaron_style: false"),
                             "use_cnn_module: true", "use_cnn_module: false");
  const ModelConfig c = parse(y);
  const auto p = expected_parameters(c);
  EXPECT_EQ(p.count("encoder.encoders.0.feed_forward_macaron.w_1.weight"), 0u);
  EXPECT_EQ(p.count("encoder.encoders.0.norm_final.weight"), 0u);
  EXPECT_EQ(p.count("encoder.encoders.0.conv_module.depthwise_conv.weight"), 0u);
  EXPECT_EQ(p.at("encoder.encoders.1.norm_ff.weight"), Shape{64});
}

TEST(Config, Conv2d6Shapes) {
  const ModelConfig c = parse(edit(golden_yaml("conformer_tiny"), "input_layer: conv2d", "input_layer: conv2d6"));
  const auto p = expected_parameters(c);
  EXPECT_EQ(p.at("encoder.embed.conv.2.weight"), (Shape{64, 64, 5, 5}));
  EXPECT_EQ(p.at("encoder.embed.linear.weight"), (Shape{64, 64 * 12}));
  EXPECT_EQ(subsampling_rate(c.encoder.input_layer), 6);
}

// ---- unsupported or malformed values

TEST(ConfigErrors, UnknownEncoder) {
  expect_error([] { parse(edit(golden_yaml("conformer_tiny"), "encoder: conformer", "encoder: squeezeformer")); },
               {"train.yaml: encoder: unsupported value 'squeezeformer' (supported: conformer, transformer)"});
}

TEST(ConfigErrors, UnknownDecoder) {
  expect_error([] { parse(edit(golden_yaml("conformer_tiny"), "decoder: transformer", "decoder: rnn")); },
               {"decoder: unsupported value 'rnn' (supported: transformer, bitransformer)"});
}

TEST(ConfigErrors, CtcOnlyModel) {
  expect_error([] { parse(edit(golden_yaml("conformer_tiny"), "decoder: transformer", "decoder: null")); },
               {"decoder: null (a CTC-only model) is not supported"});
}

TEST(ConfigErrors, BadYaml) {
  expect_error([] { parse("input_dim: 80\nencoder_conf: [unclosed\n"); }, {"train.yaml: not valid YAML (line"});
  expect_error([] { parse("- just\n- a list\n"); }, {"expected a mapping"});
  expect_error([] { parse("input_dim: 80\noutput_dim: 40\nencoder_conf: 3\n"); }, {"encoder_conf: expected a mapping"});
}

TEST(ConfigErrors, MissingFile) {
  expect_error([] { parse_config("/nonexistent/train.yaml"); }, {"/nonexistent/train.yaml", "cannot open"});
}

TEST(ConfigErrors, RequiredKeys) {
  expect_error([] { parse("input_dim: 80\n"); }, {"output_dim: required key is missing"});
  expect_error([] { parse("output_dim: 80\n"); }, {"input_dim: required key is missing"});
  expect_error([] { parse("input_dim: eighty\noutput_dim: 10\n"); }, {"input_dim: expected an integer, got 'eighty'"});
}

TEST(ConfigErrors, UnsupportedEncoderOptions) {
  const std::string y = golden_yaml("conformer_tiny");
  expect_error([&] { parse(edit(y, "input_layer: conv2d", "input_layer: conv2d2")); },
               {"encoder_conf.input_layer: unsupported value 'conv2d2' (supported: conv2d, conv2d6, conv2d8)"});
  expect_error([&] { parse(edit(y, "pos_enc_layer_type: rel_pos", "pos_enc_layer_type: rope_pos")); },
               {"encoder_conf.pos_enc_layer_type: unsupported value 'rope_pos' (supported: rel_pos, abs_pos)"});
  expect_error([&] { parse(edit(y, "selfattention_layer_type: rel_selfattn", "selfattention_layer_type: selfattn")); },
               {"encoder_conf.selfattention_layer_type: unsupported value 'selfattn' with pos_enc_layer_type rel_pos"});
  expect_error([&] { parse(edit(y, "activation_type: swish", "activation_type: gelu")); },
               {"encoder_conf.activation_type: unsupported value 'gelu' (supported: swish, relu)"});
  expect_error([&] { parse(edit(y, "cnn_module_norm: batch_norm", "cnn_module_norm: rms_norm")); },
               {"encoder_conf.cnn_module_norm: unsupported value 'rms_norm' (supported: batch_norm, layer_norm)"});
  expect_error([&] { parse(edit(y, "normalize_before: true", "normalize_before: false")); },
               {"encoder_conf.normalize_before: unsupported value 'false' (supported: true)"});
  expect_error([&] { parse(edit(y, "macaron_style: true", "macaron_style: true\n  concat_after: true")); },
               {"encoder_conf.concat_after: unsupported value 'true' (supported: false)"});
  expect_error([&] { parse(edit(y, "macaron_style: true", "macaron_style: true\n  fancy_new_option: 3")); },
               {"encoder_conf.fancy_new_option: unknown option"});
  expect_error([&] { parse(edit(y, "attention_heads: 4", "attention_heads: 5")); },
               {"encoder_conf.attention_heads: 5 heads do not divide output_size 64"});
  expect_error([&] { parse(edit(y, "cnn_module_kernel: 7", "cnn_module_kernel: 8")); }, {"must be odd"});
  // Chunk training is fine: it only changes how WeNet trained.
  EXPECT_NO_THROW(parse(edit(y, "macaron_style: true", "macaron_style: true\n  use_dynamic_chunk: true\n  static_chunk_size: 16")));
}

TEST(ConfigErrors, UnsupportedDecoderOrFeatures) {
  const std::string y = golden_yaml("conformer_tiny");
  expect_error([&] { parse(edit(y, "  src_attention_dropout_rate: 0.0", "  src_attention_dropout_rate: 0.0\n  concat_after: true")); },
               {"decoder_conf.concat_after: unsupported value 'true'"});
  expect_error([&] { parse(edit(y, "num_mel_bins: 80", "num_mel_bins: 40")); },
               {"dataset_conf.fbank_conf.num_mel_bins: 40 mel bins, but input_dim is 80"});
  expect_error([&] { parse(edit(y, "cmvn: global_cmvn", "cmvn: utterance_cmvn")); },
               {"cmvn: unsupported value 'utterance_cmvn'"});
  expect_error([&] { parse(edit(y, "<sos>: 39", "<sos>: 40")); },
               {"tokenizer_conf.special_tokens: <sos> id 40 is outside the vocabulary [0, 40)"});
  expect_error([&] { parse(edit(y, "reverse_weight: 0.0", "reverse_weight: 1.5")); }, {"model_conf.reverse_weight: must be within [0, 1]"});
}

}  // namespace
}  // namespace wenet_rt
