// The conformer conv module between its pointwise convolutions, in one kernel:
//   GLU over channels -> depthwise conv (K taps, 'same' zero padding, over all T frames as WeNet
//   does; causal: K-1 left frames holding glu(pointwise_conv1 bias), or the GLU of a streaming
//   item's left context; streaming: frames past zero_from[b] read as zeros) -> LayerNorm over channels
//   (or nothing: BatchNorm folded into the conv at load) -> act.
// A block owns `frames` frames of one utterance and a group of channels (all D when a LayerNorm
// needs whole frames): it stages the GLU of its frames plus the K-1 halo frames and the transposed
// weights in shared memory, convolves, then (LayerNorm) one warp per frame normalizes and writes.
// Frames per block shrink for small inputs so that enough blocks run.

#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/kernels.h"

namespace wenet_rt::cuda_kernels {
namespace {

constexpr int kThreads = 256, kChannelGroup = 64;

size_t smem_bytes(int frames, int group, int K) {
  return size_t(frames + K - 1 + K + 1 + frames) * size_t(group) * sizeof(float);
}

template <typename T>
__global__ void __launch_bounds__(kThreads) glu_depthwise_conv_norm_act_kernel(ConvModuleParams p, int frames,
                                                                               int group) {
  extern __shared__ float smem[];
  const int D = p.D, K = p.K, Tn = p.T, pad = p.causal ? K - 1 : (K - 1) / 2, halo_rows = frames + K - 1;
  const int t0 = blockIdx.x * frames, b = blockIdx.y, c0 = blockIdx.z * group, nc = min(group, D - c0);
  float* glu = smem;                      // [halo_rows][group], zero outside [0, T)
  float* wt = glu + halo_rows * group;    // [K][group] depthwise weights, transposed for coalesced reads
  float* bs = wt + K * group;             // [group] conv bias
  float* conv = bs + group;               // [frames][group] (LayerNorm only)
  // The conv's weights and bias (model weights, which no kernel writes) before the PDL wait, so
  // that they arrive while the previous kernel runs; unrolled so that each thread's loads are in
  // flight together, not one round trip per element.
  {
    const T* w = static_cast<const T*>(p.w);
    const T* bias = static_cast<const T*>(p.b);
#pragma unroll 4
    for (int e = threadIdx.x; e < K * nc; e += kThreads) {
      const int j = e / nc, d = e - j * nc;
      wt[j * group + d] = to_float(w[(c0 + d) * K + j]);
    }
    for (int d = threadIdx.x; d < nc; d += kThreads) bs[d] = to_float(bias[c0 + d]);
  }
  pdl_wait_and_trigger();
  const T* x = static_cast<const T*>(p.x) + int64_t(b) * Tn * p.ldx;
  const T* left = p.left ? static_cast<const T*>(p.left) + int64_t(b) * (K - 1) * p.ldl : nullptr;
  const int t_in = p.zero_from ? min(max(p.zero_from[b], 0), Tn) : Tn;  // frames read from x
  const T* gamma = static_cast<const T*>(p.gamma);
  const T* beta = static_cast<const T*>(p.beta);

#pragma unroll 4
  for (int e = threadIdx.x; e < halo_rows * nc; e += kThreads) {
    const int r = e / nc, d = e - r * nc, t = t0 - pad + r;
    float g = 0.f;
    if ((t >= 0 && t < t_in) || (t < 0 && left)) {
      const T* row = (t >= 0 ? x + int64_t(t) * p.ldx : left + int64_t(K - 1 + t) * p.ldl) + c0;
      g = to_float(row[d]) / (1.f + expf(-to_float(row[D + d])));
    } else if (t < 0 && p.causal) {
      g = to_float(static_cast<const T*>(p.causal_pad)[c0 + d]);
    }
    glu[r * group + d] = g;
  }
  __syncthreads();
  for (int e = threadIdx.x; e < frames * nc; e += kThreads) {
    const int r = e / nc, d = e - r * nc;
    float acc = bs[d];
    for (int j = 0; j < K; ++j) acc += wt[j * group + d] * glu[(r + j) * group + d];
    if (gamma) {
      conv[r * group + d] = acc;
    } else if (t0 + r < Tn) {
      static_cast<T*>(p.y)[(int64_t(b) * Tn + t0 + r) * p.ldy + c0 + d] = from_float<T>(apply_act(acc, int(p.act)));
    }
  }
  if (!gamma) return;
  __syncthreads();

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;  // here group == D
  for (int r = warp; r < frames; r += kThreads / 32) {
    const int t = t0 + r;
    if (t >= Tn) break;
    const float* row = conv + r * D;
    float sum = 0.f;
    for (int d = lane; d < D; d += 32) sum += row[d];
    const float mean = warp_sum(sum) / float(D);
    float sq = 0.f;
    for (int d = lane; d < D; d += 32) sq += (row[d] - mean) * (row[d] - mean);
    const float inv = rsqrtf(warp_sum(sq) / float(D) + 1e-5f);
    T* out = static_cast<T*>(p.y) + (int64_t(b) * Tn + t) * p.ldy;
    for (int d = lane; d < D; d += 32)
      out[d] = from_float<T>(apply_act((row[d] - mean) * inv * to_float(gamma[d]) + to_float(beta[d]), int(p.act)));
  }
}

template <typename T>
void launch(const ConvModuleParams& p, KernelStream stream) {
  // LayerNorm needs whole frames in a block; otherwise channels are independent.
  const int group = p.gamma ? p.D : std::min(p.D, kChannelGroup);
  const int groups = (p.D + group - 1) / group;
  int frames = 8;  // fewer frames per block until there are ~2 blocks per SM
  while (frames > 1 && int64_t((p.T + frames - 1) / frames) * p.B * groups < 264) frames /= 2;
  const size_t smem = smem_bytes(frames, group, p.K);
  if (!opt_in_dynamic_smem(glu_depthwise_conv_norm_act_kernel<T>, smem)) return;
  const dim3 grid{unsigned((p.T + frames - 1) / frames), unsigned(p.B), unsigned(groups)};
  launch_kernel(stream, glu_depthwise_conv_norm_act_kernel<T>, grid, kThreads, smem, p, frames, group);
}

}  // namespace

void glu_depthwise_conv_norm_act(const ConvModuleParams& p, bool f16, KernelStream stream) {
  if (p.B == 0 || p.T == 0) return;
  dispatch_type(f16, [&](auto t) { launch<decltype(t)>(p, stream); });
}

}  // namespace wenet_rt::cuda_kernels
