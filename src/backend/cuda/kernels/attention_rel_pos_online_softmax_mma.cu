// The float16 attention on tensor cores: the same fusion as attention_rel_pos_online_softmax.cu
// (scores + rel-pos term, masks, online softmax, probabilities x V in one kernel, any Tk), with
// both products on mma.sync m16n8k16 (FP32 accumulation) in the FlashAttention-2 layout.
//
// A block's 4 warps are (4 / KG) query groups of 16 rows x KG key groups; key tiles of 64 keys
// (and rel-pos rows) are staged in shared memory and each warp takes its key group's 64 / KG keys
// of every tile. The score accumulators of a warp are exactly the A fragments of the P x V
// product, so probabilities never leave registers. With KG > 1 the warps' partial softmax states
// are merged through shared memory at the end: the choice for grids too small to fill the GPU,
// where one warp per scheduler walking all 64 keys of 16 rows was the whole critical path (ncu at
// 1 x 256 frames: ~7 us per block, the SMs 80% of cycles without an eligible warp). Softmax
// statistics are FP32; probabilities and (q + u), (q + v) are rounded to half for the tensor cores.
// The queries and the first key tile are copied with cp.async all at once, and u / v are added to
// the query fragments in registers.

#include "backend/cuda/kernels/attention_key_rows.cuh"
#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/kernels.h"
#include "backend/cuda/kernels/mma.cuh"

namespace wenet_rt::cuda_kernels {
namespace {

constexpr int kBK = 64, kThreads = 128, kWarps = kThreads / 32;

// Key, value (and rel-pos) tiles, then the query tile; the merge of KG > 1 reuses the tiles.
template <int DK, bool REL, int KG>
constexpr size_t smem_bytes() {
  constexpr int kBQ = 16 * (kWarps / KG);
  static_assert(kWarps * (DK / 8) * 4 * 32 * 4 + kWarps * 4 * 32 * 4 <= kBK * (REL ? 3 : 2) * (DK + 8) * 2,
                "the merge's partials fit in the key tiles");
  return size_t(kBK * (REL ? 3 : 2) + kBQ) * (DK + 8) * sizeof(__half);
}

// Keys [k0, k0 + kBK) of an item's head slice into shared memory (stride DK + 8): key j is row
// rows.row(j) of src, or (pos) row rows.pos0 + j; keys >= kend and dims >= dk become 0, so masked
// keys contribute exact zeros. The 16-byte path copies asynchronously: cp_async_wait_all() and a
// barrier before the tile is read.
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
      if (k0 + j < kend && d < dk) cp_async_16(dst + j * LDS + d, src + row(k0 + j) * ld + d);
      else *reinterpret_cast<uint4*>(dst + j * LDS + d) = make_uint4(0, 0, 0, 0);
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

template <int DK, bool REL, int KG>
__global__ void __launch_bounds__(kThreads) attention_mma_kernel(AttentionParams p, float scale_log2, int loads) {
  constexpr int LDS = DK + 8, KSTEPS = DK / 16, DTILES = DK / 8;
  constexpr int kBQ = 16 * (kWarps / KG), kKeys = kBK / KG, NTILES = kKeys / 8, PSTEPS = kKeys / 16;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __half* Ks = reinterpret_cast<__half*>(smem_raw);  // [kBK][LDS]
  __half* Ps = Ks + kBK * LDS;                       // [kBK][LDS]  pos rows     (REL only)
  __half* Vs = Ps + (REL ? kBK * LDS : 0);           // [kBK][LDS]
  __half* Qs = Vs + kBK * LDS;                       // [kBQ][LDS]  queries as they are

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, t4 = lane % 4;
  const int qg = warp / KG, kw = (warp % KG) * kKeys;  // this warp's 16 query rows and first key of a tile
  const int q0 = blockIdx.x * kBQ, h = blockIdx.y, bq = blockIdx.z, bk = bq / p.queries_per_kv;
  const int dk = p.dk, Tq = p.Tq;

  // u and v (model parameters, which no kernel writes: read before the PDL wait) for this lane's
  // query fragment columns 16 kk + 2 t4 (+ 1) and + 8; zero past dk.
  __half2 bu[REL ? KSTEPS : 1][2], bv[REL ? KSTEPS : 1][2];
  if constexpr (REL) {
    const __half* bias_u = static_cast<const __half*>(p.bias_u) + h * dk;
    const __half* bias_v = static_cast<const __half*>(p.bias_v) + h * dk;
    const __half zero = __float2half_rn(0.f);
#pragma unroll
    for (int kk = 0; kk < KSTEPS; ++kk)
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const int d = kk * 16 + 2 * t4 + 8 * c;
        bu[kk][c] = __halves2half2(d < dk ? bias_u[d] : zero, d + 1 < dk ? bias_u[d + 1] : zero);
        bv[kk][c] = __halves2half2(d < dk ? bias_v[d] : zero, d + 1 < dk ? bias_v[d + 1] : zero);
      }
  }
  pdl_wait_and_trigger();

  const AttentionKeyRows keys = attention_key_rows(p, bk, REL);
  const __half* q = static_cast<const __half*>(p.q) + int64_t(bq) * Tq * p.ldq + h * dk;
  const __half* k = static_cast<const __half*>(p.k) + h * dk;  // key j: row keys.row(j)
  const __half* v = static_cast<const __half*>(p.v) + h * dk;
  const __half* pos = REL ? static_cast<const __half*>(p.pos) + h * dk : nullptr;
  const int len = keys.len;
  const int kend = p.causal ? min(len, q0 + kBQ) : len;  // keys any row of this block may see

  // The query tile (rows past Tq and dims past dk as zeros) and the first key tile, all in flight.
  for (int e = tid; e < kBQ * DK / 8; e += kThreads) {
    const int r = e / (DK / 8), d0 = (e % (DK / 8)) * 8;
    __half* dst = Qs + r * LDS + d0;
    const __half* src = q + int64_t(q0 + r) * p.ldq + d0;
    if (loads == kVec8 && q0 + r < Tq && d0 < dk) {
      cp_async_16(dst, src);
    } else {
#pragma unroll
      for (int i = 0; i < 8; ++i) dst[i] = q0 + r < Tq && d0 + i < dk ? src[i] : __float2half_rn(0.f);
    }
  }
  stage_tile<DK, false>(Ks, k, p.ldk, keys, 0, kend, dk, loads);
  stage_tile<DK, false>(Vs, v, p.ldv, keys, 0, kend, dk, loads);
  if constexpr (REL) stage_tile<DK, true>(Ps, pos, p.ldp, keys, 0, kend, dk, loads);
  cp_async_wait_all();
  __syncthreads();
  // Query fragments: q + u for the content scores, q + v for the position scores.
  uint32_t qa[KSTEPS][4], qb[REL ? KSTEPS : 1][4];
#pragma unroll
  for (int kk = 0; kk < KSTEPS; ++kk) {
    ldmatrix_x4(qa[kk], Qs + (qg * 16 + lane % 16) * LDS + kk * 16 + (lane / 16) * 8);
    if constexpr (REL) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {  // a0 / a1: columns 2 t4 (+ 1), a2 / a3: + 8
        const __half2 raw = *reinterpret_cast<const __half2*>(&qa[kk][i]);
        const __half2 with_u = __hadd2(raw, bu[kk][i / 2]), with_v = __hadd2(raw, bv[kk][i / 2]);
        qa[kk][i] = *reinterpret_cast<const uint32_t*>(&with_u);
        qb[kk][i] = *reinterpret_cast<const uint32_t*>(&with_v);
      }
    }
  }

  float o[DTILES][4];
#pragma unroll
  for (int dt = 0; dt < DTILES; ++dt) o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  const int row0 = q0 + qg * 16 + g;  // this thread's rows: row0 and row0 + 8

  for (int k0 = 0; k0 < kend; k0 += kBK) {
    if (k0 > 0) {  // the first tile came with the queries
      __syncthreads();  // the previous tile's readers are done
      stage_tile<DK, false>(Ks, k, p.ldk, keys, k0, kend, dk, loads);
      stage_tile<DK, false>(Vs, v, p.ldv, keys, k0, kend, dk, loads);
      if constexpr (REL) stage_tile<DK, true>(Ps, pos, p.ldp, keys, k0, kend, dk, loads);
      cp_async_wait_all();
      __syncthreads();
    }
    const int kn = min(kBK, kend - k0);

    float s[NTILES][4];
#pragma unroll
    for (int nt = 0; nt < NTILES; ++nt) {
      s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
      const int j0 = kw + nt * 8;  // the tile's first key of this n-tile
      if (j0 >= kn) continue;      // all masked below
#pragma unroll
      for (int kk = 0; kk < KSTEPS; kk += 2) {
        uint32_t b[4];
        ldmatrix_x4(b, Ks + (j0 + lane % 8) * LDS + kk * 16 + (lane / 8) * 8);
        mma_16816(s[nt], qa[kk], b[0], b[1]);
        mma_16816(s[nt], qa[kk + 1], b[2], b[3]);
        if constexpr (REL) {
          ldmatrix_x4(b, Ps + (j0 + lane % 8) * LDS + kk * 16 + (lane / 8) * 8);
          mma_16816(s[nt], qb[kk], b[0], b[1]);
          mma_16816(s[nt], qb[kk + 1], b[2], b[3]);
        }
      }
    }

#pragma unroll
    for (int nt = 0; nt < NTILES; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int col = k0 + kw + nt * 8 + 2 * t4 + (e & 1), row = row0 + (e >> 1) * 8;
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
    for (int kk = 0; kk < PSTEPS; ++kk) {
      const int j0 = kw + kk * 16;
      if (j0 >= kn) continue;  // probabilities there are 0
      const uint32_t a[4] = {pack_half2(s[2 * kk][0], s[2 * kk][1]), pack_half2(s[2 * kk][2], s[2 * kk][3]),
                             pack_half2(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                             pack_half2(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int dt = 0; dt < DTILES; dt += 2) {
        uint32_t b[4];
        ldmatrix_x4_trans(b, Vs + (j0 + lane % 8 + ((lane / 8) % 2) * 8) * LDS + (dt + lane / 16) * 8);
        mma_16816(o[dt], a, b[0], b[1]);
        mma_16816(o[dt + 1], a, b[2], b[3]);
      }
    }
  }

  // This thread's two values of row row0 + 8 r at d-tile dt.
  __half* out = static_cast<__half*>(p.out) + int64_t(bq) * Tq * p.ldo + h * dk;
  const auto store = [&](int r, int dt, float v0, float v1) {
    const int row = row0 + 8 * r, d = dt * 8 + 2 * t4;
    if (row >= Tq) return;
    if (d < dk) out[int64_t(row) * p.ldo + d] = __float2half_rn(v0);
    if (d + 1 < dk) out[int64_t(row) * p.ldo + d + 1] = __float2half_rn(v1);
  };
  if constexpr (KG == 1) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const float inv = l[r] > 0.f ? 1.f / l[r] : 0.f;  // fully masked row -> 0
#pragma unroll
      for (int dt = 0; dt < DTILES; ++dt) store(r, dt, o[dt][2 * r] * inv, o[dt][2 * r + 1] * inv);
    }
  } else {
    // Merge the KG partial states of a query group: every warp of the group holds the same rows
    // and columns in the same lanes, so the merge is element-wise over warps; warp kg of the group
    // finishes d-tiles [kg * DTILES / KG, + DTILES / KG).
    static_assert(DTILES % KG == 0);
    __syncthreads();  // every warp is done with the tiles
    float* part = reinterpret_cast<float*>(smem_raw);  // [kWarps][DTILES][4][32]
    float* stat = part + kWarps * DTILES * 4 * 32;      // [kWarps][4][32]: m0, m1, l0, l1
#pragma unroll
    for (int dt = 0; dt < DTILES; ++dt)
#pragma unroll
      for (int e = 0; e < 4; ++e) part[((warp * DTILES + dt) * 4 + e) * 32 + lane] = o[dt][e];
    stat[(warp * 4 + 0) * 32 + lane] = m[0];
    stat[(warp * 4 + 1) * 32 + lane] = m[1];
    stat[(warp * 4 + 2) * 32 + lane] = l[0];
    stat[(warp * 4 + 3) * 32 + lane] = l[1];
    __syncthreads();
    const int first = qg * KG, share = DTILES / KG, dt0 = (warp % KG) * share;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx = -INFINITY;
#pragma unroll
      for (int j = 0; j < KG; ++j) mx = fmaxf(mx, stat[((first + j) * 4 + r) * 32 + lane]);
      float w[KG], total = 0.f;
#pragma unroll
      for (int j = 0; j < KG; ++j) {
        const float mj = stat[((first + j) * 4 + r) * 32 + lane];
        w[j] = mj == -INFINITY ? 0.f : exp2f(mj - mx);
        total += w[j] * stat[((first + j) * 4 + 2 + r) * 32 + lane];
      }
      const float inv = total > 0.f ? 1.f / total : 0.f;  // fully masked row -> 0
#pragma unroll
      for (int i = 0; i < share; ++i) {
        const int dt = dt0 + i;
        float v0 = 0.f, v1 = 0.f;
#pragma unroll
        for (int j = 0; j < KG; ++j) {
          v0 += w[j] * part[(((first + j) * DTILES + dt) * 4 + 2 * r) * 32 + lane];
          v1 += w[j] * part[(((first + j) * DTILES + dt) * 4 + 2 * r + 1) * 32 + lane];
        }
        store(r, dt, v0 * inv, v1 * inv);
      }
    }
  }
}

template <int DK, bool REL, int KG>
void launch(const AttentionParams& p, KernelStream stream) {
  constexpr size_t smem = smem_bytes<DK, REL, KG>();
  if (!opt_in_dynamic_smem(attention_mma_kernel<DK, REL, KG>, smem)) return;
  const auto aligned_to = [&](int elems) {
    const uintptr_t bytes = uintptr_t(elems) * 2 - 1;
    return p.dk % elems == 0 && (reinterpret_cast<uintptr_t>(p.q) & bytes) == 0 &&
           (reinterpret_cast<uintptr_t>(p.k) & bytes) == 0 && (reinterpret_cast<uintptr_t>(p.v) & bytes) == 0 &&
           p.ldq % elems == 0 && p.ldk % elems == 0 && p.ldv % elems == 0 &&
           (!REL || ((reinterpret_cast<uintptr_t>(p.pos) & bytes) == 0 && p.ldp % elems == 0));
  };
  const int loads = aligned_to(8) ? kVec8 : aligned_to(2) ? kHalf2 : kScalar;
  constexpr int kBQ = 16 * (kWarps / KG);
  const dim3 grid(unsigned((p.Tq + kBQ - 1) / kBQ), unsigned(p.heads), unsigned(p.Bq));
  const float scale_log2 = 1.4426950408889634f / sqrtf(float(p.dk));
  launch_kernel(stream, attention_mma_kernel<DK, REL, KG>, grid, kThreads, smem, p, scale_log2, loads);
}

template <int DK, bool REL>
void launch_kg(const AttentionParams& p, KernelStream stream) {
  // Shorter chains per warp where the grid is small, fewer re-reads of the same keys where it is
  // large. H200, decoder: at 160 blocks of 64 (batch 4) KG 2 beat KG 1 (4x256 0.447 -> 0.432 ms)
  // and KG 4 lost (0.478); at 640 (batch 16) KG 1 won (16x256 1.024, KG 2 1.05, KG 4 1.18).
  const int64_t blocks = int64_t((p.Tq + 63) / 64) * p.heads * p.Bq;
  const int sms = device_limits(current_device()).sms;
  if (blocks >= 4 * sms) launch<DK, REL, 1>(p, stream);
  else if (blocks >= sms) launch<DK, REL, 2>(p, stream);
  else launch<DK, REL, 4>(p, stream);
}

template <bool REL>
void launch_dk(const AttentionParams& p, KernelStream stream) {
  if (p.dk <= 32) launch_kg<32, REL>(p, stream);
  else if (p.dk <= 64) launch_kg<64, REL>(p, stream);
  else launch_kg<128, REL>(p, stream);
}

}  // namespace

void attention_rel_pos_online_softmax_f16_mma(const AttentionParams& p, KernelStream stream) {
  if (p.Bq == 0 || p.Tq == 0 || p.heads == 0) return;
  if (p.pos) launch_dk<true>(p, stream);
  else launch_dk<false>(p, stream);
}

}  // namespace wenet_rt::cuda_kernels
