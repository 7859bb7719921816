// `wenet-rt bench --e2e`: transcription speed as users see it. Many distinct files of realistic
// lengths (by default cut from the shipped examples and joined into 1-20 s pieces), a model whose
// CTC emits a realistic token rate, the whole pipeline timed (audio decoding included), stage by
// stage, with the PyTorch reference pipeline timed on the same files in the same run.
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sndfile.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "backend/backend.h"
#include "engine/offline_engine.h"
#include "frontend/audio.h"
#include "frontend/fbank.h"
#include "graph/asr_model.h"
#include "model/config.h"
#include "model/model_dir.h"
#include "model/random_model.h"
#include "tools/bench.h"

namespace wenet_rt {
namespace {

namespace fs = std::filesystem;

void write_wav(const std::string& path, const std::vector<float>& samples, int rate) {
  SF_INFO info{};
  info.samplerate = rate;
  info.channels = 1;
  info.format = SF_FORMAT_WAV | SF_FORMAT_PCM_16;
  SNDFILE* f = sf_open(path.c_str(), SFM_WRITE, &info);
  WENET_CHECK(f != nullptr, "{}: cannot write ({})", path, sf_strerror(nullptr));
  const sf_count_t n = sf_write_float(f, samples.data(), sf_count_t(samples.size()));
  sf_close(f);
  WENET_CHECK(n == sf_count_t(samples.size()), "{}: short write", path);
}

// `seconds` of distinct 16 kHz WAV files of 1-20 s in `dir`: each a run of whole examples joined
// end to end from a random starting example and cut at a random point, at a random gain.
}  // namespace

std::vector<std::string> make_bench_files(double seconds, const std::string& dir, int rate) {
  std::vector<std::vector<float>> examples;
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(std::string(WENET_SOURCE_DIR) + "/models/demo/examples"))
    if (e.path().extension() == ".wav") names.push_back(e.path().string());
  std::sort(names.begin(), names.end());
  for (const auto& n : names) examples.push_back(read_audio(n, rate).samples);
  WENET_CHECK(!examples.empty(), "no examples in {}/models/demo/examples", WENET_SOURCE_DIR);
  fs::create_directories(dir);
  std::mt19937 rng(12345);
  std::uniform_real_distribution<double> length(1.0, 20.0), gain(0.5, 1.0);
  std::uniform_int_distribution<size_t> pick(0, examples.size() - 1);
  std::vector<std::string> files;
  for (double total = 0; total < seconds;) {
    const size_t want = size_t(length(rng) * rate);
    std::vector<float> pcm;
    const float g = float(gain(rng));
    for (size_t e = pick(rng); pcm.size() < want; e = (e + 1) % examples.size())
      for (float v : examples[e]) pcm.push_back(v * g);
    pcm.resize(want);
    files.push_back(fmt::format("{}/piece{:04d}.wav", dir, files.size()));
    write_wav(files.back(), pcm, rate);
    total += double(want) / rate;
  }
  return files;
}

// Makes the random model's CTC emit `tokens_per_s` on real speech, as a trained model does. A deep
// random encoder maps every frame to nearly the same vector, so its CTC repeats one token (about
// one per utterance after collapsing): far easier on the search and rescoring than real use. So:
// CTC logits = s * W diag(1 / std h) (h - mean h) + b: each dimension's frame-to-frame variation
// brought to the same spread and the whole to 3 nats,
// and the blank logit raised (bisection over ~60 s of the files, on the host) until CTC greedy
// decoding emits the requested rate.
void calibrate_bench_ctc(ModelDir& model, const std::vector<std::string>& files, double tokens_per_s,
                   const std::string& device, const std::string& precision) {
  std::unique_ptr<Backend> be;
#ifdef WENET_RT_HAVE_CUDA
  if (device == "cuda") {
    CudaBackendOptions o;
    o.dtype = precision == "fp16" ? DType::kF16 : DType::kF32;
    be = make_cuda_backend(o);
  }
#endif
  if (!be) be = make_cpu_backend();
  AsrModel asr(model, *be);
  const Fbank fbank{FbankOptions{}};
  const int V = model.config.vocab_size, blank = model.config.blank_id, D = model.config.encoder.output_size;
  // Encoder outputs of ~60 s of the files.
  std::vector<float> h;
  std::vector<size_t> utt_end;
  double audio_s = 0;
  for (size_t i = 0; i < files.size() && audio_s < 60; ++i) {
    const Audio a = read_audio(files[i], fbank.options().sample_rate);
    audio_s += a.duration();
    const std::vector<float> feats = fbank.compute(a);
    const int T = int(feats.size() / size_t(fbank.dim()));
    be->reset_arena();
    const EncoderOutput enc = asr.encode(feats.data(), 1, T, &T);
    std::vector<float> out(size_t(enc.frames) * size_t(D));
    be->copy_out(enc.out, out.data());
    h.insert(h.end(), out.begin(), out.begin() + long(size_t(enc.host_lens[0]) * size_t(D)));
    utt_end.push_back(h.size() / size_t(D));
  }
  const size_t frames = h.size() / size_t(D);
  std::vector<double> mean(size_t(D), 0.0), var(size_t(D), 0.0);
  for (size_t t = 0; t < frames; ++t)
    for (int d = 0; d < D; ++d) mean[size_t(d)] += h[t * size_t(D) + size_t(d)] / double(frames);
  for (size_t t = 0; t < frames; ++t)
    for (int d = 0; d < D; ++d) var[size_t(d)] += std::pow(h[t * size_t(D) + size_t(d)] - mean[size_t(d)], 2) / double(frames);
  // Each dimension's variation brought to unit spread, so that no few directions dominate.
  for (int d = 0; d < D; ++d) {
    const double inv = 1.0 / std::sqrt(var[size_t(d)] + 1e-12);
    for (size_t t = 0; t < frames; ++t) h[t * size_t(D) + size_t(d)] = float(mean[size_t(d)] + (h[t * size_t(D) + size_t(d)] - mean[size_t(d)]) * inv);
  }
  HostTensor& W = model.weights.at("ctc.ctc_lo.weight");
  HostTensor& b = model.weights.at("ctc.ctc_lo.bias");
  // z = W (h - mean): the part of the logits that varies from frame to frame.
  std::vector<float> z(frames * size_t(V));
  double sq = 0;
  for (size_t t = 0; t < frames; ++t)
    for (int v = 0; v < V; ++v) {
      const float* w = W.data<float>() + size_t(v) * size_t(D);
      double acc = 0;
      for (int d = 0; d < D; ++d) acc += w[d] * (h[t * size_t(D) + size_t(d)] - mean[size_t(d)]);
      z[t * size_t(V) + size_t(v)] = float(acc);
      sq += acc * acc;
    }
  const double scale = 3.0 / std::sqrt(sq / double(z.size()) + 1e-30);
  auto rate_at = [&](double bias) {
    size_t tokens = 0;
    for (size_t u = 0, t = 0; u < utt_end.size(); ++u) {
      for (int prev = -1; t < utt_end[u]; ++t) {
        int id = blank;
        double best = scale * z[t * size_t(V) + size_t(blank)] + b.data<float>()[blank] + bias;
        for (int v = 0; v < V; ++v) {
          const double l = scale * z[t * size_t(V) + size_t(v)] + b.data<float>()[v];
          if (v != blank && l > best) best = l, id = v;
        }
        if (id != prev && id != blank) ++tokens;
        prev = id;
      }
    }
    return double(tokens) / audio_s;
  };
  // The rate rises with the blank's logit first (blanks split runs of one token into several),
  // then falls: take the falling side, from the highest raise that still reaches the rate.
  double lo = -20, hi = 40;
  for (double x = hi; x >= lo; x -= 1.0)
    if (rate_at(x) >= tokens_per_s) {
      lo = x;
      hi = x + 1.0;
      break;
    }
  for (int i = 0; i < 30; ++i) {
    const double mid = 0.5 * (lo + hi);
    (rate_at(mid) > tokens_per_s ? lo : hi) = mid;
  }
  const double rate = rate_at(hi);
  // Fold it all into the weights: W' = s W diag(1 / std), b' = b - W' mean (+ the blank's raise).
  for (int v = 0; v < V; ++v) {
    float* w = W.data<float>() + size_t(v) * size_t(D);
    double wm = 0;
    for (int d = 0; d < D; ++d) {
      w[d] = float(w[d] * scale / std::sqrt(var[size_t(d)] + 1e-12));
      wm += double(w[d]) * mean[size_t(d)];
    }
    b.data<float>()[v] = float(b.data<float>()[v] - wm + (v == blank ? hi : 0.0));
  }
  fmt::print(stderr, "CTC calibrated on {:.0f} s: whitened logits x{:.2f} around their mean, blank +{:.2f}: greedy "
             "emits {:.1f} tokens/s\n", audio_s, scale, hi, rate);
}

namespace {

struct Run {
  std::string mode;
  EngineStats stats;
};

Run time_engine(const ModelDir& model, const RecognizerConfig& cfg, const std::vector<std::string>& files) {
  OfflineEngine engine(model, cfg);
  auto inputs = [&](size_t n) {
    std::vector<EngineInput> in(std::min(n, files.size()));
    for (size_t i = 0; i < in.size(); ++i) in[i].key = fs::path(files[i]).stem().string(), in[i].path = files[i];
    return in;
  };
  engine.run(inputs(64));  // warm-up: GEMM plans, scratch, page-locked buffers
  engine.run(inputs(files.size()));
  return {decode_mode_name(cfg.mode), engine.stats()};
}

}  // namespace

int run_bench_e2e(const BenchOptions& o) {
  const bool random = o.model_dir.empty();
  ModelDir model = bench_model(o, kFullSizeModelYaml, "full-size model");
  const int rate = model.config.fbank.sample_rate;
  std::vector<std::string> files = o.e2e;
  const std::string dir = (fs::temp_directory_path() / "wenet_rt_bench_e2e").string();
  if (files.empty()) files = make_bench_files(o.e2e_seconds, dir + "/audio", rate);
  if (random) calibrate_bench_ctc(model, files, o.token_rate, o.device, o.precision);
  // The weights as calibrated: what the peer loads.
  const std::string dump = o.dump_model.empty() ? dir + "/model" : o.dump_model;
  if (random && (o.peers || !o.dump_model.empty())) dump_weights(model, kFullSizeModelYaml, dump);

  RecognizerConfig cfg;
  cfg.device = o.device;
  cfg.precision = o.precision;
  cfg.batch_size = o.batch_size;
  cfg.batch_frames = o.batch_frames;
  cfg.threads = o.threads;
  std::vector<Run> runs;
  for (DecodeMode mode : {DecodeMode::kAttentionRescoring, DecodeMode::kCtcPrefixBeam}) {
    cfg.mode = mode;
    runs.push_back(time_engine(model, cfg, files));
  }

  nlohmann::json peer;
  if (o.peers) {
    const std::string peer_model = random ? dump : o.model_dir;
    std::ofstream(dir + "/files.txt") << [&] {
      std::string s;
      for (const auto& f : files) s += f + "\n";
      return s;
    }();
    const std::string out = dir + "/peer.json";
    const std::string cmd = fmt::format(
        "python3 {}/reference/bench_e2e_peer.py --model-dir {} --files {}/files.txt --out {} --device {} --dtype {} "
        "--batch-size {} --beam 10 --mode attention_rescoring --max-seconds {}{}",
        WENET_SOURCE_DIR, peer_model, dir, out, o.device, o.precision, o.batch_size, o.peer_seconds,
        o.threads > 0 ? fmt::format(" --threads {}", o.threads) : "");
    fmt::print(stderr, "running the peer: {}\n", cmd);
    if (std::system(cmd.c_str()) == 0) {
      std::ifstream f(out);
      peer = nlohmann::json::parse(f);
    } else {
      fmt::print(stderr, "the peer failed: {}\n", cmd);
    }
  }

  double total = 0;
  for (const auto& f : files) total += double(probe_audio(f).frames) / rate;
  fmt::print("wenet-rt bench --e2e: {} ({}), {} {}, {} distinct files, {:.0f} s of audio ({:.1f}-{:.1f} s each)\n",
             random ? "full-size conformer, random weights, calibrated blank" : o.model_dir, o.device, o.precision,
             cfg.device == "cuda" ? "(GPU front end)" : "", files.size(), total, 1.0, 20.0);
  for (const Run& r : runs) {
    fmt::print("\n{}: {:.0f}x real time (RTF {:.2e})\n{}\n", r.mode, r.stats.audio_s / r.stats.wall_s,
               r.stats.wall_s / r.stats.audio_s, r.stats.describe());
  }
  if (!peer.is_null()) {
    const double x = peer.value("x_real_time", 0.0);
    fmt::print("\npeer {} on {}: {:.0f}x real time over {} files ({:.0f} s of audio); wenet-rt attention rescoring "
               "is {:.1f}x faster\n",
               peer.value("peer", std::string("?")), peer.value("device", std::string("?")), x,
               peer.value("files", 0), peer.value("audio_s", 0.0),
               x > 0 ? runs[0].stats.audio_s / runs[0].stats.wall_s / x : 0.0);
  }
  if (!o.json_out.empty()) {
    nlohmann::json j;
    for (const Run& r : runs) {
      const EngineStats& s = r.stats;
      j["runs"].push_back({{"mode", r.mode}, {"x_real_time", s.audio_s / s.wall_s}, {"audio_s", s.audio_s},
                           {"wall_s", s.wall_s}, {"batches", s.batches}, {"read_s", s.read_s},
                           {"search_s", s.search_s}, {"frontend_ms", s.frontend_ms}, {"encoder_ms", s.encoder_ms},
                           {"ctc_ms", s.ctc_ms}, {"rescoring_ms", s.rescoring_ms}, {"device_busy", s.device_busy()},
                           {"peak_rss_mb", s.peak_rss_bytes / 1048576.0}, {"device_mb", s.device_bytes / 1048576.0}});
    }
    if (!peer.is_null()) j["peer"] = peer;
    std::ofstream(o.json_out) << j.dump(1);
  }
  return 0;
}

}  // namespace wenet_rt
