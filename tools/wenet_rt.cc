// wenet-rt: the command line. Only wiring: options -> RecognizerConfig -> Recognizer / bench.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "decode/text.h"
#include "model/model_dir.h"
#include "engine/offline_engine.h"
#include "engine/offline_stream.h"
#include "engine/request_batcher.h"
#include "engine/streaming_engine.h"
#include "server/server.h"
#include "tools/bench.h"
#include "frontend/audio.h"
#include "tools/loadtest.h"
#include "wenet_rt/recognizer.h"
#include "wenet_rt/streaming.h"

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

std::vector<std::pair<std::string, std::string>> input_files(const std::vector<std::string>& audio,
                                                              const std::string& wav_scp) {
  std::vector<std::pair<std::string, std::string>> files;
  if (!wav_scp.empty()) files = read_wav_scp(wav_scp);
  for (const auto& a : audio) files.emplace_back(std::filesystem::path(a).stem().string(), a);
  if (files.empty()) fail("no audio given: pass files or --wav-scp");
  return files;
}

// Writes 'key text' lines or JSON objects; returns 1 when every file failed.
int write_results(const std::vector<wenet_rt::RecognitionResult>& results, const std::string& output,
                  const std::string& format, double wall_s, double load_s, const std::string& setup) {
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
  fmt::print(stderr, "{} files ({} failed), {:.1f} s of audio in {:.3f} s (+{:.2f} s load): RTF {:.5f}, {:.0f}x real time [{}]\n",
             results.size(), failed, audio_s, wall_s, load_s, audio_s > 0 ? wall_s / audio_s : 0.0,
             wall_s > 0 ? audio_s / wall_s : 0.0, setup);
  return failed == int(results.size()) ? 1 : 0;
}

double seconds(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

int run_transcribe(const std::string& model_dir, const std::vector<std::pair<std::string, std::string>>& files,
                   const std::string& output, const std::string& format, const wenet_rt::RecognizerConfig& cfg) {
  const auto t0 = std::chrono::steady_clock::now();
  wenet_rt::Recognizer rec(model_dir, cfg);
  const auto t1 = std::chrono::steady_clock::now();
  const bool tty = isatty(fileno(stderr));
  auto results = rec.recognize_files(files, tty && files.size() > 1 ? progress_bar : std::function<void(size_t, size_t)>{});
  const auto t2 = std::chrono::steady_clock::now();
  return write_results(results, output, format, seconds(t1, t2), seconds(t0, t1), cfg.describe());
}

// Streaming simulated over files: each file is one stream (all of its audio given at once, with
// continuous decoding, so every endpoint gives a final result); as many streams at once as the
// engine allows; the finals of a file are joined into its result.
int run_transcribe_streaming(const std::string& model_dir, const std::vector<std::pair<std::string, std::string>>& files,
                             const std::string& output, const std::string& format,
                             const wenet_rt::StreamingConfig& cfg, bool partial) {
  const auto t0 = std::chrono::steady_clock::now();
  wenet_rt::StreamingRecognizer rec(model_dir, cfg);
  const auto t1 = std::chrono::steady_clock::now();
  std::vector<wenet_rt::RecognitionResult> results(files.size());
  std::mutex mu;  // results are written by the engine's callbacks
  const size_t max_open = size_t(rec.config().max_streams);
  std::vector<std::shared_ptr<wenet_rt::Stream>> streams(files.size());
  size_t open = 0;
  // Streams that are done give their slot back.
  auto reap = [&](size_t upto) {
    for (size_t j = 0; j < upto; ++j)
      if (streams[j] && streams[j]->done()) {
        std::lock_guard<std::mutex> lock(mu);
        if (!streams[j]->error().empty()) results[j].error = streams[j]->error();
        streams[j].reset();
        --open;
      }
  };
  for (size_t i = 0; i < files.size(); ++i) {
    wenet_rt::RecognitionResult& r = results[i];
    r.key = files[i].first;
    wenet_rt::Audio audio;
    try {
      audio = wenet_rt::read_audio(files[i].second, rec.sample_rate());
    } catch (const std::exception& e) {
      r.error = e.what();
      continue;
    }
    r.duration_s = audio.duration();
    for (reap(i); open >= max_open; reap(i)) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    wenet_rt::StreamOptions so;
    so.continuous_decoding = true;
    auto s = rec.create_stream(so);
    s->set_callback([&, i](const wenet_rt::StreamResult& sr) {
      std::lock_guard<std::mutex> lock(mu);
      wenet_rt::RecognitionResult& res = results[i];
      if (partial) fmt::print(stderr, "{} {}: {}\n", res.key, sr.is_final ? "final" : "partial", sr.text());
      if (!sr.is_final || sr.nbest.empty()) return;
      const wenet_rt::Sentence& best = sr.nbest[0];
      wenet_rt::append_utterance_text(res.text, best.text);
      res.tokens.insert(res.tokens.end(), best.tokens.begin(), best.tokens.end());
      res.word_pieces.insert(res.word_pieces.end(), best.word_pieces.begin(), best.word_pieces.end());
      res.score += best.score;
      res.segments = sr.utterance + 1;
    });
    s->accept_waveform(audio.samples.data(), audio.samples.size(), audio.sample_rate);
    s->input_finished();
    streams[i] = std::move(s);
    ++open;
  }
  for (reap(files.size()); open > 0; reap(files.size())) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const auto t2 = std::chrono::steady_clock::now();
  return write_results(results, output, format, seconds(t1, t2), seconds(t0, t1), cfg.describe());
}

struct ServeOptions {
  std::string model_dir;
  wenet_rt::RecognizerConfig offline;
  wenet_rt::StreamingConfig streaming;
  bool no_streaming = false;
  wenet_rt::RequestBatcherConfig batcher;
  wenet_rt::server::ServerConfig server;
};

bool trained_for_streaming(const wenet_rt::ModelDir& m) {
  return m.config.encoder.use_dynamic_chunk || m.config.encoder.static_chunk_size > 0;
}

int run_serve(ServeOptions& o) {
  o.batcher.validate();
  o.server.validate();
  wenet_rt::ModelDir model = wenet_rt::load_model_dir(o.model_dir);
  // HTTP requests (and WebSocket streams of a model that cannot stream) share one batched engine.
  wenet_rt::OfflineEngine engine(model, o.offline);
  wenet_rt::RequestBatcher batcher(engine, o.batcher);
  // WebSocket streams of a model trained for streaming share one streaming engine: the ready chunks
  // of all connections go through the encoder together.
  std::unique_ptr<wenet_rt::StreamingEngine> streaming;
  if (trained_for_streaming(model) && !o.no_streaming) {
    wenet_rt::StreamingConfig& s = o.streaming;
    s.device = o.offline.device;
    s.precision = o.offline.precision;
    s.mode = o.offline.mode;
    s.beam = o.offline.beam;
    s.ctc_weight = o.offline.ctc_weight;
    s.rescoring_weight = o.offline.rescoring_weight;
    s.reverse_weight = o.offline.reverse_weight;
    s.threads = o.offline.threads;
    s.validate();
    streaming = std::make_unique<wenet_rt::StreamingEngine>(std::move(model), s);
  }
  wenet_rt::server::ServerBackends backends;
  backends.batcher = &batcher;
  backends.sample_rate = engine.sample_rate();
  backends.model = o.model_dir;
  std::string ws_setup;
  if (streaming) {
    wenet_rt::StreamingEngine* se = streaming.get();
    backends.create_stream = [se](const wenet_rt::StreamOptions& opts) { return se->create_stream(opts); };
    backends.streaming_stats = [se] { return se->stats(); };
    backends.max_streams = se->config().max_streams;
    ws_setup = "WebSocket: " + se->config().describe();
  } else {
    // WeNet's runtime serves a full-context model over the same protocol: one final result per stream.
    backends.create_stream = [&batcher](const wenet_rt::StreamOptions& opts) {
      return wenet_rt::make_offline_stream(batcher, opts);
    };
    ws_setup = "WebSocket: whole utterances through the offline batcher (the model is not trained for streaming)";
  }
  wenet_rt::server::Server server(o.server, backends);
  return server.run([&](int port) {
    fmt::print(stderr, "wenet-rt serve: listening on http://{}:{}/ (WebSocket ws://{}:{}/) [{}] [{}] [HTTP: {}] [{}]\n",
               o.server.address, port, o.server.address, port, ws_setup, o.offline.describe(), o.batcher.describe(),
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
  tr->add_option("--precision", cfg.precision, "fp16 | fp32 (cuda) | int8 (cpu: dynamic INT8 linear layers)")
      ->check(CLI::IsMember({"fp16", "fp32", "int8"}))
      ->capture_default_str();
  tr->add_option("--threads", cfg.threads, "CPU threads (0 = all cores)")->capture_default_str();
  bool streaming = false, partial = false;
  wenet_rt::StreamingConfig scfg;
  tr->add_flag("--streaming", streaming,
               "decode chunk by chunk as a streaming client would (U2 / U2++ models); each file is one stream "
               "with continuous decoding, its final results joined");
  tr->add_option("--chunk-size", scfg.chunk_size, "--streaming: encoder frames per chunk (16 = 640 ms)")
      ->capture_default_str();
  tr->add_option("--left-chunks", scfg.num_left_chunks, "--streaming: chunks of attention history (-1 = all)")
      ->capture_default_str();
  tr->add_flag("--partial", partial, "--streaming: print partial and final results to stderr as they come");
  tr->add_option("--max-streams", scfg.max_streams, "--streaming: files decoded at once (0 = by device)")
      ->capture_default_str();

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
  serve->add_option("--chunk-size", serve_opts.streaming.chunk_size, "WebSocket streaming: encoder frames per chunk (16 = 640 ms)")
      ->capture_default_str();
  serve->add_option("--left-chunks", serve_opts.streaming.num_left_chunks, "WebSocket streaming: chunks of attention history (-1 = all)")
      ->capture_default_str();
  serve->add_option("--max-streams", serve_opts.streaming.max_streams,
                    "WebSocket streaming: streams open at once (0 = the engine's default for the device); beyond: failed 'server busy'")
      ->capture_default_str();
  serve->add_flag("--no-streaming", serve_opts.no_streaming,
                  "WebSocket: recognize each stream as one utterance through the offline batcher even for a streaming model");
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
      const auto files = input_files(audio, wav_scp);
      if (!streaming) return run_transcribe(model_dir, files, output, format, cfg);
      scfg.device = cfg.device;
      scfg.precision = cfg.precision;
      scfg.mode = cfg.mode;
      scfg.beam = cfg.beam;
      scfg.ctc_weight = cfg.ctc_weight;
      scfg.rescoring_weight = cfg.rescoring_weight;
      scfg.reverse_weight = cfg.reverse_weight;
      scfg.threads = cfg.threads;
      return run_transcribe_streaming(model_dir, files, output, format, scfg, partial);
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
