// GPU tests skip, with a message, on machines without a CUDA device.
#pragma once

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

namespace wenet_rt::testing {

inline bool have_cuda_device() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return false;
  }
  return n > 0;
}

}  // namespace wenet_rt::testing

#define SKIP_WITHOUT_GPU() \
  if (!::wenet_rt::testing::have_cuda_device()) GTEST_SKIP() << "no CUDA device: GPU tests skipped"
