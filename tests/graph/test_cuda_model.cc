// The CUDA backend on whole models (label gpu; skipped without a GPU): FP16 against the CPU FP32
// reference on the seed's full-size model over its grid, CUDA-graph replay against eager
// execution, Programmatic Dependent Launch against plain launches, and two models in one process.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <tuple>

#include "common/backends.h"
#include "common/golden.h"
#include "graph/asr_model.h"
#include "model/random_model.h"

namespace wenet_rt::testing {
namespace {

struct Outputs {
  std::vector<float> enc, dec;  // valid encoder frames; decoder log-probs
};

// Encoder on feats B x T x 80 (lengths all T, or spread down to T/2) and the decoder on 10
// hypotheses of 64 tokens per utterance against that encoder output.
Outputs run(AsrModel& m, int B, int T, bool mixed, uint32_t seed) {
  Backend& be = m.backend();
  const ModelConfig& c = m.config();
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<float> feats(size_t(B) * T * c.encoder.input_dim);
  for (float& v : feats) v = normal(rng);
  std::vector<int> lens;
  for (int b = 0; b < B; ++b) lens.push_back(mixed && B > 1 ? T - (T / 2) * b / (B - 1) : T);
  const int N = 10, L = 63;
  std::uniform_int_distribution<int> token(2, c.vocab_size - 2);
  std::vector<int> hyps, hyp_lens;
  for (int h = 0; h < B * N; ++h) {
    hyps.push_back(c.sos_id);
    const int len = 1 + h % L;  // varied lengths: exercises the padding masks
    for (int i = 1; i < L; ++i) hyps.push_back(i < len ? token(rng) : c.eos_id);
    hyp_lens.push_back(len);
  }
  be.reset_arena();
  const EncoderOutput enc = m.encode(feats.data(), B, T, lens.data());
  std::vector<float> all(size_t(B) * enc.frames * c.encoder.output_size);
  be.copy_out(enc.out, all.data());
  Outputs o;
  const size_t d = size_t(c.encoder.output_size);
  for (int b = 0; b < B; ++b)
    o.enc.insert(o.enc.end(), all.begin() + long(size_t(b) * enc.frames * d),
                 all.begin() + long((size_t(b) * enc.frames + size_t(enc.host_lens[size_t(b)])) * d));
  Tensor lp = m.decode(enc, hyps.data(), hyp_lens.data(), B * N, L, false);
  std::vector<float> dec(size_t(lp.numel()));
  be.copy_out(lp, dec.data());
  // Only each hypothesis' valid positions: the rest are padding.
  const size_t V = size_t(c.vocab_size);
  for (int h = 0; h < B * N; ++h)
    o.dec.insert(o.dec.end(), dec.begin() + long(size_t(h) * L * V), dec.begin() + long((size_t(h) * L + size_t(hyp_lens[size_t(h)])) * V));
  return o;
}

const ModelDir& full_size_model() {
  static const ModelDir m = make_random_model(parse_config_text(kFullSizeModelYaml, "full-size"), 0);
  return m;
}

TEST(CudaModel, FullSizeFp16MatchesCpuFp32OverSeedGrid) {
  auto fp16 = make_test_backend(BackendKind::kCudaF16);
  if (!fp16) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  auto fp32 = make_test_backend(BackendKind::kCudaF32);
  auto cpu = make_cpu_backend();
  AsrModel m16(full_size_model(), *fp16), m32(full_size_model(), *fp32), ref(full_size_model(), *cpu);
  const Tolerance t16 = tolerance(BackendKind::kCudaF16), t32 = tolerance(BackendKind::kCudaF32);
  for (bool mixed : {false, true})
    for (int B : {1, 4, 16})
      for (int T : {16, 64, 256}) {
        const uint32_t seed = uint32_t(B * 1000 + T);
        const Outputs want = run(ref, B, T, mixed, seed), h = run(m16, B, T, mixed, seed), f = run(m32, B, T, mixed, seed);
        const Diff he = compare(h.enc.data(), want.enc.data(), want.enc.size());
        const Diff hd = compare(h.dec.data(), want.dec.data(), want.dec.size());
        const Diff fe = compare(f.enc.data(), want.enc.data(), want.enc.size());
        const Diff fd = compare(f.dec.data(), want.dec.data(), want.dec.size());
        std::printf("%2dx%-3d %s fp16: encoder a0 %.3e r0 %.3e, decoder a0 %.3e r0 %.3e | fp32: encoder a0 %.2e, decoder a0 %.2e\n",
                    B, T, mixed ? "mixed" : "full ", he.max_abs, he.median_rel, hd.max_abs, hd.median_rel, fe.max_abs,
                    fd.max_abs);
        EXPECT_LE(he.max_abs, t16.enc_a0) << B << "x" << T;
        EXPECT_LE(he.median_rel, t16.enc_r0) << B << "x" << T;
        EXPECT_LE(hd.max_abs, t16.dec_a0) << B << "x" << T;
        EXPECT_LE(hd.median_rel, t16.dec_r0) << B << "x" << T;
        EXPECT_LE(fe.max_abs, t32.enc_a0) << B << "x" << T;
        EXPECT_LE(fd.max_abs, t32.dec_a0) << B << "x" << T;
      }
}

TEST(CudaModel, GraphReplayEqualsEager) {
  for (BackendKind k : {BackendKind::kCudaF16, BackendKind::kCudaF32}) {
    auto graphs = make_test_backend(k, true);
    if (!graphs) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
    auto eager = make_test_backend(k, false);
    AsrModel mg(full_size_model(), *graphs), me(full_size_model(), *eager);
    for (int T : {64, 100}) {
      const Outputs e = run(me, 4, T, true, 7);
      const Outputs first = run(mg, 4, T, true, 7);   // captures
      const Outputs replay = run(mg, 4, T, true, 7);  // replays
      EXPECT_EQ(first.enc, e.enc) << backend_kind_name(k);
      EXPECT_EQ(replay.enc, e.enc) << backend_kind_name(k);
      EXPECT_EQ(replay.dec, e.dec) << backend_kind_name(k);
      // New inputs of a captured shape: the replay must read them, not the captured ones.
      const Outputs e2 = run(me, 4, T, true, 8), r2 = run(mg, 4, T, true, 8);
      EXPECT_EQ(r2.enc, e2.enc) << backend_kind_name(k);
      EXPECT_EQ(r2.dec, e2.dec) << backend_kind_name(k);
      EXPECT_NE(r2.enc, replay.enc);
    }
  }
}

// PDL (kernels/launch.cuh) changes when kernels start, never what they compute: outputs with it
// must equal those without it bit for bit, eager and in captured graphs (first run captures, the
// next ones replay), at the small shapes where kernels overlap most and at a large one. Repeated
// runs give a missing griddepcontrol.wait (a kernel reading its predecessor's output too early)
// chances to show as a difference.
TEST(CudaModel, ProgrammaticLaunchEqualsPlainLaunch) {
  for (BackendKind k : {BackendKind::kCudaF16, BackendKind::kCudaF32}) {
    auto pdl_graphs = make_test_backend(k, true, true);
    if (!pdl_graphs) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
    auto pdl_eager = make_test_backend(k, false, true);
    auto plain = make_test_backend(k, false, false);
    int major = 0;
    ASSERT_EQ(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0), cudaSuccess);
    const char* env = std::getenv("WENET_RT_PDL");
    const bool env_off = env && std::strcmp(env, "0") == 0;
    if (env && !env_off) GTEST_SKIP() << "WENET_RT_PDL=" << env << " turns PDL on in every backend: nothing to compare";
    // On Hopper and later PDL must really be on (else this test compares plain with plain).
    EXPECT_EQ(pdl_graphs->programmatic_launch(), major >= 9 && !env_off) << "compute capability major " << major;
    EXPECT_FALSE(plain->programmatic_launch());
    std::printf("%s: PDL %s (compute capability major %d%s)\n", backend_kind_name(k),
                pdl_graphs->programmatic_launch() ? "on" : "off", major, env_off ? ", WENET_RT_PDL=0" : "");
    AsrModel mg(full_size_model(), *pdl_graphs), me(full_size_model(), *pdl_eager), mp(full_size_model(), *plain);
    for (const auto [B, T, mixed] : {std::tuple{1, 16, false}, std::tuple{4, 64, true}, std::tuple{16, 256, true}}) {
      const uint32_t seed = uint32_t(B * 1000 + T);
      const Outputs want = run(mp, B, T, mixed, seed);
      for (int rep = 0; rep < 3; ++rep) {  // graphs: capture, then replays
        const Outputs g = run(mg, B, T, mixed, seed), e = run(me, B, T, mixed, seed);
        EXPECT_EQ(g.enc, want.enc) << backend_kind_name(k) << " graphs " << B << "x" << T << " run " << rep;
        EXPECT_EQ(g.dec, want.dec) << backend_kind_name(k) << " graphs " << B << "x" << T << " run " << rep;
        EXPECT_EQ(e.enc, want.enc) << backend_kind_name(k) << " eager " << B << "x" << T << " run " << rep;
        EXPECT_EQ(e.dec, want.dec) << backend_kind_name(k) << " eager " << B << "x" << T << " run " << rep;
      }
      // New inputs of a captured shape through the PDL graph.
      const Outputs want2 = run(mp, B, T, mixed, seed + 1), g2 = run(mg, B, T, mixed, seed + 1);
      EXPECT_EQ(g2.enc, want2.enc) << backend_kind_name(k) << " graphs, new inputs " << B << "x" << T;
      EXPECT_EQ(g2.dec, want2.dec) << backend_kind_name(k) << " graphs, new inputs " << B << "x" << T;
    }
  }
}

TEST(CudaModel, TwoModelsInOneProcess) {
  auto be = make_test_backend(BackendKind::kCudaF16);
  if (!be) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  auto be2 = make_test_backend(BackendKind::kCudaF16);
  const ModelDir tiny = load_model_dir(test_data("wenet-goldens/conformer_tiny"));
  AsrModel big(full_size_model(), *be), small(tiny, *be2);
  const Outputs a = run(big, 2, 64, false, 1);
  const Outputs b = run(small, 2, 64, false, 1);
  const Outputs a2 = run(big, 2, 64, false, 1);
  EXPECT_EQ(a.enc, a2.enc);
  EXPECT_FALSE(b.enc.empty());
}

}  // namespace
}  // namespace wenet_rt::testing
