// The batched chunk-by-chunk encoder (StreamingEncoder::encode_chunks over an EncoderCachePool)
// against WeNet's own forward_chunk_by_chunk outputs (tests/data/wenet-goldens/u2*_stream_tiny):
// the golden utterances as concurrent streams of different lengths (short last windows, streams
// joining mid-way, slots reused after a stream ends, rings wrapping around), on every backend this
// binary is built for; bad arguments.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "common/backends.h"
#include "common/expect_error.h"
#include "common/golden.h"
#include "graph/streaming_encoder.h"
#include "model/model_dir.h"

namespace wenet_rt::testing {
namespace {

struct Case {
  std::string dir;
  BackendKind backend;
};

std::string case_key(int utt, int C, int L) {
  return "utt" + std::to_string(utt) + "_chunk" + std::to_string(C) + "_left" + std::to_string(L);
}

// A stream of the schedule: utterance `utt` asks for a slot at step `start` (and waits while none is
// free), then sends one window per step until its frames are used up, then gives the slot back.
struct Job {
  int utt = 0, start = 0;
  int slot = -1, cur = 0;  // fbank frame of its next window
  bool done = false;
  std::vector<float> enc, ctc, top1, blank;  // per frame: [d], [V], best and blank log-prob of the top-k
  int frames = 0;
};

class BatchedStreaming : public ::testing::TestWithParam<Case> {};

// For every (C, L) golden case: five streams over a pool of three slots: utterances of 23, 7 and
// 15 frames, the third joining at step 1, two more joining later into slots freed by finished
// streams (at offsets unlike the others'). Windows padded to the chunk's length on even steps and
// to the batch's longest on odd ones; items in reverse order of their slots. Each stream's encoder
// output, CTC log-probs and CTC top-k equal the single-stream golden of its utterance.
TEST_P(BatchedStreaming, ConcurrentStreamsMatchWeNet) {
  const Case& c = GetParam();
  auto backend = make_test_backend(c.backend);
  if (!backend) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  const Tolerance tol = tolerance(c.backend);
  const ModelDir model = load_model_dir(c.dir);
  AsrModel asr(model, *backend);
  Goldens g(c.dir);
  const nlohmann::json decode = g.decode_json();
  const int V = model.config.vocab_size, D = model.config.encoder.output_size, F = model.config.encoder.input_dim;
  const int blank = model.config.blank_id, k = 3;
  const std::string name = std::filesystem::path(c.dir).filename().string();
  std::vector<HostTensor> feats;
  for (int u = 0; g.has("utt" + std::to_string(u) + "_feats"); ++u) feats.push_back(g.load("utt" + std::to_string(u) + "_feats"));
  ASSERT_EQ(feats.size(), 3u);

  int checked = 0;
  for (const auto& cl : decode.at("cases")) {
    const int C = cl.at(0).get<int>(), L = cl.at(1).get<int>();
    SCOPED_TRACE(name + " chunk " + std::to_string(C) + " left " + std::to_string(L));
    StreamingEncoder enc(asr, {C, L});
    EncoderCachePool pool = enc.make_pool(3);
    EXPECT_EQ(pool.capacity(), 3);
    EXPECT_EQ(pool.ring_rows(), L < 0 ? asr.max_subsampled_frames() : C * L + C);
    std::vector<Job> jobs = {{0, 0}, {2, 0}, {1, 1}, {2, 2}, {1, 3}};
    bool joined_late = false;
    for (int step = 0; std::any_of(jobs.begin(), jobs.end(), [](const Job& j) { return !j.done; }); ++step) {
      ASSERT_LT(step, 200);
      for (Job& j : jobs)
        if (!j.done && j.slot < 0 && j.start <= step && pool.free_slots() > 0) {
          j.slot = pool.allocate();
          EXPECT_EQ(pool.state(j.slot).offset, 0);
          joined_late = joined_late || step > 0;
        }
      std::vector<Job*> batch;
      for (Job& j : jobs)
        if (j.slot >= 0) batch.push_back(&j);
      std::sort(batch.begin(), batch.end(), [](const Job* a, const Job* b) { return a->slot > b->slot; });
      if (batch.empty()) continue;
      const int B = int(batch.size());
      std::vector<int> wf(static_cast<size_t>(B), 0), slots(static_cast<size_t>(B), 0);
      int W = 0;
      for (int b = 0; b < B; ++b) {
        const int T = int(feats[size_t(batch[size_t(b)]->utt)].shape()[1]);
        wf[size_t(b)] = std::min(enc.window_frames(), T - batch[size_t(b)]->cur);
        slots[size_t(b)] = batch[size_t(b)]->slot;
        W = std::max(W, wf[size_t(b)]);
      }
      if (step % 2 == 0) W = enc.window_frames();
      std::vector<float> windows(size_t(B) * W * F, 0.f);
      for (int b = 0; b < B; ++b) {
        const Job& j = *batch[size_t(b)];
        std::copy_n(feats[size_t(j.utt)].data<float>() + size_t(j.cur) * F, size_t(wf[size_t(b)]) * F,
                    windows.data() + size_t(b) * W * F);
      }
      backend->reset_arena();
      const EncoderOutput out = enc.encode_chunks(windows.data(), B, W, wf.data(), slots.data(), pool);
      ASSERT_EQ(out.batch, B);
      ASSERT_EQ(out.frames, asr.subsampled_length(W));
      const int T = out.frames;
      const Tensor lp = asr.ctc_log_probs(out);
      const CtcTopK top = asr.ctc_top_k(out, k);
      std::vector<float> e(size_t(B) * T * D), l(size_t(B) * T * V), tl(size_t(B) * T * k), tb(size_t(B) * T);
      backend->copy_out(out.out, e.data());
      backend->copy_out(lp, l.data());
      backend->copy_out(top.logp, tl.data());
      backend->copy_out(top.blank, tb.data());
      for (int b = 0; b < B; ++b) {
        Job& j = *batch[size_t(b)];
        const int Tb = out.host_lens[size_t(b)];
        ASSERT_EQ(Tb, asr.subsampled_length(wf[size_t(b)]));
        j.enc.insert(j.enc.end(), e.begin() + size_t(b) * T * D, e.begin() + (size_t(b) * T + Tb) * D);
        j.ctc.insert(j.ctc.end(), l.begin() + size_t(b) * T * V, l.begin() + (size_t(b) * T + Tb) * V);
        for (int t = 0; t < Tb; ++t) {
          j.top1.push_back(tl[(size_t(b) * T + t) * k]);
          j.blank.push_back(tb[size_t(b) * T + t]);
        }
        j.frames += Tb;
        EXPECT_EQ(pool.state(j.slot).offset, j.frames);
        j.cur += enc.stride_frames();
        if (j.cur + enc.min_window_frames() > int(feats[size_t(j.utt)].shape()[1])) {
          pool.release(j.slot);
          j.slot = -1;
          j.done = true;
        }
      }
    }
    EXPECT_TRUE(joined_late);
    EXPECT_EQ(pool.free_slots(), 3);
    for (const Job& j : jobs) {
      const std::string key = case_key(j.utt, C, L);
      SCOPED_TRACE(key + " (stream from step " + std::to_string(j.start) + ")");
      const HostTensor enc_want = g.load(key + "_encoder_out"), ctc_want = g.load(key + "_ctc_log_probs");
      ASSERT_EQ(j.frames, enc_want.shape()[1]);
      const Diff de = compare(j.enc.data(), enc_want.data<float>(), j.enc.size());
      const Diff dc = compare(j.ctc.data(), ctc_want.data<float>(), j.ctc.size());
      EXPECT_LE(de.max_abs, tol.enc_a0) << "encoder_out";
      EXPECT_LE(de.median_rel, tol.enc_r0) << "encoder_out";
      EXPECT_LE(dc.max_abs, tol.enc_a0) << "ctc_log_probs";
      // The top-k's best and blank log-probs are the golden row's maximum and blank entry.
      double top_diff = 0;
      for (int t = 0; t < j.frames; ++t) {
        const float* row = ctc_want.data<float>() + size_t(t) * V;
        top_diff = std::max(top_diff, double(std::abs(j.top1[size_t(t)] - *std::max_element(row, row + V))));
        top_diff = std::max(top_diff, double(std::abs(j.blank[size_t(t)] - row[blank])));
      }
      EXPECT_LE(top_diff, tol.enc_a0) << "ctc top-k";
      std::printf("%s %s %s (from step %d): encoder a0 %.3g r0 %.3g, ctc a0 %.3g, top-k a0 %.3g\n", name.c_str(),
                  backend->name().c_str(), key.c_str(), j.start, de.max_abs, de.median_rel, dc.max_abs, top_diff);
      ++checked;
    }
  }
  EXPECT_EQ(checked, 20);
}

// Long streams around small rings (C = 2, L = 1: a ring of 4 frames, wrapped ~25 times): the
// golden utterances joined end to end, three streams at different offsets in one batch, equal to
// each stream encoded alone (encode_utterance); and the batch's padding never leaks into a stream.
TEST_P(BatchedStreaming, LongStreamsAroundSmallRings) {
  const Case& c = GetParam();
  auto backend = make_test_backend(c.backend);
  if (!backend) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  const ModelDir model = load_model_dir(c.dir);
  AsrModel asr(model, *backend);
  Goldens g(c.dir);
  const int D = model.config.encoder.output_size, F = model.config.encoder.input_dim;
  std::vector<float> joined;
  for (int rep = 0; rep < 2; ++rep)
    for (int u : {0, 1, 2}) {
      const HostTensor f = g.load("utt" + std::to_string(u) + "_feats");
      joined.insert(joined.end(), f.data<float>(), f.data<float>() + f.numel());
    }
  const int total = int(joined.size()) / F;  // 388 frames
  StreamingEncoder enc(asr, {2, 1});
  EncoderCachePool pool = enc.make_pool(4);
  EXPECT_EQ(pool.ring_rows(), 4);
  // Stream s starts at fbank frame 16 * s of the joined input, and joins the batch at step s.
  const int streams = 3;
  std::vector<int> slot(streams, -1), cur(streams, 0), length(streams);
  std::vector<std::vector<float>> got(streams);
  for (int s = 0; s < streams; ++s) length[size_t(s)] = total - 16 * s - 5 * s;  // different ends too
  for (int step = 0;; ++step) {
    std::vector<int> items;
    for (int s = 0; s < streams; ++s) {
      if (step == s) slot[size_t(s)] = pool.allocate();
      if (slot[size_t(s)] >= 0) items.push_back(s);
    }
    if (items.empty() && step >= streams) break;
    if (items.empty()) continue;
    const int B = int(items.size()), W = enc.window_frames();
    std::vector<int> wf, slots;
    std::vector<float> windows(size_t(B) * W * F, 0.f);
    for (int b = 0; b < B; ++b) {
      const int s = items[size_t(b)];
      wf.push_back(std::min(W, length[size_t(s)] - cur[size_t(s)]));
      slots.push_back(slot[size_t(s)]);
      std::copy_n(joined.data() + size_t(16 * s + cur[size_t(s)]) * F, size_t(wf.back()) * F,
                  windows.data() + size_t(b) * W * F);
    }
    backend->reset_arena();
    const EncoderOutput out = enc.encode_chunks(windows.data(), B, W, wf.data(), slots.data(), pool);
    std::vector<float> e(size_t(B) * out.frames * D);
    backend->copy_out(out.out, e.data());
    for (int b = 0; b < B; ++b) {
      const int s = items[size_t(b)];
      auto& dst = got[size_t(s)];
      dst.insert(dst.end(), e.begin() + size_t(b) * out.frames * D,
                 e.begin() + (size_t(b) * out.frames + out.host_lens[size_t(b)]) * D);
      cur[size_t(s)] += enc.stride_frames();
      if (cur[size_t(s)] + enc.min_window_frames() > length[size_t(s)]) {
        pool.release(slot[size_t(s)]);
        slot[size_t(s)] = -2;  // finished
      }
    }
  }
  for (int s = 0; s < streams; ++s) {
    SCOPED_TRACE("stream " + std::to_string(s));
    const StreamedEncoding want = enc.encode_utterance(joined.data() + size_t(16 * s) * F, length[size_t(s)]);
    ASSERT_GT(want.frames, 80);
    ASSERT_EQ(got[size_t(s)].size(), want.encoder_out.size());
    EXPECT_LE(compare(got[size_t(s)].data(), want.encoder_out.data(), want.encoder_out.size()).max_abs,
              c.backend == BackendKind::kCpu ? 1e-5 : tolerance(c.backend).enc_a0);
  }
}

std::vector<Case> cases() {
  std::vector<Case> r;
  for (const auto& d : streaming_golden_model_dirs())
    for (BackendKind k : test_backends()) r.push_back({d, k});
  return r;
}

INSTANTIATE_TEST_SUITE_P(Models, BatchedStreaming, ::testing::ValuesIn(cases()), [](const auto& info) {
  std::string n = std::filesystem::path(info.param.dir).filename().string() + "_" +
                  backend_kind_name(info.param.backend);
  for (char& ch : n)
    if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return n;
});

// abs_pos (transformer_tiny, conv2d8, marked chunk-trained here): each item's positions start at its
// own offset. Two streams, the second joining two chunks late, equal each alone.
TEST(BatchedStreamingEncoder, AbsPosStreamsAtDifferentOffsets) {
  auto backend = make_cpu_backend(1);
  ModelDir model = load_model_dir(test_data("wenet-goldens/transformer_tiny"));
  model.config.encoder.use_dynamic_chunk = true;
  AsrModel asr(model, *backend);
  const HostTensor feats = Goldens(test_data("wenet-goldens/transformer_tiny")).load("feats");
  const int T = int(feats.shape()[1]), F = model.config.encoder.input_dim, D = model.config.encoder.output_size;
  StreamingEncoder enc(asr, {2, 1});  // windows of 23 frames, 16 apart
  EncoderCachePool pool = enc.make_pool(2);
  const float* utt[2] = {feats.data<float>(), feats.data<float>() + size_t(T) * F};
  int slot[2] = {pool.allocate(), -1}, cur[2] = {0, 0};
  std::vector<float> got[2];
  for (int step = 0; cur[0] + enc.min_window_frames() <= T || cur[1] + enc.min_window_frames() <= T; ++step) {
    if (step == 2) slot[1] = pool.allocate();
    std::vector<int> items, wf, slots;
    for (int s = 0; s < 2; ++s)
      if (slot[s] >= 0 && cur[s] + enc.min_window_frames() <= T) items.push_back(s);
    const int B = int(items.size()), W = enc.window_frames();
    std::vector<float> windows(size_t(B) * W * F, 0.f);
    for (int b = 0; b < B; ++b) {
      const int s = items[size_t(b)];
      wf.push_back(std::min(W, T - cur[s]));
      slots.push_back(slot[s]);
      std::copy_n(utt[s] + size_t(cur[s]) * F, size_t(wf.back()) * F, windows.data() + size_t(b) * W * F);
    }
    backend->reset_arena();
    const EncoderOutput out = enc.encode_chunks(windows.data(), B, W, wf.data(), slots.data(), pool);
    std::vector<float> e(size_t(B) * out.frames * D);
    backend->copy_out(out.out, e.data());
    for (int b = 0; b < B; ++b) {
      const int s = items[size_t(b)];
      got[s].insert(got[s].end(), e.begin() + size_t(b) * out.frames * D,
                    e.begin() + (size_t(b) * out.frames + out.host_lens[size_t(b)]) * D);
      cur[s] += enc.stride_frames();
    }
  }
  for (int s = 0; s < 2; ++s) {
    const StreamedEncoding want = enc.encode_utterance(utt[s], T);
    ASSERT_EQ(got[s].size(), want.encoder_out.size()) << "stream " << s;
    EXPECT_LE(compare(got[s].data(), want.encoder_out.data(), want.encoder_out.size()).max_abs, 1e-5) << "stream " << s;
  }
}

TEST(BatchedStreamingEncoder, PoolSlots) {
  auto backend = make_cpu_backend(1);
  const ModelDir model = load_model_dir(test_data("wenet-goldens/u2pp_stream_tiny"));
  AsrModel asr(model, *backend);
  StreamingEncoder enc(asr, {4, 2});
  EncoderCachePool pool = enc.make_pool(2);
  EXPECT_EQ(pool.ring_rows(), 12);
  EXPECT_EQ(pool.max_frames(), asr.max_subsampled_frames());
  EXPECT_EQ(pool.allocate(), 0);
  EXPECT_EQ(pool.allocate(), 1);
  EXPECT_EQ(pool.free_slots(), 0);
  expect_error([&] { pool.allocate(); }, {"all 2 slots are taken"});
  pool.release(0);
  EXPECT_FALSE(pool.allocated(0));
  expect_error([&] { pool.release(0); }, {"slot 0 is not allocated"});
  expect_error([&] { pool.reset(0); }, {"slot 0 is not allocated"});
  expect_error([&] { pool.state(2); }, {"slot 2 outside [0, 2)"});
  EXPECT_EQ(pool.allocate(), 0);
  // L = -1: rings as long as an utterance may get.
  StreamingEncoder all(asr, {4, -1});
  EXPECT_EQ(all.make_pool(1).ring_rows(), asr.max_subsampled_frames());
  EXPECT_EQ(all.make_pool(1, 100).ring_rows(), 100);
  expect_error([&] { all.make_pool(0); }, {"max_streams > 0"});
  expect_error([&] { all.make_pool(1, asr.max_subsampled_frames() + 1); }, {"expected max_frames in [0,"});
  // More than the machine has: an error naming the size and what to lower, not an allocation that
  // the kernel kills the process for when the zeros are written.
  expect_error([&] { all.make_pool(2000000000); },
               {"streaming cache of 2000000000 streams", "GB asked for", "lower the streams or the left chunks"});
}

TEST(BatchedStreamingEncoder, BadArgumentsAreClearErrorsAndChangeNoStream) {
  auto backend = make_cpu_backend(1);
  const ModelDir model = load_model_dir(test_data("wenet-goldens/u2pp_stream_tiny"));
  AsrModel asr(model, *backend);
  const int F = model.config.encoder.input_dim;
  StreamingEncoder enc(asr, {4, 1});
  EncoderCachePool pool = enc.make_pool(3, 12);
  const int a = pool.allocate(), b = pool.allocate();
  std::vector<float> feats(size_t(4) * 19 * F, 0.5f);  // room for the largest batch tried below
  const auto run = [&](std::vector<int> wf, std::vector<int> slots, int W = 19) {
    backend->reset_arena();
    return enc.encode_chunks(feats.data(), int(wf.size()), W, wf.data(), slots.data(), pool);
  };
  expect_error([&] { run({19, 20}, {a, b}, 19); }, {"item 1: expected a window of 7 to 19 fbank frames", "got 20"});
  expect_error([&] { run({19, 6}, {a, b}); }, {"item 1", "got 6"});
  expect_error([&] { run({19, 19}, {a, b}, 18); }, {"item 0: a window of 19 frames in windows of 18"});
  expect_error([&] { run({19, 19}, {a, 2}); }, {"item 1: slot 2 is not allocated"});
  expect_error([&] { run({19, 19}, {a, -1}); }, {"item 1: slot -1 is not allocated"});
  expect_error([&] { run({19, 19}, {b, b}); }, {"item 1: slot 1 appears twice"});
  expect_error([&] { run({19, 19, 19, 19}, {a, b, 2, 0}); }, {"a batch of 4 streams in a pool of 3"});
  expect_error([&] { enc.encode_chunks(feats.data(), 1, 19, nullptr, &a, pool); }, {"expected window_lens"});
  Tensor ints = backend->alloc({1, 19, F}, DType::kI32);
  const int w19 = 19;
  expect_error([&] { enc.encode_chunks(ints, &w19, &a, pool); }, {"expected float32 windows [B, W, 80]"});
  StreamingEncoder other(asr, {4, 1});
  expect_error([&] { other.encode_chunks(feats.data(), 1, 19, &w19, &a, pool); }, {"another StreamingEncoder"});
  // None of that moved a stream.
  EXPECT_EQ(pool.state(a).offset, 0);
  EXPECT_EQ(pool.state(b).offset, 0);
  // The pool's max_frames (12) is reached after three full chunks; a reset starts over.
  for (int i = 0; i < 3; ++i) EXPECT_EQ(run({19, 7}, {a, b}).host_lens, (std::vector<int>{4, 1}));
  EXPECT_EQ(pool.state(a).offset, 12);
  EXPECT_EQ(pool.state(a).frames, 4);
  EXPECT_EQ(pool.state(b).offset, 3);
  EXPECT_EQ(pool.state(b).frames, 3);
  expect_error([&] { run({7, 19}, {a, b}); }, {"item 0: the stream in slot 0 would reach 13 encoder frames",
                                               "past the pool's max_frames 12", "reset it"});
  EXPECT_EQ(pool.state(b).offset, 3);
  pool.reset(a);
  EXPECT_EQ(run({7, 19}, {a, b}).host_lens, (std::vector<int>{1, 4}));
  EXPECT_EQ(pool.state(a).offset, 1);
  EXPECT_EQ(pool.state(b).offset, 7);
}

}  // namespace
}  // namespace wenet_rt::testing
