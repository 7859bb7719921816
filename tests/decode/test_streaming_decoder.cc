// Streaming search: the prefix beam search carried across chunks (against WeNet's chunk-by-chunk
// goldens, and against the one-shot search on every split), WeNet's CTC endpoint rules, continuous
// decoding and the final result's timestamps.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "decode/ctc_endpoint.h"
#include "decode/streaming_decoder.h"
#include "golden_data.h"

namespace wenet_rt {
namespace {

constexpr float kNegInfF = -std::numeric_limits<float>::infinity();

void expect_same_nbest(const std::vector<Hypothesis>& got, const std::vector<Hypothesis>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].tokens, want[i].tokens) << "hypothesis " << i;
    EXPECT_EQ(got[i].ctc_score, want[i].ctc_score) << "hypothesis " << i;  // same code path: bit-identical
  }
}

// Per-frame top-k [frames][k] and blank log-probs [frames] of log-probs [frames][vocab]: what the
// scheduler hands the decoder.
struct TopK {
  int k = 0;
  std::vector<int> ids;
  std::vector<float> logp;
  std::vector<float> blank;
};

TopK top_k_of(const float* lp, int frames, int vocab, int k, int blank = 0) {
  TopK out;
  out.k = k;
  out.ids.resize(size_t(frames) * k);
  out.logp.resize(size_t(frames) * k);
  for (int t = 0; t < frames; ++t) {
    ctc_top_k(lp + size_t(t) * vocab, vocab, k, out.ids.data() + size_t(t) * k, out.logp.data() + size_t(t) * k);
    out.blank.push_back(lp[size_t(t) * vocab + blank]);
  }
  return out;
}

std::vector<float> random_log_probs(std::mt19937& rng, int frames, int vocab, double sharpness, double blank_bias) {
  std::normal_distribution<double> normal(0.0, sharpness);
  std::vector<float> out;
  for (int t = 0; t < frames; ++t) {
    std::vector<double> logits(static_cast<size_t>(vocab));
    for (double& x : logits) x = normal(rng);
    logits[0] += blank_bias;
    double m = -1e30, z = 0;
    for (double x : logits) m = std::max(m, x);
    for (double x : logits) z += std::exp(x - m);
    for (double x : logits) out.push_back(float(x - m - std::log(z)));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Chunk-by-chunk search against WeNet's streaming goldens.

TEST(StreamingSearchGoldens, ChunkByChunkMatchesWeNetForEverySplit) {
  int checked = 0;
  for (const std::string model : {"u2pp_stream_tiny", "u2_stream_tiny"}) {
    const nlohmann::json decode = test::read_json(test::golden_dir(model) + "/decode.json");
    const int beam = decode["beam_size"].get<int>();
    for (const auto& c : decode["cases"]) {
      const int chunk = c[0].get<int>(), left = c[1].get<int>();
      for (int u = 0; u < 3; ++u) {
        const std::string name = "utt" + std::to_string(u) + "_chunk" + std::to_string(chunk) + "_left" +
                                 std::to_string(left);
        SCOPED_TRACE(model + " " + name);
        const auto lp = test::read_golden<float>(model, name + "_ctc_log_probs");
        const int frames = int(lp.shape[1]), vocab = int(lp.shape[2]);
        const nlohmann::json& want = decode["results"][name];
        const auto want_nbest = want["ctc_prefix_beam_search"]["nbest"].get<std::vector<std::vector<int>>>();
        const auto want_scores = want["ctc_prefix_beam_search"]["nbest_scores"].get<std::vector<double>>();
        EXPECT_EQ(ctc_greedy_search(lp.data.data(), frames, vocab), want["ctc_greedy_search"].get<std::vector<int>>());

        StreamingDecoderOptions opts;
        opts.search.beam = beam;  // WeNet's python search: beam candidates per frame, beam prefixes
        const TopK top = top_k_of(lp.data.data(), frames, vocab, beam);
        const auto one_shot = CtcPrefixBeamSearcher(opts.search).search(lp.data.data(), frames, vocab);
        StreamingCtcDecoder dec(opts);
        for (int split : {1, 4, 7, frames}) {
          SCOPED_TRACE("split " + std::to_string(split));
          dec.reset();
          CtcPrefixBeamSearcher prefix_search(opts.search);
          for (int t0 = 0; t0 < frames; t0 += split) {
            const int n = std::min(split, frames - t0);
            dec.advance_top_k(top.ids.data() + size_t(t0) * beam, top.logp.data() + size_t(t0) * beam,
                              top.blank.data() + t0, n, beam);
            // The partial result is the one-shot search of the frames so far.
            expect_same_nbest(dec.nbest(), prefix_search.search(lp.data.data(), t0 + n, vocab));
          }
          EXPECT_EQ(dec.frames(), frames);
          const auto got = dec.nbest();
          expect_same_nbest(got, one_shot);
          ASSERT_EQ(got.size(), want_nbest.size());
          for (size_t i = 0; i < got.size(); ++i) {
            EXPECT_EQ(got[i].tokens, want_nbest[i]) << "hypothesis " << i;
            EXPECT_NEAR(got[i].ctc_score, want_scores[i], 1e-3) << "hypothesis " << i;
          }
          EXPECT_EQ(dec.best_tokens(), want_nbest[0]);
          EXPECT_EQ(dec.lattice_ids(), top.ids);
          ++checked;
        }
        // Full log-probs in, the same chunks: the same N-best.
        dec.reset();
        for (int t0 = 0; t0 < frames; t0 += chunk) {
          dec.advance(lp.data.data() + size_t(t0) * vocab, std::min(chunk, frames - t0), vocab);
        }
        expect_same_nbest(dec.nbest(), one_shot);
      }
    }
  }
  EXPECT_EQ(checked, 2 * 4 * 3 * 4);
}

// Long input (the trie is compacted several times mid-utterance), split at random points: the
// incremental searcher agrees with the one-shot search bit for bit.
TEST(StreamingSearch, RandomSplitsOfALongUtteranceEqualOneShot) {
  std::mt19937 rng(17);
  const int frames = 1500, vocab = 30;
  const std::vector<float> lp = random_log_probs(rng, frames, vocab, 2.0, 0.0);
  const CtcPrefixBeamOptions opts{.beam = 10};
  const auto want = ctc_prefix_beam_search(lp.data(), frames, vocab, opts);
  CtcPrefixBeamSearcher searcher(opts);
  std::uniform_int_distribution<int> len(0, 40);
  for (int round = 0; round < 3; ++round) {
    searcher.begin();
    for (int t = 0; t < frames;) {
      const int n = std::min(len(rng), frames - t);
      searcher.advance(lp.data() + size_t(t) * vocab, n, vocab);
      t += n;
      EXPECT_EQ(searcher.frames(), t);
    }
    expect_same_nbest(searcher.nbest(), want);
  }
}

TEST(StreamingSearch, FreshSearcherHasOneEmptyHypothesis) {
  CtcPrefixBeamSearcher searcher({.beam = 3});
  const auto h = searcher.nbest();
  ASSERT_EQ(h.size(), 1u);
  EXPECT_TRUE(h[0].tokens.empty());
  EXPECT_EQ(h[0].ctc_score, 0.0);
  EXPECT_TRUE(searcher.best_is_empty());
  StreamingCtcDecoder dec({});
  EXPECT_FALSE(dec.decoded_something());
  EXPECT_EQ(dec.frames(), 0);
  EXPECT_TRUE(dec.peak_frames({}).empty());
}

// ---------------------------------------------------------------------------------------------
// Endpoint rules (WeNet defaults, 40 ms frames).

std::vector<float> blanks(int frames, double prob) { return std::vector<float>(size_t(frames), float(std::log(prob))); }

// Feeds `frames` frames of blank probability `prob` in chunks of `chunk`; returns the first rule
// that fires (and the frame count then), or kNone.
std::pair<EndpointReason, int64_t> feed(CtcEndpoint& ep, int frames, double prob, bool decoded, int chunk = 1) {
  const std::vector<float> lp = blanks(chunk, prob);
  for (int t = 0; t < frames; t += chunk) {
    const EndpointReason r = ep.advance(lp.data(), std::min(chunk, frames - t), decoded);
    if (r != EndpointReason::kNone) return {r, ep.frames_decoded()};
  }
  return {EndpointReason::kNone, ep.frames_decoded()};
}

TEST(CtcEndpoint, Rule1FiveSecondsOfSilenceEvenWithNothingDecoded) {
  CtcEndpoint ep({}, 40);
  // 5000 ms = 125 frames of 40 ms: the rule fires on the frame that makes it exactly 5000 ms.
  EXPECT_EQ(feed(ep, 124, 0.95, false).first, EndpointReason::kNone);
  EXPECT_EQ(ep.trailing_silence_ms(), 4960);
  const auto [rule, at] = feed(ep, 1, 0.95, false);
  EXPECT_EQ(rule, EndpointReason::kRule1);
  EXPECT_EQ(at, 125);
  EXPECT_EQ(ep.trailing_silence_ms(), 5000);
}

TEST(CtcEndpoint, Rule2OneSecondAfterSomethingWasDecoded) {
  CtcEndpoint ep({}, 40);
  EXPECT_EQ(feed(ep, 10, 0.1, true).first, EndpointReason::kNone);  // speech
  // 1000 ms = 25 frames.
  EXPECT_EQ(feed(ep, 24, 0.9, true).first, EndpointReason::kNone);
  EXPECT_EQ(feed(ep, 1, 0.9, true).first, EndpointReason::kRule2);
  EXPECT_EQ(ep.trailing_silence_frames(), 25);
  EXPECT_EQ(ep.utterance_length_ms(), 35 * 40);
  // Nothing decoded: the same silence is not an endpoint (until rule 1's 5 s).
  ep.reset();
  EXPECT_EQ(feed(ep, 124, 0.9, false).first, EndpointReason::kNone);
  // With 60 ms frames (x6 subsampling) 1000 ms is not a whole number of frames: 17 frames (1020 ms).
  CtcEndpoint ep6({}, 60);
  EXPECT_EQ(feed(ep6, 16, 0.9, true).first, EndpointReason::kNone);
  EXPECT_EQ(feed(ep6, 1, 0.9, true).first, EndpointReason::kRule2);
}

TEST(CtcEndpoint, Rule3TwentySecondsOfAnything) {
  for (bool decoded : {false, true}) {
    CtcEndpoint ep({}, 40);
    // 20000 ms = 500 frames of speech (no trailing silence at all).
    EXPECT_EQ(feed(ep, 499, 0.2, decoded).first, EndpointReason::kNone);
    EXPECT_EQ(feed(ep, 1, 0.2, decoded).first, EndpointReason::kRule3);
    EXPECT_EQ(ep.utterance_length_ms(), 20000);
  }
}

TEST(CtcEndpoint, RulesAreEvaluatedOncePerChunkOnItsLastFrame) {
  CtcEndpoint ep({}, 40);
  // One chunk: 30 silent frames (1.2 s) then one speech frame: at the chunk's end the trailing
  // silence is 0, so no endpoint, though 1 s of silence passed inside the chunk.
  std::vector<float> chunk = blanks(31, 0.95);
  chunk.back() = std::log(0.3f);
  EXPECT_EQ(ep.advance(chunk.data(), 31, true), EndpointReason::kNone);
  EXPECT_EQ(ep.trailing_silence_frames(), 0);
  // Chunks of 16 frames: rule 2 is first seen at the end of the chunk that crosses 25 frames.
  const auto [rule, at] = feed(ep, 64, 0.95, true, 16);
  EXPECT_EQ(rule, EndpointReason::kRule2);
  EXPECT_EQ(at, 31 + 32);
  // An empty chunk re-evaluates the counts (WeNet calls IsEndpoint with what the encoder gave).
  EXPECT_EQ(ep.advance(nullptr, 0, true), EndpointReason::kRule2);
  EXPECT_EQ(ep.advance(nullptr, 0, false), EndpointReason::kNone);
}

TEST(CtcEndpoint, SilenceIsBlankProbabilityStrictlyAboveTheThreshold) {
  CtcEndpoint ep({}, 40);
  EXPECT_FLOAT_EQ(ep.options().silence_prob(), 0.8f);
  // Find log-probs around log(0.8) whose float exp is exactly 0.8f, and the next above.
  float at = std::nanf(""), above = std::nanf("");
  float x = std::log(0.8f);
  for (int i = 0; i < 32; ++i) x = std::nextafter(x, -1.f);
  for (int i = 0; i < 64; ++i, x = std::nextafter(x, 1.f)) {
    if (std::exp(x) == 0.8f && std::isnan(at)) at = x;
    if (std::exp(x) > 0.8f && std::isnan(above)) above = x;
  }
  ASSERT_FALSE(std::isnan(above));
  if (!std::isnan(at)) EXPECT_FALSE(ep.is_silence(at)) << "exactly at the threshold is speech";
  EXPECT_TRUE(ep.is_silence(above));
  EXPECT_FALSE(ep.is_silence(std::log(0.8f) - 1e-3f));
  EXPECT_FALSE(ep.is_silence(kNegInfF));
  EXPECT_TRUE(ep.is_silence(0.f));
  // blank_scale scales the threshold (WeNet: threshold * scale).
  CtcEndpointOptions scaled;
  scaled.blank_scale = 0.5f;
  CtcEndpoint ep2(scaled, 40);
  EXPECT_TRUE(ep2.is_silence(std::log(0.41f)));
  EXPECT_FALSE(ep2.is_silence(std::log(0.39f)));
  // Independent of the libm: a threshold set to exp(x) exactly makes x speech, the next float up
  // (whose exp is not below) silence only once exp(x') exceeds it.
  CtcEndpointOptions exact;
  const float x0 = -0.3f;
  exact.blank_threshold = std::exp(x0);
  CtcEndpoint ep3(exact, 40);
  EXPECT_FALSE(ep3.is_silence(x0));
  float x1 = std::nextafter(x0, 1.f);
  while (!(std::exp(x1) > std::exp(x0))) x1 = std::nextafter(x1, 1.f);
  EXPECT_TRUE(ep3.is_silence(x1));
  // A frame exactly at the threshold resets the trailing run.
  if (!std::isnan(at)) {
    const float lp[3] = {above, above, at};
    ep.advance(lp, 3, false);
    EXPECT_EQ(ep.trailing_silence_frames(), 0);
  }
}

TEST(CtcEndpoint, DisabledNeverFiresAndOptionsAreChecked) {
  CtcEndpointOptions off;
  off.enabled = false;
  CtcEndpoint ep(off, 40);
  EXPECT_EQ(feed(ep, 600, 0.99, true).first, EndpointReason::kNone);
  EXPECT_EQ(ep.frames_decoded(), 600);
  EXPECT_EQ(off.describe(), "endpointing off");
  const std::string d = CtcEndpointOptions{}.describe();
  EXPECT_NE(d.find("rule2: decoded something, trailing silence >= 1000 ms"), std::string::npos) << d;

  CtcEndpointOptions bad;
  bad.rule2.min_trailing_silence_ms = -1;
  EXPECT_THROW(bad.validate(), Error);
  bad = {};
  bad.blank_threshold = 1.5f;
  EXPECT_THROW(bad.validate(), Error);
  bad = {};
  bad.blank_scale = 0.f;
  EXPECT_THROW(bad.validate(), Error);
  EXPECT_THROW(CtcEndpoint({}, 0), Error);
  EXPECT_THROW(ep.advance(nullptr, -1, false), Error);
  EXPECT_THROW(ep.advance(nullptr, 2, false), Error);
}

// ---------------------------------------------------------------------------------------------
// The decoder: endpoint + final result + continuous decoding.

// Log-probs [frames][vocab] for a frame script: -1 = blank frame, else the token with prob 0.9.
std::vector<float> scripted(const std::vector<int>& script, int vocab) {
  std::vector<float> out;
  for (int s : script) {
    const int hot = s < 0 ? 0 : s;
    for (int v = 0; v < vocab; ++v) {
      out.push_back(float(std::log(v == hot ? 0.9 : 0.1 / (vocab - 1))));
    }
  }
  return out;
}

std::vector<std::string> test_units(int vocab) {
  std::vector<std::string> units = {"<blank>"};
  for (int v = 1; v < vocab; ++v) units.push_back("u" + std::to_string(v));
  return units;
}

TEST(StreamingDecoder, EndpointFinalResultAndContinuousDecodingOffsets) {
  const int vocab = 6, chunk = 4;
  StreamingDecoderOptions opts;
  opts.search.beam = 4;
  StreamingCtcDecoder dec(opts);
  EXPECT_EQ(opts.frame_ms(), 40);
  const auto units = test_units(vocab);

  // Utterance 1: tokens 2 (frames 1-2), 3 (frame 5), then 1.2 s of blanks: rule 2 after the chunk
  // that completes 25 silent frames (frames 6..30, i.e. the chunk ending at frame 31 = 32 frames).
  std::vector<int> script = {-1, 2, 2, -1, -1, 3};
  script.resize(40, -1);
  const std::vector<float> lp1 = scripted(script, vocab);
  EndpointReason rule = EndpointReason::kNone;
  int t = 0;
  for (; t < int(script.size()) && rule == EndpointReason::kNone; t += chunk) {
    rule = dec.advance(lp1.data() + size_t(t) * vocab, chunk, vocab);
    if (t == 0) EXPECT_EQ(dec.best_tokens(), std::vector<int>{2});  // partial result after chunk 1
  }
  EXPECT_EQ(rule, EndpointReason::kRule2);
  EXPECT_EQ(dec.endpoint(), EndpointReason::kRule2);
  EXPECT_EQ(t, 32);
  EXPECT_EQ(dec.frames(), 32);
  EXPECT_EQ(dec.endpointer().trailing_silence_frames(), 26);
  const auto nbest1 = dec.nbest();
  ASSERT_FALSE(nbest1.empty());
  EXPECT_EQ(nbest1[0].tokens, (std::vector<int>{2, 3}));
  EXPECT_EQ(dec.peak_frames({2, 3}), (std::vector<int>{2, 5}));  // last frame of each run (WeNet)
  const auto pieces1 = dec.word_pieces({2, 3}, units);
  // Frames 2 and 5 at 40 ms: 120 ms apart (>= 100 ms gap): start = t*40 - 100 (floored at 0), end = t*40.
  ASSERT_EQ(pieces1.size(), 2u);
  EXPECT_EQ(pieces1[0].word, "u2");
  EXPECT_EQ(pieces1[0].start_ms, 0);
  EXPECT_EQ(pieces1[0].end_ms, 80);
  EXPECT_EQ(pieces1[1].start_ms, 100);
  EXPECT_EQ(pieces1[1].end_ms, 200);
  // The same as timestamps.h on the decoder's lattice.
  const auto peaks = ctc_peak_frames(dec.lattice_ids().data(), dec.lattice_logp().data(), dec.frames(),
                                     dec.lattice_k(), 0, {2, 3});
  EXPECT_EQ(peaks, dec.peak_frames({2, 3}));

  // Continuous decoding: WeNet read (32 - 1) * 4 + 6 + 1 = 131 fbank frames for utterance 1; the
  // next utterance's frame 0 is at 1310 ms of the stream.
  const int64_t read = wenet_feature_frames_read(dec.frames(), 4, 6);
  EXPECT_EQ(read, 131);
  dec.reset_continuous(read);
  EXPECT_EQ(dec.utterance_offset_ms(), 1310);
  EXPECT_EQ(dec.frames(), 0);
  EXPECT_EQ(dec.endpoint(), EndpointReason::kNone);
  EXPECT_FALSE(dec.decoded_something());
  EXPECT_EQ(dec.endpointer().frames_decoded(), 0);

  // Utterance 2: token 4 at frame 3, 5 at frame 4 (neighbours closer than 100 ms share the midpoint).
  const std::vector<float> lp2 = scripted({-1, -1, -1, 4, 5, -1, -1, -1}, vocab);
  EXPECT_EQ(dec.advance(lp2.data(), 8, vocab), EndpointReason::kNone);
  EXPECT_TRUE(dec.decoded_something());
  EXPECT_EQ(dec.best_tokens(), (std::vector<int>{4, 5}));
  EXPECT_EQ(dec.peak_frames({4, 5}), (std::vector<int>{3, 4}));  // utterance-relative frames
  const auto pieces2 = dec.word_pieces({4, 5}, units);
  ASSERT_EQ(pieces2.size(), 2u);
  EXPECT_EQ(pieces2[0].start_ms, 1310 + 20);        // 3 * 40 - 100
  EXPECT_EQ(pieces2[0].end_ms, 1310 + (3 + 4) / 2 * 40);  // midpoint frame 3 (integer division)
  EXPECT_EQ(pieces2[1].start_ms, 1310 + 120);
  EXPECT_EQ(pieces2[1].end_ms, 1310 + 160);

  // reset(): a new stream, offset 0.
  dec.reset();
  EXPECT_EQ(dec.utterance_offset_ms(), 0);
  dec.advance(lp2.data(), 8, vocab);
  EXPECT_EQ(dec.word_pieces({4, 5}, units)[1].end_ms, 160);
}

TEST(StreamingDecoder, NothingDecodedEndsByRule1AndTheBlankCanComeFromTheTopK) {
  StreamingDecoderOptions opts;
  opts.search.beam = 3;
  StreamingCtcDecoder with_blank(opts), from_top_k(opts);
  std::mt19937 rng(4);
  const int vocab = 8, frames = 200;
  // Mostly blank (prob ~0.95): nothing decoded; rule 1 at 125 frames.
  const std::vector<float> lp = random_log_probs(rng, frames, vocab, 0.3, 7.0);
  const TopK top = top_k_of(lp.data(), frames, vocab, 3);
  EndpointReason a = EndpointReason::kNone, b = EndpointReason::kNone;
  int t = 0;
  for (; t < frames && a == EndpointReason::kNone; t += 5) {
    a = with_blank.advance_top_k(top.ids.data() + t * 3, top.logp.data() + t * 3, top.blank.data() + t, 5, 3);
    b = from_top_k.advance_top_k(top.ids.data() + t * 3, top.logp.data() + t * 3, nullptr, 5, 3);
    EXPECT_EQ(a, b) << t;
    EXPECT_EQ(with_blank.endpointer().trailing_silence_frames(), from_top_k.endpointer().trailing_silence_frames());
  }
  EXPECT_FALSE(with_blank.decoded_something());
  EXPECT_EQ(a, EndpointReason::kRule1);
  EXPECT_GE(t, 125);
  // Below 0.5 the top-k cannot tell: the blank log-probs are required.
  opts.endpoint.blank_threshold = 0.4f;
  StreamingCtcDecoder low(opts);
  EXPECT_THROW(low.advance_top_k(top.ids.data(), top.logp.data(), nullptr, 5, 3), Error);
  EXPECT_NO_THROW(low.advance_top_k(top.ids.data(), top.logp.data(), top.blank.data(), 5, 3));
}

TEST(StreamingDecoder, BadInputIsAClearErrorAndChangesNothing) {
  StreamingDecoderOptions opts;
  opts.search.beam = 4;
  StreamingCtcDecoder dec(opts);
  std::mt19937 rng(2);
  const int vocab = 10;
  const std::vector<float> lp = random_log_probs(rng, 8, vocab, 2.0, 0.0);
  const TopK top = top_k_of(lp.data(), 8, vocab, 4);
  dec.advance_top_k(top.ids.data(), top.logp.data(), top.blank.data(), 4, 4);
  const auto before = dec.nbest();

  auto message = [](auto&& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  // k differs from the utterance's earlier chunks.
  const TopK top3 = top_k_of(lp.data(), 8, vocab, 3);
  EXPECT_NE(message([&] { dec.advance_top_k(top3.ids.data(), top3.logp.data(), top3.blank.data(), 4, 3); })
                .find("expected k = 4 candidates per frame"),
            std::string::npos);
  EXPECT_NE(message([&] { dec.advance_top_k(top.ids.data(), top.logp.data(), top.blank.data(), -1, 4); })
                .find("expected frames >= 0, got -1"),
            std::string::npos);
  EXPECT_THROW(dec.advance_top_k(nullptr, top.logp.data(), top.blank.data(), 1, 4), Error);
  EXPECT_THROW(dec.advance_top_k(top.ids.data(), top.logp.data(), top.blank.data(), 1, 0), Error);
  std::vector<int> bad_ids = top.ids;
  bad_ids[5] = -3;
  EXPECT_NE(message([&] { dec.advance_top_k(bad_ids.data(), top.logp.data(), top.blank.data(), 4, 4); })
                .find("expected token ids >= 0, got -3 at frame 5"),
            std::string::npos);
  EXPECT_THROW(dec.advance(lp.data(), -2, vocab), Error);
  EXPECT_THROW(dec.advance(lp.data(), 2, 3), Error);  // k = min(3, beam 4) = 3 != 4
  EXPECT_THROW(dec.reset_continuous(-1), Error);
  // Nothing changed: the next good chunk continues where the good ones left off.
  EXPECT_EQ(dec.frames(), 4);
  EXPECT_EQ(dec.lattice_ids().size(), 16u);
  expect_same_nbest(dec.nbest(), before);
  dec.advance_top_k(top.ids.data() + 16, top.logp.data() + 16, top.blank.data() + 4, 4, 4);
  expect_same_nbest(dec.nbest(), ctc_prefix_beam_search(lp.data(), 8, vocab, opts.search));
  // A new utterance may use another k.
  dec.reset();
  EXPECT_NO_THROW(dec.advance_top_k(top3.ids.data(), top3.logp.data(), top3.blank.data(), 4, 3));

  // Options.
  StreamingDecoderOptions bad;
  bad.endpoint.blank = 1;
  EXPECT_THROW(StreamingCtcDecoder{bad}, Error);
  bad = {};
  bad.subsampling = 0;
  EXPECT_THROW(bad.validate(), Error);
  bad = {};
  bad.search.beam = 0;
  EXPECT_THROW(bad.validate(), Error);
  EXPECT_NE(StreamingDecoderOptions{}.describe().find("encoder frame 40 ms"), std::string::npos);
  EXPECT_THROW(wenet_feature_frames_read(-1, 4, 6), Error);
  EXPECT_EQ(wenet_feature_frames_read(0, 4, 6), 0);
  EXPECT_EQ(wenet_feature_frames_read(16, 4, 6), 67);  // one chunk of 16: (16-1)*4 + 7, WeNet's first window
}

}  // namespace
}  // namespace wenet_rt
