// Tensors. HostTensor owns contiguous row-major host memory (checkpoint data, test data).
// Tensor is a non-owning view of memory that a Backend owns (host memory for the CPU backend,
// device memory for CUDA); the model graph passes Tensors to backend ops.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"

namespace wenet_rt {

using Shape = std::vector<int64_t>;

inline int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

inline std::string shape_str(const Shape& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

class HostTensor {
 public:
  HostTensor() = default;
  HostTensor(DType dtype, Shape shape)
      : dtype_(dtype), shape_(std::move(shape)), bytes_(size_t(shape_numel(shape_)) * dtype_size(dtype)) {}

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return bytes_.size(); }
  void* raw() { return bytes_.data(); }
  const void* raw() const { return bytes_.data(); }

  template <typename T>
  T* data() { return reinterpret_cast<T*>(bytes_.data()); }
  template <typename T>
  const T* data() const { return reinterpret_cast<const T*>(bytes_.data()); }

  // A float32 copy (from f32 / f16 / bf16 / i32 / i64).
  HostTensor to_f32() const {
    HostTensor out(DType::kF32, shape_);
    float* o = out.data<float>();
    const int64_t n = numel();
    for (int64_t i = 0; i < n; ++i) {
      switch (dtype_) {
        case DType::kF32: o[i] = data<float>()[i]; break;
        case DType::kF16: o[i] = half_to_float(data<uint16_t>()[i]); break;
        case DType::kBF16: o[i] = bf16_to_float(data<uint16_t>()[i]); break;
        case DType::kI32: o[i] = float(data<int32_t>()[i]); break;
        case DType::kI64: o[i] = float(data<int64_t>()[i]); break;
      }
    }
    return out;
  }

  // Same bytes, new shape of the same element count.
  HostTensor reshaped(Shape shape) const {
    WENET_CHECK(shape_numel(shape) == numel(), "cannot reshape {} to {}", shape_str(shape_), shape_str(shape));
    HostTensor r = *this;
    r.shape_ = std::move(shape);
    return r;
  }

 private:
  DType dtype_ = DType::kF32;
  Shape shape_;
  std::vector<std::byte> bytes_;
};

// A float32 rank-4 tensor with its axes reordered: out.shape[k] = t.shape[axes[k]], and
// out[i0, i1, i2, i3] = t[j] where j[axes[k]] = ik; e.g. {0, 2, 3, 1} turns NCHW into NHWC.
inline HostTensor permuted(const HostTensor& t, std::array<int, 4> axes) {
  WENET_CHECK(t.dtype() == DType::kF32 && t.shape().size() == 4, "permuted: expected a float32 rank-4 tensor, got {}",
              shape_str(t.shape()));
  const Shape& s = t.shape();
  std::array<int64_t, 4> stride{s[1] * s[2] * s[3], s[2] * s[3], s[3], 1}, os, ostride;
  for (size_t k = 0; k < 4; ++k) os[k] = s[size_t(axes[k])], ostride[k] = stride[size_t(axes[k])];
  HostTensor out(DType::kF32, {os[0], os[1], os[2], os[3]});
  const float* in = t.data<float>();
  float* o = out.data<float>();
  for (int64_t a = 0; a < os[0]; ++a)
    for (int64_t b = 0; b < os[1]; ++b)
      for (int64_t c = 0; c < os[2]; ++c)
        for (int64_t d = 0; d < os[3]; ++d)
          *o++ = in[a * ostride[0] + b * ostride[1] + c * ostride[2] + d * ostride[3]];
  return out;
}

// Non-owning view; rank <= 4; contiguous row-major unless `ld` (leading-dimension, in elements,
// of the last axis' rows) says otherwise: rows of a 2-D view may be strided, e.g. the Q slice of
// a fused QKV output.
struct Tensor {
  void* data = nullptr;
  DType dtype = DType::kF32;
  std::array<int64_t, 4> dims{};
  int rank = 0;
  int64_t ld = 0;  // elements between consecutive rows (last-axis vectors); 0 = dims[rank-1]

  int64_t dim(int i) const { return dims[size_t(i < 0 ? rank + i : i)]; }
  int64_t cols() const { return rank ? dims[size_t(rank - 1)] : 1; }
  int64_t rows() const {
    int64_t r = 1;
    for (int i = 0; i + 1 < rank; ++i) r *= dims[size_t(i)];
    return r;
  }
  int64_t numel() const { return rows() * cols(); }
  int64_t row_stride() const { return ld ? ld : cols(); }
  template <typename T>
  T* ptr() const { return static_cast<T*>(data); }

  // Columns [begin, begin + n) of every row: a strided view sharing memory.
  Tensor col_slice(int64_t begin, int64_t n) const {
    Tensor t = *this;
    t.data = static_cast<std::byte*>(data) + size_t(begin) * dtype_size(dtype);
    t.dims[size_t(rank - 1)] = n;
    t.ld = row_stride();
    return t;
  }
  // Same memory seen with another shape (contiguous views only).
  Tensor view(std::initializer_list<int64_t> shape) const {
    WENET_CHECK(ld == 0 || ld == cols(), "view of a strided tensor");
    Tensor t;
    t.data = data;
    t.dtype = dtype;
    for (int64_t d : shape) t.dims[size_t(t.rank++)] = d;
    WENET_CHECK(t.numel() == numel(), "view changes the element count");
    return t;
  }
};

// A view of `data` (owned elsewhere) with a contiguous shape of rank <= 4 (rank 0 becomes [1]).
inline Tensor make_view(void* data, const Shape& shape, DType dtype) {
  WENET_CHECK(shape.size() <= 4, "tensor rank {} > 4", shape.size());
  Tensor t;
  t.data = data;
  t.dtype = dtype;
  for (int64_t d : shape) t.dims[size_t(t.rank++)] = d;
  if (t.rank == 0) t.dims[size_t(t.rank++)] = 1;
  return t;
}

}  // namespace wenet_rt
