// The CUDA backend against the CPU reference, op by op, in float32 and float16 activations.
// Inputs are random; in F16 runs they are rounded to half precision first so that both backends
// see the same values and only the computation differs. Tolerances, on max |cuda - cpu| divided
// by max(1, max |cpu|): F32 1e-3 (FP32 math, no TF32; measured ~1e-6), F16 2e-3 (FP32
// accumulation and statistics, half-precision storage of outputs and intermediates: ~5e-4 per
// rounding; measured <= 6e-4 on an H100).
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "common/cuda_device.h"
#include "backend/backend.h"

namespace wenet_rt {
namespace {

using testing::have_cuda_device;

TEST(CudaBackendFactory, ThrowsWithoutDevice) {
  if (have_cuda_device()) GTEST_SKIP() << "a CUDA device is present: the no-device error cannot be shown";
  try {
    make_cuda_backend(CudaBackendOptions{});
    FAIL() << "make_cuda_backend succeeded without a device";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no CUDA device"), std::string::npos) << e.what();
  }
}

TEST(CudaBackendFactory, RejectsBadDeviceIndexAndDtype) {
  SKIP_WITHOUT_GPU();
  CudaBackendOptions o;
  o.device = 1000;
  EXPECT_THROW(make_cuda_backend(o), Error);
  o.device = 0;
  o.dtype = DType::kI32;
  EXPECT_THROW(make_cuda_backend(o), Error);
}

Tensor alloc_shape(Backend& be, const Shape& s, DType dt) {
  switch (s.size()) {
    case 1: return be.alloc({s[0]}, dt);
    case 2: return be.alloc({s[0], s[1]}, dt);
    case 3: return be.alloc({s[0], s[1], s[2]}, dt);
    case 4: return be.alloc({s[0], s[1], s[2], s[3]}, dt);
  }
  fail("rank {}", s.size());
}

// The same tensor on both backends.
struct Pair {
  Tensor c, g;
  Pair col_slice(int64_t begin, int64_t n) const { return {c.col_slice(begin, n), g.col_slice(begin, n)}; }
};

class CudaOps : public ::testing::TestWithParam<DType> {
 protected:
  void SetUp() override {
    SKIP_WITHOUT_GPU();
    dt_ = GetParam();
    cpu_ = make_cpu_backend();
    CudaBackendOptions o;
    o.dtype = dt_;
    o.cuda_graphs = false;
    gpu_ = make_cuda_backend(o);
  }

  float tol() const { return dt_ == DType::kF32 ? 1e-3f : 2e-3f; }

  HostTensor random(const Shape& s, float lo = -1.f, float hi = 1.f) {
    HostTensor t(DType::kF32, s);
    std::uniform_real_distribution<float> u(lo, hi);
    for (int64_t i = 0; i < t.numel(); ++i) {
      float v = u(rng_);
      if (dt_ == DType::kF16) v = half_to_float(float_to_half(v));
      t.data<float>()[i] = v;
    }
    return t;
  }
  Pair weight(const HostTensor& h) { return {cpu_->upload(h, DType::kF32), gpu_->upload(h, dt_)}; }
  Pair weight(const Shape& s, float scale = 1.f) { return weight(random(s, -scale, scale)); }
  // Scratch tensors (activations) filled from host data through copy_in.
  Pair act(const HostTensor& h, bool f32 = false) {
    Pair p{alloc_shape(*cpu_, h.shape(), DType::kF32), alloc_shape(*gpu_, h.shape(), f32 ? DType::kF32 : dt_)};
    cpu_->copy_in(h.raw(), p.c);
    gpu_->copy_in(h.raw(), p.g);
    return p;
  }
  Pair act(const Shape& s, float scale = 1.f) { return act(random(s, -scale, scale)); }
  Pair empty(const Shape& s, bool f32 = false) {
    return {alloc_shape(*cpu_, s, DType::kF32), alloc_shape(*gpu_, s, f32 ? DType::kF32 : dt_)};
  }
  Pair lens(const std::vector<int32_t>& v) {
    Pair p{cpu_->alloc({int64_t(v.size())}, DType::kI32), gpu_->alloc({int64_t(v.size())}, DType::kI32)};
    cpu_->copy_in(v.data(), p.c);
    gpu_->copy_in(v.data(), p.g);
    return p;
  }

  // Max |gpu - cpu| / max(1, max |cpu|) over the tensor (strided views compare their columns).
  void expect_close(const Pair& p, const std::string& what, float tolerance = -1.f) {
    const size_t n = size_t(p.c.numel());
    std::vector<float> a(n), b(n);
    cpu_->copy_out(p.c, a.data());
    gpu_->copy_out(p.g, b.data());
    float diff = 0.f, ref = 1.f;
    size_t worst = 0;
    for (size_t i = 0; i < n; ++i) {
      ASSERT_FALSE(std::isnan(b[i])) << what << ": NaN at " << i;
      ref = std::max(ref, std::fabs(a[i]));
      const float d = std::fabs(a[i] - b[i]);
      if (d > diff) diff = d, worst = i;
    }
    const float tl = tolerance > 0 ? tolerance : tol();
    std::printf("  %-8s %-56s scaled max diff %.2e (limit %.0e)\n", std::string(dtype_name(dt_)).c_str(), what.c_str(),
                diff / ref, tl);
    EXPECT_LE(diff / ref, tl) << what << ": worst at flat index " << worst << " (cpu " << (n ? a[worst] : 0.f)
                              << ", cuda " << (n ? b[worst] : 0.f) << "), scale " << ref;
  }

  DType dt_ = DType::kF32;
  std::mt19937 rng_{20240611};
  std::unique_ptr<Backend> cpu_, gpu_;
};

INSTANTIATE_TEST_SUITE_P(Dtypes, CudaOps, ::testing::Values(DType::kF32, DType::kF16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST_P(CudaOps, CopyRoundTripStrided) {
  Pair wide = act({5, 7, 24});
  expect_close(wide.col_slice(8, 8), "strided slice", 1e-7f);
  const HostTensor h = random({35, 8});
  Pair s = wide.col_slice(16, 8);
  cpu_->copy_in(h.raw(), s.c);
  gpu_->copy_in(h.raw(), s.g);
  expect_close(wide, "after strided copy_in", 1e-7f);
}

TEST_P(CudaOps, Linear) {
  struct Case {
    int64_t M, K, N;
    Activation act;
    bool bias;
  };
  for (const Case& c : {Case{1, 64, 48, Activation::kNone, true}, Case{7, 256, 256, Activation::kRelu, true},
                        Case{64, 256, 1024, Activation::kSwish, true}, Case{300, 80, 256, Activation::kNone, false},
                        Case{3, 2048, 256, Activation::kSwish, false}, Case{33, 256, 4233, Activation::kNone, true},
                        Case{40, 64, 1999, Activation::kSwish, true}, Case{5, 24, 13, Activation::kSwish, true}}) {
    const std::string what = "linear M" + std::to_string(c.M) + " K" + std::to_string(c.K) + " N" + std::to_string(c.N);
    LinearWeights wc, wg;
    Pair w = weight({c.N, c.K}, 1.f / std::sqrt(float(c.K)));
    wc.w = w.c;
    wg.w = w.g;
    if (c.bias) {
      Pair b = weight({c.N}, 0.5f);
      wc.b = b.c;
      wg.b = b.g;
    }
    Pair x = act({c.M, c.K});
    Pair y = empty({c.M, c.N});
    cpu_->linear(x.c, wc, c.act, nullptr, y.c);
    gpu_->linear(x.g, wg, c.act, nullptr, y.g);
    expect_close(y, what);
  }
}

TEST_P(CudaOps, LinearStridedInputAndResidual) {
  const int64_t B = 3, T = 17, d = 64;
  Pair qkv = act({B, T, 3 * d});
  Pair w = weight({d, d}, 0.125f), b = weight({d}, 0.5f);
  LinearWeights wc{w.c, b.c}, wg{w.g, b.g};
  // Strided x (a column slice), residual aliasing y.
  Pair y = act({B, T, d});
  Pair x = qkv.col_slice(d, d);
  cpu_->linear(x.c, wc, Activation::kNone, &y.c, y.c);
  gpu_->linear(x.g, wg, Activation::kNone, &y.g, y.g);
  expect_close(y, "linear residual aliasing y");
  // Residual separate from y, and y itself a strided slice.
  Pair r = act({B, T, d});
  Pair out = qkv.col_slice(0, d);
  cpu_->linear(x.c, wc, Activation::kNone, &r.c, out.c);
  gpu_->linear(x.g, wg, Activation::kNone, &r.g, out.g);
  expect_close(out, "linear residual into strided y");
  expect_close(qkv, "untouched columns around a strided y");
}

// Few rows in float16 go to the split-K kernel (kernels/split_k_gemm.cu): one K slice and many,
// residual aliasing y or apart, strided x and y, rows and columns off the tile sizes, and the same
// call repeated (the per-tile counts must reset for the next launch).
TEST_P(CudaOps, LinearFewRowsSplitK) {
  struct Case {
    int64_t M, K, N;
    Activation act;
    bool bias, residual, alias, strided;
  };
  for (const Case& c : {Case{3, 2048, 256, Activation::kNone, true, true, true, false},
                        Case{64, 2048, 256, Activation::kNone, true, true, true, false},
                        Case{17, 512, 1000, Activation::kRelu, true, false, false, false},
                        Case{40, 256, 300, Activation::kNone, false, true, false, true},
                        Case{12, 4864, 256, Activation::kNone, true, false, false, false},
                        Case{65, 2048, 256, Activation::kNone, true, true, true, false}}) {
    const std::string what = "linear M" + std::to_string(c.M) + " K" + std::to_string(c.K) + " N" +
                             std::to_string(c.N) + (c.residual ? c.alias ? " residual = y" : " residual" : "") +
                             (c.strided ? " strided" : "");
    Pair w = weight({c.N, c.K}, 1.f / std::sqrt(float(c.K))), b = weight({c.N}, 0.5f);
    LinearWeights wc{w.c, c.bias ? b.c : Tensor{}}, wg{w.g, c.bias ? b.g : Tensor{}};
    Pair wide_x = act({c.M, c.strided ? 2 * c.K : c.K});
    Pair x = c.strided ? wide_x.col_slice(c.K, c.K) : wide_x;
    Pair wide_y = act({c.M, c.strided ? c.N + 8 : c.N});
    Pair y = c.strided ? wide_y.col_slice(8, c.N) : wide_y;
    Pair r = c.alias ? y : act({c.M, c.N});
    for (int repeat = 0; repeat < 2; ++repeat) {
      cpu_->linear(x.c, wc, c.act, c.residual ? &r.c : nullptr, y.c);
      gpu_->linear(x.g, wg, c.act, c.residual ? &r.g : nullptr, y.g);
      expect_close(y, what + (repeat ? " again" : ""));
    }
    if (c.strided) expect_close(wide_y, what + ": untouched columns around y");
  }
}

TEST_P(CudaOps, LayerNorm) {
  for (int64_t D : {64, 256, 1100}) {
    const int64_t B = 3, T = 11;
    Pair g = weight(random({D}, 0.5f, 1.5f)), be = weight({D}, 0.5f);
    LayerNormWeights wc{g.c, be.c}, wg{g.g, be.g};
    Pair x = act(random({B, T, D}, -2.f, 3.f));
    Pair y = empty({B, T, D});
    cpu_->layer_norm(x.c, wc, y.c);
    gpu_->layer_norm(x.g, wg, y.g);
    expect_close(y, "layer_norm D" + std::to_string(D));
    Pair l = lens({11, 4, 0});
    cpu_->layer_norm(x.c, wc, y.c, &l.c);
    gpu_->layer_norm(x.g, wg, y.g, &l.g);
    expect_close(y, "layer_norm zero_lens D" + std::to_string(D));
    cpu_->layer_norm(x.c, wc, x.c);  // in place
    gpu_->layer_norm(x.g, wg, x.g);
    expect_close(x, "layer_norm in place D" + std::to_string(D));
  }
}

// The fused LayerNorm + GEMM kernel (float16, K 256 or 512, both tile shapes) and the unfused path
// it leaves the rest to (float32, other K, more rows) against CPU layer_norm + linear.
TEST_P(CudaOps, NormLinear) {
  struct Case {
    int64_t B, T, K, N;
    Activation act;
    bool bias, zero_lens, strided;
  };
  for (const Case& c : {Case{1, 3, 256, 2048, Activation::kSwish, true, false, false},
                        Case{4, 16, 256, 768, Activation::kNone, true, false, false},
                        Case{1, 50, 256, 4233, Activation::kNone, true, false, false},
                        Case{2, 30, 512, 100, Activation::kRelu, false, false, false},
                        Case{3, 21, 256, 520, Activation::kNone, true, true, false},
                        Case{2, 19, 256, 264, Activation::kSwish, true, true, true},
                        Case{3, 43, 144, 4233, Activation::kNone, true, false, false},
                        Case{2, 9, 40, 48, Activation::kNone, true, true, false},
                        Case{1, 7, 1024, 64, Activation::kRelu, true, false, false},
                        Case{3, 37, 256, 512, Activation::kSwish, true, true, false},
                        Case{1, 5000, 256, 72, Activation::kNone, true, false, false}}) {
    const std::string what = "norm_linear B" + std::to_string(c.B) + " T" + std::to_string(c.T) + " K" +
                             std::to_string(c.K) + " N" + std::to_string(c.N) + (c.zero_lens ? " zero_lens" : "") +
                             (c.strided ? " strided x" : "");
    Pair g = weight(random({c.K}, 0.5f, 1.5f)), beta = weight({c.K}, 0.5f);
    Pair w = weight({c.N, c.K}, 1.f / std::sqrt(float(c.K)));
    LayerNormWeights nc{g.c, beta.c}, ng{g.g, beta.g};
    LinearWeights wc{w.c, {}}, wg{w.g, {}};
    if (c.bias) {
      Pair b = weight({c.N}, 0.5f);
      wc.b = b.c;
      wg.b = b.g;
    }
    Pair wide = act(random({c.B, c.T, c.strided ? 3 * c.K : c.K}, -2.f, 3.f));
    Pair x = c.strided ? wide.col_slice(c.K, c.K) : wide;
    Pair l = lens({int32_t(c.T), int32_t(c.T / 3), 0});
    Pair y = empty({c.B, c.T, c.N});
    cpu_->norm_linear(x.c, nc, wc, c.act, y.c, c.zero_lens ? &l.c : nullptr);
    gpu_->norm_linear(x.g, ng, wg, c.act, y.g, c.zero_lens ? &l.g : nullptr);
    expect_close(y, what);
  }
}

// A block's closing LayerNorm fused into the next norm_linear (both tile shapes of the float16
// kernel: up to 64 rows and more) against CPU layer_norm + layer_norm + linear; x stays as it was.
TEST_P(CudaOps, NormNormLinear) {
  struct Case {
    int64_t B, T, K, N;
    Activation act;
  };
  for (const Case& c : {Case{1, 16, 256, 2048, Activation::kSwish}, Case{4, 16, 256, 768, Activation::kNone},
                        Case{16, 63, 256, 2048, Activation::kSwish}, Case{3, 41, 512, 300, Activation::kRelu},
                        Case{2, 7, 40, 48, Activation::kNone}}) {
    const std::string what = "norm_norm_linear B" + std::to_string(c.B) + " T" + std::to_string(c.T) + " K" +
                             std::to_string(c.K) + " N" + std::to_string(c.N);
    Pair g1 = weight(random({c.K}, 0.5f, 1.5f)), b1 = weight({c.K}, 0.5f);
    Pair g2 = weight(random({c.K}, 0.5f, 1.5f)), b2 = weight({c.K}, 0.5f);
    Pair w = weight({c.N, c.K}, 1.f / std::sqrt(float(c.K))), b = weight({c.N}, 0.5f);
    const HostTensor xh = random({c.B, c.T, c.K}, -2.f, 3.f);
    Pair x = act(xh), x_out = empty({c.B, c.T, c.K}), y = empty({c.B, c.T, c.N});
    cpu_->norm_norm_linear(x.c, {g1.c, b1.c}, x_out.c, {g2.c, b2.c}, {w.c, b.c}, c.act, y.c);
    gpu_->norm_norm_linear(x.g, {g1.g, b1.g}, x_out.g, {g2.g, b2.g}, {w.g, b.g}, c.act, y.g);
    expect_close(y, what);
    expect_close(x_out, what + " (first norm)");
    expect_close(x, what + " (x unchanged)", 1e-7f);
  }
}

TEST_P(CudaOps, Cmvn) {
  const int64_t B = 2, T = 23, F = 80;
  HostTensor feats = random({B, T, F}, 0.f, 20.f), mean = random({F}, 5.f, 10.f), istd = random({F}, 0.1f, 1.f);
  Pair x = act(feats, /*f32=*/true);
  Pair m{cpu_->upload(mean, DType::kF32), gpu_->upload(mean, DType::kF32)};
  Pair s{cpu_->upload(istd, DType::kF32), gpu_->upload(istd, DType::kF32)};
  Pair y = empty({B, 1, T, F});
  cpu_->cmvn(x.c, m.c, s.c, y.c);
  gpu_->cmvn(x.g, m.g, s.g, y.g);
  expect_close(y, "cmvn");
}

// The CUDA backend convolves channels-last, the CPU one NCHW: the CPU's output, permuted, is the
// reference for the GPU's, which reads the same inputs and weights permuted.
TEST_P(CudaOps, Conv2dDirectAndGemm) {
  ASSERT_TRUE(gpu_->conv_channels_last());
  ASSERT_FALSE(cpu_->conv_channels_last());
  const auto nhwc = [](const HostTensor& t) { return permuted(t, {0, 2, 3, 1}); };
  // Scratch copies of an NCHW host tensor: as is on the CPU, channels-last on the GPU.
  const auto both = [&](const HostTensor& h) {
    const HostTensor g = nhwc(h);
    Pair p{alloc_shape(*cpu_, h.shape(), DType::kF32), alloc_shape(*gpu_, g.shape(), dt_)};
    cpu_->copy_in(h.raw(), p.c);
    gpu_->copy_in(g.raw(), p.g);
    return p;
  };
  struct Case {
    int64_t B, C, H, W, O;
    int stride;
    bool relu;
  };
  // Float16 with C * 9 <= 32 and O % 8 == 0 takes the direct tensor-core kernel (C = 1: one
  // k-step; C = 3, O = 16: two; O = 1240: ten channel chunks, the last partial); the rest and all
  // of float32 im2col + GEMM, C = 1 / 3 / 5 by elements, the others by 16-byte vectors.
  for (const Case& c : {Case{2, 1, 31, 80, 32, 2, true}, Case{3, 16, 15, 39, 24, 2, true},
                        Case{1, 32, 13, 19, 32, 3, false}, Case{4, 1, 7, 9, 8, 2, false},
                        Case{2, 3, 9, 11, 12, 1, true}, Case{2, 5, 12, 17, 40, 2, true},
                        Case{2, 40, 11, 15, 24, 2, true}, Case{1, 1, 9, 11, 1240, 2, true},
                        Case{2, 3, 10, 13, 16, 2, true}}) {
    const int64_t Ho = (c.H - 3) / c.stride + 1, Wo = (c.W - 3) / c.stride + 1;
    const std::string what = "conv2d C" + std::to_string(c.C) + " O" + std::to_string(c.O) + " stride " +
                             std::to_string(c.stride);
    const HostTensor xh = random({c.B, c.C, c.H, c.W}), bh = random({c.O}, -0.5f, 0.5f);
    const float ws = 1.f / std::sqrt(float(9 * c.C));
    const HostTensor wh = random({c.O, c.C, 3, 3}, -ws, ws);
    const Pair x = both(xh);
    const auto check = [&](const Pair& w, const Pair& b, const std::string& label) {
      Pair y = empty({c.B, c.O, Ho, Wo});
      cpu_->conv2d(x.c, w.c, b.c, c.stride, c.relu, y.c);
      HostTensor ref(DType::kF32, {c.B, c.O, Ho, Wo});
      cpu_->copy_out(y.c, ref.data<float>());
      Pair expected = act(nhwc(ref), /*f32=*/true);
      Pair got{expected.c, alloc_shape(*gpu_, {c.B, Ho, Wo, c.O}, dt_)};
      gpu_->conv2d(x.g, w.g, b.g, c.stride, c.relu, got.g);
      expect_close(got, label);
    };
    check({cpu_->upload(wh, DType::kF32), gpu_->upload(nhwc(wh), dt_)}, weight(bh), what);
    // Weights in scratch memory rather than uploaded.
    if (c.C > 1) {
      check(both(wh), act(bh), what + " (scratch weights)");
    }
  }
}

TEST_P(CudaOps, ScaleAddPosEmbed) {
  // Channels-last convolution leaves nothing to flatten: transpose_ct is a clear error here.
  Pair x = act({2, 5, 7, 3});
  Pair y = empty({2, 7, 5, 3});
  try {
    gpu_->transpose_ct(x.g, y.g);
    ADD_FAILURE() << "transpose_ct on cuda did not fail";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("channels-last"), std::string::npos) << e.what();
  }

  const int64_t B = 3, T = 9, D = 64;
  Pair h = act({B, T, D});
  Pair pe = weight({50, D});
  Pair o = empty({B, T, D});
  cpu_->scale_add_pos(h.c, 8.f, &pe.c, o.c);
  gpu_->scale_add_pos(h.g, 8.f, &pe.g, o.g);
  expect_close(o, "scale_add_pos with pos");
  cpu_->scale_add_pos(h.c, 0.5f, nullptr, o.c);
  gpu_->scale_add_pos(h.g, 0.5f, nullptr, o.g);
  expect_close(o, "scale_add_pos without pos");

  const int64_t V = 37;
  Pair table = weight({V, D});
  std::vector<int32_t> ids_host(size_t(B * T));
  for (size_t i = 0; i < ids_host.size(); ++i) ids_host[i] = int32_t((i * 7 + 3) % V);
  Pair ids{cpu_->alloc({B, T}, DType::kI32), gpu_->alloc({B, T}, DType::kI32)};
  cpu_->copy_in(ids_host.data(), ids.c);
  gpu_->copy_in(ids_host.data(), ids.g);
  cpu_->embed(ids.c, table.c, 8.f, pe.c, o.c);
  gpu_->embed(ids.g, table.g, 8.f, pe.g, o.g);
  expect_close(o, "embed");
  // A bad id is reported as an Error at the next synchronization.
  ids_host[5] = int32_t(V);
  gpu_->copy_in(ids_host.data(), ids.g);
  gpu_->embed(ids.g, table.g, 8.f, pe.g, o.g);
  std::vector<float> sink(size_t(o.g.numel()));
  EXPECT_THROW(gpu_->copy_out(o.g, sink.data()), Error);
  gpu_->copy_out(o.g, sink.data());  // reported once, then clear
}

struct AttnCase {
  int64_t Bk, Tq, Tk, heads, dk;
  int qpk = 1;
  bool causal = false, rel = false;
  std::vector<int32_t> key_lens;  // per key batch
  std::string name;
};

class CudaAttention : public CudaOps {
 protected:
  void run(const AttnCase& c) {
    const int64_t Bq = c.Bk * c.qpk, HD = c.heads * c.dk;
    // q from a fused [Bq, Tq, 3 HD] projection, k / v from another: strided column slices.
    Pair qkv = act({Bq, c.Tq, 3 * HD});
    Pair kv = act({c.Bk, c.Tk, 3 * HD});
    AttentionArgs ac, ag;
    ac.q = qkv.c.col_slice(0, HD);
    ag.q = qkv.g.col_slice(0, HD);
    ac.k = kv.c.col_slice(HD, HD);
    ag.k = kv.g.col_slice(HD, HD);
    ac.v = kv.c.col_slice(2 * HD, HD);
    ag.v = kv.g.col_slice(2 * HD, HD);
    Pair l = lens(c.key_lens);
    ac.key_lens = l.c;
    ag.key_lens = l.g;
    ac.heads = ag.heads = int(c.heads);
    ac.queries_per_kv = ag.queries_per_kv = c.qpk;
    ac.causal = ag.causal = c.causal;
    Pair pos, u, v;
    if (c.rel) {
      pos = act({c.Tk, HD});
      u = weight({c.heads, c.dk}, 0.5f);
      v = weight({c.heads, c.dk}, 0.5f);
      ac.pos = pos.c;
      ag.pos = pos.g;
      ac.pos_bias_u = u.c;
      ag.pos_bias_u = u.g;
      ac.pos_bias_v = v.c;
      ag.pos_bias_v = v.g;
    }
    // The output is a strided slice too (the decoder writes into the free Q columns).
    Pair out_wide = empty({Bq, c.Tq, 2 * HD});
    Pair out = out_wide.col_slice(HD, HD);
    ac.out = out.c;
    ag.out = out.g;
    cpu_->attention(ac);
    gpu_->attention(ag);
    expect_close(out, "attention " + c.name);
  }
};

INSTANTIATE_TEST_SUITE_P(Dtypes, CudaAttention, ::testing::Values(DType::kF32, DType::kF16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST_P(CudaAttention, SelfAttentionTileEdges) {
  for (int64_t T : {1, 7, 64, 300, 1100}) {
    const int32_t short_len = int32_t(std::max<int64_t>(1, T / 2 + 1));
    const int64_t Tq = std::min<int64_t>(T, 70);  // all keys, a subset of the queries (keeps the CPU quick)
    run({2, Tq, T, 4, 64, 1, false, false, {int32_t(T), short_len}, "Tk " + std::to_string(T)});
  }
}

TEST_P(CudaAttention, RelPos) {
  for (int64_t T : {1, 7, 64, 300})
    run({2, T, T, 4, 64, 1, false, true, {int32_t(T), int32_t((T + 1) / 2)}, "rel_pos Tk " + std::to_string(T)});
  run({3, 63, 63, 4, 16, 1, false, true, {63, 40, 1}, "rel_pos dk 16"});
  run({1, 20, 20, 2, 128, 1, false, true, {17}, "rel_pos dk 128"});
  run({2, 33, 70, 4, 20, 1, false, true, {70, 9}, "rel_pos dk 20 (unaligned head slices)"});
}

TEST_P(CudaAttention, CausalWithLengths) {
  run({4, 64, 64, 4, 64, 1, true, false, {64, 10, 1, 33}, "causal 64"});
  run({2, 130, 130, 4, 32, 1, true, false, {130, 77}, "causal 130"});
}

TEST_P(CudaAttention, QueriesPerKv) {
  run({2, 9, 70, 4, 64, 3, false, false, {70, 41}, "queries_per_kv 3"});
  run({3, 5, 1, 4, 64, 10, false, false, {1, 1, 1}, "queries_per_kv 10, Tk 1"});
}

TEST_P(CudaAttention, ZeroLengthKeysGiveZeros) {
  run({3, 6, 12, 4, 64, 1, false, false, {12, 0, 5}, "zero-length keys"});
  run({2, 6, 12, 4, 64, 2, true, true, {0, 12}, "zero-length keys, causal, rel_pos"});
}

// The cases above are grids of fewer blocks than SMs: blocks of 16 queries, the keys of a tile
// split over 4 warps and merged. Grids of 1-4 blocks of 64 queries per SM split them over 2 warps
// (240 blocks: one to four per SM from 60 to 240 SMs), larger ones not at all (1,600 blocks: four
// per SM up to 400 SMs).
TEST_P(CudaAttention, LargerGrids) {
  std::vector<int32_t> lens(40);
  for (size_t i = 0; i < lens.size(); ++i) lens[i] = int32_t(1 + (i * 7) % 63);
  run({40, 63, 63, 4, 64, 10, false, false, lens, "decoder source attention, 400 query batches"});
  run({400, 63, 63, 4, 64, 1, true, false, std::vector<int32_t>(400, 63), "decoder self attention, 400 batches"});
  std::vector<int32_t> hyp_lens(60);
  for (size_t i = 0; i < hyp_lens.size(); ++i) hyp_lens[i] = int32_t(1 + (i * 11) % 63);
  run({60, 63, 63, 4, 64, 1, true, false, hyp_lens, "decoder self attention, 60 batches"});
  run({60, 40, 100, 4, 64, 1, false, true, std::vector<int32_t>(60, 97), "rel_pos, 60 batches, 2 key tiles"});
  run({300, 40, 40, 4, 64, 1, false, true, std::vector<int32_t>(300, 37), "rel_pos, 300 batches"});
}

TEST_P(CudaAttention, LongKeys) { run({1, 8, 5000, 4, 64, 1, false, false, {4999}, "Tk 5000"}); }

// Keys in a ring pool (the streaming encoder's K/V history): per item a slot, the frame of its
// first key and a key count, wrapping around the slot's rows; rel-pos rows by frame.
struct RingCase {
  int64_t slots, R, Tq, heads, dk;
  bool rel;
  std::vector<int32_t> slot, start, len;  // per item
  std::string name;
};

TEST_P(CudaAttention, RingPool) {
  for (const RingCase& c :
       {RingCase{3, 12, 4, 4, 16, true, {2, 0, 1}, {5, 0, 20}, {12, 4, 7}, "rel_pos dk 16, wraps"},
        RingCase{4, 48, 16, 4, 64, true, {3, 1}, {100, 40}, {48, 17}, "rel_pos dk 64, full ring"},
        RingCase{2, 80, 16, 4, 64, false, {1, 0}, {70, 0}, {80, 0}, "no pos, 80 keys, zero keys"},
        RingCase{2, 70, 9, 4, 20, true, {0, 1}, {65, 3}, {70, 33}, "rel_pos dk 20 (unaligned)"}}) {
    const int64_t B = int64_t(c.slot.size()), HD = c.heads * c.dk;
    Pair q = act({B, c.Tq, 3 * HD});
    Pair pool = act({c.slots * c.R, 2 * HD});
    Pair sl = lens(c.slot), st = lens(c.start), kl = lens(c.len);
    AttentionArgs ac, ag;
    ac.q = q.c.col_slice(0, HD);
    ag.q = q.g.col_slice(0, HD);
    ac.k = pool.c.col_slice(0, HD);
    ag.k = pool.g.col_slice(0, HD);
    ac.v = pool.c.col_slice(HD, HD);
    ag.v = pool.g.col_slice(HD, HD);
    ac.key_lens = kl.c;
    ag.key_lens = kl.g;
    ac.kv_slot = sl.c;
    ag.kv_slot = sl.g;
    ac.key_start = st.c;
    ag.key_start = st.g;
    ac.ring_rows = ag.ring_rows = int(c.R);
    ac.heads = ag.heads = int(c.heads);
    Pair pos, u, v;
    if (c.rel) {
      pos = act({200, HD});
      u = weight({c.heads, c.dk}, 0.5f);
      v = weight({c.heads, c.dk}, 0.5f);
      ac.pos = pos.c;
      ag.pos = pos.g;
      ac.pos_bias_u = u.c;
      ag.pos_bias_u = u.g;
      ac.pos_bias_v = v.c;
      ag.pos_bias_v = v.g;
    }
    Pair out = empty({B, c.Tq, HD});
    ac.out = out.c;
    ag.out = out.g;
    cpu_->attention(ac);
    gpu_->attention(ag);
    expect_close(out, "attention ring " + c.name);
  }
}

// ring_write (the last min(len, R) rows of each item into its slot, strided input) and ring_read
// (frames before 0 read the fill row).
TEST_P(CudaOps, RingWriteRead) {
  const int64_t S = 4, R = 6, B = 3, T = 9, C = 40;
  Pair pool = act({S * R, C});
  Pair x_wide = act({B, T, 3 * C});
  Pair x = x_wide.col_slice(C, C);
  Pair l = lens({9, 4, 0}), sl = lens({3, 0, 2}), first = lens({13, 2, 5});
  cpu_->ring_write(x.c, l.c, sl.c, first.c, int(R), pool.c);
  gpu_->ring_write(x.g, l.g, sl.g, first.g, int(R), pool.g);
  expect_close(pool, "ring_write");
  Pair fill = weight({C});
  Pair y = empty({B, R + 2, C});
  Pair read_first = lens({14, -3, 0});
  cpu_->ring_read(pool.c, sl.c, read_first.c, int(R), fill.c, y.c);
  gpu_->ring_read(pool.g, sl.g, read_first.g, int(R), fill.g, y.g);
  expect_close(y, "ring_read");
  Pair bad = lens({0, 1});
  EXPECT_THROW(gpu_->ring_read(pool.g, bad.g, read_first.g, int(R), fill.g, y.g), Error);  // 2 slots, 3 items
  EXPECT_THROW(gpu_->ring_write(x.g, l.g, sl.g, first.g, 5, pool.g), Error);  // 24 rows are not slots of 5
}

TEST_P(CudaOps, AttentionRejectsHugeHeads) {
  Pair q = act({1, 2, 256});
  Pair l = lens({2});
  AttentionArgs a;
  a.q = a.k = a.v = a.out = q.g;
  a.key_lens = l.g;
  a.heads = 1;  // dk 256 > 128
  EXPECT_THROW(gpu_->attention(a), Error);
}

TEST_P(CudaOps, ConvModule) {
  struct Case {
    int64_t B, T, D;
    bool layer_norm;
    Activation act;
  };
  for (const Case& c : {Case{2, 40, 64, false, Activation::kSwish}, Case{1, 1, 64, true, Activation::kSwish},
                        Case{3, 5, 256, true, Activation::kRelu}, Case{2, 63, 256, false, Activation::kSwish},
                        Case{1, 17, 512, true, Activation::kSwish}, Case{16, 70, 256, false, Activation::kSwish},
                        Case{16, 70, 256, true, Activation::kSwish}}) {
    const int64_t K = 15;
    Pair x = act(random({c.B, c.T, 2 * c.D}, -2.f, 2.f));
    Pair w = weight({c.D, K}, 0.3f), b = weight({c.D}, 0.5f);
    Pair g, be;
    ConvModuleArgs ac, ag;
    if (c.layer_norm) {
      g = weight(random({c.D}, 0.5f, 1.5f));
      be = weight({c.D}, 0.5f);
      ac.norm = {g.c, be.c};
      ag.norm = {g.g, be.g};
    }
    Pair l = lens(std::vector<int32_t>(size_t(c.B), int32_t(c.T)));
    Pair y = empty({c.B, c.T, c.D});
    ac.x = x.c;
    ag.x = x.g;
    ac.lens = l.c;
    ag.lens = l.g;
    ac.dw_w = w.c;
    ag.dw_w = w.g;
    ac.dw_b = b.c;
    ag.dw_b = b.g;
    ac.y = y.c;
    ag.y = y.g;
    cpu_->conv_module(ac, c.act);
    gpu_->conv_module(ag, c.act);
    expect_close(y, "conv_module T" + std::to_string(c.T) + " D" + std::to_string(c.D) +
                        (c.layer_norm ? " layer_norm" : " folded batch_norm"));
  }
}

// The streaming forms: a causal conv with each item's left context (pointwise_conv1 outputs of its
// K-1 earlier frames), and a 'same' conv reading frames past lens[b] as zeros.
TEST_P(CudaOps, ConvModuleStreaming) {
  for (const bool layer_norm : {false, true}) {
    const int64_t B = 3, T = 16, D = 64, K = 15;
    Pair x = act(random({B, T, 2 * D}, -2.f, 2.f));
    Pair left = act(random({B, K - 1, 2 * D}, -2.f, 2.f));
    Pair w = weight({D, K}, 0.3f), b = weight({D}, 0.5f), pad = weight({D}, 0.5f);
    Pair g = weight(random({D}, 0.5f, 1.5f)), be = weight({D}, 0.5f);
    Pair l = lens({16, 3, 9});
    for (const bool causal : {true, false}) {
      Pair y = empty({B, T, D});
      ConvModuleArgs ac, ag;
      ac.x = x.c, ag.x = x.g;
      ac.lens = l.c, ag.lens = l.g;
      ac.dw_w = w.c, ag.dw_w = w.g;
      ac.dw_b = b.c, ag.dw_b = b.g;
      if (layer_norm) ac.norm = {g.c, be.c}, ag.norm = {g.g, be.g};
      ac.y = y.c, ag.y = y.g;
      ac.causal = ag.causal = causal;
      if (causal) {
        ac.causal_pad = pad.c, ag.causal_pad = pad.g;
        ac.left = left.c, ag.left = left.g;
      } else {
        ac.zero_beyond_lens = ag.zero_beyond_lens = true;
      }
      cpu_->conv_module(ac, Activation::kSwish);
      gpu_->conv_module(ag, Activation::kSwish);
      expect_close(y, std::string("conv_module ") + (causal ? "causal, left context" : "zero beyond lens") +
                          (layer_norm ? ", layer_norm" : ""));
    }
  }
}

TEST_P(CudaOps, LogSoftmax) {
  for (int64_t V : {1, 50, 4233}) {
    Pair x = act(random({13, V}, -8.f, 8.f));
    Pair y = empty({13, V}, /*f32=*/true);
    cpu_->log_softmax(x.c, y.c);
    gpu_->log_softmax(x.g, y.g);
    expect_close(y, "log_softmax V" + std::to_string(V));
  }
}

TEST_P(CudaOps, WrongDtypeIsAnError) {
  Pair x = act({4, 8});
  Tensor f32 = gpu_->alloc({4, 8}, dt_ == DType::kF32 ? DType::kF16 : DType::kF32);
  LayerNormWeights w{weight({8}).g, weight({8}).g};
  EXPECT_THROW(gpu_->layer_norm(f32, w, x.g), Error);
}

// A small encoder-like block inside run_cached, with and without CUDA graphs: first call runs and
// captures, later calls replay (new inputs each time), and a different arena position recaptures.
class CudaGraphs : public ::testing::TestWithParam<std::tuple<DType, bool>> {};

TEST_P(CudaGraphs, RunCachedMatchesCpu) {
  SKIP_WITHOUT_GPU();
  const auto [dt, graphs] = GetParam();
  auto cpu = make_cpu_backend();
  CudaBackendOptions o;
  o.dtype = dt;
  o.cuda_graphs = graphs;
  auto gpu = make_cuda_backend(o);
  std::mt19937 rng(7);
  const auto random = [&](const Shape& s, float scale) {
    HostTensor t(DType::kF32, s);
    std::uniform_real_distribution<float> u(-scale, scale);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = half_to_float(float_to_half(u(rng)));
    return t;
  };
  const int64_t B = 2, T = 19, d = 64, H = 4, V = 33;
  struct Weights {
    LinearWeights qkv, out, pos, ctc;
    LayerNormWeights ln;
    Tensor u, v, pe;
  };
  const HostTensor wq = random({3 * d, d}, 0.125f), bq = random({3 * d}, 0.1f), wo = random({d, d}, 0.125f),
                   bo = random({d}, 0.1f), wp = random({d, d}, 0.125f), wc = random({V, d}, 0.125f),
                   bc = random({V}, 0.1f), g = random({d}, 1.f), be = random({d}, 0.5f), u = random({H, d / H}, 0.5f),
                   v = random({H, d / H}, 0.5f), pe = random({T, d}, 1.f);
  const auto load = [&](Backend& b, DType t) {
    Weights w;
    w.qkv = {b.upload(wq, t), b.upload(bq, t)};
    w.out = {b.upload(wo, t), b.upload(bo, t)};
    w.pos = {b.upload(wp, t), Tensor{}};
    w.ctc = {b.upload(wc, t), b.upload(bc, t)};
    w.ln = {b.upload(g, t), b.upload(be, t)};
    w.u = b.upload(u, t);
    w.v = b.upload(v, t);
    w.pe = b.upload(pe, t);
    return w;
  };
  const Weights wcpu = load(*cpu, DType::kF32), wgpu = load(*gpu, dt);

  // One forward: inputs and outputs allocated before run_cached, intermediates inside.
  const auto forward = [&](Backend& b, const Weights& w, const HostTensor& x_host, const std::vector<int32_t>& l_host,
                           int pad_allocs) {
    b.reset_arena();
    for (int i = 0; i < pad_allocs; ++i) b.alloc({1000}, DType::kF32);  // moves the arena position
    const DType t = b.act_dtype();
    Tensor x = b.alloc({B, T, d}, t);
    b.copy_in(x_host.data<float>(), x);
    Tensor lens = b.alloc({B}, DType::kI32);
    b.copy_in(l_host.data(), lens);
    Tensor out = b.alloc({B, T, V}, DType::kF32);
    b.run_cached("block", [&] {
      Tensor ln = b.alloc({B, T, d}, t), qkv = b.alloc({B, T, 3 * d}, t), ctx = b.alloc({B, T, d}, t);
      Tensor pos = b.alloc({T, d}, t), logits = b.alloc({B, T, V}, t);
      b.layer_norm(x, w.ln, ln, &lens);
      b.linear(ln, w.qkv, Activation::kNone, nullptr, qkv);
      b.linear(w.pe, w.pos, Activation::kNone, nullptr, pos);
      AttentionArgs a;
      a.q = qkv.col_slice(0, d);
      a.k = qkv.col_slice(d, d);
      a.v = qkv.col_slice(2 * d, d);
      a.key_lens = lens;
      a.heads = int(H);
      a.pos = pos;
      a.pos_bias_u = w.u;
      a.pos_bias_v = w.v;
      a.out = ctx;
      b.attention(a);
      b.linear(ctx, w.out, Activation::kNone, &x, x);
      b.layer_norm(x, w.ln, x);
      b.linear(x, w.ctc, Activation::kNone, nullptr, logits);
      b.log_softmax(logits, out);
    });
    std::vector<float> r(size_t(B * T * V));
    b.copy_out(out, r.data());
    return r;
  };

  for (int call = 0; call < 4; ++call) {
    const HostTensor x = random({B, T, d}, 1.f);
    const std::vector<int32_t> l = {int32_t(T), int32_t(T - 1 - call * 3)};
    const int pad = call == 3 ? 5 : 0;  // the last call starts elsewhere in the arena: recapture
    const std::vector<float> want = forward(*cpu, wcpu, x, l, pad), got = forward(*gpu, wgpu, x, l, pad);
    float diff = 0.f;
    for (size_t i = 0; i < want.size(); ++i) diff = std::max(diff, std::fabs(want[i] - got[i]));
    std::printf("  %-8s run_cached %s call %d: max diff %.2e\n", std::string(dtype_name(dt)).c_str(),
                graphs ? "graphs" : "eager", call, diff);
    EXPECT_LE(diff, dt == DType::kF32 ? 1e-3f : 3e-2f) << "call " << call << (graphs ? " with" : " without")
                                                         << " graphs";
  }
}

INSTANTIATE_TEST_SUITE_P(DtypesAndGraphs, CudaGraphs,
                         ::testing::Combine(::testing::Values(DType::kF32, DType::kF16), ::testing::Bool()),
                         [](const auto& info) {
                           return std::string(dtype_name(std::get<0>(info.param))) +
                                  (std::get<1>(info.param) ? "_graphs" : "_eager");
                         });

}  // namespace
}  // namespace wenet_rt
