// Projection + log-softmax + gather in one float16 kernel, for attention rescoring:
// out[m] = log_softmax(x[m] W^T + b)[targets[m]] over the first `vocab` outputs, without writing the
// [M, vocab] logits (at the decoder's 10^5 rows x 4233 that is 0.85 GB of float16 logits written
// and read again, plus 1.7 GB of float32 log-probs).
//
// A block owns 128 rows of x, copied once into shared memory (cp.async, all of K <= 256), and
// walks the vocabulary in 128-column tiles of W, streamed through a 4-stage cp.async pipeline in
// 32-wide K slices. 8 warps, 4 x 2, each computing 32 rows x 64 columns of a tile on mma.sync
// (FP32 accumulators). After a tile's last K slice, each thread folds its 64 logits (+ bias;
// columns >= vocab are -inf) into an online max / sum-exp per row in FP32, and keeps the target's
// logit when the tile holds it. At the end the per-thread states merge across the quad (shuffles)
// and the two column warps (shared memory), and out[m] = target logit - log-sum-exp. Two blocks
// share a SM. When the row tiles are too few to fill the GPU, the vocabulary is split over several
// blocks, which write partial (max, sum-exp, target logit) triples that a small kernel merges
// (make_plan).
//
// H200, vocab 4233 (W padded to 4240), against cuBLASLt GEMM + log_softmax: K 256, 10^5 rows
// 0.98 ms (1.41), 10^4 rows 0.13 ms (0.17), 10^3 rows 0.034 ms (0.032); K 144, 10^5 rows 0.69 ms
// (1.44). Larger K (512: 2.0 ms against 1.7) goes to the fallback (cuda_backend.cc), as do float32
// and unaligned operands: cuBLASLt logits for a chunk of rows, reduced by log_softmax_gather_rows
// below.
#include <algorithm>

#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/kernels.h"
#include "backend/cuda/kernels/mma.cuh"
#include "backend/cuda/kernels/row_log_sum_exp.cuh"

namespace wenet_rt::cuda_kernels {
namespace {

constexpr int kBN = 128;                       // columns of a vocabulary tile
constexpr int kWarpRows = 32, kWarpCols = 64;  // a warp's part of a tile; two warps span kBN
constexpr int kMaxK = 256;
constexpr int kMaxSplits = 64;
constexpr float kLog2e = 1.4426950408889634f;
static_assert(kBN == 2 * kWarpCols, "two column warps");

// kBM rows a block ((kBM / 32) x 2 warps); the W pipeline: K slices of kBK columns in kStages
// buffers; kMinBlocks blocks per SM (the registers and shared memory that leaves a block).
template <int kBM_, int kBK_, int kStages_, int kMinBlocks_>
struct Config {
  static constexpr int kBM = kBM_, kBK = kBK_, kStages = kStages_, kMinBlocks = kMinBlocks_;
  static constexpr int kThreads = kBM / kWarpRows * 2 * 32;
  static constexpr int kLdw = kBK + 8;  // (kBK + 8) / 8 odd: ldmatrix rows hit distinct banks
  static size_t smem_bytes(int K) {
    return (size_t(kBM) * (K + 8) + size_t(kStages) * kBN * kLdw) * sizeof(__half);
  }
};

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait_group() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// (m0, s0) += (m, s) for s = sum of exp(v - m), in FP32; m == -inf means empty.
__device__ __forceinline__ void merge_online(float& m0, float& s0, float m, float s) {
  if (m == -INFINITY) return;
  if (m0 == -INFINITY) {
    m0 = m;
    s0 = s;
    return;
  }
  const float mx = fmaxf(m0, m);
  s0 = s0 * exp2f((m0 - mx) * kLog2e) + s * exp2f((m - mx) * kLog2e);
  m0 = mx;
}

// A row's result: 0 without a target (-1), NaN for a target outside [-1, vocab).
__device__ __forceinline__ float gathered_log_prob(int target, int vocab, float target_logit, float m, float s) {
  if (target == -1) return 0.f;
  if (target < -1 || target >= vocab) return __int_as_float(0x7fc00000);
  return target_logit - (m + logf(s));
}

// Blocks (row tile blockIdx.x, vocabulary split blockIdx.y): the split covers column tiles
// [blockIdx.y * tiles_per_split, ...). With one split the block writes out[]; with several it
// writes its rows' (max, sum-exp, target logit) to partial[split][row] for merge_split_partials.
template <class C>
__global__ void __launch_bounds__(C::kThreads, C::kMinBlocks)
    linear_log_softmax_gather_kernel(LinearLogSoftmaxGatherParams p, int tiles_per_split, float* partial) {
  pdl_wait_and_trigger();
  constexpr int kBM = C::kBM, kBK = C::kBK, kStages = C::kStages, kLdw = C::kLdw, kThreads = C::kThreads;
  constexpr int kRowWarps = kBM / kWarpRows;
  extern __shared__ __align__(16) unsigned char smem[];
  const int K = p.K, ldxs = K + 8;  // K % 16 == 0: (K + 8) / 8 is odd, conflict-free ldmatrix
  __half* Xs = reinterpret_cast<__half*>(smem);
  __half* Ws = Xs + kBM * ldxs;
  const int tid = int(threadIdx.x), warp = tid / 32, lane = tid % 32, g = lane / 4, t4 = lane % 4;
  const int wm = (warp % kRowWarps) * kWarpRows, wn = (warp / kRowWarps) * kWarpCols;
  const int64_t m0 = int64_t(blockIdx.x) * kBM;
  const __half* x = static_cast<const __half*>(p.x);
  const __half* w = static_cast<const __half*>(p.w);
  const __half* bias = static_cast<const __half*>(p.bias);
  const int ntiles = (p.vocab + kBN - 1) / kBN, tile0 = int(blockIdx.y) * tiles_per_split;
  const int kslices = (K + kBK - 1) / kBK, total = min(tiles_per_split, ntiles - tile0) * kslices;

  // 1. The block's rows of x (rows past M are zeros), in the first cp.async group.
  const int xchunks = K / 8;
  for (int e = tid; e < kBM * xchunks; e += kThreads) {
    const int r = e / xchunks, c = (e % xchunks) * 8;
    __half* dst = Xs + r * ldxs + c;
    if (m0 + r < p.M) cp_async_16(dst, x + (m0 + r) * p.ldx + c);
    else *reinterpret_cast<uint4*>(dst) = make_uint4(0, 0, 0, 0);
  }
  // Stage `it % kStages` <- W rows of tile tile0 + it / kslices, columns of K slice
  // it % kslices. Rows at or past vocab are zeros; columns past K are never read.
  const auto load_w = [&](int it) {
    const int n0 = (tile0 + it / kslices) * kBN, k0 = (it % kslices) * kBK;
    __half* st = Ws + (it % kStages) * (kBN * kLdw);
#pragma unroll
    for (int i = 0; i < kBN * (kBK / 8) / kThreads; ++i) {
      const int e = tid + i * kThreads, r = e / (kBK / 8), c = (e % (kBK / 8)) * 8;
      if (k0 + c >= K) continue;
      __half* dst = st + r * kLdw + c;
      if (n0 + r < p.vocab) cp_async_16(dst, w + int64_t(n0 + r) * K + k0 + c);
      else *reinterpret_cast<uint4*>(dst) = make_uint4(0, 0, 0, 0);
    }
  };
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < total) load_w(s);
    cp_async_commit();
  }

  // Per thread: rows wm + 16 i + 8 h + g (slot q = 2 i + h), each with an online (max, sum-exp)
  // over this thread's columns and the target's logit if this thread saw it (else 0).
  float row_max[4], row_sum[4], row_tgt_logit[4];
  int row_tgt[4];
#pragma unroll
  for (int q = 0; q < 4; ++q) {
    const int64_t m = m0 + wm + (q / 2) * 16 + (q % 2) * 8 + g;
    row_tgt[q] = m < p.M ? p.targets[m] : -1;
    row_max[q] = -INFINITY;
    row_sum[q] = 0.f;
    row_tgt_logit[q] = 0.f;
  }
  float acc[2][8][4] = {};

  // 2. The split's vocabulary, tile by tile, K slice by K slice.
  for (int it = 0; it < total; ++it) {
    cp_async_wait_group<kStages - 2>();
    __syncthreads();  // stage it is complete for all threads; stage it - 1 is free to refill
    if (it + kStages - 1 < total) load_w(it + kStages - 1);
    cp_async_commit();
    const __half* st = Ws + (it % kStages) * (kBN * kLdw);
    const int ks = it % kslices, k0 = ks * kBK;
#pragma unroll
    for (int kk = 0; kk < kBK; kk += 16) {
      if (k0 + kk >= K) break;
      uint32_t a[2][4];
      ldmatrix_x4(a[0], Xs + (wm + lane % 16) * ldxs + k0 + kk + (lane / 16) * 8);
      ldmatrix_x4(a[1], Xs + (wm + 16 + lane % 16) * ldxs + k0 + kk + (lane / 16) * 8);
#pragma unroll
      for (int j = 0; j < kWarpCols / 16; ++j) {
        uint32_t b[4];
        ldmatrix_x4(b, st + (wn + 16 * j + lane % 8 + (lane / 16) * 8) * kLdw + kk + ((lane / 8) % 2) * 8);
#pragma unroll
        for (int i = 0; i < 2; ++i) {
          mma_16816(acc[i][2 * j], a[i], b[0], b[1]);
          mma_16816(acc[i][2 * j + 1], a[i], b[2], b[3]);
        }
      }
    }
    if (ks != kslices - 1) continue;

    // 3. The tile's logits into the per-row online softmax. Thread columns: c0 + 8 nt + 2 t4 + e.
    const int c0 = (tile0 + it / kslices) * kBN + wn;
    float add[8][2];  // bias, or -inf for columns >= vocab (masks them out of max and sum)
#pragma unroll
    for (int nt = 0; nt < 8; ++nt)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int c = c0 + nt * 8 + 2 * t4 + e;
        add[nt][e] = c < p.vocab ? (bias ? __half2float(bias[c]) : 0.f) : -INFINITY;
      }
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int i = q / 2, h = q % 2;
      float v[16];
      float tile_max = -INFINITY;
#pragma unroll
      for (int nt = 0; nt < 8; ++nt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          v[2 * nt + e] = acc[i][nt][2 * h + e] + add[nt][e];
          tile_max = fmaxf(tile_max, v[2 * nt + e]);
        }
      const int rel = row_tgt[q] - c0;
      if (unsigned(rel) < unsigned(kWarpCols) && ((rel >> 1) & 3) == t4) {
#pragma unroll
        for (int nt = 0; nt < 8; ++nt)
#pragma unroll
          for (int e = 0; e < 2; ++e)
            if (nt * 8 + 2 * t4 + e == rel) row_tgt_logit[q] = v[2 * nt + e];
      }
      if (tile_max == -INFINITY) continue;  // every column of this thread is past vocab
      const float mx = fmaxf(row_max[q], tile_max), mx2 = mx * kLog2e;
      float sum = 0.f;
#pragma unroll
      for (int e = 0; e < 16; ++e) sum += exp2f(fmaf(v[e], kLog2e, -mx2));
      row_sum[q] = row_sum[q] * exp2f((row_max[q] - mx) * kLog2e) + sum;  // 0 * 0 on the first tile
      row_max[q] = mx;
    }
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
      for (int nt = 0; nt < 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[i][nt][e] = 0.f;
  }

  // 4. Merge: the 4 threads of a quad share rows (shuffles), then the two column warps (shared
  // memory, reusing the W stages: every cp.async group left is empty).
#pragma unroll
  for (int q = 0; q < 4; ++q)
#pragma unroll
    for (int o = 1; o <= 2; o <<= 1) {
      const float mo = __shfl_xor_sync(0xffffffffu, row_max[q], o), so = __shfl_xor_sync(0xffffffffu, row_sum[q], o);
      merge_online(row_max[q], row_sum[q], mo, so);
      row_tgt_logit[q] += __shfl_xor_sync(0xffffffffu, row_tgt_logit[q], o);  // one holder, others add 0
    }
  cp_async_wait_group<0>();
  __syncthreads();
  float* red = reinterpret_cast<float*>(Ws);  // [2 column warps][kBM rows][3]
  if (t4 == 0) {
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      float* r = red + ((warp / kRowWarps) * kBM + wm + (q / 2) * 16 + (q % 2) * 8 + g) * 3;
      r[0] = row_max[q];
      r[1] = row_sum[q];
      r[2] = row_tgt_logit[q];
    }
  }
  __syncthreads();
  if (tid < kBM && m0 + tid < p.M) {
    const float* r0 = red + tid * 3;
    const float* r1 = red + (kBM + tid) * 3;
    float m = r0[0], s = r0[1];
    merge_online(m, s, r1[0], r1[1]);
    const float t_logit = r0[2] + r1[2];
    const int64_t row = m0 + tid;
    if (partial) {
      float* o = partial + (int64_t(blockIdx.y) * p.M + row) * 3;
      o[0] = m;
      o[1] = s;
      o[2] = t_logit;
    } else {
      p.out[row] = gathered_log_prob(p.targets[row], p.vocab, t_logit, m, s);
    }
  }
}

// out[row] from the splits' partial (max, sum-exp, target logit) of a row.
__global__ void merge_split_partials_kernel(LinearLogSoftmaxGatherParams p, int splits, const float* partial) {
  pdl_wait_and_trigger();
  const int64_t row = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (row >= p.M) return;
  float m = -INFINITY, s = 0.f, t_logit = 0.f;
  for (int i = 0; i < splits; ++i) {
    const float* o = partial + (int64_t(i) * p.M + row) * 3;
    merge_online(m, s, o[0], o[1]);
    t_logit += o[2];
  }
  p.out[row] = gathered_log_prob(p.targets[row], p.vocab, t_logit, m, s);
}

// Fallback: out[r] = logits[r, targets[r]] - logsumexp(logits[r, :vocab]), the log-sum-exp of
// log_softmax.cu (so float32 results equal linear() + log_softmax() on this backend bit for bit).
template <typename T>
__global__ void __launch_bounds__(kRowLogSumExpThreads) log_softmax_gather_rows_kernel(const T* logits, int64_t ld,
                                                                                       int vocab,
                                                                                       const int32_t* targets,
                                                                                       float* out) {
  pdl_wait_and_trigger();
  const T* in = logits + int64_t(blockIdx.x) * ld;
  const float lse = block_row_log_sum_exp<kRowLogSumExpThreads>(in, vocab);
  if (threadIdx.x == 0) {
    const int t = targets[blockIdx.x];
    out[blockIdx.x] = t == -1 ? 0.f : t < -1 || t >= vocab ? __int_as_float(0x7fc00000) : to_float(in[t]) - lse;
  }
}

// 128 rows, 32-wide K slices in 4 stages, two blocks a SM (<= 128 registers a thread; K <= 256
// leaves room for two blocks' shared memory), so that one block's softmax overlaps the other's
// tensor-core work. (Measured on an H200 against 128 rows, 64-wide slices in 3 stages, one block a
// SM: 0.98 vs 1.17 ms at K 256; and for K 512, where only that one fits, 64 rows two blocks a SM
// was slower still: 2.6 vs 2.0 ms, both behind the cuBLASLt fallback's 1.7 ms.)
using Cfg = Config<128, 32, 4, 2>;

// Blocks of configuration C that one SM runs at once for this K (an estimate for the plan).
template <class C>
int blocks_per_sm(int64_t K, const DeviceLimits& d) {
  const size_t per_block = C::smem_bytes(int(K)) + 1024;  // + the runtime's reservation
  return std::max(1, std::min(C::kMinBlocks, int(d.smem_per_sm / per_block)));
}

// How the work is cut: the vocabulary's column tiles into splits (a block per row tile and split)
// to fill the GPU's block slots when there are few row tiles (a decoder batch of 10^4 rows is 79
// of them, for 132 SMs). Cost model, in column tiles of one block: waves x (tiles a split + 0.5
// for the block's start and end), + 1 for the merge kernel when there are several splits.
struct Plan {
  int splits = 1, tiles_per_split = 1;
};
Plan make_plan(int64_t M, int rows_per_block, int vocab, int slots) {
  const int64_t row_tiles = (M + rows_per_block - 1) / rows_per_block;
  const int ntiles = (vocab + kBN - 1) / kBN;
  const auto waves = [&](int splits) { return double((row_tiles * splits + slots - 1) / slots); };
  Plan best{1, ntiles};
  double best_cost = waves(1) * (ntiles + 0.5);
  for (int s = 2; s <= std::min(ntiles, kMaxSplits); ++s) {
    const int per = (ntiles + s - 1) / s, used = (ntiles + per - 1) / per;  // no empty splits
    if (used != s) continue;
    const double cost = waves(s) * (per + 0.5) + 1.0;
    if (cost < best_cost) best_cost = cost, best = {s, per};
  }
  return best;
}

template <class C>
void launch(const LinearLogSoftmaxGatherParams& p, float* scratch, int device, KernelStream stream) {
  const DeviceLimits d = device_limits(device);
  if (!opt_in_dynamic_smem(linear_log_softmax_gather_kernel<C>, C::smem_bytes(p.K))) return;
  const Plan plan = make_plan(p.M, C::kBM, p.vocab, d.sms * blocks_per_sm<C>(p.K, d));
  const dim3 grid(unsigned((p.M + C::kBM - 1) / C::kBM), unsigned(plan.splits));
  float* partial = plan.splits > 1 ? scratch : nullptr;
  launch_kernel(stream, linear_log_softmax_gather_kernel<C>, grid, C::kThreads, C::smem_bytes(p.K), p,
                plan.tiles_per_split, partial);
  if (partial)
    launch_kernel(stream, merge_split_partials_kernel, unsigned((p.M + 255) / 256), 256, 0, p, plan.splits, partial);
}

}  // namespace

bool linear_log_softmax_gather_f16_supports(int64_t K) {
  if (K < 16 || K > kMaxK || K % 16 != 0) return false;
  const DeviceLimits d = device_limits(current_device());
  return Cfg::smem_bytes(int(K)) <= d.smem_per_block;
}

int64_t linear_log_softmax_gather_f16_scratch(int64_t M, int K, int vocab) {
  const DeviceLimits d = device_limits(current_device());
  const Plan plan = make_plan(M, Cfg::kBM, vocab, d.sms * blocks_per_sm<Cfg>(K, d));
  return plan.splits > 1 ? int64_t(plan.splits) * M * 3 : 0;
}

void linear_log_softmax_gather_f16(const LinearLogSoftmaxGatherParams& p, float* scratch, KernelStream stream) {
  if (p.M == 0) return;
  launch<Cfg>(p, scratch, current_device(), stream);
}

void log_softmax_gather_rows(const void* logits, int64_t ld, int64_t rows, int vocab, const int32_t* targets,
                             float* out, bool f16, KernelStream stream) {
  if (rows == 0) return;
  dispatch_type(f16, [&](auto t) {
    using E = decltype(t);
    launch_kernel(stream, log_softmax_gather_rows_kernel<E>, unsigned(rows), kRowLogSumExpThreads, 0,
                  static_cast<const E*>(logits), ld, vocab, targets, out);
  });
}

}  // namespace wenet_rt::cuda_kernels
