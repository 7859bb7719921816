#include "backend/cuda/device_arena.h"

#include <algorithm>

#include "backend/cuda/cuda_check.h"

namespace wenet_rt {

DeviceArena::DeviceArena(size_t reserve_bytes) : chunk_bytes_(std::max<size_t>(reserve_bytes, kAlignment)) {
  Chunk c;
  c.size = chunk_bytes_;
  WENET_CUDA_CHECK(cudaMalloc(&c.base, c.size));
  chunks_.push_back(c);
}

DeviceArena::~DeviceArena() {
  for (Chunk& c : chunks_) cudaFree(c.base);  // errors ignored: destructors never throw
}

void* DeviceArena::alloc(size_t bytes, bool can_grow) {
  bytes = std::max<size_t>((bytes + kAlignment - 1) / kAlignment * kAlignment, kAlignment);
  // First fit from the current position onwards: deterministic for a given starting mark.
  while (pos_.chunk < chunks_.size()) {
    Chunk& c = chunks_[pos_.chunk];
    if (pos_.offset + bytes <= c.size) {
      void* p = static_cast<std::byte*>(c.base) + pos_.offset;
      pos_.offset += bytes;
      return p;
    }
    ++pos_.chunk;
    pos_.offset = 0;
  }
  WENET_CHECK(can_grow,
              "cuda arena: {} bytes needed during CUDA-graph capture but the arena ({} bytes) is full; the "
              "captured body allocated more than its eager run did",
              bytes, reserved_bytes());
  Chunk c;
  c.size = std::max(bytes, chunk_bytes_);
  WENET_CUDA_CHECK(cudaMalloc(&c.base, c.size));
  chunks_.push_back(c);
  pos_ = Mark{chunks_.size() - 1, bytes};
  return c.base;
}

size_t DeviceArena::reserved_bytes() const {
  size_t n = 0;
  for (const Chunk& c : chunks_) n += c.size;
  return n;
}

}  // namespace wenet_rt
