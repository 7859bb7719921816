// The encoder's packed weights (internal to src/graph): shared by the full-context encoder
// (asr_model.cc) and the chunk-by-chunk one (streaming_encoder.cc).
#pragma once

#include <vector>

#include "graph/asr_model.h"

namespace wenet_rt {

struct AsrModel::Encoder {
  struct Layer {
    LayerNormWeights norm_ff_macaron, norm_mha, norm_conv, norm_ff, norm_final, conv_norm;
    LinearWeights ff_macaron_w1, ff_macaron_w2, qkv, att_out, pw1, pw2, ff_w1, ff_w2;
    Tensor pos_proj;  // linear_pos applied to every row of the position table, once at load
    Tensor pos_bias_u, pos_bias_v, dw_w, dw_b, causal_pad;
  };
  std::vector<LinearWeights> convs;  // subsampling Conv2d layers (weights [O, C, 3, 3] kept 4-D)
  std::vector<int> conv_strides;
  LinearWeights embed_out;
  Tensor cmvn_mean, cmvn_istd, pe;
  int pe_rows = 0;
  LayerNormWeights after_norm;
  std::vector<Layer> layers;
};

// The residual stream x through the encoder's blocks. A conformer block ends with a LayerNorm
// (norm_final) whose output is the next block's input; instead of a kernel of its own it is
// deferred into the next sublayer's opening norm_linear (Backend::norm_norm_linear, one fused
// kernel where the backend has it), which writes the normalized stream into the other of two
// buffers. Every other read of x goes through x(), which applies a deferred norm first.
class ResidualStream {
 public:
  // out: where finish() leaves the encoder's output (the stream starts there); spare: same shape.
  ResidualStream(Backend& be, const Tensor& out, const Tensor& spare) : be_(be), x_(out), spare_(spare), out_(out) {}

  const Tensor& x() {
    flush();
    return x_;
  }
  // y = act(LayerNorm(x) W^T + b), zero_lens as in Backend::norm_linear.
  void norm_linear(const LayerNormWeights& norm, const LinearWeights& w, Activation act, const Tensor& y,
                   const Tensor* zero_lens = nullptr);
  // x = LayerNorm(x), deferred (a no-op for absent weights).
  void defer_norm(const LayerNormWeights& norm);
  // out = LayerNorm_after(x).
  void finish(const LayerNormWeights& after_norm);

 private:
  void flush();

  Backend& be_;
  Tensor x_, spare_, out_;
  const LayerNormWeights* pending_ = nullptr;
};

// The input layer up to (not including) adding absolute positions: CMVN, the Conv2d + ReLU stack
// over [B, 1, T, F], frames flattened, projected and scaled by sqrt(d) (folded into the
// projection's weights at load). feats: float32 [B, T, F] in backend memory; writes [B, T', d]
// into out (plus residual, the same shape, when given), T' = model.subsampled_length(T).
void subsample_features(const AsrModel& model, const Tensor& feats, const Tensor& out,
                        const Tensor* residual = nullptr);

}  // namespace wenet_rt
