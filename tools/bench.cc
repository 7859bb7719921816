#include "tools/bench.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <type_traits>

#include "backend/backend.h"
#include "graph/asr_model.h"
#include "graph/streaming_encoder.h"
#include "model/config.h"
#include "model/model_dir.h"
#include "model/random_model.h"

namespace wenet_rt {
namespace {

constexpr int kHyps = 10, kHypTokens = 64;  // the seed's decoder input: B x 10 x 64

struct Point {
  int batch, frames;
};

std::vector<Point> parse_grid(const std::string& grid) {
  std::vector<Point> pts;
  size_t pos = 0;
  while (pos < grid.size()) {
    const size_t comma = std::min(grid.find(',', pos), grid.size());
    const std::string item = grid.substr(pos, comma - pos);
    int b = 0, t = 0;
    if (std::sscanf(item.c_str(), "%dx%d", &b, &t) != 2 || b < 1 || t < 1)
      fail("--grid: expected BATCHxFRAMES items like 4x64, got '{}'", item);
    pts.push_back({b, t});
    pos = comma + 1;
  }
  return pts;
}

struct Stats {
  double median_ms = 0, p90_ms = 0, a0 = -1, r0 = -1;
};

// Device time per run (CUDA events on cuda, like the peers' torch.cuda.Event timing).
template <typename F>
Stats time_runs(Backend& be, int warmup, int runs, F&& run) {
  for (int i = 0; i < warmup; ++i) run();
  be.synchronize();
  std::vector<double> ms;
  for (int i = 0; i < runs; ++i) ms.push_back(be.time_ms(run));
  std::sort(ms.begin(), ms.end());
  return {ms[ms.size() / 2], ms[std::min(ms.size() - 1, ms.size() * 9 / 10)]};
}

void accuracy(const std::vector<float>& got, const std::vector<float>& want, Stats& s) {
  std::vector<double> rel(got.size());
  s.a0 = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double d = std::abs(double(got[i]) - double(want[i]));
    s.a0 = std::max(s.a0, std::isfinite(d) ? d : INFINITY);
    rel[i] = d / (std::abs(double(want[i])) + 1e-9);
  }
  std::nth_element(rel.begin(), rel.begin() + long(rel.size() / 2), rel.end());
  s.r0 = rel.empty() ? 0 : rel[rel.size() / 2];
}

// cpu: FP32, or dynamic INT8 linear layers with int8, on `threads` (0: all); cuda: FP16 / FP32 as
// dtype, with Programmatic Dependent Launch where supported when pdl (WENET_RT_PDL overrides).
std::unique_ptr<Backend> make_backend(const std::string& device, DType dtype, bool graphs, bool int8 = false,
                                      int threads = 0, bool pdl = true) {
  if (device == "cpu") return make_cpu_backend(CpuBackendOptions{threads, int8});
#ifdef WENET_RT_HAVE_CUDA
  CudaBackendOptions o;
  o.dtype = dtype;
  o.cuda_graphs = graphs;
  o.programmatic_launch = pdl;
  return make_cuda_backend(o);
#else
  (void)dtype, (void)graphs, (void)pdl;
  fail("device {}: this build has no CUDA backend", device);
#endif
}

// Inputs of one grid point, seeded so that every backend (and the peers) sees the same values.
struct Inputs {
  std::vector<float> feats, memory;
  std::vector<int> lens, mem_lens, hyps, hyp_lens;
};

Inputs make_inputs(const ModelConfig& c, Point p, bool mixed) {
  std::mt19937 rng(uint32_t(p.batch * 100003 + p.frames));
  std::normal_distribution<float> normal(0.f, 1.f);
  Inputs in;
  in.feats.resize(size_t(p.batch) * p.frames * c.encoder.input_dim);
  for (float& v : in.feats) v = normal(rng);
  for (int b = 0; b < p.batch; ++b)
    in.lens.push_back(mixed && p.batch > 1 ? p.frames - (p.frames / 2) * b / (p.batch - 1) : p.frames);
  // Decoder as the seed ran it: memory B x frames x d (already encoded), 10 hypotheses of 64 tokens.
  in.memory.resize(size_t(p.batch) * p.frames * c.encoder.output_size);
  for (float& v : in.memory) v = normal(rng);
  in.mem_lens = in.lens;
  std::uniform_int_distribution<int> token(2, c.vocab_size - 2);
  for (int h = 0; h < p.batch * kHyps; ++h) {
    in.hyps.push_back(c.sos_id);
    for (int i = 1; i < kHypTokens - 1; ++i) in.hyps.push_back(token(rng));
    in.hyp_lens.push_back(kHypTokens - 1);
  }
  return in;
}

struct Row {
  Point p;
  std::string part;
  Stats s;
};

// The inputs uploaded once into persistent backend memory: timed runs start from device-resident
// inputs, as the peers' do.
struct Resident {
  Tensor feats, memory, mem_lens, hyps, hyp_lens;
  std::vector<int> lens;
};

template <typename T>
Tensor upload(Backend& be, const std::vector<T>& v, Shape shape, DType dtype) {
  HostTensor h(std::is_same_v<T, int> ? DType::kI32 : DType::kF32, std::move(shape));
  std::memcpy(h.raw(), v.data(), v.size() * sizeof(T));
  return be.upload(h, dtype);
}

Resident make_resident(const AsrModel& m, const Inputs& in, Point p) {
  Backend& be = m.backend();
  const ModelConfig& c = m.config();
  Resident r;
  r.feats = upload(be, in.feats, {p.batch, p.frames, c.encoder.input_dim}, DType::kF32);
  r.memory = upload(be, in.memory, {p.batch, p.frames, c.encoder.output_size}, be.act_dtype());
  r.mem_lens = upload(be, in.mem_lens, {p.batch}, DType::kI32);
  r.hyps = upload(be, in.hyps, {p.batch * kHyps, kHypTokens - 1}, DType::kI32);
  r.hyp_lens = upload(be, in.hyp_lens, {p.batch * kHyps}, DType::kI32);
  r.lens = in.lens;
  return r;
}

// Encoder (fbank -> encoder_out + CTC log-probs) and decoder (memory + hyps -> log-probs) once.
EncoderOutput run_encoder_once(AsrModel& m, const Resident& in) {
  m.backend().reset_arena();
  EncoderOutput enc = m.encode(in.feats, in.lens.data());
  m.ctc_log_probs(enc);
  return enc;
}

Tensor run_decoder_once(AsrModel& m, const Resident& in, Point p) {
  m.backend().reset_arena();
  EncoderOutput enc;
  enc.batch = p.batch;
  enc.frames = p.frames;
  enc.host_lens = in.lens;
  enc.out = in.memory;
  enc.lens = in.mem_lens;
  return m.decode(enc, in.hyps, in.hyp_lens, false);
}

// Both parts timed on m's backend: {encoder, decoder}.
std::pair<Stats, Stats> time_parts(AsrModel& m, const Resident& in, Point p, int warmup, int runs) {
  return {time_runs(m.backend(), warmup, runs, [&] { run_encoder_once(m, in); }),
          time_runs(m.backend(), warmup, runs, [&] { run_decoder_once(m, in, p); })};
}

// Output 0 of each part on the host (encoder: valid frames only).
std::vector<float> run_encoder(AsrModel& m, const Resident& in) {
  const EncoderOutput enc = run_encoder_once(m, in);
  std::vector<float> out(size_t(enc.out.numel()));
  m.backend().copy_out(enc.out, out.data());
  std::vector<float> valid;
  const size_t d = size_t(m.config().encoder.output_size);
  for (int b = 0; b < enc.batch; ++b)
    valid.insert(valid.end(), out.begin() + long(size_t(b) * enc.frames * d),
                 out.begin() + long((size_t(b) * enc.frames + size_t(enc.host_lens[size_t(b)])) * d));
  return valid;
}

std::vector<float> run_decoder(AsrModel& m, const Resident& in, Point p) {
  Tensor t = run_decoder_once(m, in, p);
  std::vector<float> out(size_t(t.numel()));
  m.backend().copy_out(t, out.data());
  return out;
}

// One eager run of `part` with per-kernel timing, after one untimed (first touches of scratch
// memory and cold caches are not what the timed runs see): kernels, calls per layer, time and share.
template <typename F>
void print_profile(Backend& be, const std::string& part, Point p, int layers, F&& run) {
  run();
  be.set_profiling(true);
  run();
  std::vector<KernelTime> k = be.take_profile();
  be.set_profiling(false);
  if (k.empty()) return;
  std::sort(k.begin(), k.end(), [](const KernelTime& a, const KernelTime& b) { return a.ms > b.ms; });
  double total = 0;
  int calls = 0;
  for (const KernelTime& t : k) total += t.ms, calls += t.calls;
  fmt::print("\nprofile {} {}x{}: {} kernels, {:.3f} ms of kernel time (eager, one warm run)\n", part, p.batch, p.frames,
             calls, total);
  fmt::print("  {:<34} {:>6} {:>9} {:>9} {:>7}\n", "kernel", "calls", "per layer", "ms", "share");
  for (const KernelTime& t : k)
    fmt::print("  {:<34} {:>6} {:>9.1f} {:>9.4f} {:>6.1f}%\n", t.name, t.calls, double(t.calls) / layers, t.ms,
               100 * t.ms / total);
}

std::string fmt_ms(double v) { return v < 0 ? "-" : fmt::format("{:.3f}", v); }

// --chunk-batches: the streaming encoder's step as the streaming engine runs it (encode_chunks of
// B full windows, then the CTC top-k), every stream's attention history full (chunk_size x
// left_chunks frames) before the timed steps; device time per step.
int run_bench_chunks(const BenchOptions& o, const ModelDir& model) {
  const std::vector<int> batches = parse_counts(o.chunk_batches, "--chunk-batches");
  const DType dt = o.precision == "fp16" ? DType::kF16 : DType::kF32;
  const std::string precision = precision_label(o);
  auto backend = make_backend(o.device, dt, o.cuda_graphs, o.device == "cpu" && o.precision == "int8", o.threads);
  AsrModel asr(model, *backend);
  StreamingOptions so;
  so.chunk_size = o.chunk_size;
  so.num_left_chunks = o.left_chunks;
  StreamingEncoder encoder(asr, so);
  const int W = encoder.window_frames(), F = model.config.encoder.input_dim, k = 10;
  // Each step advances every stream by a chunk: the warm-up fills the history; all steps must stay
  // within the model's positions.
  const int warmup = std::max(o.warmup, o.left_chunks + 1), steps = warmup + o.runs;
  const double audio_s =  // per stream and step
      o.chunk_size * encoder.subsampling_rate() * model.config.fbank.frame_shift_ms / 1000.0;
  fmt::print("wenet-rt bench --chunk-batches: {} {}, {} ({} fbank frames a window), CTC top-{}; device time per "
             "step, {} runs after {} warm-up\n\n",
             o.device, precision, so.describe(), W, k, o.runs, warmup);
  fmt::print("{:>8} {:>10} {:>10} {:>14} {:>12}\n", "streams", "median ms", "p90 ms", "frames/s", "x real time");
  nlohmann::json points = nlohmann::json::array();
  for (const int B : batches) {
    EncoderCachePool pool = encoder.make_pool(B);
    WENET_CHECK(int64_t(steps) * o.chunk_size <= pool.max_frames(),
                "--chunk-batches: {} steps of {} frames pass the model's {} positions (fewer --runs)", steps,
                o.chunk_size, pool.max_frames());
    std::vector<int> slots(static_cast<size_t>(B)), lens(static_cast<size_t>(B), W);
    for (int& s : slots) s = pool.allocate();
    HostTensor h(DType::kF32, {B, W, F});
    std::mt19937 rng(static_cast<uint32_t>(B));
    std::normal_distribution<float> normal(0.f, 1.f);
    for (int64_t i = 0; i < h.numel(); ++i) h.data<float>()[i] = normal(rng);
    const Tensor windows = backend->upload(h, DType::kF32);
    const Stats st = time_runs(*backend, warmup, o.runs, [&] {
      backend->reset_arena();
      asr.ctc_top_k(encoder.encode_chunks(windows, lens.data(), slots.data(), pool), k);
    });
    const double x = B * audio_s / (st.median_ms / 1000);
    fmt::print("{:>8} {:>10.3f} {:>10.3f} {:>14.0f} {:>12.0f}\n", B, st.median_ms, st.p90_ms,
               B * o.chunk_size / (st.median_ms / 1000), x);
    points.push_back({{"streams", B}, {"median_ms", st.median_ms}, {"p90_ms", st.p90_ms}, {"x_real_time", x}});
  }
  if (!o.json_out.empty())
    std::ofstream(o.json_out) << nlohmann::json{{"device", o.device},
                                                {"precision", precision},
                                                {"chunk_size", o.chunk_size},
                                                {"left_chunks", o.left_chunks},
                                                {"points", points}}
                                     .dump(1);
  return 0;
}

}  // namespace

std::string full_size_u2pp_yaml() {
  std::string yaml = kFullSizeModelYaml;
  const std::string key = "  cnn_module_norm: batch_norm\n";
  const size_t at = yaml.find(key);
  WENET_CHECK(at != std::string::npos, "internal: the full-size model's yaml lacks '{}'", key);
  yaml.insert(at + key.size(), "  use_dynamic_chunk: true\n  causal: true\n");
  return yaml;
}

std::vector<int> parse_counts(const std::string& list, const std::string& flag) {
  std::vector<int> out;
  size_t pos = 0;
  while (pos < list.size()) {
    const size_t comma = list.find(',', pos);
    const std::string item = list.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    try {
      out.push_back(std::stoi(item));
    } catch (const std::exception&) {
      fail("{}: expected a list of counts like 100,500,1000, got '{}'", flag, list);
    }
    WENET_CHECK(out.back() >= 1, "{}: counts must be >= 1, got {}", flag, out.back());
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  WENET_CHECK(!out.empty(), "{}: no counts in '{}'", flag, list);
  return out;
}

void add_bench_options(CLI::App& app, BenchOptions& o) {
  app.add_option("model_dir", o.model_dir, "WeNet model directory (default: the seed's full-size model, random weights)");
  app.add_option("--grid", o.grid, "BATCHxFRAMES points, comma-separated")->capture_default_str();
  app.add_option("--device", o.device, "cuda | cpu")->check(CLI::IsMember({"cpu", "cuda"}))->capture_default_str();
  app.add_option("--precision", o.precision, "fp16 | fp32 (cuda) | int8 (cpu: dynamic INT8 linear layers)")->check(CLI::IsMember({"fp16", "fp32", "int8"}))->capture_default_str();
  app.add_option("--runs", o.runs, "timed runs per point")->capture_default_str();
  app.add_option("--warmup", o.warmup, "untimed runs first")->capture_default_str();
  app.add_flag("--mixed-lengths", o.mixed_lengths, "lengths from T down to T/2 within a batch");
  app.add_option("--threads", o.threads,
                 "cpu: threads of the backend and of its peers, also with --e2e (0: the CPUs this process may run on)")
      ->check(CLI::Range(0, 4096))->capture_default_str();
  app.add_flag("--profile", o.profile, "per-kernel device time of each point (eager; CUDA events)");
  app.add_flag("!--no-cuda-graphs", o.cuda_graphs, "run eagerly");
  app.add_flag("--peers", o.peers, "also time the PyTorch reference (reference/bench_peers.py; needs torch)");
  app.add_flag("--compile", o.compile,
               "peers: include torch.compile, modes reduce-overhead and max-autotune (slow to compile: minutes a "
               "point)");
  app.add_flag("--compare-pdl", o.compare_pdl,
               "cuda: also time every point with Programmatic Dependent Launch off (a second backend), shown as the "
               "peer 'wenet-rt no PDL'");
  app.add_option("--peers-json", o.peers_json, "read the peers' results from this file instead");
  app.add_option("--json", o.json_out, "write all results as JSON here");
  app.add_flag("--e2e", o.e2e_mode, "measure end-to-end transcription speed (audio files in, text out) instead");
  app.add_option("--files", o.e2e, "--e2e: audio files (default: 1-20 s pieces cut from the shipped examples)");
  app.add_option("--e2e-seconds", o.e2e_seconds, "--e2e: seconds of generated pieces")->capture_default_str();
  app.add_option("--token-rate", o.token_rate, "--e2e, random model: CTC tokens per second after raising the blank")
      ->capture_default_str();
  app.add_option("--peer-seconds", o.peer_seconds, "--e2e --peers: wall-time cap of the PyTorch pipeline")
      ->capture_default_str();
  app.add_option("--batch-size", o.batch_size, "--e2e: most utterances per batch")->capture_default_str();
  app.add_option("--streams", o.streams,
                 "concurrent real-time streams instead, e.g. 100,500,1000: latency of partial and final results");
  app.add_option("--stream-seconds", o.stream_seconds, "--streams: seconds of sending per point")->capture_default_str();
  app.add_option("--chunk-batches", o.chunk_batches,
                 "the streaming encoder's step for these numbers of streams (e.g. 64,128,256,512) instead of the grid");
  app.add_option("--chunk-size", o.chunk_size, "--streams / --chunk-batches: encoder frames per chunk")
      ->capture_default_str();
  app.add_option("--left-chunks", o.left_chunks, "--streams / --chunk-batches: chunks of attention history (-1 = all)")
      ->capture_default_str();
  app.add_option("--dump-model", o.dump_model,
                 "--e2e, --streams: also write the model benchmarked (random weights after calibration) as a "
                 "weights dump here; reference/dump_to_model_dir.py turns it into a WeNet model dir");
  app.add_option("--batch-frames", o.batch_frames, "--e2e: padded frames per batch (0: by device)")
      ->capture_default_str();
}

ModelDir bench_model(const BenchOptions& o, const std::string& yaml, const std::string& what) {
  return o.model_dir.empty() ? make_random_model(parse_config_text(yaml, what), 0) : load_model_dir(o.model_dir);
}

std::string precision_label(const BenchOptions& o) {
  return o.device == "cpu" && o.precision != "int8" ? "fp32" : o.precision;
}

std::string model_yaml(const BenchOptions& o, const ModelDir& model) {
  if (o.model_dir.empty()) return kFullSizeModelYaml;
  std::ifstream f(model.config_file);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

int run_bench(const BenchOptions& o) {
  if (o.e2e_mode) return run_bench_e2e(o);
  if (!o.streams.empty()) return run_bench_streams(o);
  if (!o.chunk_batches.empty())  // the full-size model as U2++ (streamable)
    return run_bench_chunks(o, bench_model(o, full_size_u2pp_yaml(), "full-size U2++ model"));
  ModelDir model = bench_model(o, kFullSizeModelYaml, "full-size model");
  const std::vector<Point> grid = parse_grid(o.grid);
  const DType dt = o.precision == "fp16" ? DType::kF16 : DType::kF32;
  const bool int8 = o.device == "cpu" && o.precision == "int8";
  auto backend = make_backend(o.device, dt, o.cuda_graphs, int8, o.threads);
  AsrModel asr(model, *backend);
  // FP32 reference for a0 / r0: the CUDA FP32 backend (checked against CPU and the goldens by the
  // tests) when timing CUDA FP16; nothing to compare when timing the reference itself.
  std::unique_ptr<Backend> ref_backend;
  std::unique_ptr<AsrModel> ref;
  if ((o.device == "cuda" && dt == DType::kF16) || int8) {
    ref_backend = make_backend(o.device, DType::kF32, false, false, o.threads);
    ref = std::make_unique<AsrModel>(model, *ref_backend);
  }

  // The same engine with PDL off, timed as a peer: PDL's gain in one run.
  const bool compare_pdl = o.compare_pdl && o.device == "cuda";
  std::unique_ptr<Backend> no_pdl_backend;
  std::unique_ptr<AsrModel> no_pdl;
  if (compare_pdl) {
    if (!backend->programmatic_launch())
      fmt::print(stderr, "--compare-pdl: PDL is off in the main backend too (device below compute capability 9.0, "
                         "or WENET_RT_PDL=0): both columns time plain launches\n");
    no_pdl_backend = make_backend(o.device, dt, o.cuda_graphs, false, 0, /*pdl=*/false);
    no_pdl = std::make_unique<AsrModel>(model, *no_pdl_backend);
  }
  const std::string no_pdl_peer = "wenet-rt no PDL";
  nlohmann::json no_pdl_points = nlohmann::json::array();

  std::vector<Row> rows;
  for (const Point& p : grid) {
    const Inputs in = make_inputs(model.config, p, o.mixed_lengths);
    const Resident res = make_resident(asr, in, p);
    const auto [enc_stats, dec_stats] = time_parts(asr, res, p, o.warmup, o.runs);
    Row enc{p, "encoder", enc_stats}, dec{p, "decoder", dec_stats};
    if (o.profile) {
      print_profile(*backend, "encoder", p, model.config.encoder.num_blocks, [&] { run_encoder_once(asr, res); });
      print_profile(*backend, "decoder", p, model.config.decoder.num_blocks, [&] { run_decoder_once(asr, res, p); });
    }
    if (ref) {
      const Resident ref_res = make_resident(*ref, in, p);
      accuracy(run_encoder(asr, res), run_encoder(*ref, ref_res), enc.s);
      accuracy(run_decoder(asr, res, p), run_decoder(*ref, ref_res, p), dec.s);
    }
    if (no_pdl) {
      const auto [e, d] = time_parts(*no_pdl, make_resident(*no_pdl, in, p), p, o.warmup, o.runs);
      for (const auto& [part, st] : {std::pair{"encoder", e}, std::pair{"decoder", d}})
        no_pdl_points.push_back({{"peer", no_pdl_peer}, {"part", part}, {"batch", p.batch}, {"frames", p.frames},
                                 {"median_ms", st.median_ms}, {"p90_ms", st.p90_ms}});
      fmt::print(stderr, "{}x{} without PDL: encoder {:.3f} ms, decoder {:.3f} ms\n", p.batch, p.frames, e.median_ms,
                 d.median_ms);
    }
    rows.push_back(enc);
    rows.push_back(dec);
    fmt::print(stderr, "{}x{}: encoder {:.3f} ms, decoder {:.3f} ms\n", p.batch, p.frames, enc.s.median_ms,
               dec.s.median_ms);
  }

  // Peers: the same weights and grid in PyTorch (reference/bench_peers.py).
  nlohmann::json peers;
  std::string peers_file = o.peers_json;
  if (o.peers && peers_file.empty()) {
    const std::string dump = (std::filesystem::temp_directory_path() / "wenet_rt_bench_weights").string();
    dump_weights(model, model_yaml(o, model), dump);
    peers_file = dump + "/peers.json";
    // CPU: ONNX Runtime (FP32, dynamic INT8) and PyTorch eager with as many threads as the CPU
    // backend (--threads, else the CPUs this process may run on); CUDA: the PyTorch GPU peers.
    const std::string cmd = fmt::format("python3 {}/reference/{} --dump {} --grid {} --runs {} --warmup {} "
                                        "--out {}{}{}{}",
                                        WENET_SOURCE_DIR, o.device == "cpu" ? "bench_cpu_peers.py" : "bench_peers.py",
                                        dump, o.grid, o.runs, o.warmup, peers_file, o.compile ? " --compile" : "",
                                        o.mixed_lengths ? " --mixed-lengths" : "",
                                        o.device == "cpu" && o.threads > 0 ? fmt::format(" --threads {}", o.threads) : "");
    fmt::print(stderr, "running the peers: {}\n", cmd);
    WENET_CHECK(std::system(cmd.c_str()) == 0, "the peers' script failed: {}", cmd);
  }
  if (!peers_file.empty()) {
    std::ifstream f(peers_file);
    WENET_CHECK(bool(f), "{}: cannot read the peers' results", peers_file);
    peers = nlohmann::json::parse(f);
  }
  // peer name -> (part, batch, frames) -> median ms
  std::map<std::string, std::map<std::tuple<std::string, int, int>, nlohmann::json>> by_peer;
  if (peers.contains("points"))
    for (const auto& pt : peers["points"])
      by_peer[pt["peer"]][{pt["part"], pt["batch"], pt["frames"]}] = pt;
  for (const auto& pt : no_pdl_points) by_peer[pt["peer"]][{pt["part"], pt["batch"], pt["frames"]}] = pt;
  // Column width per peer: its name and " (x)", at least 22.
  std::map<std::string, size_t> width;
  for (const auto& [peer, _] : by_peer) width[peer] = std::max<size_t>(22, peer.size() + 4);

  const std::string device = o.device == "cuda" && peers.contains("device") ? peers["device"].get<std::string>() : o.device;
  const std::string precision = precision_label(o);
  fmt::print("wenet-rt bench: {} ({}), {} {}{}{}, {} runs after {} warm-up; time per run in ms ({}; median / p90)\n",
             o.model_dir.empty() ? "full-size conformer, random weights" : o.model_dir, device, o.device, precision,
             o.device == "cuda" && o.cuda_graphs ? " + CUDA graphs" : "", backend->programmatic_launch() ? " + PDL" : "",
             o.runs, o.warmup,
             o.device == "cuda" ? "CUDA events, inputs resident" : "wall time, inputs resident");
  for (const std::string part : {"encoder", "decoder"}) {
    std::string header = fmt::format("\n{:<8} {:>6} {:>8} {:>8} {:>12} {:>9} {:>9}", part, "BxT", "median", "p90",
                                     "frames/s", "a0", "r0");
    for (const auto& [peer, _] : by_peer) header += fmt::format(" {:>{}}", peer + " (x)", width[peer]);
    fmt::print("{}\n", header);
    double sum = 0, n = 0;
    std::map<std::string, double> peer_sum;
    for (const Row& r : rows) {
      if (r.part != part) continue;
      std::string line = fmt::format("{:<8} {:>6} {:>8} {:>8} {:>12.0f} {:>9} {:>9}", "",
                                     fmt::format("{}x{}", r.p.batch, r.p.frames), fmt_ms(r.s.median_ms),
                                     fmt_ms(r.s.p90_ms), r.p.batch * r.p.frames / (r.s.median_ms / 1e3),
                                     r.s.a0 < 0 ? "-" : fmt::format("{:.2e}", r.s.a0),
                                     r.s.r0 < 0 ? "-" : fmt::format("{:.2e}", r.s.r0));
      for (const auto& [peer, pts] : by_peer) {
        const auto it = pts.find({part, r.p.batch, r.p.frames});
        if (it == pts.end()) {
          line += fmt::format(" {:>{}}", "-", width[peer]);
          continue;
        }
        const double ms = it->second["median_ms"];
        peer_sum[peer] += ms;
        line += fmt::format(" {:>{}}", fmt::format("{:.3f} ({:.2f}x)", ms, ms / r.s.median_ms), width[peer]);
      }
      fmt::print("{}\n", line);
      sum += r.s.median_ms;
      ++n;
    }
    std::string avg = fmt::format("{:<8} {:>6} {:>8.3f}", "", "avg", sum / n);
    avg += std::string(48, ' ');
    for (const auto& [peer, s] : peer_sum)
      avg += fmt::format(" {:>{}}", fmt::format("{:.3f} ({:.2f}x)", s / n, s / sum), width[peer]);
    fmt::print("{}\n", avg);
  }

  if (!o.json_out.empty()) {
    nlohmann::json j;
    j["device"] = device;
    j["precision"] = o.precision;
    j["pdl"] = backend->programmatic_launch();
    if (!no_pdl_points.empty()) j["no_pdl_points"] = no_pdl_points;
    for (const Row& r : rows)
      j["points"].push_back({{"part", r.part}, {"batch", r.p.batch}, {"frames", r.p.frames},
                             {"median_ms", r.s.median_ms}, {"p90_ms", r.s.p90_ms}, {"a0", r.s.a0}, {"r0", r.s.r0}});
    if (!peers.is_null()) j["peers"] = peers;
    std::ofstream(o.json_out) << j.dump(1);
  }
  return 0;
}

}  // namespace wenet_rt
