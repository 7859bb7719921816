// Column-major GEMMs through cuBLASLt with a plan cache: D = alpha op(A) op(B) + beta C (+ bias,
// ReLU), C == D when beta != 0. Descriptors and the chosen algorithm are built once per shape /
// layout / pointer alignment and reused, so the hot path only sets the bias pointer and calls
// cublasLtMatmul. F16 data accumulates in FP32 on tensor cores; F32 data uses pure FP32 compute
// (no TF32) so that FP32 mode stays close to the CPU reference.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <unordered_map>

#include "core/dtype.h"

namespace wenet_rt {

struct GemmArgs {
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;  // D is m x n (column-major)
  const void* a = nullptr;      // stored k x m if trans_a else m x k
  int64_t lda = 0, stride_a = 0;
  const void* b = nullptr;      // stored n x k if trans_b else k x n
  int64_t ldb = 0, stride_b = 0;
  void* d = nullptr;
  int64_t ldd = 0, stride_d = 0;
  int64_t batch = 1;
  const void* bias = nullptr;  // [m], D's dtype
  bool relu = false;
  float alpha = 1.f, beta = 0.f;  // beta != 0: C = D (accumulate in place)
};

class CublasLtGemm {
 public:
  CublasLtGemm(DType dtype, void* workspace, size_t workspace_bytes);
  ~CublasLtGemm();
  CublasLtGemm(const CublasLtGemm&) = delete;
  CublasLtGemm& operator=(const CublasLtGemm&) = delete;

  // Returns false (launching nothing) when cuBLASLt has no algorithm for this problem, so a caller
  // can split it; any other failure throws.
  bool run(const GemmArgs& g, cudaStream_t stream);

 private:
  struct Key {
    int64_t v[20];
    bool operator==(const Key& o) const;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const;
  };
  struct Plan;

  Key make_key(const GemmArgs& g) const;
  std::unique_ptr<Plan> make_plan(const GemmArgs& g) const;

  DType dtype_;
  cublasLtHandle_t handle_ = nullptr;
  void* workspace_;
  size_t workspace_bytes_;
  std::unordered_map<Key, std::unique_ptr<Plan>, KeyHash> plans_;
};

}  // namespace wenet_rt
