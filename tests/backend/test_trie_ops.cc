// The CPU backend's prefix-trie layouts (backend.h: AttentionArgs::query_offsets / key_rows,
// embed's positions) against the dense ops they generalize: a trie path's queries must come out
// bit for bit as the same rows of the whole path decoded alone, an utterance's ragged queries as
// its rows attending alone; and the errors their checks raise.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "common/expect_error.h"

namespace wenet_rt {
namespace {

using testing::expect_error;

constexpr int kHeads = 4, kDk = 36, kHD = kHeads * kDk;  // the demo decoder's heads

class CpuTrieOps : public ::testing::Test {
 protected:
  Tensor tensor(const std::vector<float>& v, std::initializer_list<int64_t> shape) {
    Tensor t = be_->alloc(shape, DType::kF32);
    be_->copy_in(v.data(), t);
    return t;
  }
  Tensor ints(const std::vector<int32_t>& v, std::initializer_list<int64_t> shape) {
    Tensor t = be_->alloc(shape, DType::kI32);
    be_->copy_in(v.data(), t);
    return t;
  }
  Tensor ints(const std::vector<int32_t>& v) { return ints(v, {int64_t(v.size())}); }
  std::vector<float> random(size_t n) {
    std::uniform_real_distribution<float> u(-2.f, 2.f);
    std::vector<float> v(n);
    for (float& x : v) x = u(rng_);
    return v;
  }
  std::vector<float> out(const Tensor& t) {
    std::vector<float> v(size_t(t.numel()));
    be_->copy_out(t, v.data());
    return v;
  }
  // rows [r0, r0 + n) of a [rows, C] host matrix.
  static std::vector<float> rows_of(const std::vector<float>& m, int64_t C, int64_t r0, int64_t n) {
    return std::vector<float>(m.begin() + r0 * C, m.begin() + (r0 + n) * C);
  }
  static void expect_same_bits(const std::vector<float>& a, const std::vector<float>& b, const std::string& what) {
    ASSERT_EQ(a.size(), b.size()) << what;
    ASSERT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << what;
  }

  std::unique_ptr<Backend> be_ = make_cpu_backend(2);
  std::mt19937 rng_{7};
};

// One utterance's memory per item, its queries a range of rows (the trie nodes of an utterance
// attending to its encoder output): each range as that item's queries alone.
TEST_F(CpuTrieOps, RaggedQueriesEqualEachItemAlone) {
  const int64_t Tk = 50;
  const std::vector<int32_t> key_lens = {50, 17, 0}, offsets = {0, 37, 107, 112};  // 37, 70 (two blocks), 5 queries
  const int64_t B = 3, Q = offsets.back();
  const std::vector<float> qs = random(size_t(Q * kHD)), ks = random(size_t(B * Tk * kHD)),
                           vs = random(size_t(B * Tk * kHD));
  const Tensor k = tensor(ks, {B, Tk, kHD}), v = tensor(vs, {B, Tk, kHD});
  AttentionArgs a;
  a.q = tensor(qs, {Q, kHD});
  a.k = k;
  a.v = v;
  a.key_lens = ints(key_lens);
  a.query_offsets = ints(offsets);
  a.heads = kHeads;
  a.out = be_->alloc({Q, kHD}, DType::kF32);
  be_->attention(a);
  const std::vector<float> got = out(a.out);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = offsets[size_t(b) + 1] - offsets[size_t(b)];
    AttentionArgs one;
    one.q = tensor(rows_of(qs, kHD, offsets[size_t(b)], n), {1, n, kHD});
    one.k = tensor(rows_of(ks, kHD, b * Tk, Tk), {1, Tk, kHD});
    one.v = tensor(rows_of(vs, kHD, b * Tk, Tk), {1, Tk, kHD});
    one.key_lens = ints({key_lens[size_t(b)]});
    one.heads = kHeads;
    one.out = be_->alloc({1, n, kHD}, DType::kF32);
    be_->attention(one);
    expect_same_bits(rows_of(got, kHD, offsets[size_t(b)], n), out(one.out), "item " + std::to_string(b));
  }
}

// Hypothesis paths through a trie of node rows (self-attention of the rescoring decoder): the
// nodes each path adds must equal the last rows of its whole path decoded causally alone.
TEST_F(CpuTrieOps, TreePathsEqualEachPathDecodedWhole) {
  // Nodes 0..59: path 0 (root 0 + a chain, 60 positions: two query blocks). Path 1 leaves it after
  // node 29 and adds 60..79; path 2 leaves path 1 after node 64 and adds 80..85; path 3 is a prefix
  // of path 0 (adds nothing); path 4 is an empty hypothesis (the root alone).
  std::vector<std::vector<int32_t>> paths(5);
  for (int32_t i = 0; i < 60; ++i) paths[0].push_back(i);
  for (int32_t i = 0; i < 30; ++i) paths[1].push_back(i);
  for (int32_t i = 60; i < 80; ++i) paths[1].push_back(i);
  paths[2].assign(paths[1].begin(), paths[1].begin() + 35);
  for (int32_t i = 80; i < 86; ++i) paths[2].push_back(i);
  paths[3].assign(paths[0].begin(), paths[0].begin() + 20);
  paths[4] = {0};
  const std::vector<int32_t> added = {0, 60, 80, 86, 86, 86};
  const int64_t X = 86, P = int64_t(paths.size()), Tk = 64;  // key rows padded past the longest path
  std::vector<int32_t> key_rows(size_t(P * Tk), 0), lens;
  for (size_t p = 0; p < paths.size(); ++p) {
    std::copy(paths[p].begin(), paths[p].end(), key_rows.begin() + long(p * Tk));
    lens.push_back(int32_t(paths[p].size()));
  }
  // q, k, v: column slices of one [X, 3 HD] projection, as the decoder's fused QKV.
  const std::vector<float> qkv_host = random(size_t(X * 3 * kHD));
  const Tensor qkv = tensor(qkv_host, {X, 3 * kHD});
  AttentionArgs a;
  a.q = qkv.col_slice(0, kHD);
  a.k = qkv.col_slice(kHD, kHD);
  a.v = qkv.col_slice(2 * kHD, kHD);
  a.key_lens = ints(lens);
  a.query_offsets = ints(added);
  a.key_rows = ints(key_rows, {P, Tk});
  a.heads = kHeads;
  a.causal = true;
  a.out = be_->alloc({X, kHD}, DType::kF32);
  be_->attention(a);
  const std::vector<float> got = out(a.out);
  for (size_t p = 0; p < paths.size(); ++p) {
    const int64_t len = int64_t(paths[p].size()), n = added[p + 1] - added[p];
    if (n == 0) continue;
    std::vector<float> whole;  // the path's rows of qkv, in order
    for (int32_t r : paths[p])
      whole.insert(whole.end(), qkv_host.begin() + r * 3 * kHD, qkv_host.begin() + (r + 1) * 3 * kHD);
    const Tensor w = tensor(whole, {1, len, 3 * kHD});
    AttentionArgs one;
    one.q = w.col_slice(0, kHD);
    one.k = w.col_slice(kHD, kHD);
    one.v = w.col_slice(2 * kHD, kHD);
    one.key_lens = ints({int32_t(len)});
    one.heads = kHeads;
    one.causal = true;
    one.out = be_->alloc({1, len, kHD}, DType::kF32);
    be_->attention(one);
    expect_same_bits(rows_of(got, kHD, added[p], n), rows_of(out(one.out), kHD, len - n, n),
                     "path " + std::to_string(p));
  }
}

TEST_F(CpuTrieOps, EmbedAtPositions) {
  const int64_t V = 30, D = 16, T = 8;
  const Tensor table = tensor(random(size_t(V * D)), {V, D}), pos = tensor(random(size_t(T * D)), {T, D});
  const std::vector<int32_t> ids = {29, 3, 3, 7, 0}, positions = {0, 1, 5, 2, 7};
  Tensor y = be_->alloc({int64_t(ids.size()), D}, DType::kF32);
  const Tensor p = ints(positions);
  be_->embed(ints(ids), table, 2.f, pos, y, &p);
  const std::vector<float> got = out(y);
  // Dense: row t of a [1, T] sequence holding ids[m] at t = positions[m].
  for (size_t m = 0; m < ids.size(); ++m) {
    std::vector<int32_t> seq(size_t(T), 0);
    seq[size_t(positions[m])] = ids[m];
    Tensor dense = be_->alloc({1, T, D}, DType::kF32);
    be_->embed(ints(seq, {1, T}), table, 2.f, pos, dense);
    expect_same_bits(rows_of(got, D, int64_t(m), 1), rows_of(out(dense), D, positions[m], 1),
                     "id " + std::to_string(m));
  }
  const Tensor past = ints({0, 1, 8, 2, 7});
  expect_error([&] { be_->embed(ints(ids), table, 2.f, pos, y, &past); },
               {"embed: position 8 outside the table's [0, 8)"});
  const Tensor short_positions = ints({0, 1});
  expect_error([&] { be_->embed(ints(ids), table, 2.f, pos, y, &short_positions); },
               {"expected positions int32 [5]", "2 values"});
}

TEST_F(CpuTrieOps, BadLayoutsAreClearErrors) {
  const int64_t X = 10, Tk = 6;
  const Tensor qkv = tensor(random(size_t(X * 3 * kHD)), {X, 3 * kHD});
  const auto args = [&] {
    AttentionArgs a;
    a.q = qkv.col_slice(0, kHD);
    a.k = qkv.col_slice(kHD, kHD);
    a.v = qkv.col_slice(2 * kHD, kHD);
    a.key_lens = ints({6, 4});
    a.query_offsets = ints({0, 6, 8});
    a.key_rows = ints({0, 1, 2, 3, 4, 5, 0, 1, 6, 7, 0, 0}, {2, Tk});
    a.heads = kHeads;
    a.causal = true;
    a.out = be_->alloc({X, kHD}, DType::kF32);
    return a;
  };
  be_->attention(args());  // valid
  AttentionArgs a = args();
  a.query_offsets = ints({0, 6, 5});
  expect_error([&] { be_->attention(a); }, {"attention: item 1: query rows 6..5 outside [0, 10] or decreasing"});
  a = args();
  a.query_offsets = ints({0, 6, 11});
  expect_error([&] { be_->attention(a); }, {"item 1: query rows 6..11 outside [0, 10]"});
  a = args();
  a.query_offsets = ints({0, 1, 6});
  expect_error([&] { be_->attention(a); }, {"item 1: 5 causal queries are more than its 4 keys"});
  a = args();
  a.key_rows = ints({0, 1, 2, 3, 4, 5, 0, 1, 10, 7, 0, 0}, {2, Tk});
  expect_error([&] { be_->attention(a); }, {"item 1: key 2 is row 10, expected [0, 10)"});
  a = args();
  a.query_offsets = ints({0, 6});
  expect_error([&] { be_->attention(a); }, {"expected query_offsets int32 [3]", "2 values"});
  a = args();
  a.queries_per_kv = 2;
  expect_error([&] { be_->attention(a); }, {"query_offsets take neither ring_rows nor queries_per_kv"});
  a = args();
  a.q = qkv.view({2, 5, 3 * kHD}).col_slice(0, kHD);
  expect_error([&] { be_->attention(a); }, {"with query_offsets, expected q and out [rows, 144]"});
  a = args();
  a.key_rows = ints({0, 1, 2, 3, 4, 5}, {1, Tk});
  expect_error([&] { be_->attention(a); }, {"expected key_rows int32 [2, Tk]"});
}

}  // namespace
}  // namespace wenet_rt
