// The engine's batched attention rescoring (engine/engine_setup.h) with and without prefix
// sharing, on the demo model's N-bests of its examples decoded as one batch: the same scores to
// the bit (the CPU kernels compute a row the same way wherever it sits) and the same best.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "backend/backend.h"
#include "decode/ctc_search.h"
#include "engine/engine_setup.h"
#include "frontend/audio.h"
#include "frontend/fbank.h"
#include "graph/asr_model.h"

namespace wenet_rt {
namespace {

namespace fs = std::filesystem;

TEST(BatchRescorer, SharedPrefixesGiveTheRowByRowScores) {
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
  for (int b = 0; b < B; ++b) std::copy(feats[size_t(b)].begin(), feats[size_t(b)].end(), padded.begin() + long(b) * T * F);

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
  std::vector<std::vector<Hypothesis>> got[2] = {nbest, nbest};
  std::vector<int> best[2];
  for (const bool share : {false, true}) {
    BatchRescorer r(asr, opts, model.config.sos_id, model.config.eos_id, share);
    r.enqueue(enc, nbest);
    be->synchronize();
    for (int b = 0; b < B; ++b) best[share].push_back(r.pick(size_t(b), got[share][size_t(b)]));
  }
  EXPECT_EQ(best[0], best[1]);
  for (int b = 0; b < B; ++b)
    for (size_t n = 0; n < nbest[size_t(b)].size(); ++n) {
      EXPECT_EQ(got[0][size_t(b)][n].rescore, got[1][size_t(b)][n].rescore) << "utterance " << b << " hypothesis " << n;
      EXPECT_EQ(got[0][size_t(b)][n].total, got[1][size_t(b)][n].total) << "utterance " << b << " hypothesis " << n;
    }
}

}  // namespace
}  // namespace wenet_rt
