// `wenet-rt bench --streams N[,N...]`: streaming recognition as a server sees it. N simulated
// clients, each sending real speech (distinct files, one stream per file, the next file on a new
// stream) at real-time pace in 640 ms pieces, starting at staggered times; every partial result is
// timed from the moment the client had sent the last sample its chunk needed, every final result
// from the end of its file. One StreamingRecognizer serves all clients, as in a server.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>

#include "frontend/audio.h"
#include "model/config.h"
#include "model/model_dir.h"
#include "model/random_model.h"
#include "tools/bench.h"
#include "engine/streaming_engine.h"
#include "wenet_rt/streaming.h"

namespace wenet_rt {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

}  // namespace

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, size_t(p / 100.0 * double(v.size())))];
}

namespace {

// Audio needed before the chunk ending at encoder frame `frames` (counted from the stream's start)
// can be decoded: its window's last fbank frame.
struct ChunkMath {
  int chunk = 16, rate = 4, right_context = 6, shift = 160, length = 400;
  int64_t samples_needed(int64_t frames) const {
    const int64_t chunks = (frames + chunk - 1) / chunk;
    const int64_t window_end = (chunks - 1) * rate * chunk + (chunk - 1) * rate + right_context + 1;
    return (window_end - 1) * shift + length;
  }
};

struct Client {
  // The file being sent.
  const std::vector<float>* pcm = nullptr;
  size_t sent = 0;
  std::shared_ptr<Stream> stream;
  Clock::time_point next, finished_at;
  std::vector<std::pair<int64_t, Clock::time_point>> sends;  // samples sent so far, when
  bool waiting_final = false;
  size_t file = 0;
};

struct Latencies {
  std::mutex mu;
  std::vector<double> chunk_ms, final_ms;
  size_t finals = 0, errors = 0;
};

struct StreamsRun {
  int streams = 0;
  double seconds = 0, audio_s = 0;
  std::vector<double> chunk_ms, final_ms;
  size_t finals = 0, errors = 0;
  StreamingStats stats;
};

StreamsRun run_clients(StreamingEngine& rec, const std::vector<std::vector<float>>& audio, int n, double seconds,
                       const ChunkMath& math, int rate) {
  const StreamingStats before = rec.stats();
  Latencies lat;
  const size_t piece = size_t(rate) * 640 / 1000;
  const int threads = int(std::clamp(std::thread::hardware_concurrency() / 2, 1u, 8u));
  std::vector<Client> clients(static_cast<size_t>(n));
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> stagger(0, 640);
  const Clock::time_point t0 = Clock::now() + std::chrono::milliseconds(100), stop_sending = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  for (int i = 0; i < n; ++i) {
    clients[size_t(i)].file = size_t(i) % audio.size();
    clients[size_t(i)].next = t0 + std::chrono::microseconds(int64_t(stagger(rng) * 1000));
  }
  std::atomic<double> audio_sent{0};

  auto open = [&](Client& c) {
    c.pcm = &audio[c.file];
    c.file = (c.file + 1) % audio.size();
    c.sent = 0;
    {
      std::lock_guard<std::mutex> lock(lat.mu);
      c.sends.clear();
    }
    c.waiting_final = false;
    StreamOptions so;
    so.continuous_decoding = true;
    c.stream = rec.create_stream(so);
    Client* cp = &c;
    c.stream->set_callback([&lat, cp, &math](const StreamResult& r) {
      const auto now = Clock::now();
      std::lock_guard<std::mutex> lock(lat.mu);
      if (r.is_final) return;  // finals are timed from the end of the file, when the stream is done
      // The partial covers the stream up to r.end_ms: when did the client have that chunk's audio?
      const int64_t frames = r.end_ms / (math.rate * 10);
      const int64_t need = math.samples_needed(frames);
      auto it = std::lower_bound(cp->sends.begin(), cp->sends.end(), need,
                                 [](const auto& s, int64_t v) { return s.first < v; });
      if (it != cp->sends.end()) lat.chunk_ms.push_back(ms_between(it->second, now));
    });
  };

  auto drive = [&](int t) {
    for (;;) {
      Clock::time_point due = Clock::time_point::max();
      bool active = false;
      for (size_t i = size_t(t); i < clients.size(); i += size_t(threads)) {
        Client& c = clients[i];
        const auto now = Clock::now();
        if (c.waiting_final) {
          if (c.stream->done()) {
            std::lock_guard<std::mutex> lock(lat.mu);
            lat.final_ms.push_back(ms_between(c.finished_at, now));
            ++lat.finals;
            if (!c.stream->error().empty()) ++lat.errors;
            c.stream.reset();
            c.waiting_final = false;
            c.next = now;
          } else {
            active = true;
            due = std::min(due, now + std::chrono::microseconds(500));
            continue;
          }
        }
        if (!c.stream) {
          if (now >= stop_sending) continue;
          if (now < c.next) {
            active = true;
            due = std::min(due, c.next);
            continue;
          }
          open(c);
        }
        active = true;
        if (now >= c.next) {
          const size_t len = std::min(piece, c.pcm->size() - c.sent);
          {
            std::lock_guard<std::mutex> lock(lat.mu);
            c.sends.emplace_back(int64_t(c.sent + len), now);
          }
          c.stream->accept_waveform(c.pcm->data() + c.sent, len, rate);
          c.sent += len;
          audio_sent.fetch_add(double(len) / rate);
          c.next += std::chrono::milliseconds(640);
          if (c.sent >= c.pcm->size()) {
            c.stream->input_finished();
            c.finished_at = Clock::now();
            c.waiting_final = true;
          }
        }
        due = std::min(due, c.next);
      }
      if (!active) return;
      std::this_thread::sleep_until(std::min(due, Clock::now() + std::chrono::milliseconds(5)));
    }
  };
  std::vector<std::thread> drivers;
  for (int t = 0; t < threads; ++t) drivers.emplace_back(drive, t);
  for (auto& d : drivers) d.join();

  StreamsRun r;
  r.streams = n;
  r.seconds = ms_between(t0, Clock::now()) / 1e3;
  r.audio_s = audio_sent.load();
  r.chunk_ms = std::move(lat.chunk_ms);
  r.final_ms = std::move(lat.final_ms);
  r.finals = lat.finals;
  r.errors = lat.errors;
  const StreamingStats after = rec.stats();
  r.stats = after;
  r.stats.chunks = after.chunks - before.chunks;
  r.stats.encoder_calls = after.encoder_calls - before.encoder_calls;
  r.stats.encoder_ms = after.encoder_ms - before.encoder_ms;
  return r;
}

}  // namespace

int run_bench_streams(const BenchOptions& o) {
  const std::vector<int> counts = parse_counts(o.streams, "--streams");
  const bool random = o.model_dir.empty();
  const std::string dir = (fs::temp_directory_path() / "wenet_rt_bench_streams").string();
  // Distinct files of 1-20 s cut from the examples (as --e2e), decoded once.
  const int rate = 16000;
  const std::vector<std::string> files =
      o.e2e.empty() ? make_bench_files(std::min(o.e2e_seconds, 1200.0), dir + "/audio", rate) : o.e2e;
  ModelDir model;
  if (random) {
    // The full-size model as a U2++ model (dynamic chunk training, causal conv): random weights,
    // CTC calibrated to a realistic token rate as for --e2e.
    const std::string yaml = full_size_u2pp_yaml();
    model = make_random_model(parse_config_text(yaml, "full-size U2++ model"), 0);
    calibrate_bench_ctc(model, files, o.token_rate, o.device, o.precision);
    if (!o.dump_model.empty()) dump_weights(model, yaml, o.dump_model);
  } else {
    model = load_model_dir(o.model_dir);
  }
  std::vector<std::vector<float>> audio;
  double total = 0;
  for (const auto& f : files) {
    audio.push_back(read_audio(f, rate).samples);
    total += double(audio.back().size()) / rate;
  }

  StreamingConfig cfg;
  cfg.device = o.device;
  cfg.precision = o.precision;
  cfg.chunk_size = o.chunk_size;
  cfg.num_left_chunks = o.left_chunks;
  cfg.max_streams = *std::max_element(counts.begin(), counts.end());
  ChunkMath math;
  math.chunk = cfg.chunk_size;
  math.rate = subsampling_rate(model.config.encoder.input_layer);
  math.right_context = subsampling_right_context(model.config.encoder.input_layer);
  StreamingEngine rec(std::move(model), cfg);

  fmt::print("wenet-rt bench --streams: {} on {} {}, chunk {} ({} ms), left chunks {}, {} distinct files ({:.0f} s, "
             "1-20 s each), 640 ms pieces at real-time pace, {:.0f} s per point\n",
             random ? "full-size U2++ conformer, random weights, calibrated blank" : o.model_dir, o.device,
             precision_label(o), cfg.chunk_size, cfg.chunk_size * math.rate * 10,
             cfg.num_left_chunks, files.size(), total, o.stream_seconds);
  fmt::print("{:>7} | {:>9} | {:>10} | {:>10} | {:>24} | {:>16} | {:>7} | {}\n", "streams", "chunks/s",
             "enc calls/s", "mean batch", "chunk latency p50/95/99", "final p50/p99", "errors", "real time");
  nlohmann::json points = nlohmann::json::array();
  int largest_ok = 0;
  // A short warm-up so that first-use costs (caches, GEMM plans) stay out of the first point.
  run_clients(rec, audio, std::min(counts.front(), 8), 2.0, math, rate);
  for (int n : counts) {
    const StreamsRun r = run_clients(rec, audio, n, o.stream_seconds, math, rate);
    const double p50 = percentile(r.chunk_ms, 50), p95 = percentile(r.chunk_ms, 95), p99 = percentile(r.chunk_ms, 99);
    // Real time: the p99 chunk latency stays under one chunk (640 ms): the engine keeps up.
    const bool ok = !r.chunk_ms.empty() && p99 < cfg.chunk_size * math.rate * 10 && r.errors == 0;
    if (ok) largest_ok = std::max(largest_ok, n);
    const double batch = r.stats.encoder_calls ? double(r.stats.chunks) / double(r.stats.encoder_calls) : 0;
    fmt::print("{:>7} | {:>9.0f} | {:>10.1f} | {:>10.1f} | {:>7.1f} / {:>6.1f} / {:>6.1f} | {:>7.1f} / {:>6.1f} | {:>7} | {}\n",
               n, double(r.stats.chunks) / r.seconds, double(r.stats.encoder_calls) / r.seconds, batch, p50, p95,
               p99, percentile(r.final_ms, 50), percentile(r.final_ms, 99), r.errors, ok ? "yes" : "NO");
    points.push_back({{"streams", n}, {"chunk_ms_p50", p50}, {"chunk_ms_p95", p95}, {"chunk_ms_p99", p99},
                      {"final_ms_p50", percentile(r.final_ms, 50)}, {"final_ms_p99", percentile(r.final_ms, 99)},
                      {"chunks", r.stats.chunks}, {"encoder_calls", r.stats.encoder_calls}, {"mean_batch", batch},
                      {"max_batch", r.stats.max_batch_seen}, {"encoder_ms", r.stats.encoder_ms},
                      {"finals", r.finals}, {"errors", r.errors}, {"seconds", r.seconds}, {"audio_s", r.audio_s}});
  }
  fmt::print("largest N measured that stays real time: {}\n", largest_ok);
  if (!o.json_out.empty()) std::ofstream(o.json_out) << nlohmann::json{{"points", points}}.dump(1);
  return 0;
}

}  // namespace wenet_rt
