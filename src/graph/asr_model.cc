#include "graph/asr_model.h"

#include "graph/encoder_weights.h"

#include <fmt/format.h>

#include <cmath>
#include <string>
#include <string_view>
#include <utility>

namespace wenet_rt {
namespace {

constexpr int kMaxPositions = 5000;  // WeNet's PositionalEncoding max_len

// Sinusoidal table as WeNet computes it in float32 (the rounding of position * div_term matters at
// large positions, so mirror torch's float32 arithmetic rather than computing in double).
HostTensor sinusoid_table(int rows, int d) {
  HostTensor t(DType::kF32, {rows, d});
  const float k = float(-(std::log(10000.0) / d));
  for (int i = 0; i < d; i += 2) {
    const float div = std::exp(float(i) * k);
    for (int p = 0; p < rows; ++p) {
      const float arg = float(p) * div;
      t.data<float>()[p * d + i] = std::sin(arg);
      if (i + 1 < d) t.data<float>()[p * d + i + 1] = std::cos(arg);
    }
  }
  return t;
}

// A cached graph reads its inputs at the addresses it was captured with: they are part of its key.
std::string graph_key(std::string_view part, std::initializer_list<int64_t> dims,
                      std::initializer_list<const Tensor*> inputs) {
  std::string k(part);
  for (int64_t d : dims) k += fmt::format("/{}", d);
  for (const Tensor* t : inputs) k += fmt::format("@{}", t->data);
  return k;
}

int ceil_half(int n) { return n > 1 ? (n - 1) / 2 : 0; }  // count of x[2::2]-style slicing

// Reads weights of a loaded model directory by WeNet name and uploads them in the backend's layout.
class Packer {
 public:
  Packer(const ModelDir& m, Backend& be) : m_(m), be_(be), dt_(be.act_dtype()) {}

  const HostTensor& host(const std::string& name) const {
    auto it = m_.weights.find(name);
    WENET_CHECK(it != m_.weights.end(), "{}: missing parameter '{}'", m_.path, name);
    return it->second;
  }
  bool has(const std::string& name) const { return m_.weights.count(name) != 0; }

  Tensor tensor(const HostTensor& t) { return be_.upload(t, dt_); }
  Tensor tensor(const std::string& name) { return tensor(host(name)); }

  LinearWeights linear(const std::string& prefix, float scale = 1.f, bool bias = true) {
    return linear_of(host(prefix + ".weight"), prefix, scale, bias);
  }

  // A Conv2d weight ([O, C, kh, kw] in the checkpoint) in the backend's conv layout.
  Tensor conv_weight(const std::string& name) {
    const HostTensor& w = host(name);
    WENET_CHECK(w.shape().size() == 4, "{}: '{}' has shape {}, expected [O, C, kh, kw]", m_.path, name,
                shape_str(w.shape()));
    return tensor(be_.conv_channels_last() ? permuted(w, {0, 2, 3, 1}) : w);
  }

  // The subsampling's output projection. WeNet flattens the last conv's output channel-major
  // (input c * F + f); channels-last convolution yields it frequency-major (f * C + c), so for
  // such a backend the weight's columns are reordered to match.
  LinearWeights subsampling_projection(const std::string& prefix, int64_t channels, float scale) {
    HostTensor w = host(prefix + ".weight");
    if (be_.conv_channels_last()) {
      WENET_CHECK(w.shape().size() == 2 && channels > 0 && w.shape()[1] % channels == 0,
                  "{}: '{}.weight' has shape {}, expected [d, {} conv channels x frequencies]", m_.path, prefix,
                  shape_str(w.shape()), channels);
      const int64_t N = w.shape()[0], F = w.shape()[1] / channels;
      w = permuted(w.reshaped({N, channels, F, 1}), {0, 2, 1, 3}).reshaped({N, F * channels});
    }
    return linear_of(std::move(w), prefix, scale, true);
  }

  // A vocabulary projection with its rows zero-padded to a multiple of 8: aligned output rows keep
  // GEMMs on their fast kernels; the extra logits are sliced off before the softmax.
  LinearWeights vocab_linear(const std::string& prefix) {
    const HostTensor &w = host(prefix + ".weight"), &b = host(prefix + ".bias");
    const int64_t V = w.shape()[0], K = w.shape()[1], padded = (V + 7) / 8 * 8;
    HostTensor wp(DType::kF32, {padded, K}), bp(DType::kF32, {padded});
    std::copy_n(w.data<float>(), V * K, wp.data<float>());
    std::copy_n(b.data<float>(), V, bp.data<float>());
    return {tensor(wp), tensor(bp)};
  }

  // Row-wise concatenation of several linears (fused Q/K/V projections).
  LinearWeights fused(const std::vector<std::string>& prefixes) {
    std::vector<const HostTensor*> ws, bs;
    int64_t rows = 0, cols = 0;
    for (const auto& p : prefixes) {
      ws.push_back(&host(p + ".weight"));
      bs.push_back(&host(p + ".bias"));
      rows += ws.back()->shape()[0];
      cols = ws.back()->shape()[1];
    }
    HostTensor w(DType::kF32, {rows, cols}), b(DType::kF32, {rows});
    float* pw = w.data<float>();
    float* pb = b.data<float>();
    for (size_t i = 0; i < ws.size(); ++i) {
      pw = std::copy_n(ws[i]->data<float>(), ws[i]->numel(), pw);
      pb = std::copy_n(bs[i]->data<float>(), bs[i]->numel(), pb);
    }
    return {tensor(w), tensor(b)};
  }

  LayerNormWeights norm(const std::string& prefix) {
    return {tensor(prefix + ".weight"), tensor(prefix + ".bias")};
  }

  // The positional table stored in the checkpoint (`<prefix>.pe`, [1, max_len, d]) when present,
  // else computed the same way; rows are positions.
  Tensor positions(const std::string& pe_name, int d) {
    if (has(pe_name)) {
      const HostTensor& pe = host(pe_name);
      return tensor(pe.reshaped({pe.numel() / d, d}));
    }
    return tensor(sinusoid_table(kMaxPositions, d));
  }

 private:
  LinearWeights linear_of(HostTensor w, const std::string& prefix, float scale, bool bias) {
    LinearWeights l;
    if (w.shape().size() == 3) w = w.reshaped({w.shape()[0], w.shape()[1]});  // 1x1 Conv1d
    scale_inplace(w, scale);
    l.w = tensor(w);
    if (bias) {
      HostTensor b = host(prefix + ".bias");
      scale_inplace(b, scale);
      l.b = tensor(b);
    }
    return l;
  }

  static void scale_inplace(HostTensor& t, float s) {
    if (s == 1.f) return;
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] *= s;
  }

  const ModelDir& m_;
  Backend& be_;
  DType dt_;
};

}  // namespace

// ------------------------------------------------------------------------------------------------
struct AsrModel::Decoder {
  struct Layer {
    LayerNormWeights norm1, norm2, norm3;
    LinearWeights self_qkv, self_out, src_q, src_out, ff_w1, ff_w2;
  };
  LinearWeights src_kv;  // every layer's memory K and V projections in one: [layers * 2d, d]
  Tensor embed, pe;
  int pe_rows = 0;
  LayerNormWeights after_norm;
  LinearWeights output_layer;
  std::vector<Layer> layers;
};

namespace {

void pack_decoder(Packer& p, const std::string& prefix, int num_blocks, int d, AsrModel::Decoder* dec);

}  // namespace

AsrModel::AsrModel(const ModelDir& model, Backend& backend)
    : config_(model.config), backend_(backend), encoder_(std::make_unique<Encoder>()) {
  Packer p(model, backend);
  const EncoderConfig& ec = config_.encoder;
  const int d = ec.output_size;
  Encoder& e = *encoder_;

  // Global CMVN stays float32: features arrive as float32 and CMVN is where their range is widest.
  HostTensor mean(DType::kF32, {int64_t(model.cmvn.mean.size())}), istd = mean;
  for (size_t i = 0; i < model.cmvn.mean.size(); ++i) {
    mean.data<float>()[i] = model.cmvn.mean[i];
    istd.data<float>()[i] = model.cmvn.istd[i];
  }
  if (model.cmvn.mean.empty()) {  // no CMVN: identity
    mean = HostTensor(DType::kF32, {ec.input_dim});
    istd = mean;
    for (int i = 0; i < ec.input_dim; ++i) istd.data<float>()[i] = 1.f, mean.data<float>()[i] = 0.f;
  }
  e.cmvn_mean = backend.upload(mean, DType::kF32);
  e.cmvn_istd = backend.upload(istd, DType::kF32);

  const int num_convs = ec.input_layer == Subsampling::kConv2d8 ? 3 : 2;
  for (int i = 0; i < num_convs; ++i) {
    const std::string c = "encoder.embed.conv." + std::to_string(2 * i);
    e.convs.push_back({p.conv_weight(c + ".weight"), p.tensor(c + ".bias")});
    e.conv_strides.push_back(ec.input_layer == Subsampling::kConv2d6 && i == 1 ? 3 : 2);
  }
  e.embed_out = p.subsampling_projection(
      ec.input_layer == Subsampling::kConv2d4 ? "encoder.embed.out.0" : "encoder.embed.linear",
      e.convs.back().w.dim(0), std::sqrt(float(d)));  // the embedding's x * sqrt(d)
  e.pe = p.positions("encoder.embed.pos_enc.pe", d);
  e.pe_rows = int(e.pe.dim(0));
  e.after_norm = p.norm("encoder.after_norm");

  const bool conformer = ec.type == EncoderType::kConformer;
  const float ff_scale = conformer && ec.macaron_style ? 0.5f : 1.f;
  for (int i = 0; i < ec.num_blocks; ++i) {
    const std::string L = "encoder.encoders." + std::to_string(i) + ".";
    Encoder::Layer l;
    const std::string a = L + "self_attn.";
    l.qkv = p.fused({a + "linear_q", a + "linear_k", a + "linear_v"});
    l.att_out = p.linear(a + "linear_out");
    l.ff_w1 = p.linear(L + "feed_forward.w_1");
    l.ff_w2 = p.linear(L + "feed_forward.w_2", ff_scale);
    if (!conformer) {
      l.norm_mha = p.norm(L + "norm1");
      l.norm_ff = p.norm(L + "norm2");
    } else {
      l.norm_mha = p.norm(L + "norm_mha");
      l.norm_ff = p.norm(L + "norm_ff");
      l.norm_final = p.norm(L + "norm_final");
      if (ec.macaron_style) {
        l.norm_ff_macaron = p.norm(L + "norm_ff_macaron");
        l.ff_macaron_w1 = p.linear(L + "feed_forward_macaron.w_1");
        l.ff_macaron_w2 = p.linear(L + "feed_forward_macaron.w_2", ff_scale);
      }
    }
    if (ec.pos_enc == PosEncType::kRelPos) {
      // The position projection depends on weights only: computed here for all positions, the
      // attention reads its first T rows.
      const LinearWeights pos = p.linear(a + "linear_pos", 1.f, /*bias=*/false);
      l.pos_proj = p.tensor(HostTensor(DType::kF32, {e.pe_rows, d}));
      backend.linear(e.pe, pos, Activation::kNone, nullptr, l.pos_proj);
      l.pos_bias_u = p.tensor(p.host(a + "pos_bias_u"));
      l.pos_bias_v = p.tensor(p.host(a + "pos_bias_v"));
    }
    if (conformer && ec.use_cnn_module) {
      const std::string c = L + "conv_module.";
      l.norm_conv = p.norm(L + "norm_conv");
      l.pw1 = p.linear(c + "pointwise_conv1");
      l.pw2 = p.linear(c + "pointwise_conv2");
      HostTensor w = p.host(c + "depthwise_conv.weight");  // [D, 1, K]
      w = w.reshaped({w.shape()[0], w.shape()[2]});
      HostTensor b = p.host(c + "depthwise_conv.bias");
      if (ec.cnn_module_norm == ConvNorm::kBatchNorm) {
        // Eval BatchNorm is an affine map per channel: fold it into the depthwise conv.
        const HostTensor &g = p.host(c + "norm.weight"), &beta = p.host(c + "norm.bias"),
                         &rm = p.host(c + "norm.running_mean"), &rv = p.host(c + "norm.running_var");
        const int64_t K = w.shape()[1];
        for (int64_t ch = 0; ch < w.shape()[0]; ++ch) {
          const float s = float(g.data<float>()[ch] / std::sqrt(double(rv.data<float>()[ch]) + 1e-5));
          for (int64_t k = 0; k < K; ++k) w.data<float>()[ch * K + k] *= s;
          b.data<float>()[ch] = (b.data<float>()[ch] - rm.data<float>()[ch]) * s + beta.data<float>()[ch];
        }
      } else {
        l.conv_norm = p.norm(c + "norm");
      }
      l.dw_w = p.tensor(w);
      l.dw_b = p.tensor(b);
      if (ec.causal) {
        // The left padding frames of a causal module pass through pointwise_conv1 as zeros: glu(bias).
        const HostTensor& b1 = p.host(c + "pointwise_conv1.bias");
        const int64_t D = b1.numel() / 2;
        HostTensor pad(DType::kF32, {D});
        for (int64_t ch = 0; ch < D; ++ch)
          pad.data<float>()[ch] = b1.data<float>()[ch] / (1.f + std::exp(-b1.data<float>()[D + ch]));
        l.causal_pad = p.tensor(pad);
      }
    }
    e.layers.push_back(std::move(l));
  }

  ctc_ = p.vocab_linear("ctc.ctc_lo");
  const DecoderConfig& dc = config_.decoder;
  if (dc.type == DecoderType::kBiTransformer) {
    decoder_ = std::make_unique<Decoder>();
    right_decoder_ = std::make_unique<Decoder>();
    pack_decoder(p, "decoder.left_decoder.", dc.num_blocks, d, decoder_.get());
    pack_decoder(p, "decoder.right_decoder.", dc.r_num_blocks, d, right_decoder_.get());
  } else {
    decoder_ = std::make_unique<Decoder>();
    pack_decoder(p, "decoder.", dc.num_blocks, d, decoder_.get());
  }
}

namespace {

void pack_decoder(Packer& p, const std::string& prefix, int num_blocks, int d, AsrModel::Decoder* dec) {
  dec->embed = p.tensor(prefix + "embed.0.weight");
  dec->pe = p.positions(prefix + "embed.1.pe", d);
  dec->pe_rows = int(dec->pe.dim(0));
  dec->after_norm = p.norm(prefix + "after_norm");
  dec->output_layer = p.vocab_linear(prefix + "output_layer");
  std::vector<std::string> kv;
  for (int i = 0; i < num_blocks; ++i) {
    const std::string L = prefix + "decoders." + std::to_string(i) + ".src_attn.linear_";
    kv.push_back(L + "k");
    kv.push_back(L + "v");
  }
  dec->src_kv = p.fused(kv);
  for (int i = 0; i < num_blocks; ++i) {
    const std::string L = prefix + "decoders." + std::to_string(i) + ".";
    AsrModel::Decoder::Layer l;
    l.norm1 = p.norm(L + "norm1");
    l.norm2 = p.norm(L + "norm2");
    l.norm3 = p.norm(L + "norm3");
    l.self_qkv = p.fused({L + "self_attn.linear_q", L + "self_attn.linear_k", L + "self_attn.linear_v"});
    l.self_out = p.linear(L + "self_attn.linear_out");
    l.src_q = p.linear(L + "src_attn.linear_q");
    l.src_out = p.linear(L + "src_attn.linear_out");
    l.ff_w1 = p.linear(L + "feed_forward.w_1");
    l.ff_w2 = p.linear(L + "feed_forward.w_2");
    dec->layers.push_back(std::move(l));
  }
}

}  // namespace

AsrModel::~AsrModel() = default;

bool AsrModel::has_right_decoder() const { return right_decoder_ != nullptr; }

int AsrModel::max_subsampled_frames() const { return encoder_->pe_rows; }

int AsrModel::subsampled_length(int frames) const {
  switch (config_.encoder.input_layer) {
    case Subsampling::kConv2d4: return ceil_half(ceil_half(frames));
    case Subsampling::kConv2d6: {
      const int c = ceil_half(frames);
      return c > 4 ? (c - 2) / 3 : 0;
    }
    case Subsampling::kConv2d8: return ceil_half(ceil_half(ceil_half(frames)));
  }
  return 0;
}

void subsample_features(const AsrModel& model, const Tensor& feats, const Tensor& out, const Tensor* residual) {
  const AsrModel::Encoder& e = model.encoder_weights();
  Backend& be = model.backend();
  const DType dt = be.act_dtype();
  const int batch = int(feats.dim(0)), frames = int(feats.dim(1)), F = int(feats.cols());
  const int T = model.subsampled_length(frames), d = model.config().encoder.output_size;
  // One input channel: the features are NCHW [B, 1, T, F] and NHWC [B, T, F, 1] alike.
  const bool channels_last = be.conv_channels_last();
  const int h_axis = channels_last ? 1 : 2, w_axis = h_axis + 1, c_axis = channels_last ? 3 : 1;
  Tensor x = be.alloc({batch, 1, frames, F}, dt);
  be.cmvn(feats, e.cmvn_mean, e.cmvn_istd, x);
  if (channels_last) x = x.view({batch, frames, F, 1});
  for (size_t i = 0; i < e.convs.size(); ++i) {
    const Tensor& w = e.convs[i].w;
    const int s = e.conv_strides[i], k = int(w.dim(h_axis));  // w's kh axis: x's H axis in either layout
    const int64_t O = w.dim(0), Ho = (x.dim(h_axis) - k) / s + 1, Wo = (x.dim(w_axis) - k) / s + 1;
    Tensor y = channels_last ? be.alloc({batch, Ho, Wo, O}, dt) : be.alloc({batch, O, Ho, Wo}, dt);
    be.conv2d(x, w, e.convs[i].b, s, true, y);
    x = y;
  }
  WENET_CHECK(x.dim(h_axis) == T, "subsampling produced {} frames, expected {}", x.dim(h_axis), T);
  WENET_CHECK(out.numel() == int64_t(batch) * T * d, "subsampling: an output of {} values, expected {} x {} x {}",
              out.numel(), batch, T, d);
  // Channels-last output rows are already frames (f, c); NCHW needs [B, C, T, F] -> [B, T, C, F].
  Tensor flat = x;
  if (!channels_last) {
    flat = be.alloc({batch, T, x.dim(1), x.dim(3)}, dt);
    be.transpose_ct(x, flat);
  }
  be.linear(flat.view({batch, T, x.dim(c_axis) * x.dim(w_axis)}), e.embed_out, Activation::kNone, residual, out);
}

void ResidualStream::norm_linear(const LayerNormWeights& norm, const LinearWeights& w, Activation act, const Tensor& y,
                                 const Tensor* zero_lens) {
  if (pending_ && !zero_lens) {
    be_.norm_norm_linear(x_, *pending_, spare_, norm, w, act, y);
    std::swap(x_, spare_);
    pending_ = nullptr;
    return;
  }
  flush();
  be_.norm_linear(x_, norm, w, act, y, zero_lens);
}

void ResidualStream::defer_norm(const LayerNormWeights& norm) {
  flush();
  if (norm.gamma.data) pending_ = &norm;
}

void ResidualStream::finish(const LayerNormWeights& after_norm) {
  flush();
  be_.layer_norm(x_, after_norm, out_);
}

void ResidualStream::flush() {
  if (!pending_) return;
  be_.layer_norm(x_, *pending_, x_);
  pending_ = nullptr;
}

EncoderOutput AsrModel::encode(const float* feats, int batch, int frames, const int* lens) {
  Tensor x = backend_.alloc({batch, frames, config_.encoder.input_dim}, DType::kF32);
  backend_.copy_in(feats, x);
  return encode(x, lens);
}

EncoderOutput AsrModel::encode(const Tensor& x_in, const int* lens) { return encode_into(x_in, lens, nullptr, nullptr); }

EncoderStore AsrModel::make_encoder_store(int max_batch, int64_t rows) {
  WENET_CHECK(max_batch > 0 && rows > 0, "encoder store: expected a positive batch and row count, got {} and {}",
              max_batch, rows);
  EncoderStore s;
  s.out = backend_.upload(HostTensor(DType::kF32, {rows, config_.encoder.output_size}), backend_.act_dtype());
  s.lens = backend_.upload(HostTensor(DType::kI32, {max_batch}), DType::kI32);
  s.rows = rows;
  s.max_batch = max_batch;
  return s;
}

EncoderOutput AsrModel::encode(const Tensor& feats, const int* lens, const EncoderStore& store) {
  const int batch = int(feats.dim(0)), T = subsampled_length(int(feats.dim(1)));
  WENET_CHECK(batch <= store.max_batch && int64_t(batch) * T <= store.rows,
              "encode: a batch of {} x {} frames does not fit the store of {} utterances / {} frames", batch, T,
              store.max_batch, store.rows);
  Tensor out = store.out.view({store.rows * config_.encoder.output_size});
  out = make_view(out.data, {batch, T, config_.encoder.output_size}, out.dtype);
  Tensor out_lens = make_view(store.lens.data, {batch}, DType::kI32);
  return encode_into(feats, lens, &out, &out_lens);
}

EncoderOutput AsrModel::encode_into(const Tensor& x_in, const int* lens, const Tensor* out, const Tensor* out_lens) {
  WENET_CHECK(x_in.rank == 3 && x_in.dtype == DType::kF32 && x_in.cols() == config_.encoder.input_dim,
              "encode: expected float32 features [B, T, {}]", config_.encoder.input_dim);
  const int batch = int(x_in.dim(0)), frames = int(x_in.dim(1));
  const EncoderConfig& ec = config_.encoder;
  const Encoder& e = *encoder_;
  const int d = ec.output_size;
  Backend& be = backend_;
  const DType dt = be.act_dtype();

  EncoderOutput r;
  r.batch = batch;
  r.frames = subsampled_length(frames);
  WENET_CHECK(r.frames > 0, "input of {} frames is too short for {}x subsampling", frames,
              ec.input_layer == Subsampling::kConv2d4 ? 4 : ec.input_layer == Subsampling::kConv2d6 ? 6 : 8);
  WENET_CHECK(r.frames <= e.pe_rows, "input of {} frames exceeds the model's {} positions", frames, e.pe_rows);
  r.host_lens.resize(size_t(batch));
  for (int b = 0; b < batch; ++b) {
    WENET_CHECK(lens[b] >= 0 && lens[b] <= frames, "utterance {}: length {} outside [0, {}]", b, lens[b], frames);
    r.host_lens[size_t(b)] = subsampled_length(lens[b]);
  }

  r.lens = out_lens ? *out_lens : be.alloc({batch}, DType::kI32);
  be.copy_in(r.host_lens.data(), r.lens);
  const int T = r.frames;
  r.out = out ? *out : be.alloc({batch, T, d}, dt);

  const std::string key = graph_key("enc", {batch, frames}, {&x_in, &r.lens, &r.out});
  be.run_cached(key, [&] {
    const bool rel = ec.pos_enc == PosEncType::kRelPos;
    if (rel) {  // positions enter in the attention
      subsample_features(*this, x_in, r.out);
    } else {
      const Tensor h = be.alloc({batch, T, d}, dt), pe = e.pe.view({e.pe_rows, d});
      subsample_features(*this, x_in, h);
      be.scale_add_pos(h, 1.f, &pe, r.out);
    }

    ResidualStream xs(be, r.out, be.alloc({batch, T, d}, dt));
    Tensor qkv = be.alloc({batch, T, 3 * d}, dt);
    Tensor ctx = be.alloc({batch, T, d}, dt);
    Tensor ff = be.alloc({batch, T, ec.linear_units}, dt);
    Tensor conv_in = be.alloc({batch, T, 2 * d}, dt);
    for (const Encoder::Layer& l : e.layers) {
      if (l.ff_macaron_w1.w.data) {
        xs.norm_linear(l.norm_ff_macaron, l.ff_macaron_w1, ec.activation, ff);
        be.linear(ff, l.ff_macaron_w2, Activation::kNone, &xs.x(), xs.x());
      }
      xs.norm_linear(l.norm_mha, l.qkv, Activation::kNone, qkv);
      AttentionArgs a;
      a.q = qkv.col_slice(0, d);
      a.k = qkv.col_slice(d, d);
      a.v = qkv.col_slice(2 * d, d);
      a.key_lens = r.lens;
      a.heads = ec.attention_heads;
      a.out = ctx;
      if (rel) {
        a.pos = l.pos_proj;
        a.pos_bias_u = l.pos_bias_u;
        a.pos_bias_v = l.pos_bias_v;
      }
      be.attention(a);
      be.linear(ctx, l.att_out, Activation::kNone, &xs.x(), xs.x());
      if (l.pw1.w.data) {
        // WeNet zeroes the conv module's input at padded frames, then convolves every frame.
        xs.norm_linear(l.norm_conv, l.pw1, Activation::kNone, conv_in, &r.lens);
        ConvModuleArgs c;
        c.x = conv_in;
        c.lens = r.lens;
        c.dw_w = l.dw_w;
        c.dw_b = l.dw_b;
        c.norm = l.conv_norm;
        c.y = ctx;
        c.causal = ec.causal;
        c.causal_pad = l.causal_pad;
        be.conv_module(c, ec.activation);
        be.linear(ctx, l.pw2, Activation::kNone, &xs.x(), xs.x());
      }
      xs.norm_linear(l.norm_ff, l.ff_w1, ec.activation, ff);
      be.linear(ff, l.ff_w2, Activation::kNone, &xs.x(), xs.x());
      xs.defer_norm(l.norm_final);
    }
    xs.finish(e.after_norm);
  });
  return r;
}

Tensor AsrModel::ctc_log_probs(const EncoderOutput& enc) {
  const int V = config_.vocab_size;
  Tensor logits = backend_.alloc({enc.batch, enc.frames, ctc_.w.dim(0)}, backend_.act_dtype());
  Tensor out = backend_.alloc({enc.batch, enc.frames, V}, DType::kF32);
  backend_.run_cached(graph_key("ctc", {enc.batch, enc.frames}, {&enc.out, &logits, &out}), [&] {
    backend_.linear(enc.out, ctc_, Activation::kNone, nullptr, logits);
    backend_.log_softmax(logits.col_slice(0, V), out);
  });
  return out;
}

CtcTopK AsrModel::ctc_top_k(const EncoderOutput& enc, int k) {
  const int V = config_.vocab_size;
  WENET_CHECK(k >= 1 && k <= V, "ctc_top_k: expected k in [1, {}], got {}", V, k);
  CtcTopK r;
  r.k = k;
  Tensor logits = backend_.alloc({enc.batch, enc.frames, ctc_.w.dim(0)}, backend_.act_dtype());
  r.ids = backend_.alloc({enc.batch, enc.frames, k}, DType::kI32);
  r.logp = backend_.alloc({enc.batch, enc.frames, k}, DType::kF32);
  r.blank = backend_.alloc({enc.batch, enc.frames}, DType::kF32);
  backend_.run_cached(graph_key("ctc_top_k", {enc.batch, enc.frames, k}, {&enc.out, &logits, &r.ids}), [&] {
    backend_.linear(enc.out, ctc_, Activation::kNone, nullptr, logits);
    backend_.log_softmax_top_k(logits.col_slice(0, V), config_.blank_id, r.ids, r.logp, r.blank);
  });
  return r;
}

Tensor AsrModel::decode(const EncoderOutput& enc, const int* hyps_in, const int* hyps_lens, int num_hyps,
                        int hyp_len, bool right_to_left) {
  WENET_CHECK(num_hyps > 0 && hyp_len > 0, "{} hypotheses of length {}", num_hyps, hyp_len);
  Tensor ids = backend_.alloc({num_hyps, hyp_len}, DType::kI32);
  backend_.copy_in(hyps_in, ids);
  Tensor lens = backend_.alloc({num_hyps}, DType::kI32);
  backend_.copy_in(hyps_lens, lens);
  return decode(enc, ids, lens, right_to_left);
}

const AsrModel::Decoder& AsrModel::pick_decoder(const EncoderOutput& enc, int64_t num_hyps, int64_t hyp_len,
                                                bool right_to_left) const {
  const Decoder* dec = right_to_left ? right_decoder_.get() : decoder_.get();
  WENET_CHECK(dec, "this model has no right-to-left decoder");
  WENET_CHECK(num_hyps > 0 && num_hyps % enc.batch == 0, "{} hypotheses for a batch of {}", num_hyps, enc.batch);
  WENET_CHECK(hyp_len > 0 && hyp_len <= dec->pe_rows, "hypothesis length {} outside [1, {}]", hyp_len, dec->pe_rows);
  return *dec;
}

namespace {

void check_hyps(const Tensor& ids, const Tensor& lens) {
  WENET_CHECK(ids.rank == 2 && ids.dtype == DType::kI32 && lens.dtype == DType::kI32 && lens.numel() == ids.dim(0),
              "decode: expected int32 hypotheses [N, L] and lengths [N]");
}

}  // namespace

Tensor AsrModel::decode(const EncoderOutput& enc, const Tensor& ids, const Tensor& lens, bool right_to_left) {
  check_hyps(ids, lens);
  const Decoder& dec = pick_decoder(enc, ids.dim(0), ids.dim(1), right_to_left);
  const int M = int(ids.dim(0)), L = int(ids.dim(1)), V = config_.vocab_size;
  Backend& be = backend_;
  Tensor out = be.alloc({M, L, V}, DType::kF32);
  const std::string key = graph_key(right_to_left ? "r2l" : "dec", {enc.batch, enc.frames, M, L},
                                    {&enc.out, &enc.lens, &ids, &lens, &out});
  be.run_cached(key, [&] {
    Tensor x = decoder_layers(dec, enc, ids, lens);
    Tensor logits = be.alloc({M, L, dec.output_layer.w.dim(0)}, be.act_dtype());
    be.norm_linear(x, dec.after_norm, dec.output_layer, Activation::kNone, logits);
    be.log_softmax(logits.col_slice(0, V), out);
  });
  return out;
}

Tensor AsrModel::decode_scores(const EncoderOutput& enc, const Tensor& ids, const Tensor& lens, const Tensor& targets,
                               bool right_to_left) {
  check_hyps(ids, lens);
  const Decoder& dec = pick_decoder(enc, ids.dim(0), ids.dim(1), right_to_left);
  const int M = int(ids.dim(0)), L = int(ids.dim(1)), d = config_.encoder.output_size;
  WENET_CHECK(targets.dtype == DType::kI32 && targets.numel() == int64_t(M) * L,
              "decode_scores: expected int32 targets [{}, {}]", M, L);
  Backend& be = backend_;
  Tensor out = be.alloc({M, L}, DType::kF32);
  const std::string key = graph_key(right_to_left ? "r2l_scores" : "dec_scores", {enc.batch, enc.frames, M, L},
                                    {&enc.out, &enc.lens, &ids, &lens, &targets, &out});
  be.run_cached(key, [&] {
    Tensor x = decoder_layers(dec, enc, ids, lens);
    be.layer_norm(x, dec.after_norm, x);
    be.linear_log_softmax_gather(x.view({int64_t(M) * L, d}), dec.output_layer, config_.vocab_size,
                                 targets.view({int64_t(M) * L}), out.view({int64_t(M) * L}));
  });
  return out;
}

Tensor AsrModel::decode_scores(const EncoderOutput& enc, const DecoderTrieRows& trie, const Tensor& targets,
                               bool right_to_left) {
  WENET_CHECK(backend_.supports_prefix_tries(), "decode_scores: the {} backend does not decode prefix tries",
              backend_.name());
  WENET_CHECK(trie.paths.rank == 2 && trie.ids.rank == 1,
              "decode_scores: expected trie paths [B * N, L] and ids [nodes]");
  const Decoder& dec = pick_decoder(enc, trie.paths.dim(0), trie.paths.dim(1), right_to_left);
  const int64_t M = trie.paths.numel(), nodes = trie.ids.numel(), d = config_.encoder.output_size;
  WENET_CHECK(targets.dtype == DType::kI32 && targets.numel() == M, "decode_scores: expected int32 targets [{}, {}]",
              trie.paths.dim(0), trie.paths.dim(1));
  Backend& be = backend_;
  Tensor out = be.alloc({trie.paths.dim(0), trie.paths.dim(1)}, DType::kF32);
  const std::string key = graph_key(right_to_left ? "r2l_trie" : "dec_trie", {enc.batch, enc.frames, nodes, M},
                                    {&enc.out, &enc.lens, &trie.ids, &trie.paths, &targets, &out});
  be.run_cached(key, [&] {
    Tensor x = decoder_layers(dec, enc, trie.ids, trie.path_lens, &trie);
    be.layer_norm(x, dec.after_norm, x);
    const Tensor rows = trie.paths.view({M});
    be.linear_log_softmax_gather(x.view({nodes, d}), dec.output_layer, config_.vocab_size, targets.view({M}),
                                 out.view({M}), &rows);
  });
  return out;
}

Tensor AsrModel::decoder_layers(const Decoder& dec_ref, const EncoderOutput& enc, const Tensor& ids,
                                const Tensor& lens, const DecoderTrieRows* trie) {
  const Decoder* dec = &dec_ref;
  Backend& be = backend_;
  const DType dt = be.act_dtype();
  const int d = config_.encoder.output_size, B = enc.batch, T = enc.frames;
  const DecoderConfig& dc = config_.decoder;
  // Hypothesis rows: [M, L, C] activations, M = B * N hypotheses of L positions. Trie: [nodes, C].
  const int64_t M = trie ? trie->paths.dim(0) : ids.dim(0), L = trie ? 0 : ids.dim(1), N = M / B;
  const int64_t rows = trie ? ids.numel() : M * L;
  const auto act = [&](int64_t cols) {
    const Tensor t = be.alloc({rows, cols}, dt);
    return trie ? t : t.view({M, L, cols});
  };

  Tensor x = act(d);
  Tensor pe = dec->pe.view({dec->pe_rows, d});
  be.embed(ids, dec->embed, std::sqrt(float(d)), pe, x, trie ? &trie->positions : nullptr);
  Tensor qkv = act(3 * d);
  Tensor ctx = act(d);
  // Memory K/V of every layer in one GEMM: once per utterance, shared by its hypotheses.
  Tensor kv = be.alloc({B, T, dec->src_kv.w.dim(0)}, dt);
  be.linear(enc.out, dec->src_kv, Activation::kNone, nullptr, kv);
  int64_t kv_col = 0;
  Tensor ff = act(dc.linear_units);
  for (const Decoder::Layer& l : dec->layers) {
    be.norm_linear(x, l.norm1, l.self_qkv, Activation::kNone, qkv);
    AttentionArgs sa;
    sa.q = qkv.col_slice(0, d);
    sa.k = qkv.col_slice(d, d);
    sa.v = qkv.col_slice(2 * d, d);
    sa.key_lens = lens;
    sa.heads = dc.attention_heads;
    sa.causal = true;
    sa.out = ctx;
    if (trie) {  // each hypothesis path: the nodes it adds attend to the path up to them
      sa.query_offsets = trie->added_offsets;
      sa.key_rows = trie->paths;
    }
    be.attention(sa);
    be.linear(ctx, l.self_out, Activation::kNone, &x, x);

    be.norm_linear(x, l.norm2, l.src_q, Activation::kNone, ctx);
    Tensor q = qkv.col_slice(0, d);
    AttentionArgs ca;
    ca.q = ctx;
    ca.k = kv.col_slice(kv_col, d);
    ca.v = kv.col_slice(kv_col + d, d);
    kv_col += 2 * d;
    ca.key_lens = enc.lens;
    ca.heads = dc.attention_heads;
    if (trie)
      ca.query_offsets = trie->utt_offsets;  // an utterance's nodes attend to its memory
    else
      ca.queries_per_kv = int(N);
    ca.out = q;  // the Q columns of qkv are free now
    be.attention(ca);
    be.linear(q, l.src_out, Activation::kNone, &x, x);

    be.norm_linear(x, l.norm3, l.ff_w1, dc.activation, ff);
    be.linear(ff, l.ff_w2, Activation::kNone, &x, x);
  }
  return x;
}

}  // namespace wenet_rt
