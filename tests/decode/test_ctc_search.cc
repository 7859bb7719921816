// CTC greedy and prefix beam search: against WeNet's goldens, hand-made cases whose answer is known,
// exact enumeration of alignments, and a plain re-implementation of WeNet's python loop.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>

#include "decode/ctc_search.h"
#include "golden_data.h"

namespace wenet_rt {
namespace {

// Log-probs [frames][vocab] from rows of probabilities.
std::vector<float> log_of(const std::vector<std::vector<double>>& probs) {
  std::vector<float> out;
  for (const auto& row : probs) {
    for (double p : row) out.push_back(float(std::log(p)));
  }
  return out;
}

std::vector<float> random_log_probs(std::mt19937& rng, int frames, int vocab, double sharpness) {
  std::normal_distribution<double> normal(0.0, sharpness);
  std::vector<float> out;
  for (int t = 0; t < frames; ++t) {
    std::vector<double> logits(static_cast<size_t>(vocab));
    double m = -1e30;
    for (double& x : logits) m = std::max(m, x = normal(rng));
    double z = 0;
    for (double x : logits) z += std::exp(x - m);
    for (double x : logits) out.push_back(float(x - m - std::log(z)));
  }
  return out;
}

TEST(CtcGoldens, GreedyAndPrefixBeamMatchWeNet) {
  for (const std::string& model : test::golden_models()) {
    SCOPED_TRACE(model);
    const auto log_probs = test::read_golden<float>(model, "ctc_log_probs");
    const auto lens = test::read_golden<int32_t>(model, "encoder_lens");
    const nlohmann::json decode = test::read_json(test::golden_dir(model) + "/decode.json");
    const int batch = int(log_probs.shape[0]), max_frames = int(log_probs.shape[1]), vocab = int(log_probs.shape[2]);
    CtcPrefixBeamOptions opts;
    opts.beam = decode["beam_size"].get<int>();

    const auto greedy = ctc_greedy_search_batch(log_probs.data.data(), lens.data.data(), batch, max_frames, vocab);
    const auto nbests =
        ctc_prefix_beam_search_batch(log_probs.data.data(), lens.data.data(), batch, max_frames, vocab, opts);
    for (int b = 0; b < batch; ++b) {
      SCOPED_TRACE("utt" + std::to_string(b));
      const nlohmann::json& want = decode["results"]["utt" + std::to_string(b)];
      EXPECT_EQ(greedy[b], want["ctc_greedy_search"].get<std::vector<int>>());
      const auto want_nbest = want["ctc_prefix_beam_search"]["nbest"].get<std::vector<std::vector<int>>>();
      const auto want_scores = want["ctc_prefix_beam_search"]["nbest_scores"].get<std::vector<double>>();
      ASSERT_EQ(nbests[b].size(), want_nbest.size());
      for (size_t i = 0; i < want_nbest.size(); ++i) {
        EXPECT_EQ(nbests[b][i].tokens, want_nbest[i]) << "hypothesis " << i;
        EXPECT_NEAR(nbests[b][i].ctc_score, want_scores[i], 1e-4) << "hypothesis " << i;
      }
    }
  }
}

TEST(CtcGreedy, CollapsesRepeatsAndDropsBlanks) {
  // Frames' argmax: a a blank a b b blank  ->  a a b
  const double hi = 0.8, lo = 0.1;
  const std::vector<float> lp = log_of({{lo, hi, lo}, {lo, hi, lo}, {hi, lo, lo}, {lo, hi, lo},
                                        {lo, lo, hi}, {lo, lo, hi}, {hi, lo, lo}});
  EXPECT_EQ(ctc_greedy_search(lp.data(), 7, 3), (std::vector<int>{1, 1, 2}));
  EXPECT_TRUE(ctc_greedy_search(lp.data(), 0, 3).empty());
  // Another blank id: token 0 is then an ordinary token.
  EXPECT_EQ(ctc_greedy_search(lp.data(), 7, 3, /*blank=*/2), (std::vector<int>{1, 0, 1, 0}));
}

TEST(CtcPrefixBeam, AllBlankGivesEmptyBest) {
  const std::vector<float> lp = log_of({{0.9, 0.05, 0.05}, {0.7, 0.2, 0.1}, {0.95, 0.03, 0.02}});
  const auto hyps = ctc_prefix_beam_search(lp.data(), 3, 3, {.beam = 3});
  ASSERT_EQ(hyps.size(), 3u);
  EXPECT_TRUE(hyps[0].tokens.empty());
  EXPECT_NEAR(hyps[0].ctc_score, std::log(0.9 * 0.7 * 0.95), 1e-6);
  EXPECT_TRUE(ctc_greedy_search(lp.data(), 3, 3).empty());
}

TEST(CtcPrefixBeam, ZeroFramesGivesOneEmptyHypothesis) {
  const auto hyps = ctc_prefix_beam_search(nullptr, 0, 5, {.beam = 4});
  ASSERT_EQ(hyps.size(), 1u);
  EXPECT_TRUE(hyps[0].tokens.empty());
  EXPECT_EQ(hyps[0].ctc_score, 0.0);
}

TEST(CtcPrefixBeam, OneFrameRanksTokensByLogProb) {
  const std::vector<float> lp = log_of({{0.1, 0.5, 0.15, 0.25}});
  const auto hyps = ctc_prefix_beam_search(lp.data(), 1, 4, {.beam = 3});
  ASSERT_EQ(hyps.size(), 3u);
  EXPECT_EQ(hyps[0].tokens, std::vector<int>{1});
  EXPECT_EQ(hyps[1].tokens, std::vector<int>{3});
  EXPECT_EQ(hyps[2].tokens, std::vector<int>{2});
  EXPECT_NEAR(hyps[0].ctc_score, std::log(0.5), 1e-6);
  EXPECT_NEAR(hyps[2].ctc_score, std::log(0.15), 1e-6);
}

TEST(CtcPrefixBeam, RepeatSeparatedByBlankIsTwoTokens) {
  // Two frames, P(a) = 1 - eps each, then blank, then a: "a a" (the blank separates them).
  const double e = 1e-3;
  const std::vector<float> lp = log_of({{e, 1 - 2 * e, e}, {e, 1 - 2 * e, e}, {1 - 2 * e, e, e}, {e, 1 - 2 * e, e}});
  const auto hyps = ctc_prefix_beam_search(lp.data(), 4, 3, {.beam = 4});
  EXPECT_EQ(hyps[0].tokens, (std::vector<int>{1, 1}));
  // Without the blank, "a a" cannot win: the repeat collapses.
  const std::vector<float> lp2 = log_of({{e, 1 - 2 * e, e}, {e, 1 - 2 * e, e}, {e, 1 - 2 * e, e}});
  EXPECT_EQ(ctc_prefix_beam_search(lp2.data(), 3, 3, {.beam = 4})[0].tokens, std::vector<int>{1});
}

TEST(CtcPrefixBeam, MergingPrefixesBeatsGreedy) {
  // P(blank) = 0.6, P(a) = 0.4 on both frames: greedy says "" (0.36), but "a" collects
  // aa + a- + -a = 0.16 + 0.24 + 0.24 = 0.64.
  const std::vector<float> lp = log_of({{0.6, 0.4}, {0.6, 0.4}});
  EXPECT_TRUE(ctc_greedy_search(lp.data(), 2, 2).empty());
  const auto hyps = ctc_prefix_beam_search(lp.data(), 2, 2, {.beam = 4});
  ASSERT_EQ(hyps.size(), 3u);  // "a", "", "aa"
  EXPECT_EQ(hyps[0].tokens, std::vector<int>{1});
  EXPECT_NEAR(hyps[0].ctc_score, std::log(0.64), 1e-6);
  EXPECT_TRUE(hyps[1].tokens.empty());
  EXPECT_NEAR(hyps[1].ctc_score, std::log(0.36), 1e-6);
  EXPECT_EQ(hyps[2].tokens, (std::vector<int>{1, 1}));
  EXPECT_EQ(hyps[2].ctc_score, -std::numeric_limits<double>::infinity());  // needs a blank between
}

TEST(CtcPrefixBeam, BeamOneEqualsGreedyOnPeakedInput) {
  std::mt19937 rng(3);
  const int frames = 50, vocab = 12;
  const std::vector<float> lp = random_log_probs(rng, frames, vocab, 6.0);
  const auto hyps = ctc_prefix_beam_search(lp.data(), frames, vocab, {.beam = 1});
  ASSERT_EQ(hyps.size(), 1u);
  EXPECT_EQ(hyps[0].tokens, ctc_greedy_search(lp.data(), frames, vocab));
  // first_beam = 1 also leaves only the best path.
  EXPECT_EQ(ctc_prefix_beam_search(lp.data(), frames, vocab, {.beam = 5, .first_beam = 1})[0].tokens,
            hyps[0].tokens);
}

// With no pruning the prefix scores are exact: log of the summed probability of every alignment
// that collapses to the label sequence.
TEST(CtcPrefixBeam, UnprunedScoresEqualExactAlignmentSums) {
  std::mt19937 rng(11);
  const int frames = 5, vocab = 4;
  const std::vector<float> lp = random_log_probs(rng, frames, vocab, 1.0);
  std::map<std::vector<int>, double> exact;
  int total = 1;
  for (int t = 0; t < frames; ++t) total *= vocab;
  for (int a = 0; a < total; ++a) {
    std::vector<int> path;
    double logp = 0;
    for (int t = 0, x = a; t < frames; ++t, x /= vocab) {
      path.push_back(x % vocab);
      logp += lp[size_t(t) * vocab + path.back()];
    }
    std::vector<int> labels;
    for (int t = 0; t < frames; ++t) {
      if (path[t] != 0 && (t == 0 || path[t] != path[t - 1])) labels.push_back(path[t]);
    }
    auto it = exact.find(labels);
    exact[labels] = it == exact.end() ? logp : log_add(it->second, logp);
  }
  auto hyps = ctc_prefix_beam_search(lp.data(), frames, vocab, {.beam = 100000, .first_beam = vocab});
  // Unpruned, the search also keeps unreachable prefixes (e.g. "aa" after one frame) at score -inf,
  // as WeNet's does; they sort last.
  const auto reachable_end = std::find_if(hyps.begin(), hyps.end(), [](const Hypothesis& h) {
    return h.ctc_score == -std::numeric_limits<double>::infinity();
  });
  EXPECT_TRUE(std::all_of(reachable_end, hyps.end(), [](const Hypothesis& h) { return std::isinf(h.ctc_score); }));
  hyps.erase(reachable_end, hyps.end());
  ASSERT_EQ(hyps.size(), exact.size());
  for (size_t i = 0; i < hyps.size(); ++i) {
    ASSERT_TRUE(exact.count(hyps[i].tokens));
    EXPECT_NEAR(hyps[i].ctc_score, exact[hyps[i].tokens], 1e-9);
    if (i > 0) EXPECT_GE(hyps[i - 1].ctc_score, hyps[i].ctc_score);
  }
}

// WeNet's python loop transcribed literally (prefix vectors, dict in insertion order, stable sort).
std::vector<Hypothesis> python_like_search(const float* lp, int frames, int vocab, int beam) {
  using Scored = std::pair<std::vector<int>, std::pair<double, double>>;  // prefix, (s, ns)
  std::vector<Scored> cur = {{{}, {0.0, -std::numeric_limits<double>::infinity()}}};
  const double ninf = -std::numeric_limits<double>::infinity();
  for (int t = 0; t < frames; ++t) {
    const float* row = lp + size_t(t) * vocab;
    std::vector<int> ids(static_cast<size_t>(vocab));
    for (int v = 0; v < vocab; ++v) ids[v] = v;
    std::stable_sort(ids.begin(), ids.end(), [&](int a, int b) { return row[a] > row[b]; });
    ids.resize(size_t(std::min(beam, vocab)));
    std::vector<Scored> next;
    auto at = [&](const std::vector<int>& prefix) -> std::pair<double, double>& {
      for (auto& e : next) {
        if (e.first == prefix) return e.second;
      }
      next.push_back({prefix, {ninf, ninf}});
      return next.back().second;
    };
    for (int u : ids) {
      const double p = row[u];
      for (const auto& [prefix, sc] : cur) {
        const double score = log_add(sc.first, sc.second);
        std::vector<int> ext = prefix;
        ext.push_back(u);
        if (u == 0) {
          at(prefix).first = log_add(at(prefix).first, score + p);
        } else if (!prefix.empty() && u == prefix.back()) {
          at(prefix).second = log_add(at(prefix).second, sc.second + p);
          at(ext).second = log_add(at(ext).second, sc.first + p);
        } else {
          at(ext).second = log_add(at(ext).second, score + p);
        }
      }
    }
    std::stable_sort(next.begin(), next.end(), [](const Scored& a, const Scored& b) {
      return log_add(a.second.first, a.second.second) > log_add(b.second.first, b.second.second);
    });
    if (int(next.size()) > beam) next.resize(size_t(beam));
    cur = next;
  }
  std::vector<Hypothesis> out;
  for (const auto& [prefix, sc] : cur) out.push_back({prefix, log_add(sc.first, sc.second)});
  return out;
}

// Long input: the trie is compacted several times (> 65536 nodes), and results stay identical.
TEST(CtcPrefixBeam, MatchesLiteralPythonLoopOnLongInput) {
  std::mt19937 rng(5);
  const int frames = 1500, vocab = 30, beam = 10;
  const std::vector<float> lp = random_log_probs(rng, frames, vocab, 2.0);
  CtcPrefixBeamSearcher searcher({.beam = beam});
  const auto got = searcher.search(lp.data(), frames, vocab);
  const auto want = python_like_search(lp.data(), frames, vocab, beam);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].tokens, want[i].tokens) << i;
    EXPECT_EQ(got[i].ctc_score, want[i].ctc_score) << i;
  }
  // The searcher is reusable: a second, shorter search from the same object agrees too.
  const auto again = searcher.search(lp.data(), 40, vocab);
  const auto want_again = python_like_search(lp.data(), 40, vocab, beam);
  ASSERT_EQ(again.size(), want_again.size());
  for (size_t i = 0; i < again.size(); ++i) EXPECT_EQ(again[i].tokens, want_again[i].tokens) << i;
}

// A caller-side top-k (as a GPU would compute it) gives the same N-best as the search's own.
TEST(CtcPrefixBeam, PreselectedTopKEqualsFullSearch) {
  std::mt19937 rng(9);
  const int frames = 200, vocab = 50, k = 6;
  const std::vector<float> lp = random_log_probs(rng, frames, vocab, 2.0);
  std::vector<int> ids;
  std::vector<float> vals;
  for (int t = 0; t < frames; ++t) {
    std::vector<int> order(static_cast<size_t>(vocab));
    for (int v = 0; v < vocab; ++v) order[v] = v;
    const float* row = lp.data() + size_t(t) * vocab;
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return row[a] > row[b]; });
    for (int i = 0; i < k; ++i) {
      ids.push_back(order[i]);
      vals.push_back(row[order[i]]);
    }
  }
  CtcPrefixBeamSearcher searcher({.beam = 4, .first_beam = k});
  const auto full = searcher.search(lp.data(), frames, vocab);
  const auto pre = searcher.search_top_k(ids.data(), vals.data(), frames, k);
  ASSERT_EQ(full.size(), pre.size());
  for (size_t i = 0; i < full.size(); ++i) {
    EXPECT_EQ(full[i].tokens, pre[i].tokens);
    EXPECT_EQ(full[i].ctc_score, pre[i].ctc_score);
  }
  EXPECT_THROW(searcher.search_top_k(ids.data(), vals.data(), frames, 0), Error);
}

TEST(CtcPrefixBeam, RejectsBadOptionsAndInputs) {
  EXPECT_THROW(CtcPrefixBeamSearcher({.beam = 0}), Error);
  EXPECT_THROW(CtcPrefixBeamSearcher({.beam = 2, .first_beam = -1}), Error);
  const std::vector<float> lp(8, -1.f);
  EXPECT_THROW(ctc_prefix_beam_search(lp.data(), 2, 4, {.beam = 2, .blank = 4}), Error);
  EXPECT_THROW(ctc_prefix_beam_search(lp.data(), -1, 4, {}), Error);
  EXPECT_THROW(ctc_greedy_search(nullptr, 2, 4), Error);
  try {
    ctc_prefix_beam_search(lp.data(), 2, 4, {.beam = 2, .blank = 7});
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("got 7"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace wenet_rt
