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

// The same as a one-sequence batch [1, n, cols].
Tensor seq_of(const Tensor& buf, int64_t row, int64_t n) {
  const Tensor t = rows_of(buf, row, n);
  return t.view({1, n, buf.cols()});
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
  if (conv_context_ > 0)
    conv_zeros_ = model.backend().upload(HostTensor(DType::kF32, {conv_context_, ec.output_size}),
                                         model.backend().act_dtype());
}

EncoderCache StreamingEncoder::make_cache() {
  const EncoderConfig& ec = model_.config().encoder;
  const int d = ec.output_size;
  Backend& be = model_.backend();
  EncoderCache c;
  // Room for the history and a chunk twice over, so that the history moves back to the front only
  // every few chunks (and never onto itself); all positions when all history is kept.
  c.rows = history_ < 0 ? model_.encoder_weights().pe_rows : 2 * (history_ + opts_.chunk_size);
  for (size_t i = 0; i < model_.encoder_weights().layers.size(); ++i) {
    EncoderCache::Layer l;
    l.kv = be.upload(HostTensor(DType::kF32, {c.rows, 2 * d}), be.act_dtype());
    if (conv_context_ > 0)
      l.conv = be.upload(HostTensor(DType::kF32, {conv_context_ + opts_.chunk_size, 2 * d}), be.act_dtype());
    c.layers.push_back(l);
  }
  c.owner = this;
  reset(c);
  return c;
}

void StreamingEncoder::reset(EncoderCache& cache) const {
  WENET_CHECK(cache.owner == this, "streaming: the cache was made by another StreamingEncoder");
  cache.start = cache.frames = cache.offset = 0;
  cache.conv_ready = false;
}

void StreamingEncoder::move_history_to_front(EncoderCache& cache) {
  Backend& be = model_.backend();
  if (cache.frames > 0) {
    // make_cache() sizes kv so that a move never overlaps: start >= frames here.
    WENET_CHECK(cache.start >= cache.frames, "streaming: internal error: history rows overlap when moved");
    for (EncoderCache::Layer& l : cache.layers)
      be.scale_add_pos(rows_of(l.kv, cache.start, cache.frames), 1.f, nullptr, rows_of(l.kv, 0, cache.frames));
  }
  cache.start = 0;
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
  const AsrModel::Encoder& e = model_.encoder_weights();
  WENET_CHECK(cache.owner == this, "encode_chunk: the cache was made by another StreamingEncoder");
  WENET_CHECK(window.rank == 3 && window.dtype == DType::kF32 && window.dim(0) == 1 && window.cols() == ec.input_dim,
              "encode_chunk: expected a float32 window [1, W, {}], got a {} tensor of rank {} [{}, ..., {}]",
              ec.input_dim, dtype_name(window.dtype), window.rank, window.dim(0), window.cols());
  const int W = int(window.dim(1));
  WENET_CHECK(W >= min_window_frames() && W <= window_frames(),
              "encode_chunk: expected a window of {} to {} fbank frames ((chunk_size - 1) * {} + {} + 1 with "
              "chunk_size {}; the last window of an utterance may be shorter), got {}",
              min_window_frames(), window_frames(), rate_, right_context_, opts_.chunk_size, W);
  const int T = model_.subsampled_length(W);
  WENET_CHECK(cache.offset + T <= e.pe_rows,
              "encode_chunk: the stream would reach {} encoder frames, past the model's {} positions (WeNet's "
              "max_len); reset the cache (start a new utterance) before",
              cache.offset + T, e.pe_rows);
  if (cache.start + cache.frames + T > cache.rows) move_history_to_front(cache);

  Backend& be = model_.backend();
  const DType dt = be.act_dtype();
  const int d = ec.output_size, hist = cache.frames, Tk = hist + T, K1 = conv_context_;
  EncoderOutput r;
  r.batch = 1;
  r.frames = T;
  r.host_lens = {T};
  r.lens = be.alloc({1}, DType::kI32);
  be.copy_in(&T, r.lens);
  Tensor key_lens = be.alloc({1}, DType::kI32);
  be.copy_in(&Tk, key_lens);
  r.out = be.alloc({1, T, d}, dt);

  // Input layer; abs_pos adds the positions of the chunk's frames, rel_pos leaves them to the attention.
  const Tensor h = subsample_features(model_, window);
  const bool rel = ec.pos_enc == PosEncType::kRelPos;
  const Tensor abs_pos = rows_of(e.pe, cache.offset, T);
  be.scale_add_pos(h, std::sqrt(float(d)), rel ? nullptr : &abs_pos, r.out);

  Tensor xs = r.out;
  Tensor qkv = be.alloc({1, T, 3 * d}, dt);
  Tensor ctx = be.alloc({1, T, d}, dt);
  Tensor ff = be.alloc({1, T, ec.linear_units}, dt);
  Tensor conv_in = be.alloc({1, T, 2 * d}, dt);
  Tensor conv_out = be.alloc({1, K1 + T, d}, dt);
  for (size_t i = 0; i < e.layers.size(); ++i) {
    const AsrModel::Encoder::Layer& l = e.layers[i];
    EncoderCache::Layer& c = cache.layers[i];
    if (l.ff_macaron_w1.w.data) {
      be.norm_linear(xs, l.norm_ff_macaron, l.ff_macaron_w1, ec.activation, ff);
      be.linear(ff, l.ff_macaron_w2, Activation::kNone, &xs, xs);
    }
    // Self-attention over [history ; chunk]: the chunk's K and V join the history first.
    be.norm_linear(xs, l.norm_mha, l.qkv, Activation::kNone, qkv);
    be.scale_add_pos(qkv.col_slice(d, 2 * d), 1.f, nullptr, seq_of(c.kv, cache.start + hist, T));
    const Tensor keys = seq_of(c.kv, cache.start, Tk);
    AttentionArgs a;
    a.q = qkv.col_slice(0, d);
    a.k = keys.col_slice(0, d);
    a.v = keys.col_slice(d, d);
    a.key_lens = key_lens;  // every key is visible: WeNet's forward_chunk passes no mask
    a.heads = ec.attention_heads;
    a.out = ctx;
    if (rel) {
      a.pos = rows_of(l.pos_proj, cache.offset - hist, Tk);  // key at frame j: position row j
      a.pos_bias_u = l.pos_bias_u;
      a.pos_bias_v = l.pos_bias_v;
    }
    be.attention(a);
    be.linear(ctx, l.att_out, Activation::kNone, &xs, xs);

    if (l.pw1.w.data) {
      if (K1 > 0) {
        // Causal: pointwise_conv1 outputs of the last K-1 input frames precede the chunk's (before the
        // first chunk, those of zero frames, as WeNet's left zero padding), and the conv runs over both.
        if (!cache.conv_ready) be.linear(conv_zeros_, l.pw1, Activation::kNone, nullptr, rows_of(c.conv, 0, K1));
        be.norm_linear(xs, l.norm_conv, l.pw1, Activation::kNone, seq_of(c.conv, K1, T));
        const ConvModuleArgs cm{seq_of(c.conv, 0, K1 + T), r.lens, l.dw_w, l.dw_b, l.conv_norm, conv_out,
                                true, l.causal_pad};
        be.conv_module(cm, ec.activation);
        be.linear(seq_of(conv_out.view({K1 + T, d}), K1, T), l.pw2, Activation::kNone, &xs, xs);
        // The next chunk's left context: the last K-1 frames of [context ; chunk].
        if (T >= K1) {
          be.scale_add_pos(rows_of(c.conv, T, K1), 1.f, nullptr, rows_of(c.conv, 0, K1));
        } else {  // overlapping rows: through scratch
          Tensor tmp = be.alloc({K1, 2 * d}, dt);
          be.scale_add_pos(rows_of(c.conv, T, K1), 1.f, nullptr, tmp);
          be.scale_add_pos(tmp, 1.f, nullptr, rows_of(c.conv, 0, K1));
        }
      } else {
        // Non-causal: the chunk alone, zero padded on both sides (WeNet keeps no conv cache).
        be.norm_linear(xs, l.norm_conv, l.pw1, Activation::kNone, conv_in);
        const ConvModuleArgs cm{conv_in, r.lens, l.dw_w, l.dw_b, l.conv_norm, ctx, false, Tensor{}};
        be.conv_module(cm, ec.activation);
        be.linear(ctx, l.pw2, Activation::kNone, &xs, xs);
      }
    }
    be.norm_linear(xs, l.norm_ff, l.ff_w1, ec.activation, ff);
    be.linear(ff, l.ff_w2, Activation::kNone, &xs, xs);
    if (l.norm_final.gamma.data) be.layer_norm(xs, l.norm_final, xs);
  }
  be.layer_norm(xs, e.after_norm, xs);

  // WeNet keeps the last C*L of the chunk's keys (all of them when L = -1, none when L = 0).
  const int keep = history_ < 0 ? Tk : std::min(Tk, history_);
  cache.start += Tk - keep;
  cache.frames = keep;
  cache.offset += T;
  cache.conv_ready = true;
  return r;
}

StreamedEncoding StreamingEncoder::encode_utterance(const float* feats, int frames) {
  const ModelConfig& mc = model_.config();
  const int F = mc.encoder.input_dim, d = mc.encoder.output_size, V = mc.vocab_size;
  WENET_CHECK(frames >= 0 && (feats != nullptr || frames == 0), "encode_utterance: {} frames", frames);
  Backend& be = model_.backend();
  if (utterance_cache_.owner != this) utterance_cache_ = make_cache();
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
