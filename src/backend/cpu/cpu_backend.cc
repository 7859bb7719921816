#include "backend/cpu/cpu_backend.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include <unistd.h>

#include "backend/op_checks.h"

namespace wenet_rt {
namespace cpu {

AlignedBuffer aligned_buffer(size_t bytes) {
  bytes = (std::max<size_t>(bytes, 1) + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, bytes);
  WENET_CHECK(p != nullptr, "cpu backend: out of memory ({} bytes)", bytes);
  return AlignedBuffer(static_cast<std::byte*>(p));
}

void* Arena::allocate(size_t bytes) {
  bytes = (std::max<size_t>(bytes, 1) + 63) / 64 * 64;
  if (blocks_.empty() || used_ + bytes > blocks_.back().second) {
    // A new block of at least twice the last one: few blocks until reset() merges them.
    const size_t size = std::max(bytes, blocks_.empty() ? size_t(1) << 20 : 2 * blocks_.back().second);
    blocks_.emplace_back(aligned_buffer(size), size);
    used_ = 0;
  }
  void* p = blocks_.back().first.get() + used_;
  used_ += bytes;
  total_ += bytes;
  high_water_ = std::max(high_water_, total_);
  return p;
}

void Arena::reset() {
  if (blocks_.size() > 1) {
    blocks_.clear();
    blocks_.emplace_back(aligned_buffer(high_water_), high_water_);
  }
  used_ = 0;
  total_ = 0;
}

size_t Arena::capacity() const {
  size_t n = 0;
  for (const auto& b : blocks_) n += b.second;
  return n;
}

CpuBackend::Scope::~Scope() {
  if (!b_) return;
  KernelTime& k = b_->profile_[op_];
  k.name = op_;
  ++k.calls;
  k.ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0_).count();
}

CpuBackend::CpuBackend(const CpuBackendOptions& opts) : opts_(opts), kt_(kernels()), pool_(opts.threads) {}

void CpuBackend::set_profiling(bool on) {
  profiling_ = on;
  if (on) profile_.clear();
}

std::vector<KernelTime> CpuBackend::take_profile() {
  std::vector<KernelTime> r;
  for (auto& [name, k] : profile_) r.push_back(k);
  profile_.clear();
  return r;
}

Tensor CpuBackend::upload(const HostTensor& t, DType dtype) {
  WENET_CHECK(dtype == DType::kF32 || dtype == DType::kI32, "cpu backend: unsupported dtype {}", dtype_name(dtype));
  AlignedBuffer& buf = weights_.emplace_back(aligned_buffer(t.nbytes()));
  std::memcpy(buf.get(), t.raw(), t.nbytes());
  uploaded_[buf.get()] = buf.get() + t.nbytes();
  return make_view(buf.get(), t.shape(), dtype);
}

Tensor CpuBackend::zeros(const Shape& shape, DType dtype) {
  WENET_CHECK(dtype == DType::kF32 || dtype == DType::kI32, "cpu backend: unsupported dtype {}", dtype_name(dtype));
  const size_t bytes = size_t(shape_numel(shape)) * dtype_size(dtype);
  // Checked against the machine's memory: an allocation past it would succeed (overcommit) and
  // the process be killed when the zeros are written.
  const size_t physical = size_t(sysconf(_SC_PHYS_PAGES)) * size_t(sysconf(_SC_PAGE_SIZE));
  WENET_CHECK(bytes <= physical, "cpu backend: {:.2f} GB asked for, the machine has {:.2f} GB", bytes / 1e9,
              physical / 1e9);
  AlignedBuffer& buf = weights_.emplace_back(aligned_buffer(bytes));
  std::memset(buf.get(), 0, bytes);
  uploaded_[buf.get()] = buf.get() + bytes;
  return make_view(buf.get(), shape, dtype);
}

bool CpuBackend::is_uploaded(const void* p) const {
  const auto* b = static_cast<const std::byte*>(p);
  auto it = uploaded_.upper_bound(b);
  if (it == uploaded_.begin()) return false;
  --it;
  return b >= it->first && b < it->second;
}

Tensor CpuBackend::alloc(std::initializer_list<int64_t> shape, DType dtype) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return make_view(arena_.allocate(size_t(n) * dtype_size(dtype)), Shape(shape), dtype);
}

namespace {
// f(row pointer, row index, row bytes) for each row of a possibly strided tensor.
template <typename F>
void for_each_row(const Tensor& t, F&& f) {
  const size_t row_bytes = size_t(t.cols()) * dtype_size(t.dtype);
  const size_t stride = size_t(t.row_stride()) * dtype_size(t.dtype);
  for (int64_t r = 0; r < t.rows(); ++r) f(static_cast<std::byte*>(t.data) + size_t(r) * stride, size_t(r), row_bytes);
}
}  // namespace

void CpuBackend::copy_in(const void* host, const Tensor& dst) {
  for_each_row(dst, [&](std::byte* row, size_t i, size_t n) {
    std::memcpy(row, static_cast<const std::byte*>(host) + i * n, n);
  });
}

void CpuBackend::copy_out(const Tensor& src, void* host) {
  for_each_row(src, [&](std::byte* row, size_t i, size_t n) { std::memcpy(static_cast<std::byte*>(host) + i * n, row, n); });
}

void CpuBackend::cmvn(const Tensor& x, const Tensor& mean, const Tensor& istd, const Tensor& y) {
  Scope s(this, "cmvn");
  const int64_t M = x.rows(), F = x.cols();
  const float* mu = mean.ptr<float>();
  const float* is = istd.ptr<float>();
  for (int64_t m = 0; m < M; ++m) {
    const float* in = x.ptr<float>() + m * x.row_stride();
    float* out = y.ptr<float>() + m * F;
    for (int64_t f = 0; f < F; ++f) out[f] = (in[f] - mu[f]) * is[f];
  }
}

void CpuBackend::transpose_ct(const Tensor& x, const Tensor& y) {
  Scope s(this, "transpose_ct");
  const int64_t B = x.dim(0), C = x.dim(1), T = x.dim(2), F = x.dim(3);
  // Rows of F floats (19 for 80-dim fbank): an inline loop, no memcpy call per row.
  pool_.run(B * T, [&](int64_t task, int) {
    const int64_t b = task / T, t = task % T;
    float* out = y.ptr<float>() + (b * T + t) * C * F;
    const float* in = x.ptr<float>() + (b * C * T + t) * F;
    for (int64_t c = 0; c < C; ++c)
      for (int64_t f = 0; f < F; ++f) out[c * F + f] = in[c * T * F + f];
  });
}

void CpuBackend::scale_add_pos(const Tensor& x, float scale, const Tensor* pos, const Tensor& y) {
  Scope s(this, "scale_add_pos");
  const int64_t D = x.cols(), T = x.dim(-2), M = x.rows();
  for (int64_t m = 0; m < M; ++m) {
    const float* in = x.ptr<float>() + m * x.row_stride();
    float* out = y.ptr<float>() + m * y.row_stride();
    const float* p = pos ? pos->ptr<float>() + (m % T) * pos->row_stride() : nullptr;
    for (int64_t d = 0; d < D; ++d) out[d] = in[d] * scale + (p ? p[d] : 0.f);
  }
}

void CpuBackend::embed(const Tensor& ids, const Tensor& table, float scale, const Tensor& pos, const Tensor& y,
                       const Tensor* positions) {
  Scope s(this, "embed");
  const int64_t T = ids.cols(), M = ids.numel(), D = table.dim(1), V = table.dim(0);
  if (positions) check_i32_vector(*positions, M, "embed", "positions");
  for (int64_t m = 0; m < M; ++m) {
    const int32_t id = ids.ptr<int32_t>()[m];
    WENET_CHECK(id >= 0 && id < V, "token id {} out of range [0, {})", id, V);
    const int64_t t = positions ? positions->ptr<int32_t>()[m] : m % T;
    WENET_CHECK(t >= 0 && t < pos.rows(), "embed: position {} outside the table's [0, {})", t, pos.rows());
    const float* e = table.ptr<float>() + id * D;
    const float* p = pos.ptr<float>() + t * pos.row_stride();
    float* out = y.ptr<float>() + m * y.row_stride();
    for (int64_t d = 0; d < D; ++d) out[d] = e[d] * scale + p[d];
  }
}

void CpuBackend::ring_write(const Tensor& x, const Tensor& lens, const Tensor& slots, const Tensor& first,
                            int ring_rows, const Tensor& pool) {
  Scope s(this, "ring_write");
  check_ring_write(x, lens, slots, first, ring_rows, pool);
  const int64_t B = x.dim(0), T = x.dim(1), C = x.cols(), R = ring_rows, S = pool.rows() / R;
  const size_t es = dtype_size(x.dtype);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t slot = slots.ptr<int32_t>()[b], f0 = first.ptr<int32_t>()[b], len = lens.ptr<int32_t>()[b];
    WENET_CHECK(slot >= 0 && slot < S, "ring_write: item {}: slot {} outside [0, {})", b, slot, S);
    WENET_CHECK(f0 >= 0 && len >= 0 && len <= T, "ring_write: item {}: expected first >= 0 and lens in [0, {}], got {} and {}",
                b, T, f0, len);
    for (int64_t t = std::max<int64_t>(0, len - R); t < len; ++t)
      std::memcpy(static_cast<std::byte*>(pool.data) + size_t((slot * R + (f0 + t) % R) * pool.row_stride()) * es,
                  static_cast<const std::byte*>(x.data) + size_t((b * T + t) * x.row_stride()) * es, size_t(C) * es);
  }
}

void CpuBackend::ring_read(const Tensor& pool, const Tensor& slots, const Tensor& first, int ring_rows,
                           const Tensor& fill, const Tensor& y) {
  Scope s(this, "ring_read");
  check_ring_read(pool, slots, first, ring_rows, fill, y);
  const int64_t B = y.dim(0), T = y.dim(1), C = y.cols(), R = ring_rows, S = pool.rows() / R;
  const size_t es = dtype_size(y.dtype);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t slot = slots.ptr<int32_t>()[b], f0 = first.ptr<int32_t>()[b];
    WENET_CHECK(slot >= 0 && slot < S, "ring_read: item {}: slot {} outside [0, {})", b, slot, S);
    for (int64_t t = 0; t < T; ++t) {
      const int64_t f = f0 + t;
      const std::byte* src = f < 0 ? static_cast<const std::byte*>(fill.data)
                                   : static_cast<const std::byte*>(pool.data) +
                                         size_t((slot * R + f % R) * pool.row_stride()) * es;
      std::memcpy(static_cast<std::byte*>(y.data) + size_t((b * T + t) * y.row_stride()) * es, src, size_t(C) * es);
    }
  }
}

}  // namespace cpu

std::unique_ptr<Backend> make_cpu_backend(const CpuBackendOptions& opts) {
  WENET_CHECK(opts.threads >= 0, "cpu backend: expected threads >= 0, got {}", opts.threads);
  return std::make_unique<cpu::CpuBackend>(opts);
}

std::unique_ptr<Backend> make_cpu_backend(int threads) {
  CpuBackendOptions o;
  o.threads = threads;
  return make_cpu_backend(o);
}

}  // namespace wenet_rt
