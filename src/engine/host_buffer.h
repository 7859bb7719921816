// Host memory an engine reuses across batches (page-locked on cuda, so copies stay asynchronous).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdlib>

#include "backend/backend.h"

namespace wenet_rt {

// Grows only: reused across batches so that a steady state allocates nothing.
class HostBuffer {
 public:
  template <typename T>
  T* get(Backend& be, size_t count) {
    const size_t bytes = count * sizeof(T);
    if (bytes > bytes_ || !mem_) {
      bytes_ = std::max(bytes, bytes_ * 3 / 2);
      mem_ = be.alloc_host(bytes_);
    }
    return static_cast<T*>(mem_.get());
  }
  template <typename T>
  T* data() const { return static_cast<T*>(mem_.get()); }

 private:
  Backend::HostMemory mem_{nullptr, std::free};
  size_t bytes_ = 0;
};

}  // namespace wenet_rt
