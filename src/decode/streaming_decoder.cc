#include "decode/streaming_decoder.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>

#include "core/error.h"

namespace wenet_rt {

void StreamingDecoderOptions::validate() const {
  search.validate();
  endpoint.validate();
  WENET_CHECK(endpoint.blank == search.blank,
              "streaming decoder: endpoint.blank must equal search.blank (the CTC blank id), got {} and {}",
              endpoint.blank, search.blank);
  WENET_CHECK(subsampling > 0, "streaming decoder: subsampling must be > 0 fbank frames per encoder frame, got {}",
              subsampling);
  WENET_CHECK(feature_shift_ms > 0, "streaming decoder: feature_shift_ms must be > 0, got {}", feature_shift_ms);
}

std::string StreamingDecoderOptions::describe() const {
  return fmt::format("prefix beam {} (candidates per frame {}), blank {}, encoder frame {} ms ({} x {} ms); {}",
                     search.beam, search.first_beam > 0 ? search.first_beam : search.beam, search.blank, frame_ms(),
                     subsampling, feature_shift_ms, endpoint.describe());
}

StreamingCtcDecoder::StreamingCtcDecoder(const StreamingDecoderOptions& opts)
    : opts_((opts.validate(), opts)), searcher_(opts.search), endpointer_(opts.endpoint, opts.frame_ms()) {}

void StreamingCtcDecoder::reset() { reset_continuous(0); }

void StreamingCtcDecoder::reset_continuous(int64_t stream_feature_frames) {
  WENET_CHECK(stream_feature_frames >= 0, "streaming decoder: expected stream_feature_frames >= 0, got {}",
              stream_feature_frames);
  searcher_.begin();
  endpointer_.reset();
  endpoint_rule_ = EndpointReason::kNone;
  k_ = 0;
  lattice_ids_.clear();
  lattice_logp_.clear();
  offset_ms_ = stream_feature_frames * opts_.feature_shift_ms;
}

EndpointReason StreamingCtcDecoder::advance_top_k(const int* top_k_ids, const float* top_k_logp,
                                                const float* blank_logp, int frames, int k) {
  WENET_CHECK(frames >= 0, "streaming decoder: expected frames >= 0, got {}", frames);
  if (frames > 0) {
    WENET_CHECK(k > 0, "streaming decoder: expected k > 0 candidates per frame, got {}", k);
    WENET_CHECK(k_ == 0 || k == k_,
                "streaming decoder: expected k = {} candidates per frame (this utterance's earlier chunks), got {}",
                k_, k);
    WENET_CHECK(top_k_ids != nullptr && top_k_logp != nullptr,
                "streaming decoder: top-k ids or log-probs are null for {} frames", frames);
    WENET_CHECK(blank_logp != nullptr || opts_.endpoint.silence_prob() >= 0.5f,
                "streaming decoder: blank log-probs are needed (null for {} frames) when the silence threshold ({}) "
                "is below 0.5: the blank may then be silent without being in the top-k",
                frames, opts_.endpoint.silence_prob());
  }
  // Throws on bad ids before changing anything.
  searcher_.advance_top_k(top_k_ids, top_k_logp, frames, k);
  if (frames == 0) return finish_chunk(blank_logp, 0);
  k_ = k;
  const size_t n = size_t(frames) * k;
  lattice_ids_.insert(lattice_ids_.end(), top_k_ids, top_k_ids + n);
  lattice_logp_.insert(lattice_logp_.end(), top_k_logp, top_k_logp + n);
  if (blank_logp == nullptr) {
    // The blank's log-prob where the top-k holds it; elsewhere it is below the k-th best, so never
    // above 0.5, so never silence (checked above): -inf decides the same.
    blank_scratch_.assign(size_t(frames), -std::numeric_limits<float>::infinity());
    for (int t = 0; t < frames; ++t) {
      for (int i = 0; i < k; ++i) {
        if (top_k_ids[size_t(t) * k + i] == opts_.search.blank) {
          blank_scratch_[size_t(t)] = top_k_logp[size_t(t) * k + i];
          break;
        }
      }
    }
    blank_logp = blank_scratch_.data();
  }
  return finish_chunk(blank_logp, frames);
}

EndpointReason StreamingCtcDecoder::advance(const float* log_probs, int frames, int vocab) {
  WENET_CHECK(frames >= 0, "streaming decoder: expected frames >= 0, got {}", frames);
  WENET_CHECK(vocab > opts_.search.blank, "streaming decoder: expected vocab > blank ({}), got {}", opts_.search.blank,
              vocab);
  WENET_CHECK(frames == 0 || log_probs != nullptr, "streaming decoder: log_probs is null for {} frames", frames);
  const int k = std::min(vocab, opts_.search.first_beam > 0 ? opts_.search.first_beam : opts_.search.beam);
  WENET_CHECK(frames == 0 || k_ == 0 || k == k_,
              "streaming decoder: expected k = {} candidates per frame (this utterance's earlier chunks), got {}", k_,
              k);
  // One search implementation: select the top-k rows into the lattice, then search them.
  const size_t n = size_t(frames) * k, base = lattice_ids_.size();
  lattice_ids_.resize(base + n);
  lattice_logp_.resize(base + n);
  blank_scratch_.resize(size_t(frames));
  for (int t = 0; t < frames; ++t) {
    const float* row = log_probs + size_t(t) * vocab;
    ctc_top_k(row, vocab, k, lattice_ids_.data() + base + size_t(t) * k, lattice_logp_.data() + base + size_t(t) * k);
    blank_scratch_[size_t(t)] = row[opts_.search.blank];
  }
  searcher_.advance_top_k(lattice_ids_.data() + base, lattice_logp_.data() + base, frames, k);
  if (frames > 0) k_ = k;
  return finish_chunk(blank_scratch_.data(), frames);
}

EndpointReason StreamingCtcDecoder::finish_chunk(const float* blank_logp, int frames) {
  endpoint_rule_ = endpointer_.advance(blank_logp, frames, decoded_something());
  return endpoint_rule_;
}

std::vector<int> StreamingCtcDecoder::peak_frames(const std::vector<int>& tokens) const {
  return ctc_peak_frames(lattice_ids_.data(), lattice_logp_.data(), frames(), std::max(k_, 1), opts_.search.blank,
                         tokens, opts_.peak_rule);
}

std::vector<WordPiece> StreamingCtcDecoder::word_pieces(const std::vector<int>& tokens,
                                                        const std::vector<std::string>& units) const {
  const int64_t end_ms = offset_ms_ + int64_t(frames()) * opts_.frame_ms();
  WENET_CHECK(end_ms <= std::numeric_limits<int>::max(),
              "streaming decoder: stream time {} ms does not fit the int milliseconds of a word piece", end_ms);
  return ::wenet_rt::word_pieces(tokens, peak_frames(tokens), units, opts_.frame_ms(), int(offset_ms_));
}

int64_t wenet_feature_frames_read(int64_t encoder_frames, int subsampling, int right_context) {
  WENET_CHECK(encoder_frames >= 0, "wenet_feature_frames_read: expected encoder_frames >= 0, got {}", encoder_frames);
  WENET_CHECK(subsampling > 0 && right_context >= 0,
              "wenet_feature_frames_read: expected subsampling > 0 and right_context >= 0, got {} and {}", subsampling,
              right_context);
  return encoder_frames == 0 ? 0 : (encoder_frames - 1) * subsampling + right_context + 1;
}

}  // namespace wenet_rt
