// The backend interface: the ops the model graph (src/graph) is written in. One graph, two backends:
// cpu (fp32, BLAS) and cuda (fp16/fp32, cuBLASLt + fused kernels). Ops are fused where fusion is
// the point (bias/activation/residual epilogues, rel-pos attention with masks, GLU + depthwise conv +
// norm + activation), so a backend can implement each as one kernel.
//
// Conventions: activations are row-major, [B, T, C] viewed as rows of C; a 2-D operand may have
// strided rows (Tensor::ld), e.g. the Q/K/V column slices of a fused QKV projection. Sequence
// lengths are i32 tensors in backend memory. All ops are asynchronous on the backend's stream;
// to_host() synchronizes.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/config.h"

namespace wenet_rt {

// Activation: model/config.h

// y = x W^T + b, i.e. W is [N, K] as in torch.nn.Linear.
struct LinearWeights {
  Tensor w;  // [N, K], compute dtype
  Tensor b;  // [N] or empty (data == nullptr)
};

struct LayerNormWeights {
  Tensor gamma, beta;  // [D]
};

struct AttentionArgs {
  Tensor q;         // [Bq, Tq, H*dk]  (rows may be strided)
  Tensor k, v;      // [Bk, Tk, H*dk]  (rows may be strided); Bq = Bk * queries_per_kv
  Tensor key_lens;  // i32 [Bk]: keys at t >= len are masked
  int heads = 1;
  int queries_per_kv = 1;  // decoder: N hypotheses share their utterance's memory K/V
  bool causal = false;     // key j visible to query i only if j <= i
  // Relative-position attention (WeNet rel_selfattn, no rel_shift): when pos.data != nullptr,
  // scores = ((q + pos_bias_u) k^T + (q + pos_bias_v) p^T) / sqrt(dk), p = pos [Tk, H*dk].
  Tensor pos, pos_bias_u, pos_bias_v;  // pos_bias_* : [H, dk]
  Tensor out;                          // [Bq, Tq, H*dk]
  // Keys in a ring pool (the streaming encoder's per-stream K/V history, see ring_write): when
  // ring_rows > 0, k and v are 2-D pools [slots * ring_rows, H*dk] (rows may be strided), and key
  // j < key_lens[b] of item b is frame key_start[b] + j of slot kv_slot[b], i.e. pool row
  // kv_slot[b] * ring_rows + (key_start[b] + j) % ring_rows; its rel-pos row is key_start[b] + j
  // (pos: the whole position table). Bk = key_lens' length; key_lens[b] <= ring_rows; not causal.
  Tensor kv_slot, key_start;  // i32 [Bk]
  int ring_rows = 0;          // 0: the contiguous [Bk, Tk, H*dk] layout above
  // Rows of a prefix trie (the rescoring decoder computes each distinct prefix of an N-best once;
  // backends with supports_prefix_tries()). When query_offsets.data != nullptr, q and out are 2-D
  // [rows, H*dk] and item b's queries are rows query_offsets[b] .. query_offsets[b + 1] - 1
  // (i32 [Bk + 1]; queries_per_kv = 1; Bk = key_lens' length). When key_rows.data != nullptr
  // too, k and v are 2-D and key j < key_lens[b] of item b is row key_rows[b, j] (i32 [Bk, Tk]);
  // else item b's keys are k[b] as above. causal: item b's n queries are its last n key
  // positions, query i at position key_lens[b] - n + i (a node's ancestors are the keys before it).
  Tensor query_offsets, key_rows;
};

// The conformer convolution module between its two pointwise convolutions:
// y = act(norm(depthwise_conv(glu(x)))), with BatchNorm folded into the depthwise weights at load
// (norm.gamma.data == nullptr) or a LayerNorm over channels (cnn_module_norm: layer_norm).
struct ConvModuleArgs {
  Tensor x;         // [B, T, 2D], output of pointwise_conv1
  Tensor lens;      // i32 [B] (informational: WeNet convolves padded frames too, see graph)
  Tensor dw_w;      // [D, K] depthwise kernel: 'same' zero padding, or K-1 left zeros if causal
  Tensor dw_b;      // [D]
  LayerNormWeights norm;  // empty for batch_norm (folded)
  Tensor y;         // [B, T, D]
  // Causal conv (encoder_conf.causal): frame t sees t-K+1 .. t, and frames before 0 hold
  // causal_pad [D]: WeNet pads the module's *input* on the left, so they are glu(pointwise_conv1 bias).
  bool causal = false;
  Tensor causal_pad;
  // Streaming (a batch of chunks of many streams, each convolved as WeNet's forward_chunk does):
  // left: causal only, optional [B, K-1, 2D]: the pointwise_conv1 outputs of the K-1 frames before
  // each item's frame 0 (its stream's left context), read instead of causal_pad.
  Tensor left;
  // Frames t >= lens[b] read as zeros, like frames past T (a chunk shorter than the batch's longest
  // is convolved alone). Off: every frame is convolved, padded ones too (WeNet's full-context encoder).
  bool zero_beyond_lens = false;
};

// Device time of one kind of kernel over a profiled stretch of work.
struct KernelTime {
  std::string name;  // op, and the kernel within it when an op launches several
  int calls = 0;
  double ms = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  // dtype of weights and activations (f32 on cpu; f16 or f32 on cuda).
  virtual DType act_dtype() const = 0;
  // Whether kernels are launched with Programmatic Dependent Launch (cuda, Hopper+), for reports.
  virtual bool programmatic_launch() const { return false; }

  // --- memory ---------------------------------------------------------------------------------
  // Persistent copy of a float32 host tensor, converted to `dtype` (weights, tables).
  virtual Tensor upload(const HostTensor& t, DType dtype) = 0;
  // Persistent zero-filled tensor (caches, rings), with no host copy; an error naming the bytes
  // asked for and those free when the memory is not there.
  virtual Tensor zeros(const Shape& shape, DType dtype) = 0;
  // Scratch from the per-forward arena; valid until reset_arena().
  virtual Tensor alloc(std::initializer_list<int64_t> shape, DType dtype) = 0;
  virtual void reset_arena() = 0;
  // Host <-> backend copies; `host` is float32 (or int32 for i32 tensors), converted as needed.
  virtual void copy_in(const void* host, const Tensor& dst) = 0;
  virtual void copy_out(const Tensor& src, void* host) = 0;  // synchronizes
  virtual void synchronize() {}  // waits for all queued work (timing)

  // --- asynchronous use (a pipeline overlapping host work with queued device work) --------------
  // Host memory the backend copies to and from without staging (page-locked on cuda), freed by
  // the handle. Copies from or into other host memory are correct but may block.
  using HostMemory = std::unique_ptr<void, void (*)(void*)>;
  virtual HostMemory alloc_host(size_t bytes);
  // Queues a copy of `src` (float32 or int32 tensors, contiguous) into `host` and returns at once
  // where the backend is asynchronous; the data is there once a later fence() has passed.
  virtual void copy_out_async(const Tensor& src, void* host) { copy_out(src, host); }
  // A fence marks the end of the work queued so far; wait() blocks the host until it is done.
  // elapsed_ms() is the device time between two passed fences (0 on backends without device time).
  // Fences are cheap; at most kFenceRing of them may be outstanding at once.
  static constexpr uint64_t kFenceRing = 1024;
  virtual uint64_t fence() { return 0; }
  virtual void wait(uint64_t fence) { (void)fence; }
  virtual double elapsed_ms(uint64_t from, uint64_t to) {
    (void)from, (void)to;
    return 0;
  }
  // Native queue (cudaStream_t on cuda, else null), for components that enqueue their own work
  // in the backend's order (the GPU fbank).
  virtual void* native_stream() { return nullptr; }
  // Device memory the backend holds (weights, scratch, caches), for reports; 0 on cpu.
  virtual size_t device_bytes() const { return 0; }
  // CUDA graphs captured so far (run_cached), for reports.
  virtual size_t cached_graphs() const { return 0; }
  // Runs `body`; backends with CUDA graphs capture it once per key and replay it afterwards.
  // body must only launch ops on tensors whose addresses are the same for the same key.
  virtual void run_cached(const std::string& key, const std::function<void()>& body) { (void)key; body(); }
  // Milliseconds the work `fn` queues takes on the device (CUDA events on cuda, so host launch
  // overhead outside the stream is not counted; wall clock on cpu). Synchronizes.
  virtual double time_ms(const std::function<void()>& fn) {
    synchronize();
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    synchronize();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  }
  // Whether the ops take the layouts of a prefix-trie decoder (AttentionArgs::query_offsets /
  // key_rows, embed's positions, linear_log_softmax_gather's rows); else the graph decodes every
  // hypothesis row by row.
  virtual bool supports_prefix_tries() const { return false; }
  // Profiling (backends that support it time each kernel; run_cached then runs eagerly).
  virtual void set_profiling(bool on) { (void)on; }
  virtual std::vector<KernelTime> take_profile() { return {}; }  // since set_profiling(true); synchronizes

  // --- ops ------------------------------------------------------------------------------------
  // y = act(x W^T + b) + residual    (x [M, K], residual/y [M, N]; residual may alias y)
  virtual void linear(const Tensor& x, const LinearWeights& w, Activation act, const Tensor* residual,
                      const Tensor& y) = 0;
  // y = act(LayerNorm(x) W^T + b) (zero_lens as in layer_norm): the two ops every pre-norm
  // sublayer starts with, which a backend may fuse into one kernel.
  virtual void norm_linear(const Tensor& x, const LayerNormWeights& norm, const LinearWeights& w, Activation act,
                           const Tensor& y, const Tensor* zero_lens = nullptr) {
    Tensor normed = x;
    normed.data = alloc({x.numel()}, act_dtype()).data;
    normed.ld = 0;
    layer_norm(x, norm, normed, zero_lens);
    linear(normed, w, act, nullptr, y);
  }
  // x_out = LayerNorm_first(x), then y = act(LayerNorm(x_out) W^T + b): a conformer block's closing
  // LayerNorm and the next block's opening norm_linear, which a backend may fuse (x_out must not
  // alias x: the fused form normalizes rows that other column tiles still read).
  virtual void norm_norm_linear(const Tensor& x, const LayerNormWeights& first, const Tensor& x_out,
                                const LayerNormWeights& norm, const LinearWeights& w, Activation act, const Tensor& y) {
    layer_norm(x, first, x_out);
    norm_linear(x_out, norm, w, act, y);
  }
  // y = LayerNorm(x) (eps 1e-5) over the last axis. With zero_lens ([B] for x [B, T, D]), rows
  // with t >= lens[b] are written as zeros (WeNet masks the conv module's input this way).
  virtual void layer_norm(const Tensor& x, const LayerNormWeights& w, const Tensor& y,
                          const Tensor* zero_lens = nullptr) = 0;
  // y = (x - mean) * istd per column (x [M, F] float32 features; y in act dtype).
  virtual void cmvn(const Tensor& x, const Tensor& mean, const Tensor& istd, const Tensor& y) = 0;
  // 2-D convolution, no padding, optional ReLU, in the backend's layout: NCHW (x [B, C, H, W],
  // w [O, C, kh, kw], y [B, O, H', W']) or, where conv_channels_last(), NHWC (x [B, H, W, C],
  // w [O, kh, kw, C], y [B, H', W', O]). The graph packs the weights to match.
  virtual bool conv_channels_last() const { return false; }
  virtual void conv2d(const Tensor& x, const Tensor& w, const Tensor& b, int stride, bool relu,
                      const Tensor& y) = 0;
  // [B, C, T, F] -> [B, T, C, F] (flattening NCHW conv-subsampling output into frames; a
  // channels-last backend's conv output is already frames and it needs no such op).
  virtual void transpose_ct(const Tensor& x, const Tensor& y) {
    (void)x, (void)y;
    WENET_CHECK(false, "transpose_ct: the {} backend convolves channels-last; its conv output needs no flattening",
                name());
  }
  // y[b, t, :] = x[b, t, :] * scale + (pos ? pos[t, :] : 0)    (pos: [>=T, D])
  virtual void scale_add_pos(const Tensor& x, float scale, const Tensor* pos, const Tensor& y) = 0;
  // y[b, t, :] = table[ids[b, t], :] * scale + pos[t, :]        (ids i32 [B, T])
  // With positions (i32, ids' shape; supports_prefix_tries()): pos[positions[b, t], :] instead.
  virtual void embed(const Tensor& ids, const Tensor& table, float scale, const Tensor& pos, const Tensor& y,
                     const Tensor* positions = nullptr) = 0;
  virtual void attention(const AttentionArgs& a) = 0;
  virtual void conv_module(const ConvModuleArgs& a, Activation act) = 0;
  // Ring pools: per stream slot s, the last R (ring_rows) frames of a per-frame quantity (the
  // streaming encoder's K/V history and conv left context); frame a >= 0 of slot s is row
  // s * R + a % R of pool [slots * R, C]. Per item b of a batch: slots[b], first[b] (i32 [B]).
  // ring_write: frame first[b] + t of slot slots[b] = x[b, t] for t < lens[b] (x [B, T, C], rows
  // may be strided; lens i32 [B], <= T); only the last min(lens[b], R) of them (the ring keeps the
  // newest R). Items must have distinct slots.
  virtual void ring_write(const Tensor& x, const Tensor& lens, const Tensor& slots, const Tensor& first, int ring_rows,
                          const Tensor& pool) = 0;
  // ring_read: y[b, t] = frame first[b] + t of slot slots[b] for t < T (y [B, T, C]); frames
  // before 0 read `fill` [C] (what precedes a stream's first frame), frames the ring no longer (or
  // not yet) holds are the caller's to avoid.
  virtual void ring_read(const Tensor& pool, const Tensor& slots, const Tensor& first, int ring_rows, const Tensor& fill,
                         const Tensor& y) = 0;
  // Row-wise log-softmax (float32 output for any input dtype).
  virtual void log_softmax(const Tensor& x, const Tensor& y) = 0;
  // CTC head for the prefix search: per row of x [M, V] (logits, act dtype, rows may be strided),
  // the k best values of log_softmax(x) (top_logp f32 [M, k]) and their ids (top_ids i32 [M, k]),
  // best first, equal values keeping the lower id first; and the log-prob of `blank`
  // (blank_logp f32 [M]). The values are exactly what log_softmax() writes for those entries
  // (same log-sum-exp), so a search over them equals a search over the full log_softmax output.
  // Never writes an [M, V] tensor. 1 <= k <= V, 0 <= blank < V.
  virtual void log_softmax_top_k(const Tensor& x, int blank, const Tensor& top_ids, const Tensor& top_logp,
                                 const Tensor& blank_logp) = 0;
  // Log-probs of chosen tokens: out[m] = log_softmax(x[m] W^T + b)[targets[m]], the softmax over the
  // first `vocab` outputs (W may have padding rows beyond vocab, which are ignored). x [M, K] act dtype
  // (rows may be strided), targets i32 [M] in [0, vocab) or -1 (then out[m] = 0), out f32 [M].
  // Attention rescoring needs only these values: the [M, vocab] logits are never written out
  // (CUDA FP16: one fused kernel, projection + online log-sum-exp + gather).
  // Targets outside [-1, vocab) are an error on cpu; cuda, which cannot check them without a
  // synchronization, writes NaN for them.
  // With rows (i32, targets' length; supports_prefix_tries()): out[m] scores row rows[m] of x
  // (rows of a prefix trie, where hypotheses that share a prefix share its rows).
  virtual void linear_log_softmax_gather(const Tensor& x, const LinearWeights& w, int vocab,
                                         const Tensor& targets, const Tensor& out, const Tensor* rows = nullptr) = 0;
};

inline Backend::HostMemory Backend::alloc_host(size_t bytes) {
  HostMemory m(std::malloc(bytes ? bytes : 1), std::free);
  WENET_CHECK(m != nullptr, "out of host memory: {} bytes", bytes);
  return m;
}

struct CpuBackendOptions {
  int threads = 0;    // threads the ops run on, the caller's included; 0 = the cores this process may use
  bool int8 = false;  // linear layers (and the subsampling's second conv) in INT8 (--precision int8):
                      // per-channel int8 weights, activations quantized per row (per position for the
                      // conv) to uint8 at run time (ONNX Runtime's quantize_dynamic scheme)
};
std::unique_ptr<Backend> make_cpu_backend(const CpuBackendOptions& opts);
std::unique_ptr<Backend> make_cpu_backend(int threads = 0);  // FP32
#ifdef WENET_RT_HAVE_CUDA
struct CudaBackendOptions {
  DType dtype = DType::kF16;
  bool cuda_graphs = true;
  // Programmatic Dependent Launch of the backend's own kernels where the device supports it
  // (compute capability 9.0+): each kernel fetches its weights while its predecessor still runs
  // (kernels/launch.cuh). WENET_RT_PDL=1 / 0 in the environment turns it on / off for every backend.
  bool programmatic_launch = true;
  int device = 0;
  void* stream = nullptr;  // cudaStream_t; null = the backend creates its own
};
std::unique_ptr<Backend> make_cuda_backend(const CudaBackendOptions& opts);
#endif

}  // namespace wenet_rt
