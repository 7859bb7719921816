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

// What the CTC prefix search needs of the CTC head, per frame: the k best log-probs and their ids
// (best first, ties to the lower id) and the blank's log-prob. In backend memory.
struct CtcTopK {
  Tensor ids;    // i32 [B, T', k]
  Tensor logp;   // f32 [B, T', k]
  Tensor blank;  // f32 [B, T']
  int k = 0;
};

// Persistent storage for encoder outputs, so that one can outlive reset_arena() (a pipeline
// rescoring batch k while it encodes batch k + 1). Holds any batch of up to `rows` frames in all.
struct EncoderStore {
  Tensor out;   // act dtype, rows x D
  Tensor lens;  // i32 [max_batch]
  int64_t rows = 0;
  int max_batch = 0;
};

// A batch of N-bests as prefix tries in backend memory (decode/attention_rescoring.h: DecoderTrie,
// which says what each field holds), for a decoder that computes each distinct prefix once.
struct DecoderTrieRows {
  Tensor ids, positions;  // i32 [nodes]
  Tensor utt_offsets;     // i32 [B + 1]
  Tensor added_offsets;   // i32 [B * N + 1]
  Tensor paths;           // i32 [B * N, L]
  Tensor path_lens;       // i32 [B * N]
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
  // The same, writing the output into `store` (which must hold batch x T' frames) instead of the arena.
  EncoderOutput encode(const Tensor& feats, const int* lens, const EncoderStore& store);
  EncoderStore make_encoder_store(int max_batch, int64_t rows);
  // CTC log-probs [B, T', V] float32.
  Tensor ctc_log_probs(const EncoderOutput& enc);
  // The CTC head reduced to what the prefix search reads: [B, T', k], never [B, T', V].
  CtcTopK ctc_top_k(const EncoderOutput& enc, int k);
  // Decoder log-probs [B * N, L, V] float32 for hyps_in [B * N, L] (<sos> + tokens, padded) with
  // hyps_lens = tokens + 1; hypotheses b*N .. b*N+N-1 attend to utterance b's memory.
  Tensor decode(const EncoderOutput& enc, const int* hyps_in, const int* hyps_lens, int num_hyps,
                int hyp_len, bool right_to_left);
  // The same on hypotheses already in backend memory: hyps_in i32 [B * N, L], hyps_lens i32 [B * N].
  Tensor decode(const EncoderOutput& enc, const Tensor& hyps_in, const Tensor& hyps_lens, bool right_to_left);
  // Attention rescoring's scores without the [B * N, L, V] log-probs: f32 [B * N, L] holding, at
  // (i, j), the decoder's log-prob of targets[i, j] at position j (0 where the target is -1).
  // targets: i32 [B * N, L] in backend memory (decode/attention_rescoring.h builds them).
  Tensor decode_scores(const EncoderOutput& enc, const Tensor& hyps_in, const Tensor& hyps_lens,
                       const Tensor& targets, bool right_to_left);
  // The same scores, each distinct prefix of an utterance's hypotheses decoded once (backends with
  // supports_prefix_tries()); targets as above ([B * N, L], L = trie.paths' width).
  Tensor decode_scores(const EncoderOutput& enc, const DecoderTrieRows& trie, const Tensor& targets,
                       bool right_to_left);

  struct Encoder;  // packed weights, defined in graph/encoder_weights.h
  struct Decoder;
  // The packed encoder weights, for the chunk-by-chunk encoder (graph/streaming_encoder.h).
  const Encoder& encoder_weights() const { return *encoder_; }

 private:
  EncoderOutput encode_into(const Tensor& feats, const int* lens, const Tensor* out, const Tensor* out_lens);
  // The decoder stack up to (not including) after_norm, in the arena: [B * N, L, D] for hypotheses
  // ids [B * N, L] of lengths lens; or, with a trie, [nodes, D] for its nodes.
  Tensor decoder_layers(const Decoder& dec, const EncoderOutput& enc, const Tensor& ids, const Tensor& lens,
                        const DecoderTrieRows* trie = nullptr);
  // The decoder of that direction, after checking hypotheses [num_hyps, hyp_len] against it and enc.
  const Decoder& pick_decoder(const EncoderOutput& enc, int64_t num_hyps, int64_t hyp_len, bool right_to_left) const;

  const ModelConfig config_;
  Backend& backend_;
  std::unique_ptr<Encoder> encoder_;
  std::unique_ptr<Decoder> decoder_, right_decoder_;
  LinearWeights ctc_;
};

}  // namespace wenet_rt
