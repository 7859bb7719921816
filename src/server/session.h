// Internal to src/server: the Beast types, the server's shared state and the two session kinds.
// Only server.cc and ws_session.cc include it (Beast is slow to compile).
#pragma once

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <atomic>
#include <chrono>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "server/metrics.h"
#include "server/server.h"

namespace wenet_rt::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

// Every open connection, for draining at shutdown.
class SessionBase {
 public:
  virtual ~SessionBase() = default;
  virtual void on_drain() = 0;      // called on the session's strand
  virtual void on_terminate() = 0;  // forced stop: drop the connection and any stream
  virtual asio::any_io_executor executor() = 0;
};

struct Server::Impl : std::enable_shared_from_this<Server::Impl> {
  Impl(const ServerConfig& c, ServerBackends b) : config(c), backends(std::move(b)), ioc(c.threads), acceptor(ioc) {}

  ServerConfig config;
  ServerBackends backends;
  Metrics metrics;
  asio::io_context ioc;
  tcp::acceptor acceptor;
  std::vector<std::thread> threads;
  std::atomic<bool> draining{false}, stopped{false};
  int bound_port = 0;
  std::shared_ptr<asio::steady_timer> drain_timer;

  std::mutex sessions_mu;
  std::unordered_map<SessionBase*, std::weak_ptr<SessionBase>> sessions;
  void add_session(const std::shared_ptr<SessionBase>& s) {
    std::lock_guard<std::mutex> lock(sessions_mu);
    sessions[s.get()] = s;
  }
  void remove_session(SessionBase* s) {
    std::lock_guard<std::mutex> lock(sessions_mu);
    sessions.erase(s);
  }
  std::vector<std::shared_ptr<SessionBase>> live_sessions() {
    std::lock_guard<std::mutex> lock(sessions_mu);
    std::vector<std::shared_ptr<SessionBase>> out;
    for (auto& [p, w] : sessions)
      if (auto s = w.lock()) out.push_back(std::move(s));
    return out;
  }

  void do_accept();
  void begin_shutdown();
  void check_drained(std::shared_ptr<asio::steady_timer> timer, Clock::time_point deadline);
  std::string render_metrics() const;
};

// Counts an open connection for its lifetime.
class ConnectionSlot {
 public:
  explicit ConnectionSlot(Metrics& m) : m_(&m) { ++m_->connections; }
  ~ConnectionSlot() {
    if (m_) --m_->connections;
  }
  ConnectionSlot(ConnectionSlot&& o) noexcept : m_(o.m_) { o.m_ = nullptr; }
  ConnectionSlot(const ConnectionSlot&) = delete;
  ConnectionSlot& operator=(const ConnectionSlot&) = delete;

 private:
  Metrics* m_;
};

// A WebSocket connection speaking WeNet's protocol (ws_session.cc).
void start_websocket_session(std::shared_ptr<Server::Impl> server, beast::tcp_stream stream, ConnectionSlot slot,
                             http::request<http::string_body> upgrade);

}  // namespace wenet_rt::server
