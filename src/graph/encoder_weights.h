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

// The input layer up to (not including) the x * sqrt(d) + position step: CMVN, the Conv2d + ReLU
// stack over [B, 1, T, F], frames flattened and projected. feats: float32 [B, T, F] in backend
// memory; returns [B, T', d] in the arena, T' = model.subsampled_length(T).
Tensor subsample_features(const AsrModel& model, const Tensor& feats);

}  // namespace wenet_rt
