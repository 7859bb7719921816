#include "decode/attention_rescoring.h"

#include <algorithm>
#include <limits>

#include "core/error.h"

namespace wenet_rt {

void RescoreOptions::validate() const {
  WENET_CHECK(reverse_weight >= 0.f && reverse_weight <= 1.f,
              "attention rescoring: expected reverse_weight in [0, 1], got {}", reverse_weight);
}

int decoder_input_width(const std::vector<Hypothesis>& hyps) {
  size_t longest = 0;
  for (const Hypothesis& h : hyps) longest = std::max(longest, h.tokens.size());
  return int(longest) + 1;
}

void build_decoder_inputs(const std::vector<Hypothesis>& hyps, int sos, int eos, bool reverse, int width,
                          int* ids, int* lens) {
  for (size_t i = 0; i < hyps.size(); ++i) {
    const std::vector<int>& tokens = hyps[i].tokens;
    const int len = int(tokens.size());
    WENET_CHECK(len + 1 <= width, "build_decoder_inputs: hypothesis {} has {} tokens, expected at most width - 1 = {}",
                i, len, width - 1);
    int* row = ids + i * size_t(width);
    row[0] = sos;
    for (int j = 0; j < len; ++j) row[1 + j] = reverse ? tokens[len - 1 - j] : tokens[j];
    std::fill(row + 1 + len, row + width, eos);
    if (lens) lens[i] = len + 1;
  }
}

void build_decoder_targets(const std::vector<Hypothesis>& hyps, int eos, bool reverse, int width, int* targets) {
  for (size_t i = 0; i < hyps.size(); ++i) {
    const std::vector<int>& tokens = hyps[i].tokens;
    const int len = int(tokens.size());
    WENET_CHECK(len + 1 <= width, "build_decoder_targets: hypothesis {} has {} tokens, expected at most width - 1 = {}",
                i, len, width - 1);
    int* row = targets + i * size_t(width);
    for (int j = 0; j < len; ++j) row[j] = reverse ? tokens[size_t(len - 1 - j)] : tokens[size_t(j)];
    row[len] = eos;
    std::fill(row + len + 1, row + width, -1);
  }
}

void build_decoder_trie(const std::vector<std::vector<Hypothesis>>& nbest, size_t N, int sos, bool reverse, int width,
                        DecoderTrie& trie) {
  trie.ids.clear();
  trie.positions.clear();
  trie.utt_offsets.assign(1, 0);
  trie.added_offsets.assign(1, 0);
  trie.paths.assign(nbest.size() * N * size_t(width), 0);
  trie.path_lens.assign(nbest.size() * N, 1);
  // Children of a node as a linked list (an N-best rarely branches more than a few ways).
  std::vector<int> first_child, next_sibling;
  auto add_node = [&](int id, int position) {
    trie.ids.push_back(id);
    trie.positions.push_back(position);
    first_child.push_back(-1);
    next_sibling.push_back(-1);
    return trie.nodes() - 1;
  };
  for (size_t b = 0; b < nbest.size(); ++b) {
    WENET_CHECK(nbest[b].size() <= N, "build_decoder_trie: utterance {} has {} hypotheses, expected at most {}", b,
                nbest[b].size(), N);
    const int root = add_node(sos, 0);
    for (size_t n = 0; n < N; ++n) {
      int* path = trie.paths.data() + (b * N + n) * size_t(width);
      std::fill(path, path + width, root);
      if (n < nbest[b].size()) {
        const std::vector<int>& tokens = nbest[b][n].tokens;
        const int len = int(tokens.size());
        WENET_CHECK(len + 1 <= width, "build_decoder_trie: hypothesis {} of utterance {} has {} tokens, expected at "
                    "most width - 1 = {}", n, b, len, width - 1);
        int node = root;
        for (int j = 0; j < len; ++j) {
          const int id = reverse ? tokens[size_t(len - 1 - j)] : tokens[size_t(j)];
          int child = first_child[size_t(node)];
          while (child >= 0 && trie.ids[size_t(child)] != id) child = next_sibling[size_t(child)];
          if (child < 0) {
            child = add_node(id, j + 1);
            next_sibling[size_t(child)] = first_child[size_t(node)];
            first_child[size_t(node)] = child;
          }
          node = path[j + 1] = child;
        }
        trie.path_lens[b * N + n] = len + 1;
      }
      // The root belongs to the utterance's first hypothesis row.
      trie.added_offsets.push_back(trie.nodes());
    }
    trie.utt_offsets.push_back(trie.nodes());
  }
}

int attention_rescore_targets(std::vector<Hypothesis>& hyps, const float* l2r, const float* r2l, int width,
                              const RescoreOptions& opts) {
  opts.validate();
  WENET_CHECK(!hyps.empty(), "attention_rescore: expected at least one hypothesis, got none");
  WENET_CHECK(l2r != nullptr, "attention_rescore: the left-to-right decoder log-probs are null");
  const bool use_r2l = opts.reverse_weight > 0.f;
  WENET_CHECK(!use_r2l || r2l != nullptr, "attention_rescore: reverse_weight is {} but the right-to-left decoder "
              "log-probs are null", opts.reverse_weight);

  // WeNet accumulates these scores in float32 (sums of decoder-output tensor elements) while its
  // weights are python doubles; mirror both so that near-ties resolve the same way.
  const double reverse_weight = opts.reverse_weight;
  const float l2r_scale = float(1.0 - reverse_weight);
  const float r2l_scale = float(reverse_weight);
  int best = 0;
  float best_total = -std::numeric_limits<float>::infinity();
  for (size_t i = 0; i < hyps.size(); ++i) {
    const int len = int(hyps[i].tokens.size());
    WENET_CHECK(len + 1 <= width, "attention_rescore: hypothesis {} has {} tokens, expected at most width - 1 = {}",
                i, len, width - 1);
    // Position j of the l2r output predicts tokens[j]; position len predicts <eos>.
    const float* row = l2r + i * size_t(width);
    float score = 0.f;
    for (int j = 0; j <= len; ++j) score += row[j];
    if (use_r2l) {
      // WeNet sums the r2l scores in token order: tokens[j] sits at position len - 1 - j.
      const float* r_row = r2l + i * size_t(width);
      float r_score = 0.f;
      for (int j = len - 1; j >= 0; --j) r_score += r_row[j];
      r_score += r_row[len];
      score = score * l2r_scale + r_score * r2l_scale;
    }
    hyps[i].rescore = score;
    hyps[i].total = opts.rescoring_weight * score + float(double(opts.ctc_weight) * hyps[i].ctc_score);
    if (hyps[i].total > best_total) {
      best_total = hyps[i].total;
      best = int(i);
    }
  }
  return best;
}

int attention_rescore(std::vector<Hypothesis>& hyps, const float* l2r, const float* r2l, int width, int vocab,
                      int eos, const RescoreOptions& opts) {
  WENET_CHECK(l2r != nullptr, "attention_rescore: the left-to-right decoder log-probs are null");
  WENET_CHECK(opts.reverse_weight <= 0.f || r2l != nullptr, "attention_rescore: reverse_weight is {} but the "
              "right-to-left decoder log-probs are null", opts.reverse_weight);
  WENET_CHECK(eos >= 0 && eos < vocab, "attention_rescore: expected eos in [0, {}), got {}", vocab, eos);
  // Gather each hypothesis' own targets out of the full log-probs, then score as above.
  std::vector<int> targets(hyps.size() * size_t(width));
  std::vector<float> l2r_t(targets.size(), 0.f), r2l_t;
  for (size_t i = 0; i < hyps.size(); ++i) {
    for (int w : hyps[i].tokens)
      WENET_CHECK(w >= 0 && w < vocab, "attention_rescore: hypothesis {} holds token {}, expected [0, {})", i, w, vocab);
  }
  auto gather = [&](const float* logp, bool reverse, std::vector<float>& out) {
    build_decoder_targets(hyps, eos, reverse, width, targets.data());
    out.assign(targets.size(), 0.f);
    for (size_t r = 0; r < targets.size(); ++r)
      if (targets[r] >= 0) out[r] = logp[r * size_t(vocab) + size_t(targets[r])];
  };
  gather(l2r, false, l2r_t);
  if (opts.reverse_weight > 0.f) gather(r2l, true, r2l_t);
  return attention_rescore_targets(hyps, l2r_t.data(), r2l_t.empty() ? nullptr : r2l_t.data(), width, opts);
}

}  // namespace wenet_rt
