// The model graph against the goldens of every model variant, on every backend this binary is
// built for (the cpu binary: cpu; the gpu binary: cuda fp32 and fp16, skipped without a GPU).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>

#include "common/backends.h"
#include "common/golden.h"
#include "graph/asr_model.h"
#include "model/model_dir.h"

namespace wenet_rt::testing {
namespace {

struct Case {
  std::string dir;
  BackendKind backend;
};

// The golden utterances' decoder inputs in one batch of B x N rows padded to the longest (L):
// <sos> + tokens (reversed for the right-to-left decoder), <eos> padding; lengths = tokens + 1;
// targets = the next input token at each position, <eos> at the last, -1 past it.
struct GoldenHyps {
  int N = 0, L = 0;
  std::vector<int> ids, lens, targets;
};

GoldenHyps load_golden_hyps(Goldens& g, int B, int eos, bool r2l) {
  GoldenHyps r;
  for (int b = 0; b < B; ++b) {
    const HostTensor h = g.load("utt" + std::to_string(b) + "_hyps_in");
    r.N = int(h.shape()[0]);
    r.L = std::max(r.L, int(h.shape()[1]));
  }
  const int N = r.N, L = r.L;
  r.ids.assign(size_t(B) * N * L, eos);
  r.lens.assign(size_t(B) * N, 0);
  r.targets.assign(r.ids.size(), -1);
  for (int b = 0; b < B; ++b) {
    const HostTensor h = g.load("utt" + std::to_string(b) + "_hyps_in");
    const HostTensor hl = g.load("utt" + std::to_string(b) + "_hyps_in_lens");
    const int Lb = int(h.shape()[1]);
    for (int n = 0; n < N; ++n) {
      const int len = hl.data<int32_t>()[n];
      r.lens[size_t(b * N + n)] = len;
      int* row = r.ids.data() + size_t(b * N + n) * L;
      for (int i = 0; i < Lb; ++i) row[i] = h.data<int32_t>()[n * Lb + i];
      if (r2l) std::reverse(row + 1, row + len);  // <sos> + tokens reversed
      int* tgt = r.targets.data() + size_t(b * N + n) * L;
      for (int j = 0; j + 1 < len; ++j) tgt[j] = row[j + 1];
      tgt[len - 1] = eos;
    }
  }
  return r;
}

class ModelGoldens : public ::testing::TestWithParam<Case> {};

// Encoder, CTC and decoder outputs for the golden batch of 3 mixed-length utterances.
TEST_P(ModelGoldens, MatchesReference) {
  const Case& c = GetParam();
  auto backend = make_test_backend(c.backend);
  if (!backend) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  const Tolerance tol = tolerance(c.backend);
  const ModelDir model = load_model_dir(c.dir);
  AsrModel asr(model, *backend);
  Goldens g(c.dir);

  const HostTensor feats = g.load("feats"), feats_lens = g.load("feats_lens");
  const HostTensor enc_want = g.load("encoder_out"), lens_want = g.load("encoder_lens");
  const HostTensor ctc_want = g.load("ctc_log_probs");
  const int B = int(feats.shape()[0]), T = int(feats.shape()[1]);
  const int Tp = int(enc_want.shape()[1]), D = int(enc_want.shape()[2]), V = int(ctc_want.shape()[2]);

  backend->reset_arena();
  EncoderOutput enc = asr.encode(feats.data<float>(), B, T, feats_lens.data<int32_t>());
  ASSERT_EQ(enc.frames, Tp);
  std::vector<float> enc_got(size_t(B) * Tp * D), ctc_got(size_t(B) * Tp * V);
  backend->copy_out(enc.out, enc_got.data());
  backend->copy_out(asr.ctc_log_probs(enc), ctc_got.data());

  for (int b = 0; b < B; ++b) {
    ASSERT_EQ(enc.host_lens[size_t(b)], lens_want.data<int32_t>()[b]) << "utt" << b;
    const size_t n = size_t(enc.host_lens[size_t(b)]);
    const Diff de = compare(enc_got.data() + size_t(b) * Tp * D, enc_want.data<float>() + size_t(b) * Tp * D, n * D);
    const Diff dc = compare(ctc_got.data() + size_t(b) * Tp * V, ctc_want.data<float>() + size_t(b) * Tp * V, n * V);
    EXPECT_LE(de.max_abs, tol.enc_a0) << "encoder_out utt" << b;
    EXPECT_LE(de.median_rel, tol.enc_r0) << "encoder_out utt" << b;
    EXPECT_LE(dc.max_abs, tol.enc_a0) << "ctc_log_probs utt" << b;
    RecordProperty("encoder_a0_utt" + std::to_string(b), std::to_string(de.max_abs));
    std::printf("%s %s utt%d: encoder a0 %.3g r0 %.3g, ctc a0 %.3g\n", std::filesystem::path(c.dir).filename().c_str(),
                backend->name().c_str(), b, de.max_abs, de.median_rel, dc.max_abs);
  }

  // Decoder: every utterance's hypotheses in one batch, padded to the longest (padding positions
  // beyond a hypothesis do not change the earlier ones: causal + length masks).
  const int eos = V - 1;
  for (const bool r2l : {false, true}) {
    const std::string name = r2l ? "_r_decoder_log_probs" : "_decoder_log_probs";
    if (!g.has("utt0" + name)) continue;
    const GoldenHyps gh = load_golden_hyps(g, B, eos, r2l);
    const int N = gh.N, L = gh.L;
    const std::vector<int>& hyps = gh.ids;
    const std::vector<int>& hyps_lens = gh.lens;
    std::vector<float> got(size_t(B) * N * L * V);
    backend->copy_out(asr.decode(enc, hyps.data(), hyps_lens.data(), B * N, L, r2l), got.data());
    for (int b = 0; b < B; ++b) {
      const HostTensor want = g.load("utt" + std::to_string(b) + name);
      const int Lb = int(want.shape()[1]);
      std::vector<float> sub;
      for (int n = 0; n < N; ++n)
        sub.insert(sub.end(), got.begin() + long(size_t(b * N + n) * L * V),
                   got.begin() + long(size_t(b * N + n) * L * V + size_t(Lb) * V));
      const Diff d = compare(sub.data(), want.data<float>(), sub.size());
      EXPECT_LE(d.max_abs, tol.dec_a0) << name << " utt" << b;
      EXPECT_LE(d.median_rel, tol.dec_r0) << name << " utt" << b;
      std::printf("%s %s utt%d: decoder%s a0 %.3g r0 %.3g\n", std::filesystem::path(c.dir).filename().c_str(),
                  backend->name().c_str(), b, r2l ? " (r2l)" : "", d.max_abs, d.median_rel);
    }
  }
}

// What the pipeline reads instead of the full outputs: the CTC top-k (and blank) and the decoder's
// log-probs of each hypothesis' own targets must be those entries of ctc_log_probs() / decode().
TEST_P(ModelGoldens, TopKAndTargetScoresAreEntriesOfTheFullOutputs) {
  const Case& c = GetParam();
  auto backend = make_test_backend(c.backend);
  if (!backend) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  const ModelDir model = load_model_dir(c.dir);
  AsrModel asr(model, *backend);
  Goldens g(c.dir);
  const HostTensor feats = g.load("feats"), feats_lens = g.load("feats_lens");
  const int B = int(feats.shape()[0]), T = int(feats.shape()[1]), V = model.config.vocab_size;
  const int blank = model.config.blank_id, eos = model.config.eos_id;

  backend->reset_arena();
  EncoderOutput enc = asr.encode(feats.data<float>(), B, T, feats_lens.data<int32_t>());
  const int Tp = enc.frames;
  std::vector<float> full(size_t(B) * Tp * V);
  backend->copy_out(asr.ctc_log_probs(enc), full.data());
  for (const int k : {1, std::min(10, V), V}) {
    SCOPED_TRACE("k " + std::to_string(k));
    const CtcTopK top = asr.ctc_top_k(enc, k);
    std::vector<int> ids(size_t(B) * Tp * k);
    std::vector<float> logp(ids.size()), blank_logp(size_t(B) * Tp);
    backend->copy_out(top.ids, ids.data());
    backend->copy_out(top.logp, logp.data());
    backend->copy_out(top.blank, blank_logp.data());
    for (int b = 0; b < B; ++b) {
      for (int t = 0; t < enc.host_lens[size_t(b)]; ++t) {
        const size_t row = size_t(b) * Tp + size_t(t);
        const float* lp = full.data() + row * V;
        // The k best of the full row: value descending, the lower id first on ties.
        std::vector<int> want(static_cast<size_t>(V));
        std::iota(want.begin(), want.end(), 0);
        std::stable_sort(want.begin(), want.end(), [&](int x, int y) { return lp[x] > lp[y]; });
        for (int j = 0; j < k; ++j) {
          ASSERT_EQ(ids[row * k + size_t(j)], want[size_t(j)]) << "utt " << b << " frame " << t << " rank " << j;
          ASSERT_EQ(logp[row * k + size_t(j)], lp[want[size_t(j)]]) << "utt " << b << " frame " << t;
        }
        ASSERT_EQ(blank_logp[row], lp[blank]) << "utt " << b << " frame " << t;
      }
    }
  }

  // Decoder: golden hypotheses scored both ways; targets are the next input token, <eos> last.
  // FP16: the fused projection keeps FP32 logits where decode() rounds them to FP16 first.
  const double tol = c.backend == BackendKind::kCudaF16 ? 5e-2 : c.backend == BackendKind::kCudaF32 ? 1e-4 : 1e-5;
  for (const bool r2l : {false, true}) {
    if (r2l && !asr.has_right_decoder()) continue;
    const GoldenHyps gh = load_golden_hyps(g, B, eos, r2l);
    const int N = gh.N, L = gh.L;
    const std::vector<int>&hyps = gh.ids, &lens = gh.lens, &targets = gh.targets;
    backend->reset_arena();
    enc = asr.encode(feats.data<float>(), B, T, feats_lens.data<int32_t>());
    std::vector<float> dec_full(size_t(B) * N * L * V), scores(size_t(B) * N * L);
    backend->copy_out(asr.decode(enc, hyps.data(), lens.data(), B * N, L, r2l), dec_full.data());
    Tensor d_ids = backend->alloc({B * N, L}, DType::kI32), d_lens = backend->alloc({B * N}, DType::kI32);
    Tensor d_targets = backend->alloc({B * N, L}, DType::kI32);
    backend->copy_in(hyps.data(), d_ids);
    backend->copy_in(lens.data(), d_lens);
    backend->copy_in(targets.data(), d_targets);
    backend->copy_out(asr.decode_scores(enc, d_ids, d_lens, d_targets, r2l), scores.data());
    double worst = 0;
    for (size_t i = 0; i < scores.size(); ++i) {
      const double want = targets[i] < 0 ? 0.0 : dec_full[i * V + size_t(targets[i])];
      worst = std::max(worst, std::abs(scores[i] - want));
    }
    EXPECT_LE(worst, tol) << (r2l ? "r2l" : "l2r");
    std::printf("%s %s: target scores%s vs decode() a0 %.3g\n", std::filesystem::path(c.dir).filename().c_str(),
                backend->name().c_str(), r2l ? " (r2l)" : "", worst);
  }
}

std::vector<Case> cases() {
  std::vector<Case> r;
  for (const auto& d : golden_model_dirs())
    for (BackendKind k : test_backends()) r.push_back({d, k});
  return r;
}

INSTANTIATE_TEST_SUITE_P(Variants, ModelGoldens, ::testing::ValuesIn(cases()), [](const auto& info) {
  const std::string dir = std::filesystem::path(info.param.dir).filename().string();
  const std::string root = std::filesystem::path(info.param.dir).parent_path().filename().string();
  std::string n = (root == "wenet-goldens" ? "wenet_" : "") + dir + "_" + backend_kind_name(info.param.backend);
  for (char& ch : n)
    if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return n;
});

}  // namespace
}  // namespace wenet_rt::testing
