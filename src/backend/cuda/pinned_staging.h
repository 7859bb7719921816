// Host-to-device copies that do not stall the stream. CUDA synchronizes the stream before copying
// from pageable host memory, so a pipeline enqueuing batch k + 1 while the device still works on
// batch k would wait for it at every small upload (lengths, offsets). The bytes go through a ring
// of page-locked buffers instead; a buffer is reused once its previous copy has completed.
// Header-only (used by the backend and by the GPU fbank). Not thread-safe.
#pragma once

#include <cuda_runtime_api.h>

#include <array>
#include <cstring>

#include "core/error.h"

namespace wenet_rt {

class PinnedStaging {
 public:
  PinnedStaging() = default;
  ~PinnedStaging() {
    for (Slot& s : slots_) {
      if (s.event) cudaEventDestroy(s.event);
      if (s.host) cudaFreeHost(s.host);
    }
  }
  PinnedStaging(const PinnedStaging&) = delete;
  PinnedStaging& operator=(const PinnedStaging&) = delete;

  // dst (device) <- src (any host memory): rows of `width` bytes, `src_pitch` / `dst_pitch` apart.
  void copy_2d(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t width, size_t rows,
               cudaStream_t stream) {
    if (width == 0 || rows == 0) return;
    Slot& s = slots_[next_++ % slots_.size()];
    check(s.event ? cudaEventSynchronize(s.event) : cudaEventCreateWithFlags(&s.event, cudaEventDisableTiming));
    const size_t bytes = width * rows;
    if (bytes > s.bytes) {
      if (s.host) check(cudaFreeHost(s.host));
      s.host = nullptr;
      s.bytes = 0;
      check(cudaHostAlloc(&s.host, bytes, cudaHostAllocDefault));
      s.bytes = bytes;
    }
    auto* out = static_cast<unsigned char*>(s.host);
    const auto* in = static_cast<const unsigned char*>(src);
    if (src_pitch == width) {
      std::memcpy(out, in, bytes);
    } else {
      for (size_t r = 0; r < rows; ++r) std::memcpy(out + r * width, in + r * src_pitch, width);
    }
    check(cudaMemcpy2DAsync(dst, dst_pitch, out, width, width, rows, cudaMemcpyHostToDevice, stream));
    check(cudaEventRecord(s.event, stream));
  }
  void copy(void* dst, const void* src, size_t bytes, cudaStream_t stream) {
    copy_2d(dst, bytes, src, bytes, bytes, 1, stream);
  }

 private:
  static void check(cudaError_t e) {
    if (e != cudaSuccess) fail("CUDA error in a staged host-to-device copy: {}", cudaGetErrorString(e));
  }
  struct Slot {
    void* host = nullptr;
    size_t bytes = 0;
    cudaEvent_t event = nullptr;
  };
  std::array<Slot, 8> slots_{};
  size_t next_ = 0;
};

}  // namespace wenet_rt
