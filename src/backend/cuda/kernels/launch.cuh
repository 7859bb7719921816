// The one way the backend's kernels are launched: launch_kernel(), with Programmatic Dependent
// Launch (PDL, compute capability 9.0+) when the KernelStream asks for it, and the device half of PDL,
// pdl_wait_and_trigger(), which every kernel calls as its first statement.
//
// PDL (CUDA Programming Guide, "Programmatic Dependent Launch and Synchronization"; PTX ISA,
// griddepcontrol): a kernel launched with cudaLaunchAttributeProgrammaticStreamSerialization may
// start before the previous kernel in the stream has finished: as soon as every block of that
// primary grid has executed griddepcontrol.launch_dependents (cudaTriggerProgrammaticLaunchCompletion)
// or exited. griddepcontrol.wait (cudaGridDependencySynchronize) then blocks until the primary grid
// has completed and its memory operations are visible: a full dependency, whatever the primary did
// about triggering. The trigger only decides how early the dependent's blocks get resident; it
// never makes data visible. Hence the rule every kernel here follows:
//
//   1. pdl_wait_and_trigger() is the first statement of every kernel, in every thread, before any
//      global memory access (reads of a predecessor's output, and writes a predecessor might still
//      be reading) and before any early return. Every grid therefore completes only after its
//      predecessor completed, so dependencies chain: kernel C, which waits for B, also sees A.
//      One exception: a model's weights (GEMM, depthwise conv, attention u / v), which only
//      uploads (copies, not kernels) ever write, may be fetched before the wait, so that a kernel
//      loads them while its predecessor runs.
//   2. The trigger comes right after the wait: the next kernel's blocks may then become resident
//      while this grid runs, but they only spin in their own wait until this grid has completed.
//      (Triggering after the last global write would not be needed for correctness, see above.)
//
// Both instructions are no-ops for a grid launched without the attribute, and are compiled only
// for sm_90+ (__CUDA_ARCH__ >= 900); programmatic_launch_supported() keeps PDL off where the code
// that runs lacks them (a device below 9.0, or a build whose kernels were compiled for older
// architectures and run through PTX JIT). In stream capture the attribute becomes a programmatic
// edge of the CUDA graph (same semantics), so captured graphs keep the overlap.
#pragma once

#include <cuda_runtime.h>

#include <utility>

#include "backend/cuda/kernels/kernels.h"

namespace wenet_rt::cuda_kernels {

// What launch plans need to know of a device (cached per device: the queries are not free).
struct DeviceLimits {
  int sms = 1;
  size_t smem_per_block = 48 << 10, smem_per_sm = 48 << 10;
};
DeviceLimits device_limits(int device);
int current_device();

// Lets `kernel` launch with `bytes` of dynamic shared memory on the current device: above 48 KB a
// kernel must opt in (per device; the largest size granted is remembered). False when the runtime
// refuses, its error left pending for the caller's cudaGetLastError().
bool opt_in_dynamic_smem(const void* kernel, size_t bytes);
template <typename... Params>
bool opt_in_dynamic_smem(void (*kernel)(Params...), size_t bytes) {
  return opt_in_dynamic_smem(reinterpret_cast<const void*>(kernel), bytes);
}

__device__ __forceinline__ void pdl_wait_and_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// kernel<<<grid, block, smem, s.stream>>>(args...), programmatically serialized after the previous
// kernel in the stream when s.pdl. Errors are left for the caller's cudaGetLastError(), as with <<<>>>.
template <typename... Params, typename... Args>
void launch_kernel(const KernelStream& s, void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem,
                   Args&&... args) {
  cudaLaunchAttribute attr[1] = {};
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  config.stream = s.stream;
  config.attrs = s.pdl ? attr : nullptr;
  config.numAttrs = s.pdl ? 1 : 0;
  (void)cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
}

}  // namespace wenet_rt::cuda_kernels
