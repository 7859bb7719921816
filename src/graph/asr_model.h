// The WeNet model graph, written once over the Backend interface: subsampling + conformer /
// transformer encoder, CTC head, and the attention decoder(s) used for rescoring. Weights are packed
// once at construction (fused QKV, every decoder layer's memory K/V projection in one matrix,
// BatchNorm folded into the depthwise conv, FFN scale folded into w_2, rel-pos projections of all
// positions precomputed, vocabulary projections padded to a multiple of 8 rows) and live in the backend.
#pragma once

#include <memory>
#include <vector>

#include "backend/backend.h"
#include "model/model_dir.h"

namespace wenet_rt {

struct EncoderOutput {
  Tensor out;              // [B, T', D] in the backend's act dtype
  Tensor lens;             // i32 [B] in backend memory
  std::vector<int> host_lens;
  int batch = 0, frames = 0;
};

class AsrModel {
 public:
  AsrModel(const ModelDir& model, Backend& backend);
  ~AsrModel();
  AsrModel(const AsrModel&) = delete;
  AsrModel& operator=(const AsrModel&) = delete;

  const ModelConfig& config() const { return config_; }
  Backend& backend() const { return backend_; }
  bool has_right_decoder() const;

  // Frames after subsampling for `frames` input frames (WeNet's mask slicing).
  int subsampled_length(int frames) const;
  // The most frames the encoder takes after subsampling (rows of its position table).
  int max_subsampled_frames() const;

  // feats: host float32 [B, T, input_dim] raw fbank (CMVN is applied here), lens: valid frames.
  // The outputs live in the backend's arena until its next reset_arena().
  EncoderOutput encode(const float* feats, int batch, int frames, const int* lens);
  // The same on features already in backend memory (float32 [B, T, input_dim]).
  EncoderOutput encode(const Tensor& feats, const int* lens);
  // CTC log-probs [B, T', V] float32.
  Tensor ctc_log_probs(const EncoderOutput& enc);
  // Decoder log-probs [B * N, L, V] float32 for hyps_in [B * N, L] (<sos> + tokens, padded) with
  // hyps_lens = tokens + 1; hypotheses b*N .. b*N+N-1 attend to utterance b's memory.
  Tensor decode(const EncoderOutput& enc, const int* hyps_in, const int* hyps_lens, int num_hyps,
                int hyp_len, bool right_to_left);
  // The same on hypotheses already in backend memory: hyps_in i32 [B * N, L], hyps_lens i32 [B * N].
  Tensor decode(const EncoderOutput& enc, const Tensor& hyps_in, const Tensor& hyps_lens, bool right_to_left);

  struct Encoder;  // packed weights, defined in asr_model.cc
  struct Decoder;

 private:
  const ModelConfig config_;
  Backend& backend_;
  std::unique_ptr<Encoder> encoder_;
  std::unique_ptr<Decoder> decoder_, right_decoder_;
  LinearWeights ctc_;
};

}  // namespace wenet_rt
