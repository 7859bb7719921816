#include "engine/engine_setup.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace wenet_rt {

std::unique_ptr<Backend> make_engine_backend(const std::string& device, const std::string& precision, int threads,
                                             bool cuda_graphs) {
  if (device == "cuda") {
#ifdef WENET_RT_HAVE_CUDA
    CudaBackendOptions o;
    o.dtype = precision == "fp16" ? DType::kF16 : DType::kF32;
    o.cuda_graphs = cuda_graphs;
    return make_cuda_backend(o);
#else
    (void)precision, (void)cuda_graphs;
    fail("device cuda: this build of wenet-rt has no CUDA backend");
#endif
  }
  return make_cpu_backend(CpuBackendOptions{threads, precision == "int8"});
}

FbankOptions fbank_options(const ModelConfig& config) {
  FbankOptions fo;
  fo.sample_rate = config.fbank.sample_rate;
  fo.num_mel_bins = config.fbank.num_mel_bins;
  fo.frame_length_ms = config.fbank.frame_length_ms;
  fo.frame_shift_ms = config.fbank.frame_shift_ms;
  return fo;
}

std::vector<std::string> unit_table(const Vocabulary& vocab) {
  std::vector<std::string> units;
  for (int i = 0; i < vocab.size(); ++i) units.push_back(vocab.token(i));
  return units;
}

std::string piece_separator(const std::vector<std::string>& units) {
  for (const std::string& u : units)
    if (u.find("\u2581") != std::string::npos) return " ";
  return "";
}

int encoder_frame_ms(const ModelConfig& config) {
  return int(std::lround(subsampling_rate(config.encoder.input_layer) * config.fbank.frame_shift_ms));
}

RescoreOptions rescore_options(float ctc_weight, float rescoring_weight, float reverse_weight, const ModelDir& model,
                               const AsrModel& asr) {
  RescoreOptions r;
  r.ctc_weight = ctc_weight;
  r.rescoring_weight = rescoring_weight;
  r.reverse_weight = reverse_weight >= 0 ? reverse_weight : model.config.reverse_weight;
  if (!asr.has_right_decoder()) r.reverse_weight = 0.f;
  r.validate();
  return r;
}

BatchRescorer::BatchRescorer(AsrModel& asr, const RescoreOptions& opts, int sos, int eos, bool share_prefixes)
    : asr_(asr),
      opts_(opts),
      sos_(sos),
      eos_(eos),
      share_prefixes_(share_prefixes && asr.backend().supports_prefix_tries()) {}

void BatchRescorer::reserve(size_t hyps, int width) {
  Backend& be = asr_.backend();
  const size_t cells = hyps * size_t(width);
  lens_.get<int>(be, hyps);
  for (int dir = 0; dir < 2; ++dir) {
    ids_[dir].get<int>(be, cells);
    targets_[dir].get<int>(be, cells);
  }
  l2r_.get<float>(be, cells);
  if (opts_.reverse_weight > 0) r2l_.get<float>(be, cells);
}

DecoderTrieRows BatchRescorer::upload_trie(const DecoderTrie& trie, int width) {
  Backend& be = asr_.backend();
  const auto ints = [&](const std::vector<int>& v, std::initializer_list<int64_t> shape) {
    Tensor t = be.alloc(shape, DType::kI32);
    be.copy_in(v.data(), t);
    return t;
  };
  const int64_t nodes = trie.nodes(), rows = int64_t(trie.path_lens.size());
  DecoderTrieRows r;
  r.ids = ints(trie.ids, {nodes});
  r.positions = ints(trie.positions, {nodes});
  r.utt_offsets = ints(trie.utt_offsets, {int64_t(trie.utt_offsets.size())});
  r.added_offsets = ints(trie.added_offsets, {rows + 1});
  r.paths = ints(trie.paths, {rows, width});
  r.path_lens = ints(trie.path_lens, {rows});
  return r;
}

void BatchRescorer::enqueue(const EncoderOutput& enc, const std::vector<std::vector<Hypothesis>>& nbest) {
  Backend& be = asr_.backend();
  size_t N = 0;
  int width = 1;
  for (const auto& h : nbest) {
    N = std::max(N, h.size());
    width = std::max(width, decoder_input_width(h));
  }
  const size_t B = nbest.size(), rows = B * N, cells = rows * size_t(width);
  rows_ = int(N);
  width_ = width;
  if (rows == 0) return;
  Tensor d_targets = be.alloc({int64_t(rows), width}, DType::kI32);
  Tensor d_ids, d_lens;
  int* lens = nullptr;
  if (!share_prefixes_) {
    d_ids = be.alloc({int64_t(rows), width}, DType::kI32);
    d_lens = be.alloc({int64_t(rows)}, DType::kI32);
    lens = lens_.get<int>(be, rows);
    std::fill(lens, lens + rows, 1);
  }
  for (const bool reverse : {false, true}) {
    if (reverse && opts_.reverse_weight <= 0.f) break;
    // Each direction has its own host inputs: the copies are asynchronous. Utterances with fewer
    // hypotheses are padded with empty ones (<sos> <eos>..., the root of a trie) never read.
    int* targets = targets_[reverse].get<int>(be, cells);
    std::fill(targets, targets + cells, -1);
    for (size_t i = 0; i < B; ++i)
      build_decoder_targets(nbest[i], eos_, reverse, width, targets + i * N * size_t(width));
    be.copy_in(targets, d_targets);
    Tensor scores;
    if (share_prefixes_) {
      build_decoder_trie(nbest, N, sos_, reverse, width, tries_[reverse]);
      scores = asr_.decode_scores(enc, upload_trie(tries_[reverse], width), d_targets, reverse);
    } else {
      int* ids = ids_[reverse].get<int>(be, cells);
      std::fill(ids, ids + cells, eos_);
      for (size_t i = 0; i < B; ++i) {
        for (size_t n = 0; n < N; ++n) ids[(i * N + n) * size_t(width)] = sos_;
        build_decoder_inputs(nbest[i], sos_, eos_, reverse, width, ids + i * N * size_t(width), lens + i * N);
      }
      be.copy_in(ids, d_ids);
      if (!reverse) be.copy_in(lens, d_lens);
      scores = asr_.decode_scores(enc, d_ids, d_lens, d_targets, reverse);
    }
    be.copy_out_async(scores, (reverse ? r2l_ : l2r_).get<float>(be, cells));
  }
}

int BatchRescorer::pick(size_t i, std::vector<Hypothesis>& hyps) const {
  const size_t off = i * size_t(rows_) * size_t(width_);
  return attention_rescore_targets(hyps, l2r_.data<float>() + off,
                                   opts_.reverse_weight > 0 ? r2l_.data<float>() + off : nullptr, width_, opts_);
}

}  // namespace wenet_rt
