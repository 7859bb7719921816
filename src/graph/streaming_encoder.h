// The chunk-by-chunk (streaming) encoder of U2 / U2++ models, as WeNet's
// BaseEncoder.forward_chunk / forward_chunk_by_chunk define it (wenet/models/transformer/encoder.py):
//
// - A chunk is C encoder frames. Its input is a window of (C-1)*s + right_context + 1 fbank frames
//   (s = subsampling rate; conv2d: s 4, right_context 6), windows advancing by s*C and so
//   overlapping: the subsampling keeps no cache. The last window of an utterance may be shorter
//   (at least right_context + 1 frames) and gives fewer frames.
// - Each layer attends over [cache ; chunk]: the K / V of the last C*L frames before the chunk
//   (L = num_left_chunks; -1 keeps every earlier frame, 0 none) and the chunk's own, with no mask.
//   rel_pos: the key at encoder frame a uses row a of the position table (WeNet:
//   position_encoding(offset - cache_len, cache_len + C)); abs_pos adds rows offset.. to the input.
// - A causal conv module (U2++) sees the last kernel-1 frames of its input before the chunk (zeros
//   before the first); a non-causal one convolves the chunk alone with zero padding.
//
// Works on every backend (only Backend ops). One stream per call (batch 1) for now.
#pragma once

#include <string>
#include <vector>

#include "graph/asr_model.h"

namespace wenet_rt {

struct StreamingOptions {
  int chunk_size = 16;       // C, encoder frames per chunk (WeNet: decoding_chunk_size), > 0
  int num_left_chunks = -1;  // L, chunks of attention history (num_decoding_left_chunks): -1 all, 0 none

  void validate() const;  // throws wenet_rt::Error naming the bad field
  std::string describe() const;
};

// Throws a wenet_rt::Error unless the model was trained for streaming (encoder_conf.use_dynamic_chunk
// or encoder_conf.static_chunk_size > 0): a model trained on full context only gives poor results
// chunk by chunk, and WeNet refuses it too.
void check_streaming_model(const ModelConfig& config);

// One stream's state between chunks: per layer the attention K / V history and the causal conv
// module's left context, in backend memory (allocated once by StreamingEncoder::make_cache(); reuse
// it for the stream's next utterance with StreamingEncoder::reset()). Read-only to callers.
struct EncoderCache {
  struct Layer {
    Tensor kv;    // [rows, 2d]: K in columns [0, d), V in [d, 2d); the history is rows [start, start + frames)
    Tensor conv;  // causal conv module: [kernel - 1 + C, 2d] pointwise_conv1 outputs, the first
                  // kernel - 1 rows the left context (empty for a non-causal module)
  };
  std::vector<Layer> layers;
  int rows = 0;         // rows of each kv buffer
  int start = 0;        // first history row in kv
  int frames = 0;       // frames of attention history held (<= C*L, or all when L = -1)
  int offset = 0;       // encoder frames produced so far: the next chunk's first frame
  bool conv_ready = false;  // the conv left context holds the zero-input frames (after reset: no)
  const void* owner = nullptr;  // the StreamingEncoder it was made for
};

// An utterance encoded chunk by chunk (host memory, float32).
struct StreamedEncoding {
  int frames = 0;                     // T' encoder frames
  std::vector<float> encoder_out;     // [T', d]
  std::vector<float> ctc_log_probs;   // [T', vocab]
};

class StreamingEncoder {
 public:
  // Throws for a model not trained for streaming (check_streaming_model) or bad options.
  StreamingEncoder(AsrModel& model, const StreamingOptions& opts);
  StreamingEncoder(const StreamingEncoder&) = delete;  // caches point back at their encoder
  StreamingEncoder& operator=(const StreamingEncoder&) = delete;

  const StreamingOptions& options() const { return opts_; }
  AsrModel& model() const { return model_; }
  int subsampling_rate() const { return rate_; }
  int right_context() const { return right_context_; }
  // fbank frames of a full chunk's window: (C-1)*s + right_context + 1.
  int window_frames() const { return (opts_.chunk_size - 1) * rate_ + right_context_ + 1; }
  // The shortest window (one encoder frame): right_context + 1.
  int min_window_frames() const { return right_context_ + 1; }
  // fbank frames between the starts of consecutive windows: s*C.
  int stride_frames() const { return rate_ * opts_.chunk_size; }

  // A fresh cache for one stream (persistent backend memory: make one per stream and reuse it).
  EncoderCache make_cache();
  // Makes `cache` a fresh stream's (the next utterance); keeps its memory.
  void reset(EncoderCache& cache) const;

  // Encodes one chunk: `window` float32 [1, W, input_dim] raw fbank in backend memory (CMVN is
  // applied here), min_window_frames() <= W <= window_frames(). Returns the chunk's encoder output
  // [1, T, d] (T = subsampled frames of W, C for a full window) in the backend's arena (valid until
  // reset_arena()); updates `cache`.
  EncoderOutput encode_chunk(const Tensor& window, EncoderCache& cache);
  // The same for a host window [W, input_dim].
  EncoderOutput encode_chunk(const float* window, int frames, EncoderCache& cache);

  // A whole utterance chunk by chunk, as WeNet's forward_chunk_by_chunk: windows at 0, s*C, 2s*C, ...
  // while at least min_window_frames() remain, the last one cut at the end of the input. feats: host
  // float32 [frames, input_dim]. Calls the backend's reset_arena() before each chunk. An input
  // shorter than min_window_frames() gives 0 frames.
  StreamedEncoding encode_utterance(const float* feats, int frames);

 private:
  void move_history_to_front(EncoderCache& cache);

  AsrModel& model_;
  StreamingOptions opts_;
  int rate_ = 4, right_context_ = 6;
  int history_ = 0;  // C*L frames kept (-1: all)
  int conv_context_ = 0;  // kernel - 1 for a causal conv module, else 0
  Tensor conv_zeros_;     // [kernel - 1, d] zeros: pointwise_conv1 of them is the first chunk's left context
  EncoderCache utterance_cache_;  // encode_utterance()'s, made on first use
};

}  // namespace wenet_rt
