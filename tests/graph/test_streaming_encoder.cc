// The chunk-by-chunk encoder against WeNet's own forward_chunk_by_chunk outputs and decodes
// (tests/data/wenet-goldens/u2*_stream_tiny), on every backend this binary is built for; refusal
// of models not trained for streaming; bad arguments.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "common/backends.h"
#include "common/golden.h"
#include "decode/ctc_search.h"
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

// The message of the wenet_rt::Error that fn throws ("" if none).
template <typename F>
std::string error_of(F&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

class StreamingGoldens : public ::testing::TestWithParam<Case> {};

// Every utterance and (C, L) case: encoder output and CTC log-probs within the backend's tolerance,
// and the CTC searches over them give WeNet's tokens and N-best order (scores within 1e-3).
TEST_P(StreamingGoldens, ChunkByChunkMatchesWeNet) {
  const Case& c = GetParam();
  auto backend = make_test_backend(c.backend);
  if (!backend) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  const Tolerance tol = tolerance(c.backend);
  const ModelDir model = load_model_dir(c.dir);
  AsrModel asr(model, *backend);
  Goldens g(c.dir);
  const nlohmann::json decode = g.decode_json();
  const int V = model.config.vocab_size, D = model.config.encoder.output_size;
  const std::string name = std::filesystem::path(c.dir).filename().string();
  const bool check_tokens = c.backend != BackendKind::kCudaF16;  // FP16 may flip near ties

  CtcPrefixBeamOptions beam;
  beam.beam = decode.at("beam_size").get<int>();
  beam.blank = model.config.blank_id;
  int checked = 0;
  for (const auto& cl : decode.at("cases")) {
    const int C = cl.at(0).get<int>(), L = cl.at(1).get<int>();
    StreamingEncoder enc(asr, {C, L});
    for (int u = 0; g.has("utt" + std::to_string(u) + "_feats"); ++u) {
      const std::string key = case_key(u, C, L);
      SCOPED_TRACE(name + " " + key);
      const HostTensor feats = g.load("utt" + std::to_string(u) + "_feats");
      const HostTensor enc_want = g.load(key + "_encoder_out"), ctc_want = g.load(key + "_ctc_log_probs");
      const StreamedEncoding got = enc.encode_utterance(feats.data<float>(), int(feats.shape()[1]));
      ASSERT_EQ(got.frames, enc_want.shape()[1]);
      ASSERT_EQ(enc_want.shape()[2], D);
      const Diff de = compare(got.encoder_out.data(), enc_want.data<float>(), got.encoder_out.size());
      const Diff dc = compare(got.ctc_log_probs.data(), ctc_want.data<float>(), got.ctc_log_probs.size());
      EXPECT_LE(de.max_abs, tol.enc_a0) << "encoder_out";
      EXPECT_LE(de.median_rel, tol.enc_r0) << "encoder_out";
      EXPECT_LE(dc.max_abs, tol.enc_a0) << "ctc_log_probs";
      std::printf("%s %s %s: encoder a0 %.3g r0 %.3g, ctc a0 %.3g\n", name.c_str(), backend->name().c_str(),
                  key.c_str(), de.max_abs, de.median_rel, dc.max_abs);
      ++checked;
      if (!check_tokens) continue;

      const nlohmann::json& want = decode.at("results").at(key);
      EXPECT_EQ(ctc_greedy_search(got.ctc_log_probs.data(), got.frames, V, beam.blank),
                want.at("ctc_greedy_search").get<std::vector<int>>());
      const auto nbest = ctc_prefix_beam_search(got.ctc_log_probs.data(), got.frames, V, beam);
      const auto want_nbest = want.at("ctc_prefix_beam_search").at("nbest").get<std::vector<std::vector<int>>>();
      const auto want_scores = want.at("ctc_prefix_beam_search").at("nbest_scores").get<std::vector<double>>();
      ASSERT_EQ(nbest.size(), want_nbest.size());
      for (size_t i = 0; i < nbest.size(); ++i) {
        EXPECT_EQ(nbest[i].tokens, want_nbest[i]) << "hypothesis " << i;
        EXPECT_NEAR(nbest[i].ctc_score, want_scores[i], 1e-3) << "hypothesis " << i;
      }
    }
  }
  EXPECT_EQ(checked, 12);
}

// The same frames fed one window at a time through encode_chunk() (windows advancing by s*C, the
// last cut at the end of the input) give encode_utterance()'s output; and the cache can be reset
// and reused for the next utterance.
TEST_P(StreamingGoldens, EncodeChunkByHandAndReuseOfTheCache) {
  const Case& c = GetParam();
  auto backend = make_test_backend(c.backend);
  if (!backend) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  const ModelDir model = load_model_dir(c.dir);
  AsrModel asr(model, *backend);
  Goldens g(c.dir);
  const int D = model.config.encoder.output_size, F = model.config.encoder.input_dim;
  StreamingEncoder enc(asr, {4, 2});
  EXPECT_EQ(enc.window_frames(), 19);  // (4 - 1) * 4 + 6 + 1
  EXPECT_EQ(enc.stride_frames(), 16);
  EXPECT_EQ(enc.min_window_frames(), 7);
  EncoderCache cache = enc.make_cache();
  for (int u : {1, 0, 2}) {
    const std::string key = case_key(u, 4, 2);
    SCOPED_TRACE(key);
    const HostTensor feats = g.load("utt" + std::to_string(u) + "_feats");
    const HostTensor want = g.load(key + "_encoder_out");
    const int T = int(feats.shape()[1]);
    enc.reset(cache);
    std::vector<float> got;
    for (int cur = 0; cur + enc.min_window_frames() <= T; cur += enc.stride_frames()) {
      backend->reset_arena();
      const int W = std::min(enc.window_frames(), T - cur);
      const EncoderOutput out = enc.encode_chunk(feats.data<float>() + size_t(cur) * F, W, cache);
      ASSERT_EQ(out.batch, 1);
      ASSERT_EQ(out.frames, asr.subsampled_length(W));
      const size_t at = got.size();
      got.resize(at + size_t(out.frames) * D);
      backend->copy_out(out.out, got.data() + at);
    }
    EXPECT_EQ(cache.offset, int(want.shape()[1]));
    EXPECT_LE(cache.frames, 8);
    ASSERT_EQ(got.size(), size_t(want.numel()));
    EXPECT_LE(compare(got.data(), want.data<float>(), got.size()).max_abs, tolerance(c.backend).enc_a0);
  }
}

// A chunk as long as the utterance with all history is the full-context encoder (both models'
// uttU_encoder_out_full, and AsrModel::encode).
TEST_P(StreamingGoldens, OneChunkIsFullContext) {
  const Case& c = GetParam();
  auto backend = make_test_backend(c.backend);
  if (!backend) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  const ModelDir model = load_model_dir(c.dir);
  AsrModel asr(model, *backend);
  Goldens g(c.dir);
  StreamingEncoder enc(asr, {64, -1});
  for (int u = 0; g.has("utt" + std::to_string(u) + "_feats"); ++u) {
    const HostTensor feats = g.load("utt" + std::to_string(u) + "_feats");
    const HostTensor want = g.load("utt" + std::to_string(u) + "_encoder_out_full");
    const StreamedEncoding got = enc.encode_utterance(feats.data<float>(), int(feats.shape()[1]));
    ASSERT_EQ(got.frames, want.shape()[1]);
    const double a0 = compare(got.encoder_out.data(), want.data<float>(), got.encoder_out.size()).max_abs;
    EXPECT_LE(a0, tolerance(c.backend).enc_a0) << "utt" << u;
  }
}

std::vector<Case> cases() {
  std::vector<Case> r;
  for (const auto& d : streaming_golden_model_dirs())
    for (BackendKind k : test_backends()) r.push_back({d, k});
  return r;
}

INSTANTIATE_TEST_SUITE_P(Models, StreamingGoldens, ::testing::ValuesIn(cases()), [](const auto& info) {
  std::string n = std::filesystem::path(info.param.dir).filename().string() + "_" +
                  backend_kind_name(info.param.backend);
  for (char& ch : n)
    if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return n;
});

TEST(StreamingEncoder, FindsBothStreamingGoldens) {
  const auto dirs = streaming_golden_model_dirs();
  ASSERT_EQ(dirs.size(), 2u);
  EXPECT_EQ(std::filesystem::path(dirs[0]).filename(), "u2_stream_tiny");
  EXPECT_EQ(std::filesystem::path(dirs[1]).filename(), "u2pp_stream_tiny");
}

TEST(StreamingEncoder, RefusesAModelNotTrainedForStreaming) {
  auto backend = make_cpu_backend(1);
  const ModelDir model = load_model_dir(test_data("wenet-goldens/conformer_tiny"));
  ASSERT_FALSE(model.config.encoder.use_dynamic_chunk);
  AsrModel asr(model, *backend);
  const std::string msg = error_of([&] { StreamingEncoder enc(asr, {4, -1}); });
  EXPECT_NE(msg.find("encoder_conf.use_dynamic_chunk"), std::string::npos) << msg;
  EXPECT_NE(msg.find("encoder_conf.static_chunk_size"), std::string::npos) << msg;
  EXPECT_NE(msg.find("not trained for streaming"), std::string::npos) << msg;
  EXPECT_NE(msg.find("train.yaml"), std::string::npos) << msg;

  // static_chunk_size alone is enough (WeNet: static_chunk_size > 0 or use_dynamic_chunk).
  ModelConfig cfg = model.config;
  cfg.encoder.static_chunk_size = 16;
  EXPECT_NO_THROW(check_streaming_model(cfg));
}

// abs_pos transformer with conv2d8 (no streaming golden: transformer_tiny, marked chunk-trained here):
// one chunk holding the whole utterance is the full-context encoder.
TEST(StreamingEncoder, AbsPosTransformerOneChunkIsFullContext) {
  auto backend = make_cpu_backend(1);
  ModelDir model = load_model_dir(test_data("wenet-goldens/transformer_tiny"));
  model.config.encoder.use_dynamic_chunk = true;
  AsrModel asr(model, *backend);
  Goldens g(test_data("wenet-goldens/transformer_tiny"));
  const HostTensor feats = g.load("feats");
  const int T = int(feats.shape()[1]), D = model.config.encoder.output_size;
  StreamingEncoder enc(asr, {16, -1});
  EXPECT_EQ(enc.subsampling_rate(), 8);
  EXPECT_EQ(enc.window_frames(), 15 * 8 + 14 + 1);
  const StreamedEncoding got = enc.encode_utterance(feats.data<float>(), T);  // utterance 0: all T frames valid
  backend->reset_arena();
  const EncoderOutput full = asr.encode(feats.data<float>(), 1, T, &T);
  ASSERT_EQ(got.frames, full.frames);
  std::vector<float> want(size_t(full.frames) * D);
  backend->copy_out(full.out, want.data());
  EXPECT_LE(compare(got.encoder_out.data(), want.data(), want.size()).max_abs, 1e-5);
}

TEST(StreamingEncoder, BadArgumentsAreClearErrors) {
  auto backend = make_cpu_backend(1);
  const ModelDir model = load_model_dir(test_data("wenet-goldens/u2pp_stream_tiny"));
  AsrModel asr(model, *backend);
  const int F = model.config.encoder.input_dim;

  EXPECT_NE(error_of([&] { StreamingEncoder e(asr, {0, -1}); }).find("chunk_size must be > 0"), std::string::npos);
  EXPECT_NE(error_of([&] { StreamingEncoder e(asr, {4, -2}); }).find("num_left_chunks must be -1"),
            std::string::npos);

  StreamingEncoder enc(asr, {4, 1});
  EncoderCache cache = enc.make_cache();
  std::vector<float> feats(size_t(200) * F, 0.5f);
  // Windows longer than a chunk's or shorter than one frame's.
  std::string msg = error_of([&] { enc.encode_chunk(feats.data(), 20, cache); });
  EXPECT_NE(msg.find("expected a window of 7 to 19 fbank frames"), std::string::npos) << msg;
  EXPECT_NE(msg.find("got 20"), std::string::npos) << msg;
  msg = error_of([&] { enc.encode_chunk(feats.data(), 6, cache); });
  EXPECT_NE(msg.find("got 6"), std::string::npos) << msg;
  EXPECT_NE(error_of([&] { enc.encode_chunk(feats.data(), 0, cache); }), "");
  // Wrong feature dimension, a batch of two, int32 input.
  Tensor wrong_dim = backend->alloc({1, 19, F + 1}, DType::kF32);
  msg = error_of([&] { enc.encode_chunk(wrong_dim, cache); });
  EXPECT_NE(msg.find("expected a float32 window [1, W, 80]"), std::string::npos) << msg;
  Tensor two = backend->alloc({2, 19, F}, DType::kF32);
  EXPECT_NE(error_of([&] { enc.encode_chunk(two, cache); }).find("expected a float32 window"), std::string::npos);
  Tensor ints = backend->alloc({1, 19, F}, DType::kI32);
  EXPECT_NE(error_of([&] { enc.encode_chunk(ints, cache); }).find("expected a float32 window"), std::string::npos);
  // A cache of another encoder.
  StreamingEncoder other(asr, {4, 1});
  msg = error_of([&] { other.encode_chunk(feats.data(), 19, cache); });
  EXPECT_NE(msg.find("another StreamingEncoder"), std::string::npos) << msg;
  EXPECT_NE(error_of([&] { other.reset(cache); }), "");
  // Errors leave the cache as it was: a valid chunk still works.
  EXPECT_EQ(cache.offset, 0);
  EXPECT_EQ(enc.encode_chunk(feats.data(), 19, cache).frames, 4);
  EXPECT_EQ(cache.offset, 4);
  EXPECT_EQ(cache.frames, 4);
}

// A stream stops at the model's last position (WeNet's PositionalEncoding max_len), with a clear
// error, however few left chunks it keeps; a reset starts over.
TEST(StreamingEncoder, StreamEndsAtTheLastPosition) {
  auto backend = make_cpu_backend(1);
  const ModelDir model = load_model_dir(test_data("wenet-goldens/u2_stream_tiny"));
  AsrModel asr(model, *backend);
  const int F = model.config.encoder.input_dim, positions = asr.max_subsampled_frames();
  StreamingEncoder enc(asr, {64, 1});
  EncoderCache cache = enc.make_cache();
  std::vector<float> feats(size_t(enc.window_frames()) * F, 0.25f);
  std::string msg;
  int chunks = 0;
  for (; chunks < positions; ++chunks) {
    backend->reset_arena();
    msg = error_of([&] { enc.encode_chunk(feats.data(), enc.window_frames(), cache); });
    if (!msg.empty()) break;
  }
  EXPECT_EQ(chunks, positions / 64);
  EXPECT_EQ(cache.offset, positions / 64 * 64);
  EXPECT_NE(msg.find("past the model's " + std::to_string(positions) + " positions"), std::string::npos) << msg;
  enc.reset(cache);
  backend->reset_arena();
  EXPECT_EQ(enc.encode_chunk(feats.data(), enc.window_frames(), cache).frames, 64);
}

}  // namespace
}  // namespace wenet_rt::testing
