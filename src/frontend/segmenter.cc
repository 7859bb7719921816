#include "frontend/segmenter.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace wenet_rt {
namespace {

// Power floor: -100 dB relative to full scale, so that digital silence has a finite level and
// all-zero stretches compare equal (ties) rather than as -inf.
constexpr double kPowerFloor = 1e-10;

bool finite_at_least(double x, double lo) { return std::isfinite(x) && x >= lo; }

// Mean square of samples [from, to).
double mean_square(const float* x, int64_t from, int64_t to) {
  double sum = 0;
  for (int64_t i = from; i < to; ++i) sum += double(x[i]) * x[i];
  return to > from ? sum / double(to - from) : 0.0;
}

}  // namespace

void SegmentOptions::validate() const {
  WENET_CHECK(std::isfinite(max_seconds) && max_seconds > 0, "segmenter: expected max_seconds > 0, got {}",
              max_seconds);
  WENET_CHECK(search_from > 0 && search_from <= 1, "segmenter: expected search_from in (0, 1], got {}", search_from);
  WENET_CHECK(finite_at_least(min_seconds, 0), "segmenter: expected min_seconds >= 0, got {}", min_seconds);
  WENET_CHECK(min_seconds <= (1 - search_from) * max_seconds,
              "segmenter: expected min_seconds <= (1 - search_from) * max_seconds = {}, got {}",
              (1 - search_from) * max_seconds, min_seconds);
  WENET_CHECK(std::isfinite(frame_ms) && frame_ms > 0, "segmenter: expected frame_ms > 0, got {}", frame_ms);
  WENET_CHECK(finite_at_least(smooth_ms, 0), "segmenter: expected smooth_ms >= 0, got {}", smooth_ms);
  WENET_CHECK(finite_at_least(pause_db, 0), "segmenter: expected pause_db >= 0, got {}", pause_db);
  WENET_CHECK(std::isfinite(pause_seconds) && pause_seconds > 0, "segmenter: expected pause_seconds > 0, got {}",
              pause_seconds);
  WENET_CHECK(std::isfinite(silence_db) && silence_db > 0, "segmenter: expected silence_db > 0, got {}", silence_db);
  WENET_CHECK(finite_at_least(keep_pause_seconds, 0), "segmenter: expected keep_pause_seconds >= 0, got {}",
              keep_pause_seconds);
}

std::string SegmentOptions::describe() const {
  return fmt::format("max_seconds={} min_seconds={} search_from={} frame_ms={} smooth_ms={} pause_db={}", max_seconds,
                     min_seconds, search_from, frame_ms, smooth_ms, pause_db);
}

std::vector<Segment> split_at_pauses(const float* samples, int64_t n, int sample_rate, const SegmentOptions& o) {
  o.validate();
  WENET_CHECK(sample_rate > 0, "segmenter: expected sample_rate > 0, got {}", sample_rate);
  WENET_CHECK(n >= 0, "segmenter: expected a sample count >= 0, got {}", n);
  WENET_CHECK(n == 0 || samples != nullptr, "segmenter: samples are null for {} samples", n);
  // Lengths in samples, compared as doubles first so that huge options cannot overflow.
  const double max_len_d = o.max_seconds * sample_rate, frame_d = o.frame_ms * sample_rate / 1000;
  WENET_CHECK(max_len_d >= 1, "segmenter: expected max_seconds of at least one sample at {} Hz, got {}", sample_rate,
              o.max_seconds);
  WENET_CHECK(std::round(frame_d) >= 1, "segmenter: expected frame_ms of at least one sample at {} Hz, got {}",
              sample_rate, o.frame_ms);
  if (n == 0) return {};
  if (max_len_d >= double(n)) return {{0, n}};
  const int64_t max_len = int64_t(max_len_d);                     // < n
  const int64_t min_len = int64_t(o.min_seconds * sample_rate);  // <= max_len (validate)
  const int64_t frame = std::llround(std::min(frame_d, double(n)));
  // Frames on either side of a frame that its smoothed power averages over.
  const int64_t half = std::llround(std::min(o.smooth_ms / o.frame_ms / 2, double(n)));
  const int64_t frames = (n + frame - 1) / frame;  // the last one may be partial

  std::vector<Segment> out;
  std::vector<double> power, level, sorted;
  int64_t begin = 0;
  while (n - begin > max_len) {
    const int64_t remaining = n - begin;
    // Cut window [lo, hi] in samples (see the header); hi > begin since remaining > max_len >= min_len.
    const int64_t hi = begin + std::min(max_len, remaining - min_len);
    const int64_t lo = std::min(hi, begin + std::max<int64_t>(1, int64_t(o.search_from * double(max_len))));
    // Candidate frames: those whose center (i * frame + frame / 2) lies in [lo, hi].
    const int64_t first = std::max<int64_t>(0, (lo - frame / 2 + frame - 1) / frame);
    const int64_t last = hi >= frame / 2 ? std::min(frames - 1, (hi - frame / 2) / frame) : -1;
    int64_t cut = hi;  // hard cut unless a pause is found
    if (first <= last) {
      // Power of the frames the smoothing reads, then their mean around each candidate (summed
      // afresh for each: a running sum would leave rounding residue, and digital silence must tie).
      const int64_t p0 = std::max<int64_t>(0, first - half), p1 = std::min(frames - 1, last + half);
      power.resize(size_t(p1 - p0 + 1));
      for (int64_t i = p0; i <= p1; ++i)
        power[size_t(i - p0)] = mean_square(samples, i * frame, std::min(n, (i + 1) * frame));
      level.clear();
      for (int64_t i = first; i <= last; ++i) {
        const int64_t a = std::max(p0, i - half), b = std::min(p1, i + half);
        double sum = 0;
        for (int64_t j = a; j <= b; ++j) sum += power[size_t(j - p0)];
        level.push_back(10 * std::log10(sum / double(b - a + 1) + kPowerFloor));
      }
      sorted = level;
      std::nth_element(sorted.begin(), sorted.begin() + sorted.size() / 2, sorted.end());
      const double median = sorted[sorted.size() / 2];
      size_t quietest = 0;
      for (size_t i = 0; i < level.size(); ++i)
        if (level[i] <= level[quietest]) quietest = i;  // the latest on ties
      if (level[quietest] <= median - o.pause_db) cut = (first + int64_t(quietest)) * frame + frame / 2;
    }
    out.push_back({begin, cut});
    begin = cut;
  }
  out.push_back({begin, n});
  return out;
}

std::vector<Segment> split_into_utterances(const float* samples, int64_t n, int sample_rate, const SegmentOptions& o) {
  o.validate();
  WENET_CHECK(sample_rate > 0, "segmenter: expected sample_rate > 0, got {}", sample_rate);
  WENET_CHECK(n >= 0, "segmenter: expected a sample count >= 0, got {}", n);
  WENET_CHECK(n == 0 || samples != nullptr, "segmenter: samples are null for {} samples", n);
  if (n == 0) return {};
  const int64_t frame = std::max<int64_t>(1, int64_t(o.frame_ms * sample_rate / 1000));
  const int64_t frames = (n + frame - 1) / frame;
  std::vector<double> db(static_cast<size_t>(frames), 0.0);
  for (int64_t f = 0; f < frames; ++f)
    db[size_t(f)] = 10 * std::log10(std::max(kPowerFloor, mean_square(samples, f * frame, std::min(n, (f + 1) * frame))));
  std::vector<double> sorted = db;
  const size_t p95 = size_t(double(sorted.size() - 1) * 0.95);
  std::nth_element(sorted.begin(), sorted.begin() + long(p95), sorted.end());
  const double threshold = sorted[p95] - o.silence_db;
  const int64_t min_pause = std::max<int64_t>(1, int64_t(o.pause_seconds * sample_rate / double(frame)));
  const int64_t min_len = int64_t(o.min_seconds * sample_rate);

  // Utterances between the pauses long enough (once the piece before is long enough), each
  // keeping up to `keep` samples of the pause on either side.
  const int64_t keep = int64_t(o.keep_pause_seconds * sample_rate);
  std::vector<Segment> pieces{{0, n}};
  for (int64_t f = 0; f < frames;) {
    if (db[size_t(f)] >= threshold) {
      ++f;
      continue;
    }
    int64_t end = f;
    while (end < frames && db[size_t(end)] < threshold) ++end;
    const int64_t middle = std::min(n, (f + end) / 2 * frame);
    if (end - f >= min_pause && end < frames && middle - pieces.back().begin >= min_len && n - middle >= min_len) {
      pieces.back().end = std::min(middle, f * frame + keep);
      pieces.push_back({std::max(middle, std::min(n, end * frame) - keep), n});
    }
    f = end;
  }
  std::vector<Segment> out;
  for (const Segment& piece : pieces) {
    for (Segment s : split_at_pauses(samples + piece.begin, piece.end - piece.begin, sample_rate, o)) {
      s.begin += piece.begin;
      s.end += piece.begin;
      out.push_back(s);
    }
  }
  return out;
}

}  // namespace wenet_rt
