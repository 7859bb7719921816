// The CPU backend: float32 activations; GEMMs on weights packed once at their first use (FP32, or
// INT8 with dynamically quantized activations when asked for), fused vectorized kernels for the
// rest (kernels/, compiled per instruction set and picked at run time), one thread pool reused by
// every op, and a scratch arena that stops allocating once it has seen the largest forward.
//
// Ops are split over files by what they fuse: linear.cc (linear, norm_linear, layer_norm,
// conv2d), attention.cc, conv_module.cc, vocab_ops.cc (log-softmax, top-k, gather); this file
// holds memory, profiling and the small element-wise ops.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/kernels/kernels.h"
#include "backend/cpu/thread_pool.h"

namespace wenet_rt::cpu {

// 64-byte aligned host memory.
struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};
using AlignedBuffer = std::unique_ptr<std::byte[], AlignedFree>;
AlignedBuffer aligned_buffer(size_t bytes);

// Bump allocator for per-forward scratch: pointers stay valid until reset(); after a reset that
// followed growth, one block of the high-water size replaces the chunks (no allocation in steady
// state).
class Arena {
 public:
  void* allocate(size_t bytes);
  void reset();
  size_t capacity() const;

 private:
  std::vector<std::pair<AlignedBuffer, size_t>> blocks_;  // buffer, size
  size_t used_ = 0;  // in the last block
  size_t total_ = 0, high_water_ = 0;
};

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(const CpuBackendOptions& opts);
  std::string name() const override { return "cpu"; }
  DType act_dtype() const override { return DType::kF32; }

  Tensor upload(const HostTensor& t, DType dtype) override;
  Tensor zeros(const Shape& shape, DType dtype) override;
  Tensor alloc(std::initializer_list<int64_t> shape, DType dtype) override;
  void reset_arena() override { arena_.reset(); }
  void copy_in(const void* host, const Tensor& dst) override;
  void copy_out(const Tensor& src, void* host) override;
  void set_profiling(bool on) override;
  std::vector<KernelTime> take_profile() override;

  void linear(const Tensor& x, const LinearWeights& w, Activation act, const Tensor* residual,
              const Tensor& y) override;
  void norm_linear(const Tensor& x, const LayerNormWeights& norm, const LinearWeights& w, Activation act,
                   const Tensor& y, const Tensor* zero_lens) override;
  void layer_norm(const Tensor& x, const LayerNormWeights& w, const Tensor& y, const Tensor* zero_lens) override;
  void cmvn(const Tensor& x, const Tensor& mean, const Tensor& istd, const Tensor& y) override;
  void conv2d(const Tensor& x, const Tensor& w, const Tensor& b, int stride, bool relu, const Tensor& y) override;
  void transpose_ct(const Tensor& x, const Tensor& y) override;
  void scale_add_pos(const Tensor& x, float scale, const Tensor* pos, const Tensor& y) override;
  void embed(const Tensor& ids, const Tensor& table, float scale, const Tensor& pos, const Tensor& y,
             const Tensor* positions) override;
  void attention(const AttentionArgs& a) override;
  void conv_module(const ConvModuleArgs& a, Activation act) override;
  void ring_write(const Tensor& x, const Tensor& lens, const Tensor& slots, const Tensor& first, int ring_rows,
                  const Tensor& pool) override;
  void ring_read(const Tensor& pool, const Tensor& slots, const Tensor& first, int ring_rows, const Tensor& fill,
                 const Tensor& y) override;
  void log_softmax(const Tensor& x, const Tensor& y) override;
  void log_softmax_top_k(const Tensor& x, int blank, const Tensor& top_ids, const Tensor& top_logp,
                         const Tensor& blank_logp) override;
  void linear_log_softmax_gather(const Tensor& x, const LinearWeights& w, int vocab, const Tensor& targets,
                                 const Tensor& out, const Tensor* rows) override;
  bool supports_prefix_tries() const override { return true; }

 private:
  // A linear layer's weights as the kernels read them, made at the layer's first use: FP32 panels,
  // or (INT8 backend) int8 panels with their scales.
  struct PackedLinear {
    int64_t n = 0, k = 0;
    PackedB fp32;
    PackedInt8 int8;
    AlignedBuffer fp32_storage, int8_storage;
  };
  // Packed weights of `w` [N, K] in the form asked for: cached when w lives in uploaded memory
  // (weights), else packed into the arena for this call (in `temp`).
  const PackedLinear& packed(const Tensor& w, bool int8, PackedLinear& temp);
  bool is_uploaded(const void* p) const;
  // Conv2d weights [O, C, kh, kw] quantized per output channel for the INT8 subsampling conv.
  struct QuantConv {
    int64_t o = 0, k = 0, k4 = 0;
    const int8_t* w = nullptr;  // [O][k4]
    const float* scale = nullptr;
    const int32_t* rowsum = nullptr;
    AlignedBuffer storage;
  };
  const QuantConv& quant_conv(const Tensor& w, QuantConv& temp);
  // The GEMM of linear(): C = epilogue(x W^T), INT8 where w holds int8 panels, else FP32.
  void matmul(const Tensor& x, const PackedLinear& w, bool int8, const Epilogue& ep, float* c, int64_t ldc);
  float* scratch(int64_t floats) { return static_cast<float*>(arena_.allocate(size_t(floats) * sizeof(float))); }

  // Times one op when profiling is on (wall clock: ops are synchronous here).
  class Scope {
   public:
    Scope(CpuBackend* b, const char* op) : b_(b->profiling_ ? b : nullptr), op_(op) {
      if (b_) t0_ = std::chrono::steady_clock::now();
    }
    ~Scope();

   private:
    CpuBackend* b_;
    const char* op_;
    std::chrono::steady_clock::time_point t0_;
  };

  CpuBackendOptions opts_;
  const KernelTable& kt_;
  ThreadPool pool_;
  std::vector<AlignedBuffer> weights_;
  std::map<const std::byte*, const std::byte*> uploaded_;  // start -> end of every upload
  std::unordered_map<const void*, std::unique_ptr<PackedLinear>> packed_;
  std::unordered_map<const void*, std::unique_ptr<QuantConv>> quant_conv_;
  Arena arena_;
  bool profiling_ = false;
  std::map<std::string, KernelTime> profile_;
};

}  // namespace wenet_rt::cpu
