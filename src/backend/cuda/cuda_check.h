// CUDA / cuBLASLt status checks: every failing call becomes a wenet_rt::Error naming the call, the
// source position and the runtime's own error string. Never aborts.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include "core/error.h"

namespace wenet_rt {

inline void cuda_check(cudaError_t status, const char* call, const char* file, int line) {
  if (status != cudaSuccess)
    fail("CUDA error: {} failed at {}:{}: {} ({})", call, file, line, cudaGetErrorString(status),
         cudaGetErrorName(status));
}

inline void cublas_check(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status != CUBLAS_STATUS_SUCCESS)
    fail("cuBLASLt error: {} failed at {}:{}: {} ({})", call, file, line, cublasLtGetStatusString(status),
         cublasLtGetStatusName(status));
}

}  // namespace wenet_rt

#define WENET_CUDA_CHECK(call) ::wenet_rt::cuda_check((call), #call, __FILE__, __LINE__)
#define WENET_CUBLAS_CHECK(call) ::wenet_rt::cublas_check((call), #call, __FILE__, __LINE__)
