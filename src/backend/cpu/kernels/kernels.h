// The CPU backend's vectorized kernels, behind one table of function pointers per instruction set
// (AVX-512, AVX2 + FMA, plain C++), chosen once at run time (cpu_features.cc). The kernels are
// single-threaded: the backend splits the work (ThreadPool) and calls them on independent pieces,
// so that every output element is computed by the same instructions in the same order whatever
// the batch, the padding or the thread count (results do not depend on how a batch was formed).
#pragma once

#include <cstdint>

namespace wenet_rt::cpu {

enum Act : int { kActNone = 0, kActRelu = 1, kActSwish = 2 };

// What happens to a tile of the product before it is stored:
//   C[m, n] = act(acc[m, n] + bias[n] + row_bias[m]) + residual[m, n]
// Pointers are already offset to the tile's first row / column; null = absent. residual may
// alias C (same address and stride).
struct Epilogue {
  const float* bias = nullptr;
  const float* row_bias = nullptr;
  const float* residual = nullptr;
  int64_t ldr = 0;
  int act = kActNone;
};

// Weights (or any B operand) packed for the GEMM kernels: panels of `nr` columns of B
// (= rows of a torch.nn.Linear weight), each panel k-major: panel p holds B[k][p*nr + j] at
// data[(p * K + k) * nr + j], zero-padded past N. nr is a multiple of 16.
struct PackedB {
  const float* data = nullptr;
  int64_t n = 0, k = 0;
  int nr = 0;
  int64_t panels() const { return (n + nr - 1) / nr; }
  const float* panel(int64_t p) const { return data + p * k * nr; }
};

// One head of scaled dot-product attention for a block of consecutive query rows of one sequence
// against that sequence's keys: scores = (q' . k) with q' = q * scale (plus, with relative
// positions, [q + bias_u, q + bias_v] * scale against keys packed as [k | p]); softmax over the
// keys row r may see: the first min(key_len, causal ? first_query + r + 1 : key_len); the others
// get probability 0 (a row that sees none is all zeros, as WeNet's masked_fill after softmax).
struct AttentionHead {
  const float* q = nullptr;  // [rows, dk], row stride ldq (offset to the block's first row / head)
  int64_t ldq = 0;
  int64_t rows = 0;
  const float* bias_u = nullptr;  // rel-pos: the head's pos_bias_u / pos_bias_v [dk]; else null
  const float* bias_v = nullptr;
  int64_t dk = 0;
  float scale = 1.f;
  PackedB keys;    // N = keys, K = dk (2 dk with rel-pos)
  PackedB values;  // K = keys, N = dk
  int64_t key_len = 0;
  bool causal = false;
  int64_t first_query = 0;
  float* out = nullptr;  // [rows, dk], row stride ldo
  int64_t ldo = 0;
};
// Floats of scratch one attention() call needs.
inline int64_t attention_scratch_floats(int64_t rows, int64_t keys_padded, int64_t dk) {
  return rows * (2 * dk + keys_padded + 1) + 64;
}

// The conformer convolution module over frames [t0, t1) of one utterance:
// y[t] = act(norm(b + sum_j w[j] * glu(x[t + j - pad]))), frames outside [0, T_in) being zero
// (or, before frame 0 when causal, glu(left[K - 1 + t]) with a left context, else causal_pad).
struct ConvModuleRows {
  const float* x = nullptr;  // [T, 2D], stride ldx
  int64_t ldx = 0, T = 0, D = 0, t0 = 0, t1 = 0;
  int64_t T_in = 0;             // frames read from x (<= T; the rest read as zeros)
  const float* left = nullptr;  // [K - 1, 2D], stride ldl, or null
  int64_t ldl = 0;
  const float* w_t = nullptr;  // depthwise kernel transposed to [K, D]
  const float* b = nullptr;    // [D]
  int64_t K = 0, pad = 0;
  const float* gamma = nullptr;  // LayerNorm over channels, or null (BatchNorm folded)
  const float* beta = nullptr;
  const float* causal_pad = nullptr;  // [D] or null
  int act = kActNone;
  float* y = nullptr;  // [T, D], stride ldy
  int64_t ldy = 0;
};
inline int64_t conv_module_scratch_floats(int64_t frames, int64_t K, int64_t D) { return (frames + K) * D + 64; }

// Dynamically quantized linear layers (INT8): weights int8 per output channel (symmetric),
// activations uint8 per row (asymmetric), products accumulated in int32 (VNNI where present).
struct PackedInt8 {
  const int8_t* data = nullptr;  // panels of nr columns, k in groups of 4: [p][k/4][nr][4]
  const float* scale = nullptr;  // [N padded] per output channel
  const int32_t* col_sum = nullptr;  // [N padded] sum_k w[n, k] (for the activations' zero point)
  int64_t n = 0, k = 0, k4 = 0;  // k4: K rounded up to a multiple of 4
  int nr = 0;
  int64_t panels() const { return (n + nr - 1) / nr; }
  const int8_t* panel(int64_t p) const { return data + p * k4 * nr; }
};

struct QuantRows {
  const uint8_t* q = nullptr;   // [rows, k4], stride ldq
  int64_t ldq = 0;
  const float* scale = nullptr; // [rows]
  const int32_t* zero = nullptr;  // [rows]
};

// One contiguous piece of an im2col panel row: len floats from src + src_offset to dst_offset.
struct CopyRun {
  int64_t src_offset = 0;
  int dst_offset = 0, len = 0;
};

struct KernelTable {
  const char* name = "";
  int vector_floats = 1;
  // C[0:rows, 0:n_valid] = epilogue(A[0:rows, 0:K] x panel) for one panel of B.
  void (*gemm_panel)(int64_t rows, int64_t K, const float* A, int64_t lda, const float* panel, int nr,
                     int n_valid, float* C, int64_t ldc, const Epilogue& ep) = nullptr;
  void (*attention)(const AttentionHead& a, float* scratch) = nullptr;
  // An im2col panel (k-major rows of nr floats, zero past `cols`): row (c * taps + t) holds
  // src[e * step] for each run, src = tap_base[t] + c * channel_stride + the run's offset.
  // Writes up to 16 floats past the panel.
  void (*im2col_panel)(const float* const* tap_base, int taps, int64_t channels, int64_t channel_stride, int step,
                       const CopyRun* runs, int nruns, int cols, int nr, float* dst) = nullptr;
  void (*deinterleave)(const float* in, int64_t n, int S, float* const* out) = nullptr;
  void (*conv2d_direct)(const float* const* tap_base, int64_t row_stride, int64_t C, int taps, const float* w,
                        const float* b, int64_t o0, int64_t o1, int64_t Ho, int64_t Wo, bool relu, float* y) = nullptr;
  void (*conv_module)(const ConvModuleRows& c, float* scratch) = nullptr;
  // y = LayerNorm(x) per row (eps 1e-5, gamma / beta [D]).
  void (*layer_norm)(const float* x, int64_t ldx, float* y, int64_t ldy, int64_t rows, int64_t D,
                     const float* gamma, const float* beta) = nullptr;
  // log(sum(exp(x[0:n]))) of one row (max, then the sum of exp(x - max)).
  float (*log_sum_exp)(const float* x, int64_t n) = nullptr;
  // y[0:n] = x[0:n] - c.
  void (*sub_const)(const float* x, float c, float* y, int64_t n) = nullptr;
  // Quantizes rows of x to uint8 (per-row scale and zero point), k padded to k4 with zero points.
  void (*quantize_rows)(const float* x, int64_t ldx, int64_t rows, int64_t K, int64_t k4, uint8_t* q,
                        int64_t ldq, float* scale, int32_t* zero) = nullptr;
  // INT8 subsampling conv (kernels/qconv.h): an im2col panel of nr floats per row quantized per
  // column, and all O rows of int8 weights [O][K4] against it.
  void (*quantize_panel)(const float* col, int64_t K, int64_t K4, int nr, uint8_t* q, float* scale,
                         int32_t* zero) = nullptr;
  void (*qconv_panel)(int64_t rows, int64_t K4, const int8_t* wq, const float* sw, const int32_t* rowsum,
                      const uint8_t* panel, int nr, const float* sa, const int32_t* za, int n_valid, float* C,
                      int64_t ldc, const Epilogue& ep) = nullptr;
  void (*qgemm_panel)(int64_t rows, const QuantRows& a, const PackedInt8& w, int64_t p, int n_valid, float* C,
                      int64_t ldc, const Epilogue& ep) = nullptr;
};

// The best table this machine supports; WENET_RT_CPU_ISA=generic|avx2|avx512 picks a lesser one.
const KernelTable& kernels();
const KernelTable* kernels_generic();
const KernelTable* kernels_avx2();    // null where not compiled in or not supported
const KernelTable* kernels_avx512();  // null where not compiled in or not supported

}  // namespace wenet_rt::cpu
