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

// The k best tokens of one frame of log-probs [vocab], best first; equal log-probs keep the lower
// id first (torch's topk order on CPU, and the order the search's tie-breaks assume). Writes k ids
// and values; 1 <= k <= vocab.
void ctc_top_k(const float* logp, int vocab, int k, int* ids, float* vals);

// Reusable search state: holds its buffers (prefix trie, beams, top-k) between calls so that a
// worker searching many utterances allocates only while they grow. Not thread-safe; use one per
// thread (or per stream).
//
// Incremental use (streaming): begin() starts an utterance, advance*() consumes its frames as they
// arrive, in pieces of any size, and nbest() reads the N-best of the frames so far at any time. The
// state (beam of prefixes, trie) carries over between calls: nothing is searched twice, and the
// N-best after frames [0, t) is exactly what a one-shot search of those t frames returns (search()
// and search_top_k() are begin + one advance + nbest). Prefix beam search does not promise that a
// later N-best extends an earlier one: a partial result can be revised when more frames arrive.
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

  // Starts a new utterance: the beam holds the empty prefix alone (score 0), frames() is 0. The
  // constructor starts one too. Buffers keep their capacity.
  void begin();
  // Consumes `frames` more frames of full log-probs [frames][vocab] (top-k selected here, k =
  // min(vocab, first_beam or beam)).
  void advance(const float* log_probs, int frames, int vocab);
  // Consumes `frames` more frames of candidates [frames][k] (as search_top_k takes them). k may
  // differ between calls; ids must be >= 0. Throws wenet_rt::Error on bad arguments, before
  // touching the state.
  void advance_top_k(const int* top_k_ids, const float* top_k_logp, int frames, int k);
  // The N-best of the frames consumed since begin(), best first (as search() would return it).
  std::vector<Hypothesis> nbest() const;
  // Tokens of the current best hypothesis (the partial result); empty before any token.
  std::vector<int> best_tokens() const;
  // Whether the current best hypothesis has at least one token.
  bool best_is_empty() const { return cur_.empty() || cur_.front().node == 0; }
  // Frames consumed since begin().
  int frames() const { return frames_; }

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

  void step(const int* ids, const float* logp, int n);
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
  int frames_ = 0;
};

std::vector<Hypothesis> ctc_prefix_beam_search(const float* log_probs, int frames, int vocab,
                                               const CtcPrefixBeamOptions& opts);

std::vector<std::vector<Hypothesis>> ctc_prefix_beam_search_batch(const float* log_probs, const int* lens,
                                                                  int batch, int max_frames, int vocab,
                                                                  const CtcPrefixBeamOptions& opts);

// Stable log(exp(a) + exp(b)), computed as WeNet's python `log_add` does.
double log_add(double a, double b);

}  // namespace wenet_rt
