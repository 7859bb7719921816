// Token timestamps from the CTC lattice the prefix search saw, and word pieces with start / end
// times as WeNet's C++ runtime reports them (runtime/core/decoder/asr_decoder.cc, UpdateResult).
//
// The host keeps only the per-frame top-k candidates of the CTC output, so a token's time is found
// by a Viterbi forced alignment of the final hypothesis over that pruned lattice: a (frame, token)
// pair outside the frame's top-k has log-prob -inf. WeNet's prefix search tracks, per prefix, the
// frame of each token along the prefix's best (Viterbi) path; aligning the final hypothesis gives
// the same path whenever the search kept that path's prefixes (the usual case).
#pragma once

#include <string>
#include <vector>

#include "wenet_rt/recognizer.h"

namespace wenet_rt {

// Which frame of a token's aligned run (its consecutive frames on the path) is its time.
enum class PeakRule {
  // The last frame of the run. This is what WeNet's runtime reports: its prefix search
  // (runtime/core/decoder/ctc_prefix_beam_search.cc, "Case 1: *a + a => *a") means to move the time
  // only when the repeated frame is more probable (`cur_token_prob`), but compares against a score
  // freshly reset every frame, so every repeat that improves the path moves the time to the current
  // frame. (Where its unordered_map visits the parent prefix first, the earlier tokens' times can
  // come from the parent's path instead; that hash-order-dependent case is not reproduced.)
  kLastFrame,
  // The frame of the run with the highest log-prob, first on ties (what that code intends).
  kMaxLogProb,
};

// Frame (0-based encoder frame) of each token of `tokens` (a hypothesis: ids, no blanks).
// top_ids / top_logp: [frames][k] candidates per frame, best first (only their set matters here).
// Frames after the hypothesis' last token are trailing blanks, as in any CTC path.
//
// When no path through the top-k exists (a hypothesis the search did not produce), the alignment is
// redone with the missing pairs scored kAbsentLogProb each, so it follows what evidence there is;
// when even that fails (fewer frames than the hypothesis needs: one per token plus one blank between
// equal neighbours) the tokens are spread evenly: token j at frame (2j + 1) * frames / (2 L), or 0
// when there are no frames. Never throws for those; throws wenet_rt::Error on malformed arguments.
// Equal-score paths: each state is entered as early as possible, and a path ending on the last
// token beats one ending on a blank (WeNet's PrefixScore::times() prefers the non-blank-ending
// path on ties). Time and memory: O(frames x (2L + 1)), one byte of back-pointer per cell.
std::vector<int> ctc_peak_frames(const int* top_ids, const float* top_logp, int frames, int k, int blank,
                                 const std::vector<int>& tokens, PeakRule rule = PeakRule::kLastFrame);

// Score of a (frame, token) pair missing from the top-k in the fallback alignment.
inline constexpr float kAbsentLogProb = -1e4f;

// WeNet's runtime constant `time_stamp_gap_` (asr_decoder.h): ms of context a piece is given before
// (and its neighbour after) its peak when the neighbours are far apart.
inline constexpr int kTimeStampGapMs = 100;

// WordPiece {word, start_ms, end_ms}: the public result type (include/wenet_rt/recognizer.h).

// One piece per token, as WeNet's UpdateResult builds them. With peak frames t, frame_ms F and gap
// G = kTimeStampGapMs, token j gets
//   start = max(t[j] * F - G, 0), or (t[j-1] + t[j]) / 2 * F if (t[j] - t[j-1]) * F < G (j > 0);
//   end   = t[j] * F,             or (t[j] + t[j+1]) / 2 * F if (t[j+1] - t[j]) * F < G (j < L-1);
// the midpoints in whole frames (integer division), then offset_ms added to both. The word is the
// unit exactly as units.txt spells it, "▁" included: WeNet fills word pieces from its unit table
// and post-processes only the sentence. frame_ms is per encoder frame: fbank shift (10 ms) x the
// subsampling rate. offset_ms places a segment within its file.
std::vector<WordPiece> word_pieces(const std::vector<int>& tokens, const std::vector<int>& peak_frames,
                                   const std::vector<std::string>& units, int frame_ms, int offset_ms = 0);

// Pieces merged into words (what a user wants to see for BPE models): a piece starting with "▁"
// (U+2581) starts a new word; a piece that is only "▁" (char models' space unit) ends the current
// word and contributes no time; a CJK piece (first code point a CJK ideograph, kana or Hangul) is a
// word of its own, since those scripts write no spaces; any other piece continues the current word
// (or starts one). Every "▁" is removed from the text. A word spans from its first piece's start to
// its last piece's end.
std::vector<WordPiece> words(const std::vector<WordPiece>& pieces);

}  // namespace wenet_rt
