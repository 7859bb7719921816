// CTC searches over host log-probs (already log-softmaxed, row-major [frames][vocab]), with the
// semantics of WeNet's python `wenet/models/transformer/search.py`: greedy search, and prefix beam
// search whose N-best order and scores match it (top-k pruning per frame, prefix merging, the
// blank / repeated-token cases, score = log_add(blank-ending, non-blank-ending), stable sort).
//
// The searches are per utterance; for a batch [B][T][V] with lengths, call them on
// `log_probs + b * T * V` with `frames = lens[b]`, or use the *_batch helpers.
#pragma once

#include <cstddef>
#include <limits>
#include <vector>

namespace wenet_rt {

struct Hypothesis {
  std::vector<int> tokens;
  // CTC prefix score log_add(blank-ending, non-blank-ending). Double because WeNet's python search
  // runs in double and sorts on it; keeping the precision keeps near-ties in the same order.
  double ctc_score = 0.0;
  float rescore = 0.f;  // attention-decoder score (after the l2r/r2l mix); set by attention_rescore
  float total = 0.f;    // rescoring_weight * rescore + ctc_weight * ctc_score
};

// Argmax per frame, collapse repeats, drop blanks.
std::vector<int> ctc_greedy_search(const float* log_probs, int frames, int vocab, int blank = 0);

// Greedy search over a batch [batch][max_frames][vocab] with per-utterance valid lengths.
std::vector<std::vector<int>> ctc_greedy_search_batch(const float* log_probs, const int* lens, int batch,
                                                      int max_frames, int vocab, int blank = 0);

struct CtcPrefixBeamOptions {
  int beam = 10;        // prefixes kept after each frame (WeNet runtime: second_beam_size)
  int first_beam = 0;   // candidate tokens per frame (top-k); 0 = beam, as WeNet's python search
  int blank = 0;

  void validate() const;  // throws wenet_rt::Error naming the bad field
};

// Reusable search state: holds its buffers (prefix trie, beams, top-k) between calls so that a
// worker searching many utterances allocates only while they grow. Not thread-safe; use one per
// thread.
class CtcPrefixBeamSearcher {
 public:
  explicit CtcPrefixBeamSearcher(const CtcPrefixBeamOptions& opts);

  // N-best (at most `beam` hypotheses, best first). Zero frames gives one empty hypothesis, score 0.
  std::vector<Hypothesis> search(const float* log_probs, int frames, int vocab);

  // The same search over candidates already selected per frame (e.g. a GPU top-k, so that only
  // [frames][k] values reach the host): ids and log-probs [frames][k], best first in each frame
  // (their order is the insertion order that breaks score ties). With k = first_beam (or beam) and
  // the same top-k, the result equals search()'s.
  std::vector<Hypothesis> search_top_k(const int* top_k_ids, const float* top_k_logp, int frames, int k);

  const CtcPrefixBeamOptions& options() const { return opts_; }

 private:
  // Prefixes live in a trie: a hypothesis is a node id, so extending or merging a prefix never
  // copies a token vector. Parents always have smaller ids than their children.
  struct Node {
    int token;
    int parent;
    int first_child;
    int next_sibling;
  };
  struct Entry {
    int node;
    double s;      // log-prob of the paths ending in blank
    double ns;     // log-prob of the paths ending in the prefix's last token
    double score;  // log_add(s, ns), filled before sorting
    int order;     // insertion order: python's dict order, the tie-break of its stable sort
  };

  void reset(int k);
  void select_top_k(const float* logp, int vocab, int k);
  void step(const int* ids, const float* logp, int n);
  std::vector<Hypothesis> results() const;
  int child(int node, int token);
  Entry& next_entry(int node);
  void prune();
  void compact_trie();
  std::vector<int> tokens_of(int node) const;

  CtcPrefixBeamOptions opts_;
  std::vector<Node> nodes_;
  std::vector<int> slot_;  // per node: its index in next_ during a frame, else -1
  std::vector<Entry> cur_, next_;
  std::vector<int> top_k_ids_;
  std::vector<float> top_k_logp_;
  std::vector<int> remap_;  // scratch for compact_trie
  std::size_t compact_at_ = 0;
};

std::vector<Hypothesis> ctc_prefix_beam_search(const float* log_probs, int frames, int vocab,
                                               const CtcPrefixBeamOptions& opts);

std::vector<std::vector<Hypothesis>> ctc_prefix_beam_search_batch(const float* log_probs, const int* lens,
                                                                  int batch, int max_frames, int vocab,
                                                                  const CtcPrefixBeamOptions& opts);

// Stable log(exp(a) + exp(b)), computed as WeNet's python `log_add` does.
double log_add(double a, double b);

}  // namespace wenet_rt
