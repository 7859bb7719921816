// Attention rescoring of a CTC N-best, as WeNet's python `attention_rescoring` scores it: per
// hypothesis the sum of the decoder's log-probs of its tokens and of the final <eos>; with a
// bidirectional decoder, (1 - reverse_weight) * l2r + reverse_weight * r2l; then
// rescoring_weight * that + ctc_weight * the CTC prefix score (WeNet's C++ runtime formula; its
// python has no rescoring_weight, i.e. 1). The decoder runs elsewhere (a backend); this file builds
// its inputs and combines its outputs.
//
// Batches: the decoder may run on [B][nbest_max][width][vocab] rows; pass each utterance's slice
// (`l2r + b * nbest_max * width * vocab`). Rows past hyps.size() and columns past each hypothesis'
// length + 1 are never read.
#pragma once

#include <vector>

#include "decode/ctc_search.h"

namespace wenet_rt {

struct RescoreOptions {
  float ctc_weight = 0.5f;        // WeNet C++ runtime default (its python recognize.py uses 0.0)
  float reverse_weight = 0.f;     // > 0 needs the right-to-left decoder's log-probs
  float rescoring_weight = 1.f;

  void validate() const;  // throws wenet_rt::Error naming the bad field
};

// Decoder input width for an N-best: longest hypothesis + 1 (<sos> + tokens; the decoder output at
// position len(hyp) scores <eos>). 1 when every hypothesis is empty.
int decoder_input_width(const std::vector<Hypothesis>& hyps);

// Fills `ids` ([hyps.size()][width], row-major) as WeNet builds decoder inputs: <sos>, the tokens,
// then <eos> padding. With `reverse` the tokens are reversed (right-to-left decoder input, as
// WeNet's forward_attention_decoder builds r_hyps: <sos> + reversed tokens + <eos> padding).
// `lens` (optional, [hyps.size()]) gets len(tokens) + 1, the same for both directions.
void build_decoder_inputs(const std::vector<Hypothesis>& hyps, int sos, int eos, bool reverse, int width,
                          int* ids, int* lens = nullptr);

// Fills `targets` ([hyps.size()][width]) with what the decoder output at each position is scored
// on, for a decoder that returns only those log-probs (AsrModel::decode_scores): position j holds
// tokens[j] (l2r) or tokens[len - 1 - j] (r2l, whose input is reversed) for j < len, <eos> at
// j = len, and -1 (not scored) past it.
void build_decoder_targets(const std::vector<Hypothesis>& hyps, int eos, bool reverse, int width, int* targets);

// The decoder inputs of a batch of N-bests as prefix tries, for a decoder that computes each
// distinct prefix once (Backend::supports_prefix_tries()). A causal decoder's output at position j
// depends only on the inputs 0..j, so the hypotheses of an utterance that share a prefix (l2r) or
// a suffix (r2l, whose input is reversed) share those rows: one node per distinct input prefix.
// Nodes of utterance b: its root (<sos>), then the nodes hypothesis 0 adds, then those hypothesis
// 1 adds, ...: what a hypothesis adds is the end of its path, consecutive rows (its attention
// queries), and its earlier positions are nodes of earlier hypotheses (keys it reads).
struct DecoderTrie {
  std::vector<int> ids;            // [nodes] the input token of each node (<sos> at a root)
  std::vector<int> positions;      // [nodes] its position (depth; 0 at a root)
  std::vector<int> utt_offsets;    // [B + 1] utterance b's nodes: utt_offsets[b] .. utt_offsets[b + 1] - 1
  std::vector<int> added_offsets;  // [B * N + 1] the nodes hypothesis row i adds
  std::vector<int> paths;          // [B * N][width] node of each input position (the root past the end)
  std::vector<int> path_lens;      // [B * N] len(tokens) + 1
  int nodes() const { return int(ids.size()); }
};

// Builds `trie` (reusing its capacity) for nbest[b], b < B, as hypothesis rows b * N + n; rows
// past nbest[b].size() are empty hypotheses (their path is the root alone). width as
// decoder_input_width(); reverse for the right-to-left decoder. The targets of each row are
// build_decoder_targets()'s: position j of row i scores node paths[i][j].
void build_decoder_trie(const std::vector<std::vector<Hypothesis>>& nbest, size_t N, int sos, bool reverse, int width,
                        DecoderTrie& trie);

// Scores every hypothesis from the log-probs of its own targets, `l2r` (and `r2l` when
// reverse_weight > 0) [hyps.size()][width] as built above. Sums in the same order as the
// full-vocabulary overload below, so both give identical scores. Returns the best index.
int attention_rescore_targets(std::vector<Hypothesis>& hyps, const float* l2r, const float* r2l, int width,
                              const RescoreOptions& opts);

// Scores every hypothesis from decoder log-probs `l2r` (and `r2l` when reverse_weight > 0; may be
// null otherwise), both [hyps.size()][width][vocab] for the inputs built above. Fills
// Hypothesis::rescore and ::total; returns the index of the best total (the first one on ties).
int attention_rescore(std::vector<Hypothesis>& hyps, const float* l2r, const float* r2l, int width, int vocab,
                      int eos, const RescoreOptions& opts);

}  // namespace wenet_rt
