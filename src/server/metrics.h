// Server metrics in Prometheus' text exposition format (GET /metrics): counters, gauges and
// histograms updated from any thread (atomics; histograms under a small lock).
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "wenet_rt/streaming.h"

namespace wenet_rt::server {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}
  void observe(double v);
  // name_bucket{le=...}, name_sum, name_count lines.
  void render(std::string& out, const std::string& name, const std::string& help) const;
  uint64_t count() const;

 private:
  const std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::vector<uint64_t> counts_;
  double sum_ = 0;
  uint64_t count_ = 0;
};

struct Metrics {
  std::atomic<int64_t> connections{0};        // open TCP connections (HTTP + WebSocket)
  std::atomic<int64_t> active_streams{0};     // WebSocket streams between start and speech_end
  std::atomic<uint64_t> connections_refused{0};
  std::atomic<uint64_t> streams_total{0};
  std::atomic<uint64_t> streams_refused{0};   // start signals answered "server busy"
  std::atomic<uint64_t> http_requests{0};     // all HTTP requests
  std::atomic<uint64_t> transcriptions{0};    // transcription requests answered with text
  std::atomic<uint64_t> errors{0};            // failed messages and HTTP 4xx/5xx answers
  std::atomic<uint64_t> partial_results{0}, final_results{0};
  std::atomic<uint64_t> audio_bytes_streamed{0};
  double http_audio_seconds() const { return http_audio_ms_.load() / 1e3; }
  void add_http_audio(double seconds) { http_audio_ms_ += uint64_t(seconds * 1e3); }

  // ms from a chunk's audio arriving to the result that covers it (partial or final)
  Histogram chunk_latency_ms{{5, 10, 25, 50, 100, 160, 250, 320, 500, 640, 1000, 2500, 5000}};
  // An HTTP transcription's time in the server, in parts: reading the request (from the moment the
  // connection waits for it), waiting for a batch, and the whole (body read -> answer ready).
  Histogram request_read_ms{{1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000}};
  Histogram request_queue_ms{{1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000}};
  Histogram request_latency_ms{{10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000}};
  Histogram offline_batch_size{{1, 2, 4, 8, 16, 32, 64, 128, 256}};
  Histogram offline_batch_ms{{5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000}};  // engine time per run

  // Everything above plus the streaming engine's own counters (null: streams go through the offline
  // batcher, their audio counted from the bytes received at `sample_rate`).
  std::string render(const StreamingStats* engine, int sample_rate, bool draining) const;

 private:
  std::atomic<uint64_t> http_audio_ms_{0};
};

}  // namespace wenet_rt::server
