// GEMM for few rows in float16: y = act(x W^T + b) (+ residual), split over K. At the <= 64 rows
// of small batches a GEMM is latency-bound: what counts is how many SMs fetch the weights at once,
// and how early. Here a block owns a 16-row x 64-column tile and a 256-wide slice of K (K = 2048:
// 8 blocks per tile, 32 for the feed-forward's N = 256 at 16 rows), copies both operands into
// shared memory at once (cp.async; the weights before the PDL wait, so that they arrive while the
// previous kernel runs) and multiplies on mma.sync. With one slice it finishes the tile itself;
// otherwise it leaves its FP32 partial in the workspace and the last block of the tile to finish
// (an atomic count) sums the partials in slice order (deterministic), applies the epilogue and
// resets the count for the next launch. The residual is read by the GEMM itself (right after the
// PDL wait, into the epilogue's registers), so y may alias it and no copy precedes the GEMM.
// cuBLASLt's kernels cannot start early that way: with PDL the encoder at 1 x 16 frames took
// 0.548 ms with them and 0.474 ms with this kernel (H200, CUDA graphs); without PDL this kernel
// was no faster (0.624 against 0.601 ms).
#include "backend/cuda/kernels/few_row_gemm.cuh"

namespace wenet_rt::cuda_kernels {
namespace {

constexpr int kBM = 16, kBN = 64, kThreads = 128;  // 4 warps, each 16 rows x 16 columns
constexpr int kLds = kSplitKSlice + 8;               // (kSlice + 8) / 8 odd: ldmatrix rows hit distinct banks
constexpr int kChunks = kSplitKSlice / 8;            // 16-byte vectors per row slice
constexpr int kTileFloats = kBM * kBN;

__global__ void __launch_bounds__(kThreads) split_k_gemm_kernel(SplitKGemmParams p) {
  __shared__ __align__(16) __half As[kBM * kLds];
  __shared__ __align__(16) __half Ws[kBN * kLds];
  __shared__ bool finishes;
  const int64_t m0 = int64_t(blockIdx.y) * kBM;
  const int n0 = int(blockIdx.x) * kBN, k0 = int(blockIdx.z) * kSplitKSlice, splits = int(gridDim.z);
  const int tid = int(threadIdx.x), warp = tid / 32, lane = tid % 32;

  const __half* w = static_cast<const __half*>(p.g.w);
  const __half* x = static_cast<const __half*>(p.g.x);
#pragma unroll
  for (int i = 0; i < kBN * kChunks / kThreads; ++i) {
    const int e = tid + i * kThreads, r = e / kChunks, c = (e % kChunks) * 8;
    __half* dst = Ws + r * kLds + c;
    if (n0 + r < p.g.N) cp_async_16(dst, w + int64_t(n0 + r) * p.g.ldw + k0 + c);
    else *reinterpret_cast<uint4*>(dst) = make_uint4(0, 0, 0, 0);
  }
  WarpTileEpilogue epilogue;
  load_tile_bias(epilogue, p.g, n0 + warp * 16, lane);
  pdl_wait_and_trigger();  // the weights above are fetched while the previous kernel may still run
  // Every block reads the residual now, though only a tile's last block uses it: a round trip
  // less in that block's epilogue. y may alias it: the last block writes y after every block's
  // reads (the count's fences order them).
  load_tile_residual(epilogue, p.g, m0, n0 + warp * 16, lane);
#pragma unroll
  for (int i = 0; i < kBM * kChunks / kThreads; ++i) {
    const int e = tid + i * kThreads, r = e / kChunks, c = (e % kChunks) * 8;
    __half* dst = As + r * kLds + c;
    if (m0 + r < p.g.M) cp_async_16(dst, x + (m0 + r) * p.g.ldx + k0 + c);
    else *reinterpret_cast<uint4*>(dst) = make_uint4(0, 0, 0, 0);
  }
  cp_async_wait_all();
  __syncthreads();

  // Warp w owns columns n0 + 16 w .. + 16 (two n8 tiles) of the 16 rows.
  float acc[2][4] = {};
  mma_warp_tile<kSplitKSlice, kLds>(acc, As, Ws + warp * 16 * kLds, lane);

  if (splits > 1) {
    // Each thread's 8 accumulators as two float4 at the same place of every slice's partial.
    const int tile = int(blockIdx.y * gridDim.x + blockIdx.x);
    float4* tile_parts = reinterpret_cast<float4*>(p.partials) + int64_t(tile) * splits * (kTileFloats / 4);
    float4* mine = tile_parts + int64_t(blockIdx.z) * (kTileFloats / 4) + 2 * tid;
    mine[0] = make_float4(acc[0][0], acc[0][1], acc[0][2], acc[0][3]);
    mine[1] = make_float4(acc[1][0], acc[1][1], acc[1][2], acc[1][3]);
    __threadfence();  // the partial is visible before the count says so
    __syncthreads();
    if (tid == 0) finishes = atomicAdd(&p.counters[tile], 1u) == unsigned(splits - 1);
    __syncthreads();
    if (!finishes) return;
    __threadfence();
#pragma unroll
    for (int nt = 0; nt < 2; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[nt][i] = 0.f;
    for (int s = 0; s < splits; ++s) {
      const float4* part = tile_parts + int64_t(s) * (kTileFloats / 4) + 2 * tid;
      const float4 a = __ldcg(part), b = __ldcg(part + 1);
      acc[0][0] += a.x, acc[0][1] += a.y, acc[0][2] += a.z, acc[0][3] += a.w;
      acc[1][0] += b.x, acc[1][1] += b.y, acc[1][2] += b.z, acc[1][3] += b.w;
    }
    if (tid == 0) p.counters[tile] = 0;  // ready for the next launch (graph replays included)
  }

  store_warp_tile(acc, epilogue, p.g, m0, n0 + warp * 16, lane);
}

}  // namespace

int64_t split_k_gemm_workspace_floats(int64_t M, int64_t N, int64_t K) {
  const int64_t splits = K / kSplitKSlice;
  if (splits <= 1) return 0;
  return (M + kBM - 1) / kBM * ((N + kBN - 1) / kBN) * splits * kTileFloats;
}

int64_t split_k_gemm_tiles(int64_t M, int64_t N) { return (M + kBM - 1) / kBM * ((N + kBN - 1) / kBN); }

void split_k_gemm_f16(const SplitKGemmParams& p, KernelStream stream) {
  if (p.g.M == 0 || p.g.N == 0) return;
  const dim3 grid(unsigned((p.g.N + kBN - 1) / kBN), unsigned((p.g.M + kBM - 1) / kBM), unsigned(p.g.K / kSplitKSlice));
  launch_kernel(stream, split_k_gemm_kernel, grid, kThreads, 0, p);
}

}  // namespace wenet_rt::cuda_kernels
