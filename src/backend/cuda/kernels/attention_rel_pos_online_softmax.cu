// The whole attention in one kernel (flash-style): per (query tile, head, batch) block, loop over
// key tiles; scores = ((q + u) k^T [+ (q + v) p^T]) / sqrt(dk) in FP32, key-length and causal
// masks, online softmax (running max / sum, rescaling the output accumulator), probabilities x V.
// The score matrix never reaches global memory, so any Tk works (tiles of 64 keys). Hypothesis
// b*N+i reads the K/V of utterance b (queries_per_kv = N). Rows with no visible key output 0.
//
// Tile layout (128 threads): thread (ty = tid / 16, tx = tid % 16) owns query rows 4*ty .. 4*ty+3,
// key columns tx + 16c of the score tile and output dims tx + 16c. Row statistics are reduced over
// the 16 lanes sharing ty (one half-warp). Tiles live in shared memory as FP32, rows padded by one
// word so that column walks do not collide in banks. Head dims below the template size are zero
// padded, which leaves every dot product unchanged.

#include "backend/cuda/kernels/attention_key_rows.cuh"
#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/kernels.h"

namespace wenet_rt::cuda_kernels {
namespace {

constexpr int kTQ = 32, kTK = 64, kThreads = 128, kRowsPerThread = 4, kColsPerThread = kTK / 16;

template <int DK, bool REL>
constexpr int smem_floats() {
  constexpr int ld = DK + 1;
  return kTQ * ld * (REL ? 2 : 1) + kTK * ld * (REL ? 3 : 2) + kTQ * (kTK + 1);
}

__device__ __forceinline__ float half_warp_max(float v) {
#pragma unroll
  for (int o = 8; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float half_warp_sum(float v) {
#pragma unroll
  for (int o = 8; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

template <typename T, int DK, bool REL>
__global__ void __launch_bounds__(kThreads) attention_kernel(AttentionParams p, float scale_log2) {
  pdl_wait_and_trigger();
  constexpr int LD = DK + 1, SLD = kTK + 1, kDimsPerThread = DK / 16;
  extern __shared__ float smem[];
  float* Qu = smem;                         // [kTQ][LD]  (q + u) * scale * log2(e)
  float* Qv = Qu + kTQ * LD;                // [kTQ][LD]  (q + v) * ...   (REL only)
  float* Ks = Qv + (REL ? kTQ * LD : 0);    // [kTK][LD]
  float* Ps = Ks + kTK * LD;                // [kTK][LD]  (REL only)
  float* Vs = Ps + (REL ? kTK * LD : 0);    // [kTK][LD]
  float* S = Vs + kTK * LD;                 // [kTQ][SLD] probabilities of the current tile

  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int q0 = blockIdx.x * kTQ, h = blockIdx.y, bq = blockIdx.z, bk = bq / p.queries_per_kv;
  const int dk = p.dk, Tq = p.Tq;
  const AttentionKeyRows keys = attention_key_rows(p, bk, REL);
  const T* q = static_cast<const T*>(p.q) + int64_t(bq) * Tq * p.ldq + h * dk;
  const T* k = static_cast<const T*>(p.k) + h * dk;  // key j: row keys.row(j)
  const T* v = static_cast<const T*>(p.v) + h * dk;
  const T* pos = REL ? static_cast<const T*>(p.pos) + h * dk : nullptr;
  const T* bias_u = REL ? static_cast<const T*>(p.bias_u) + h * dk : nullptr;
  const T* bias_v = REL ? static_cast<const T*>(p.bias_v) + h * dk : nullptr;
  const int len = keys.len;
  const int kend = p.causal ? min(len, q0 + kTQ) : len;  // keys any row of this tile may see

  for (int e = tid; e < kTQ * DK; e += kThreads) {
    const int r = e / DK, d = e % DK;
    float x = 0.f, bu = 0.f, bv = 0.f;
    if (q0 + r < Tq && d < dk) {
      x = to_float(q[int64_t(q0 + r) * p.ldq + d]);
      if constexpr (REL) bu = to_float(bias_u[d]), bv = to_float(bias_v[d]);
    }
    Qu[r * LD + d] = (x + bu) * scale_log2;
    if constexpr (REL) Qv[r * LD + d] = (x + bv) * scale_log2;
  }

  float m[kRowsPerThread], l[kRowsPerThread], acc[kRowsPerThread][kDimsPerThread];
#pragma unroll
  for (int i = 0; i < kRowsPerThread; ++i) {
    m[i] = -INFINITY;
    l[i] = 0.f;
#pragma unroll
    for (int c = 0; c < kDimsPerThread; ++c) acc[i][c] = 0.f;
  }

  for (int k0 = 0; k0 < kend; k0 += kTK) {
    __syncthreads();  // the previous tile's readers are done; orders the Q tile on the first pass
    for (int e = tid; e < kTK * DK; e += kThreads) {
      const int j = e / DK, d = e % DK;
      const bool ok = k0 + j < kend && d < dk;  // masked keys load as 0: no stray NaN reaches 0 * v
      const int64_t row = ok ? keys.row(k0 + j) : 0;
      Ks[j * LD + d] = ok ? to_float(k[row * p.ldk + d]) : 0.f;
      Vs[j * LD + d] = ok ? to_float(v[row * p.ldv + d]) : 0.f;
      if constexpr (REL) Ps[j * LD + d] = ok ? to_float(pos[int64_t(keys.pos0 + k0 + j) * p.ldp + d]) : 0.f;
    }
    __syncthreads();

    float s[kRowsPerThread][kColsPerThread];
#pragma unroll
    for (int i = 0; i < kRowsPerThread; ++i)
#pragma unroll
      for (int c = 0; c < kColsPerThread; ++c) s[i][c] = 0.f;
#pragma unroll 8
    for (int d = 0; d < DK; ++d) {
      float kk[kColsPerThread], pp[kColsPerThread];
#pragma unroll
      for (int c = 0; c < kColsPerThread; ++c) {
        kk[c] = Ks[(tx + 16 * c) * LD + d];
        if constexpr (REL) pp[c] = Ps[(tx + 16 * c) * LD + d];
      }
#pragma unroll
      for (int i = 0; i < kRowsPerThread; ++i) {
        const float a = Qu[(ty * kRowsPerThread + i) * LD + d];
#pragma unroll
        for (int c = 0; c < kColsPerThread; ++c) s[i][c] += a * kk[c];
        if constexpr (REL) {
          const float b = Qv[(ty * kRowsPerThread + i) * LD + d];
#pragma unroll
          for (int c = 0; c < kColsPerThread; ++c) s[i][c] += b * pp[c];
        }
      }
    }

#pragma unroll
    for (int i = 0; i < kRowsPerThread; ++i) {
      const int r = ty * kRowsPerThread + i, qi = q0 + r;
      float tile_max = -INFINITY;
#pragma unroll
      for (int c = 0; c < kColsPerThread; ++c) {
        const int j = k0 + tx + 16 * c;
        const bool visible = j < kend && (!p.causal || j <= qi);
        if (!visible) s[i][c] = -INFINITY;
        tile_max = fmaxf(tile_max, s[i][c]);
      }
      tile_max = half_warp_max(tile_max);
      const float m_new = fmaxf(m[i], tile_max);
      float alpha = 1.f, row_sum = 0.f;
      if (m_new != -INFINITY) {  // else: nothing visible yet, keep zeros (and avoid inf - inf)
        alpha = exp2f(m[i] - m_new);
#pragma unroll
        for (int c = 0; c < kColsPerThread; ++c) {
          s[i][c] = exp2f(s[i][c] - m_new);
          row_sum += s[i][c];
        }
      } else {
#pragma unroll
        for (int c = 0; c < kColsPerThread; ++c) s[i][c] = 0.f;
      }
      row_sum = half_warp_sum(row_sum);
      l[i] = l[i] * alpha + row_sum;
      m[i] = m_new;
#pragma unroll
      for (int c = 0; c < kDimsPerThread; ++c) acc[i][c] *= alpha;
#pragma unroll
      for (int c = 0; c < kColsPerThread; ++c) S[r * SLD + tx + 16 * c] = s[i][c];
    }
    __syncthreads();

    const int jn = min(kTK, kend - k0);
    for (int j = 0; j < jn; ++j) {
      float vv[kDimsPerThread];
#pragma unroll
      for (int c = 0; c < kDimsPerThread; ++c) vv[c] = Vs[j * LD + tx + 16 * c];
#pragma unroll
      for (int i = 0; i < kRowsPerThread; ++i) {
        const float pij = S[(ty * kRowsPerThread + i) * SLD + j];
#pragma unroll
        for (int c = 0; c < kDimsPerThread; ++c) acc[i][c] += pij * vv[c];
      }
    }
  }

  T* out = static_cast<T*>(p.out) + int64_t(bq) * Tq * p.ldo + h * dk;
#pragma unroll
  for (int i = 0; i < kRowsPerThread; ++i) {
    const int qi = q0 + ty * kRowsPerThread + i;
    if (qi >= Tq) continue;
    const float inv = l[i] > 0.f ? 1.f / l[i] : 0.f;  // fully masked row -> 0
#pragma unroll
    for (int c = 0; c < kDimsPerThread; ++c) {
      const int d = tx + 16 * c;
      if (d < dk) out[int64_t(qi) * p.ldo + d] = from_float<T>(acc[i][c] * inv);
    }
  }
}

template <typename T, int DK, bool REL>
void launch(const AttentionParams& p, KernelStream stream) {
  constexpr size_t smem = smem_floats<DK, REL>() * sizeof(float);
  if (!opt_in_dynamic_smem(attention_kernel<T, DK, REL>, smem)) return;
  const dim3 grid(unsigned((p.Tq + kTQ - 1) / kTQ), unsigned(p.heads), unsigned(p.Bq));
  const float scale_log2 = 1.4426950408889634f / sqrtf(float(p.dk));
  launch_kernel(stream, attention_kernel<T, DK, REL>, grid, kThreads, smem, p, scale_log2);
}

template <typename T, bool REL>
void launch_dk(const AttentionParams& p, KernelStream stream) {
  if (p.dk <= 32) launch<T, 32, REL>(p, stream);
  else if (p.dk <= 64) launch<T, 64, REL>(p, stream);
  else launch<T, 128, REL>(p, stream);
}

}  // namespace

void attention_rel_pos_online_softmax(const AttentionParams& p, bool f16, KernelStream stream) {
  if (p.Bq == 0 || p.Tq == 0 || p.heads == 0) return;
  if (f16) {
    attention_rel_pos_online_softmax_f16_mma(p, stream);
    return;
  }
  dispatch_type(f16, [&](auto t) {
    using E = decltype(t);
    if (p.pos) launch_dk<E, true>(p, stream);
    else launch_dk<E, false>(p, stream);
  });
}

}  // namespace wenet_rt::cuda_kernels
