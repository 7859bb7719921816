// Attention rescoring: decoder inputs and scores against WeNet's goldens (l2r for all three models,
// l2r + r2l for u2pp_tiny), and hand-made log-probs whose scores are known.
#include <gtest/gtest.h>

#include <cmath>

#include "decode/attention_rescoring.h"
#include "golden_data.h"

namespace wenet_rt {
namespace {

constexpr int kVocab = 40;
constexpr int kSosEos = 39;  // <sos/eos> in the golden models

std::vector<Hypothesis> golden_nbest(const nlohmann::json& utt) {
  const auto nbest = utt["ctc_prefix_beam_search"]["nbest"].get<std::vector<std::vector<int>>>();
  const auto scores = utt["ctc_prefix_beam_search"]["nbest_scores"].get<std::vector<double>>();
  std::vector<Hypothesis> hyps;
  for (size_t i = 0; i < nbest.size(); ++i) hyps.push_back({nbest[i], scores[i]});
  return hyps;
}

TEST(AttentionRescoringGoldens, DecoderInputsMatchWeNet) {
  for (const std::string& model : test::golden_models()) {
    const nlohmann::json decode = test::read_json(test::golden_dir(model) + "/decode.json");
    for (int b = 0; b < 3; ++b) {
      const std::string utt = "utt" + std::to_string(b);
      SCOPED_TRACE(model + " " + utt);
      const std::vector<Hypothesis> hyps = golden_nbest(decode["results"][utt]);
      const auto want = test::read_golden<int32_t>(model, utt + "_hyps_in");
      const auto want_lens = test::read_golden<int32_t>(model, utt + "_hyps_in_lens");
      const int width = decoder_input_width(hyps);
      ASSERT_EQ(width, want.shape[1]);
      std::vector<int> ids(hyps.size() * width), lens(hyps.size());
      build_decoder_inputs(hyps, kSosEos, kSosEos, false, width, ids.data(), lens.data());
      EXPECT_EQ(ids, std::vector<int>(want.data.begin(), want.data.end()));
      EXPECT_EQ(lens, std::vector<int>(want_lens.data.begin(), want_lens.data.end()));
    }
  }
}

TEST(AttentionRescoringGoldens, BestAndScoreMatchWeNet) {
  for (const std::string& model : test::golden_models()) {
    const nlohmann::json decode = test::read_json(test::golden_dir(model) + "/decode.json");
    RescoreOptions opts;
    opts.ctc_weight = decode["ctc_weight"].get<float>();
    opts.reverse_weight = decode["reverse_weight"].get<float>();
    EXPECT_EQ(opts.reverse_weight > 0, model == "u2pp_tiny");
    for (int b = 0; b < 3; ++b) {
      const std::string utt = "utt" + std::to_string(b);
      SCOPED_TRACE(model + " " + utt);
      std::vector<Hypothesis> hyps = golden_nbest(decode["results"][utt]);
      const auto l2r = test::read_golden<float>(model, utt + "_decoder_log_probs");
      std::vector<float> r2l;
      if (opts.reverse_weight > 0) r2l = test::read_golden<float>(model, utt + "_r_decoder_log_probs").data;
      const int width = int(l2r.shape[1]);
      ASSERT_EQ(l2r.shape[2], kVocab);
      const int best = attention_rescore(hyps, l2r.data.data(), r2l.empty() ? nullptr : r2l.data(), width, kVocab,
                                         kSosEos, opts);
      const nlohmann::json& want = decode["results"][utt]["attention_rescoring"];
      EXPECT_EQ(hyps[best].tokens, want["tokens"].get<std::vector<int>>());
      EXPECT_NEAR(hyps[best].total, want["score"].get<double>(), 1e-3);
      for (const Hypothesis& h : hyps) EXPECT_LE(h.total, hyps[best].total);
    }
  }
}

// Vocab 4 (<blank> 0, a 1, b 2, <sos/eos> 3). Every log-prob is -10 except the ones set below.
struct TinyDecoderOutput {
  int rows, width;
  std::vector<float> data;
  TinyDecoderOutput(int rows, int width) : rows(rows), width(width), data(size_t(rows) * width * 4, -10.f) {}
  float& at(int row, int pos, int token) { return data[(size_t(row) * width + pos) * 4 + token]; }
};

TEST(AttentionRescoring, SumsTokenAndEosLogProbs) {
  std::vector<Hypothesis> hyps = {{{1, 2}, -1.0}, {{2}, -3.0}};
  const int width = decoder_input_width(hyps);
  ASSERT_EQ(width, 3);
  TinyDecoderOutput l2r(2, width);
  l2r.at(0, 0, 1) = -0.5f;  // a
  l2r.at(0, 1, 2) = -0.25f; // b
  l2r.at(0, 2, 3) = -1.f;   // eos
  l2r.at(1, 0, 2) = -0.1f;  // b
  l2r.at(1, 1, 3) = -0.2f;  // eos; position 2 is padding and must not count
  l2r.at(1, 2, 3) = -100.f;
  RescoreOptions opts{.ctc_weight = 0.5f, .reverse_weight = 0.f, .rescoring_weight = 1.f};
  int best = attention_rescore(hyps, l2r.data.data(), nullptr, width, 4, 3, opts);
  EXPECT_FLOAT_EQ(hyps[0].rescore, -1.75f);
  EXPECT_FLOAT_EQ(hyps[0].total, -1.75f - 0.5f);
  EXPECT_FLOAT_EQ(hyps[1].rescore, -0.3f);
  EXPECT_FLOAT_EQ(hyps[1].total, -0.3f - 1.5f);
  EXPECT_EQ(best, 1);
  // A heavier CTC weight flips the decision; rescoring_weight scales the decoder part.
  opts.ctc_weight = 1.f;
  opts.rescoring_weight = 0.5f;
  best = attention_rescore(hyps, l2r.data.data(), nullptr, width, 4, 3, opts);
  EXPECT_FLOAT_EQ(hyps[0].total, -0.875f - 1.f);
  EXPECT_FLOAT_EQ(hyps[1].total, -0.15f - 3.f);
  EXPECT_EQ(best, 0);
}

TEST(AttentionRescoring, RightToLeftScoresReversedPositions) {
  std::vector<Hypothesis> hyps = {{{1, 2}, 0.0}};
  const int width = decoder_input_width(hyps);
  std::vector<int> r_ids(static_cast<size_t>(width)), lens(1);
  build_decoder_inputs(hyps, 3, 3, true, width, r_ids.data(), lens.data());
  EXPECT_EQ(r_ids, (std::vector<int>{3, 2, 1}));  // <sos> b a
  EXPECT_EQ(lens[0], 3);
  TinyDecoderOutput l2r(1, width), r2l(1, width);
  l2r.at(0, 0, 1) = -1.f;
  l2r.at(0, 1, 2) = -1.f;
  l2r.at(0, 2, 3) = -1.f;   // l2r = -3
  r2l.at(0, 0, 2) = -0.5f;  // b first
  r2l.at(0, 1, 1) = -0.5f;  // then a
  r2l.at(0, 2, 3) = -1.f;   // r2l = -2
  const RescoreOptions opts{.ctc_weight = 0.f, .reverse_weight = 0.25f};
  attention_rescore(hyps, l2r.data.data(), r2l.data.data(), width, 4, 3, opts);
  EXPECT_FLOAT_EQ(hyps[0].rescore, -3.f * 0.75f + -2.f * 0.25f);
}

TEST(AttentionRescoring, EmptyHypothesisScoresOnlyEos) {
  std::vector<Hypothesis> hyps = {{{}, -2.0}, {{}, -1.0}};
  const int width = decoder_input_width(hyps);
  ASSERT_EQ(width, 1);
  std::vector<int> ids(2);
  build_decoder_inputs(hyps, 3, 3, false, width, ids.data());
  EXPECT_EQ(ids, (std::vector<int>{3, 3}));
  TinyDecoderOutput l2r(2, width);
  l2r.at(0, 0, 3) = -0.5f;
  l2r.at(1, 0, 3) = -0.5f;
  const int best = attention_rescore(hyps, l2r.data.data(), nullptr, width, 4, 3, {});
  EXPECT_EQ(best, 1);
  EXPECT_FLOAT_EQ(hyps[1].total, -0.5f - 0.5f);
}

// Two utterances' N-bests as tries (N = 3 rows each): shared prefixes are one node, each row's
// added nodes are the end of its path, the path is the node of each decoder input position.
TEST(DecoderTrie, SharesPrefixesAndLaysOutWhatEachHypothesisAdds) {
  const int sos = 9;
  const std::vector<std::vector<Hypothesis>> nbest = {{{{1, 2, 3}, 0.0}, {{1, 2, 4}, 0.0}, {{1, 5}, 0.0}},
                                                      {{{1, 2}, 0.0}, {{1}, 0.0}}};  // row 5: padding
  const int width = 4;
  DecoderTrie t;
  build_decoder_trie(nbest, 3, sos, false, width, t);
  // Utterance 0: root 0, 1 2 3 (row 0), 4 (row 1: after 1 2), 5 (row 2: after 1). Utterance 1:
  // root 6, 1 2 (row 3); row 4 is a prefix of row 3 and row 5 is empty: they add nothing.
  EXPECT_EQ(t.ids, (std::vector<int>{sos, 1, 2, 3, 4, 5, sos, 1, 2}));
  EXPECT_EQ(t.positions, (std::vector<int>{0, 1, 2, 3, 3, 2, 0, 1, 2}));
  EXPECT_EQ(t.utt_offsets, (std::vector<int>{0, 6, 9}));
  EXPECT_EQ(t.added_offsets, (std::vector<int>{0, 4, 5, 6, 9, 9, 9}));
  EXPECT_EQ(t.paths, (std::vector<int>{0, 1, 2, 3,  0, 1, 2, 4,  0, 1, 5, 0,
                                       6, 7, 8, 6,  6, 7, 6, 6,  6, 6, 6, 6}));
  EXPECT_EQ(t.path_lens, (std::vector<int>{4, 4, 3, 3, 2, 1}));
  // Right to left: prefixes of the reversed tokens, i.e. shared suffixes: {1 2 3}, {1 2 4} and
  // {1 5} end differently (they share the root alone), and {1} is no suffix of {1 2}.
  build_decoder_trie(nbest, 3, sos, true, width, t);
  EXPECT_EQ(t.ids, (std::vector<int>{sos, 3, 2, 1, 4, 2, 1, 5, 1, sos, 2, 1, 1}));
  EXPECT_EQ(t.positions, (std::vector<int>{0, 1, 2, 3, 1, 2, 3, 1, 2, 0, 1, 2, 1}));
  EXPECT_EQ(t.added_offsets, (std::vector<int>{0, 4, 7, 9, 12, 13, 13}));
  EXPECT_EQ(t.paths[size_t(2 * width) + 2], 8);  // row 2 = 5 1: node 7 (5), then 8 (1)
  // The positions of each path are its input's: decoder_input_width() bounds them.
  EXPECT_THROW(build_decoder_trie(nbest, 3, sos, false, 3, t), Error);
  EXPECT_THROW(build_decoder_trie(nbest, 2, sos, false, width, t), Error);  // 3 hypotheses > N
}

TEST(AttentionRescoring, RejectsBadInputs) {
  std::vector<Hypothesis> hyps = {{{1, 2}, 0.0}};
  TinyDecoderOutput l2r(1, 3);
  EXPECT_THROW(attention_rescore(hyps, l2r.data.data(), nullptr, 3, 4, 3, {.reverse_weight = 0.3f}), Error);
  EXPECT_THROW(attention_rescore(hyps, l2r.data.data(), nullptr, 2, 4, 3, {}), Error);  // too narrow
  EXPECT_THROW(attention_rescore(hyps, l2r.data.data(), nullptr, 3, 4, 4, {}), Error);  // eos out of range
  std::vector<Hypothesis> none;
  EXPECT_THROW(attention_rescore(none, l2r.data.data(), nullptr, 3, 4, 3, {}), Error);
  std::vector<Hypothesis> bad = {{{7}, 0.0}};
  EXPECT_THROW(attention_rescore(bad, l2r.data.data(), nullptr, 3, 4, 3, {}), Error);
  std::vector<int> ids(2);
  EXPECT_THROW(build_decoder_inputs(hyps, 3, 3, false, 2, ids.data()), Error);
}

}  // namespace
}  // namespace wenet_rt
