// The model's configuration, read from a WeNet train.yaml (both the 2021-22 layout with top-level
// cmvn_file/is_json_cmvn and the newer cmvn_conf/tokenizer_conf layout).
#pragma once

#include <string>
#include <string_view>

namespace wenet_rt {

enum class EncoderType { kConformer, kTransformer };
enum class DecoderType { kTransformer, kBiTransformer };
enum class PosEncType { kRelPos, kAbsPos };
enum class Activation { kNone, kRelu, kSwish };
enum class ConvNorm { kBatchNorm, kLayerNorm };
enum class Subsampling { kConv2d4, kConv2d6, kConv2d8 };

struct EncoderConfig {
  EncoderType type = EncoderType::kConformer;
  int input_dim = 80;          // top-level input_dim
  int output_size = 256;       // d_model
  int attention_heads = 4;
  int linear_units = 2048;
  int num_blocks = 12;
  bool normalize_before = true;  // only true is supported
  Subsampling input_layer = Subsampling::kConv2d4;
  PosEncType pos_enc = PosEncType::kRelPos;
  Activation activation = Activation::kSwish;  // conformer default swish, transformer default relu
  bool macaron_style = true;                   // conformer only
  bool use_cnn_module = true;                  // conformer only
  int cnn_module_kernel = 15;
  ConvNorm cnn_module_norm = ConvNorm::kBatchNorm;
  bool causal = false;  // causal depthwise conv (U2++ streaming models); attention stays full
  // Chunk training settings: either one marks a model trained for streaming, which the chunk-by-chunk
  // encoder (graph/streaming_encoder.h) requires; offline decoding uses full attention regardless.
  int static_chunk_size = 0;
  bool use_dynamic_chunk = false;
};

struct DecoderConfig {
  DecoderType type = DecoderType::kTransformer;
  int attention_heads = 4;
  int linear_units = 2048;
  int num_blocks = 6;
  int r_num_blocks = 0;  // bitransformer: layers of the right-to-left decoder
  bool normalize_before = true;
  Activation activation = Activation::kRelu;
};

struct FbankConfig {
  int num_mel_bins = 80;
  float frame_length_ms = 25.f;
  float frame_shift_ms = 10.f;
  int sample_rate = 16000;
};

struct ModelConfig {
  int vocab_size = 0;  // output_dim
  EncoderConfig encoder;
  DecoderConfig decoder;
  FbankConfig fbank;
  float reverse_weight = 0.f;  // model_conf.reverse_weight (training value; a decode default)
  float ctc_weight = 0.f;      // model_conf.ctc_weight (training value, informational)
  std::string cmvn_file;       // as written in train.yaml (may be absolute or empty)
  bool is_json_cmvn = true;
  std::string units_file;      // tokenizer_conf.symbol_table_path (may be empty)
  int blank_id = 0;
  int sos_id = -1;             // default vocab_size - 1
  int eos_id = -1;             // default vocab_size - 1
  std::string source;          // the train.yaml this came from (for messages)
};

// Reads a WeNet train.yaml. Defaults follow WeNet's constructors; parse_config resolves sos_id /
// eos_id (vocab_size - 1 unless tokenizer_conf.special_tokens says otherwise) and blank_id.
// Anything wenet-rt cannot run is an Error naming the file, key and value and listing what is
// supported, e.g. "train.yaml: encoder: unsupported value 'squeezeformer' (supported: conformer,
// transformer)".
ModelConfig parse_config(const std::string& yaml_path);
// The same from YAML text; `source` names it in messages.
ModelConfig parse_config_text(const std::string& yaml_text, const std::string& source);

// Frames in per frame out of the input layer (4, 6 or 8).
int subsampling_rate(Subsampling s);
// Input frames a subsampled frame needs beyond its first one's (WeNet's right_context): a chunk of
// C output frames needs (C - 1) * rate + right_context + 1 input frames.
int subsampling_right_context(Subsampling s);
// Feature columns left after the input layer's convolutions (WeNet's Linear takes d * this).
int subsampled_feature_dim(Subsampling s, int input_dim);

std::string_view name_of(EncoderType t);
std::string_view name_of(DecoderType t);
std::string_view name_of(PosEncType t);
std::string_view name_of(Activation a);
std::string_view name_of(ConvNorm n);
std::string_view name_of(Subsampling s);  // the train.yaml spelling: conv2d, conv2d6, conv2d8

// A few lines for `wenet-rt info`.
std::string describe(const ModelConfig& config);

}  // namespace wenet_rt
