#include "model/params.h"

namespace wenet_rt {

namespace {

using Params = std::map<std::string, Shape>;

void linear(Params& p, const std::string& name, int64_t out, int64_t in, bool bias = true) {
  p[name + ".weight"] = {out, in};
  if (bias) p[name + ".bias"] = {out};
}

void norm(Params& p, const std::string& name, int64_t d) {
  p[name + ".weight"] = {d};
  p[name + ".bias"] = {d};
}

void attention(Params& p, const std::string& name, int64_t d) {
  for (const char* proj : {"linear_q", "linear_k", "linear_v", "linear_out"}) linear(p, name + "." + proj, d, d);
}

void feed_forward(Params& p, const std::string& name, int64_t d, int64_t units) {
  linear(p, name + ".w_1", units, d);
  linear(p, name + ".w_2", d, units);
}

void subsampling(Params& p, const EncoderConfig& e) {
  const int64_t d = e.output_size;
  const int64_t f = subsampled_feature_dim(e.input_layer, e.input_dim);
  p["encoder.embed.conv.0.weight"] = {d, 1, 3, 3};
  p["encoder.embed.conv.0.bias"] = {d};
  switch (e.input_layer) {
    case Subsampling::kConv2d4:  // conv(3, /2), relu, conv(3, /2), relu; out = Sequential(Linear)
      p["encoder.embed.conv.2.weight"] = {d, d, 3, 3};
      p["encoder.embed.conv.2.bias"] = {d};
      linear(p, "encoder.embed.out.0", d, d * f);
      break;
    case Subsampling::kConv2d6:  // conv(3, /2), relu, conv(5, /3), relu; linear
      p["encoder.embed.conv.2.weight"] = {d, d, 5, 5};
      p["encoder.embed.conv.2.bias"] = {d};
      linear(p, "encoder.embed.linear", d, d * f);
      break;
    case Subsampling::kConv2d8:  // three conv(3, /2) + relu; linear
      for (const char* i : {"2", "4"}) {
        p[std::string("encoder.embed.conv.") + i + ".weight"] = {d, d, 3, 3};
        p[std::string("encoder.embed.conv.") + i + ".bias"] = {d};
      }
      linear(p, "encoder.embed.linear", d, d * f);
      break;
  }
}

void conformer_block(Params& p, const std::string& b, const EncoderConfig& e) {
  const int64_t d = e.output_size, h = e.attention_heads;
  attention(p, b + ".self_attn", d);
  if (e.pos_enc == PosEncType::kRelPos) {
    linear(p, b + ".self_attn.linear_pos", d, d, /*bias=*/false);
    p[b + ".self_attn.pos_bias_u"] = {h, d / h};
    p[b + ".self_attn.pos_bias_v"] = {h, d / h};
  }
  feed_forward(p, b + ".feed_forward", d, e.linear_units);
  norm(p, b + ".norm_ff", d);
  norm(p, b + ".norm_mha", d);
  if (e.macaron_style) {
    feed_forward(p, b + ".feed_forward_macaron", d, e.linear_units);
    norm(p, b + ".norm_ff_macaron", d);
  }
  if (e.use_cnn_module) {
    const std::string c = b + ".conv_module";
    p[c + ".pointwise_conv1.weight"] = {2 * d, d, 1};
    p[c + ".pointwise_conv1.bias"] = {2 * d};
    p[c + ".depthwise_conv.weight"] = {d, 1, e.cnn_module_kernel};
    p[c + ".depthwise_conv.bias"] = {d};
    norm(p, c + ".norm", d);
    if (e.cnn_module_norm == ConvNorm::kBatchNorm) {
      p[c + ".norm.running_mean"] = {d};
      p[c + ".norm.running_var"] = {d};
    }
    p[c + ".pointwise_conv2.weight"] = {d, d, 1};
    p[c + ".pointwise_conv2.bias"] = {d};
    // WeNet creates norm_conv and norm_final only together with the conv module.
    norm(p, b + ".norm_conv", d);
    norm(p, b + ".norm_final", d);
  }
}

void transformer_block(Params& p, const std::string& b, const EncoderConfig& e) {
  attention(p, b + ".self_attn", e.output_size);
  feed_forward(p, b + ".feed_forward", e.output_size, e.linear_units);
  norm(p, b + ".norm1", e.output_size);
  norm(p, b + ".norm2", e.output_size);
}

void decoder(Params& p, const std::string& prefix, int blocks, const ModelConfig& c) {
  const int64_t d = c.encoder.output_size, v = c.vocab_size;
  p[prefix + ".embed.0.weight"] = {v, d};
  norm(p, prefix + ".after_norm", d);
  linear(p, prefix + ".output_layer", v, d);
  for (int i = 0; i < blocks; ++i) {
    const std::string b = prefix + ".decoders." + std::to_string(i);
    attention(p, b + ".self_attn", d);
    attention(p, b + ".src_attn", d);
    feed_forward(p, b + ".feed_forward", d, c.decoder.linear_units);
    for (const char* n : {".norm1", ".norm2", ".norm3"}) norm(p, b + n, d);
  }
}

}  // namespace

std::map<std::string, Shape> expected_parameters(const ModelConfig& c) {
  Params p;
  const EncoderConfig& e = c.encoder;
  subsampling(p, e);
  norm(p, "encoder.after_norm", e.output_size);
  for (int i = 0; i < e.num_blocks; ++i) {
    const std::string b = "encoder.encoders." + std::to_string(i);
    if (e.type == EncoderType::kConformer) {
      conformer_block(p, b, e);
    } else {
      transformer_block(p, b, e);
    }
  }
  if (c.decoder.type == DecoderType::kTransformer) {
    decoder(p, "decoder", c.decoder.num_blocks, c);
  } else {
    decoder(p, "decoder.left_decoder", c.decoder.num_blocks, c);
    decoder(p, "decoder.right_decoder", c.decoder.r_num_blocks, c);
  }
  linear(p, "ctc.ctc_lo", c.vocab_size, e.output_size);
  return p;
}

bool is_optional_parameter(const std::string& key) {
  return key.ends_with(".pe") || key.ends_with(".num_batches_tracked") || key == "encoder.global_cmvn.mean" ||
         key == "encoder.global_cmvn.istd";
}

bool is_buffer(const std::string& key) { return key.ends_with(".running_mean") || key.ends_with(".running_var"); }

}  // namespace wenet_rt
