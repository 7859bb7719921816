// Attention: each (sequence, head)'s visible keys and values packed once per call (keys with
// their relative-position rows as [k | p]), then blocks of query rows over the thread pool, each
// block's scores living only in its thread's scratch (kernels/attention.h).
#include <algorithm>
#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/gemm.h"
#include "backend/op_checks.h"

namespace wenet_rt::cpu {

void CpuBackend::attention(const AttentionArgs& a) {
  Scope s(this, "attention");
  const bool ring = a.ring_rows > 0, ragged = a.query_offsets.data != nullptr, tree = a.key_rows.data != nullptr;
  if (ring) check_attention_ring(a);
  if (ragged) check_attention_trie(a);
  const int64_t Bk = ring || ragged ? a.key_lens.numel() : a.k.dim(0);
  const int64_t Bq = ragged ? Bk : a.q.dim(0), Tq = ragged ? 0 : a.q.dim(1);
  const int64_t H = a.heads, dk = a.q.cols() / H;
  WENET_CHECK(a.q.dtype == DType::kF32 && a.k.dtype == DType::kF32 && a.v.dtype == DType::kF32,
              "attention: expected float32 q, k, v");
  WENET_CHECK(H > 0 && a.q.cols() == H * dk && a.k.cols() == H * dk && a.v.cols() == H * dk &&
                  (ring || tree || (a.v.dim(0) == Bk && a.v.dim(1) == a.k.dim(1))) && a.queries_per_kv > 0 &&
                  Bq == Bk * a.queries_per_kv,
              "attention: shape mismatch");
  const bool rel = a.pos.data != nullptr;
  const int64_t ldq = a.q.row_stride(), ldk = a.k.row_stride(), ldv = a.v.row_stride(), ldo = a.out.row_stride();
  const int32_t* qo = ragged ? a.query_offsets.ptr<int32_t>() : nullptr;
  auto* lens = static_cast<int64_t*>(arena_.allocate(size_t(Bk) * sizeof(int64_t)));
  // Keys of item b: its first key's row in k / v (ring: of its slot) and position row.
  auto* key_row0 = static_cast<int64_t*>(arena_.allocate(size_t(Bk) * sizeof(int64_t)));
  auto* pos_row0 = static_cast<int64_t*>(arena_.allocate(size_t(Bk) * sizeof(int64_t)));
  int64_t Tk = 0;  // keys per item the packed panels are laid out for
  if (ring) {
    const int64_t R = a.ring_rows, slots = a.k.rows() / R;
    for (int64_t b = 0; b < Bk; ++b) {
      const int64_t slot = a.kv_slot.ptr<int32_t>()[b], start = a.key_start.ptr<int32_t>()[b];
      lens[b] = a.key_lens.ptr<int32_t>()[b];
      WENET_CHECK(slot >= 0 && slot < slots, "attention: item {}: kv_slot {} outside [0, {})", b, slot, slots);
      WENET_CHECK(start >= 0 && lens[b] >= 0 && lens[b] <= R,
                  "attention: item {}: expected key_start >= 0 and key_lens in [0, {}] (ring rows), got {} and {}", b,
                  R, start, lens[b]);
      WENET_CHECK(!rel || start + lens[b] <= a.pos.rows(),
                  "attention: item {}: keys at frames {}..{} past the {} position rows", b, start, start + lens[b] - 1,
                  a.pos.rows());
      key_row0[b] = slot * R + start % R;
      pos_row0[b] = start;
      Tk = std::max(Tk, lens[b]);
    }
  } else {
    Tk = tree ? a.key_rows.cols() : a.k.dim(1);
    WENET_CHECK(!rel || a.pos.rows() >= Tk, "attention: expected at least {} position rows, got {}", Tk, a.pos.rows());
    for (int64_t b = 0; b < Bk; ++b) {
      lens[b] = std::clamp<int64_t>(a.key_lens.ptr<int32_t>()[b], 0, Tk);
      key_row0[b] = b * Tk;
      pos_row0[b] = 0;
    }
  }
  // Trie rows: each item's query range and, on a path, its keys' rows (checked before any is read).
  const int32_t* key_rows = tree ? a.key_rows.ptr<int32_t>() : nullptr;
  for (int64_t b = 0; ragged && b < Bk; ++b) {
    WENET_CHECK(qo[b] >= 0 && qo[b] <= qo[b + 1] && qo[b + 1] <= a.q.rows(),
                "attention: item {}: query rows {}..{} outside [0, {}] or decreasing", b, qo[b], qo[b + 1], a.q.rows());
    WENET_CHECK(!a.causal || qo[b + 1] - qo[b] <= lens[b],
                "attention: item {}: {} causal queries are more than its {} keys", b, qo[b + 1] - qo[b], lens[b]);
    for (int64_t j = 0; tree && j < lens[b]; ++j)
      WENET_CHECK(key_rows[b * Tk + j] >= 0 && key_rows[b * Tk + j] < a.k.rows(),
                  "attention: item {}: key {} is row {}, expected [0, {})", b, j, key_rows[b * Tk + j], a.k.rows());
  }
  const int64_t kd = rel ? 2 * dk : dk;
  // Key panels of 48 or 64 (8 x 3 or 6 x 4 tiles) past 32 keys, even where 16 pads fewer: at
  // depth dk the 12 x 1 tile of 16-key panels waits on its broadcasts (10-14% slower per call at
  // 300 keys, dk 36, with 11% more keys padded).
  const auto pad = [&](int nr) { return (Tk + nr - 1) / nr * nr; };
  const int key_nr = Tk > 32 ? (pad(48) <= pad(64) ? 48 : 64) : pick_nr(Tk), val_nr = pick_nr(dk);
  const int64_t key_panels = (Tk + key_nr - 1) / key_nr;
  // Packed keys and values of every (sequence, head): only the visible ones are filled.
  const int64_t key_floats = key_panels * key_nr * kd, val_floats = int64_t(packed_floats(dk, Tk, val_nr));
  float* keys = scratch(Bk * H * key_floats);
  float* vals = scratch(Bk * H * val_floats);
  // Ring pools and trie paths: a head's keys and values are not one strided run; gathered here
  // into contiguous rows [len, dk] (in the thread's scratch) first, then packed as contiguous ones are.
  float* gathered = ring || tree ? scratch(int64_t(pool_.size()) * 2 * Tk * dk) : nullptr;
  pool_.run(Bk * H, [&](int64_t unit, int thread) {
    const int64_t b = unit / H, h = unit % H, len = lens[b];
    if (len == 0 || (ragged && qo[b + 1] == qo[b])) return;  // no keys, or no queries to see them
    float* kp = keys + unit * key_floats;
    const float* k = a.k.ptr<float>() + key_row0[b] * ldk + h * dk;
    const float* v = a.v.ptr<float>() + key_row0[b] * ldv + h * dk;
    int64_t ldk_u = ldk, ldv_u = ldv;
    if (gathered) {
      const int64_t R = a.ring_rows, slot_row = ring ? key_row0[b] - key_row0[b] % R : 0;
      const int64_t first = ring ? key_row0[b] % R : 0;
      float* gk = gathered + thread * 2 * Tk * dk;
      float* gv = gk + Tk * dk;
      for (int64_t j = 0; j < len; ++j) {
        const int64_t row = ring ? slot_row + (first + j) % R : key_rows[b * Tk + j];
        std::copy_n(a.k.ptr<float>() + row * ldk + h * dk, dk, gk + j * dk);
        std::copy_n(a.v.ptr<float>() + row * ldv + h * dk, dk, gv + j * dk);
      }
      k = gk, v = gv, ldk_u = ldv_u = dk;
    }
    if (!rel) {
      pack_nk(k, ldk_u, len, dk, key_nr, kp);
    } else {
      // [k | p] per key: pack both halves into a panel of depth 2 dk.
      const int64_t ldp = a.pos.row_stride();
      const float* p = a.pos.ptr<float>() + pos_row0[b] * ldp + h * dk;
      for (int64_t pn = 0; pn < (len + key_nr - 1) / key_nr; ++pn) {
        float* out = kp + pn * kd * key_nr;
        const int64_t n0 = pn * key_nr, cols = std::min<int64_t>(key_nr, len - n0);
        for (int64_t j = 0; j < cols; ++j) {
          const float* kj = k + (n0 + j) * ldk_u;
          const float* pj = p + (n0 + j) * ldp;
          for (int64_t d = 0; d < dk; ++d) {
            out[d * key_nr + j] = kj[d];
            out[(dk + d) * key_nr + j] = pj[d];
          }
        }
        for (int64_t d = 0; d < kd; ++d)
          for (int64_t j = cols; j < key_nr; ++j) out[d * key_nr + j] = 0.f;
      }
    }
    pack_kn(v, ldv_u, len, dk, val_nr, vals + unit * val_floats);
  });
  // Blocks of query rows: a multiple of every kernel's row tile. Block i covers `rows` queries of
  // item bq from row q_row of q / out, the first at key position `pos`.
  constexpr int64_t kBlock = 48;
  struct QueryBlock {
    int64_t bq, q_row, rows, pos;
  };
  int64_t nblocks = 0;
  for (int64_t b = 0; b < Bq; ++b) {
    const int64_t n = ragged ? qo[b + 1] - qo[b] : Tq;
    nblocks += (n + kBlock - 1) / kBlock;
  }
  auto* blocks = static_cast<QueryBlock*>(arena_.allocate(size_t(nblocks) * sizeof(QueryBlock)));
  for (int64_t b = 0, i = 0; b < Bq; ++b) {
    const int64_t n = ragged ? qo[b + 1] - qo[b] : Tq, row0 = ragged ? qo[b] : b * Tq;
    const int64_t pos0 = ragged ? lens[b] - n : 0;  // a trie path's queries are its last keys
    for (int64_t t0 = 0; t0 < n; t0 += kBlock) blocks[i++] = {b, row0 + t0, std::min(kBlock, n - t0), pos0 + t0};
  }
  const int64_t per_thread = attention_scratch_floats(kBlock, key_panels * key_nr, dk);
  float* thread_scratch = scratch(int64_t(pool_.size()) * per_thread);
  const float scale = 1.f / std::sqrt(float(dk));
  pool_.run(nblocks * H, [&](int64_t task, int thread) {
    const QueryBlock& blk = blocks[task / H];
    const int64_t h = task % H, bk = blk.bq / a.queries_per_kv, unit = bk * H + h, len = lens[bk];
    AttentionHead head;
    head.rows = blk.rows;
    head.q = a.q.ptr<float>() + blk.q_row * ldq + h * dk;
    head.ldq = ldq;
    head.dk = dk;
    head.scale = scale;
    if (rel) {
      head.bias_u = a.pos_bias_u.ptr<float>() + h * dk;
      head.bias_v = a.pos_bias_v.ptr<float>() + h * dk;
    }
    // Panels are laid out for Tk keys; only the first len are filled and read.
    head.keys = PackedB{keys + unit * key_floats, Tk, kd, key_nr};
    head.values = PackedB{vals + unit * val_floats, dk, len, val_nr};
    head.key_len = len;
    head.causal = a.causal;
    head.first_query = blk.pos;
    head.out = a.out.ptr<float>() + blk.q_row * ldo + h * dk;
    head.ldo = ldo;
    kt_.attention(head, thread_scratch + thread * per_thread);
  });
}

}  // namespace wenet_rt::cpu
