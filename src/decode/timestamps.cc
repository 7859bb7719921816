#include "decode/timestamps.h"

#include <algorithm>
#include <cstdint>
#include <limits>

#include "core/error.h"

namespace wenet_rt {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();
const std::string kWordBoundary = "\xe2\x96\x81";  // "▁", sentencepiece's word start

// One frame's emissions for the states of the CTC topology, read from that frame's top-k. The
// hypothesis' distinct ids are kept sorted so that scattering k candidates costs k log L, and a
// frame never costs O(vocab).
class FrameEmissions {
 public:
  FrameEmissions(const std::vector<int>& tokens, int blank) : blank_(blank), ids_(tokens) {
    std::sort(ids_.begin(), ids_.end());
    ids_.erase(std::unique(ids_.begin(), ids_.end()), ids_.end());
    slot_of_token_.reserve(tokens.size());
    for (int t : tokens) slot_of_token_.push_back(int(std::lower_bound(ids_.begin(), ids_.end(), t) - ids_.begin()));
    row_.resize(ids_.size() + 1);  // last slot: blank
  }

  // Missing pairs (and -inf ones) get `absent`; a candidate listed twice keeps its larger log-prob.
  void load(const int* ids, const float* logp, int k, double absent) {
    std::fill(row_.begin(), row_.end(), kNegInf);
    for (int i = 0; i < k; ++i) {
      int slot = -1;
      if (ids[i] == blank_) {
        slot = int(ids_.size());
      } else {
        auto it = std::lower_bound(ids_.begin(), ids_.end(), ids[i]);
        if (it != ids_.end() && *it == ids[i]) slot = int(it - ids_.begin());
      }
      if (slot >= 0) row_[size_t(slot)] = std::max(row_[size_t(slot)], double(logp[i]));
    }
    if (absent != kNegInf) std::replace(row_.begin(), row_.end(), kNegInf, absent);
  }

  // State s of the topology: even = blank, odd = token s / 2.
  double state(int s) const { return (s & 1) ? row_[slot_of_token_[size_t(s / 2)]] : row_.back(); }

 private:
  int blank_;
  std::vector<int> ids_;
  std::vector<int> slot_of_token_;
  std::vector<double> row_;
};

// Viterbi over the 2L + 1 states (blank, t0, blank, t1, ..., blank). Returns the state of every frame
// on the best path, or nothing when every path scores -inf.
std::vector<int> best_path(const int* top_ids, const float* top_logp, int frames, int k, int blank,
                           const std::vector<int>& tokens, double absent) {
  const int states = 2 * int(tokens.size()) + 1;
  FrameEmissions emit(tokens, blank);
  std::vector<double> prev(static_cast<size_t>(states), kNegInf), cur(static_cast<size_t>(states));
  // How far back each cell's best predecessor is: 0 (stay), 1 or 2 (skip a blank).
  std::vector<uint8_t> back(size_t(frames) * states);
  for (int t = 0; t < frames; ++t) {
    emit.load(top_ids + size_t(t) * k, top_logp + size_t(t) * k, k, absent);
    uint8_t* from = back.data() + size_t(t) * states;
    for (int s = 0; s < states; ++s) {
      double best = kNegInf;
      uint8_t step = 0;
      if (t == 0) {
        best = s <= 1 ? 0.0 : kNegInf;  // a path starts on the leading blank or the first token
      } else {
        // Strict comparisons: on ties staying wins, so each state is entered as early as possible.
        best = prev[size_t(s)];
        if (s >= 1 && prev[size_t(s - 1)] > best) best = prev[size_t(s - 1)], step = 1;
        // Skipping the blank between two tokens is allowed unless they are equal (then the blank is
        // what separates them from one repeated token).
        if ((s & 1) && s >= 3 && tokens[size_t(s / 2)] != tokens[size_t(s / 2 - 1)] && prev[size_t(s - 2)] > best)
          best = prev[size_t(s - 2)], step = 2;
      }
      cur[size_t(s)] = best + emit.state(s);
      from[s] = step;
    }
    std::swap(prev, cur);
  }
  if (frames == 0) return {};
  // End on the last token or the trailing blank; the token wins ties (see the header).
  int s = prev[size_t(states - 1)] > prev[size_t(states - 2)] ? states - 1 : states - 2;
  if (!(prev[size_t(s)] > kNegInf)) return {};  // also catches NaN inputs
  std::vector<int> path(static_cast<size_t>(frames));
  for (int t = frames - 1; t >= 0; --t) {
    path[size_t(t)] = s;
    s -= back[size_t(t) * states + s];
  }
  return path;
}

float logp_of(const int* ids, const float* logp, int k, int token) {
  float best = -std::numeric_limits<float>::infinity();
  for (int i = 0; i < k; ++i)
    if (ids[i] == token) best = std::max(best, logp[i]);
  return best;
}

// First code point of a UTF-8 string (0 if empty or malformed).
char32_t first_code_point(const std::string& s) {
  if (s.empty()) return 0;
  const auto b = static_cast<unsigned char>(s[0]);
  int len = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
  if (len == 0 || s.size() < size_t(len)) return 0;
  if (len == 1) return b;
  char32_t cp = b & (0x7F >> len);
  for (int i = 1; i < len; ++i) cp = (cp << 6) | (static_cast<unsigned char>(s[size_t(i)]) & 0x3F);
  return cp;
}

// Scripts written without spaces between words: CJK radicals / symbols / kana / bopomofo / ideographs
// (U+2E80-9FFF), Hangul syllables, compatibility ideographs, full-width forms, supplementary ideographs.
bool is_cjk(char32_t c) {
  return (c >= 0x2E80 && c <= 0x9FFF) || (c >= 0xAC00 && c <= 0xD7AF) || (c >= 0xF900 && c <= 0xFAFF) ||
         (c >= 0xFF00 && c <= 0xFFEF) || (c >= 0x20000 && c <= 0x3FFFF);
}

}  // namespace

std::vector<int> ctc_peak_frames(const int* top_ids, const float* top_logp, int frames, int k, int blank,
                                 const std::vector<int>& tokens, PeakRule rule) {
  WENET_CHECK(frames >= 0, "ctc_peak_frames: expected frames >= 0, got {}", frames);
  WENET_CHECK(frames == 0 || k >= 1, "ctc_peak_frames: expected k >= 1, got {}", k);
  WENET_CHECK(frames == 0 || (top_ids != nullptr && top_logp != nullptr),
              "ctc_peak_frames: top-k ids / log-probs are null for {} frames", frames);
  WENET_CHECK(blank >= 0, "ctc_peak_frames: expected blank >= 0, got {}", blank);
  for (size_t j = 0; j < tokens.size(); ++j)
    WENET_CHECK(tokens[j] >= 0 && tokens[j] != blank,
                "ctc_peak_frames: expected token ids >= 0 and != blank ({}), got {} at position {}", blank,
                tokens[j], j);
  const int n = int(tokens.size());
  if (n == 0) return {};

  std::vector<int> path = best_path(top_ids, top_logp, frames, k, blank, tokens, kNegInf);
  if (path.empty()) path = best_path(top_ids, top_logp, frames, k, blank, tokens, kAbsentLogProb);
  std::vector<int> peaks(size_t(n), 0);
  if (path.empty()) {
    for (int j = 0; j < n && frames > 0; ++j)
      peaks[size_t(j)] = int(std::min<int64_t>(frames - 1, (2 * int64_t(j) + 1) * frames / (2 * int64_t(n))));
    return peaks;
  }

  // Every token owns one contiguous run of frames (odd state 2j + 1) on a valid path.
  std::vector<float> peak_logp(size_t(n), -std::numeric_limits<float>::infinity());
  std::vector<bool> seen(size_t(n), false);
  for (int t = 0; t < frames; ++t) {
    const int s = path[size_t(t)];
    if (!(s & 1)) continue;
    const size_t j = size_t(s / 2);
    if (rule == PeakRule::kLastFrame) {
      peaks[j] = t;
      continue;
    }
    const float lp = logp_of(top_ids + size_t(t) * k, top_logp + size_t(t) * k, k, tokens[j]);
    if (!seen[j] || lp > peak_logp[j]) peaks[j] = t, peak_logp[j] = lp;  // first frame wins ties
    seen[j] = true;
  }
  return peaks;
}

std::vector<WordPiece> word_pieces(const std::vector<int>& tokens, const std::vector<int>& peak_frames,
                                   const std::vector<std::string>& units, int frame_ms, int offset_ms) {
  WENET_CHECK(tokens.size() == peak_frames.size(), "word_pieces: expected one peak frame per token ({}), got {}",
              tokens.size(), peak_frames.size());
  WENET_CHECK(frame_ms > 0, "word_pieces: expected frame_ms > 0, got {}", frame_ms);
  const std::vector<int>& t = peak_frames;
  const int f = frame_ms, gap = kTimeStampGapMs;
  std::vector<WordPiece> out;
  out.reserve(tokens.size());
  for (size_t j = 0; j < tokens.size(); ++j) {
    WENET_CHECK(tokens[j] >= 0 && size_t(tokens[j]) < units.size(),
                "word_pieces: token id {} out of range, expected [0, {})", tokens[j], units.size());
    WENET_CHECK(t[j] >= 0, "word_pieces: expected peak frames >= 0, got {} at position {}", t[j], j);
    // WeNet's rule (asr_decoder.cc, UpdateResult): a piece reaches back `gap` ms before its peak and
    // ends at its peak, except that neighbours closer than `gap` split the time between their peaks
    // at the midpoint frame (integer division, as WeNet computes it).
    int start = std::max(t[j] * f - gap, 0);
    if (j > 0 && (t[j] - t[j - 1]) * f < gap) start = (t[j - 1] + t[j]) / 2 * f;
    int end = t[j] * f;
    if (j + 1 < tokens.size() && (t[j + 1] - t[j]) * f < gap) end = (t[j] + t[j + 1]) / 2 * f;
    out.push_back({units[size_t(tokens[j])], offset_ms + start, offset_ms + end});
  }
  return out;
}

std::vector<WordPiece> words(const std::vector<WordPiece>& pieces) {
  std::vector<WordPiece> out;
  bool open = false;  // whether the next plain piece continues out.back()
  for (const WordPiece& p : pieces) {
    const bool starts_word = p.word.compare(0, kWordBoundary.size(), kWordBoundary) == 0;
    std::string text;
    for (size_t i = 0; i < p.word.size();) {
      if (p.word.compare(i, kWordBoundary.size(), kWordBoundary) == 0) {
        i += kWordBoundary.size();
      } else {
        text += p.word[i++];
      }
    }
    if (text.empty()) {  // a space unit: ends the word, carries no time of its own
      open = false;
      continue;
    }
    const bool cjk = is_cjk(first_code_point(text));
    if (starts_word || cjk || !open) {
      out.push_back({std::move(text), p.start_ms, p.end_ms});
    } else {
      out.back().word += text;
      out.back().end_ms = p.end_ms;
    }
    open = !cjk;
  }
  return out;
}

}  // namespace wenet_rt
