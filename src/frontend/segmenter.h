// Long recordings split at pauses: a file longer than max_seconds becomes consecutive segments of
// at most max_seconds, each recognized as its own utterance, the results stitched in order. Cuts are
// placed by a small energy VAD so that they fall into pauses rather than into words.
//
// How a cut is chosen, for the audio left after the previous cut (start b, R samples remaining):
// - R <= max: the rest is the last segment.
// - Otherwise the cut is searched in [b + search_from * max, b + min(max, R - min_seconds)]: far
//   enough from b to make progress, never further than max, and never within min_seconds of the
//   end of the file, so that no tiny trailing segment is left over. (Merging a short tail into the
//   previous segment afterwards would break the max_seconds bound; keeping the tail long enough
//   while cutting gives both.)
// - The signal's power is measured in frame_ms frames and smoothed over smooth_ms (a mean of the
//   power, so that any loud frame nearby keeps a point from looking quiet). The cut goes to the
//   center of the quietest frame of the window, the latest one on ties (longer segments, fewer
//   cuts), provided it is at least pause_db quieter than the window's median; otherwise (constant
//   tone, steady noise, digital silence) there is no pause to prefer and the cut is hard, at the
//   window's end.
// Segments cover [0, n) contiguously in order: no sample is dropped or repeated, so times
// measured within a segment plus its begin / sample_rate are times in the file. Deterministic.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace wenet_rt {

struct SegmentOptions {
  double max_seconds = 30;   // longest segment
  double min_seconds = 1;    // shortest last segment of a split file (see above)
  double search_from = 0.5;  // cuts are searched from this fraction of max_seconds on, in (0, 1]
  double frame_ms = 10;      // energy frame
  double smooth_ms = 200;    // window of the power average around each frame (0: none)
  double pause_db = 3;       // how much quieter than the window's median a cut point must be
  // split_into_utterances: a pause is a run of at least pause_seconds of frames more than
  // silence_db below the recording's speech level (its 95th percentile frame power).
  double pause_seconds = 0.5;
  double silence_db = 35;
  double keep_pause_seconds = 0.3;  // of a pause, kept at each side of a cut; the rest is left out

  // Throws wenet_rt::Error naming the bad option ("expected X, got Y"). Requires
  // min_seconds <= (1 - search_from) * max_seconds, so that the cut window is never empty.
  void validate() const;
  std::string describe() const;
};

struct Segment {
  int64_t begin = 0, end = 0;  // sample indices [begin, end)
};

// Segments of `samples` (n mono samples at sample_rate): one [0, n) when n <= max_seconds of audio,
// none when n == 0. Validates the options (and that frame_ms and max_seconds are at least one
// sample at this rate).
std::vector<Segment> split_at_pauses(const float* samples, int64_t n, int sample_rate, const SegmentOptions& o = {});

// A long recording cut into utterances, as a VAD would: at every pause (see pause_seconds) once
// the current piece holds at least min_seconds, then any piece still longer than max_seconds split
// by split_at_pauses. Models are trained on single utterances of a few seconds with little silence
// around them: one 30 s window of several sentences, or a sentence with half a second of silence
// before it, decodes worse. So a cut keeps keep_pause_seconds of the pause on each side and leaves
// the middle out: segments are in order and never overlap, their gaps are silence, and the first
// begins at 0, the last ends at n.
std::vector<Segment> split_into_utterances(const float* samples, int64_t n, int sample_rate,
                                           const SegmentOptions& o = {});

}  // namespace wenet_rt
