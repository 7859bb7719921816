// The conformer convolution module (GLU + depthwise conv + norm + activation) in one pass per
// chunk of frames (kernels/conv_module.h); chunks of all utterances over the thread pool.
#include <algorithm>

#include "backend/cpu/cpu_backend.h"
#include "backend/op_checks.h"

namespace wenet_rt::cpu {

void CpuBackend::conv_module(const ConvModuleArgs& a, Activation act) {
  Scope s(this, "conv_module");
  const int64_t B = a.x.dim(0), T = a.x.dim(1), D = a.y.cols(), K = a.dw_w.dim(1);
  WENET_CHECK(a.x.dtype == DType::kF32 && a.x.cols() == 2 * D && a.dw_w.dim(0) == D && a.dw_b.numel() == D &&
                  a.y.rows() == B * T,
              "conv_module: shape mismatch");
  WENET_CHECK(!a.causal || a.causal_pad.numel() == D, "conv_module: expected causal_pad [{}]", D);
  check_conv_module_streaming(a, B, K, D);
  // The depthwise kernel transposed to [K, D] (channels contiguous, as the kernel vectorizes).
  float* w_t = scratch(K * D);
  for (int64_t d = 0; d < D; ++d)
    for (int64_t j = 0; j < K; ++j) w_t[j * D + d] = a.dw_w.ptr<float>()[d * K + j];
  constexpr int64_t kFrames = 32;
  const int64_t chunks = (T + kFrames - 1) / kFrames;
  const int64_t per_thread = conv_module_scratch_floats(kFrames, K, D);
  float* thread_scratch = scratch(int64_t(pool_.size()) * per_thread);
  const int act_code = act == Activation::kSwish ? kActSwish : act == Activation::kRelu ? kActRelu : kActNone;
  pool_.run(B * chunks, [&](int64_t task, int thread) {
    const int64_t b = task / chunks, t0 = (task % chunks) * kFrames;
    ConvModuleRows c;
    c.x = a.x.ptr<float>() + b * T * a.x.row_stride();
    c.ldx = a.x.row_stride();
    c.T = T;
    c.T_in = a.zero_beyond_lens ? std::clamp<int64_t>(a.lens.ptr<int32_t>()[b], 0, T) : T;
    c.left = a.left.data ? a.left.ptr<float>() + b * (K - 1) * a.left.row_stride() : nullptr;
    c.ldl = a.left.row_stride();
    c.D = D;
    c.t0 = t0;
    c.t1 = std::min(T, t0 + kFrames);
    c.w_t = w_t;
    c.b = a.dw_b.ptr<float>();
    c.K = K;
    c.pad = a.causal ? K - 1 : (K - 1) / 2;
    c.gamma = a.norm.gamma.data ? a.norm.gamma.ptr<float>() : nullptr;
    c.beta = a.norm.gamma.data ? a.norm.beta.ptr<float>() : nullptr;
    c.causal_pad = a.causal ? a.causal_pad.ptr<float>() : nullptr;
    c.act = act_code;
    c.y = a.y.ptr<float>() + b * T * a.y.row_stride();
    c.ldy = a.y.row_stride();
    kt_.conv_module(c, thread_scratch + thread * per_thread);
  });
}

}  // namespace wenet_rt::cpu
