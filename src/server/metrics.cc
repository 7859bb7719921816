#include "server/metrics.h"

#include <fmt/format.h>

#include <algorithm>

namespace wenet_rt::server {

void Histogram::observe(double v) {
  const size_t i = size_t(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  std::lock_guard<std::mutex> lock(mu_);
  ++counts_[i];
  sum_ += v;
  ++count_;
}

uint64_t Histogram::count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return count_;
}

void Histogram::render(std::string& out, const std::string& name, const std::string& help) const {
  std::lock_guard<std::mutex> lock(mu_);
  out += fmt::format("# HELP {} {}\n# TYPE {} histogram\n", name, help, name);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    out += fmt::format("{}_bucket{{le=\"{:g}\"}} {}\n", name, bounds_[i], cumulative);
  }
  out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n{}_sum {:g}\n{}_count {}\n", name, count_, name, sum_, name, count_);
}

namespace {
void metric(std::string& out, const char* type, const std::string& name, const std::string& help, double value) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n{} {:g}\n", name, help, name, type, name, value);
}
}  // namespace

std::string Metrics::render(const StreamingStats* engine, int sample_rate, bool draining) const {
  const StreamingStats e = engine ? *engine : StreamingStats{};
  const double streamed_audio_seconds =
      engine ? e.audio_seconds : double(audio_bytes_streamed.load()) / 2.0 / double(sample_rate > 0 ? sample_rate : 16000);
  std::string out;
  metric(out, "gauge", "wenet_rt_connections", "Open TCP connections (HTTP and WebSocket).", double(connections.load()));
  metric(out, "gauge", "wenet_rt_active_streams", "WebSocket recognition streams in progress.", double(active_streams.load()));
  metric(out, "gauge", "wenet_rt_engine_streams", "Streams open in the streaming engine (slots in use).",
         double(e.active_streams));
  metric(out, "gauge", "wenet_rt_draining", "1 while the server shuts down.", draining ? 1 : 0);
  metric(out, "counter", "wenet_rt_connections_refused_total", "Connections refused at the connection limit.",
         double(connections_refused.load()));
  metric(out, "counter", "wenet_rt_streams_total", "WebSocket recognition streams started.", double(streams_total.load()));
  metric(out, "counter", "wenet_rt_streams_refused_total", "Start signals answered 'server busy' (engine full).",
         double(streams_refused.load()));
  metric(out, "counter", "wenet_rt_http_requests_total", "HTTP requests.", double(http_requests.load()));
  metric(out, "counter", "wenet_rt_transcriptions_total", "HTTP transcriptions answered.", double(transcriptions.load()));
  metric(out, "counter", "wenet_rt_errors_total", "Failed messages and HTTP error answers.", double(errors.load()));
  metric(out, "counter", "wenet_rt_partial_results_total", "Partial results sent.", double(partial_results.load()));
  metric(out, "counter", "wenet_rt_final_results_total", "Final results sent.", double(final_results.load()));
  out += "# HELP wenet_rt_audio_seconds_total Seconds of audio processed.\n# TYPE wenet_rt_audio_seconds_total counter\n";
  out += fmt::format("wenet_rt_audio_seconds_total{{path=\"websocket\"}} {:g}\n", streamed_audio_seconds);
  out += fmt::format("wenet_rt_audio_seconds_total{{path=\"http\"}} {:g}\n", http_audio_seconds());
  metric(out, "counter", "wenet_rt_engine_streams_opened_total", "Streams opened in the streaming engine.",
         double(e.streams_opened));
  metric(out, "counter", "wenet_rt_engine_finals_total", "Final results of the streaming engine.", double(e.finals));
  metric(out, "counter", "wenet_rt_stream_chunks_total", "Streaming chunks encoded.", double(e.chunks));
  metric(out, "counter", "wenet_rt_stream_encoder_calls_total", "Batched streaming encoder calls.", double(e.encoder_calls));
  metric(out, "gauge", "wenet_rt_stream_mean_batch", "Chunks per streaming encoder call, mean so far.",
         e.encoder_calls ? double(e.chunks) / double(e.encoder_calls) : 0.0);
  metric(out, "gauge", "wenet_rt_stream_max_batch", "Largest streaming encoder batch so far.", double(e.max_batch_seen));
  metric(out, "counter", "wenet_rt_stream_encoder_seconds_total", "Time in streaming encoder calls (device time; wall on cpu).",
         e.encoder_ms / 1e3);
  chunk_latency_ms.render(out, "wenet_rt_chunk_latency_ms", "Audio received to the result covering it (ms).");
  request_read_ms.render(out, "wenet_rt_request_read_ms", "HTTP request: connection ready to request read (ms).");
  request_queue_ms.render(out, "wenet_rt_request_queue_ms", "HTTP transcription: waiting for its engine run (ms).");
  request_latency_ms.render(out, "wenet_rt_request_latency_ms",
                            "HTTP transcription: request read to answer ready (ms).");
  offline_batch_size.render(out, "wenet_rt_offline_batch_size", "Requests per batched offline engine run.");
  offline_batch_ms.render(out, "wenet_rt_offline_batch_ms", "Offline engine run time per batch (ms).");
  return out;
}

}  // namespace wenet_rt::server
