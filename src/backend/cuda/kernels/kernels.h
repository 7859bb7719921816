// Host-side launchers of the CUDA backend's fused kernels (one fusion per .cu file in this folder).
// Plain C++ types only, so that host code compiles without nvcc. Element type: `f16` selects
// __half storage, else float; arithmetic is FP32 throughout. Row strides (ld*) are in elements.
// Launchers only enqueue; the caller checks cudaGetLastError().
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace wenet_rt::cuda_kernels {

enum class Act : int { kNone = 0, kRelu = 1, kSwish = 2 };

// Where and how the launchers enqueue: the stream, and whether kernels are launched with
// Programmatic Dependent Launch (launch.cuh; only where programmatic_launch_supported()).
struct KernelStream {
  cudaStream_t stream = nullptr;
  bool pdl = false;
};
// True when `device` has compute capability 9.0+ and the kernels that run on it were compiled for
// sm_90+ (so they contain griddepcontrol.wait): PDL is then safe to turn on.
bool programmatic_launch_supported(int device);

// dst[r, c] = src[r, c] for rows x cols, converting between float and half as flagged.
void convert_copy_2d(const void* src, int64_t ld_src, bool src_f16, void* dst, int64_t ld_dst, bool dst_f16,
                     int64_t rows, int64_t cols, KernelStream stream);

// y = LayerNorm(x) * gamma + beta (eps 1e-5); rows with (row % T) >= zero_lens[row / T] become 0
// when zero_lens != nullptr. x may alias y.
void layer_norm_zero_padded_rows(const void* x, int64_t ldx, void* y, int64_t ldy, const void* gamma,
                                 const void* beta, int64_t rows, int64_t cols, int64_t T, const int32_t* zero_lens,
                                 bool f16, KernelStream stream);

// The operands of the few-row float16 GEMM kernels: y = act(x W^T + b) (+ residual), x [M, K]
// (row stride ldx), W [N, K] (ldw), bias [N] or null, residual [M, N] (ldr) or null, y [M, N] (ldy).
struct GemmOperands {
  const void *x, *w, *bias, *residual;
  int64_t ldx, ldw, ldr;
  void* y;
  int64_t ldy, M, N;
  int K;
  Act act;
};

// y = act(LayerNorm(x) W^T + b) in float16, in one kernel (layer_norm_gemm.cu), for few rows.
// x [M, K], gamma, beta and W [N, K] (contiguous) 16-byte aligned, x's row stride a multiple of 8;
// bias [N] or null; y [M, N]. Rows with (row % T) >= zero_lens[row / T] are normalized to zeros
// (as layer_norm_zero_padded_rows). K must pass layer_norm_gemm_supports (256 or 512).
// With pre_gamma / pre_beta, x first goes through that LayerNorm (rounded to half, as a separate
// kernel would store it), which is also written to x_out [M, K] (not aliasing x; row stride
// ld_x_out, a multiple of 8); zero_lens must then be null. M <= kLayerNormGemmMaxRows.
bool layer_norm_gemm_supports(int64_t K);
constexpr int64_t kLayerNormGemmMaxRows = int64_t(65535) * 16;  // 16-row tiles along gridDim.y
struct LayerNormGemmParams {
  GemmOperands g;  // w contiguous (ldw = K), no residual
  const void *gamma, *beta;
  const int32_t* zero_lens;
  int64_t T;
  const void *pre_gamma, *pre_beta;
  void* x_out;
  int64_t ld_x_out;
};
void layer_norm_gemm_f16(const LayerNormGemmParams& p, KernelStream stream);

// y = act(x W^T + b) (+ residual) in float16 for few rows (split_k_gemm.cu): blocks of 16 rows x 64
// columns x kSplitKSlice of K; with K > kSplitKSlice the blocks of a tile leave FP32 partials in
// `partials` (split_k_gemm_workspace_floats) and the last one to finish, counted in
// counters[tile] (split_k_gemm_tiles of them, zero before the first launch and after each),
// reduces them. K a multiple of kSplitKSlice; x and W 16-byte aligned with row strides a multiple
// of 8; bias [N] and residual [M, N] (may alias y) or null. Launches on one stream only: the
// workspace is shared by consecutive launches, not concurrent ones.
constexpr int kSplitKSlice = 256;
struct SplitKGemmParams {
  GemmOperands g;
  float* partials;
  unsigned* counters;
};
int64_t split_k_gemm_workspace_floats(int64_t M, int64_t N, int64_t K);
int64_t split_k_gemm_tiles(int64_t M, int64_t N);
void split_k_gemm_f16(const SplitKGemmParams& p, KernelStream stream);

// y[m, f] = (x[m, f] - mean[f]) * istd[f]; x, mean, istd float32.
void cmvn(const float* x, int64_t ldx, const float* mean, const float* istd, void* y, int64_t ldy, int64_t rows,
          int64_t cols, bool f16, KernelStream stream);

// Direct channels-last float16 convolution on tensor cores, no padding: y = act(conv(x, w) + b)
// with x [B, H, W, C], w [O, kh, kw, C], y [B, Ho, Wo, O], all 4-byte aligned, where
// conv2d_bias_relu_supports(C * kh * kw, O).
bool conv2d_bias_relu_supports(int64_t K, int64_t O);
void conv2d_bias_relu(const void* x, const void* w, const void* b, void* y, int64_t B, int64_t C, int64_t H,
                      int64_t W, int64_t O, int64_t kh, int64_t kw, int64_t stride, int64_t Ho, int64_t Wo,
                      bool relu, KernelStream stream);

// im2col with one row per output position: col[(b * Ho + ho) * Wo + wo][k], k = (i, j, c) <
// kh*kw*C, row stride ldc (>= kh*kw*C). x is NHWC [B, H, W, C], contiguous.
void im2col_rows(const void* x, void* col, int64_t ldc, int64_t B, int64_t C, int64_t H, int64_t W, int64_t kh,
                 int64_t kw, int64_t stride, int64_t Ho, int64_t Wo, bool f16, KernelStream stream);

// y[m, :] = x[m, :] * scale + (pos ? pos[m % T, :] : 0).
void scale_add_pos(const void* x, int64_t ldx, float scale, const void* pos, int64_t ldp, void* y, int64_t ldy,
                   int64_t rows, int64_t cols, int64_t T, bool f16, KernelStream stream);

// y[m, :] = table[ids[m], :] * scale + pos[m % T, :]. A bad id writes zeros and records
// {1, id, V} in error_flag (host-mapped memory, checked by the host at the next synchronization).
void embed_scale_add_pos(const int32_t* ids, const void* table, int64_t ld_table, float scale, const void* pos,
                         int64_t ldp, void* y, int64_t ldy, int64_t rows, int64_t cols, int64_t T, int64_t V,
                         int32_t* error_flag, bool f16, KernelStream stream);

// y = swish(y) in place, rows x cols with row stride ldy.
void swish_inplace(void* y, int64_t ldy, int64_t rows, int64_t cols, bool f16, KernelStream stream);

// Row-wise log-softmax, FP32 math, float32 output.
void log_softmax(const void* x, int64_t ldx, float* y, int64_t ldy, int64_t rows, int64_t cols, bool f16,
                 KernelStream stream);

// Per row of x [rows, cols]: the k best log-softmax values (vals [rows, k], row stride ld_vals)
// and their ids (ids, ld_ids), best first, ties by lower id; blank_logp[row] = the blank's
// log-prob. The same log-sum-exp as log_softmax, so the values equal its output bit for bit.
// 1 <= k <= cols, 0 <= blank < cols (log_softmax_top_k.cu).
void log_softmax_top_k(const void* x, int64_t ldx, int64_t rows, int64_t cols, int k, int blank, int32_t* ids,
                       int64_t ld_ids, float* vals, int64_t ld_vals, float* blank_logp, bool f16,
                       KernelStream stream);

// out[m] = log_softmax(x[m] W^T + b)[targets[m]] over the first vocab outputs, in one float16
// kernel that never writes the logits (linear_log_softmax_gather.cu). x [M, K] 16-byte aligned
// with a row stride that is a multiple of 8; W [>= vocab, K] contiguous, 16-byte aligned; bias
// [>= vocab] or null; targets [M] in [0, vocab) or -1 (out 0; others give NaN). K must pass
// linear_log_softmax_gather_f16_supports (a multiple of 16 up to 256 that fits the device).
struct LinearLogSoftmaxGatherParams {
  const void* x;
  int64_t ldx;
  const void *w, *bias;
  const int32_t* targets;
  float* out;
  int64_t M;
  int K, vocab;
};
bool linear_log_softmax_gather_f16_supports(int64_t K);
// Float32 scratch the kernel needs for these sizes on the current device (partial results when it
// splits the vocabulary over blocks, for few rows); 0 if none. `scratch` holds at least that many.
int64_t linear_log_softmax_gather_f16_scratch(int64_t M, int K, int vocab);
void linear_log_softmax_gather_f16(const LinearLogSoftmaxGatherParams& p, float* scratch, KernelStream stream);
// The rest of linear_log_softmax_gather once the logits are written (chunk by chunk): out[r] =
// logits[r, targets[r]] - logsumexp(logits[r, :vocab]) with log_softmax's log-sum-exp; targets
// as above.
void log_softmax_gather_rows(const void* logits, int64_t ld, int64_t rows, int vocab, const int32_t* targets,
                             float* out, bool f16, KernelStream stream);

// One kernel for the whole attention: scores (+ rel-pos term), key-length / causal masks, online
// softmax in FP32 over key tiles, probabilities x V. Never materializes the score matrix.
struct AttentionParams {
  const void *q, *k, *v, *pos, *bias_u, *bias_v;  // pos == nullptr: plain attention
  void* out;
  int64_t ldq, ldk, ldv, ldp, ldo;  // row strides
  const int32_t* key_lens;          // [Bk]
  int Bq, Tq, Tk, heads, dk, queries_per_kv;
  bool causal;
  // Keys in a ring pool (ring_rows > 0; then Tk = ring_rows): k / v hold ring_slots * ring_rows
  // rows, key j of item b is row kv_slot[b] * ring_rows + (key_start[b] + j) % ring_rows and uses
  // position row key_start[b] + j. Items with a slot outside [0, ring_slots) or key_start < 0 see
  // no keys.
  const int32_t *kv_slot, *key_start;
  int ring_rows, ring_slots;
  int pos_rows;  // rows of pos: keys whose position row would be past them are masked
};

// Largest supported head dimension.
constexpr int kMaxAttentionHeadDim = 128;
// f16: tensor cores (attention_rel_pos_online_softmax_mma.cu); f32: FP32 FMA.
void attention_rel_pos_online_softmax(const AttentionParams& p, bool f16, KernelStream stream);
void attention_rel_pos_online_softmax_f16_mma(const AttentionParams& p, KernelStream stream);

// Conformer conv module core: y = act(norm(depthwise_conv(glu(x)))) with 'same' zero padding over
// all T frames. x [B, T, 2D], y [B, T, D]; gamma == nullptr: no norm (BatchNorm folded into w, b).
struct ConvModuleParams {
  const void* x;
  int64_t ldx;
  const void *w, *b, *gamma, *beta;  // w [D, K] contiguous
  void* y;
  int64_t ldy;
  int B, T, D, K;
  Act act;
  bool causal;             // K-1 frames of left context, which hold causal_pad [D] before t = 0
  const void* causal_pad;
  const void* left;        // causal: [B, K-1, 2D] pointwise_conv1 outputs read before t = 0 instead, or null
  int64_t ldl;
  const int32_t* zero_from;  // [B]: frames t >= zero_from[b] read as zeros, or null
};

// Ring pools (Backend::ring_write / ring_read): frame a of slot s is row s * R + a % R of pool.
// ring_write: pool[frame first[b] + t of slot slots[b]] = x[b, t] for the last min(lens[b], R) of
// t < lens[b] (x [B, T, C]); items with a bad slot, first < 0 or lens outside [0, T] are skipped.
void ring_write_rows(const void* x, int64_t ldx, const int32_t* lens, const int32_t* slots, const int32_t* first,
                     int B, int T, int C, int R, int slot_count, void* pool, int64_t ldp, bool f16,
                     KernelStream stream);
// ring_read: y[b, t] = frame first[b] + t of slot slots[b], or fill [C] for frames before 0 (y [B, T, C]);
// items with a bad slot read fill.
void ring_read_rows(const void* pool, int64_t ldp, const int32_t* slots, const int32_t* first, int B, int T, int C,
                    int R, int slot_count, const void* fill, void* y, int64_t ldy, bool f16, KernelStream stream);
void glu_depthwise_conv_norm_act(const ConvModuleParams& p, bool f16, KernelStream stream);

}  // namespace wenet_rt::cuda_kernels
