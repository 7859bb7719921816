// programmatic_launch_supported(): whether PDL may be turned on for a device (launch.cuh).
#include "backend/cuda/kernels/launch.cuh"

namespace wenet_rt::cuda_kernels {
namespace {

// Compiled with the same architectures as every other kernel of the backend: the PTX version the
// device runs it from is the one they run from.
__global__ void pdl_probe_kernel() { pdl_wait_and_trigger(); }

}  // namespace

bool programmatic_launch_supported(int device) {
  int major = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  if (major < 9) return false;
  int current = -1;
  if (cudaGetDevice(&current) != cudaSuccess || current != device) {
    cudaGetLastError();
    return false;  // the backend sets its device before asking
  }
  cudaFuncAttributes a{};
  if (cudaFuncGetAttributes(&a, pdl_probe_kernel) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return a.ptxVersion >= 90 && a.binaryVersion >= 90;
}

}  // namespace wenet_rt::cuda_kernels
