// programmatic_launch_supported(): whether PDL may be turned on for a device; device_limits() and
// opt_in_dynamic_smem() (launch.cuh).
#include "backend/cuda/kernels/launch.cuh"

#include <atomic>
#include <map>
#include <mutex>
#include <utility>

namespace wenet_rt::cuda_kernels {
namespace {

// Compiled with the same architectures as every other kernel of the backend: the PTX version the
// device runs it from is the one they run from.
__global__ void pdl_probe_kernel() { pdl_wait_and_trigger(); }

}  // namespace

DeviceLimits device_limits(int device) {
  static std::atomic<bool> known[64];
  static DeviceLimits cache[64];
  if (device >= 0 && device < 64 && known[device].load()) return cache[device];
  DeviceLimits d;
  int v = 0;
  if (cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, device) == cudaSuccess && v > 0) d.sms = v;
  if (cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) == cudaSuccess && v > 0)
    d.smem_per_block = size_t(v);
  if (cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerMultiprocessor, device) == cudaSuccess && v > 0)
    d.smem_per_sm = size_t(v);
  cudaGetLastError();
  if (device >= 0 && device < 64) cache[device] = d, known[device] = true;
  return d;
}

int current_device() {
  int device = 0;
  cudaGetDevice(&device);
  return device;
}

bool opt_in_dynamic_smem(const void* kernel, size_t bytes) {
  if (bytes <= 48 * 1024) return true;
  static std::mutex mutex;
  static std::map<std::pair<const void*, int>, size_t> granted;
  const int device = current_device();
  std::lock_guard<std::mutex> lock(mutex);
  size_t& largest = granted[{kernel, device}];
  if (largest >= bytes) return true;
  if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)) != cudaSuccess)
    return false;
  largest = bytes;
  return true;
}

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
