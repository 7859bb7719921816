// What every engine (offline, streaming) builds from a model directory and its options: the
// backend, the front end's options, the unit table, the rescoring weights, and the attention
// rescoring of a batch of N-bests on the device.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "decode/attention_rescoring.h"
#include "engine/host_buffer.h"
#include "frontend/fbank.h"
#include "graph/asr_model.h"
#include "model/model_dir.h"

namespace wenet_rt {

// device cpu | cuda, precision fp16 | fp32 (cuda), threads for the cpu backend (0 = all cores).
std::unique_ptr<Backend> make_engine_backend(const std::string& device, const std::string& precision, int threads,
                                             bool cuda_graphs);
FbankOptions fbank_options(const ModelConfig& config);
std::vector<std::string> unit_table(const Vocabulary& vocab);
// " " when units are word pieces ("▁" marks word starts): what joins the texts of two pieces of
// audio recognized apart; "" for character units.
std::string piece_separator(const std::vector<std::string>& units);
// Milliseconds per encoder frame (fbank shift x subsampling rate).
int encoder_frame_ms(const ModelConfig& config);
// The weights given (reverse_weight < 0: train.yaml's), reverse_weight 0 without a right decoder.
RescoreOptions rescore_options(float ctc_weight, float rescoring_weight, float reverse_weight, const ModelDir& model,
                               const AsrModel& asr);

// Attention rescoring of a batch of N-bests on the device: decoder inputs and targets built on the
// host in reused page-locked buffers, AsrModel::decode_scores per direction, and only the
// [hypotheses, width] target log-probs copied back, asynchronously. Where the backend decodes
// prefix tries, each distinct prefix of an utterance's hypotheses is decoded once (an N-best
// mostly differs in a few tokens: about half the rows of both directions on the demo model).
class BatchRescorer {
 public:
  // share_prefixes false: every hypothesis decoded row by row even where the backend could share.
  BatchRescorer(AsrModel& asr, const RescoreOptions& opts, int sos, int eos, bool share_prefixes = true);

  // Host buffers for `hyps` hypotheses of up to `width` decoder positions (they grow when needed).
  void reserve(size_t hyps, int width);
  // Queues the decoder over nbest[i], the N-best of utterance i of `enc`. The scores can be read by
  // pick() once the backend has passed a fence queued after this call.
  void enqueue(const EncoderOutput& enc, const std::vector<std::vector<Hypothesis>>& nbest);
  // Fills utterance i's hypotheses' rescore and total scores; returns the best one's index.
  int pick(size_t i, std::vector<Hypothesis>& hyps) const;

 private:
  // A trie of `width` positions per hypothesis row, copied into backend memory.
  DecoderTrieRows upload_trie(const DecoderTrie& trie, int width);

  AsrModel& asr_;
  RescoreOptions opts_;
  int sos_, eos_;
  bool share_prefixes_;
  DecoderTrie tries_[2];  // l2r, r2l (kept until the next enqueue: the copies are asynchronous)
  int rows_ = 0, width_ = 0;  // of the last enqueue(): hypotheses per utterance, decoder positions
  HostBuffer lens_, l2r_, r2l_;
  HostBuffer ids_[2], targets_[2];  // l2r, r2l
};

}  // namespace wenet_rt
