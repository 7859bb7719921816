#include "model/config.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <initializer_list>
#include <set>

#include "core/error.h"

namespace wenet_rt {

namespace {

// Upper bounds on sizes (see Reader::positive_int).
constexpr int kMaxVocabSize = 1 << 24;
constexpr int kMaxInputDim = 1024;  // the fbank's limit on mel bins
constexpr int kMaxModelDim = 1 << 16;
constexpr int kMaxHeads = 1024;
constexpr int kMaxLinearUnits = 1 << 18;
constexpr int kMaxBlocks = 1024;
constexpr int kMaxKernel = 1024;
constexpr double kMaxFrameMs = 1000;
// The sample rates the audio reader accepts (frontend/audio.h: kMinSampleRate..kMaxSampleRate).
constexpr int kMinSampleRate = 1000, kMaxSampleRate = 768000;

// Options that change nothing at inference (dropout, training-time chunking, memory savers).
const std::set<std::string> kIgnoredEncoderKeys = {
    "dropout_rate", "positional_dropout_rate", "attention_dropout_rate", "use_dynamic_left_chunk",
    "gradient_checkpointing", "use_sdpa", "n_expert", "n_expert_activated", "global_cmvn"};
const std::set<std::string> kIgnoredDecoderKeys = {
    "dropout_rate", "positional_dropout_rate", "self_attention_dropout_rate", "src_attention_dropout_rate",
    "gradient_checkpointing", "use_sdpa", "tie_word_embedding", "n_expert", "n_expert_activated"};

// Reads typed values out of one train.yaml, naming the file and the dotted key in every error.
class Reader {
 public:
  explicit Reader(std::string source) : src_(std::move(source)) {}

  const std::string& src() const { return src_; }

  template <typename... Args>
  [[noreturn]] void error(const std::string& key, fmt::format_string<Args...> f, Args&&... args) const {
    fail("{}: {}: {}", src_, key, fmt::format(f, std::forward<Args>(args)...));
  }

  // The value at `key` in `map`, or an undefined node when absent or null.
  static YAML::Node child(const YAML::Node& map, const std::string& key) {
    if (!map.IsDefined() || !map.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
    YAML::Node n = map[key];
    if (!n.IsDefined() || n.IsNull()) return YAML::Node(YAML::NodeType::Undefined);
    return n;
  }

  // A value as messages show it; long ones are cut so that a message stays readable.
  static std::string text(const YAML::Node& n) {
    std::string t = n.IsScalar() ? n.Scalar() : YAML::Dump(n);
    if (t.size() > 200) t = t.substr(0, 200) + "...";
    return t;
  }

  YAML::Node section(const YAML::Node& root, const std::string& key) const {
    YAML::Node n = child(root, key);
    if (n.IsDefined() && !n.IsMap()) error(key, "expected a mapping, got '{}'", text(n));
    return n;
  }

  template <typename T>
  T get(const YAML::Node& map, const std::string& prefix, const std::string& key, T def, const char* kind) const {
    const YAML::Node n = child(map, key);
    if (!n.IsDefined()) return def;
    try {
      if (!n.IsScalar()) throw YAML::Exception(YAML::Mark::null_mark(), "");
      return n.as<T>();
    } catch (const YAML::Exception&) {
      error(join(prefix, key), "expected {}, got '{}'", kind, text(n));
    }
  }
  int get_int(const YAML::Node& m, const std::string& p, const std::string& k, int def) const {
    return get<int>(m, p, k, def, "an integer");
  }
  double get_double(const YAML::Node& m, const std::string& p, const std::string& k, double def) const {
    return get<double>(m, p, k, def, "a number");
  }
  bool get_bool(const YAML::Node& m, const std::string& p, const std::string& k, bool def) const {
    return get<bool>(m, p, k, def, "true or false");
  }
  std::string get_string(const YAML::Node& m, const std::string& p, const std::string& k, const std::string& def) const {
    return get<std::string>(m, p, k, def, "a string");
  }

  // `def` 0 makes the key required. `max` bounds what a file can make the engine allocate: far
  // above any real model, far below what would exhaust memory or time.
  int positive_int(const YAML::Node& m, const std::string& p, const std::string& k, int def, int max) const {
    if (def == 0 && !child(m, k).IsDefined()) error(join(p, k), "required key is missing");
    const int v = get_int(m, p, k, def);
    if (v <= 0) error(join(p, k), "must be positive, got {}", v);
    if (v > max) error(join(p, k), "must be at most {}, got {}", max, v);
    return v;
  }
  // A finite number within [lo, hi] (NaN and infinities are refused).
  double number_in(const YAML::Node& m, const std::string& p, const std::string& k, double def, double lo, double hi) const {
    const double v = get_double(m, p, k, def);
    if (!(v >= lo && v <= hi)) error(join(p, k), "must be within [{}, {}], got {}", lo, hi, v);
    return v;
  }

  // One of `choices` (train.yaml spelling -> value); anything else is an error listing them.
  template <typename T>
  T choice(const YAML::Node& m, const std::string& p, const std::string& k, const std::string& def,
           std::initializer_list<std::pair<const char*, T>> choices) const {
    const std::string v = get_string(m, p, k, def);
    std::string supported;
    for (const auto& [spelling, value] : choices) {
      if (v == spelling) return value;
      supported += (supported.empty() ? "" : ", ") + std::string(spelling);
    }
    error(join(p, k), "unsupported value '{}' (supported: {})", v, supported);
  }

  // A switch wenet-rt supports in one position only.
  void require_bool(const YAML::Node& m, const std::string& p, const std::string& k, bool supported) const {
    const YAML::Node n = child(m, k);
    if (n.IsDefined() && get_bool(m, p, k, supported) != supported)
      error(join(p, k), "unsupported value '{}' (supported: {})", text(n), supported ? "true" : "false");
  }
  void require_string(const YAML::Node& m, const std::string& p, const std::string& k, const std::string& supported) const {
    const YAML::Node n = child(m, k);
    if (n.IsDefined() && get_string(m, p, k, supported) != supported)
      error(join(p, k), "unsupported value '{}' (supported: {})", text(n), supported);
  }
  void require_number(const YAML::Node& m, const std::string& p, const std::string& k, double supported) const {
    const YAML::Node n = child(m, k);
    if (n.IsDefined() && !(std::abs(get_double(m, p, k, supported) - supported) <= 1e-12 * std::abs(supported)))
      error(join(p, k), "unsupported value '{}' (supported: {})", text(n), supported);
  }

  // Every key of `m` must be known: an option wenet-rt has never seen may change the model.
  void check_keys(const YAML::Node& m, const std::string& p, const std::set<std::string>& known,
                  const std::set<std::string>& ignored) const {
    if (!m.IsDefined()) return;
    for (const auto& kv : m) {
      const std::string key = kv.first.as<std::string>();
      if (!known.count(key) && !ignored.count(key))
        error(join(p, key), "unknown option (wenet-rt cannot tell what it does to the model)");
    }
  }

  static std::string join(const std::string& p, const std::string& k) { return p.empty() ? k : p + "." + k; }

 private:
  std::string src_;
};

void parse_encoder(const Reader& r, const YAML::Node& root, ModelConfig& c) {
  EncoderConfig& e = c.encoder;
  e.type = r.choice<EncoderType>(root, "", "encoder", "conformer",
                                 {{"conformer", EncoderType::kConformer}, {"transformer", EncoderType::kTransformer}});
  const bool conformer = e.type == EncoderType::kConformer;
  const YAML::Node n = r.section(root, "encoder_conf");
  const std::string p = "encoder_conf";
  r.check_keys(n, p,
               {"output_size", "attention_heads", "linear_units", "num_blocks", "input_layer", "pos_enc_layer_type",
                "selfattention_layer_type", "normalize_before", "concat_after", "static_chunk_size",
                "use_dynamic_chunk", "activation_type", "macaron_style", "use_cnn_module", "cnn_module_kernel",
                "cnn_module_norm", "causal", "positionwise_conv_kernel_size", "positionwise_layer_type", "query_bias",
                "key_bias", "value_bias", "conv_bias", "mlp_bias", "layer_norm_type", "norm_eps", "conv_norm_eps",
                "n_kv_head", "head_dim", "mlp_type", "conv_inner_factor", "final_norm"},
               kIgnoredEncoderKeys);

  e.input_dim = r.positive_int(root, "", "input_dim", 0, kMaxInputDim);
  e.output_size = r.positive_int(n, p, "output_size", 256, kMaxModelDim);
  e.attention_heads = r.positive_int(n, p, "attention_heads", 4, kMaxHeads);
  if (e.output_size % e.attention_heads != 0)
    r.error(p + ".attention_heads", "{} heads do not divide output_size {}", e.attention_heads, e.output_size);
  e.linear_units = r.positive_int(n, p, "linear_units", 2048, kMaxLinearUnits);
  e.num_blocks = r.positive_int(n, p, "num_blocks", 6, kMaxBlocks);
  e.input_layer = r.choice<Subsampling>(n, p, "input_layer", "conv2d",
                                        {{"conv2d", Subsampling::kConv2d4},
                                         {"conv2d6", Subsampling::kConv2d6},
                                         {"conv2d8", Subsampling::kConv2d8}});
  if (subsampled_feature_dim(e.input_layer, e.input_dim) < 1)
    r.error("input_dim", "{} features are too few for input_layer {}", e.input_dim, name_of(e.input_layer));
  e.pos_enc = r.choice<PosEncType>(n, p, "pos_enc_layer_type", conformer ? "rel_pos" : "abs_pos",
                                   {{"rel_pos", PosEncType::kRelPos}, {"abs_pos", PosEncType::kAbsPos}});
  // The attention follows the position encoding. When the key is absent we take the matching
  // one (WeNet 2.x derived it from pos_enc_layer_type); load_model_dir double-checks against the
  // checkpoint's weights.
  const std::string attn = r.get_string(n, p, "selfattention_layer_type", "");
  const std::string want_attn = e.pos_enc == PosEncType::kRelPos ? "rel_selfattn" : "selfattn";
  if (!attn.empty() && attn != want_attn) {
    if (attn != "rel_selfattn" && attn != "selfattn")
      r.error(p + ".selfattention_layer_type", "unsupported value '{}' (supported: rel_selfattn with rel_pos, selfattn with abs_pos)", attn);
    r.error(p + ".selfattention_layer_type", "unsupported value '{}' with pos_enc_layer_type {} (supported: rel_selfattn with rel_pos, selfattn with abs_pos)",
            attn, name_of(e.pos_enc));
  }
  e.normalize_before = true;
  r.require_bool(n, p, "normalize_before", true);
  r.require_bool(n, p, "concat_after", false);
  e.causal = r.get_bool(n, p, "causal", false);
  e.activation = r.choice<Activation>(n, p, "activation_type", conformer ? "swish" : "relu",
                                      {{"swish", Activation::kSwish}, {"relu", Activation::kRelu}});
  e.static_chunk_size = r.get_int(n, p, "static_chunk_size", 0);
  e.use_dynamic_chunk = r.get_bool(n, p, "use_dynamic_chunk", false);
  if (conformer) {
    e.macaron_style = r.get_bool(n, p, "macaron_style", true);
    e.use_cnn_module = r.get_bool(n, p, "use_cnn_module", true);
    e.cnn_module_kernel = r.positive_int(n, p, "cnn_module_kernel", 15, kMaxKernel);
    if (e.use_cnn_module && !e.causal && e.cnn_module_kernel % 2 == 0)
      r.error(p + ".cnn_module_kernel", "must be odd for a non-causal convolution, got {}", e.cnn_module_kernel);
    e.cnn_module_norm = r.choice<ConvNorm>(n, p, "cnn_module_norm", "batch_norm",
                                           {{"batch_norm", ConvNorm::kBatchNorm}, {"layer_norm", ConvNorm::kLayerNorm}});
  } else {
    e.macaron_style = false;
    e.use_cnn_module = false;
  }
  for (const char* k : {"query_bias", "key_bias", "value_bias", "conv_bias", "mlp_bias", "final_norm"})
    r.require_bool(n, p, k, true);
  r.require_string(n, p, "layer_norm_type", "layer_norm");
  r.require_string(n, p, "mlp_type", "position_wise_feed_forward");
  r.require_string(n, p, "positionwise_layer_type", "linear");
  r.require_number(n, p, "positionwise_conv_kernel_size", 1);
  r.require_number(n, p, "conv_inner_factor", 2);
  r.require_number(n, p, "norm_eps", 1e-5);
  r.require_number(n, p, "conv_norm_eps", 1e-5);
  if (Reader::child(n, "n_kv_head").IsDefined()) r.require_number(n, p, "n_kv_head", e.attention_heads);
  if (Reader::child(n, "head_dim").IsDefined()) r.require_number(n, p, "head_dim", e.output_size / e.attention_heads);
}

void parse_decoder(const Reader& r, const YAML::Node& root, ModelConfig& c) {
  DecoderConfig& d = c.decoder;
  // WeNet's default decoder is the bidirectional one; an explicit null means a CTC-only model.
  if (root["decoder"].IsDefined() && root["decoder"].IsNull())
    r.error("decoder", "null (a CTC-only model) is not supported (supported: transformer, bitransformer)");
  d.type = r.choice<DecoderType>(root, "", "decoder", "bitransformer",
                                 {{"transformer", DecoderType::kTransformer}, {"bitransformer", DecoderType::kBiTransformer}});
  const YAML::Node n = r.section(root, "decoder_conf");
  const std::string p = "decoder_conf";
  r.check_keys(n, p,
               {"attention_heads", "linear_units", "num_blocks", "r_num_blocks", "input_layer", "use_output_layer",
                "normalize_before", "concat_after", "src_attention", "query_bias", "key_bias", "value_bias",
                "src_query_bias", "src_key_bias", "src_value_bias", "activation_type", "layer_norm_type", "norm_eps",
                "n_kv_head", "head_dim", "mlp_type", "mlp_bias"},
               kIgnoredDecoderKeys);
  d.attention_heads = r.positive_int(n, p, "attention_heads", 4, kMaxHeads);
  if (c.encoder.output_size % d.attention_heads != 0)
    r.error(p + ".attention_heads", "{} heads do not divide the model size {}", d.attention_heads, c.encoder.output_size);
  d.linear_units = r.positive_int(n, p, "linear_units", 2048, kMaxLinearUnits);
  d.num_blocks = r.positive_int(n, p, "num_blocks", 6, kMaxBlocks);
  d.r_num_blocks = r.get_int(n, p, "r_num_blocks", 0);
  if (d.r_num_blocks < 0 || d.r_num_blocks > kMaxBlocks)
    r.error(p + ".r_num_blocks", "must be within [0, {}], got {}", kMaxBlocks, d.r_num_blocks);
  if (d.type == DecoderType::kTransformer) d.r_num_blocks = 0;
  d.normalize_before = true;
  r.require_bool(n, p, "normalize_before", true);
  r.require_bool(n, p, "concat_after", false);
  for (const char* k : {"use_output_layer", "src_attention", "query_bias", "key_bias", "value_bias", "src_query_bias",
                        "src_key_bias", "src_value_bias", "mlp_bias"})
    r.require_bool(n, p, k, true);
  r.require_string(n, p, "input_layer", "embed");
  r.require_string(n, p, "layer_norm_type", "layer_norm");
  r.require_string(n, p, "mlp_type", "position_wise_feed_forward");
  r.require_number(n, p, "norm_eps", 1e-5);
  if (Reader::child(n, "n_kv_head").IsDefined()) r.require_number(n, p, "n_kv_head", d.attention_heads);
  if (Reader::child(n, "head_dim").IsDefined()) r.require_number(n, p, "head_dim", c.encoder.output_size / d.attention_heads);
  d.activation = r.choice<Activation>(n, p, "activation_type", "relu",
                                      {{"relu", Activation::kRelu}, {"swish", Activation::kSwish}});
}

void parse_features(const Reader& r, const YAML::Node& root, ModelConfig& c) {
  FbankConfig& f = c.fbank;
  const YAML::Node dataset = r.section(root, "dataset_conf");
  const YAML::Node fbank = Reader::child(dataset, "fbank_conf");
  // WeNet 1.x kept the feature settings under collate_conf.feature_extraction_conf.
  const YAML::Node legacy = Reader::child(Reader::child(root, "collate_conf"), "feature_extraction_conf");
  if (fbank.IsDefined()) {
    const std::string p = "dataset_conf.fbank_conf";
    f.num_mel_bins = r.positive_int(fbank, p, "num_mel_bins", 23, kMaxInputDim);  // torchaudio's kaldi.fbank default
    f.frame_length_ms = float(r.number_in(fbank, p, "frame_length", 25, 0, kMaxFrameMs));
    f.frame_shift_ms = float(r.number_in(fbank, p, "frame_shift", 10, 0, kMaxFrameMs));
  } else if (legacy.IsDefined()) {
    const std::string p = "collate_conf.feature_extraction_conf";
    r.require_string(legacy, p, "feature_type", "fbank");
    r.require_bool(legacy, p, "using_pitch", false);
    f.num_mel_bins = r.positive_int(legacy, p, "mel_bins", 80, kMaxInputDim);
    f.frame_length_ms = float(r.number_in(legacy, p, "frame_length", 25, 0, kMaxFrameMs));
    f.frame_shift_ms = float(r.number_in(legacy, p, "frame_shift", 10, 0, kMaxFrameMs));
  } else {
    for (const char* other : {"mfcc_conf", "log_mel_spectrogram_conf"})
      if (Reader::child(dataset, other).IsDefined())
        r.error(std::string("dataset_conf.") + other, "unsupported features (supported: fbank_conf)");
    f.num_mel_bins = c.encoder.input_dim;  // nothing said: Kaldi fbank with input_dim bins
  }
  if (!(f.frame_length_ms > 0) || !(f.frame_shift_ms > 0))
    r.error("dataset_conf.fbank_conf", "frame_length and frame_shift must be positive, got {} and {}", f.frame_length_ms,
            f.frame_shift_ms);
  if (f.num_mel_bins != c.encoder.input_dim)
    r.error("dataset_conf.fbank_conf.num_mel_bins", "{} mel bins, but input_dim is {}", f.num_mel_bins, c.encoder.input_dim);
  const YAML::Node resample = Reader::child(dataset, "resample_conf");
  f.sample_rate = r.positive_int(resample, "dataset_conf.resample_conf", "resample_rate", 16000, kMaxSampleRate);
  if (f.sample_rate < kMinSampleRate)
    r.error("dataset_conf.resample_conf.resample_rate", "must be at least {} Hz, got {}", kMinSampleRate, f.sample_rate);
}

void parse_cmvn_and_tokens(const Reader& r, const YAML::Node& root, ModelConfig& c) {
  // Newer layout: cmvn: global_cmvn + cmvn_conf {cmvn_file, is_json_cmvn}; older: top-level keys.
  const YAML::Node cmvn_conf = r.section(root, "cmvn_conf");
  const YAML::Node cmvn = Reader::child(root, "cmvn");
  if (cmvn_conf.IsDefined() || cmvn.IsDefined()) {
    const std::string kind = r.get_string(root, "", "cmvn", "");
    if (kind == "global_cmvn") {
      c.cmvn_file = r.get_string(cmvn_conf, "cmvn_conf", "cmvn_file", "");
      c.is_json_cmvn = r.get_bool(cmvn_conf, "cmvn_conf", "is_json_cmvn", true);
    } else if (!kind.empty()) {
      r.error("cmvn", "unsupported value '{}' (supported: global_cmvn, or none)", kind);
    }
  } else {
    c.cmvn_file = r.get_string(root, "", "cmvn_file", "");
    c.is_json_cmvn = r.get_bool(root, "", "is_json_cmvn", true);
  }

  const YAML::Node tok = r.section(root, "tokenizer_conf");
  c.units_file = r.get_string(tok, "tokenizer_conf", "symbol_table_path", "");
  const YAML::Node special = Reader::child(tok, "special_tokens");
  const std::string sp = "tokenizer_conf.special_tokens";
  const YAML::Node ctc_conf = r.section(root, "ctc_conf");
  c.blank_id = r.get_int(ctc_conf, "ctc_conf", "ctc_blank_id", 0);
  c.blank_id = r.get_int(special, sp, "<blank>", c.blank_id);
  c.sos_id = r.get_int(special, sp, "<sos>", c.vocab_size - 1);
  c.eos_id = r.get_int(special, sp, "<eos>", c.vocab_size - 1);
  const std::pair<const char*, int> ids[] = {{"blank", c.blank_id}, {"sos", c.sos_id}, {"eos", c.eos_id}};
  for (const auto& [what, id] : ids)
    if (id < 0 || id >= c.vocab_size)
      r.error(sp, "<{}> id {} is outside the vocabulary [0, {})", what, id, c.vocab_size);
}

ModelConfig parse(const YAML::Node& root, const std::string& source) {
  const Reader r(source);
  if (!root.IsMap()) fail("{}: expected a mapping of WeNet options at the top level", source);
  ModelConfig c;
  c.source = source;
  c.vocab_size = r.positive_int(root, "", "output_dim", 0, kMaxVocabSize);
  r.require_string(root, "", "model", "asr_model");
  r.require_string(root, "", "ctc", "ctc");
  parse_encoder(r, root, c);
  parse_decoder(r, root, c);
  const YAML::Node model_conf = r.section(root, "model_conf");
  c.ctc_weight = float(r.number_in(model_conf, "model_conf", "ctc_weight", 0.5, 0, 1));
  c.reverse_weight = float(r.number_in(model_conf, "model_conf", "reverse_weight", 0.0, 0, 1));
  parse_features(r, root, c);
  parse_cmvn_and_tokens(r, root, c);
  return c;
}

}  // namespace

ModelConfig parse_config_text(const std::string& yaml_text, const std::string& source) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    fail("{}: not valid YAML (line {}, column {}: {})", source, e.mark.line + 1, e.mark.column + 1, e.msg);
  }
  try {
    return parse(root, source);
  } catch (const YAML::Exception& e) {  // anything the typed readers did not anticipate
    fail("{}: malformed configuration ({})", source, e.what());
  }
}

ModelConfig parse_config(const std::string& yaml_path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(yaml_path);
  } catch (const YAML::BadFile&) {
    fail("{}: cannot open the configuration file (missing?)", yaml_path);
  } catch (const YAML::Exception& e) {
    fail("{}: not valid YAML (line {}, column {}: {})", yaml_path, e.mark.line + 1, e.mark.column + 1, e.msg);
  }
  try {
    return parse(root, yaml_path);
  } catch (const YAML::Exception& e) {
    fail("{}: malformed configuration ({})", yaml_path, e.what());
  }
}

int subsampling_rate(Subsampling s) {
  switch (s) {
    case Subsampling::kConv2d4: return 4;
    case Subsampling::kConv2d6: return 6;
    case Subsampling::kConv2d8: return 8;
  }
  return 0;
}

int subsampling_right_context(Subsampling s) {
  switch (s) {  // WeNet's BaseSubsampling.right_context
    case Subsampling::kConv2d4: return 6;
    case Subsampling::kConv2d6: return 10;
    case Subsampling::kConv2d8: return 14;
  }
  return 0;
}

int subsampled_feature_dim(Subsampling s, int input_dim) {
  switch (s) {  // WeNet's Conv2dSubsampling{4,6,8}: valid 3x3 (5x5 for the x3 step) convolutions
    case Subsampling::kConv2d4: return ((input_dim - 1) / 2 - 1) / 2;
    case Subsampling::kConv2d6: return ((input_dim - 1) / 2 - 2) / 3;
    case Subsampling::kConv2d8: return (((input_dim - 1) / 2 - 1) / 2 - 1) / 2;
  }
  return 0;
}

std::string_view name_of(EncoderType t) { return t == EncoderType::kConformer ? "conformer" : "transformer"; }
std::string_view name_of(DecoderType t) { return t == DecoderType::kTransformer ? "transformer" : "bitransformer"; }
std::string_view name_of(PosEncType t) { return t == PosEncType::kRelPos ? "rel_pos" : "abs_pos"; }
std::string_view name_of(Activation a) {
  switch (a) {
    case Activation::kNone: return "none";
    case Activation::kRelu: return "relu";
    case Activation::kSwish: return "swish";
  }
  return "?";
}
std::string_view name_of(ConvNorm n) { return n == ConvNorm::kBatchNorm ? "batch_norm" : "layer_norm"; }
std::string_view name_of(Subsampling s) {
  switch (s) {
    case Subsampling::kConv2d4: return "conv2d";
    case Subsampling::kConv2d6: return "conv2d6";
    case Subsampling::kConv2d8: return "conv2d8";
  }
  return "?";
}

std::string describe(const ModelConfig& c) {
  const EncoderConfig& e = c.encoder;
  const DecoderConfig& d = c.decoder;
  std::string s = fmt::format("encoder: {}, {} blocks x {} dims, {} heads, ffn {}, {}; input {} (x{} subsampling), {}",
                              name_of(e.type), e.num_blocks, e.output_size, e.attention_heads, e.linear_units,
                              name_of(e.activation), name_of(e.input_layer), subsampling_rate(e.input_layer),
                              name_of(e.pos_enc));
  if (e.type == EncoderType::kConformer) {
    if (e.macaron_style) s += ", macaron";
    if (e.use_cnn_module)
      s += fmt::format(", {}conv module kernel {} + {}", e.causal ? "causal " : "", e.cnn_module_kernel,
                       name_of(e.cnn_module_norm));
  }
  if (e.use_dynamic_chunk || e.static_chunk_size > 0) s += " (chunk-trained; decoded with full attention)";
  if (d.type == DecoderType::kBiTransformer) {
    s += fmt::format("\ndecoder: bitransformer, {} left-to-right + {} right-to-left blocks", d.num_blocks, d.r_num_blocks);
  } else {
    s += fmt::format("\ndecoder: transformer, {} blocks", d.num_blocks);
  }
  s += fmt::format(", {} heads, ffn {}, {}; training weights: ctc {}, reverse {}", d.attention_heads, d.linear_units,
                   name_of(d.activation), c.ctc_weight, c.reverse_weight);
  s += fmt::format("\nvocabulary: {} tokens (blank {}, sos {}, eos {})", c.vocab_size, c.blank_id, c.sos_id, c.eos_id);
  s += fmt::format("\nfeatures: fbank {} bins, {} ms / {} ms, {} Hz", c.fbank.num_mel_bins, c.fbank.frame_length_ms,
                   c.fbank.frame_shift_ms, c.fbank.sample_rate);
  s += c.cmvn_file.empty() ? std::string("; no cmvn file named")
                           : fmt::format("; cmvn {} ({})", c.cmvn_file, c.is_json_cmvn ? "json" : "kaldi text");
  return s;
}

}  // namespace wenet_rt
