// The server on loopback with a fake streaming engine (deterministic results: a partial per audio
// message naming the samples so far, a final at the end): WeNet's protocol round trip, every fault
// (a `failed` message naming it, the server going on for everyone else), limits, backpressure, a
// vanishing client freeing its slot, the connection limit, and draining at shutdown.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <atomic>
#include <thread>

#include "core/error.h"
#include "server/server.h"
#include "server_test_client.h"

namespace wenet_rt::server {
namespace {

using namespace test_client;

std::atomic<int> g_live_streams{0};

// Results straight from the calling thread: partial "n<samples>" per message (padded by
// `pad` characters), final "total<samples>" with one word piece at input_finished().
class FakeStream : public Stream {
 public:
  FakeStream(const StreamOptions& o, size_t pad) : options_(o), pad_(pad) { ++g_live_streams; }
  ~FakeStream() override { --g_live_streams; }
  void accept_waveform(const float*, size_t, int) override { fail("float input not used"); }
  void accept_waveform(const int16_t* s, size_t n, int rate) override {
    if (rate != 16000) fail("rate {}", rate);
    for (size_t i = 0; i < n; ++i) sum_ += s[i];
    samples_ += n;
    StreamResult r;
    r.nbest.push_back({"n" + std::to_string(samples_) + std::string(pad_, 'x'), {}, {}, 0});
    r.end_ms = int(samples_ / 16);
    emit(r);
  }
  void input_finished() override {
    StreamResult r;
    r.is_final = true;
    r.last = true;
    for (int i = 0; i < options_.nbest; ++i)
      r.nbest.push_back({"total" + std::to_string(samples_) + " sum" + std::to_string(sum_), {}, {{"t", 0, int(samples_ / 16)}}, 0});
    done_ = true;
    emit(r);
  }
  std::vector<StreamResult> poll() override { return {}; }
  std::vector<StreamResult> wait(double) override { return {}; }
  bool sync(double) override { return true; }  // results are emitted synchronously
  void set_callback(std::function<void(const StreamResult&)> cb) override { cb_ = std::move(cb); }
  std::string partial() const override { return ""; }
  bool done() const override { return done_; }
  std::string error() const override { return ""; }

 private:
  void emit(const StreamResult& r) {
    if (cb_) cb_(r);
  }
  StreamOptions options_;
  size_t pad_;
  std::function<void(const StreamResult&)> cb_;
  size_t samples_ = 0;
  long long sum_ = 0;
  std::atomic<bool> done_{false};
};

struct Fixture {
  explicit Fixture(ServerConfig c = {}, size_t pad = 0, int max_streams = 100) {
    c.address = "127.0.0.1";
    c.port = 0;
    ServerBackends b;
    b.create_stream = [pad, max_streams](const StreamOptions& o) -> std::shared_ptr<Stream> {
      if (g_live_streams >= max_streams) fail("{} streams are open, the most this server takes", max_streams);
      return std::make_shared<FakeStream>(o, pad);
    };
    server = std::make_unique<Server>(c, b);
    server->start();
  }
  std::unique_ptr<Server> server;
  int port() const { return server->port(); }
};

// The server answers a fresh client normally (after a fault elsewhere).
void expect_serving(int port) {
  Client c(port);
  c.start();
  c.pcm(160);
  c.text(R"({"signal":"end"})");
  std::vector<json> seen;
  const json fin = c.read_until("final_result", &seen);
  EXPECT_EQ(json::parse(fin.value("nbest", "[]"))[0].value("sentence", ""), "total160 sum160");
  EXPECT_EQ(c.read().value("type", ""), "speech_end");
}

TEST(Server, WeNetProtocolRoundTrip) {
  Fixture f;
  Client c(f.port());
  c.start(/*nbest=*/2);
  c.pcm(1600);
  const json p1 = c.read();
  EXPECT_EQ(p1.dump(), R"({"nbest":"[{\"sentence\":\"n1600\"}]","status":"ok","type":"partial_result"})");
  c.pcm(1600, 2);
  EXPECT_EQ(json::parse(c.read().value("nbest", ""))[0].value("sentence", ""), "n3200");
  c.text(R"({"signal":"end"})");
  const json fin = c.read();
  EXPECT_EQ(fin.value("type", ""), "final_result");
  const json nbest = json::parse(fin.value("nbest", ""));
  ASSERT_EQ(nbest.size(), 2u);
  EXPECT_EQ(nbest[0].value("sentence", ""), "total3200 sum4800");
  EXPECT_EQ(nbest[0].at("word_pieces")[0].dump(), R"({"end":200,"start":0,"word":"t"})");
  EXPECT_EQ(c.read().dump(), R"({"status":"ok","type":"speech_end"})");
  EXPECT_EQ(c.read().value("closed", -1), int(websocket::close_code::normal));
  const std::string metrics = f.server->metrics();
  EXPECT_NE(metrics.find("wenet_rt_final_results_total 1\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("wenet_rt_chunk_latency_ms_count 2\n"), std::string::npos) << metrics;
}

TEST(Server, ProtocolFaultsGetFailedMessagesAndTheServerGoesOn) {
  Fixture f;
  struct Case {
    std::function<void(Client&)> act;
    std::string words;
  };
  const std::vector<Case> cases = {
      {[](Client& c) { c.pcm(10); }, "Start signal is expected before binary data"},
      {[](Client& c) { c.text("{oops"); }, "bad JSON"},
      {[](Client& c) { c.text(R"({"signal":"end"})"); }, "wrong signal order: end signal before the start"},
      {[](Client& c) { c.text(R"({"signal":"start","nbest":"2"})"); }, "integer is expected for nbest"},
      {[](Client& c) { c.text(R"({"hello":1})"); }, "wrong message header"},
      {[](Client& c) { c.start(); c.text(R"({"signal":"start"})"); }, "a second start"},
      {[](Client& c) { c.start(); c.binary(std::string(3, 'x')); }, "odd-length PCM message: 3 bytes"},
  };
  for (const auto& tc : cases) {
    SCOPED_TRACE(tc.words);
    Client c(f.port());
    tc.act(c);
    expect_failed(c.read_until("never"), tc.words);
    EXPECT_EQ(c.read().value("closed", -1), int(websocket::close_code::normal));
  }
  expect_serving(f.port());
  for (int i = 0; i < 100 && g_live_streams > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(g_live_streams, 0);
}

TEST(Server, MessageAndAudioLimits) {
  ServerConfig c;
  c.max_message_bytes = 4096;
  c.max_stream_seconds = 0.5;  // 8000 samples
  Fixture f(c);
  {
    Client big(f.port());
    big.start();
    big.pcm(4096);  // 8192 bytes
    EXPECT_EQ(big.read_until("never").value("closed", -1), int(websocket::close_code::too_big));
  }
  {
    Client longer(f.port());
    longer.start();
    for (int i = 0; i < 6; ++i) longer.pcm(1600);
    expect_failed(longer.read_until("never"), "audio limit: more than 0.5 s");
  }
  expect_serving(f.port());
}

TEST(Server, EngineRefusalIsAFailedMessage) {
  Fixture f({}, 0, /*max_streams=*/1);
  Client a(f.port());
  a.start();
  Client b(f.port());
  b.text(R"({"signal":"start"})");
  expect_failed(b.read(), "cannot start a stream: 1 streams are open");
}

TEST(Server, IdleClientTimesOut) {
  ServerConfig c;
  c.idle_timeout_s = 0.3;
  Fixture f(c);
  Client a(f.port());
  a.start();
  a.pcm(160);
  const auto t0 = std::chrono::steady_clock::now();
  expect_failed(a.read_until("never"), "idle timeout");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  expect_serving(f.port());
}

TEST(Server, VanishingClientFreesItsSlot) {
  Fixture f({}, 0, /*max_streams=*/1);
  {
    Client a(f.port());
    a.start();
    a.pcm(1600);
    a.read();
    EXPECT_EQ(g_live_streams, 1);
    beast::get_lowest_layer(a.ws()).socket().close();  // gone without a close frame
  }
  for (int i = 0; i < 200 && g_live_streams > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(g_live_streams, 0);
  EXPECT_NE(f.server->metrics().find("wenet_rt_active_streams 0\n"), std::string::npos);
  expect_serving(f.port());  // the one slot is free again
}

TEST(Server, SlowReaderGetsCoalescedPartialsAndAnExactFinal) {
  ServerConfig c;
  c.max_send_queue_bytes = 64 * 1024;
  Fixture f(c, /*pad=*/16 * 1024);  // 16 KB partials: the socket buffers fill quickly
  Client a(f.port());
  a.start();
  const int messages = 600;  // ~10 MB of partials if none were dropped
  for (int i = 0; i < messages; ++i) a.pcm(160);
  a.text(R"({"signal":"end"})");
  std::vector<json> seen;
  const json fin = a.read_until("final_result", &seen);
  EXPECT_EQ(json::parse(fin.value("nbest", "[]"))[0].value("sentence", ""), "total96000 sum96000");
  EXPECT_LT(seen.size(), size_t(messages)) << "partials were not coalesced";
  EXPECT_EQ(a.read().value("type", ""), "speech_end");
}

TEST(Server, ConnectionLimitAnswers503) {
  ServerConfig c;
  c.max_connections = 2;
  Fixture f(c);
  auto a = std::make_unique<Client>(f.port());
  auto b = std::make_unique<Client>(f.port());
  const auto res = http_request(f.port(), http::verb::get, "/healthz");
  EXPECT_EQ(res.result_int(), 503);
  EXPECT_NE(res.body().find("server busy"), std::string::npos);
  EXPECT_THROW(Client{f.port()}, boost::system::system_error);  // the upgrade gets a 503
  a.reset();
  int status = 0;  // the closed connection's slot frees once the server saw it go
  for (int i = 0; i < 200 && (status = http_request(f.port(), http::verb::get, "/healthz").result_int()) != 200; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(status, 200);
  const std::string m = f.server->metrics();
  const size_t at = m.find("\nwenet_rt_connections_refused_total ");
  ASSERT_NE(at, std::string::npos);
  EXPECT_GE(std::stoi(m.substr(at + 36)), 2);  // and any polls above that met the limit
}

TEST(Server, HttpRoutesAndLimits) {
  ServerConfig c;
  c.max_request_bytes = 2048;
  Fixture f(c);  // no offline engine here: transcription answers 503
  EXPECT_EQ(http_request(f.port(), http::verb::get, "/").result_int(), 200);
  EXPECT_NE(http_request(f.port(), http::verb::get, "/").body().find("new WebSocket"), std::string::npos);
  EXPECT_EQ(http_request(f.port(), http::verb::get, "/nope").result_int(), 404);
  EXPECT_EQ(http_request(f.port(), http::verb::get, "/v1/transcribe").result_int(), 405);
  EXPECT_EQ(http_request(f.port(), http::verb::post, "/v1/transcribe", "RIFF").result_int(), 503);
  const auto big = http_request(f.port(), http::verb::post, "/v1/transcribe", std::string(4096, 'x'));
  EXPECT_EQ(big.result_int(), 413);
  EXPECT_NE(big.body().find("request body too large"), std::string::npos);
  const auto metrics = http_request(f.port(), http::verb::get, "/metrics");
  EXPECT_EQ(metrics.result_int(), 200);
  for (const char* name : {"wenet_rt_active_streams", "wenet_rt_http_requests_total", "wenet_rt_errors_total",
                           "wenet_rt_chunk_latency_ms_bucket", "wenet_rt_request_latency_ms_bucket",
                           "wenet_rt_offline_batch_size_bucket", "wenet_rt_audio_seconds_total"})
    EXPECT_NE(metrics.body().find(name), std::string::npos) << name;
}

// curl asks before sending bodies over 1 MB and waits a second for the answer when none comes.
TEST(Server, ExpectContinueIsAnsweredBeforeTheBody) {
  Fixture f;  // no offline engine: the request is answered 503 once its body is in
  asio::io_context ioc;
  beast::tcp_stream s(ioc);
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), uint16_t(f.port())));
  asio::write(s, asio::buffer(std::string(
                     "POST /v1/transcribe HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")));
  beast::flat_buffer buf;
  http::response<http::empty_body> go_on;
  bool answered = false;
  http::async_read(s, buf, go_on, [&](beast::error_code ec, size_t) { answered = !ec; });
  ioc.run_for(std::chrono::seconds(5));
  ASSERT_TRUE(answered) << "no interim answer within 5 s";
  EXPECT_EQ(go_on.result(), http::status::continue_);
  asio::write(s, asio::buffer(std::string("RIFF")));
  http::response<http::string_body> res;
  http::read(s, buf, res);
  EXPECT_EQ(res.result_int(), 503);
}

TEST(Server, SlowHttpClientIsDropped) {
  ServerConfig c;
  c.request_timeout_s = 0.3;
  Fixture f(c);
  asio::io_context ioc;
  tcp::socket s(ioc);
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), uint16_t(f.port())));
  asio::write(s, asio::buffer(std::string("GET /healthz HTTP/1.1\r\nHost: x\r\n")));  // and never the rest
  char buf[64];
  beast::error_code ec;
  const auto t0 = std::chrono::steady_clock::now();
  s.read_some(asio::buffer(buf), ec);
  EXPECT_TRUE(ec == asio::error::eof || ec == asio::error::connection_reset) << ec.message();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
}

TEST(Server, ShutdownDrainsStreamsInFlight) {
  Fixture f;
  Client a(f.port());
  a.start();
  a.pcm(1600);
  a.read();
  Client idle(f.port());  // connected, no stream: told to go
  f.server->shutdown();
  expect_failed(idle.read(), "shutting down");
  EXPECT_EQ(idle.read().value("closed", -1), int(websocket::close_code::normal));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_THROW(Client{f.port()}, boost::system::system_error);  // no longer accepting
  a.pcm(1600);
  a.text(R"({"signal":"end"})");
  const json fin = a.read_until("final_result");
  EXPECT_EQ(json::parse(fin.value("nbest", "[]"))[0].value("sentence", ""), "total3200 sum3200");
  EXPECT_EQ(a.read().value("type", ""), "speech_end");
  EXPECT_EQ(a.read().value("closed", -1), int(websocket::close_code::normal));
  const auto t0 = std::chrono::steady_clock::now();
  f.server->wait();  // returns once the last connection closed, well before the drain timeout
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));  // returns once the last connection closed
}

}  // namespace
}  // namespace wenet_rt::server
