// Where the keys of one attention item live, for both attention kernels: contiguous [Bk, Tk]
// rows, or a stream's slot of a ring pool (AttentionParams::ring_rows > 0).
#pragma once

#include <climits>

#include "backend/cuda/kernels/kernels.h"

namespace wenet_rt::cuda_kernels {

// Key j of the item is row base + (first + j), wrapped once at R, of k / v; its position row is
// pos0 + j. `len` is the number of keys the item may see.
struct AttentionKeyRows {
  int64_t base;
  int first, R, pos0, len;

  __device__ __forceinline__ int64_t row(int j) const {
    const int i = first + j;  // first < R and j < len <= R: at most one wrap
    return base + (i >= R ? i - R : i);
  }
};

__device__ __forceinline__ AttentionKeyRows attention_key_rows(const AttentionParams& p, int bk, bool rel) {
  AttentionKeyRows r;
  if (p.ring_rows > 0) {
    const int slot = p.kv_slot[bk], start = p.key_start[bk];
    const bool ok = slot >= 0 && slot < p.ring_slots && start >= 0;
    r.base = ok ? int64_t(slot) * p.ring_rows : 0;
    r.first = ok ? start % p.ring_rows : 0;
    r.R = p.ring_rows;
    r.pos0 = ok ? start : 0;
    r.len = ok ? min(max(p.key_lens[bk], 0), p.ring_rows) : 0;
  } else {
    r.base = int64_t(bk) * p.Tk;
    r.first = 0;
    r.R = INT_MAX;
    r.pos0 = 0;
    r.len = min(max(p.key_lens[bk], 0), p.Tk);
  }
  if (rel) r.len = min(r.len, max(p.pos_rows - r.pos0, 0));
  return r;
}

}  // namespace wenet_rt::cuda_kernels
