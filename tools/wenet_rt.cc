// wenet-rt: the command line. Only wiring: options -> RecognizerConfig -> Recognizer / bench.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "core/error.h"
#include "model/model_dir.h"
#include "engine/offline_engine.h"
#include "engine/offline_stream.h"
#include "engine/request_batcher.h"
#include "server/server.h"
#include "tools/bench.h"
#include "tools/loadtest.h"
#include "wenet_rt/recognizer.h"

namespace {

using wenet_rt::fail;

// wav.scp: "key path" per line (Kaldi); blank lines and #-comments skipped.
std::vector<std::pair<std::string, std::string>> read_wav_scp(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail("{}: cannot open wav.scp", path);
  std::vector<std::pair<std::string, std::string>> out;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    const size_t a = line.find_first_not_of(" \t\r");
    if (a == std::string::npos || line[a] == '#') continue;
    const size_t sp = line.find_first_of(" \t", a);
    if (sp == std::string::npos) fail("{}:{}: expected 'key path', got '{}'", path, n, line);
    const size_t p = line.find_first_not_of(" \t", sp);
    std::string file = line.substr(p);
    while (!file.empty() && (file.back() == '\r' || file.back() == ' ')) file.pop_back();
    out.emplace_back(line.substr(a, sp - a), file);
  }
  return out;
}

void progress_bar(size_t done, size_t total) {
  const int width = 40, filled = total ? int(double(done) / double(total) * width) : width;
  fmt::print(stderr, "\r[{:<{}}] {}/{}", std::string(size_t(filled), '#'), width, done, total);
  if (done == total) fmt::print(stderr, "\n");
}

int run_transcribe(const std::string& model_dir, const std::vector<std::string>& audio, const std::string& wav_scp,
                   const std::string& output, const std::string& format, const wenet_rt::RecognizerConfig& cfg) {
  std::vector<std::pair<std::string, std::string>> files;
  if (!wav_scp.empty()) files = read_wav_scp(wav_scp);
  for (const auto& a : audio) files.emplace_back(std::filesystem::path(a).stem().string(), a);
  if (files.empty()) fail("no audio given: pass files or --wav-scp");

  const auto t0 = std::chrono::steady_clock::now();
  wenet_rt::Recognizer rec(model_dir, cfg);
  const auto t1 = std::chrono::steady_clock::now();
  const bool tty = isatty(fileno(stderr));
  auto results = rec.recognize_files(files, tty && files.size() > 1 ? progress_bar : std::function<void(size_t, size_t)>{});
  const auto t2 = std::chrono::steady_clock::now();

  std::ofstream file_out;
  if (!output.empty()) {
    file_out.open(output);
    if (!file_out) fail("{}: cannot write output", output);
  }
  std::ostream& out = output.empty() ? std::cout : file_out;
  double audio_s = 0;
  int failed = 0;
  for (const auto& r : results) {
    audio_s += r.duration_s;
    if (!r.error.empty()) {
      ++failed;
      fmt::print(stderr, "error: {}: {}\n", r.key, r.error);
    }
    if (format == "json") {
      // word_pieces as WeNet's runtime reports them: start / end in ms from the file's start.
      nlohmann::json pieces = nlohmann::json::array();
      for (const auto& p : r.word_pieces) pieces.push_back({{"word", p.word}, {"start", p.start_ms}, {"end", p.end_ms}});
      nlohmann::json j = {{"key", r.key},     {"text", r.text},           {"tokens", r.tokens},
                          {"score", r.score}, {"duration", r.duration_s}, {"word_pieces", pieces}};
      if (r.segments > 1) j["segments"] = r.segments;
      if (!r.error.empty()) j["error"] = r.error;
      out << j.dump() << '\n';
    } else if (r.error.empty()) {
      out << r.key << ' ' << r.text << '\n';
    }
  }
  out.flush();
  const double wall = std::chrono::duration<double>(t2 - t1).count();
  fmt::print(stderr, "{} files ({} failed), {:.1f} s of audio in {:.3f} s (+{:.2f} s load): RTF {:.5f}, {:.0f}x real time [{}]\n",
             files.size(), failed, audio_s, wall, std::chrono::duration<double>(t1 - t0).count(),
             audio_s > 0 ? wall / audio_s : 0.0, wall > 0 ? audio_s / wall : 0.0, cfg.describe());
  return failed == int(files.size()) ? 1 : 0;
}

struct ServeOptions {
  std::string model_dir;
  wenet_rt::RecognizerConfig offline;
  wenet_rt::RequestBatcherConfig batcher;
  wenet_rt::server::ServerConfig server;
};

int run_serve(ServeOptions& o) {
  o.batcher.validate();
  o.server.validate();
  // HTTP requests (and WebSocket streams of a model that cannot stream) share one batched engine.
  wenet_rt::OfflineEngine engine(wenet_rt::load_model_dir(o.model_dir), o.offline);
  wenet_rt::RequestBatcher batcher(engine, o.batcher);
  wenet_rt::server::ServerBackends backends;
  backends.batcher = &batcher;
  backends.sample_rate = engine.sample_rate();
  backends.model = o.model_dir;
  // TODO(issue 14 landing): a StreamingRecognizer for models trained for streaming.
  backends.create_stream = [&batcher](const wenet_rt::StreamOptions& opts) {
    return wenet_rt::make_offline_stream(batcher, opts);
  };
  wenet_rt::server::Server server(o.server, backends);
  return server.run([&](int port) {
    fmt::print(stderr, "wenet-rt serve: listening on http://{}:{}/ (WebSocket ws://{}:{}/) [{}] [{}] [{}]\n",
               o.server.address, port, o.server.address, port, o.offline.describe(), o.batcher.describe(),
               o.server.describe());
  });
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"wenet-rt: fast inference for WeNet speech recognition models"};
  app.require_subcommand(1);

  std::string model_dir;
  auto* info = app.add_subcommand("info", "Describe a WeNet model directory (config, parameters, support)");
  info->add_option("model_dir", model_dir, "WeNet model directory (train.yaml, final.pt, global_cmvn, units.txt)")
      ->required();

  wenet_rt::RecognizerConfig cfg;
  std::vector<std::string> audio;
  std::string wav_scp, output, format = "text", mode = "attention_rescoring";
  auto* tr = app.add_subcommand("transcribe", "Speech to text: audio files in, 'key text' lines out");
  tr->add_option("model_dir", model_dir, "WeNet model directory")->required();
  tr->add_option("audio", audio, "audio files (WAV, FLAC, ...); key = file stem");
  tr->add_option("--wav-scp", wav_scp, "Kaldi wav.scp: 'key path' per line");
  tr->add_option("--output,-o", output, "write results here instead of stdout");
  tr->add_option("--format", format, "text (key text) or json (one object per line)")
      ->check(CLI::IsMember({"text", "json"}));
  tr->add_option("--mode", mode, "ctc_greedy | ctc_prefix_beam | attention_rescoring")
      ->check(CLI::IsMember({"ctc_greedy", "ctc_prefix_beam", "attention_rescoring"}));
  tr->add_option("--beam", cfg.beam, "CTC prefix beam / N-best size")->capture_default_str();
  tr->add_option("--ctc-weight", cfg.ctc_weight, "rescoring: weight of the CTC score")->capture_default_str();
  tr->add_option("--rescoring-weight", cfg.rescoring_weight, "rescoring: weight of the decoder score")
      ->capture_default_str();
  tr->add_option("--reverse-weight", cfg.reverse_weight, "rescoring: weight of the r2l decoder (default: train.yaml)");
  tr->add_option("--batch-size", cfg.batch_size, "most utterances per batch")->capture_default_str();
  tr->add_option("--batch-frames", cfg.batch_frames,
                 "most padded fbank frames per batch (batch x longest; 100 = 1 s); 0 = by device (cuda 48000, cpu 3000)")
      ->capture_default_str();
  tr->add_option("--max-segment-seconds", cfg.max_segment_seconds,
                 "recordings longer than this are split at pauses and their results joined")
      ->capture_default_str();
  tr->add_option("--device", cfg.device, "cpu | cuda")->check(CLI::IsMember({"cpu", "cuda"}))->capture_default_str();
  tr->add_option("--precision", cfg.precision, "fp16 | fp32 (cuda)")
      ->check(CLI::IsMember({"fp16", "fp32"}))
      ->capture_default_str();
  tr->add_option("--threads", cfg.threads, "CPU threads (0 = all cores)")->capture_default_str();

  wenet_rt::BenchOptions bench_opts;
  auto* bench = app.add_subcommand("bench", "Benchmark encoder and decoder over the seed's batch x frames grid, "
                                            "with the PyTorch peers; or --e2e transcription speed");
  wenet_rt::add_bench_options(*bench, bench_opts);

  ServeOptions serve_opts;
  auto* serve = app.add_subcommand("serve", "Serve a model: WebSocket (WeNet's protocol), HTTP (OpenAI's transcription "
                                            "API, /v1/transcribe), a browser page, /healthz, /metrics");
  serve->add_option("model_dir", serve_opts.model_dir, "WeNet model directory")->required();
  auto& sc = serve_opts.server;
  serve->add_option("--host", sc.address, "address to listen on")->capture_default_str();
  serve->add_option("--port", sc.port, "port (0: any free one)")->capture_default_str();
  serve->add_option("--device", serve_opts.offline.device, "cpu | cuda")->check(CLI::IsMember({"cpu", "cuda"}))->capture_default_str();
  serve->add_option("--precision", serve_opts.offline.precision, "fp16 | fp32 (cuda)")
      ->check(CLI::IsMember({"fp16", "fp32"}))->capture_default_str();
  serve->add_option("--threads", serve_opts.offline.threads, "engine CPU threads (0 = all cores)")->capture_default_str();
  serve->add_option("--io-threads", sc.threads, "I/O threads")->capture_default_str();
  serve->add_option("--max-connections", sc.max_connections, "open connections at most; beyond: 503")->capture_default_str();
  serve->add_option("--max-message-bytes", sc.max_message_bytes, "one WebSocket message at most")->capture_default_str();
  serve->add_option("--max-request-bytes", sc.max_request_bytes, "one HTTP request body at most")->capture_default_str();
  serve->add_option("--max-request-seconds", serve_opts.batcher.max_audio_seconds, "audio per HTTP request at most (0: any)")
      ->capture_default_str();
  serve->add_option("--max-stream-seconds", sc.max_stream_seconds, "audio per WebSocket connection at most")->capture_default_str();
  serve->add_option("--idle-timeout", sc.idle_timeout_s, "seconds a WebSocket client may stay silent mid-stream")
      ->capture_default_str();
  serve->add_option("--request-timeout", sc.request_timeout_s, "seconds an HTTP request may take to arrive")->capture_default_str();
  serve->add_option("--write-timeout", sc.write_timeout_s, "seconds a client may take to read a message")->capture_default_str();
  serve->add_option("--max-send-queue-bytes", sc.max_send_queue_bytes, "results queued for a slow reader at most")
      ->capture_default_str();
  serve->add_option("--drain-timeout", sc.drain_timeout_s, "seconds streams get to finish after SIGTERM")->capture_default_str();
  serve->add_option("--batch-window-ms", serve_opts.batcher.window_ms, "HTTP: how long a request waits for others to batch with")
      ->capture_default_str();
  serve->add_option("--max-batch", serve_opts.batcher.max_batch, "HTTP: requests per engine run")->capture_default_str();
  serve->add_option("--max-queue", serve_opts.batcher.max_queue, "HTTP: requests waiting at most; beyond: 503")->capture_default_str();

  wenet_rt::LoadtestOptions load_opts;
  auto* load = app.add_subcommand("loadtest", "Replay audio against a running server from many clients: latency, errors, "
                                              "and every final text checked");
  wenet_rt::add_loadtest_options(*load, load_opts);

  CLI11_PARSE(app, argc, argv);
  try {
    if (*info) {
      fmt::print("{}\n", wenet_rt::describe(wenet_rt::load_model_dir(model_dir)));
      return 0;
    }
    if (*tr) {
      cfg.mode = wenet_rt::parse_decode_mode(mode);
      return run_transcribe(model_dir, audio, wav_scp, output, format, cfg);
    }
    if (*bench) return wenet_rt::run_bench(bench_opts);
    if (*serve) return run_serve(serve_opts);
    if (*load) return wenet_rt::run_loadtest(load_opts);
  } catch (const std::exception& e) {
    fmt::print(stderr, "wenet-rt: error: {}\n", e.what());
    return 1;
  }
  return 0;
}
