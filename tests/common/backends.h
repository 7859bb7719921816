// Backends a test binary runs on: the cpu binaries use the CPU backend; binaries built with
// WENET_TEST_GPU run CUDA fp32 and fp16 and skip when no GPU is present.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace wenet_rt::testing {

enum class BackendKind { kCpu, kCudaF32, kCudaF16 };

inline const char* backend_kind_name(BackendKind k) {
  return k == BackendKind::kCpu ? "cpu" : k == BackendKind::kCudaF32 ? "cuda_fp32" : "cuda_fp16";
}

inline std::vector<BackendKind> test_backends() {
#ifdef WENET_TEST_GPU
  return {BackendKind::kCudaF32, BackendKind::kCudaF16};
#else
  return {BackendKind::kCpu};
#endif
}

// nullptr when the backend cannot run here (no GPU). CUDA backends launch their kernels with
// Programmatic Dependent Launch where the device supports it when `pdl`, as users' backends do by
// default (the environment's WENET_RT_PDL=1 / 0 overrides it everywhere).
inline std::unique_ptr<Backend> make_test_backend(BackendKind k, bool cuda_graphs = true, bool pdl = true) {
  if (k == BackendKind::kCpu) return make_cpu_backend();
#if defined(WENET_RT_HAVE_CUDA) && defined(WENET_TEST_GPU)
  try {
    CudaBackendOptions o;
    o.dtype = k == BackendKind::kCudaF16 ? DType::kF16 : DType::kF32;
    o.cuda_graphs = cuda_graphs;
    o.programmatic_launch = pdl;
    return make_cuda_backend(o);
  } catch (const Error&) {
    return nullptr;
  }
#else
  (void)cuda_graphs, (void)pdl;
  return nullptr;
#endif
}

// Accuracy contract per backend (DESIGN.md section 3): a0 = max abs diff, r0 = median rel diff.
struct Tolerance {
  double enc_a0, enc_r0, dec_a0, dec_r0;
};
inline Tolerance tolerance(BackendKind k) {
  switch (k) {
    case BackendKind::kCpu: return {1e-4, 1e-4, 1e-4, 1e-4};
    case BackendKind::kCudaF32: return {1e-3, 1e-3, 1e-3, 1e-3};
    case BackendKind::kCudaF16: return {3.5e-2, 2e-3, 4e-1, 3e-4};
  }
  return {};
}

}  // namespace wenet_rt::testing
