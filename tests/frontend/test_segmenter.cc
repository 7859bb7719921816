// split_at_pauses: synthetic recordings (modulated tone + noise bursts separated by pauses at known
// places) checked for cuts inside the pauses, the length bound, full coverage, and the hard-cut and
// error cases.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <random>

#include "core/error.h"
#include "frontend/segmenter.h"

namespace wenet_rt {
namespace {

constexpr int kRate = 16000;

// A recording built piece by piece; remembers where its pauses are (in samples).
struct Recording {
  std::vector<float> x;
  std::vector<Segment> pauses;
  std::mt19937 rng{1234};

  // Speech-like: a tone plus noise under a syllable-rate envelope that never reaches zero.
  void burst(double seconds, double amplitude = 0.3) {
    std::normal_distribution<float> noise(0.f, 1.f);
    const int64_t n = int64_t(seconds * kRate);
    for (int64_t i = 0; i < n; ++i) {
      const double t = double(i) / kRate;
      const double env = 0.2 + 0.8 * std::abs(std::sin(std::numbers::pi * 4 * t));
      x.push_back(float(amplitude * env * (0.6 * std::sin(2 * std::numbers::pi * 220 * t) + 0.4 * noise(rng))));
    }
  }
  // Silence at `floor` amplitude of noise (0: digital silence).
  void pause(double seconds, float floor = 1e-3f) {
    std::normal_distribution<float> noise(0.f, floor > 0 ? floor : 1.f);
    const int64_t begin = int64_t(x.size());
    for (int64_t i = 0, n = int64_t(seconds * kRate); i < n; ++i) x.push_back(floor > 0 ? noise(rng) : 0.f);
    pauses.push_back({begin, int64_t(x.size())});
  }
  int64_t size() const { return int64_t(x.size()); }
  std::vector<Segment> split(const SegmentOptions& o = {}) const { return split_at_pauses(x.data(), size(), kRate, o); }
};

// Contiguous, in order, non-empty, covering [0, n), none longer than max_seconds.
void expect_cover(const std::vector<Segment>& segs, int64_t n, double max_seconds) {
  ASSERT_FALSE(segs.empty());
  EXPECT_EQ(segs.front().begin, 0);
  EXPECT_EQ(segs.back().end, n);
  for (size_t i = 0; i < segs.size(); ++i) {
    EXPECT_LT(segs[i].begin, segs[i].end) << "segment " << i;
    EXPECT_LE(segs[i].end - segs[i].begin, int64_t(max_seconds * kRate)) << "segment " << i;
    if (i > 0) EXPECT_EQ(segs[i].begin, segs[i - 1].end) << "segment " << i;
  }
}

// Index of the pause holding `sample` at least `margin` samples from its edges, or -1.
int pause_holding(const Recording& r, int64_t sample, int64_t margin) {
  for (size_t i = 0; i < r.pauses.size(); ++i)
    if (sample >= r.pauses[i].begin + margin && sample <= r.pauses[i].end - margin) return int(i);
  return -1;
}

TEST(SplitAtPauses, ShortInputIsOneSegment) {
  Recording r;
  r.burst(3);
  r.pause(0.5);
  r.burst(2);
  const auto segs = r.split();
  ASSERT_EQ(segs.size(), 1u);
  EXPECT_EQ(segs[0].begin, 0);
  EXPECT_EQ(segs[0].end, r.size());
  // Exactly max_seconds is still one segment; nothing is no segment.
  const std::vector<float> thirty(30 * kRate, 0.1f);
  EXPECT_EQ(split_at_pauses(thirty.data(), int64_t(thirty.size()), kRate, {}).size(), 1u);
  EXPECT_TRUE(split_at_pauses(nullptr, 0, kRate, {}).empty());
  // Huge settings do not overflow sample counts.
  SegmentOptions huge;
  huge.max_seconds = 1e300;
  huge.frame_ms = 1e300;
  huge.smooth_ms = 1e308;
  EXPECT_EQ(r.split(huge).size(), 1u);
  huge.max_seconds = 4;
  EXPECT_EQ(r.split(huge).size(), 2u);
}

TEST(SplitAtPauses, CutsLandInNoisyPauses) {
  // ~80 s: bursts of 2.5-4.5 s separated by 0.4-0.8 s pauses at a -60 dB noise floor.
  Recording r;
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> speech(2.5, 4.5), gap(0.4, 0.8);
  while (r.size() < 80 * kRate) {
    r.burst(speech(rng));
    r.pause(gap(rng));
  }
  r.burst(3);
  const auto segs = r.split();
  expect_cover(segs, r.size(), 30);
  ASSERT_GE(segs.size(), 3u);
  for (size_t i = 0; i + 1 < segs.size(); ++i) {
    // The smoothing (200 ms) keeps a cut at least ~100 ms away from any burst.
    EXPECT_GE(pause_holding(r, segs[i].end, kRate / 20), 0) << "cut " << i << " at " << double(segs[i].end) / kRate
                                                            << " s is not inside a pause";
    EXPECT_GE(segs[i].end - segs[i].begin, 15 * kRate) << "cut " << i << " before the search window";
  }
}

// Utterances: a cut in every pause of >= pause_seconds (here 0.6-0.9 s pauses every 2.5-4.5 s),
// none in shorter ones (0.2 s), and a long stretch without pauses still split to <= max.
TEST(SplitIntoUtterances, CutsEveryLongPauseKeepingSomeOfIt) {
  Recording r;
  std::mt19937 rng(9);
  std::uniform_real_distribution<double> speech(2.5, 4.5), gap(0.6, 0.9);
  std::vector<Segment> long_pauses;
  for (int i = 0; i < 12; ++i) {
    r.burst(speech(rng));
    r.pause(0.2);  // a breath inside a sentence: not an utterance boundary
    r.burst(1.0);
    r.pause(gap(rng));
    long_pauses.push_back(r.pauses.back());
  }
  r.burst(45);  // 45 s without a pause
  const auto segs = split_into_utterances(r.x.data(), r.size(), kRate);
  ASSERT_EQ(segs.size(), long_pauses.size() + 2) << "one cut per long pause, one inside the 45 s burst";
  EXPECT_EQ(segs.front().begin, 0);
  EXPECT_EQ(segs.back().end, r.size());
  for (size_t i = 0; i < segs.size(); ++i) {
    EXPECT_LT(segs[i].begin, segs[i].end);
    EXPECT_LE(segs[i].end - segs[i].begin, 30 * kRate);
  }
  // Each cut keeps keep_pause_seconds of its pause on both sides (to a 10 ms frame) and leaves out the rest.
  const double keep = SegmentOptions{}.keep_pause_seconds * kRate, frame = 0.01 * kRate;
  for (size_t i = 0; i < long_pauses.size(); ++i) {
    EXPECT_NEAR(double(segs[i].end), double(long_pauses[i].begin) + keep, 2 * frame) << "cut " << i;
    EXPECT_NEAR(double(segs[i + 1].begin), double(long_pauses[i].end) - keep, 2 * frame) << "cut " << i;
  }
  // The 45 s burst is split without a gap (no pause to leave out).
  EXPECT_EQ(segs[segs.size() - 2].end, segs.back().begin);
  EXPECT_TRUE(split_into_utterances(r.x.data(), 0, kRate).empty());
  SegmentOptions bad;
  bad.pause_seconds = 0;
  EXPECT_THROW(split_into_utterances(r.x.data(), r.size(), kRate, bad), Error);
}

TEST(SplitAtPauses, DigitalSilenceTiesGoToTheLatestPause) {
  // Pauses of exact zeros ending at 8, 16, 24 and 28 s: all equally quiet, so the first cut goes to
  // the last one inside [15, 30] s (28 s), and within it as late as the smoothing allows.
  Recording r;
  for (double end : {8.0, 16.0, 24.0, 28.0, 36.0, 44.0, 52.0, 64.0}) {
    r.burst(end - double(r.size()) / kRate - 0.5);
    r.pause(0.5, 0.f);
  }
  r.burst(6);
  const auto segs = r.split();
  expect_cover(segs, r.size(), 30);
  ASSERT_GE(segs.size(), 2u);
  EXPECT_EQ(pause_holding(r, segs[0].end, 0), 3);  // the pause ending at 28 s
  EXPECT_GT(segs[0].end, r.pauses[3].end - kRate / 5);
  // From there the window is [42.5, 57.5] s: the pause ending at 52 s is the latest.
  EXPECT_EQ(pause_holding(r, segs[1].end, 0), 6);
  EXPECT_EQ(segs.size(), 3u);
}

TEST(SplitAtPauses, NoPausesMeansHardCutsAtMax) {
  Recording r;
  r.burst(100);
  const auto segs = r.split();
  expect_cover(segs, r.size(), 30);
  ASSERT_EQ(segs.size(), 4u);
  EXPECT_EQ(segs[0].end, 30 * kRate);
  EXPECT_EQ(segs[1].end, 60 * kRate);
  EXPECT_EQ(segs[2].end, 90 * kRate);
  // Steady noise has no pause either.
  std::mt19937 rng(3);
  std::normal_distribution<float> noise(0.f, 0.1f);
  std::vector<float> x(70 * kRate);
  for (float& v : x) v = noise(rng);
  const auto n = split_at_pauses(x.data(), int64_t(x.size()), kRate, {});
  ASSERT_EQ(n.size(), 3u);
  EXPECT_EQ(n[0].end, 30 * kRate);
  EXPECT_EQ(n[1].end, 60 * kRate);
}

TEST(SplitAtPauses, AllSilence) {
  const std::vector<float> zeros(75 * kRate, 0.f);
  const auto segs = split_at_pauses(zeros.data(), int64_t(zeros.size()), kRate, {});
  expect_cover(segs, int64_t(zeros.size()), 30);
  ASSERT_EQ(segs.size(), 3u);
  EXPECT_EQ(segs[0].end, 30 * kRate);
  EXPECT_EQ(segs[1].end, 60 * kRate);
}

TEST(SplitAtPauses, NoShortTrailingSegment) {
  // 30.5 s without a pause: a cut at 30 s would leave 0.5 s; the cut moves to 29.5 s instead so
  // that the last segment holds min_seconds (1 s).
  Recording r;
  r.burst(30.5);
  auto segs = r.split();
  expect_cover(segs, r.size(), 30);
  ASSERT_EQ(segs.size(), 2u);
  EXPECT_EQ(segs[1].end - segs[1].begin, 1 * kRate);
  // A pause ending 0.3 s before the end is not used either (the cut window ends 1 s before the end);
  // with min_seconds 0 it is.
  Recording p;
  p.burst(29.9);
  p.pause(0.4, 0.f);
  p.burst(0.3);
  segs = p.split();
  ASSERT_EQ(segs.size(), 2u);
  EXPECT_GE(segs[1].end - segs[1].begin, 1 * kRate);
  SegmentOptions o;
  o.min_seconds = 0;
  o.max_seconds = 30.3;
  segs = p.split(o);
  ASSERT_EQ(segs.size(), 2u);
  EXPECT_EQ(pause_holding(p, segs[0].end, 0), 0);
}

TEST(SplitAtPauses, OtherLengthsAndDeterminism) {
  Recording r;
  std::mt19937 rng(9);
  std::uniform_real_distribution<double> speech(1.0, 3.0), gap(0.3, 0.6);
  while (r.size() < 65 * kRate) {
    r.burst(speech(rng));
    r.pause(gap(rng));
  }
  SegmentOptions o;
  o.max_seconds = 10;
  o.min_seconds = 2;
  const auto segs = r.split(o);
  expect_cover(segs, r.size(), 10);
  EXPECT_GE(segs.back().end - segs.back().begin, 2 * kRate);
  for (size_t i = 0; i + 1 < segs.size(); ++i) EXPECT_GE(pause_holding(r, segs[i].end, kRate / 20), 0) << i;
  const auto again = r.split(o);
  ASSERT_EQ(again.size(), segs.size());
  for (size_t i = 0; i < segs.size(); ++i) EXPECT_EQ(again[i].end, segs[i].end);
}

// The message of the error `f` throws, or "" if it throws none.
template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(SplitAtPauses, RejectsBadOptions) {
  const std::vector<float> x(kRate, 0.f);
  const auto message = [&](auto change, int rate = kRate) {
    SegmentOptions o;
    change(o);
    return error_of([&] { split_at_pauses(x.data(), int64_t(x.size()), rate, o); });
  };
  EXPECT_EQ(message([](SegmentOptions& o) { o.max_seconds = -1; }), "segmenter: expected max_seconds > 0, got -1");
  EXPECT_EQ(message([](SegmentOptions& o) { o.max_seconds = NAN; }), "segmenter: expected max_seconds > 0, got nan");
  EXPECT_EQ(message([](SegmentOptions& o) { o.min_seconds = -0.5; }), "segmenter: expected min_seconds >= 0, got -0.5");
  EXPECT_EQ(message([](SegmentOptions& o) { o.min_seconds = 20; }),
            "segmenter: expected min_seconds <= (1 - search_from) * max_seconds = 15, got 20");
  EXPECT_EQ(message([](SegmentOptions& o) { o.search_from = 0; }),
            "segmenter: expected search_from in (0, 1], got 0");
  EXPECT_EQ(message([](SegmentOptions& o) { o.frame_ms = 0; }), "segmenter: expected frame_ms > 0, got 0");
  EXPECT_EQ(message([](SegmentOptions& o) { o.smooth_ms = -1; }), "segmenter: expected smooth_ms >= 0, got -1");
  EXPECT_EQ(message([](SegmentOptions& o) { o.pause_db = INFINITY; }), "segmenter: expected pause_db >= 0, got inf");
  EXPECT_EQ(message([](SegmentOptions& o) { o.frame_ms = 0.01; }),
            "segmenter: expected frame_ms of at least one sample at 16000 Hz, got 0.01");
  EXPECT_EQ(message([](SegmentOptions&) {}, 0), "segmenter: expected sample_rate > 0, got 0");
  EXPECT_EQ(error_of([] { split_at_pauses(nullptr, 5, kRate, {}); }), "segmenter: samples are null for 5 samples");
  EXPECT_EQ(error_of([] { split_at_pauses(nullptr, -1, kRate, {}); }),
            "segmenter: expected a sample count >= 0, got -1");
  EXPECT_EQ(message([](SegmentOptions&) {}), "");
  EXPECT_NE(SegmentOptions{}.describe().find("max_seconds=30"), std::string::npos);
}

}  // namespace
}  // namespace wenet_rt
