// `wenet-rt serve`: one process, one engine, many connections (Boost.Beast / Asio on a few I/O
// threads). Nothing here recognizes speech: WebSocket streams go to the streaming engine (or, for
// a model that cannot stream, to the offline batcher as one utterance each), HTTP uploads go to
// the RequestBatcher; results come back on engine threads and are posted to the connection's
// strand, so no I/O thread ever waits for the engine.
//
//   GET  /                          a page: microphone -> WebSocket -> live text
//   GET  / (Upgrade: websocket)     WeNet's runtime protocol (server/protocol.h)
//   POST /v1/audio/transcriptions   OpenAI's transcription API (multipart `file`, response_format)
//   POST /v1/transcribe             raw WAV / FLAC body -> {"text","tokens","word_pieces",...}
//   GET  /healthz, GET /metrics     liveness; Prometheus text format
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "engine/request_batcher.h"
#include "wenet_rt/streaming.h"

namespace wenet_rt::server {

struct ServerConfig {
  std::string address = "0.0.0.0";
  int port = 10086;                        // 0: any free port (see Server::port())
  int threads = 2;                         // I/O threads
  int max_connections = 512;               // open connections; beyond: HTTP 503 (also to WebSocket upgrades)
  size_t max_message_bytes = 1 << 20;      // one WebSocket message; beyond: close 1009 (message too big)
  size_t max_request_bytes = 64 << 20;     // one HTTP request body; beyond: 413
  double max_stream_seconds = 3600;        // audio per WebSocket connection; beyond: failed
  double idle_timeout_s = 30;              // WebSocket: no message while the client owes audio or `end`
  double request_timeout_s = 60;           // HTTP: a whole request (headers + body) must arrive in this
  double write_timeout_s = 20;             // a client that does not take what is sent is dropped
  size_t max_send_queue_bytes = 1 << 20;   // results waiting for a slow reader (partials coalesce); beyond: dropped
  double drain_timeout_s = 30;             // SIGTERM: streams in flight get this long to finish

  void validate() const;  // throws wenet_rt::Error naming the field
  std::string describe() const;
};

// What the server serves with. Either path may be missing: its endpoints then answer 503.
struct ServerBackends {
  RequestBatcher* batcher = nullptr;  // HTTP transcriptions
  // WebSocket streams; throws wenet_rt::Error (sent to the client as `failed`) e.g. when full.
  std::function<std::shared_ptr<Stream>(const StreamOptions&)> create_stream;
  std::function<StreamingStats()> streaming_stats;  // for /metrics and the busy check; may be empty
  // Streams the engine holds at most (0: no limit known). A start signal beyond it is answered
  // `failed` with "server busy: ..." (the client may try again later), as is a create_stream() that
  // throws while the engine is full.
  int max_streams = 0;
  int sample_rate = 16000;
  std::string model;                  // a line for /healthz
};

class Server {
 public:
  Server(const ServerConfig& config, ServerBackends backends);
  ~Server();  // shutdown() without draining, then joins
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  void start();      // binds and listens, I/O threads running; throws wenet_rt::Error (e.g. port taken)
  int port() const;  // the bound port
  // Stops accepting; idle connections close, streams and requests in flight finish (up to
  // drain_timeout_s), then the I/O threads stop. Thread-safe; returns at once.
  void shutdown();
  void wait();       // until the I/O threads stopped
  // start(), then serve until SIGTERM / SIGINT, drain, stop; returns the exit status (0).
  int run(const std::function<void(int port)>& on_listening = {});

  std::string metrics() const;  // what GET /metrics answers

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace wenet_rt::server
