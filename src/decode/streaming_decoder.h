// The search side of one streaming (U2 / U2++) recognition stream, as WeNet's C++ runtime runs it
// (runtime/core/decoder/asr_decoder.cc): per chunk of encoder frames, CTC prefix beam search
// continued from the previous chunk (partial result = the current best) and the CTC endpoint
// detector; at an endpoint or the end of input, the utterance's N-best (for attention rescoring)
// and timestamps; then, with continuous decoding, a fresh utterance on the same stream.
//
// Units. Frames are encoder frames (CTC output rows) unless named fbank / feature frames. One
// encoder frame is frame_ms() = subsampling x feature_shift_ms ms (WeNet's frame_shift_in_ms(),
// 40 ms for conv2d x4 at 10 ms). Frame indices (peak_frames, frames()) count from the start of the
// current utterance; times in ms (word_pieces) count from the start of the stream: WeNet adds the
// utterance's offset, global_frame_offset_ x feature shift, where global_frame_offset_ is the number
// of fbank frames the stream had consumed when continuous decoding restarted the search.
//
// What the host gets per chunk is small: top-k ids and log-probs [frames][k] and the blank log-prob
// [frames] of each frame (DESIGN.md section 5). The decoder keeps the utterance's top-k lattice
// (frames x k ids and log-probs, host memory; 20 s at k = 10 is 500 x 10 entries), from which the
// timestamps of any hypothesis are aligned at the end (decode/timestamps.h).
//
// One decoder per stream; not thread-safe. Buffers keep their capacity across utterances: in steady
// state a stream allocates only when an utterance is longer than any before it (and for results).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "decode/ctc_endpoint.h"
#include "decode/ctc_search.h"
#include "decode/timestamps.h"

namespace wenet_rt {

struct StreamingDecoderOptions {
  // Prefix beam search. beam = prefixes kept per frame = N-best size; candidates per frame =
  // first_beam (0: beam). WeNet's runtime: first_beam_size 10, second_beam_size 10.
  CtcPrefixBeamOptions search;
  // Endpoint rules (WeNet's defaults). endpoint.blank must equal search.blank.
  CtcEndpointOptions endpoint;
  int subsampling = 4;         // fbank frames per encoder frame (the model's subsampling rate)
  int feature_shift_ms = 10;   // fbank frame shift
  PeakRule peak_rule = PeakRule::kLastFrame;  // which frame of a token's run is its time (WeNet's)

  int frame_ms() const { return subsampling * feature_shift_ms; }  // ms per encoder frame
  void validate() const;  // throws wenet_rt::Error naming the bad field
  std::string describe() const;
};

class StreamingCtcDecoder {
 public:
  explicit StreamingCtcDecoder(const StreamingDecoderOptions& opts);

  // A new stream: empty utterance at stream time 0 (WeNet's Reset()).
  void reset();
  // The next utterance of the same stream (continuous decoding, WeNet's ResetContinuousDecoding()):
  // search, lattice and endpoint counts start over; the new utterance's frame 0 is at stream time
  // stream_feature_frames x feature_shift_ms, where stream_feature_frames is the number of fbank
  // frames the stream has consumed in all (WeNet's num_frames_; see wenet_feature_frames_read for
  // what its chunking consumes).
  void reset_continuous(int64_t stream_feature_frames);

  // One chunk of `frames` >= 0 encoder frames: top_k_ids / top_k_logp [frames][k] (best first in
  // each frame, as search_top_k takes them) and blank_logp [frames]. k is fixed per utterance by its
  // first non-empty chunk; a later chunk with another k is an error. blank_logp may be null when
  // endpoint.silence_prob() >= 0.5: a frame whose blank probability exceeds 0.5 has blank as its best
  // token, so the top-k row holds it and the silence decision is exact. Searches the frames, then
  // runs the endpoint detector once for the chunk (as WeNet calls IsEndpoint per chunk) and returns
  // its answer (kNone: keep going). On the last chunk of the input the result is final whatever
  // this returns (WeNet does not ask). Throws wenet_rt::Error on bad arguments, changing nothing.
  EndpointReason advance_top_k(const int* top_k_ids, const float* top_k_logp, const float* blank_logp, int frames,
                             int k);
  // The same from full log-probs [frames][vocab] (top-k selected here, k = min(vocab, first_beam or
  // beam); the blank log-prob read from the row).
  EndpointReason advance(const float* log_probs, int frames, int vocab);

  // The N-best of the utterance so far, best first, with CTC prefix scores: the partial result
  // mid-utterance, the final N-best (attention rescoring input: build_decoder_inputs etc.) at its
  // end. Equals a one-shot prefix beam search over the utterance's frames so far.
  std::vector<Hypothesis> nbest() const { return searcher_.nbest(); }
  std::vector<int> best_tokens() const { return searcher_.best_tokens(); }
  // WeNet's DecodedSomething(): the best hypothesis has a token (WeNet checks its text; a unit that
  // post-processes to nothing would differ). WeNet sends a partial result only when this holds.
  bool decoded_something() const { return !searcher_.best_is_empty(); }
  // The endpoint detector's answer for the latest chunk (kNone before any).
  EndpointReason endpoint() const { return endpoint_rule_; }

  // Encoder frames of the current utterance so far.
  int frames() const { return searcher_.frames(); }
  // Stream time (ms) of the current utterance's frame 0.
  int64_t utterance_offset_ms() const { return offset_ms_; }
  // Candidates per frame of the utterance's lattice (0 before its first frame).
  int lattice_k() const { return k_; }
  // The lattice [frames()][lattice_k()]: every top-k row seen since the utterance began.
  const std::vector<int>& lattice_ids() const { return lattice_ids_; }
  const std::vector<float>& lattice_logp() const { return lattice_logp_; }

  // Frame of each token of `tokens` (a hypothesis of this utterance), in encoder frames from the
  // utterance start: ctc_peak_frames over the utterance's lattice.
  std::vector<int> peak_frames(const std::vector<int>& tokens) const;
  // Word pieces (one per token, WeNet's rule, decode/timestamps.h word_pieces) with start / end in
  // ms from the start of the stream. units: the model's unit table (id -> text).
  std::vector<WordPiece> word_pieces(const std::vector<int>& tokens, const std::vector<std::string>& units) const;

  const StreamingDecoderOptions& options() const { return opts_; }
  const CtcEndpoint& endpointer() const { return endpointer_; }

 private:
  EndpointReason finish_chunk(const float* blank_logp, int frames);

  StreamingDecoderOptions opts_;
  CtcPrefixBeamSearcher searcher_;
  CtcEndpoint endpointer_;
  EndpointReason endpoint_rule_ = EndpointReason::kNone;
  int k_ = 0;
  std::vector<int> lattice_ids_;
  std::vector<float> lattice_logp_;
  std::vector<float> blank_scratch_;
  int64_t offset_ms_ = 0;
};

// fbank frames WeNet's runtime reads for an utterance that produced `encoder_frames` encoder frames
// in full chunks: its first chunk reads (C-1)*s + right_context + 1 frames, every later one s*C, so
// the utterance consumed (encoder_frames - 1) * s + right_context + 1 (0 for none). s = subsampling
// rate, right_context = the subsampling's (conv2d x4: 6). Continuous decoding restarts only at an
// endpoint, which WeNet never reports on a partial last chunk, so this is exact there: after
// utterances of T1, T2, ... encoder frames, the next one starts at the sum of their counts.
int64_t wenet_feature_frames_read(int64_t encoder_frames, int subsampling, int right_context);

}  // namespace wenet_rt
