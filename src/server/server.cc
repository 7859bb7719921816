// The listener, the HTTP sessions (routing, the transcription endpoints, 503 at the connection
// limit) and the server's start / drain / stop. WebSocket sessions: ws_session.cc.
#include <fmt/format.h>

#include <csignal>

#include "core/error.h"
#include "server/http_api.h"
#include "server/page.h"
#include "server/session.h"

namespace wenet_rt::server {

void ServerConfig::validate() const {
  WENET_CHECK(port >= 0 && port <= 65535, "serve: expected --port 0..65535, got {}", port);
  WENET_CHECK(threads >= 1, "serve: expected --io-threads >= 1, got {}", threads);
  WENET_CHECK(max_connections >= 1, "serve: expected --max-connections >= 1, got {}", max_connections);
  WENET_CHECK(max_message_bytes >= 1024, "serve: expected --max-message-bytes >= 1024, got {}", max_message_bytes);
  WENET_CHECK(max_request_bytes >= 1024, "serve: expected --max-request-bytes >= 1024, got {}", max_request_bytes);
  WENET_CHECK(max_stream_seconds > 0, "serve: expected --max-stream-seconds > 0, got {}", max_stream_seconds);
  WENET_CHECK(idle_timeout_s > 0 && request_timeout_s > 0 && write_timeout_s > 0 && drain_timeout_s >= 0,
              "serve: expected positive timeouts, got idle {} request {} write {} drain {}", idle_timeout_s,
              request_timeout_s, write_timeout_s, drain_timeout_s);
  WENET_CHECK(max_send_queue_bytes >= 1024, "serve: expected --max-send-queue-bytes >= 1024, got {}",
              max_send_queue_bytes);
}

std::string ServerConfig::describe() const {
  return fmt::format(
      "{}:{}, {} I/O threads, <= {} connections, message <= {} B, request <= {} B, stream audio <= {:g} s, "
      "timeouts idle {:g} s / request {:g} s / write {:g} s, drain {:g} s",
      address, port, threads, max_connections, max_message_bytes, max_request_bytes, max_stream_seconds,
      idle_timeout_s, request_timeout_s, write_timeout_s, drain_timeout_s);
}

namespace {

std::chrono::milliseconds ms(double seconds) { return std::chrono::milliseconds(int64_t(seconds * 1000)); }

class HttpSession : public SessionBase, public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(std::shared_ptr<Server::Impl> server, tcp::socket socket, bool refuse)
      : server_(std::move(server)), stream_(std::move(socket)), refuse_(refuse) {}
  ~HttpSession() override { server_->remove_session(this); }

  void start() {
    if (!refuse_) slot_.emplace(server_->metrics);
    server_->add_session(shared_from_this());
    do_read();
  }
  asio::any_io_executor executor() override { return stream_.get_executor(); }
  void on_drain() override {
    if (!busy_) close();  // idle keep-alive connection (or still sending its request): go
    keep_alive_ = false;
  }
  void on_terminate() override { close(); }

 private:
  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
  }

  void do_read() {
    parser_.emplace();
    parser_->body_limit(server_->config.max_request_bytes);
    parser_->header_limit(64 * 1024);
    stream_.expires_after(ms(server_->config.request_timeout_s));
    read_start_ = Clock::now();
    http::async_read_header(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&HttpSession::on_header, shared_from_this()));
  }

  // Beast reads at most the buffer's free capacity (>= 512 bytes) per call: an upload read through a
  // header-sized buffer takes a system call and a trip through the strand per 512 bytes, which
  // capped the server at ~400 uploads of 350 KB per second. Room for the body (up to 1 MB) first.
  // A client that asked to be told to go on (curl does for bodies over 1 MB, else waiting a second)
  // is told so before its body is read.
  void on_header(beast::error_code ec, size_t) {
    if (ec) return on_read(ec, 0);
    if (const auto length = parser_->content_length(); length && *length > buffer_.capacity() - buffer_.size())
      buffer_.reserve(buffer_.size() + size_t(std::min<uint64_t>(*length, kMaxReadChunk)));
    if (beast::iequals(parser_->get()[http::field::expect], "100-continue") && !parser_->is_done()) {
      auto res = std::make_shared<http::response<http::empty_body>>(http::status::continue_, parser_->get().version());
      return http::async_write(stream_, *res, [self = shared_from_this(), res](beast::error_code ec, size_t) {
        if (ec) return self->close();
        self->read_body();
      });
    }
    read_body();
  }
  void read_body() {
    http::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&HttpSession::on_read, shared_from_this()));
  }
  static constexpr uint64_t kMaxReadChunk = 1 << 20;

  void on_read(beast::error_code ec, size_t) {
    if (ec == http::error::end_of_stream || ec == asio::error::operation_aborted) return close();
    if (ec == beast::error::timeout) return;  // the stream closed itself: a slow or silent client
    if (ec == http::error::body_limit) {
      keep_alive_ = false;
      return reply(openai_error(413, fmt::format("request body too large: at most {} bytes",
                                                 server_->config.max_request_bytes)));
    }
    if (ec) {
      if (ec == http::error::partial_message || ec == asio::error::eof || ec == asio::error::connection_reset) return close();
      keep_alive_ = false;
      return reply(openai_error(400, fmt::format("bad HTTP request: {}", ec.message())));
    }
    ++server_->metrics.http_requests;
    server_->metrics.request_read_ms.observe(
        std::chrono::duration<double, std::milli>(Clock::now() - read_start_).count());
    busy_ = true;
    http::request<http::string_body> req = parser_->release();
    keep_alive_ = req.keep_alive() && !server_->draining;
    version_ = req.version();
    if (refuse_) {
      ++server_->metrics.connections_refused;
      keep_alive_ = false;
      return reply(openai_error(503, fmt::format("server busy: {} connections are open; retry later",
                                                 server_->config.max_connections), "server_error"));
    }
    if (websocket::is_upgrade(req)) {
      if (req.target() != "/" && req.target().substr(0, 2) != "/?") {
        keep_alive_ = false;
        return reply(openai_error(404, fmt::format("no WebSocket endpoint at '{}': use /", std::string(req.target()))));
      }
      if (server_->draining) {
        keep_alive_ = false;
        return reply(openai_error(503, "the server is shutting down", "server_error"));
      }
      stream_.expires_never();
      start_websocket_session(server_, std::move(stream_), std::move(*slot_), std::move(req));
      return;
    }
    route(std::move(req));
  }

  void route(http::request<http::string_body> req) {
    const std::string target(req.target());
    const std::string path = target.substr(0, target.find('?'));
    const auto method = req.method();
    if (path == "/" || path == "/index.html") {
      if (method != http::verb::get && method != http::verb::head) return reply(openai_error(405, "use GET"));
      return reply({200, "text/html; charset=utf-8", index_html()});
    }
    if (path == "/healthz") {
      if (server_->draining) return reply({503, "text/plain", "draining\n"});
      return reply({200, "text/plain", "ok\n"});
    }
    if (path == "/metrics") return reply({200, "text/plain; version=0.0.4", server_->render_metrics()});
    if (path == "/v1/audio/transcriptions" || path == "/v1/transcribe") {
      if (method != http::verb::post) return reply(openai_error(405, fmt::format("{} takes POST", path)));
      if (!server_->backends.batcher) return reply(openai_error(503, "offline recognition is not available", "server_error"));
      EngineInput request;
      std::string format;
      const bool openai = path == "/v1/audio/transcriptions";
      try {
        if (openai) {
          TranscriptionRequest t = parse_transcription_form(
              parse_multipart(std::string(req[http::field::content_type]), req.body()));
          request.key = t.filename;
          request.encoded = std::move(t.audio);
          format = t.response_format;
        } else {
          if (req.body().empty()) throw Error("empty body: POST the audio file (WAV, FLAC, ...) as the body");
          request.key = "request";
          request.encoded = std::move(req.body());
        }
      } catch (const std::exception& e) {
        return reply(openai_error(400, e.what()));
      }
      const auto start = Clock::now();
      auto self = shared_from_this();
      stream_.expires_never();  // the engine's time is not the client's
      server_->backends.batcher->submit(std::move(request), [self, start, format, openai](BatchOutcome out) {
        asio::post(self->stream_.get_executor(), [self, start, format, openai, out = std::move(out)] {
          self->on_transcribed(out, start, format, openai);
        });
      });
      return;
    }
    reply(openai_error(404, fmt::format("no endpoint at '{}'", path)));
  }

  void on_transcribed(const BatchOutcome& out, Clock::time_point start, const std::string& format, bool openai) {
    Metrics& m = server_->metrics;
    m.request_latency_ms.observe(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    m.request_queue_ms.observe(out.queue_ms);
    switch (out.status) {
      case BatchStatus::kOk:
        ++m.transcriptions;
        m.add_http_audio(out.result.duration_s);
        return reply(openai ? openai_transcription_reply(out.result, format) : transcribe_reply(out.result));
      case BatchStatus::kBadAudio: return reply(openai_error(400, out.result.error));
      case BatchStatus::kTooLong: return reply(openai_error(413, out.result.error));
      case BatchStatus::kOverloaded:
      case BatchStatus::kShuttingDown: return reply(openai_error(503, out.result.error, "server_error"));
      case BatchStatus::kEngineError: return reply(openai_error(500, out.result.error, "server_error"));
    }
  }

  void reply(HttpReply r) {
    if (r.status >= 400) ++server_->metrics.errors;
    auto res = std::make_shared<http::response<http::string_body>>(http::status(r.status), version_ ? version_ : 11);
    res->set(http::field::server, "wenet-rt");
    res->set(http::field::content_type, r.content_type);
    if (r.status == 503) res->set(http::field::retry_after, "1");
    res->keep_alive(keep_alive_ && !server_->draining);
    res->body() = std::move(r.body);
    res->prepare_payload();
    stream_.expires_after(ms(server_->config.write_timeout_s));
    http::async_write(stream_, *res, [self = shared_from_this(), res](beast::error_code ec, size_t) {
      self->busy_ = false;
      if (ec || !res->keep_alive()) return self->close();
      if (self->buffer_.capacity() > 16384) self->buffer_.shrink_to_fit();  // an idle connection keeps little
      self->do_read();
    });
  }

  std::shared_ptr<Server::Impl> server_;
  beast::tcp_stream stream_;
  const bool refuse_;
  std::optional<ConnectionSlot> slot_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  bool keep_alive_ = true, busy_ = false;
  unsigned version_ = 11;
  Clock::time_point read_start_;
};

}  // namespace

void Server::Impl::do_accept() {
  acceptor.async_accept(asio::make_strand(ioc), [self = shared_from_this()](beast::error_code ec, tcp::socket socket) {
    if (ec) {
      if (ec == asio::error::operation_aborted || !self->acceptor.is_open()) return;
      return self->do_accept();  // e.g. out of file descriptors: keep serving the others
    }
    if (self->draining) {
      beast::error_code ignored;
      socket.close(ignored);
      return;
    }
    const bool refuse = self->metrics.connections.load() >= self->config.max_connections;
    std::make_shared<HttpSession>(self, std::move(socket), refuse)->start();
    self->do_accept();
  });
}

void Server::Impl::begin_shutdown() {
  if (draining.exchange(true)) return;
  asio::post(acceptor.get_executor(), [self = shared_from_this()] {
    beast::error_code ec;
    self->acceptor.close(ec);
  });
  // The batcher keeps taking work: streams in flight (offline streams submit at their end) and
  // requests already read still need it; no new connection comes in to add more.
  for (auto& s : live_sessions()) asio::post(s->executor(), [s] { s->on_drain(); });
  auto timer = drain_timer = std::make_shared<asio::steady_timer>(ioc);
  check_drained(timer, Clock::now() + std::chrono::milliseconds(int64_t(config.drain_timeout_s * 1000)));
}

void Server::Impl::check_drained(std::shared_ptr<asio::steady_timer> timer, Clock::time_point deadline) {
  if (metrics.connections.load() <= 0 || Clock::now() >= deadline) {
    for (auto& s : live_sessions()) asio::post(s->executor(), [s] { s->on_terminate(); });
    stopped = true;
    ioc.stop();
    return;
  }
  timer->expires_after(std::chrono::milliseconds(20));
  timer->async_wait([self = shared_from_this(), timer, deadline](beast::error_code) { self->check_drained(timer, deadline); });
}

std::string Server::Impl::render_metrics() const {
  if (!backends.streaming_stats) return metrics.render(nullptr, backends.sample_rate, draining);
  const StreamingStats s = backends.streaming_stats();
  return metrics.render(&s, backends.sample_rate, draining);
}

Server::Server(const ServerConfig& config, ServerBackends backends)
    : impl_(std::make_shared<Impl>(config, std::move(backends))) {
  config.validate();
  if (impl_->backends.batcher) {
    Metrics* m = &impl_->metrics;
    impl_->backends.batcher->set_batch_observer([m](int n, double engine_ms) {
      m->offline_batch_size.observe(n);
      m->offline_batch_ms.observe(engine_ms);
    });
  }
}

Server::~Server() {
  if (!impl_->threads.empty() && !impl_->stopped) {
    impl_->draining = true;
    impl_->stopped = true;
    impl_->ioc.stop();
  }
  wait();
  // Sessions still open (a forced stop): drop them and their streams, then run what that aborted,
  // so that no handler is left holding a session (and through it the server) when the io_context goes.
  beast::error_code ec;
  impl_->acceptor.close(ec);
  if (impl_->drain_timer) impl_->drain_timer->cancel();
  for (auto& s : impl_->live_sessions()) s->on_terminate();
  impl_->ioc.restart();
  for (int i = 0; i < 1000 && impl_->ioc.poll() > 0; ++i) {
  }
  if (impl_->backends.batcher) impl_->backends.batcher->set_batch_observer({});
}

void Server::start() {
  Impl& s = *impl_;
  beast::error_code ec;
  const auto address = asio::ip::make_address(s.config.address, ec);
  if (ec) fail("serve: bad address '{}': {}", s.config.address, ec.message());
  const tcp::endpoint endpoint(address, uint16_t(s.config.port));
  s.acceptor.open(endpoint.protocol(), ec);
  if (!ec) s.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) s.acceptor.bind(endpoint, ec);
  if (!ec) s.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) fail("serve: cannot listen on {}:{}: {}", s.config.address, s.config.port, ec.message());
  s.bound_port = s.acceptor.local_endpoint().port();
  s.do_accept();
  for (int i = 0; i < s.config.threads; ++i) s.threads.emplace_back([&s] { s.ioc.run(); });
}

int Server::port() const { return impl_->bound_port; }

void Server::shutdown() {
  auto impl = impl_;
  asio::post(impl->ioc, [impl] { impl->begin_shutdown(); });
}

void Server::wait() {
  for (auto& t : impl_->threads)
    if (t.joinable()) t.join();
}

int Server::run(const std::function<void(int)>& on_listening) {
  asio::signal_set signals(impl_->ioc, SIGINT, SIGTERM);
  auto impl = impl_;
  signals.async_wait([impl](beast::error_code ec, int) {
    if (!ec) impl->begin_shutdown();
  });
  start();
  if (on_listening) on_listening(port());
  wait();
  return 0;
}

std::string Server::metrics() const { return impl_->render_metrics(); }

}  // namespace wenet_rt::server
