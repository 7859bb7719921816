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
// Many streams at once: the ready chunks of B streams go through the encoder in one call
// (encode_chunks), each stream's caches living in a slot of an EncoderCachePool (ring buffers in
// backend memory, allocated once): the chunk's K / V and conv context are written into the slots
// and attention reads the history there, so no cache is ever copied or moved. The single-stream
// API (EncoderCache, encode_chunk, encode_utterance) is the same with a pool of one slot.
//
// Works on every backend (only Backend ops).
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

// Host state of one stream (a slot of an EncoderCachePool).
struct StreamState {
  bool allocated = false;
  int offset = 0;  // encoder frames of the utterance encoded so far: the next chunk's first frame
  int frames = 0;  // frames of attention history the next chunk sees (<= C*L; all of them when L = -1)
};

// The caches of up to capacity() concurrent streams of one StreamingEncoder, in backend memory
// allocated once (StreamingEncoder::make_pool; persistent: make one and keep it). Per layer:
// - a K / V ring [capacity * R, 2d] (K in columns [0, d), V in [d, 2d)): encoder frame a of the
//   stream in slot s is row s * R + a % R, R = ring_rows() = C*L + C (history + a chunk), or
//   max_frames() when L = -1;
// - a causal conv module's left context: the ring of its last kernel-1 pointwise_conv1 outputs,
//   [capacity * (kernel-1), 2d] (before a stream's first frame, those of zero input frames).
// Host state per slot (StreamState). Not thread-safe: one caller at a time, as the backend.
class EncoderCachePool {
 public:
  EncoderCachePool() = default;
  EncoderCachePool(EncoderCachePool&&) = default;  // move-only: two host states must never share slots
  EncoderCachePool& operator=(EncoderCachePool&&) = default;
  EncoderCachePool(const EncoderCachePool&) = delete;
  EncoderCachePool& operator=(const EncoderCachePool&) = delete;
  int capacity() const { return int(states_.size()); }
  int ring_rows() const { return ring_rows_; }
  int max_frames() const { return max_frames_; }  // the most encoder frames an utterance may reach
  int free_slots() const;

  // A free slot (the lowest), fresh for a new utterance. Throws when every slot is taken.
  int allocate();
  // Gives a slot back (its stream is over). Throws unless allocated.
  void release(int slot);
  // The next utterance in an allocated slot: offset and history back to 0 (host only, no device work).
  void reset(int slot);
  bool allocated(int slot) const { return slot >= 0 && slot < capacity() && states_[size_t(slot)].allocated; }
  const StreamState& state(int slot) const;  // throws for a slot outside [0, capacity())

 private:
  friend class StreamingEncoder;
  struct Layer {
    Tensor kv;    // [capacity * ring_rows, 2d]
    Tensor conv;  // [capacity * (kernel - 1), 2d], causal conv module only
  };
  std::vector<Layer> layers_;
  std::vector<StreamState> states_;
  int ring_rows_ = 0, max_frames_ = 0;
  const void* owner_ = nullptr;  // the StreamingEncoder it was made for
};

// One stream's caches for the single-stream API: a pool of one slot (slot 0). offset and frames
// are copies of the slot's StreamState, updated by each call (read-only to callers).
struct EncoderCache {
  EncoderCachePool pool;
  int offset = 0;  // encoder frames produced so far: the next chunk's first frame
  int frames = 0;  // frames of attention history held (<= C*L, or all when L = -1)
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

  // Caches for up to max_streams concurrent streams (persistent backend memory). max_frames: the
  // most encoder frames an utterance may reach (0: the model's positions, WeNet's max_len); with
  // num_left_chunks = -1 it is the rings' length, so with many streams set it to what an
  // utterance can reach (e.g. the endpointing limit: 20 s is 500 frames at 40 ms).
  EncoderCachePool make_pool(int max_streams, int max_frames = 0);

  // Encodes the next chunk of B streams in one pass. Item b is the first window_lens[b] frames of
  // windows[b] (float32 [B, W, input_dim] raw fbank in backend memory; CMVN is applied here): the
  // next window of the stream in slot slots[b] (allocated slots of `pool`, all distinct).
  // min_window_frames() <= window_lens[b] <= W <= window_frames(): pad to the longest window of
  // the batch, or always to window_frames() for steady shapes (CUDA graphs are cached per B and W).
  // Returns [B, T, d] (T = the subsampled length of W) with lens[b] = T_b, item b's frames (C for
  // a full window); rows t >= T_b are padding. In the backend's arena (valid until reset_arena()).
  // Advances each item's stream; everything is checked first, so an error changes no stream.
  // Host arrays of B values; one upload of the per-item values per call.
  EncoderOutput encode_chunks(const Tensor& windows, const int* window_lens, const int* slots,
                              EncoderCachePool& pool);
  // The same for host windows float32 [batch, frames, input_dim].
  EncoderOutput encode_chunks(const float* windows, int batch, int frames, const int* window_lens, const int* slots,
                              EncoderCachePool& pool);
  // The CTC head on the result: model().ctc_top_k(encode_chunks(...), k) (rows past lens[b] are padding).

  // Single stream: a fresh cache (a pool of one slot; persistent backend memory: make one per
  // stream and reuse it), reset for the next utterance, and one chunk: `window` float32 [1, W,
  // input_dim] (or host [W, input_dim]), min_window_frames() <= W <= window_frames(); returns
  // [1, T, d] as encode_chunks.
  EncoderCache make_cache();
  void reset(EncoderCache& cache) const;
  EncoderOutput encode_chunk(const Tensor& window, EncoderCache& cache);
  EncoderOutput encode_chunk(const float* window, int frames, EncoderCache& cache);

  // A whole utterance chunk by chunk, as WeNet's forward_chunk_by_chunk: windows at 0, s*C, 2s*C, ...
  // while at least min_window_frames() remain, the last one cut at the end of the input. feats: host
  // float32 [frames, input_dim]. Calls the backend's reset_arena() before each chunk. An input
  // shorter than min_window_frames() gives 0 frames.
  StreamedEncoding encode_utterance(const float* feats, int frames);

 private:
  AsrModel& model_;
  StreamingOptions opts_;
  int rate_ = 4, right_context_ = 6;
  int history_ = 0;       // C*L frames kept (-1: all)
  int conv_context_ = 0;  // kernel - 1 for a causal conv module, else 0
  std::vector<Tensor> conv_fill_;  // per layer [2d]: pointwise_conv1 of a zero frame (before a stream's first)
  EncoderCache utterance_cache_;   // encode_utterance()'s, made on first use
};

}  // namespace wenet_rt
