#include "graph/streaming_encoder.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "graph/encoder_weights.h"

namespace wenet_rt {
namespace {

// WeNet's BaseSubsampling.right_context of each input layer (frames a window needs after its last
// output frame's first input frame).
int right_context_of(Subsampling s) {
  switch (s) {
    case Subsampling::kConv2d4: return 6;
    case Subsampling::kConv2d6: return 10;
    case Subsampling::kConv2d8: return 14;
  }
  return 0;
}

// Rows [row, row + n) of a contiguous 2-D buffer [rows, cols], as [n, cols].
Tensor rows_of(const Tensor& buf, int64_t row, int64_t n) {
  const int64_t cols = buf.cols();
  return make_view(static_cast<std::byte*>(buf.data) + size_t(row * cols) * dtype_size(buf.dtype), {n, cols},
                   buf.dtype);
}

}  // namespace

void StreamingOptions::validate() const {
  WENET_CHECK(chunk_size > 0, "streaming: chunk_size must be > 0 encoder frames, got {}", chunk_size);
  WENET_CHECK(num_left_chunks >= -1, "streaming: num_left_chunks must be -1 (all history) or >= 0, got {}",
              num_left_chunks);
}

std::string StreamingOptions::describe() const {
  return fmt::format("chunk_size {}, num_left_chunks {}", chunk_size,
                     num_left_chunks < 0 ? std::string("all") : std::to_string(num_left_chunks));
}

void check_streaming_model(const ModelConfig& config) {
  const EncoderConfig& ec = config.encoder;
  WENET_CHECK(ec.use_dynamic_chunk || ec.static_chunk_size > 0,
              "{}: encoder_conf.use_dynamic_chunk: the model was not trained for streaming (neither "
              "encoder_conf.use_dynamic_chunk: true nor encoder_conf.static_chunk_size > 0), so it cannot be decoded "
              "chunk by chunk; decode it with full context",
              config.source.empty() ? std::string("train.yaml") : config.source);
}

StreamingEncoder::StreamingEncoder(AsrModel& model, const StreamingOptions& opts) : model_(model), opts_(opts) {
  check_streaming_model(model.config());
  opts_.validate();
  const EncoderConfig& ec = model.config().encoder;
  rate_ = ::wenet_rt::subsampling_rate(ec.input_layer);
  right_context_ = right_context_of(ec.input_layer);
  const int positions = model.encoder_weights().pe_rows;
  const int64_t history = int64_t(opts_.chunk_size) * opts_.num_left_chunks;
  // A stream never outgrows the position table, so history as long as it is the same as all of it.
  history_ = opts_.num_left_chunks < 0 || history >= positions ? -1 : int(history);
  const bool conv = ec.type == EncoderType::kConformer && ec.use_cnn_module;
  conv_context_ = conv && ec.causal ? ec.cnn_module_kernel - 1 : 0;
  if (conv_context_ > 0) {
    // pointwise_conv1 of a zero input frame (WeNet pads the conv module's input with zeros before
    // a stream's first frame): its bias.
    Backend& be = model.backend();
    for (const AsrModel::Encoder::Layer& l : model.encoder_weights().layers)
      conv_fill_.push_back(l.pw1.b.data ? l.pw1.b
                                        : be.upload(HostTensor(DType::kF32, {2 * ec.output_size}), be.act_dtype()));
  }
}

// --- EncoderCachePool ----------------------------------------------------------------------------

int EncoderCachePool::free_slots() const {
  int n = 0;
  for (const StreamState& s : states_) n += s.allocated ? 0 : 1;
  return n;
}

int EncoderCachePool::allocate() {
  for (size_t i = 0; i < states_.size(); ++i) {
    if (states_[i].allocated) continue;
    states_[i] = StreamState{};
    states_[i].allocated = true;
    return int(i);
  }
  fail("EncoderCachePool: all {} slots are taken (release one, or make a larger pool)", capacity());
}

void EncoderCachePool::release(int slot) {
  WENET_CHECK(allocated(slot), "EncoderCachePool::release: slot {} is not allocated (capacity {})", slot, capacity());
  states_[size_t(slot)] = StreamState{};
}

void EncoderCachePool::reset(int slot) {
  WENET_CHECK(allocated(slot), "EncoderCachePool::reset: slot {} is not allocated (capacity {})", slot, capacity());
  states_[size_t(slot)] = StreamState{};
  states_[size_t(slot)].allocated = true;
}

const StreamState& EncoderCachePool::state(int slot) const {
  WENET_CHECK(slot >= 0 && slot < capacity(), "EncoderCachePool: slot {} outside [0, {})", slot, capacity());
  return states_[size_t(slot)];
}

EncoderCachePool StreamingEncoder::make_pool(int max_streams, int max_frames) {
  const EncoderConfig& ec = model_.config().encoder;
  const int d = ec.output_size, positions = model_.encoder_weights().pe_rows;
  WENET_CHECK(max_streams > 0, "make_pool: expected max_streams > 0, got {}", max_streams);
  WENET_CHECK(max_frames >= 0 && max_frames <= positions,
              "make_pool: expected max_frames in [0, {}] (the model's positions; 0 = all), got {}", positions,
              max_frames);
  Backend& be = model_.backend();
  EncoderCachePool p;
  p.max_frames_ = max_frames > 0 ? max_frames : positions;
  // History + one chunk; all frames an utterance may reach when all history is kept.
  p.ring_rows_ = history_ < 0 ? p.max_frames_ : history_ + opts_.chunk_size;
  const int64_t kv_rows = int64_t(max_streams) * p.ring_rows_;
  const int64_t conv_rows = int64_t(max_streams) * conv_context_;
  const size_t layers = model_.encoder_weights().layers.size();
  try {
    for (size_t i = 0; i < layers; ++i) {
      EncoderCachePool::Layer l;
      l.kv = be.zeros({kv_rows, 2 * d}, be.act_dtype());
      if (conv_context_ > 0) l.conv = be.zeros({conv_rows, 2 * d}, be.act_dtype());
      p.layers_.push_back(l);
    }
  } catch (const Error& e) {
    const double gb = double(layers) * double(kv_rows + conv_rows) * 2 * d * dtype_size(be.act_dtype()) / 1e9;
    fail("streaming cache of {} streams x {} frames of history ({} layers, {:.1f} GB): {}; lower the streams or "
         "the left chunks", max_streams, p.ring_rows_, layers, gb, e.what());
  }
  p.states_.resize(size_t(max_streams));
  p.owner_ = this;
  return p;
}

// --- one pass over a batch of chunks ---------------------------------------------------------------

namespace {

// Per-item values of a batch, uploaded in one copy: rows of an i32 [kFields, B] tensor.
enum Field : int {
  kSlot,       // the stream's slot
  kOffset,     // its first encoder frame in this chunk
  kFrames,     // T_b: the chunk's frames
  kKeyStart,   // frame of its first visible key (offset - history)
  kKeyLens,    // visible keys (history + T_b)
  kConvFirst,  // first frame of the conv module's left context (offset - (kernel - 1))
  kZero,       // 0 (the one "slot" of the position table, for abs_pos)
  kFields
};

}  // namespace

EncoderOutput StreamingEncoder::encode_chunks(const float* windows, int batch, int frames, const int* window_lens,
                                              const int* slots, EncoderCachePool& pool) {
  const int F = model_.config().encoder.input_dim;
  WENET_CHECK(windows != nullptr && batch > 0 && frames > 0,
              "encode_chunks: expected windows of fbank frames, got a batch of {} x {} frames", batch, frames);
  Tensor x = model_.backend().alloc({batch, frames, F}, DType::kF32);
  model_.backend().copy_in(windows, x);
  return encode_chunks(x, window_lens, slots, pool);
}

EncoderOutput StreamingEncoder::encode_chunks(const Tensor& windows, const int* window_lens, const int* slots,
                                              EncoderCachePool& pool) {
  const EncoderConfig& ec = model_.config().encoder;
  const AsrModel::Encoder& e = model_.encoder_weights();
  WENET_CHECK(pool.owner_ == this, "encode_chunks: the pool was made by another StreamingEncoder");
  WENET_CHECK(windows.rank == 3 && windows.dtype == DType::kF32 && windows.dim(0) >= 1 &&
                  windows.cols() == ec.input_dim,
              "encode_chunks: expected float32 windows [B, W, {}], got a {} tensor of rank {} [{}, ..., {}]",
              ec.input_dim, dtype_name(windows.dtype), windows.rank, windows.dim(0), windows.cols());
  WENET_CHECK(window_lens != nullptr && slots != nullptr, "encode_chunks: expected window_lens and slots");
  const int B = int(windows.dim(0)), W = int(windows.dim(1));
  WENET_CHECK(B <= pool.capacity(), "encode_chunks: a batch of {} streams in a pool of {}", B, pool.capacity());

  // Everything is checked before any work, so that an error leaves every stream as it was.
  std::vector<int32_t> host(size_t(kFields) * B);
  const auto at = [&](Field f, int b) -> int32_t& { return host[size_t(f) * B + b]; };
  std::vector<char> seen(size_t(pool.capacity()), 0);
  std::vector<int> lens(static_cast<size_t>(B), 0);
  for (int b = 0; b < B; ++b) {
    const int Wb = window_lens[b], slot = slots[b];
    WENET_CHECK(Wb >= min_window_frames() && Wb <= window_frames(),
                "encode_chunks: item {}: expected a window of {} to {} fbank frames ((chunk_size - 1) * {} + {} + 1 "
                "with chunk_size {}; the last window of an utterance may be shorter), got {}",
                b, min_window_frames(), window_frames(), rate_, right_context_, opts_.chunk_size, Wb);
    WENET_CHECK(Wb <= W, "encode_chunks: item {}: a window of {} frames in windows of {}", b, Wb, W);
    WENET_CHECK(pool.allocated(slot), "encode_chunks: item {}: slot {} is not allocated (EncoderCachePool::allocate(); "
                "capacity {})", b, slot, pool.capacity());
    WENET_CHECK(!seen[size_t(slot)], "encode_chunks: item {}: slot {} appears twice in the batch", b, slot);
    seen[size_t(slot)] = 1;
    const StreamState& st = pool.states_[size_t(slot)];
    const int T = model_.subsampled_length(Wb);
    WENET_CHECK(st.offset + T <= pool.max_frames_,
                "encode_chunks: item {}: the stream in slot {} would reach {} encoder frames, past {}; reset it (start a "
                "new utterance) before",
                b, slot, st.offset + T,
                pool.max_frames_ == e.pe_rows
                    ? fmt::format("the model's {} positions (WeNet's max_len)", e.pe_rows)
                    : fmt::format("the pool's max_frames {}", pool.max_frames_));
    lens[size_t(b)] = T;
    at(kSlot, b) = slot;
    at(kOffset, b) = st.offset;
    at(kFrames, b) = T;
    at(kKeyStart, b) = st.offset - st.frames;
    at(kKeyLens, b) = st.frames + T;
    at(kConvFirst, b) = st.offset - conv_context_;
    at(kZero, b) = 0;
  }
  WENET_CHECK(W <= window_frames(), "encode_chunks: windows of {} frames, longer than a chunk's {}", W,
              window_frames());

  Backend& be = model_.backend();
  const DType dt = be.act_dtype();
  const int d = ec.output_size, T = model_.subsampled_length(W), K1 = conv_context_, R = pool.ring_rows_;
  const Tensor prm = be.alloc({kFields, B}, DType::kI32);
  be.copy_in(host.data(), prm);
  const auto field = [&](Field f) {
    return make_view(static_cast<int32_t*>(prm.data) + size_t(f) * B, {B}, DType::kI32);
  };
  const Tensor slot_t = field(kSlot), offset_t = field(kOffset), key_start = field(kKeyStart),
               key_lens = field(kKeyLens), conv_first = field(kConvFirst);
  EncoderOutput r;
  r.batch = B;
  r.frames = T;
  r.host_lens = lens;
  r.lens = field(kFrames);
  r.out = be.alloc({B, T, d}, dt);

  const std::string key = fmt::format("stream_enc/{}/{}@{}@{}@{}@{}@{}", B, W, static_cast<const void*>(this),
                                      windows.data, prm.data, r.out.data, pool.layers_.front().kv.data);
  be.run_cached(key, [&] {
    // Input layer; abs_pos adds each item's positions (rows offset_b.. of the table, gathered as
    // from a ring of one slot), rel_pos leaves them to the attention.
    if (ec.pos_enc == PosEncType::kRelPos) {
      subsample_features(model_, windows, r.out);
    } else {
      const Tensor table = e.pe.view({e.pe_rows, d});
      Tensor pos = be.alloc({B, T, d}, dt);
      be.ring_read(table, field(kZero), offset_t, e.pe_rows, rows_of(table, 0, 1), pos);
      subsample_features(model_, windows, r.out, &pos);
    }

    ResidualStream xs(be, r.out, be.alloc({B, T, d}, dt));
    Tensor qkv = be.alloc({B, T, 3 * d}, dt);
    Tensor ctx = be.alloc({B, T, d}, dt);
    Tensor ff = be.alloc({B, T, ec.linear_units}, dt);
    Tensor conv_in = be.alloc({B, T, 2 * d}, dt);
    Tensor left = K1 > 0 ? be.alloc({B, K1, 2 * d}, dt) : Tensor{};
    for (size_t i = 0; i < e.layers.size(); ++i) {
      const AsrModel::Encoder::Layer& l = e.layers[i];
      const EncoderCachePool::Layer& c = pool.layers_[i];
      if (l.ff_macaron_w1.w.data) {
        xs.norm_linear(l.norm_ff_macaron, l.ff_macaron_w1, ec.activation, ff);
        be.linear(ff, l.ff_macaron_w2, Activation::kNone, &xs.x(), xs.x());
      }
      // Self-attention over [history ; chunk]: the chunk's K and V (its valid frames) join each
      // stream's ring first, then every query sees its stream's keys there (WeNet's forward_chunk
      // passes no mask).
      xs.norm_linear(l.norm_mha, l.qkv, Activation::kNone, qkv);
      be.ring_write(qkv.col_slice(d, 2 * d), r.lens, slot_t, offset_t, R, c.kv);
      AttentionArgs a;
      a.q = qkv.col_slice(0, d);
      a.k = c.kv.col_slice(0, d);
      a.v = c.kv.col_slice(d, d);
      a.key_lens = key_lens;
      a.kv_slot = slot_t;
      a.key_start = key_start;
      a.ring_rows = R;
      a.heads = ec.attention_heads;
      a.out = ctx;
      if (ec.pos_enc == PosEncType::kRelPos) {
        a.pos = l.pos_proj;  // the key at frame a: row a
        a.pos_bias_u = l.pos_bias_u;
        a.pos_bias_v = l.pos_bias_v;
      }
      be.attention(a);
      be.linear(ctx, l.att_out, Activation::kNone, &xs.x(), xs.x());

      if (l.pw1.w.data) {
        xs.norm_linear(l.norm_conv, l.pw1, Activation::kNone, conv_in);
        ConvModuleArgs cm;
        cm.x = conv_in;
        cm.lens = r.lens;
        cm.dw_w = l.dw_w;
        cm.dw_b = l.dw_b;
        cm.norm = l.conv_norm;
        cm.y = ctx;
        cm.causal = K1 > 0;
        cm.causal_pad = l.causal_pad;
        if (K1 > 0) {
          // Causal: the pointwise_conv1 outputs of the stream's K-1 frames before the chunk precede
          // it; the chunk's own then become the next chunk's (the ring keeps the newest K-1).
          be.ring_read(c.conv, slot_t, conv_first, K1, conv_fill_[i], left);
          cm.left = left;
          be.conv_module(cm, ec.activation);
          be.ring_write(conv_in, r.lens, slot_t, offset_t, K1, c.conv);
        } else {
          // Non-causal: each chunk alone, zero padded on both sides (WeNet keeps no conv cache).
          cm.zero_beyond_lens = true;
          be.conv_module(cm, ec.activation);
        }
        be.linear(ctx, l.pw2, Activation::kNone, &xs.x(), xs.x());
      }
      xs.norm_linear(l.norm_ff, l.ff_w1, ec.activation, ff);
      be.linear(ff, l.ff_w2, Activation::kNone, &xs.x(), xs.x());
      xs.defer_norm(l.norm_final);
    }
    xs.finish(e.after_norm);
  });

  // WeNet keeps the last C*L of [history ; chunk] keys (all of them when L = -1, none when L = 0).
  for (int b = 0; b < B; ++b) {
    StreamState& st = pool.states_[size_t(slots[b])];
    const int keys = st.frames + lens[size_t(b)];
    st.frames = history_ < 0 ? keys : std::min(keys, history_);
    st.offset += lens[size_t(b)];
  }
  return r;
}

// --- one stream ------------------------------------------------------------------------------------

EncoderCache StreamingEncoder::make_cache() {
  EncoderCache c;
  c.pool = make_pool(1);
  c.pool.allocate();
  return c;
}

void StreamingEncoder::reset(EncoderCache& cache) const {
  WENET_CHECK(cache.pool.owner_ == this, "streaming: the cache was made by another StreamingEncoder");
  cache.pool.reset(0);
  cache.offset = cache.frames = 0;
}

EncoderOutput StreamingEncoder::encode_chunk(const float* window, int frames, EncoderCache& cache) {
  const int F = model_.config().encoder.input_dim;
  WENET_CHECK(window != nullptr && frames > 0, "encode_chunk: expected a window of fbank frames, got {} frames",
              frames);
  Tensor x = model_.backend().alloc({1, frames, F}, DType::kF32);
  model_.backend().copy_in(window, x);
  return encode_chunk(x, cache);
}

EncoderOutput StreamingEncoder::encode_chunk(const Tensor& window, EncoderCache& cache) {
  const EncoderConfig& ec = model_.config().encoder;
  WENET_CHECK(cache.pool.owner_ == this, "encode_chunk: the cache was made by another StreamingEncoder");
  WENET_CHECK(window.rank == 3 && window.dtype == DType::kF32 && window.dim(0) == 1 && window.cols() == ec.input_dim,
              "encode_chunk: expected a float32 window [1, W, {}], got a {} tensor of rank {} [{}, ..., {}]",
              ec.input_dim, dtype_name(window.dtype), window.rank, window.dim(0), window.cols());
  const int W = int(window.dim(1)), slot = 0;
  EncoderOutput r = encode_chunks(window, &W, &slot, cache.pool);
  cache.offset = cache.pool.state(0).offset;
  cache.frames = cache.pool.state(0).frames;
  return r;
}

StreamedEncoding StreamingEncoder::encode_utterance(const float* feats, int frames) {
  const ModelConfig& mc = model_.config();
  const int F = mc.encoder.input_dim, d = mc.encoder.output_size, V = mc.vocab_size;
  WENET_CHECK(frames >= 0 && (feats != nullptr || frames == 0), "encode_utterance: {} frames", frames);
  Backend& be = model_.backend();
  if (utterance_cache_.pool.owner_ != this) utterance_cache_ = make_cache();
  reset(utterance_cache_);
  StreamedEncoding out;
  for (int cur = 0; cur + min_window_frames() <= frames; cur += stride_frames()) {
    const int end = std::min(cur + window_frames(), frames);
    be.reset_arena();
    const EncoderOutput enc = encode_chunk(feats + size_t(cur) * F, end - cur, utterance_cache_);
    const Tensor lp = model_.ctc_log_probs(enc);
    out.encoder_out.resize(size_t(out.frames + enc.frames) * d);
    out.ctc_log_probs.resize(size_t(out.frames + enc.frames) * V);
    be.copy_out(enc.out, out.encoder_out.data() + size_t(out.frames) * d);
    be.copy_out(lp, out.ctc_log_probs.data() + size_t(out.frames) * V);
    out.frames += enc.frames;
  }
  return out;
}

}  // namespace wenet_rt
