// The engine's batched attention rescoring (engine/engine_setup.h) with and without prefix
// sharing: the same scores to the bit (the CPU kernels compute a row the same way wherever it
// sits) and the same best, on the golden models' N-bests (plus hypotheses sharing their prefixes
// and suffixes; the golden ones also against the scores of WeNet's / the reference's decoder
// log-probs) and on the demo model's N-bests of its examples.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <filesystem>

#include "backend/backend.h"
#include "common/golden.h"
#include "decode/ctc_search.h"
#include "engine/engine_setup.h"
#include "frontend/audio.h"
#include "frontend/fbank.h"
#include "graph/asr_model.h"

namespace wenet_rt {
namespace {

namespace fs = std::filesystem;

// Rescores `nbest` of `enc` with and without prefix sharing; returns both results.
using NBests = std::vector<std::vector<Hypothesis>>;

std::array<NBests, 2> rescore_both_ways(AsrModel& asr, const ModelDir& model, const RescoreOptions& opts,
                                        const EncoderOutput& enc, const NBests& nbest) {
  std::array<NBests, 2> got = {nbest, nbest};
  for (const bool share : {false, true}) {
    BatchRescorer r(asr, opts, model.config.sos_id, model.config.eos_id, share);
    r.enqueue(enc, nbest);
    asr.backend().synchronize();
    for (size_t b = 0; b < nbest.size(); ++b) r.pick(b, got[share][b]);
  }
  return got;
}

void expect_same_scores(const std::array<NBests, 2>& got) {
  for (size_t b = 0; b < got[0].size(); ++b)
    for (size_t n = 0; n < got[0][b].size(); ++n) {
      EXPECT_EQ(got[0][b][n].rescore, got[1][b][n].rescore) << "utterance " << b << " hypothesis " << n;
      EXPECT_EQ(got[0][b][n].total, got[1][b][n].total) << "utterance " << b << " hypothesis " << n;
    }
}

TEST(BatchRescorer, GoldenModelsSharedPrefixesGiveTheRowByRowAndGoldenScores) {
  for (const std::string& dir : testing::golden_model_dirs()) {
    SCOPED_TRACE(dir);
    const ModelDir model = load_model_dir(dir);
    auto be = make_cpu_backend(2);
    AsrModel asr(model, *be);
    testing::Goldens g(dir);
    const HostTensor feats = g.load("feats"), feats_lens = g.load("feats_lens");
    const int B = int(feats.shape()[0]), T = int(feats.shape()[1]), V = model.config.vocab_size;
    RescoreOptions opts;
    opts.reverse_weight = asr.has_right_decoder() ? 0.3f : 0.f;
    std::vector<std::vector<Hypothesis>> nbest(static_cast<size_t>(B));
    std::vector<size_t> golden_count;
    for (int b = 0; b < B; ++b) {
      const HostTensor h = g.load("utt" + std::to_string(b) + "_hyps_in");
      const HostTensor hl = g.load("utt" + std::to_string(b) + "_hyps_in_lens");
      const int L = int(h.shape()[1]);
      for (int i = 0; i < int(h.shape()[0]); ++i) {
        const int32_t* row = h.data<int32_t>() + i * L;
        nbest[size_t(b)].push_back({std::vector<int>(row + 1, row + hl.data<int32_t>()[i]), -1.0 * i});
      }
      golden_count.push_back(nbest[size_t(b)].size());
      // Hypotheses that branch off the first: its first half; it with the last token changed (all
      // but the last position shared l2r, nothing but the root r2l); its last half (a suffix).
      const std::vector<int> first = nbest[size_t(b)][0].tokens;
      const long half = long(first.size() / 2);
      std::vector<int> changed = first;
      if (!changed.empty()) changed.back() = (changed.back() + 1) % (V - 1);
      for (const auto& t : {std::vector<int>(first.begin(), first.begin() + half), changed,
                            std::vector<int>(first.begin() + half, first.end())})
        nbest[size_t(b)].push_back({t, -10.0});
    }
    const EncoderOutput enc = asr.encode(feats.data<float>(), B, T, feats_lens.data<int32_t>());
    const auto got = rescore_both_ways(asr, model, opts, enc, nbest);
    expect_same_scores(got);
    // The golden hypotheses: the scores of the golden decoder log-probs.
    for (int b = 0; b < B; ++b) {
      std::vector<Hypothesis> want(nbest[size_t(b)].begin(), nbest[size_t(b)].begin() + long(golden_count[size_t(b)]));
      const HostTensor l2r = g.load("utt" + std::to_string(b) + "_decoder_log_probs");
      const HostTensor r2l = opts.reverse_weight > 0 ? g.load("utt" + std::to_string(b) + "_r_decoder_log_probs") : l2r;
      attention_rescore(want, l2r.data<float>(), r2l.data<float>(), int(l2r.shape()[1]), V, model.config.eos_id, opts);
      for (size_t n = 0; n < want.size(); ++n)
        EXPECT_NEAR(got[1][size_t(b)][n].rescore, want[n].rescore, 1e-4) << "utterance " << b << " hypothesis " << n;
    }
  }
}

TEST(BatchRescorer, DemoExamplesSharedPrefixesGiveTheRowByRowScores) {
  const ModelDir model = load_model_dir(std::string(WENET_SOURCE_DIR) + "/models/demo");
  auto be = make_cpu_backend(2);
  ASSERT_TRUE(be->supports_prefix_tries());
  AsrModel asr(model, *be);
  const Fbank fbank(fbank_options(model.config));
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(std::string(WENET_SOURCE_DIR) + "/models/demo/examples"))
    if (e.path().extension() == ".wav") files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  const int B = int(files.size()), F = fbank.dim();
  std::vector<std::vector<float>> feats;
  std::vector<int> frames;
  for (const auto& f : files) {
    feats.push_back(fbank.compute(read_audio(f, fbank.options().sample_rate)));
    frames.push_back(int(feats.back().size()) / F);
  }
  const int T = *std::max_element(frames.begin(), frames.end());
  std::vector<float> padded(size_t(B) * size_t(T) * size_t(F), 0.f);
  for (int b = 0; b < B; ++b)
    std::copy(feats[size_t(b)].begin(), feats[size_t(b)].end(), padded.begin() + long(b) * T * F);

  const EncoderOutput enc = asr.encode(padded.data(), B, T, frames.data());
  const int k = 10;
  const CtcTopK top = asr.ctc_top_k(enc, k);
  std::vector<int> ids(size_t(B) * size_t(enc.frames) * k);
  std::vector<float> logp(ids.size());
  be->copy_out(top.ids, ids.data());
  be->copy_out(top.logp, logp.data());
  CtcPrefixBeamSearcher searcher(CtcPrefixBeamOptions{.beam = k, .blank = model.config.blank_id});
  std::vector<std::vector<Hypothesis>> nbest;
  for (int b = 0; b < B; ++b) {
    const size_t off = size_t(b) * size_t(enc.frames) * k;
    nbest.push_back(searcher.search_top_k(ids.data() + off, logp.data() + off, enc.host_lens[size_t(b)], k));
  }

  const RescoreOptions opts = rescore_options(0.5f, 1.f, -1.f, model, asr);
  ASSERT_GT(opts.reverse_weight, 0.f);  // both directions
  expect_same_scores(rescore_both_ways(asr, model, opts, enc, nbest));
}

}  // namespace
}  // namespace wenet_rt
