// The model graph against the goldens of every model variant, on every backend this binary is
// built for (the cpu binary: cpu; the gpu binary: cuda fp32 and fp16, skipped without a GPU).
#include <gtest/gtest.h>

#include <filesystem>

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
  int N = 0, L = 0;
  for (int b = 0; b < B; ++b) {
    const HostTensor h = g.load("utt" + std::to_string(b) + "_hyps_in");
    N = int(h.shape()[0]);
    L = std::max(L, int(h.shape()[1]));
  }
  const int eos = V - 1;
  for (const bool r2l : {false, true}) {
    const std::string name = r2l ? "_r_decoder_log_probs" : "_decoder_log_probs";
    if (!g.has("utt0" + name)) continue;
    std::vector<int> hyps(size_t(B) * N * L, eos), hyps_lens(size_t(B) * N);
    for (int b = 0; b < B; ++b) {
      const HostTensor h = g.load("utt" + std::to_string(b) + "_hyps_in");
      const HostTensor hl = g.load("utt" + std::to_string(b) + "_hyps_in_lens");
      const int Lb = int(h.shape()[1]);
      for (int n = 0; n < N; ++n) {
        const int len = hl.data<int32_t>()[n];
        hyps_lens[size_t(b * N + n)] = len;
        int* row = hyps.data() + size_t(b * N + n) * L;
        for (int i = 0; i < Lb; ++i) row[i] = h.data<int32_t>()[n * Lb + i];
        if (r2l) std::reverse(row + 1, row + len);  // <sos> + tokens reversed
      }
    }
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
