// The float16 attention on tensor cores: the same fusion as attention_rel_pos_online_softmax.cu
// (scores + rel-pos term, masks, online softmax, probabilities x V in one kernel, any Tk), with
// both products on mma.sync m16n8k16 (FP32 accumulation) in the FlashAttention-2 layout.
//
// A block owns 64 queries of one (batch, head), 4 warps of 16 query rows each; key tiles of 64
// keys (and rel-pos rows) are staged in shared memory. The score accumulators of a warp are
// exactly the A fragments of the P x V product, so probabilities never leave registers. Softmax
// statistics are FP32; probabilities and (q + u), (q + v) are rounded to half for the tensor cores.
#include <atomic>

#include "backend/cuda/kernels/attention_key_rows.cuh"
#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/kernels.h"
#include "backend/cuda/kernels/mma.cuh"

namespace wenet_rt::cuda_kernels {
namespace {

constexpr int kBQ = 64, kBK = 64, kThreads = 128;

// The query tile is staged in the key-tile region (its fragments then live in registers).
template <int DK, bool REL>
constexpr size_t smem_bytes() {
  static_assert(kBQ * (REL ? 2 : 1) <= kBK * (REL ? 3 : 2));
  return size_t(kBK * (REL ? 3 : 2)) * (DK + 8) * sizeof(__half);
}

// Keys [k0, k0 + kBK) of an item's head slice into shared memory (stride DK + 8): key j is row
// rows.row(j) of src, or (pos) row rows.pos0 + j; keys >= kend and dims >= dk become 0, so masked
// keys contribute exact zeros.
// How a head slice can be read: 16 bytes at a time (dk % 8 == 0, aligned), 4 bytes (dk even, e.g.
// the 36-dim heads of a 144-dim model), or one half at a time.
enum Loads : int { kScalar = 0, kHalf2 = 1, kVec8 = 2 };

template <int DK, bool POS>
__device__ __forceinline__ void stage_tile(__half* dst, const __half* src, int64_t ld, const AttentionKeyRows& rows,
                                           int k0, int kend, int dk, int loads) {
  constexpr int LDS = DK + 8;
  const auto row = [&](int j) { return POS ? int64_t(rows.pos0 + j) : rows.row(j); };
  if (loads == kVec8) {
    for (int e = threadIdx.x; e < kBK * DK / 8; e += kThreads) {
      const int j = e / (DK / 8), d = (e % (DK / 8)) * 8;
      uint4 v = make_uint4(0, 0, 0, 0);
      if (k0 + j < kend && d < dk) v = *reinterpret_cast<const uint4*>(src + row(k0 + j) * ld + d);
      *reinterpret_cast<uint4*>(dst + j * LDS + d) = v;
    }
  } else if (loads == kHalf2) {  // d < dk implies d + 1 < dk for even dk
    for (int e = threadIdx.x; e < kBK * DK / 2; e += kThreads) {
      const int j = e / (DK / 2), d = (e % (DK / 2)) * 2;
      __half2 v = __float2half2_rn(0.f);
      if (k0 + j < kend && d < dk) v = *reinterpret_cast<const __half2*>(src + row(k0 + j) * ld + d);
      *reinterpret_cast<__half2*>(dst + j * LDS + d) = v;
    }
  } else {
    for (int e = threadIdx.x; e < kBK * DK; e += kThreads) {
      const int j = e / DK, d = e % DK;
      dst[j * LDS + d] = k0 + j < kend && d < dk ? src[row(k0 + j) * ld + d] : __float2half_rn(0.f);
    }
  }
}

template <int DK, bool REL>
__global__ void __launch_bounds__(kThreads) attention_mma_kernel(AttentionParams p, float scale_log2, int loads) {
  pdl_wait_and_trigger();
  constexpr int LDS = DK + 8, KSTEPS = DK / 16, DTILES = DK / 8, NTILES = kBK / 8;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __half* Ks = reinterpret_cast<__half*>(smem_raw);  // [kBK][LDS]
  __half* Ps = Ks + kBK * LDS;                       // [kBK][LDS]  pos rows     (REL only)
  __half* Vs = Ps + (REL ? kBK * LDS : 0);           // [kBK][LDS]
  __half* Qu = Ks;                                   // [kBQ][LDS]  q + u (or q), before the key loop
  __half* Qv = Qu + kBQ * LDS;                       // [kBQ][LDS]  q + v        (REL only)

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, t4 = lane % 4;
  const int q0 = blockIdx.x * kBQ, h = blockIdx.y, bq = blockIdx.z, bk = bq / p.queries_per_kv;
  const int dk = p.dk, Tq = p.Tq;
  const AttentionKeyRows keys = attention_key_rows(p, bk, REL);
  const __half* q = static_cast<const __half*>(p.q) + int64_t(bq) * Tq * p.ldq + h * dk;
  const __half* k = static_cast<const __half*>(p.k) + h * dk;  // key j: row keys.row(j)
  const __half* v = static_cast<const __half*>(p.v) + h * dk;
  const __half* pos = REL ? static_cast<const __half*>(p.pos) + h * dk : nullptr;
  const __half* bias_u = REL ? static_cast<const __half*>(p.bias_u) + h * dk : nullptr;
  const __half* bias_v = REL ? static_cast<const __half*>(p.bias_v) + h * dk : nullptr;
  const int len = keys.len;
  const int kend = p.causal ? min(len, q0 + kBQ) : len;  // keys any row of this block may see

  // Stage the query tile (+ u, v) as half, 8 dims per step.
  for (int e = tid; e < kBQ * DK / 8; e += kThreads) {
    const int r = e / (DK / 8), d0 = (e % (DK / 8)) * 8;
    float x[8] = {};
    if (q0 + r < Tq && d0 < dk) {
      const __half* src = q + int64_t(q0 + r) * p.ldq + d0;
      if (loads == kVec8) {
        const uint4 raw = *reinterpret_cast<const uint4*>(src);
        const __half* hv = reinterpret_cast<const __half*>(&raw);
#pragma unroll
        for (int i = 0; i < 8; ++i) x[i] = __half2float(hv[i]);
      } else {
#pragma unroll
        for (int i = 0; i < 8; ++i) x[i] = d0 + i < dk ? __half2float(src[i]) : 0.f;
      }
    }
    uint4 u_out, v_out;
    __half* hu = reinterpret_cast<__half*>(&u_out);
    __half* hvv = reinterpret_cast<__half*>(&v_out);
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const bool in = q0 + r < Tq && d0 + i < dk;
      float bu = 0.f, bv = 0.f;
      if constexpr (REL) {
        if (in) bu = __half2float(bias_u[d0 + i]), bv = __half2float(bias_v[d0 + i]);
      }
      hu[i] = __float2half_rn(in ? x[i] + bu : 0.f);
      if constexpr (REL) hvv[i] = __float2half_rn(in ? x[i] + bv : 0.f);
    }
    *reinterpret_cast<uint4*>(Qu + r * LDS + d0) = u_out;
    if constexpr (REL) *reinterpret_cast<uint4*>(Qv + r * LDS + d0) = v_out;
  }
  __syncthreads();
  uint32_t qa[KSTEPS][4], qb[REL ? KSTEPS : 1][4];
#pragma unroll
  for (int kk = 0; kk < KSTEPS; ++kk) {
    ldmatrix_x4(qa[kk], Qu + (warp * 16 + lane % 16) * LDS + kk * 16 + (lane / 16) * 8);
    if constexpr (REL) ldmatrix_x4(qb[kk], Qv + (warp * 16 + lane % 16) * LDS + kk * 16 + (lane / 16) * 8);
  }

  float o[DTILES][4];
#pragma unroll
  for (int dt = 0; dt < DTILES; ++dt) o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  const int row0 = q0 + warp * 16 + g;  // this thread's rows: row0 and row0 + 8

  for (int k0 = 0; k0 < kend; k0 += kBK) {
    __syncthreads();  // the previous tile's readers are done
    stage_tile<DK, false>(Ks, k, p.ldk, keys, k0, kend, dk, loads);
    stage_tile<DK, false>(Vs, v, p.ldv, keys, k0, kend, dk, loads);
    if constexpr (REL) stage_tile<DK, true>(Ps, pos, p.ldp, keys, k0, kend, dk, loads);
    __syncthreads();
    const int kn = min(kBK, kend - k0);

    float s[NTILES][4];
#pragma unroll
    for (int nt = 0; nt < NTILES; ++nt) {
      s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
      if (nt * 8 >= kn) continue;  // all masked below
#pragma unroll
      for (int kk = 0; kk < KSTEPS; kk += 2) {
        uint32_t b[4];
        ldmatrix_x4(b, Ks + (nt * 8 + lane % 8) * LDS + kk * 16 + (lane / 8) * 8);
        mma_16816(s[nt], qa[kk], b[0], b[1]);
        mma_16816(s[nt], qa[kk + 1], b[2], b[3]);
        if constexpr (REL) {
          ldmatrix_x4(b, Ps + (nt * 8 + lane % 8) * LDS + kk * 16 + (lane / 8) * 8);
          mma_16816(s[nt], qb[kk], b[0], b[1]);
          mma_16816(s[nt], qb[kk + 1], b[2], b[3]);
        }
      }
    }

#pragma unroll
    for (int nt = 0; nt < NTILES; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int col = k0 + nt * 8 + 2 * t4 + (e & 1), row = row0 + (e >> 1) * 8;
        const bool visible = col < kend && (!p.causal || col <= row);
        s[nt][e] = visible ? s[nt][e] * scale_log2 : -INFINITY;
      }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx = -INFINITY;
#pragma unroll
      for (int nt = 0; nt < NTILES; ++nt) mx = fmaxf(mx, fmaxf(s[nt][2 * r], s[nt][2 * r + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_new = fmaxf(m[r], mx);
      const bool none = m_new == -INFINITY;  // nothing visible yet: keep zeros, avoid inf - inf
      const float alpha = none ? 1.f : exp2f(m[r] - m_new);
      float sum = 0.f;
#pragma unroll
      for (int nt = 0; nt < NTILES; ++nt)
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          const float pv = none ? 0.f : exp2f(s[nt][2 * r + c] - m_new);
          s[nt][2 * r + c] = pv;
          sum += pv;
        }
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      l[r] = l[r] * alpha + sum;
      m[r] = m_new;
#pragma unroll
      for (int dt = 0; dt < DTILES; ++dt) o[dt][2 * r] *= alpha, o[dt][2 * r + 1] *= alpha;
    }

#pragma unroll
    for (int kk = 0; kk < kBK / 16; ++kk) {
      if (kk * 16 >= kn) continue;  // probabilities there are 0
      const uint32_t a[4] = {pack_half2(s[2 * kk][0], s[2 * kk][1]), pack_half2(s[2 * kk][2], s[2 * kk][3]),
                             pack_half2(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                             pack_half2(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int dt = 0; dt < DTILES; dt += 2) {
        uint32_t b[4];
        ldmatrix_x4_trans(b, Vs + (kk * 16 + lane % 8 + ((lane / 8) % 2) * 8) * LDS + (dt + lane / 16) * 8);
        mma_16816(o[dt], a, b[0], b[1]);
        mma_16816(o[dt + 1], a, b[2], b[3]);
      }
    }
  }

  __half* out = static_cast<__half*>(p.out) + int64_t(bq) * Tq * p.ldo + h * dk;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = row0 + 8 * r;
    if (row >= Tq) continue;
    const float inv = l[r] > 0.f ? 1.f / l[r] : 0.f;  // fully masked row -> 0
#pragma unroll
    for (int dt = 0; dt < DTILES; ++dt)
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const int d = dt * 8 + 2 * t4 + c;
        if (d < dk) out[int64_t(row) * p.ldo + d] = __float2half_rn(o[dt][2 * r + c] * inv);
      }
  }
}

template <int DK, bool REL>
void launch(const AttentionParams& p, KernelStream stream) {
  constexpr size_t smem = smem_bytes<DK, REL>();
  static std::atomic<bool> opted_in[64];  // above 48 KB a kernel must opt in, once per device
  int device = 0;
  cudaGetDevice(&device);
  if (smem > 48 * 1024 && device < 64 && !opted_in[device].load()) {
    if (cudaFuncSetAttribute(attention_mma_kernel<DK, REL>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)) !=
        cudaSuccess)
      return;  // the error stays pending for the caller's cudaGetLastError()
    opted_in[device] = true;
  }
  const auto aligned_to = [&](int elems) {
    const uintptr_t bytes = uintptr_t(elems) * 2 - 1;
    return p.dk % elems == 0 && (reinterpret_cast<uintptr_t>(p.q) & bytes) == 0 &&
           (reinterpret_cast<uintptr_t>(p.k) & bytes) == 0 && (reinterpret_cast<uintptr_t>(p.v) & bytes) == 0 &&
           p.ldq % elems == 0 && p.ldk % elems == 0 && p.ldv % elems == 0 &&
           (!REL || ((reinterpret_cast<uintptr_t>(p.pos) & bytes) == 0 && p.ldp % elems == 0));
  };
  const int loads = aligned_to(8) ? kVec8 : aligned_to(2) ? kHalf2 : kScalar;
  const dim3 grid(unsigned((p.Tq + kBQ - 1) / kBQ), unsigned(p.heads), unsigned(p.Bq));
  const float scale_log2 = 1.4426950408889634f / sqrtf(float(p.dk));
  launch_kernel(stream, attention_mma_kernel<DK, REL>, grid, kThreads, smem, p, scale_log2, loads);
}

template <bool REL>
void launch_dk(const AttentionParams& p, KernelStream stream) {
  if (p.dk <= 32) launch<32, REL>(p, stream);
  else if (p.dk <= 64) launch<64, REL>(p, stream);
  else launch<128, REL>(p, stream);
}

}  // namespace

void attention_rel_pos_online_softmax_f16_mma(const AttentionParams& p, KernelStream stream) {
  if (p.Bq == 0 || p.Tq == 0 || p.heads == 0) return;
  if (p.pos) launch_dk<true>(p, stream);
  else launch_dk<false>(p, stream);
}

}  // namespace wenet_rt::cuda_kernels
