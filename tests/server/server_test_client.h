// Test helpers for the server tests: a blocking WeNet-protocol client and one-shot HTTP requests.
#pragma once

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <string>
#include <vector>

namespace wenet_rt::server::test_client {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using json = nlohmann::json;

class Client {
 public:
  explicit Client(int port) : ws_(ioc_) {
    tcp::resolver resolver(ioc_);
    beast::get_lowest_layer(ws_).connect(resolver.resolve("127.0.0.1", std::to_string(port)));
    ws_.handshake("127.0.0.1", "/");
  }
  void text(const std::string& s) {
    ws_.text(true);
    ws_.write(asio::buffer(s));
  }
  void binary(const std::string& bytes) {
    ws_.binary(true);
    ws_.write(asio::buffer(bytes));
  }
  void pcm(size_t samples, int16_t value = 1) {
    std::vector<int16_t> v(samples, value);
    binary(std::string(reinterpret_cast<const char*>(v.data()), v.size() * 2));
  }
  // The next message as JSON, or {"closed": code} when the server closed the connection.
  json read() {
    beast::flat_buffer b;
    beast::error_code ec;
    ws_.read(b, ec);
    if (ec) return {{"closed", int(ws_.reason().code)}, {"error", ec.message()}};
    return json::parse(beast::buffers_to_string(b.data()));
  }
  // Reads until a message of `type` (or failed / closed); returns it.
  json read_until(const std::string& type, std::vector<json>* seen = nullptr) {
    for (;;) {
      json m = read();
      if (seen) seen->push_back(m);
      if (m.contains("closed") || m.value("status", "") == "failed" || m.value("type", "") == type) return m;
    }
  }
  void start(int nbest = 1, bool continuous = false) {
    text(json{{"signal", "start"}, {"nbest", nbest}, {"continuous_decoding", continuous}}.dump());
    EXPECT_EQ(read().value("type", ""), "server_ready");
  }
  websocket::stream<beast::tcp_stream>& ws() { return ws_; }

 private:
  asio::io_context ioc_;
  websocket::stream<beast::tcp_stream> ws_;
};

inline http::response<http::string_body> http_request(int port, http::verb verb, const std::string& target,
                                               const std::string& body = "", const std::string& type = "") {
  asio::io_context ioc;
  beast::tcp_stream s(ioc);
  tcp::resolver resolver(ioc);
  s.connect(resolver.resolve("127.0.0.1", std::to_string(port)));
  http::request<http::string_body> req{verb, target, 11};
  req.set(http::field::host, "127.0.0.1");
  if (!type.empty()) req.set(http::field::content_type, type);
  req.body() = body;
  req.prepare_payload();
  http::write(s, req);
  beast::flat_buffer b;
  http::response<http::string_body> res;
  beast::error_code ec;
  http::read(s, b, res, ec);
  return res;
}

inline void expect_failed(const json& m, const std::string& words) {
  EXPECT_EQ(m.value("status", ""), "failed") << m.dump();
  EXPECT_NE(m.value("message", "").find(words), std::string::npos) << m.dump();
}

}  // namespace wenet_rt::server::test_client
