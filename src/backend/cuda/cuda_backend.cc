// The CUDA backend: activations in float16 (tensor-core GEMMs, FP32 accumulation and statistics)
// or float32 (pure FP32, no TF32), GEMMs through cuBLASLt with cached plans, the other ops as the
// fused kernels of kernels/, scratch from a reserved device arena, and run_cached() capturing a
// CUDA graph per key on first use and replaying it afterwards.
//
// A backend object is used by one thread at a time (its stream, arena and caches are not locked).
// Environment: WENET_RT_CUDA_ARENA_MB (initial arena reservation, default 256; the arena grows by
// chunks outside graph capture), WENET_RT_NORM_GEMM_MAX_ROWS (largest row count for the fused
// LayerNorm + GEMM kernel, default 64; 0 turns it off), WENET_RT_SPLIT_K_MAX_ROWS (the same for
// the split-K GEMM that takes linear() from cuBLASLt), WENET_RT_CUDA_SYNC=1 (synchronize and
// check after every op outside capture: for locating a failing kernel), WENET_RT_PDL=1 / 0 (launch the
// kernels of kernels/ with / without Programmatic Dependent Launch, where supported: compute
// capability 9.0+, see kernels/launch.cuh; else CudaBackendOptions::programmatic_launch decides).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cublaslt_gemm.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_arena.h"
#include "backend/cuda/kernels/kernels.h"
#include "backend/cuda/pinned_staging.h"
#include "backend/op_checks.h"

namespace wenet_rt {
namespace {

namespace ck = cuda_kernels;

constexpr size_t kDefaultArenaMiB = 256;
// Linear layers of up to this many rows go to the backend's own GEMM kernels (latency-bound
// there: they fetch their weights while the previous kernel runs); more rows to LayerNorm +
// cuBLASLt, faster there (H200: 4x256 frames 0.83 against 0.97 ms with a limit of 256).
constexpr size_t kDefaultOwnGemmMaxRows = 64;
// split_k_gemm's workspace: up to 4 MB of partials (64 rows x 256 columns x K = 16,384) and a
// count per tile (64 rows x 4,096 columns).
constexpr int64_t kSplitKWorkspaceFloats = int64_t(1) << 20, kSplitKCounters = 256;
constexpr size_t kGemmWorkspaceBytes = size_t(32) << 20;  // cuBLASLt's recommendation for Hopper
// Logits of linear_log_softmax_gather's fallback: a chunk that stays in L2 between the GEMM writing
// it and the kernel reading it (H200, K 256, 10^5 rows: 32 MB chunks 1.46 ms, 16 MB 1.67 ms).
constexpr size_t kGatherScratchBytes = size_t(32) << 20;

size_t env_count(const char* name, size_t fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const unsigned long long n = std::strtoull(v, &end, 10);
  WENET_CHECK(end && *end == '\0' && std::isdigit(static_cast<unsigned char>(v[0])),
              "environment variable {}: expected a non-negative integer, got '{}'", name, v);
  return size_t(n);
}

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

ck::Act to_kernel_act(Activation a) {
  switch (a) {
    case Activation::kRelu: return ck::Act::kRelu;
    case Activation::kSwish: return ck::Act::kSwish;
    case Activation::kNone: break;
  }
  return ck::Act::kNone;
}

// Owning device allocation (persistent: weights, GEMM workspace, staging).
struct DeviceBuffer {
  void* ptr = nullptr;
  size_t bytes = 0;
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t n) : bytes(n) { WENET_CUDA_CHECK(cudaMalloc(&ptr, n ? n : 1)); }
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr(std::exchange(o.ptr, nullptr)), bytes(std::exchange(o.bytes, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    std::swap(ptr, o.ptr);
    std::swap(bytes, o.bytes);
    return *this;
  }
  ~DeviceBuffer() {
    if (ptr) cudaFree(ptr);
  }
};

struct GraphExec {
  cudaGraphExec_t exec = nullptr;
  DeviceArena::Mark end;  // arena position after the body, restored after each replay
  GraphExec(cudaGraphExec_t e, DeviceArena::Mark m) : exec(e), end(m) {}
  GraphExec(GraphExec&& o) noexcept : exec(std::exchange(o.exec, nullptr)), end(o.end) {}
  GraphExec& operator=(GraphExec&&) = delete;
  ~GraphExec() {
    if (exec) cudaGraphExecDestroy(exec);
  }
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(const CudaBackendOptions& o) : device_(o.device), dtype_(o.dtype), graphs_(o.cuda_graphs) {
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
      cudaGetLastError();  // clear the sticky-free error so later CUDA calls start clean
      fail("no CUDA device: {}", e != cudaSuccess ? cudaGetErrorString(e) : "cudaGetDeviceCount found none");
    }
    WENET_CHECK(o.device >= 0 && o.device < count, "cuda backend: device {} out of range, {} device(s) present",
                o.device, count);
    WENET_CHECK(dtype_ == DType::kF16 || dtype_ == DType::kF32,
                "cuda backend: activation dtype must be float16 or float32, got {}", dtype_name(dtype_));
    WENET_CUDA_CHECK(cudaSetDevice(device_));
    if (o.stream) {
      stream_ = static_cast<cudaStream_t>(o.stream);
    } else {
      WENET_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
      own_stream_ = true;
    }
    try {
      const size_t arena_mib = env_count("WENET_RT_CUDA_ARENA_MB", kDefaultArenaMiB);
      WENET_CHECK(arena_mib > 0, "environment variable WENET_RT_CUDA_ARENA_MB: expected a positive number of MiB");
      arena_ = std::make_unique<DeviceArena>(arena_mib << 20);
      gemm_workspace_ = DeviceBuffer(kGemmWorkspaceBytes);
      gemm_ = std::make_unique<CublasLtGemm>(dtype_, gemm_workspace_.ptr, gemm_workspace_.bytes);
      if (dtype_ == DType::kF16) {
        split_k_partials_ = DeviceBuffer(kSplitKWorkspaceFloats * sizeof(float));
        split_k_counters_ = DeviceBuffer(kSplitKCounters * sizeof(unsigned));
        WENET_CUDA_CHECK(cudaMemsetAsync(split_k_counters_.ptr, 0, split_k_counters_.bytes, stream_));
      }
      WENET_CUDA_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&error_flag_), 4 * sizeof(int32_t), cudaHostAllocMapped));
      std::memset(error_flag_, 0, 4 * sizeof(int32_t));
      WENET_CUDA_CHECK(cudaHostGetDevicePointer(reinterpret_cast<void**>(&error_flag_device_), error_flag_, 0));
    } catch (...) {
      release();
      throw;
    }
    norm_gemm_max_rows_ = int64_t(env_count("WENET_RT_NORM_GEMM_MAX_ROWS", kDefaultOwnGemmMaxRows));
    split_k_max_rows_ = int64_t(env_count("WENET_RT_SPLIT_K_MAX_ROWS", kDefaultOwnGemmMaxRows));
    const char* sync = std::getenv("WENET_RT_CUDA_SYNC");
    debug_sync_ = sync && *sync && std::strcmp(sync, "0") != 0;
    pdl_ = env_count("WENET_RT_PDL", o.programmatic_launch ? 1 : 0) != 0 && ck::programmatic_launch_supported(device_);
  }

  ~CudaBackend() override { release(); }

  std::string name() const override { return "cuda"; }
  DType act_dtype() const override { return dtype_; }
  bool programmatic_launch() const override { return pdl_; }

  // --- memory -----------------------------------------------------------------------------------
  Tensor upload(const HostTensor& t, DType dtype) override {
    begin_op("upload", /*capturable=*/false);
    WENET_CHECK(dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kI32,
                "cuda upload: expected float32, float16 or int32, got {}", dtype_name(dtype));
    const int64_t n = t.numel();
    std::vector<std::byte> bytes(size_t(n) * dtype_size(dtype));
    if (dtype == DType::kI32 && t.dtype() == DType::kI32) {
      std::memcpy(bytes.data(), t.raw(), bytes.size());
    } else if (dtype == DType::kF32 && t.dtype() == DType::kF32) {
      std::memcpy(bytes.data(), t.raw(), bytes.size());
    } else {
      const HostTensor f = t.to_f32();
      const float* src = f.data<float>();
      for (int64_t i = 0; i < n; ++i) {
        if (dtype == DType::kF16) {
          const uint16_t h = float_to_half(src[i]);
          std::memcpy(bytes.data() + 2 * i, &h, 2);
        } else if (dtype == DType::kI32) {
          const int32_t v = int32_t(src[i]);
          std::memcpy(bytes.data() + 4 * i, &v, 4);
        } else {
          std::memcpy(bytes.data() + 4 * i, &src[i], 4);
        }
      }
    }
    DeviceBuffer buf(bytes.size());
    WENET_CUDA_CHECK(cudaMemcpyAsync(buf.ptr, bytes.data(), bytes.size(), cudaMemcpyHostToDevice, stream_));
    WENET_CUDA_CHECK(cudaStreamSynchronize(stream_));
    Tensor r = make_view(buf.ptr, t.shape(), dtype);
    weights_.push_back(std::move(buf));
    return r;
  }

  Tensor zeros(const Shape& shape, DType dtype) override {
    begin_op("zeros", /*capturable=*/false);
    WENET_CHECK(dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kI32,
                "cuda zeros: expected float32, float16 or int32, got {}", dtype_name(dtype));
    const size_t bytes = size_t(shape_numel(shape)) * dtype_size(dtype);
    size_t free_bytes = 0, total_bytes = 0;
    WENET_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    WENET_CHECK(bytes <= free_bytes, "cuda: {:.2f} GB of device memory asked for, {:.2f} GB free (of {:.2f} GB)",
                bytes / 1e9, free_bytes / 1e9, total_bytes / 1e9);
    DeviceBuffer buf(bytes);
    WENET_CUDA_CHECK(cudaMemsetAsync(buf.ptr, 0, bytes, stream_));
    WENET_CUDA_CHECK(cudaStreamSynchronize(stream_));
    Tensor r = make_view(buf.ptr, shape, dtype);
    weights_.push_back(std::move(buf));
    return r;
  }

  Tensor alloc(std::initializer_list<int64_t> shape, DType dtype) override {
    int64_t n = 1;
    for (int64_t d : shape) {
      WENET_CHECK(d >= 0, "cuda alloc: negative dimension {}", d);
      n *= d;
    }
    WENET_CHECK(dtype != DType::kBF16 && dtype != DType::kI64, "cuda alloc: unsupported dtype {}", dtype_name(dtype));
    ensure_device();
    return make_view(arena_->alloc(size_t(n) * dtype_size(dtype), !capturing_), Shape(shape), dtype);
  }

  void reset_arena() override {
    WENET_CHECK(!capturing_, "reset_arena inside a run_cached body being captured");
    arena_->reset();
  }

  void copy_in(const void* host, const Tensor& dst) override {
    begin_op("copy_in", /*capturable=*/false);
    const int64_t rows = dst.rows(), cols = dst.cols();
    if (rows * cols == 0) return;
    if (dst.dtype == DType::kF16) {  // host float32 -> staging -> convert on the device
      ensure_staging(size_t(rows * cols) * sizeof(float));
      upload_2d(staging_.ptr, size_t(cols) * sizeof(float), host, size_t(cols) * sizeof(float),
                size_t(cols) * sizeof(float), size_t(rows));
      ck::convert_copy_2d(staging_.ptr, cols, false, dst.data, dst.row_stride(), true, rows, cols, kernel_stream());
      after_launch("copy_in");
      return;
    }
    WENET_CHECK(dst.dtype == DType::kF32 || dst.dtype == DType::kI32, "copy_in: unsupported dtype {}",
                dtype_name(dst.dtype));
    const size_t es = dtype_size(dst.dtype);
    upload_2d(dst.data, size_t(dst.row_stride()) * es, host, size_t(cols) * es, size_t(cols) * es, size_t(rows));
    after_launch("copy_in");
  }

  void copy_out(const Tensor& src, void* host) override {
    begin_op("copy_out", /*capturable=*/false);
    const int64_t rows = src.rows(), cols = src.cols();
    if (rows * cols > 0) {
      if (src.dtype == DType::kF16) {  // convert on the device into float32 staging, then copy
        ensure_staging(size_t(rows * cols) * sizeof(float));
        ck::convert_copy_2d(src.data, src.row_stride(), true, staging_.ptr, cols, false, rows, cols, kernel_stream());
        after_launch("copy_out");
        WENET_CUDA_CHECK(cudaMemcpyAsync(host, staging_.ptr, size_t(rows * cols) * sizeof(float),
                                         cudaMemcpyDeviceToHost, stream_));
      } else {
        WENET_CHECK(src.dtype == DType::kF32 || src.dtype == DType::kI32, "copy_out: unsupported dtype {}",
                    dtype_name(src.dtype));
        const size_t es = dtype_size(src.dtype);
        WENET_CUDA_CHECK(cudaMemcpy2DAsync(host, size_t(cols) * es, src.data, size_t(src.row_stride()) * es,
                                           size_t(cols) * es, size_t(rows), cudaMemcpyDeviceToHost, stream_));
      }
    }
    synchronize();
  }

  void synchronize() override {
    WENET_CUDA_CHECK(cudaStreamSynchronize(stream_));
    check_device_errors();
  }

  double time_ms(const std::function<void()>& fn) override {
    ensure_device();
    if (!timer_start_) {
      WENET_CUDA_CHECK(cudaEventCreate(&timer_start_));
      WENET_CUDA_CHECK(cudaEventCreate(&timer_end_));
    }
    WENET_CUDA_CHECK(cudaEventRecord(timer_start_, stream_));
    fn();
    WENET_CUDA_CHECK(cudaEventRecord(timer_end_, stream_));
    synchronize();
    float ms = 0;
    WENET_CUDA_CHECK(cudaEventElapsedTime(&ms, timer_start_, timer_end_));
    return ms;
  }

  HostMemory alloc_host(size_t bytes) override {
    ensure_device();
    void* p = nullptr;
    WENET_CUDA_CHECK(cudaHostAlloc(&p, bytes ? bytes : 1, cudaHostAllocDefault));
    return HostMemory(p, [](void* q) { cudaFreeHost(q); });
  }

  void copy_out_async(const Tensor& src, void* host) override {
    begin_op("copy_out_async", /*capturable=*/false);
    WENET_CHECK(src.dtype == DType::kF32 || src.dtype == DType::kI32, "copy_out_async: expected float32 or int32, got {}",
                dtype_name(src.dtype));
    const size_t es = dtype_size(src.dtype);
    const int64_t rows = src.rows(), cols = src.cols();
    if (rows * cols == 0) return;
    WENET_CUDA_CHECK(cudaMemcpy2DAsync(host, size_t(cols) * es, src.data, size_t(src.row_stride()) * es,
                                       size_t(cols) * es, size_t(rows), cudaMemcpyDeviceToHost, stream_));
  }

  uint64_t fence() override {
    ensure_device();
    if (fences_.empty()) {
      fences_.resize(kFenceRing);
      for (cudaEvent_t& e : fences_) WENET_CUDA_CHECK(cudaEventCreate(&e));
    }
    const uint64_t id = next_fence_++;
    WENET_CUDA_CHECK(cudaEventRecord(fences_[id % kFenceRing], stream_));
    return id;
  }

  void wait(uint64_t id) override {
    WENET_CHECK(id < next_fence_ && next_fence_ - id <= kFenceRing, "wait: fence {} is unknown or recycled", id);
    WENET_CUDA_CHECK(cudaEventSynchronize(fences_[id % kFenceRing]));
    check_device_errors();
  }

  double elapsed_ms(uint64_t from, uint64_t to) override {
    WENET_CHECK(to < next_fence_ && next_fence_ - from <= kFenceRing && from <= to, "elapsed_ms: fences {}..{} unknown",
                from, to);
    float ms = 0;
    WENET_CUDA_CHECK(cudaEventElapsedTime(&ms, fences_[from % kFenceRing], fences_[to % kFenceRing]));
    return ms;
  }

  void* native_stream() override { return stream_; }

  size_t device_bytes() const override {
    size_t n = arena_->reserved_bytes() + gemm_workspace_.bytes + staging_.bytes;
    for (const DeviceBuffer& w : weights_) n += w.bytes;
    return n;
  }

  size_t cached_graphs() const override { return graphs_cache_.size(); }

  void set_profiling(bool on) override {
    if (on == profiling_) return;
    synchronize();
    profiling_ = on;
    clear_profile();
  }

  std::vector<KernelTime> take_profile() override {
    synchronize();
    std::vector<KernelTime> out;
    for (const ProfileMark& m : marks_) {
      float ms = 0;
      WENET_CUDA_CHECK(cudaEventElapsedTime(&ms, m.start, m.end));
      auto it = std::find_if(out.begin(), out.end(), [&](const KernelTime& k) { return k.name == m.name; });
      if (it == out.end()) it = out.insert(out.end(), KernelTime{m.name, 0, 0});
      ++it->calls;
      it->ms += ms;
    }
    clear_profile();
    return out;
  }

  void run_cached(const std::string& key, const std::function<void()>& body) override {
    if (!graphs_ || capturing_ || profiling_) {  // no graphs, inside a body being captured, or timing kernels
      body();
      return;
    }
    ensure_device();
    // The key includes where the arena stands: a body's addresses depend on it.
    const DeviceArena::Mark start = arena_->mark();
    const std::string full_key = key + "@" + std::to_string(start.chunk) + ":" + std::to_string(start.offset);
    if (auto it = graphs_cache_.find(full_key); it != graphs_cache_.end()) {
      WENET_CUDA_CHECK(cudaGraphLaunch(it->second.exec, stream_));
      arena_->rewind(it->second.end);
      if (debug_sync_) sync_and_check("run_cached replay");
      return;
    }
    // First use: run eagerly (the results of this call), so lazy initialization (cuBLASLt plans,
    // shared-memory opt-ins, arena growth) happens outside capture; then capture the same body at
    // the same arena position.
    body();
    const DeviceArena::Mark end = arena_->mark();
    arena_->rewind(start);
    WENET_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    capturing_ = true;
    cudaGraph_t graph = nullptr;
    try {
      body();
    } catch (...) {
      capturing_ = false;
      cudaStreamEndCapture(stream_, &graph);
      if (graph) cudaGraphDestroy(graph);
      cudaGetLastError();
      arena_->rewind(end);
      throw;
    }
    capturing_ = false;
    const cudaError_t captured = cudaStreamEndCapture(stream_, &graph);
    struct GraphGuard {
      cudaGraph_t g;
      ~GraphGuard() {
        if (g) cudaGraphDestroy(g);
      }
    } guard{graph};
    WENET_CUDA_CHECK(captured);
    WENET_CHECK(arena_->mark() == end,
                "run_cached('{}'): the body allocated differently when captured than when run eagerly", key);
    cudaGraphExec_t exec = nullptr;
    WENET_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
    graphs_cache_.emplace(full_key, GraphExec(exec, end));
  }

  // --- ops --------------------------------------------------------------------------------------
  void linear(const Tensor& x, const LinearWeights& w, Activation act, const Tensor* residual,
              const Tensor& y) override {
    begin_op("linear");
    const int64_t M = x.rows(), K = x.cols(), N = w.w.dim(0);
    WENET_CHECK(w.w.rank == 2 && w.w.dim(1) == K && y.rows() == M && y.cols() == N,
                "linear: expected x [{}, K], W [N, K], y [{}, N] with K = {}, N = {}; got W [{}, {}], y [{}, {}]", M,
                M, K, N, w.w.dim(0), w.w.rank > 1 ? w.w.dim(1) : 0, y.rows(), y.cols());
    WENET_CHECK(!residual || act == Activation::kNone, "linear: a residual after an activation is not supported");
    expect_act(x, "linear", "x");
    expect_act(w.w, "linear", "W");
    expect_act(y, "linear", "y");
    if (w.b.data) expect_act(w.b, "linear", "bias");
    if (M == 0 || N == 0) return;
    if (residual) {
      expect_act(*residual, "linear", "residual");
      WENET_CHECK(residual->rows() == M && residual->cols() == N, "linear: residual [{}, {}], expected [{}, {}]",
                  residual->rows(), residual->cols(), M, N);
    }
    if (split_k_gemm(x, w, act, residual, y)) return;
    const size_t es = dtype_size(dtype_);
    if (residual) {
      if (residual->data != y.data) {  // y = residual first, then accumulate in place
        WENET_CUDA_CHECK(cudaMemcpy2DAsync(y.data, size_t(y.row_stride()) * es, residual->data,
                                           size_t(residual->row_stride()) * es, size_t(N) * es, size_t(M),
                                           cudaMemcpyDeviceToDevice, stream_));
      } else {
        WENET_CHECK(residual->row_stride() == y.row_stride(), "linear: residual aliases y with another row stride");
      }
    }
    // Row-major y = x W^T is column-major y^T = W x^T: A = W (stored K x N, transposed), B = x^T.
    GemmArgs g;
    g.trans_a = true;
    g.m = N;
    g.n = M;
    g.k = K;
    g.a = w.w.data;
    g.lda = w.w.row_stride();
    g.b = x.data;
    g.ldb = x.row_stride();
    g.d = y.data;
    g.ldd = y.row_stride();
    g.bias = w.b.data;
    g.relu = act == Activation::kRelu;
    g.beta = residual ? 1.f : 0.f;
    if (K == 0) fail("linear: K = 0");
    WENET_CHECK(gemm_->run(g, stream_), "linear: cuBLASLt has no algorithm for M={} N={} K={} (ld x {}, ld y {})", M,
                N, K, g.ldb, g.ldd);
    after_launch("linear");
    if (act == Activation::kSwish) {
      ck::swish_inplace(y.data, y.row_stride(), M, N, f16(), kernel_stream());
      after_launch("linear (swish)");
    }
  }

  // linear() for few rows in float16 (kernels/split_k_gemm.cu) where the shape allows; false
  // leaves it to cuBLASLt.
  bool split_k_gemm(const Tensor& x, const LinearWeights& w, Activation act, const Tensor* residual, const Tensor& y) {
    const int64_t M = x.rows(), K = x.cols(), N = w.w.dim(0);
    if (!f16() || M > split_k_max_rows_ || K == 0 || K % ck::kSplitKSlice != 0 || !aligned(x.data, 16) ||
        !aligned(w.w.data, 16) || x.row_stride() % 8 != 0 || w.w.row_stride() % 8 != 0 ||
        ck::split_k_gemm_workspace_floats(M, N, K) > kSplitKWorkspaceFloats ||
        (K > ck::kSplitKSlice && ck::split_k_gemm_tiles(M, N) > kSplitKCounters))
      return false;
    ck::SplitKGemmParams p{};
    p.g = gemm_operands(x, w, act, residual, y);
    p.partials = static_cast<float*>(split_k_partials_.ptr);
    p.counters = static_cast<unsigned*>(split_k_counters_.ptr);
    ck::split_k_gemm_f16(p, kernel_stream());
    after_launch("linear");
    return true;
  }

  void layer_norm(const Tensor& x, const LayerNormWeights& w, const Tensor& y, const Tensor* zero_lens) override {
    begin_op("layer_norm");
    const int64_t M = x.rows(), D = x.cols();
    const int64_t T = x.rank >= 3 ? x.dim(-2) : M;
    WENET_CHECK(y.rows() == M && y.cols() == D, "layer_norm: y [{}, {}], expected [{}, {}]", y.rows(), y.cols(), M, D);
    WENET_CHECK(w.gamma.numel() == D && w.beta.numel() == D, "layer_norm: weights of {} / {}, expected {}",
                w.gamma.numel(), w.beta.numel(), D);
    expect_act(x, "layer_norm", "x");
    expect_act(y, "layer_norm", "y");
    expect_act(w.gamma, "layer_norm", "gamma");
    expect_act(w.beta, "layer_norm", "beta");
    if (zero_lens) WENET_CHECK(zero_lens->dtype == DType::kI32, "layer_norm: lengths must be int32");
    ck::layer_norm_zero_padded_rows(x.data, x.row_stride(), y.data, y.row_stride(), w.gamma.data, w.beta.data, M, D,
                                    T, zero_lens ? zero_lens->ptr<int32_t>() : nullptr, f16(), kernel_stream());
    after_launch("layer_norm");
  }

  void norm_linear(const Tensor& x, const LayerNormWeights& n, const LinearWeights& w, Activation act, const Tensor& y,
                   const Tensor* zero_lens) override {
    if (!norm_gemm_fusable(x, n, w)) return Backend::norm_linear(x, n, w, act, y, zero_lens);
    begin_op("norm_linear");
    if (zero_lens) WENET_CHECK(zero_lens->dtype == DType::kI32, "norm_linear: lengths must be int32");
    ck::LayerNormGemmParams p = norm_gemm_params(x, n, w, act, y, "norm_linear");
    p.zero_lens = zero_lens ? zero_lens->ptr<int32_t>() : nullptr;
    ck::layer_norm_gemm_f16(p, kernel_stream());
    after_launch("norm_linear");
  }

  void norm_norm_linear(const Tensor& x, const LayerNormWeights& first, const Tensor& x_out, const LayerNormWeights& n,
                        const LinearWeights& w, Activation act, const Tensor& y) override {
    const bool fusable = norm_gemm_fusable(x, n, w) && w.w.dim(0) > 0 && x_out.data != x.data &&
                         x_out.rows() == x.rows() && x_out.cols() == x.cols() && x_out.row_stride() % 8 == 0 &&
                         aligned(x_out.data, 16) && aligned(first.gamma.data, 16) && aligned(first.beta.data, 16);
    if (!fusable) return Backend::norm_norm_linear(x, first, x_out, n, w, act, y);
    begin_op("norm_norm_linear");
    WENET_CHECK(first.gamma.numel() == x.cols() && first.beta.numel() == x.cols(),
                "norm_norm_linear: first norm's weights of {} / {}, expected {}", first.gamma.numel(),
                first.beta.numel(), x.cols());
    for (const Tensor* t : {&x_out, &first.gamma, &first.beta}) expect_act(*t, "norm_norm_linear", "operand");
    ck::LayerNormGemmParams p = norm_gemm_params(x, n, w, act, y, "norm_norm_linear");
    p.pre_gamma = first.gamma.data;
    p.pre_beta = first.beta.data;
    p.x_out = x_out.data;
    p.ld_x_out = x_out.row_stride();
    ck::layer_norm_gemm_f16(p, kernel_stream());
    after_launch("norm_norm_linear");
  }

  void cmvn(const Tensor& x, const Tensor& mean, const Tensor& istd, const Tensor& y) override {
    begin_op("cmvn");
    const int64_t M = x.rows(), F = x.cols();
    WENET_CHECK(x.dtype == DType::kF32 && mean.dtype == DType::kF32 && istd.dtype == DType::kF32,
                "cmvn: features, mean and istd must be float32");
    WENET_CHECK(mean.numel() == F && istd.numel() == F, "cmvn: mean/istd of {} / {}, expected {}", mean.numel(),
                istd.numel(), F);
    WENET_CHECK(y.rows() == M && y.cols() == F, "cmvn: y [{}, {}], expected [{}, {}]", y.rows(), y.cols(), M, F);
    expect_act(y, "cmvn", "y");
    ck::cmvn(x.ptr<float>(), x.row_stride(), mean.ptr<float>(), istd.ptr<float>(), y.data, y.row_stride(), M, F, f16(),
             kernel_stream());
    after_launch("cmvn");
  }

  bool conv_channels_last() const override { return true; }  // im2col rows and GEMM output need no transposes
  void conv2d(const Tensor& x, const Tensor& w, const Tensor& b, int stride, bool relu, const Tensor& y) override;

  void scale_add_pos(const Tensor& x, float scale, const Tensor* pos, const Tensor& y) override {
    begin_op("scale_add_pos");
    const int64_t D = x.cols(), T = x.rank >= 2 ? x.dim(-2) : 1, M = x.rows();
    WENET_CHECK(y.rows() == M && y.cols() == D, "scale_add_pos: y [{}, {}], expected [{}, {}]", y.rows(), y.cols(), M,
                D);
    expect_act(x, "scale_add_pos", "x");
    expect_act(y, "scale_add_pos", "y");
    if (pos) {
      expect_act(*pos, "scale_add_pos", "pos");
      WENET_CHECK(pos->cols() == D && pos->rows() >= T, "scale_add_pos: pos [{}, {}], expected [>= {}, {}]",
                  pos->rows(), pos->cols(), T, D);
    }
    ck::scale_add_pos(x.data, x.row_stride(), scale, pos ? pos->data : nullptr, pos ? pos->row_stride() : 0, y.data,
                      y.row_stride(), M, D, T, f16(), kernel_stream());
    after_launch("scale_add_pos");
  }

  void embed(const Tensor& ids, const Tensor& table, float scale, const Tensor& pos, const Tensor& y,
             const Tensor* positions) override {
    begin_op("embed");
    WENET_CHECK(!positions, "embed: positions are not supported on cuda (supports_prefix_tries() is false)");
    const int64_t T = ids.cols(), M = ids.numel(), D = table.dim(1), V = table.dim(0);
    WENET_CHECK(ids.dtype == DType::kI32, "embed: ids must be int32, got {}", dtype_name(ids.dtype));
    expect_contiguous(ids, "embed", "ids");
    WENET_CHECK(y.rows() == M && y.cols() == D, "embed: y [{}, {}], expected [{}, {}]", y.rows(), y.cols(), M, D);
    WENET_CHECK(pos.cols() == D && pos.rows() >= T, "embed: pos [{}, {}], expected [>= {}, {}]", pos.rows(),
                pos.cols(), T, D);
    expect_act(table, "embed", "table");
    expect_act(pos, "embed", "pos");
    expect_act(y, "embed", "y");
    ck::embed_scale_add_pos(ids.ptr<int32_t>(), table.data, table.row_stride(), scale, pos.data, pos.row_stride(),
                            y.data, y.row_stride(), M, D, T, V, error_flag_device_, f16(), kernel_stream());
    after_launch("embed");
  }

  void attention(const AttentionArgs& a) override;
  void conv_module(const ConvModuleArgs& a, Activation act) override;

  void ring_write(const Tensor& x, const Tensor& lens, const Tensor& slots, const Tensor& first, int ring_rows,
                  const Tensor& pool) override {
    begin_op("ring_write");
    check_ring_write(x, lens, slots, first, ring_rows, pool);
    expect_act(x, "ring_write", "x");
    ck::ring_write_rows(x.data, x.row_stride(), lens.ptr<int32_t>(), slots.ptr<int32_t>(), first.ptr<int32_t>(),
                        int(x.dim(0)), int(x.dim(1)), int(x.cols()), ring_rows, int(pool.rows() / ring_rows), pool.data,
                        pool.row_stride(), f16(), kernel_stream());
    after_launch("ring_write");
  }

  void ring_read(const Tensor& pool, const Tensor& slots, const Tensor& first, int ring_rows, const Tensor& fill,
                 const Tensor& y) override {
    begin_op("ring_read");
    check_ring_read(pool, slots, first, ring_rows, fill, y);
    expect_act(y, "ring_read", "y");
    ck::ring_read_rows(pool.data, pool.row_stride(), slots.ptr<int32_t>(), first.ptr<int32_t>(), int(y.dim(0)),
                       int(y.dim(1)), int(y.cols()), ring_rows, int(pool.rows() / ring_rows), fill.data, y.data,
                       y.row_stride(), f16(), kernel_stream());
    after_launch("ring_read");
  }

  void log_softmax(const Tensor& x, const Tensor& y) override {
    begin_op("log_softmax");
    const int64_t M = x.rows(), N = x.cols();
    expect_act(x, "log_softmax", "x");
    WENET_CHECK(y.dtype == DType::kF32, "log_softmax: output must be float32, got {}", dtype_name(y.dtype));
    WENET_CHECK(y.rows() == M && y.cols() == N, "log_softmax: y [{}, {}], expected [{}, {}]", y.rows(), y.cols(), M,
                N);
    ck::log_softmax(x.data, x.row_stride(), y.ptr<float>(), y.row_stride(), M, N, f16(), kernel_stream());
    after_launch("log_softmax");
  }

  void log_softmax_top_k(const Tensor& x, int blank, const Tensor& top_ids, const Tensor& top_logp,
                         const Tensor& blank_logp) override {
    begin_op("log_softmax_top_k");
    const int64_t M = x.rows(), V = x.cols(), k = top_ids.cols();
    expect_act(x, "log_softmax_top_k", "x");
    check_log_softmax_top_k(x, blank, top_ids, top_logp, blank_logp);
    ck::log_softmax_top_k(x.data, x.row_stride(), M, V, int(k), blank, top_ids.ptr<int32_t>(), top_ids.row_stride(),
                          top_logp.ptr<float>(), top_logp.row_stride(), blank_logp.ptr<float>(), f16(),
                          kernel_stream());
    after_launch("log_softmax_top_k");
  }

  void linear_log_softmax_gather(const Tensor& x, const LinearWeights& w, int vocab, const Tensor& targets,
                                 const Tensor& out, const Tensor* rows) override;

 private:
  bool f16() const { return dtype_ == DType::kF16; }
  // Where the fused kernels are enqueued, and whether with PDL (fixed for the backend's life: its
  // captured graphs hold the launches as they were made).
  ck::KernelStream kernel_stream() const { return {stream_, pdl_}; }

  void ensure_device() {
    int current = -1;
    WENET_CUDA_CHECK(cudaGetDevice(&current));
    if (current != device_) WENET_CUDA_CHECK(cudaSetDevice(device_));
  }

  void begin_op(const char* op, bool capturable = true) {
    WENET_CHECK(capturable || !capturing_, "cuda backend: {} is not allowed inside a run_cached body (it is being "
                "captured into a CUDA graph)", op);
    ensure_device();
    if (profiling_) last_event_ = record_event();
  }

  // Profiling: an event before each op and after each of its kernels; a kernel's time is the gap
  // between its event and the previous one.
  struct ProfileMark {
    std::string name;
    cudaEvent_t start, end;
  };
  cudaEvent_t record_event() {
    cudaEvent_t e;
    WENET_CUDA_CHECK(cudaEventCreate(&e));
    WENET_CUDA_CHECK(cudaEventRecord(e, stream_));
    events_.push_back(e);
    return e;
  }
  void clear_profile() {
    for (cudaEvent_t e : events_) cudaEventDestroy(e);
    events_.clear();
    marks_.clear();
    last_event_ = nullptr;
  }

  void expect_act(const Tensor& t, const char* op, const char* what) const {
    WENET_CHECK(t.dtype == dtype_, "{}: {} must be {} (the backend's dtype), got {}", op, what, dtype_name(dtype_),
                dtype_name(t.dtype));
  }
  static void expect_contiguous(const Tensor& t, const char* op, const char* what) {
    WENET_CHECK(t.ld == 0 || t.ld == t.cols(), "{}: {} must be contiguous (row stride {}, {} columns)", op, what, t.ld,
                t.cols());
  }

  void after_launch(const char* op) {
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) fail("CUDA error in {}: {} ({})", op, cudaGetErrorString(e), cudaGetErrorName(e));
    if (debug_sync_ && !capturing_) sync_and_check(op);
    if (profiling_ && last_event_) {
      cudaEvent_t e = record_event();
      marks_.push_back({op, last_event_, e});
      last_event_ = e;
    }
  }

  void sync_and_check(const char* op) {
    const cudaError_t e = cudaStreamSynchronize(stream_);
    if (e != cudaSuccess) fail("CUDA error after {}: {} ({})", op, cudaGetErrorString(e), cudaGetErrorName(e));
    check_device_errors();
  }

  // Errors kernels recorded in host-mapped memory (bad token ids); read after a synchronization.
  void check_device_errors() {
    if (error_flag_[0] == 0) return;
    const int32_t id = error_flag_[1], V = error_flag_[2];
    std::memset(error_flag_, 0, 4 * sizeof(int32_t));
    fail("embed: token id {} out of range [0, {})", id, V);
  }

  // Host -> device on the stream. From page-locked memory directly; from pageable memory through
  // pinned_ (a direct copy would first wait for all the stream's queued work).
  void upload_2d(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t width, size_t rows) {
    cudaPointerAttributes a{};
    const bool pinned = cudaPointerGetAttributes(&a, src) == cudaSuccess && a.type == cudaMemoryTypeHost;
    cudaGetLastError();
    if (pinned) {
      WENET_CUDA_CHECK(cudaMemcpy2DAsync(dst, dst_pitch, src, src_pitch, width, rows, cudaMemcpyHostToDevice, stream_));
    } else {
      pinned_.copy_2d(dst, dst_pitch, src, src_pitch, width, rows, stream_);
    }
  }

  void ensure_staging(size_t bytes) {
    if (staging_.bytes >= bytes) return;
    WENET_CUDA_CHECK(cudaStreamSynchronize(stream_));  // the old buffer may still be in use
    staging_ = DeviceBuffer();
    staging_ = DeviceBuffer(std::max(bytes, size_t(1) << 20));
  }

  void release() {
    if (stream_) cudaStreamSynchronize(stream_);
    clear_profile();
    if (timer_start_) cudaEventDestroy(timer_start_), cudaEventDestroy(timer_end_);
    for (cudaEvent_t e : fences_) cudaEventDestroy(e);
    fences_.clear();
    graphs_cache_.clear();
    gemm_.reset();
    arena_.reset();
    if (error_flag_) cudaFreeHost(error_flag_);
    error_flag_ = nullptr;
    if (own_stream_ && stream_) cudaStreamDestroy(stream_);
    stream_ = nullptr;
  }

  int device_;
  DType dtype_;
  bool graphs_;
  bool debug_sync_ = false;
  bool pdl_ = false;
  int64_t norm_gemm_max_rows_ = 0, split_k_max_rows_ = 0;

  static bool aligned(const void* p, uintptr_t a) { return reinterpret_cast<uintptr_t>(p) % a == 0; }

  // Whether layer_norm_gemm_f16 takes LayerNorm(x) W^T: float16, K it supports, 16-byte aligned operands.
  bool norm_gemm_fusable(const Tensor& x, const LayerNormWeights& n, const LinearWeights& w) const {
    const int64_t M = x.rows(), K = x.cols();
    return f16() && ck::layer_norm_gemm_supports(K) && M <= norm_gemm_max_rows_ && M <= ck::kLayerNormGemmMaxRows &&
           w.w.rank == 2 && w.w.row_stride() == K && aligned(w.w.data, 16) && x.row_stride() % 8 == 0 &&
           aligned(x.data, 16) && aligned(n.gamma.data, 16) && aligned(n.beta.data, 16);
  }

  // The operands of the few-row float16 GEMM kernels (split_k_gemm, layer_norm_gemm).
  static ck::GemmOperands gemm_operands(const Tensor& x, const LinearWeights& w, Activation act,
                                        const Tensor* residual, const Tensor& y) {
    ck::GemmOperands g{};
    g.x = x.data;
    g.ldx = x.row_stride();
    g.w = w.w.data;
    g.ldw = w.w.row_stride();
    g.bias = w.b.data;
    g.residual = residual ? residual->data : nullptr;
    g.ldr = residual ? residual->row_stride() : 0;
    g.y = y.data;
    g.ldy = y.row_stride();
    g.M = x.rows();
    g.N = w.w.dim(0);
    g.K = int(x.cols());
    g.act = to_kernel_act(act);
    return g;
  }

  // The kernel's parameters for y = act(LayerNorm(x) W^T + b), shapes checked (no pre-norm, no masking).
  ck::LayerNormGemmParams norm_gemm_params(const Tensor& x, const LayerNormWeights& n, const LinearWeights& w,
                                           Activation act, const Tensor& y, const char* op) {
    const int64_t M = x.rows(), K = x.cols(), N = w.w.dim(0);
    WENET_CHECK(w.w.dim(1) == K && y.rows() == M && y.cols() == N,
                "{}: expected x [{}, K], W [N, K], y [{}, N] with K = {}, N = {}; got W [{}, {}], y [{}, {}]", op, M,
                M, K, N, w.w.dim(0), w.w.dim(1), y.rows(), y.cols());
    WENET_CHECK(n.gamma.numel() == K && n.beta.numel() == K, "{}: norm weights of {} / {}, expected {}", op,
                n.gamma.numel(), n.beta.numel(), K);
    for (const Tensor* t : {&x, &y, &w.w, &n.gamma, &n.beta}) expect_act(*t, op, "operand");
    if (w.b.data) expect_act(w.b, op, "bias");
    ck::LayerNormGemmParams p{};
    p.g = gemm_operands(x, w, act, nullptr, y);
    p.gamma = n.gamma.data;
    p.beta = n.beta.data;
    p.T = x.rank >= 3 ? x.dim(-2) : M;
    return p;
  }
  bool capturing_ = false;
  bool profiling_ = false;
  std::vector<cudaEvent_t> events_;
  std::vector<ProfileMark> marks_;
  cudaEvent_t last_event_ = nullptr;
  cudaEvent_t timer_start_ = nullptr, timer_end_ = nullptr;
  std::vector<cudaEvent_t> fences_;  // a ring, created on first use
  uint64_t next_fence_ = 0;
  cudaStream_t stream_ = nullptr;
  bool own_stream_ = false;
  std::unique_ptr<DeviceArena> arena_;
  DeviceBuffer gemm_workspace_;
  DeviceBuffer split_k_partials_, split_k_counters_;  // split_k_gemm's (float16 only)
  std::unique_ptr<CublasLtGemm> gemm_;
  std::vector<DeviceBuffer> weights_;
  DeviceBuffer staging_;
  PinnedStaging pinned_;
  int32_t* error_flag_ = nullptr;         // host view of the mapped error record {set, id, V}
  int32_t* error_flag_device_ = nullptr;  // device view
  std::unordered_map<std::string, GraphExec> graphs_cache_;
};

void CudaBackend::conv2d(const Tensor& x, const Tensor& w, const Tensor& b, int stride, bool relu, const Tensor& y) {
  begin_op("conv2d");
  WENET_CHECK(x.rank == 4 && w.rank == 4 && y.rank == 4, "conv2d: expected 4-D x, w and y");
  const int64_t B = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3);
  const int64_t O = w.dim(0), kh = w.dim(1), kw = w.dim(2), Ho = y.dim(1), Wo = y.dim(2);
  WENET_CHECK(stride > 0 && w.dim(3) == C && y.dim(0) == B && y.dim(3) == O && b.numel() == O &&
                  Ho == (H - kh) / stride + 1 && Wo == (W - kw) / stride + 1 && H >= kh && W >= kw,
              "conv2d: x [{}, {}, {}, {}], w [{}, {}, {}, {}], stride {} do not give y [{}, {}, {}, {}] (NHWC)", B, H,
              W, C, O, kh, kw, w.dim(3), stride, y.dim(0), y.dim(1), y.dim(2), y.dim(3));
  for (const Tensor* t : {&x, &w, &b, &y}) {
    expect_act(*t, "conv2d", "operand");
    expect_contiguous(*t, "conv2d", "operand");
  }
  const int64_t K = C * kh * kw, P = Ho * Wo;
  if (B * O * P == 0) return;
  WENET_CHECK(B * P * kh < (int64_t(1) << 31), "conv2d: {} x {} output positions are more than the kernels index",
              B, P);
  // Float16 small patches (the first subsampling conv, C = 1): direct, on tensor cores. Float32
  // keeps FP32 arithmetic through im2col + GEMM.
  if (f16() && ck::conv2d_bias_relu_supports(K, O) && aligned(y.data, 4) && aligned(w.data, 2)) {
    ck::conv2d_bias_relu(x.data, w.data, b.data, y.data, B, C, H, W, O, kh, kw, stride, Ho, Wo, relu,
                         kernel_stream());
    after_launch("conv2d");
    return;
  }
  // im2col (a row per output position) + one GEMM with bias / ReLU in the epilogue, whose
  // output ([B*P, O] row-major = O x B*P column-major) is y itself.
  const int64_t ldc = round_up(K, 8);
  void* col = arena_->alloc(size_t(B * P * ldc) * dtype_size(dtype_), !capturing_);
  ck::im2col_rows(x.data, col, ldc, B, C, H, W, kh, kw, stride, Ho, Wo, f16(), kernel_stream());
  after_launch("conv2d (im2col)");
  GemmArgs g;
  g.trans_a = true;  // W [O, K] row-major is K x O column-major
  g.m = O;
  g.n = B * P;
  g.k = K;
  g.a = w.data;
  g.lda = K;
  g.b = col;
  g.ldb = ldc;
  g.d = y.data;
  g.ldd = O;
  g.bias = b.data;
  g.relu = relu;
  WENET_CHECK(gemm_->run(g, stream_), "conv2d: cuBLASLt has no algorithm for O={} positions={} K={}", O, B * P, K);
  after_launch("conv2d (gemm)");
}

// The fused float16 kernel where it applies (K <= 256); else cuBLASLt logits for a chunk of rows
// at a time (bounded scratch from the arena, the same addresses eagerly and under capture) + the
// log-sum-exp and gather kernel, whose log-sum-exp is log_softmax's.
void CudaBackend::linear_log_softmax_gather(const Tensor& x, const LinearWeights& w, int vocab, const Tensor& targets,
                                            const Tensor& out, const Tensor* rows) {
  begin_op("linear_log_softmax_gather");
  WENET_CHECK(!rows, "linear_log_softmax_gather: rows are not supported on cuda (supports_prefix_tries() is false)");
  const int64_t M = x.rows(), K = x.cols();
  expect_act(x, "linear_log_softmax_gather", "x");
  expect_act(w.w, "linear_log_softmax_gather", "W");
  if (w.b.data) expect_act(w.b, "linear_log_softmax_gather", "bias");
  check_linear_log_softmax_gather(x, w, vocab, targets, out);
  const int64_t N = w.w.dim(0);
  if (M == 0) return;
  WENET_CHECK(K > 0, "linear_log_softmax_gather: K = 0");
  const auto aligned = [](const void* p, uintptr_t a) { return reinterpret_cast<uintptr_t>(p) % a == 0; };
  if (f16() && ck::linear_log_softmax_gather_f16_supports(K) && aligned(x.data, 16) && x.row_stride() % 8 == 0 &&
      aligned(w.w.data, 16)) {
    ck::LinearLogSoftmaxGatherParams p{};
    p.x = x.data;
    p.ldx = x.row_stride();
    p.w = w.w.data;
    p.bias = w.b.data;
    p.targets = targets.ptr<int32_t>();
    p.out = out.ptr<float>();
    p.M = M;
    p.K = int(K);
    p.vocab = vocab;
    const int64_t scratch = ck::linear_log_softmax_gather_f16_scratch(M, int(K), vocab);
    float* partial =
        scratch ? static_cast<float*>(arena_->alloc(size_t(scratch) * sizeof(float), !capturing_)) : nullptr;
    ck::linear_log_softmax_gather_f16(p, partial, kernel_stream());
    after_launch("linear_log_softmax_gather");
    return;
  }
  // All N outputs, as linear() computes them: a GEMM with N a multiple of 8 (the padded
  // vocabulary) runs on cuBLASLt's fast kernels, one with N = vocab (4233) several times slower.
  const size_t es = dtype_size(dtype_);
  const int64_t ld = round_up(N, 8);
  const int64_t chunk = std::clamp<int64_t>(int64_t(kGatherScratchBytes / (size_t(ld) * es)), 1, M);
  void* logits = arena_->alloc(size_t(chunk * ld) * es, !capturing_);
  for (int64_t m0 = 0; m0 < M; m0 += chunk) {
    const int64_t rows = std::min(chunk, M - m0);
    // Row-major logits = x W^T is column-major logits^T = W x^T, as in linear().
    GemmArgs g;
    g.trans_a = true;
    g.m = N;
    g.n = rows;
    g.k = K;
    g.a = w.w.data;
    g.lda = K;
    g.b = static_cast<const std::byte*>(x.data) + size_t(m0 * x.row_stride()) * es;
    g.ldb = x.row_stride();
    g.d = logits;
    g.ldd = ld;
    g.bias = w.b.data;
    WENET_CHECK(gemm_->run(g, stream_), "linear_log_softmax_gather: cuBLASLt has no algorithm for M={} N={} K={}",
                rows, N, K);
    after_launch("linear_log_softmax_gather (gemm)");
    ck::log_softmax_gather_rows(logits, ld, rows, vocab, targets.ptr<int32_t>() + m0, out.ptr<float>() + m0, f16(),
                                kernel_stream());
    after_launch("linear_log_softmax_gather (log-sum-exp, gather)");
  }
}

void CudaBackend::attention(const AttentionArgs& a) {
  begin_op("attention");
  WENET_CHECK(!a.query_offsets.data && !a.key_rows.data,
              "attention: query_offsets / key_rows are not supported on cuda (supports_prefix_tries() is false)");
  const bool ring = a.ring_rows > 0;
  WENET_CHECK(a.q.rank == 3 && a.out.rank == 3 && (ring || (a.k.rank == 3 && a.v.rank == 3)),
              "attention: expected 3-D q, k, v and out (k and v 2-D pools with ring_rows)");
  if (ring) check_attention_ring(a);
  const int64_t Bq = a.q.dim(0), Tq = a.q.dim(1), HD = a.q.cols();
  const int64_t Bk = ring ? a.key_lens.numel() : a.k.dim(0), Tk = ring ? a.ring_rows : a.k.dim(1);
  WENET_CHECK(a.heads > 0 && HD % a.heads == 0, "attention: {} columns do not split into {} heads", HD, a.heads);
  const int64_t dk = HD / a.heads;
  WENET_CHECK(dk <= ck::kMaxAttentionHeadDim, "attention: head dim {} > {} is not supported", dk,
              ck::kMaxAttentionHeadDim);
  WENET_CHECK(a.queries_per_kv >= 1 && Bq == Bk * a.queries_per_kv,
              "attention: {} query batches for {} key batches x {} queries_per_kv", Bq, Bk, a.queries_per_kv);
  WENET_CHECK(a.k.cols() == HD && a.v.cols() == HD && (ring || (a.v.dim(0) == Bk && a.v.dim(1) == Tk)),
              "attention: k [{}, {}, {}] / v [{}, {}, {}] do not match q's {} columns", Bk, Tk, a.k.cols(),
              a.v.dim(0), a.v.dim(1), a.v.cols(), HD);
  WENET_CHECK(a.out.dim(0) == Bq && a.out.dim(1) == Tq && a.out.cols() == HD, "attention: out [{}, {}, {}], expected "
              "[{}, {}, {}]", a.out.dim(0), a.out.dim(1), a.out.cols(), Bq, Tq, HD);
  WENET_CHECK(a.key_lens.dtype == DType::kI32 && a.key_lens.numel() >= Bk, "attention: key_lens must be int32 [{}]",
              Bk);
  for (const Tensor* t : {&a.q, &a.k, &a.v, &a.out}) expect_act(*t, "attention", "q/k/v/out");
  const bool rel = a.pos.data != nullptr;
  if (rel) {
    expect_act(a.pos, "attention", "pos");
    expect_act(a.pos_bias_u, "attention", "pos_bias_u");
    expect_act(a.pos_bias_v, "attention", "pos_bias_v");
    // Ring pools: keys at frames past the table are masked (the caller checks its frames).
    WENET_CHECK(a.pos.cols() == HD && (ring || a.pos.rows() >= Tk), "attention: pos [{}, {}], expected [>= {}, {}]",
                a.pos.rows(), a.pos.cols(), Tk, HD);
    WENET_CHECK(a.pos_bias_u.data && a.pos_bias_v.data && a.pos_bias_u.numel() == HD && a.pos_bias_v.numel() == HD,
                "attention: pos_bias_u / pos_bias_v must hold heads x dk = {} values", HD);
    expect_contiguous(a.pos_bias_u, "attention", "pos_bias_u");
    expect_contiguous(a.pos_bias_v, "attention", "pos_bias_v");
  }
  ck::AttentionParams p{};
  p.q = a.q.data;
  p.k = a.k.data;
  p.v = a.v.data;
  p.pos = rel ? a.pos.data : nullptr;
  p.bias_u = rel ? a.pos_bias_u.data : nullptr;
  p.bias_v = rel ? a.pos_bias_v.data : nullptr;
  p.out = a.out.data;
  p.ldq = a.q.row_stride();
  p.ldk = a.k.row_stride();
  p.ldv = a.v.row_stride();
  p.ldp = rel ? a.pos.row_stride() : 0;
  p.ldo = a.out.row_stride();
  p.key_lens = a.key_lens.ptr<int32_t>();
  p.Bq = int(Bq);
  p.Tq = int(Tq);
  p.Tk = int(Tk);
  p.heads = a.heads;
  p.dk = int(dk);
  p.queries_per_kv = a.queries_per_kv;
  p.causal = a.causal;
  p.pos_rows = rel ? int(a.pos.rows()) : 0;
  if (ring) {
    p.kv_slot = a.kv_slot.ptr<int32_t>();
    p.key_start = a.key_start.ptr<int32_t>();
    p.ring_rows = a.ring_rows;
    p.ring_slots = int(a.k.rows() / a.ring_rows);
  }
  ck::attention_rel_pos_online_softmax(p, f16(), kernel_stream());
  after_launch("attention");
}

void CudaBackend::conv_module(const ConvModuleArgs& a, Activation act) {
  begin_op("conv_module");
  WENET_CHECK(a.x.rank == 3, "conv_module: expected x [B, T, 2D]");
  const int64_t B = a.x.dim(0), T = a.x.dim(1), D = a.y.cols(), K = a.dw_w.dim(1);
  WENET_CHECK(a.x.cols() == 2 * D && a.y.rows() == B * T, "conv_module: x [{}, {}, {}] and y [{} rows, {}] disagree",
              B, T, a.x.cols(), a.y.rows(), D);
  WENET_CHECK(a.dw_w.rank == 2 && a.dw_w.dim(0) == D && a.dw_b.numel() == D,
              "conv_module: depthwise weights [{}, {}] / bias {} for {} channels", a.dw_w.dim(0), K, a.dw_b.numel(), D);
  check_conv_module_streaming(a, B, K, D);
  expect_contiguous(a.dw_w, "conv_module", "dw_w");
  for (const Tensor* t : {&a.x, &a.y, &a.dw_w, &a.dw_b}) expect_act(*t, "conv_module", "operand");
  const bool norm = a.norm.gamma.data != nullptr;
  if (norm) {
    expect_act(a.norm.gamma, "conv_module", "norm gamma");
    expect_act(a.norm.beta, "conv_module", "norm beta");
    WENET_CHECK(a.norm.gamma.numel() == D && a.norm.beta.numel() == D, "conv_module: norm weights for {} channels",
                D);
  }
  ck::ConvModuleParams p{};
  p.x = a.x.data;
  p.ldx = a.x.row_stride();
  p.w = a.dw_w.data;
  p.b = a.dw_b.data;
  p.gamma = norm ? a.norm.gamma.data : nullptr;
  p.beta = norm ? a.norm.beta.data : nullptr;
  p.y = a.y.data;
  p.ldy = a.y.row_stride();
  p.B = int(B);
  p.T = int(T);
  p.D = int(D);
  p.K = int(K);
  p.act = to_kernel_act(act);
  p.causal = a.causal;
  if (a.causal) {
    WENET_CHECK(a.causal_pad.data && a.causal_pad.numel() == D, "conv_module: a causal conv needs causal_pad [{}]", D);
    expect_act(a.causal_pad, "conv_module", "causal_pad");
    p.causal_pad = a.causal_pad.data;
    p.left = a.left.data;
    p.ldl = a.left.data ? a.left.row_stride() : 0;
  }
  p.zero_from = a.zero_beyond_lens ? a.lens.ptr<int32_t>() : nullptr;
  ck::glu_depthwise_conv_norm_act(p, f16(), kernel_stream());
  after_launch("conv_module");
}

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(const CudaBackendOptions& opts) {
  return std::make_unique<CudaBackend>(opts);
}

}  // namespace wenet_rt
