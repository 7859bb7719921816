// The per-forward workspace arena: device memory reserved up front (one cudaMalloc), handed out by
// bumping a pointer (256-byte aligned) and rewound by reset(). No cudaMalloc on the hot path.
//
// When a forward needs more than the reservation, the arena grows by adding a chunk -- but only
// outside CUDA-graph capture. Chunks are never freed or moved while the arena lives, so addresses
// baked into captured graphs stay valid, and the same allocation sequence from the same starting
// mark always yields the same addresses (what graph replay relies on).
#pragma once

#include <cstddef>
#include <vector>

namespace wenet_rt {

class DeviceArena {
 public:
  static constexpr size_t kAlignment = 256;

  // A position in the arena: which chunk, and the offset in it.
  struct Mark {
    size_t chunk = 0, offset = 0;
    bool operator==(const Mark&) const = default;
  };

  explicit DeviceArena(size_t reserve_bytes);
  ~DeviceArena();
  DeviceArena(const DeviceArena&) = delete;
  DeviceArena& operator=(const DeviceArena&) = delete;

  // `can_grow` is false while a stream is being captured (cudaMalloc is not allowed then).
  void* alloc(size_t bytes, bool can_grow);
  void reset() { pos_ = Mark{}; }
  Mark mark() const { return pos_; }
  void rewind(Mark m) { pos_ = m; }
  size_t reserved_bytes() const;

 private:
  struct Chunk {
    void* base = nullptr;
    size_t size = 0;
  };
  std::vector<Chunk> chunks_;
  Mark pos_;
  size_t chunk_bytes_;
};

}  // namespace wenet_rt
