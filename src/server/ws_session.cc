// A WebSocket connection speaking WeNet's runtime protocol: start -> server_ready, binary PCM ->
// the stream, results (posted from engine threads onto this connection's strand) -> partial /
// final messages, end -> the last final result -> speech_end -> close. Any protocol error is a
// `failed` message naming it, then a close; the stream is abandoned (its engine slot freed) the
// moment the connection fails or vanishes.
#include <fmt/format.h>

#include <cstring>

#include "core/error.h"
#include "server/protocol.h"
#include "server/session.h"

namespace wenet_rt::server {
namespace {

std::chrono::milliseconds ms(double seconds) { return std::chrono::milliseconds(int64_t(seconds * 1000)); }

class WsSession : public SessionBase, public std::enable_shared_from_this<WsSession> {
 public:
  WsSession(std::shared_ptr<Server::Impl> server, beast::tcp_stream stream, ConnectionSlot slot)
      : server_(std::move(server)),
        ws_(std::move(stream)),
        slot_(std::move(slot)),
        idle_timer_(ws_.get_executor()),
        write_timer_(ws_.get_executor()),
        done_timer_(ws_.get_executor()) {}
  ~WsSession() override {
    abandon_stream();
    server_->remove_session(this);
  }

  void start(http::request<http::string_body> upgrade) {
    server_->add_session(shared_from_this());
    const ServerConfig& c = server_->config;
    websocket::stream_base::timeout t{};
    t.handshake_timeout = ms(c.request_timeout_s);
    t.idle_timeout = websocket::stream_base::none();
    t.keep_alive_pings = false;
    ws_.set_option(t);
    ws_.read_message_max(c.max_message_bytes);
    ws_.set_option(websocket::stream_base::decorator(
        [](websocket::response_type& res) { res.set(http::field::server, "wenet-rt"); }));
    ws_.async_accept(upgrade, beast::bind_front_handler(&WsSession::on_accept, shared_from_this()));
  }

  asio::any_io_executor executor() override { return ws_.get_executor(); }

  void on_drain() override {
    // A connection that has not started a stream goes now; streams in flight run to their end.
    // (Still in the handshake: on_accept sees `draining`.)
    if (accepted_ && state_ == State::kWaitStart) fail("the server is shutting down");
  }
  void on_terminate() override {
    abandon_stream();
    state_ = State::kClosed;
    idle_timer_.cancel();
    write_timer_.cancel();
    done_timer_.cancel();
    beast::get_lowest_layer(ws_).close();
  }

 private:
  enum class State { kWaitStart, kStreaming, kEnding, kClosed };

  void on_accept(beast::error_code ec) {
    if (ec) return;  // a bad handshake: nothing to answer on
    accepted_ = true;
    if (server_->draining) return fail("the server is shutting down");
    arm_idle_timer();
    do_read();
  }

  // ---- reading ----

  void do_read() {
    if (reading_ || state_ == State::kClosed) return;
    if (queued_bytes_ > server_->config.max_send_queue_bytes / 2) {
      read_paused_ = true;  // backpressure: a client that does not read gets no more audio taken
      return;
    }
    reading_ = true;
    ws_.async_read(buffer_, beast::bind_front_handler(&WsSession::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, size_t) {
    reading_ = false;
    if (ec) {
      // Gone (closed, reset, timed out) or told off (message too big: Beast closes with 1009).
      if (ec == websocket::error::message_too_big) ++server_->metrics.errors;
      abandon_stream();
      state_ = State::kClosed;
      idle_timer_.cancel();
      done_timer_.cancel();
      return;
    }
    if (state_ == State::kClosed) return;
    arm_idle_timer();
    if (ws_.got_text()) {
      on_text(beast::buffers_to_string(buffer_.data()));
    } else {
      on_binary();
    }
    buffer_.consume(buffer_.size());
    do_read();
  }

  void on_text(const std::string& text) {
    const auto message = parse_client_message(text);
    if (const auto* e = std::get_if<ProtocolError>(&message)) return fail(e->message);
    if (const auto* start = std::get_if<StartSignal>(&message)) {
      if (state_ != State::kWaitStart) return fail("wrong signal order: a second start signal in one connection");
      if (!server_->backends.create_stream) return fail("streaming recognition is not available on this server");
      if (server_->draining) return fail("the server is shutting down");
      if (engine_full()) return refuse();
      try {
        stream_ = server_->backends.create_stream(start->options);
      } catch (const std::exception& e) {
        if (engine_full()) return refuse();
        return fail(fmt::format("cannot start a stream: {}", e.what()));
      }
      options_ = start->options;
      std::weak_ptr<WsSession> weak = shared_from_this();
      auto executor = ws_.get_executor();
      stream_->set_callback([weak, executor](const StreamResult& r) {
        if (auto self = weak.lock()) asio::post(executor, [self, r] { self->on_result(r); });
      });
      state_ = State::kStreaming;
      counted_ = true;
      ++server_->metrics.active_streams;
      ++server_->metrics.streams_total;
      send(server_ready_message());
      return;
    }
    // end
    if (state_ == State::kWaitStart) return fail("wrong signal order: end signal before the start signal");
    if (state_ == State::kEnding) return fail("wrong signal order: a second end signal");
    state_ = State::kEnding;
    idle_timer_.cancel();
    try {
      stream_->input_finished();
    } catch (const std::exception& e) {
      return fail(e.what());
    }
    watch_done();
  }

  bool engine_full() const {
    const ServerBackends& b = server_->backends;
    return b.max_streams > 0 && b.streaming_stats && b.streaming_stats().active_streams >= b.max_streams;
  }
  void refuse() {
    ++server_->metrics.streams_refused;
    fail(fmt::format("server busy: all {} streams are in use; try again later", server_->backends.max_streams),
         /*count_error=*/false);
  }

  void on_binary() {
    const size_t bytes = buffer_.size();
    if (state_ == State::kWaitStart) return fail("Start signal is expected before binary data");
    if (state_ == State::kEnding) return fail("binary data after the end signal");
    if (bytes % 2) return fail(fmt::format("odd-length PCM message: {} bytes; expected 16-bit little-endian samples", bytes));
    const int rate = server_->backends.sample_rate;
    samples_ += bytes / 2;
    if (double(samples_) > server_->config.max_stream_seconds * rate)
      return fail(fmt::format("audio limit: more than {:g} s of audio in one connection", server_->config.max_stream_seconds));
    if (const std::string error = stream_->error(); !error.empty()) return fail(fmt::format("recognition failed: {}", error));
    if (bytes == 0 || stream_->done()) return;  // WeNet's runtime also ignores audio after the stream ended
    pcm_.resize(bytes / 2);
    const auto data = buffer_.data();
    std::memcpy(pcm_.data(), data.data(), bytes);  // flat_buffer: one contiguous block
    arrivals_.emplace_back(samples_, Clock::now());
    server_->metrics.audio_bytes_streamed += bytes;
    try {
      stream_->accept_waveform(pcm_.data(), pcm_.size(), rate);
    } catch (const std::exception& e) {
      return fail(e.what());
    }
  }

  // ---- results ----

  void on_result(const StreamResult& r) {
    if (state_ == State::kClosed || !stream_) return;
    if (!r.is_final && (r.nbest.empty() || r.nbest[0].text.empty())) return;  // WeNet sends partials once something was decoded
    observe_latency(r);
    send(result_message(r, options_.nbest), /*partial=*/!r.is_final);
    if (r.is_final) {
      ++server_->metrics.final_results;
      // The stream's last result (end of input, or without continuous decoding the first endpoint,
      // as WeNet's runtime) is followed by speech_end.
      if (r.last || !options_.continuous_decoding) finish();
    } else {
      ++server_->metrics.partial_results;
    }
  }

  void observe_latency(const StreamResult& r) {
    const int rate = server_->backends.sample_rate;
    const uint64_t covered = r.end_ms > 0 ? uint64_t(r.end_ms) * uint64_t(rate) / 1000 : samples_;
    std::optional<Clock::time_point> last;
    while (!arrivals_.empty() && (arrivals_.front().first <= covered || r.is_final)) {
      last = arrivals_.front().second;
      arrivals_.pop_front();
    }
    if (last) server_->metrics.chunk_latency_ms.observe(std::chrono::duration<double, std::milli>(Clock::now() - *last).count());
  }

  // After `end`: speech_end follows the last result (on_result); this only watches for the engine
  // giving up on the stream (an error ends it without a last result).
  void watch_done() {
    done_timer_.expires_after(std::chrono::milliseconds(100));
    done_timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec || self->state_ == State::kClosed || !self->stream_) return;
      if (const std::string error = self->stream_->error(); !error.empty())
        return self->fail(fmt::format("recognition failed: {}", error));
      self->watch_done();
    });
  }

  void finish() {
    if (state_ == State::kClosed) return;
    send(speech_end_message());
    abandon_stream();
    state_ = State::kClosed;
    close_after_write_ = true;
    idle_timer_.cancel();
    done_timer_.cancel();
    if (!writing_) do_close();
  }

  void fail(const std::string& why, bool count_error = true) {
    if (state_ == State::kClosed) return;
    if (count_error) ++server_->metrics.errors;
    send(failed_message(why));
    abandon_stream();
    state_ = State::kClosed;
    close_after_write_ = true;
    idle_timer_.cancel();
    done_timer_.cancel();
    if (!writing_) do_close();
  }

  void abandon_stream() {
    if (stream_) {
      stream_->set_callback({});
      stream_.reset();
    }
    if (counted_) {
      counted_ = false;
      --server_->metrics.active_streams;
    }
  }

  // ---- writing ----

  struct Outgoing {
    std::string text;
    bool partial;
  };

  void send(std::string message, bool partial = false) {
    // A newer partial result replaces one still waiting (not the one being written).
    if (partial && queue_.size() > (writing_ ? 1u : 0u) && queue_.back().partial) {
      queued_bytes_ -= queue_.back().text.size();
      queue_.pop_back();
    }
    queued_bytes_ += message.size();
    queue_.push_back({std::move(message), partial});
    if (queued_bytes_ > server_->config.max_send_queue_bytes) {
      // Finals keep piling up for a client that does not read: it is dropped.
      ++server_->metrics.errors;
      return on_terminate();
    }
    if (!writing_) do_write();
  }

  void do_write() {
    if (queue_.empty()) return;
    writing_ = true;
    ws_.text(true);
    write_timer_.expires_after(ms(server_->config.write_timeout_s));
    write_timer_.async_wait([weak = weak_from_this()](beast::error_code ec) {
      if (ec) return;
      if (auto self = weak.lock()) {
        ++self->server_->metrics.errors;  // a client that does not read
        self->on_terminate();
      }
    });
    ws_.async_write(asio::buffer(queue_.front().text), beast::bind_front_handler(&WsSession::on_write, shared_from_this()));
  }

  void on_write(beast::error_code ec, size_t) {
    writing_ = false;
    write_timer_.cancel();
    if (ec) return on_terminate();
    queued_bytes_ -= queue_.front().text.size();
    queue_.pop_front();
    if (!queue_.empty()) return do_write();
    if (close_after_write_) return do_close();
    if (read_paused_) {
      read_paused_ = false;
      do_read();
    }
  }

  void do_close() {
    if (closing_) return;
    closing_ = true;
    ws_.async_close(websocket::close_code::normal, [self = shared_from_this()](beast::error_code) {});
  }

  void arm_idle_timer() {
    if (state_ == State::kEnding || state_ == State::kClosed) return;
    idle_timer_.expires_after(ms(server_->config.idle_timeout_s));
    idle_timer_.async_wait([weak = weak_from_this()](beast::error_code ec) {
      if (ec) return;
      if (auto self = weak.lock())
        self->fail(fmt::format("idle timeout: no message for {:g} s", self->server_->config.idle_timeout_s));
    });
  }

  std::shared_ptr<Server::Impl> server_;
  websocket::stream<beast::tcp_stream> ws_;
  ConnectionSlot slot_;
  asio::steady_timer idle_timer_, write_timer_, done_timer_;
  beast::flat_buffer buffer_;
  State state_ = State::kWaitStart;
  std::shared_ptr<Stream> stream_;
  StreamOptions options_;
  bool accepted_ = false, counted_ = false, reading_ = false, read_paused_ = false, writing_ = false, close_after_write_ = false,
       closing_ = false;
  uint64_t samples_ = 0;
  std::vector<int16_t> pcm_;
  std::deque<std::pair<uint64_t, Clock::time_point>> arrivals_;  // (samples so far, when they came)
  std::deque<Outgoing> queue_;
  size_t queued_bytes_ = 0;
};

}  // namespace

void start_websocket_session(std::shared_ptr<Server::Impl> server, beast::tcp_stream stream, ConnectionSlot slot,
                             http::request<http::string_body> upgrade) {
  std::make_shared<WsSession>(std::move(server), std::move(stream), std::move(slot))->start(std::move(upgrade));
}

}  // namespace wenet_rt::server
