// LayerNorm + GEMM + bias / activation in one float16 kernel for few rows: y = act(LayerNorm(x) W^T + b).
// At the small row counts of streaming-size batches a GEMM is launch- and latency-bound, so the
// LayerNorm kernel before it (and a swish kernel after it) cost as much as the GEMM itself. Here
// a block copies its 16 rows of x and a 64-row weight tile into shared memory with cp.async (every
// load in flight at once; the weights before the PDL wait, see launch.cuh), normalizes the rows in
// place (FP32 statistics, as layer_norm_zero_padded_rows.cu), and multiplies on mma.sync over the
// whole K (<= 512, no K loop through global memory). Every block re-normalizes its rows: cheap for
// few rows, which is the only case the backend sends here. (A 64 x 128 tile for many rows was
// slower than LayerNorm + cuBLASLt + swish on the H200: 1.47 against 1.21 ms for the encoder at
// 16 x 256 frames, 1.9 against 0.96 ms for the decoder at batch 16; whole-K tiles that small
// reload too much from L2.)
//
// Optionally a LayerNorm before that one (a conformer block's norm_final, whose output is both the
// residual stream and the next block's input): the blocks of column tile 0 write its result out.
#include "backend/cuda/kernels/few_row_gemm.cuh"

namespace wenet_rt::cuda_kernels {
namespace {

// A block: 16 rows x 64 columns; warp w computes columns [16 w, 16 w + 16) of all 16 rows.
constexpr int kRows = 16, kCols = 64, kWarps = kCols / 16, kThreads = kWarps * 32;
static_assert(kLayerNormGemmMaxRows == int64_t(65535) * kRows, "the row limit counts kRows-row tiles");

template <int K>
constexpr size_t smem_bytes() {
  return size_t(kRows + kCols) * (K + 8) * sizeof(__half);
}

// v (a row of K values, 8 per lane and 16-byte vector) := LayerNorm(v) * gamma + beta, rounded to half.
template <int kVecs>
__device__ __forceinline__ void normalize_row(float (&v)[kVecs][8], const void* gamma, const void* beta, int lane) {
  constexpr float kInvK = 1.f / float(kVecs * 256);
  float sum = 0.f;
#pragma unroll
  for (int j = 0; j < kVecs; ++j)
#pragma unroll
    for (int e = 0; e < 8; ++e) sum += v[j][e];
  const float mean = warp_sum(sum) * kInvK;
  float sq = 0.f;
#pragma unroll
  for (int j = 0; j < kVecs; ++j)
#pragma unroll
    for (int e = 0; e < 8; ++e) sq += (v[j][e] - mean) * (v[j][e] - mean);
  const float inv = rsqrtf(warp_sum(sq) * kInvK + 1e-5f);
#pragma unroll
  for (int j = 0; j < kVecs; ++j) {
    const uint4 gv = static_cast<const uint4*>(gamma)[lane + 32 * j];
    const uint4 bv = static_cast<const uint4*>(beta)[lane + 32 * j];
    const __half* g = reinterpret_cast<const __half*>(&gv);
    const __half* b = reinterpret_cast<const __half*>(&bv);
#pragma unroll
    for (int e = 0; e < 8; ++e)
      v[j][e] = __half2float(__float2half_rn((v[j][e] - mean) * inv * __half2float(g[e]) + __half2float(b[e])));
  }
}

template <int kVecs>
__device__ __forceinline__ void store_row(const float (&v)[kVecs][8], __half* row, int lane) {
#pragma unroll
  for (int j = 0; j < kVecs; ++j) {
    uint4 out;
    __half* o = reinterpret_cast<__half*>(&out);
#pragma unroll
    for (int e = 0; e < 8; ++e) o[e] = __float2half_rn(v[j][e]);
    reinterpret_cast<uint4*>(row)[lane + 32 * j] = out;
  }
}

template <int K>
__global__ void __launch_bounds__(kThreads) layer_norm_gemm_kernel(LayerNormGemmParams p) {
  static_assert(K % 256 == 0, "a row is a whole number of 16-byte vectors per lane");
  constexpr int LDS = K + 8;  // (K + 8) / 8 is odd: ldmatrix rows hit distinct banks
  constexpr int kChunks = K / 8, kVecs = K / 256;
  extern __shared__ __align__(16) unsigned char smem[];
  __half* As = reinterpret_cast<__half*>(smem);
  __half* Ws = As + kRows * LDS;
  const int64_t m0 = int64_t(blockIdx.y) * kRows;
  const int n0 = int(blockIdx.x) * kCols;
  const int tid = int(threadIdx.x), warp = tid / 32, lane = tid % 32;

  // 1. The weight tile (no kernel writes weights: fetched before the wait, while the previous
  //    kernel may still run), then the raw rows of x; all in flight at once.
  const __half* w = static_cast<const __half*>(p.g.w);
#pragma unroll
  for (int i = 0; i < kCols * kChunks / kThreads; ++i) {
    const int e = tid + i * kThreads, r = e / kChunks, c = (e % kChunks) * 8;
    __half* dst = Ws + r * LDS + c;
    if (n0 + r < p.g.N) cp_async_16(dst, w + int64_t(n0 + r) * K + c);
    else *reinterpret_cast<uint4*>(dst) = make_uint4(0, 0, 0, 0);
  }
  WarpTileEpilogue epilogue;
  load_tile_bias(epilogue, p.g, n0 + warp * 16, lane);
  pdl_wait_and_trigger();
  load_tile_residual(epilogue, p.g, m0, n0 + warp * 16, lane);
  const auto live = [&](int r) {  // rows past M and masked frames are zeros
    const int64_t m = m0 + r;
    return m < p.g.M && !(p.zero_lens && (m % p.T) >= p.zero_lens[m / p.T]);
  };
  const __half* x = static_cast<const __half*>(p.g.x);
#pragma unroll
  for (int i = 0; i < kRows * kChunks / kThreads; ++i) {
    const int e = tid + i * kThreads, r = e / kChunks, c = (e % kChunks) * 8;
    __half* dst = As + r * LDS + c;
    if (live(r)) cp_async_16(dst, x + (m0 + r) * p.g.ldx + c);
    else *reinterpret_cast<uint4*>(dst) = make_uint4(0, 0, 0, 0);
  }
  cp_async_wait_all();
  __syncthreads();

  // 2. Normalize the live rows in place: a warp per row, 8 values per lane and 16-byte vector.
  for (int r = warp; r < kRows; r += kWarps) {
    if (!live(r)) continue;
    __half* row = As + r * LDS;
    float v[kVecs][8];
#pragma unroll
    for (int j = 0; j < kVecs; ++j) {
      const uint4 raw = reinterpret_cast<const uint4*>(row)[lane + 32 * j];
      const __half* h = reinterpret_cast<const __half*>(&raw);
#pragma unroll
      for (int e = 0; e < 8; ++e) v[j][e] = __half2float(h[e]);
    }
    if (p.pre_gamma) {
      normalize_row(v, p.pre_gamma, p.pre_beta, lane);
      if (blockIdx.x == 0) store_row(v, static_cast<__half*>(p.x_out) + (m0 + r) * p.ld_x_out, lane);
    }
    normalize_row(v, p.gamma, p.beta, lane);
    store_row(v, row, lane);
  }
  __syncthreads();

  // 3. Tensor cores, then bias, activation and store: warp w owns columns n0 + 16 w .. + 16.
  float acc[2][4] = {};
  mma_warp_tile<K, LDS>(acc, As, Ws + warp * 16 * LDS, lane);
  store_warp_tile(acc, epilogue, p.g, m0, n0 + warp * 16, lane);
}

template <int K>
void launch(const LayerNormGemmParams& p, KernelStream stream) {
  constexpr size_t smem = smem_bytes<K>();
  if (!opt_in_dynamic_smem(layer_norm_gemm_kernel<K>, smem)) return;
  const dim3 grid(unsigned((p.g.N + kCols - 1) / kCols), unsigned((p.g.M + kRows - 1) / kRows));
  launch_kernel(stream, layer_norm_gemm_kernel<K>, grid, kThreads, smem, p);
}

}  // namespace

bool layer_norm_gemm_supports(int64_t K) { return K == 256 || K == 512; }

void layer_norm_gemm_f16(const LayerNormGemmParams& p, KernelStream stream) {
  if (p.g.M == 0 || p.g.N == 0) return;
  if (p.g.K == 256) launch<256>(p, stream);
  else launch<512>(p, stream);
}

}  // namespace wenet_rt::cuda_kernels
