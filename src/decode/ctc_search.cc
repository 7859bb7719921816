#include "decode/ctc_search.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace wenet_rt {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();
// The trie is compacted (only survivors' paths kept) once it holds this many nodes, so that a
// long utterance does not keep every pruned extension alive.
constexpr size_t kCompactMinNodes = size_t{1} << 16;

void check_input(const float* log_probs, int frames, int vocab, int blank, const char* what) {
  WENET_CHECK(frames >= 0, "{}: expected frames >= 0, got {}", what, frames);
  WENET_CHECK(vocab > 0, "{}: expected vocab > 0, got {}", what, vocab);
  WENET_CHECK(blank >= 0 && blank < vocab, "{}: expected blank in [0, {}), got {}", what, vocab, blank);
  WENET_CHECK(frames == 0 || log_probs != nullptr, "{}: log_probs is null for {} frames", what, frames);
}

}  // namespace

double log_add(double a, double b) {
  // With one side -inf the formula below gives the other side exactly; skipping exp/log there is
  // most of the search's time (every new prefix starts at -inf).
  if (a == kNegInf) return b;
  if (b == kNegInf) return a;
  const double m = std::max(a, b);
  return m + std::log(std::exp(a - m) + std::exp(b - m));
}

std::vector<int> ctc_greedy_search(const float* log_probs, int frames, int vocab, int blank) {
  check_input(log_probs, frames, vocab, blank, "ctc_greedy_search");
  std::vector<int> out;
  int prev = -1;
  for (int t = 0; t < frames; ++t) {
    const float* row = log_probs + size_t(t) * vocab;
    // First maximum wins ties, as torch's topk(1) does on CPU.
    int best = int(std::max_element(row, row + vocab) - row);
    if (best != prev && best != blank) out.push_back(best);
    prev = best;
  }
  return out;
}

std::vector<std::vector<int>> ctc_greedy_search_batch(const float* log_probs, const int* lens, int batch,
                                                      int max_frames, int vocab, int blank) {
  std::vector<std::vector<int>> out(size_t(std::max(batch, 0)));
  for (int b = 0; b < batch; ++b) {
    WENET_CHECK(lens[b] >= 0 && lens[b] <= max_frames, "ctc_greedy_search_batch: expected lens[{}] in [0, {}], got {}",
                b, max_frames, lens[b]);
    out[b] = ctc_greedy_search(log_probs + size_t(b) * max_frames * vocab, lens[b], vocab, blank);
  }
  return out;
}

void CtcPrefixBeamOptions::validate() const {
  WENET_CHECK(beam >= 1, "ctc prefix beam search: expected beam >= 1, got {}", beam);
  WENET_CHECK(first_beam >= 0, "ctc prefix beam search: expected first_beam >= 0 (0 = beam), got {}", first_beam);
  WENET_CHECK(blank >= 0, "ctc prefix beam search: expected blank >= 0, got {}", blank);
}

CtcPrefixBeamSearcher::CtcPrefixBeamSearcher(const CtcPrefixBeamOptions& opts) : opts_(opts) {
  opts_.validate();
  begin();
}

void CtcPrefixBeamSearcher::begin() {
  nodes_.clear();
  nodes_.push_back({-1, -1, -1, -1});  // the empty prefix
  slot_.assign(1, -1);
  cur_.clear();
  // WeNet starts from the empty prefix with blank-ending score 0 (log 1).
  cur_.push_back({0, 0.0, kNegInf, 0.0, 0});
  compact_at_ = kCompactMinNodes;
  frames_ = 0;
}

void ctc_top_k(const float* logp, int vocab, int k, int* ids, float* vals) {
  // Insert v into the sorted list of n entries (dropping the last one when n == k).
  auto insert = [&](int n, int v, float p) {
    int i = std::min(n, k - 1);
    while (i > 0 && p > vals[i - 1]) {
      vals[i] = vals[i - 1];
      ids[i] = ids[i - 1];
      --i;
    }
    vals[i] = p;
    ids[i] = v;
  };
  for (int v = 0; v < k; ++v) insert(v, v, logp[v]);
  // Most tokens lose to the k-th best: keep that comparison alone in the hot loop.
  float threshold = vals[k - 1];
  for (int v = k; v < vocab; ++v) {
    if (logp[v] > threshold) {
      insert(k, v, logp[v]);
      threshold = vals[k - 1];
    }
  }
}

int CtcPrefixBeamSearcher::child(int node, int token) {
  for (int c = nodes_[node].first_child; c >= 0; c = nodes_[c].next_sibling) {
    if (nodes_[c].token == token) return c;
  }
  const int id = int(nodes_.size());
  nodes_.push_back({token, node, -1, nodes_[node].first_child});
  nodes_[node].first_child = id;
  slot_.push_back(-1);
  return id;
}

CtcPrefixBeamSearcher::Entry& CtcPrefixBeamSearcher::next_entry(int node) {
  int& slot = slot_[node];
  if (slot < 0) {
    slot = int(next_.size());
    next_.push_back({node, kNegInf, kNegInf, kNegInf, slot});
  }
  return next_[slot];
}

// Keep the `beam` best of next_ in cur_, best first. Sorting on (score, insertion order) is what
// python's stable sorted(..., reverse=True) followed by [:beam] keeps.
void CtcPrefixBeamSearcher::prune() {
  for (Entry& e : next_) {
    slot_[e.node] = -1;
    e.score = log_add(e.s, e.ns);
  }
  const size_t keep = std::min(next_.size(), size_t(opts_.beam));
  std::partial_sort(next_.begin(), next_.begin() + keep, next_.end(), [](const Entry& a, const Entry& b) {
    if (a.score != b.score) return a.score > b.score;
    return a.order < b.order;
  });
  cur_.assign(next_.begin(), next_.begin() + keep);
}

// Drop every trie node that no surviving prefix goes through and renumber the rest (order kept, so
// parents stay before children).
void CtcPrefixBeamSearcher::compact_trie() {
  const int n = int(nodes_.size());
  remap_.assign(size_t(n), -1);
  remap_[0] = 0;
  for (const Entry& e : cur_) remap_[e.node] = 0;
  for (int i = n - 1; i > 0; --i) {
    if (remap_[i] >= 0) remap_[nodes_[i].parent] = 0;
  }
  int kept = 0;
  for (int i = 0; i < n; ++i) {
    if (remap_[i] < 0) continue;
    Node node = nodes_[i];
    node.parent = node.parent >= 0 ? remap_[node.parent] : -1;
    node.first_child = node.next_sibling = -1;
    remap_[i] = kept;
    nodes_[kept++] = node;
  }
  nodes_.resize(size_t(kept));
  for (int i = 1; i < kept; ++i) {
    Node& node = nodes_[i];
    node.next_sibling = nodes_[node.parent].first_child;
    nodes_[node.parent].first_child = i;
  }
  slot_.assign(size_t(kept), -1);
  for (Entry& e : cur_) e.node = remap_[e.node];
  compact_at_ = std::max(kCompactMinNodes, 4 * size_t(kept));
}

std::vector<int> CtcPrefixBeamSearcher::tokens_of(int node) const {
  std::vector<int> tokens;
  for (int i = node; i > 0; i = nodes_[i].parent) tokens.push_back(nodes_[i].token);
  std::reverse(tokens.begin(), tokens.end());
  return tokens;
}

// One frame: extend every kept prefix by every candidate token, then prune.
void CtcPrefixBeamSearcher::step(const int* ids, const float* logp, int n) {
  const int blank = opts_.blank;
  next_.clear();
  // Candidates outer, prefixes inner: the order in which WeNet inserts new prefixes.
  for (int c = 0; c < n; ++c) {
    const int u = ids[c];
    const double p = logp[c];
    for (const Entry& h : cur_) {  // h.score = log_add(h.s, h.ns), set by prune()
      if (u == blank) {
        // *a + blank -> *a
        Entry& e = next_entry(h.node);
        e.s = log_add(e.s, h.score + p);
      } else if (u == nodes_[h.node].token) {
        // *a + a -> *a (the repeat collapses) ...
        Entry& same = next_entry(h.node);
        same.ns = log_add(same.ns, h.ns + p);
        // ... and *a blank + a -> *aa (a blank separated the two).
        Entry& ext = next_entry(child(h.node, u));
        ext.ns = log_add(ext.ns, h.s + p);
      } else {
        // *a + b -> *ab
        Entry& ext = next_entry(child(h.node, u));
        ext.ns = log_add(ext.ns, h.score + p);
      }
    }
  }
  prune();
  if (nodes_.size() >= compact_at_) compact_trie();
  ++frames_;
}

void CtcPrefixBeamSearcher::advance(const float* log_probs, int frames, int vocab) {
  check_input(log_probs, frames, vocab, opts_.blank, "ctc_prefix_beam_search");
  const int k = std::min(vocab, opts_.first_beam > 0 ? opts_.first_beam : opts_.beam);
  top_k_ids_.resize(size_t(k));
  top_k_logp_.resize(size_t(k));
  // Each (candidate, prefix) pair adds at most one new prefix, plus the prefixes themselves.
  next_.reserve(size_t(k) * opts_.beam + opts_.beam);
  for (int t = 0; t < frames; ++t) {
    ctc_top_k(log_probs + size_t(t) * vocab, vocab, k, top_k_ids_.data(), top_k_logp_.data());
    step(top_k_ids_.data(), top_k_logp_.data(), k);
  }
}

void CtcPrefixBeamSearcher::advance_top_k(const int* top_k_ids, const float* top_k_logp, int frames, int k) {
  WENET_CHECK(frames >= 0, "ctc_prefix_beam_search: expected frames >= 0, got {}", frames);
  WENET_CHECK(k > 0, "ctc_prefix_beam_search: expected k > 0 candidates per frame, got {}", k);
  WENET_CHECK(frames == 0 || (top_k_ids != nullptr && top_k_logp != nullptr),
              "ctc_prefix_beam_search: top-k ids or log-probs are null for {} frames", frames);
  for (size_t i = 0; i < size_t(frames) * k; ++i) {
    WENET_CHECK(top_k_ids[i] >= 0, "ctc_prefix_beam_search: expected token ids >= 0, got {} at frame {}",
                top_k_ids[i], frames_ + int(i / k));
  }
  next_.reserve(size_t(k) * opts_.beam + opts_.beam);
  for (int t = 0; t < frames; ++t) step(top_k_ids + size_t(t) * k, top_k_logp + size_t(t) * k, k);
}

std::vector<Hypothesis> CtcPrefixBeamSearcher::search(const float* log_probs, int frames, int vocab) {
  check_input(log_probs, frames, vocab, opts_.blank, "ctc_prefix_beam_search");
  begin();
  advance(log_probs, frames, vocab);
  return nbest();
}

std::vector<Hypothesis> CtcPrefixBeamSearcher::search_top_k(const int* top_k_ids, const float* top_k_logp, int frames,
                                                            int k) {
  begin();
  advance_top_k(top_k_ids, top_k_logp, frames, k);
  return nbest();
}

std::vector<Hypothesis> CtcPrefixBeamSearcher::nbest() const {
  std::vector<Hypothesis> out;
  out.reserve(cur_.size());
  for (const Entry& e : cur_) {
    Hypothesis h;
    h.tokens = tokens_of(e.node);
    h.ctc_score = e.score;
    out.push_back(std::move(h));
  }
  return out;
}

std::vector<int> CtcPrefixBeamSearcher::best_tokens() const {
  return cur_.empty() ? std::vector<int>{} : tokens_of(cur_.front().node);
}

std::vector<Hypothesis> ctc_prefix_beam_search(const float* log_probs, int frames, int vocab,
                                               const CtcPrefixBeamOptions& opts) {
  return CtcPrefixBeamSearcher(opts).search(log_probs, frames, vocab);
}

std::vector<std::vector<Hypothesis>> ctc_prefix_beam_search_batch(const float* log_probs, const int* lens,
                                                                  int batch, int max_frames, int vocab,
                                                                  const CtcPrefixBeamOptions& opts) {
  CtcPrefixBeamSearcher searcher(opts);
  std::vector<std::vector<Hypothesis>> out(size_t(std::max(batch, 0)));
  for (int b = 0; b < batch; ++b) {
    WENET_CHECK(lens[b] >= 0 && lens[b] <= max_frames,
                "ctc_prefix_beam_search_batch: expected lens[{}] in [0, {}], got {}", b, max_frames, lens[b]);
    out[b] = searcher.search(log_probs + size_t(b) * max_frames * vocab, lens[b], vocab);
  }
  return out;
}

}  // namespace wenet_rt
