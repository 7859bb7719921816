// Token timestamps: forced alignment over a top-k lattice (hand-built lattices with known answers,
// brute-force enumeration, WeNet's runtime time tracking re-implemented), word pieces with WeNet's
// start / end rule, and the merging of pieces into words.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <random>

#include "core/error.h"
#include "decode/ctc_search.h"
#include "decode/timestamps.h"

namespace wenet_rt {
namespace {

constexpr int kBlank = 0;
const float kNegInf = -std::numeric_limits<float>::infinity();

// A top-k lattice from per-frame (id, probability) lists; shorter lists are padded with an id no
// hypothesis uses (99), so k = the longest list.
struct Lattice {
  int frames = 0, k = 0;
  std::vector<int> ids;
  std::vector<float> logp;

  explicit Lattice(const std::vector<std::vector<std::pair<int, double>>>& rows) : frames(int(rows.size())) {
    for (const auto& r : rows) k = std::max(k, int(r.size()));
    for (const auto& r : rows) {
      for (int i = 0; i < k; ++i) {
        ids.push_back(i < int(r.size()) ? r[size_t(i)].first : 99);
        logp.push_back(i < int(r.size()) ? float(std::log(r[size_t(i)].second)) : -50.f);
      }
    }
  }

  float logp_of(int t, int id) const {
    for (int i = 0; i < k; ++i)
      if (ids[size_t(t * k + i)] == id) return logp[size_t(t * k + i)];
    return -std::numeric_limits<float>::infinity();
  }

  std::vector<int> peaks(const std::vector<int>& tokens, PeakRule rule = PeakRule::kLastFrame) const {
    return ctc_peak_frames(ids.data(), logp.data(), frames, k, kBlank, tokens, rule);
  }
};

TEST(CtcPeakFrames, SingleToken) {
  const Lattice lat({{{0, .9}, {5, .1}}, {{5, .8}, {0, .2}}, {{0, .9}, {5, .1}}, {{0, .9}, {5, .1}}});
  EXPECT_EQ(lat.peaks({5}), std::vector<int>({1}));
  EXPECT_EQ(lat.peaks({5}, PeakRule::kMaxLogProb), std::vector<int>({1}));
}

TEST(CtcPeakFrames, RunPeakIsItsLastFrameOrItsMostProbableFrame) {
  // Token 5 holds frames 1..3 (probabilities .6, .9, .7).
  const Lattice lat({{{0, .9}, {5, .1}},
                     {{5, .6}, {0, .4}},
                     {{5, .9}, {0, .1}},
                     {{5, .7}, {0, .3}},
                     {{0, .95}, {5, .05}}});
  EXPECT_EQ(lat.peaks({5}), std::vector<int>({3}));  // WeNet's runtime: the run's last frame
  EXPECT_EQ(lat.peaks({5}, PeakRule::kMaxLogProb), std::vector<int>({2}));
  // Equal probabilities: the first one.
  const Lattice flat({{{5, .9}, {0, .1}}, {{5, .9}, {0, .1}}, {{0, .9}, {5, .1}}});
  EXPECT_EQ(flat.peaks({5}, PeakRule::kMaxLogProb), std::vector<int>({0}));
  EXPECT_EQ(flat.peaks({5}), std::vector<int>({1}));
}

TEST(CtcPeakFrames, RepeatedTokensNeedABlankBetween) {
  // Token 5 is the best candidate on every frame, but "5 5" needs a blank between the two: the
  // alignment puts it on the frame where the blank is least unlikely (frame 2).
  const Lattice lat({{{5, .6}, {0, .4}}, {{5, .7}, {0, .3}}, {{5, .55}, {0, .45}}, {{5, .8}, {0, .2}}});
  EXPECT_EQ(lat.peaks({5, 5}), std::vector<int>({1, 3}));
  EXPECT_EQ(lat.peaks({5, 5}, PeakRule::kMaxLogProb), std::vector<int>({1, 3}));
  // A single 5 covers all four frames.
  EXPECT_EQ(lat.peaks({5}), std::vector<int>({3}));
  EXPECT_EQ(lat.peaks({5}, PeakRule::kMaxLogProb), std::vector<int>({3}));
  // Three frames, three needed: 5, blank, 5.
  const Lattice tight({{{5, .9}, {0, .1}}, {{5, .9}, {0, .1}}, {{5, .9}, {0, .1}}});
  EXPECT_EQ(tight.peaks({5, 5}), std::vector<int>({0, 2}));
  // Different neighbours need no blank.
  const Lattice two({{{5, .9}, {0, .1}}, {{6, .9}, {0, .1}}});
  EXPECT_EQ(two.peaks({5, 6}), std::vector<int>({0, 1}));
}

TEST(CtcPeakFrames, TokenOutsideTheTopKCannotBeAlignedThere) {
  // Token 7 is in the top-2 only at frame 3, although it loses to 8 there.
  const Lattice lat({{{6, .9}, {0, .1}},
                     {{6, .8}, {0, .2}},
                     {{0, .9}, {8, .1}},
                     {{8, .7}, {7, .3}},
                     {{0, .9}, {8, .1}}});
  EXPECT_EQ(lat.peaks({6, 7}), std::vector<int>({1, 3}));
  EXPECT_EQ(lat.peaks({6, 7}, PeakRule::kMaxLogProb), std::vector<int>({0, 3}));
}

TEST(CtcPeakFrames, BlankOutsideTheTopK) {
  // No blank anywhere: every frame belongs to a token.
  const Lattice lat({{{5, .7}, {6, .3}}, {{6, .6}, {5, .4}}, {{6, .8}, {7, .2}}});
  EXPECT_EQ(lat.peaks({5, 6}), std::vector<int>({0, 2}));
  EXPECT_EQ(lat.peaks({5, 6}, PeakRule::kMaxLogProb), std::vector<int>({0, 2}));
  // "5 5" needs a blank that no frame offers: the fallback alignment scores the missing blank as
  // kAbsentLogProb and still finds 5 (blank) 5.
  const Lattice no_blank({{{5, .7}, {6, .3}}, {{5, .6}, {6, .4}}, {{5, .8}, {6, .2}}});
  EXPECT_EQ(no_blank.peaks({5, 5}), std::vector<int>({0, 2}));
}

TEST(CtcPeakFrames, EmptyHypothesisAndNoFrames) {
  const Lattice lat({{{0, .9}, {5, .1}}});
  EXPECT_TRUE(lat.peaks({}).empty());
  EXPECT_TRUE(ctc_peak_frames(nullptr, nullptr, 0, 0, kBlank, {}).empty());
  // Tokens but no frames: the even spread degenerates to frame 0.
  EXPECT_EQ(ctc_peak_frames(nullptr, nullptr, 0, 0, kBlank, {5, 6}), std::vector<int>({0, 0}));
}

TEST(CtcPeakFrames, TooFewFramesSpreadsTokensEvenly) {
  const Lattice lat({{{5, .9}, {0, .1}}, {{6, .9}, {0, .1}}});
  // (2j + 1) * frames / (2 L): 3 tokens over 2 frames -> 0, 1, 1 (5 * 2 / 6 = 1).
  EXPECT_EQ(lat.peaks({5, 6, 7}), std::vector<int>({0, 1, 1}));
  // "5 5" needs three frames.
  EXPECT_EQ(lat.peaks({5, 5}), std::vector<int>({0, 1}));
}

TEST(CtcPeakFrames, RejectsMalformedArguments) {
  const Lattice lat({{{5, .9}, {0, .1}}});
  EXPECT_THROW(lat.peaks({0}), Error);  // a blank in the hypothesis
  EXPECT_THROW(lat.peaks({-3}), Error);
  EXPECT_THROW(ctc_peak_frames(lat.ids.data(), lat.logp.data(), -1, 2, kBlank, {5}), Error);
  EXPECT_THROW(ctc_peak_frames(lat.ids.data(), lat.logp.data(), 1, 0, kBlank, {5}), Error);
  EXPECT_THROW(ctc_peak_frames(nullptr, nullptr, 1, 2, kBlank, {5}), Error);
  try {
    lat.peaks({5, 0});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("got 0 at position 1"), std::string::npos) << e.what();
  }
}

// Random lattices: k distinct ids out of a small vocabulary per frame, random log-probs.
Lattice random_lattice(std::mt19937& rng, int frames, int vocab, int k) {
  std::vector<std::vector<std::pair<int, double>>> rows;
  std::uniform_real_distribution<double> u(0.01, 1.0);
  for (int t = 0; t < frames; ++t) {
    std::vector<int> ids(static_cast<size_t>(vocab));
    for (int v = 0; v < vocab; ++v) ids[size_t(v)] = v;
    std::shuffle(ids.begin(), ids.end(), rng);
    std::vector<std::pair<int, double>> row;
    for (int i = 0; i < k; ++i) row.push_back({ids[size_t(i)], u(rng)});
    std::sort(row.begin(), row.end(), [](auto& a, auto& b) { return a.second > b.second; });
    rows.push_back(row);
  }
  return Lattice(rows);
}

// Every label sequence over the lattice's candidates: the best one collapsing to `tokens`.
std::vector<int> brute_force_path(const Lattice& lat, const std::vector<int>& tokens) {
  std::vector<int> choice(static_cast<size_t>(lat.frames), 0), best_labels;
  double best = -std::numeric_limits<double>::infinity();
  while (true) {
    std::vector<int> labels, collapsed;
    double score = 0;
    for (int t = 0; t < lat.frames; ++t) {
      const int i = t * lat.k + choice[size_t(t)];
      const int id = lat.ids[size_t(i)];
      if (id != kBlank && (t == 0 || id != labels.back())) collapsed.push_back(id);
      labels.push_back(id);
      score += lat.logp[size_t(i)];
    }
    if (collapsed == tokens && score > best) best = score, best_labels = labels;
    int t = 0;
    while (t < lat.frames && ++choice[size_t(t)] == lat.k) choice[size_t(t++)] = 0;
    if (t == lat.frames) break;
  }
  return best_labels;
}

TEST(CtcPeakFrames, MatchesBruteForceAlignment) {
  std::mt19937 rng(7);
  int checked = 0;
  for (int trial = 0; trial < 150; ++trial) {
    const Lattice lat = random_lattice(rng, 6, 4, 3);
    // The best hypothesis of a prefix search over the lattice, and a few others.
    CtcPrefixBeamSearcher searcher({/*beam=*/4, /*first_beam=*/3, kBlank});
    const auto nbest = searcher.search_top_k(lat.ids.data(), lat.logp.data(), lat.frames, lat.k);
    for (const Hypothesis& h : nbest) {
      const std::vector<int> labels = brute_force_path(lat, h.tokens);
      if (labels.empty() || h.tokens.empty()) continue;
      std::vector<int> last(h.tokens.size()), best(h.tokens.size());
      std::vector<float> best_lp(h.tokens.size(), kNegInf);
      int j = -1;
      for (int t = 0; t < lat.frames; ++t) {
        const int id = labels[size_t(t)];
        if (id == kBlank) continue;
        if (t == 0 || id != labels[size_t(t - 1)]) ++j;
        last[size_t(j)] = t;
        const float lp = lat.logp_of(t, id);
        if (lp > best_lp[size_t(j)]) best_lp[size_t(j)] = lp, best[size_t(j)] = t;
      }
      EXPECT_EQ(lat.peaks(h.tokens), last) << "trial " << trial;
      EXPECT_EQ(lat.peaks(h.tokens, PeakRule::kMaxLogProb), best) << "trial " << trial;
      ++checked;
    }
  }
  EXPECT_GT(checked, 200);
}

// WeNet's runtime search with its time tracking (runtime/core/decoder/ctc_prefix_beam_search.cc,
// CtcPrefixBeamSearch::Search), re-implemented without pruning of prefixes: per prefix the Viterbi
// scores v_s / v_ns and the token times of those paths; a repeat ("Case 1: *a + a => *a") moves
// the last token's time to the current frame whenever it improves v_ns, since the cur_token_prob it
// compares against belongs to the entry freshly made for the next frame.
// Prefixes are visited longest first, so that a prefix's own continuation (case 1) is seen before
// its extension from the parent (case 3). WeNet visits them in unordered_map order; where the
// parent comes first and the continuation wins, WeNet keeps the v_ns of the continuation but the
// times of the parent's path (cur_token_prob already equals the frame's prob, so the times are not
// replaced): the current token's time is still the current frame, the earlier tokens' times may be
// the parent's. That order-dependent case is not reproduced (in this test's random lattices, where
// tokens often last several frames, it changes a large share of the results).
std::map<std::vector<int>, std::vector<int>> wenet_runtime_times(const Lattice& lat) {
  struct Score {
    float s = -1e30f, ns = -1e30f, v_s = -1e30f, v_ns = -1e30f, cur = -1e30f;
    std::vector<int> times_s, times_ns;
    float v() const { return std::max(v_s, v_ns); }
    const std::vector<int>& times() const { return v_s > v_ns ? times_s : times_ns; }
  };
  std::map<std::vector<int>, Score> cur;
  cur[{}].s = 0, cur[{}].v_s = 0, cur[{}].v_ns = 0;
  for (int t = 0; t < lat.frames; ++t) {
    std::map<std::vector<int>, Score> next;
    for (int i = 0; i < lat.k; ++i) {
      const int id = lat.ids[size_t(t * lat.k + i)];
      const float p = lat.logp[size_t(t * lat.k + i)];
      for (auto it = cur.rbegin(); it != cur.rend(); ++it) {
        const std::vector<int>& prefix = it->first;
        const Score& ps = it->second;
        if (id == kBlank) {
          Score& n = next[prefix];
          n.v_s = ps.v() + p;
          n.times_s = ps.times();
        } else if (!prefix.empty() && id == prefix.back()) {
          Score& n1 = next[prefix];
          if (n1.v_ns < ps.v_ns + p) {
            n1.v_ns = ps.v_ns + p;
            if (n1.cur < p) {
              n1.cur = p;
              n1.times_ns = ps.times_ns;
              n1.times_ns.back() = t;
            }
          }
          std::vector<int> longer = prefix;
          longer.push_back(id);
          Score& n2 = next[longer];
          if (n2.v_ns < ps.v_s + p) {
            n2.v_ns = ps.v_s + p, n2.cur = p;
            n2.times_ns = ps.times_s;
            n2.times_ns.push_back(t);
          }
        } else {
          std::vector<int> longer = prefix;
          longer.push_back(id);
          Score& n = next[longer];
          if (n.v_ns < ps.v() + p) {
            n.v_ns = ps.v() + p, n.cur = p;
            n.times_ns = ps.times();
            n.times_ns.push_back(t);
          }
        }
      }
    }
    cur = std::move(next);
  }
  std::map<std::vector<int>, std::vector<int>> out;
  for (const auto& [prefix, score] : cur)
    if (score.v() > -1e29f) out[prefix] = score.times();
  return out;
}

TEST(CtcPeakFrames, LastFrameRuleMatchesWeNetRuntimeTimes) {
  std::mt19937 rng(11);
  int checked = 0;
  for (int trial = 0; trial < 30; ++trial) {
    const Lattice lat = random_lattice(rng, 8, 4, 3);
    for (const auto& [tokens, times] : wenet_runtime_times(lat)) {
      if (tokens.empty()) continue;
      EXPECT_EQ(lat.peaks(tokens), times) << "trial " << trial;
      ++checked;
    }
  }
  EXPECT_GT(checked, 5000);
}

// word_pieces: WeNet's rule (runtime/core/decoder/asr_decoder.cc, AsrDecoder::UpdateResult, with
// time_stamp_gap_ = 100 from asr_decoder.h). Numbers below are worked out by hand from it.
TEST(WordPieces, WeNetStartEndRule) {
  const std::vector<std::string> units = {"<blank>", "a", "b", "c", "d"};
  // frame_ms 40: peaks 2 and 3 are 40 ms apart (< 100): they meet at (2 + 3) / 2 = frame 2 -> 80 ms.
  // Peak 10 is 280 ms after 3: b ends at its peak (120), c starts 100 ms before its own (300).
  // d: 1200 - 100 = 1100 .. its peak 1200 (last piece).
  const auto p = word_pieces({1, 2, 3, 4}, {2, 3, 10, 30}, units, 40);
  ASSERT_EQ(p.size(), 4u);
  EXPECT_EQ(p[0].word, "a");
  EXPECT_EQ(p[0].start_ms, 0);  // max(80 - 100, 0)
  EXPECT_EQ(p[0].end_ms, 80);
  EXPECT_EQ(p[1].start_ms, 80);
  EXPECT_EQ(p[1].end_ms, 120);
  EXPECT_EQ(p[2].start_ms, 300);
  EXPECT_EQ(p[2].end_ms, 400);
  EXPECT_EQ(p[3].start_ms, 1100);
  EXPECT_EQ(p[3].end_ms, 1200);

  // Midpoints are whole frames: peaks 5 and 6 meet at frame 11 / 2 = 5 (200 ms), peaks 4 and 6 at 5.
  auto q = word_pieces({1, 2}, {5, 6}, units, 40);
  EXPECT_EQ(q[0].start_ms, 100);
  EXPECT_EQ(q[0].end_ms, 200);
  EXPECT_EQ(q[1].start_ms, 200);
  EXPECT_EQ(q[1].end_ms, 240);
  q = word_pieces({1, 2}, {4, 6}, units, 40);
  EXPECT_EQ(q[0].end_ms, 200);
  EXPECT_EQ(q[1].start_ms, 200);
  // Exactly 100 ms apart is not "< gap": each keeps its own rule (frame_ms 50, two frames).
  q = word_pieces({1, 2}, {4, 6}, units, 50);
  EXPECT_EQ(q[0].end_ms, 200);
  EXPECT_EQ(q[1].start_ms, 200);  // 300 - 100
  q = word_pieces({1, 2}, {4, 7}, units, 50);
  EXPECT_EQ(q[0].end_ms, 200);
  EXPECT_EQ(q[1].start_ms, 250);
  // A single piece: gap before, its peak as the end.
  q = word_pieces({3}, {1}, units, 40);
  EXPECT_EQ(q[0].start_ms, 0);
  EXPECT_EQ(q[0].end_ms, 40);
  EXPECT_TRUE(word_pieces({}, {}, units, 40).empty());
}

TEST(WordPieces, OffsetShiftsBothEnds) {
  const std::vector<std::string> units = {"<blank>", "a", "b"};
  const auto base = word_pieces({1, 2}, {2, 9}, units, 40);
  const auto shifted = word_pieces({1, 2}, {2, 9}, units, 40, 30000);
  ASSERT_EQ(shifted.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(shifted[i].start_ms, base[i].start_ms + 30000);
    EXPECT_EQ(shifted[i].end_ms, base[i].end_ms + 30000);
  }
}

TEST(WordPieces, RejectsMalformedArguments) {
  const std::vector<std::string> units = {"<blank>", "a"};
  EXPECT_THROW(word_pieces({1}, {}, units, 40), Error);
  EXPECT_THROW(word_pieces({2}, {0}, units, 40), Error);
  EXPECT_THROW(word_pieces({1}, {0}, units, 0), Error);
  EXPECT_THROW(word_pieces({1}, {-1}, units, 40), Error);
}

TEST(WordPieces, BpePiecesKeepTheirUnitAndMergeIntoWords) {
  const std::vector<std::string> units = {"<blank>", "\u2581HE", "LLO", "\u2581WOR", "LD", "\u2581A"};
  const auto p = word_pieces({1, 2, 3, 4, 5}, {3, 5, 12, 14, 30}, units, 40);
  ASSERT_EQ(p.size(), 5u);
  EXPECT_EQ(p[0].word, "\u2581HE");  // as WeNet's runtime reports it: the unit from units.txt
  EXPECT_EQ(p[1].word, "LLO");
  const auto w = words(p);
  ASSERT_EQ(w.size(), 3u);
  EXPECT_EQ(w[0].word, "HELLO");
  EXPECT_EQ(w[0].start_ms, p[0].start_ms);
  EXPECT_EQ(w[0].end_ms, p[1].end_ms);
  EXPECT_EQ(w[1].word, "WORLD");
  EXPECT_EQ(w[1].start_ms, p[2].start_ms);
  EXPECT_EQ(w[1].end_ms, p[3].end_ms);
  EXPECT_EQ(w[2].word, "A");
  EXPECT_EQ(w[2].start_ms, p[4].start_ms);
  EXPECT_EQ(w[2].end_ms, p[4].end_ms);
}

TEST(Words, SpaceUnitSeparatesCharsAndCjkStandsAlone) {
  // A char model with "▁" as its space unit: the space ends a word and adds no time.
  std::vector<WordPiece> p = {{"H", 0, 40}, {"I", 40, 80}, {"\u2581", 80, 120}, {"Y", 200, 240}, {"O", 240, 280}};
  auto w = words(p);
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[0].word, "HI");
  EXPECT_EQ(w[0].end_ms, 80);
  EXPECT_EQ(w[1].word, "YO");
  EXPECT_EQ(w[1].start_ms, 200);
  // Chinese characters are words of their own; a mixed model's English word is still merged.
  p = {{"你", 0, 40}, {"好", 40, 80}, {"\u2581HE", 100, 140}, {"LLO", 140, 180}, {"吗", 200, 240}, {"A", 240, 280}};
  w = words(p);
  ASSERT_EQ(w.size(), 5u);
  EXPECT_EQ(w[0].word, "你");
  EXPECT_EQ(w[1].word, "好");
  EXPECT_EQ(w[2].word, "HELLO");
  EXPECT_EQ(w[2].start_ms, 100);
  EXPECT_EQ(w[2].end_ms, 180);
  EXPECT_EQ(w[3].word, "吗");
  EXPECT_EQ(w[4].word, "A");  // after a CJK word a plain piece starts a new word
  EXPECT_TRUE(words({}).empty());
  EXPECT_TRUE(words({{"\u2581", 0, 40}}).empty());
}

}  // namespace
}  // namespace wenet_rt
