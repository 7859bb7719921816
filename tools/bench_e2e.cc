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
std::vector<std::string> make_files(double seconds, const std::string& dir, int rate) {
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

// Raises the random model's blank logit until CTC greedy emits `tokens_per_s` on real speech, as
// a trained model does (a random one emits a token almost every frame, which makes the search and
// rescoring far costlier than they are in use). Bisects on the host over the log-probs of a sample.
float calibrate_blank_bias(ModelDir& model, const std::vector<std::string>& files, double tokens_per_s,
                           const std::string& device, const std::string& precision) {
  RecognizerConfig cfg;
  cfg.device = device;
  cfg.precision = precision;
  // The encoder's CTC log-probs of ~60 s of the files, one utterance at a time.
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
  FbankOptions fo;
  const Fbank fbank(fo);
  const int V = model.config.vocab_size, blank = model.config.blank_id;
  struct Frame {
    float blank, other;
    int other_id;
  };
  std::vector<std::vector<Frame>> utts;
  double audio_s = 0;
  for (size_t i = 0; i < files.size() && audio_s < 60; ++i) {
    const Audio a = read_audio(files[i], fo.sample_rate);
    audio_s += a.duration();
    const std::vector<float> feats = fbank.compute(a);
    const int T = int(feats.size() / size_t(fbank.dim()));
    be->reset_arena();
    const EncoderOutput enc = asr.encode(feats.data(), 1, T, &T);
    std::vector<float> lp(size_t(enc.frames) * size_t(V));
    be->copy_out(asr.ctc_log_probs(enc), lp.data());
    std::vector<Frame> frames;
    for (int t = 0; t < enc.host_lens[0]; ++t) {
      const float* row = lp.data() + size_t(t) * size_t(V);
      Frame f{row[blank], -INFINITY, -1};
      for (int v = 0; v < V; ++v)
        if (v != blank && row[v] > f.other) f.other = row[v], f.other_id = v;
      frames.push_back(f);
    }
    utts.push_back(std::move(frames));
  }
  auto rate_at = [&](float bias) {
    size_t tokens = 0;
    for (const auto& u : utts) {
      int prev = -1;
      for (const Frame& f : u) {
        const int id = f.blank + bias >= f.other ? blank : f.other_id;
        if (id != prev && id != blank) ++tokens;
        prev = id;
      }
    }
    return double(tokens) / audio_s;
  };
  float lo = -50.f, hi = 50.f;
  for (int i = 0; i < 40; ++i) {
    const float mid = 0.5f * (lo + hi);
    (rate_at(mid) > tokens_per_s ? lo : hi) = mid;
  }
  const float bias = hi;
  HostTensor& b = model.weights.at("ctc.ctc_lo.bias");
  b.data<float>()[blank] += bias;
  fmt::print(stderr, "blank logit raised by {:.2f}: CTC greedy emits {:.1f} tokens/s (was {:.1f})\n", bias,
             rate_at(bias), rate_at(0.f));
  return bias;
}

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
  ModelDir model = random ? make_random_model(parse_config_text(kFullSizeModelYaml, "full-size model"), 0)
                          : load_model_dir(o.model_dir);
  const int rate = model.config.fbank.sample_rate;
  std::vector<std::string> files = o.e2e;
  const std::string dir = (fs::temp_directory_path() / "wenet_rt_bench_e2e").string();
  if (files.empty()) files = make_files(o.e2e_seconds, dir + "/audio", rate);
  if (random) calibrate_blank_bias(model, files, o.token_rate, o.device, o.precision);

  RecognizerConfig cfg;
  cfg.device = o.device;
  cfg.precision = o.precision;
  cfg.batch_size = o.batch_size;
  cfg.batch_frames = o.batch_frames;
  std::vector<Run> runs;
  for (DecodeMode mode : {DecodeMode::kAttentionRescoring, DecodeMode::kCtcPrefixBeam}) {
    cfg.mode = mode;
    runs.push_back(time_engine(model, cfg, files));
  }

  nlohmann::json peer;
  if (o.peers) {
    std::string peer_model = o.model_dir;
    if (random) {  // the same weights (calibrated bias included), as the grid's peers load them
      peer_model = dir + "/model";
      dump_weights(model, peer_model);
      std::ofstream(peer_model + "/train.yaml") << kFullSizeModelYaml;
    }
    std::ofstream(dir + "/files.txt") << [&] {
      std::string s;
      for (const auto& f : files) s += f + "\n";
      return s;
    }();
    const std::string out = dir + "/peer.json";
    const std::string cmd = fmt::format(
        "python3 {}/reference/bench_e2e_peer.py --model-dir {} --files {}/files.txt --out {} --device {} --dtype {} "
        "--batch-size {} --beam 10 --mode attention_rescoring --max-seconds {}",
        WENET_SOURCE_DIR, peer_model, dir, out, o.device, o.precision, o.batch_size, o.peer_seconds);
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
