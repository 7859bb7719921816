// `wenet-rt bench`: the seed's benchmark grid (encoder and decoder latency, throughput, accuracy
// against an FP32 reference), the PyTorch peers measured in the same run, and the end-to-end
// real-time factor of transcription.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace wenet_rt {

struct ModelDir;

struct BenchOptions {
  std::string model_dir;  // empty: the seed's full-size model with random weights
  std::string grid = "1x16,1x64,1x256,4x16,4x64,4x256,16x16,16x64,16x256";
  std::string device = "cuda";
  std::string precision = "fp16";
  int runs = 50, warmup = 10;
  bool mixed_lengths = false;
  int threads = 0;               // cpu: threads of the backend and of its peers (0: the CPUs this process may run on)
  bool profile = false;          // per-kernel device time of each part (eager, CUDA events)
  bool cuda_graphs = true;
  bool peers = false;            // run reference/bench_peers.py (needs torch)
  bool compile = false;          // ... with torch.compile (reduce-overhead and max-autotune)
  bool compare_pdl = false;      // cuda: also time every point with Programmatic Dependent Launch off
  std::string peers_json;        // or read its output from here
  std::string json_out;
  // --e2e: transcription speed of the whole pipeline instead of the grid (tools/bench_e2e.cc).
  bool e2e_mode = false;
  std::vector<std::string> e2e;  // audio files; empty: pieces cut from the shipped examples
  double e2e_seconds = 3600;     // total audio of the generated pieces
  double token_rate = 5;         // random model: CTC tokens per second of speech after calibration
  double peer_seconds = 120;     // wall-time cap of the PyTorch peer
  int batch_size = 64;           // --e2e batching (RecognizerConfig)
  int batch_frames = 0;
  // --streams: concurrent real-time streams instead of the grid (tools/bench_streams.cc).
  std::string streams;           // "100,500,1000"
  double stream_seconds = 30;    // of sending per point
  int chunk_size = 16, left_chunks = 5;
  // --chunk-batches: the streaming encoder's step (one chunk of B streams) instead of the grid.
  std::string chunk_batches;     // "64,128,256,512"
  std::string dump_model;        // --e2e / --streams: weights dump of the model measured
};

void add_bench_options(CLI::App& app, BenchOptions& opts);
int run_bench(const BenchOptions& opts);
int run_bench_e2e(const BenchOptions& opts);
int run_bench_streams(const BenchOptions& opts);

// Shared by the benches (tools/bench_e2e.cc):
// `seconds` of distinct WAV files of 1-20 s in `dir`, cut from the shipped examples.
std::vector<std::string> make_bench_files(double seconds, const std::string& dir, int rate);
// The model benchmarked: MODEL_DIR, or with none a random model of `yaml` (named `what` in errors).
ModelDir bench_model(const BenchOptions& o, const std::string& yaml, const std::string& what);
// The precision a run is labelled with: the CPU backend runs FP32 unless asked for INT8 (its
// default precision, fp16, means fp32 there).
std::string precision_label(const BenchOptions& o);
// The config text of the model benchmarked: the full-size model's, or MODEL_DIR's train.yaml.
std::string model_yaml(const BenchOptions& o, const ModelDir& model);
// The full-size model's config as a U2++ model (dynamic chunk training, causal conv): streamable.
std::string full_size_u2pp_yaml();
// "100,500,1000" -> {100, 500, 1000}; throws naming `flag` for anything else or a count < 1.
std::vector<int> parse_counts(const std::string& list, const std::string& flag);
// The p-th percentile (0..100) of v, the nearest rank at or above it; 0 for no values.
double percentile(std::vector<double> v, double p);
// Rewrites a random model's CTC head so that it emits `tokens_per_s` on real speech.
void calibrate_bench_ctc(ModelDir& model, const std::vector<std::string>& files, double tokens_per_s,
                         const std::string& device, const std::string& precision);

}  // namespace wenet_rt
