// N clients replaying real audio against `wenet-rt serve`: WebSocket clients at real-time pace
// (WeNet's protocol), or HTTP clients posting whole files; latency percentiles, errors, and a check
// that every final text equals the expected one (from --expect, or else the first result seen for
// that file: nothing lost, nothing mixed between connections).
#include "tools/loadtest.h"

#include <CLI/CLI.hpp>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <deque>
#include <optional>
#include <thread>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#include "core/error.h"
#include "decode/text.h"
#include "tools/bench.h"
#include "frontend/audio.h"

namespace wenet_rt {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

struct Utterance {
  std::string key, path, bytes;
  std::vector<int16_t> pcm;
};

struct Report {
  std::mutex mu;
  std::vector<double> partial_ms, final_ms, request_ms;
  std::map<std::string, std::string> reference;  // key -> expected (or first seen) text
  int completed = 0, errors = 0, mismatches = 0, refused = 0;
  double audio_s = 0;
  std::vector<std::string> messages;
  void error(const std::string& m) {
    std::lock_guard<std::mutex> lock(mu);
    ++errors;
    if (messages.size() < 20) messages.push_back(m);
  }
  void refusal() {
    std::lock_guard<std::mutex> lock(mu);
    ++refused;
  }
  void result(const std::string& key, const std::string& text, double audio) {
    std::lock_guard<std::mutex> lock(mu);
    ++completed;
    audio_s += audio;
    auto [it, fresh] = reference.emplace(key, text);
    if (!fresh && it->second != text) {
      ++mismatches;
      if (messages.size() < 20) messages.push_back(fmt::format("{}: expected '{}', got '{}'", key, it->second, text));
    }
  }
};

struct Target {
  std::string host, port;
};

Target parse_url(const std::string& url) {
  std::string rest = url;
  for (const char* scheme : {"ws://", "http://"})
    if (rest.rfind(scheme, 0) == 0) rest = rest.substr(std::strlen(scheme));
  rest = rest.substr(0, rest.find('/'));
  const size_t colon = rest.rfind(':');
  if (colon == std::string::npos) return {rest, "10086"};
  return {rest.substr(0, colon), rest.substr(colon + 1)};
}

// One WebSocket client: connects, replays utterances at `pace`, reads results; loops while time is left.
class WsClient : public std::enable_shared_from_this<WsClient> {
 public:
  WsClient(asio::io_context& ioc, const LoadtestOptions& o, const Target& t, const std::vector<Utterance>& utts,
           size_t first, Report& report, Clock::time_point deadline)
      : o_(o), target_(t), utts_(utts), next_(first), report_(report), deadline_(deadline),
        resolver_(asio::make_strand(ioc)), timer_(resolver_.get_executor()) {}

  void start() {
    if (rounds_ > 0 && (o_.duration <= 0 ? rounds_ >= 1 : Clock::now() >= deadline_)) return;
    if (!retrying_) utt_ = &utts_[next_++ % utts_.size()];
    retrying_ = false;
    ++rounds_;
    boundary_ = 0;
    end_sent_.reset();
    sent_ = 0;
    text_.clear();
    out_.clear();
    buffer_.consume(buffer_.size());
    ws_ = std::make_shared<websocket::stream<beast::tcp_stream>>(resolver_.get_executor());
    auto ws = ws_;
    resolver_.async_resolve(target_.host, target_.port, [self = shared_from_this(), ws](beast::error_code ec, tcp::resolver::results_type r) {
      if (ec) return self->failed("resolve: " + ec.message());
      beast::get_lowest_layer(*ws).async_connect(r, [self, ws](beast::error_code ec, tcp::endpoint) {
        if (ec) return self->failed("connect: " + ec.message());
        ws->async_handshake(self->target_.host + ":" + self->target_.port, "/", [self, ws](beast::error_code ec) {
          if (ec) return self->failed("handshake: " + ec.message());
          nlohmann::json start = {{"signal", "start"}, {"nbest", 1}, {"continuous_decoding", self->o_.continuous}};
          self->write(start.dump(), true);
          self->read();
        });
      });
    });
  }

 private:
  void failed(const std::string& what) {
    report_.error(fmt::format("{}: {}", utt_->key, what));
    done_round();
  }
  void done_round(double delay_s = 0) {
    beast::error_code ec;
    beast::get_lowest_layer(*ws_).socket().close(ec);
    timer_.cancel();
    if (delay_s <= 0) return asio::post(resolver_.get_executor(), [self = shared_from_this()] { self->start(); });
    auto retry = std::make_shared<asio::steady_timer>(resolver_.get_executor(), std::chrono::milliseconds(int64_t(delay_s * 1000)));
    retry->async_wait([self = shared_from_this(), retry](beast::error_code) { self->start(); });
  }

  // Told to wait: the same file again after retry_s (a refused round does not count when the run
  // has no duration).
  void refused() {
    report_.refusal();
    retrying_ = true;
    if (o_.duration <= 0) --rounds_;
    done_round(o_.retry_s);
  }

  // Samples a chunk's partial result needs: the subsampling window of chunk k, (C - 1) * 4 + 7
  // fbank frames from frame 4 * C * k (25 ms frames every 10 ms).
  size_t chunk_end_samples(size_t k) const {
    const size_t C = size_t(o_.chunk_size);
    return ((4 * C * k) + (C - 1) * 4 + 7 - 1) * 160 + 400;
  }

  // Writes are serialized through a queue (one in flight).
  void write(std::string data, bool text) {
    out_.push_back({std::move(data), text});
    if (out_.size() == 1) do_write();
  }
  void do_write() {
    ws_->text(out_.front().second);
    ws_->async_write(asio::buffer(out_.front().first), [self = shared_from_this(), ws = ws_](beast::error_code ec, size_t) {
      if (ws != self->ws_) return;  // an old round's write
      self->out_.pop_front();
      if (ec) return;
      if (!self->out_.empty()) self->do_write();
    });
  }

  void send_audio() {
    const size_t chunk = size_t(o_.chunk_ms * 16);  // samples at 16 kHz
    if (sent_ >= utt_->pcm.size()) {
      write(R"({"signal":"end"})", true);
      end_sent_ = Clock::now();
      return;
    }
    const size_t n = std::min(chunk, utt_->pcm.size() - sent_);
    write(std::string(reinterpret_cast<const char*>(utt_->pcm.data() + sent_), n * 2), false);
    sent_ += n;
    last_sent_ = Clock::now();
    // When the newest complete chunk's audio went out (the last one may be short: the end).
    while (chunk_end_samples(boundary_) <= sent_) {
      ++boundary_;
      chunk_sent_ = last_sent_;
    }
    timer_.expires_after(std::chrono::microseconds(int64_t(o_.chunk_ms * 1000 / o_.pace)));
    timer_.async_wait([self = shared_from_this(), ws = ws_](beast::error_code ec) {
      if (!ec && ws == self->ws_) self->send_audio();
    });
  }

  void read() {
    ws_->async_read(buffer_, [self = shared_from_this(), ws = ws_](beast::error_code ec, size_t) {
      if (ws != self->ws_) return;
      if (ec) return self->failed("read: " + ec.message());
      const std::string msg = beast::buffers_to_string(self->buffer_.data());
      self->buffer_.consume(self->buffer_.size());
      if (!self->on_message(msg)) return;
      self->read();
    });
  }

  bool on_message(const std::string& msg) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(msg);
    } catch (const std::exception& e) {
      failed("bad JSON from the server: " + msg);
      return false;
    }
    if (j.value("status", "") != "ok") {
      const std::string why = j.value("message", msg);
      if (why.rfind("server busy", 0) == 0) {
        refused();
      } else {
        failed("failed: " + why);
      }
      return false;
    }
    const std::string type = j.value("type", "");
    const auto now = Clock::now();
    const auto ms_since = [&](Clock::time_point t) { return std::chrono::duration<double, std::milli>(now - t).count(); };
    if (type == "server_ready") {
      send_audio();
    } else if (type == "partial_result") {
      // From the moment the newest complete chunk's audio was sent (a partial for an older chunk,
      // from a server running behind, is counted as if it were for the newest: the server-side
      // histogram, which knows each result's chunk, is the exact one).
      std::lock_guard<std::mutex> lock(report_.mu);
      report_.partial_ms.push_back(ms_since(boundary_ > 0 ? chunk_sent_ : last_sent_));
    } else if (type == "final_result") {
      const auto nbest = nlohmann::json::parse(j.at("nbest").get<std::string>());
      const std::string text = nbest.empty() ? "" : nbest[0].value("sentence", "");
      append_utterance_text(text_, text);  // as `transcribe --streaming` joins them
      // After `end`: from it; at an endpoint mid-stream: from the last audio sent.
      std::lock_guard<std::mutex> lock(report_.mu);
      report_.final_ms.push_back(ms_since(end_sent_ ? *end_sent_ : last_sent_));
    } else if (type == "speech_end") {
      report_.result(utt_->key, text_, double(utt_->pcm.size()) / 16000);
      done_round();
      return false;
    }
    return true;
  }

  const LoadtestOptions& o_;
  const Target target_;
  const std::vector<Utterance>& utts_;
  size_t next_;
  Report& report_;
  const Clock::time_point deadline_;
  tcp::resolver resolver_;
  std::shared_ptr<websocket::stream<beast::tcp_stream>> ws_;  // a fresh one per round; handlers hold theirs
  asio::steady_timer timer_;
  beast::flat_buffer buffer_;
  std::deque<std::pair<std::string, bool>> out_;
  const Utterance* utt_ = nullptr;
  size_t sent_ = 0;
  int rounds_ = 0;
  bool retrying_ = false;
  size_t boundary_ = 0;  // complete chunks sent
  Clock::time_point last_sent_ = Clock::now(), chunk_sent_ = Clock::now();
  std::optional<Clock::time_point> end_sent_;
  std::string text_;
};

// One HTTP client: POST /v1/transcribe with whole files, one after another, over one connection.
void http_client(const LoadtestOptions& o, const Target& t, const std::vector<Utterance>& utts, size_t first,
                 Report& report, Clock::time_point deadline) {
  asio::io_context ioc;
  std::optional<beast::tcp_stream> stream;
  for (size_t i = first, rounds = 0;; ++i, ++rounds) {
    if (o.duration <= 0 ? rounds >= 1 : Clock::now() >= deadline) break;
    const Utterance& u = utts[i % utts.size()];
    try {
      if (!stream) {
        stream.emplace(ioc);
        tcp::resolver resolver(ioc);
        stream->connect(resolver.resolve(t.host, t.port));
      }
      http::request<http::string_body> req{http::verb::post, "/v1/transcribe", 11};
      req.set(http::field::host, t.host);
      req.set(http::field::content_type, "audio/wav");
      req.body() = u.bytes;
      req.prepare_payload();
      const auto t0 = Clock::now();
      http::write(*stream, req);
      beast::flat_buffer buffer;
      http::response<http::string_body> res;
      http::read(*stream, buffer, res);
      const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      if (res.result_int() == 503) {  // overloaded: told to wait
        report.refusal();
        if (!res.keep_alive()) stream.reset();
        std::this_thread::sleep_for(std::chrono::milliseconds(int64_t(o.retry_s * 1000)));
        continue;
      }
      if (res.result_int() != 200) {
        report.error(fmt::format("{}: HTTP {}: {}", u.key, res.result_int(), res.body()));
        if (!res.keep_alive()) stream.reset();
        continue;
      }
      {
        std::lock_guard<std::mutex> lock(report.mu);
        report.request_ms.push_back(ms);
      }
      report.result(u.key, nlohmann::json::parse(res.body()).value("text", ""), double(u.pcm.size()) / 16000);
      if (!res.keep_alive()) stream.reset();
    } catch (const std::exception& e) {
      report.error(fmt::format("{}: {}", u.key, e.what()));
      stream.reset();
    }
  }
}

std::vector<Utterance> load_utterances(const std::string& wav_scp) {
  std::ifstream in(wav_scp);
  if (!in) fail("{}: cannot open wav.scp", wav_scp);
  std::vector<Utterance> out;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ss(line);
    Utterance u;
    if (!(ss >> u.key >> u.path) || u.key[0] == '#') continue;
    std::ifstream f(u.path, std::ios::binary);
    std::stringstream bytes;
    bytes << f.rdbuf();
    u.bytes = bytes.str();
    const Audio a = read_audio(u.path, 16000);
    for (float s : a.samples) u.pcm.push_back(int16_t(std::clamp(s * 32768.0f, -32768.0f, 32767.0f)));
    out.push_back(std::move(u));
  }
  if (out.empty()) fail("{}: no utterances", wav_scp);
  return out;
}

// The server's metrics (GET /metrics): value per series ('name' or 'name{labels}'); empty when
// they cannot be read.
using Scrape = std::map<std::string, double>;
Scrape scrape_metrics(const Target& t) {
  Scrape out;
  try {
    asio::io_context ioc;
    beast::tcp_stream stream(ioc);
    tcp::resolver resolver(ioc);
    stream.connect(resolver.resolve(t.host, t.port));
    http::request<http::empty_body> req{http::verb::get, "/metrics", 11};
    req.set(http::field::host, t.host);
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(stream, buffer, res);
    std::istringstream in(res.body());
    std::string line;
    while (std::getline(in, line)) {
      const size_t sp = line.rfind(' ');
      if (line.empty() || line[0] == '#' || sp == std::string::npos) continue;
      out[line.substr(0, sp)] = std::stod(line.substr(sp + 1));
    }
  } catch (const std::exception&) {
    out.clear();
  }
  return out;
}

double delta(const Scrape& before, const Scrape& after, const std::string& series) {
  const auto a = after.find(series), b = before.find(series);
  return (a == after.end() ? 0 : a->second) - (b == before.end() ? 0 : b->second);
}

// Percentile p of a histogram's observations between two scrapes: the upper bound of its bucket
// (-1 when there were none).
double bucket_percentile(const Scrape& before, const Scrape& after, const std::string& name, double p) {
  const std::string prefix = name + "_bucket{le=\"";
  std::vector<std::pair<double, double>> buckets;  // (upper bound, cumulative count)
  for (auto it = after.lower_bound(prefix); it != after.end() && it->first.rfind(prefix, 0) == 0; ++it) {
    const std::string le = it->first.substr(prefix.size(), it->first.size() - prefix.size() - 2);
    buckets.emplace_back(le == "+Inf" ? 1e30 : std::stod(le), delta(before, after, it->first));
  }
  std::sort(buckets.begin(), buckets.end());
  const double total = buckets.empty() ? 0 : buckets.back().second;
  if (total <= 0) return -1;
  for (const auto& [le, count] : buckets)
    if (count >= p / 100.0 * total) return le;
  return buckets.back().first;
}

// Mean of a histogram's observations between two scrapes (-1 when there were none).
double histogram_mean(const Scrape& before, const Scrape& after, const std::string& name) {
  const double n = delta(before, after, name + "_count");
  return n > 0 ? delta(before, after, name + "_sum") / n : -1;
}

}  // namespace

void add_loadtest_options(CLI::App& app, LoadtestOptions& o) {
  app.add_option("url", o.url, "server, ws://HOST:PORT")->required();
  app.add_option("--wav-scp", o.wav_scp, "Kaldi wav.scp: the audio to replay (16 kHz models)")->required();
  app.add_option("--expect", o.expect, "'key text' lines: the text every final result must equal");
  app.add_option("--streams", o.streams, "WebSocket clients at once")->capture_default_str();
  app.add_option("--http", o.http, "HTTP clients at once (POST /v1/transcribe) instead of WebSocket ones");
  app.add_option("--duration", o.duration, "seconds to keep going (0: every client replays one file)")->capture_default_str();
  app.add_option("--chunk-ms", o.chunk_ms, "audio per binary message")->capture_default_str();
  app.add_option("--pace", o.pace, "replay speed, 1 = real time")->capture_default_str();
  app.add_flag("--continuous,!--no-continuous", o.continuous,
               "continuous_decoding in the start signal (finals joined as `transcribe --streaming` joins them)")
      ->capture_default_str();
  app.add_option("--chunk-size", o.chunk_size, "the server's --chunk-size: partial latency counts from each chunk's last sample")
      ->capture_default_str();
  app.add_option("--retry", o.retry_s, "seconds a client told 'server busy' waits before trying again")->capture_default_str();
  app.add_option("--json", o.json, "also write the report as JSON here");
}

int run_loadtest(const LoadtestOptions& o) {
  const Target target = parse_url(o.url);
  const auto utts = load_utterances(o.wav_scp);
  Report report;
  if (!o.expect.empty()) {
    std::ifstream in(o.expect);
    if (!in) fail("{}: cannot open", o.expect);
    std::string line;
    while (std::getline(in, line)) {
      const size_t sp = line.find(' ');
      report.reference[line.substr(0, sp)] = sp == std::string::npos ? "" : line.substr(sp + 1);
    }
  }
  const Scrape server_before = scrape_metrics(target);
  const auto t0 = Clock::now();
  const auto deadline = t0 + std::chrono::milliseconds(int64_t(o.duration * 1000));
  if (o.http > 0) {
    std::vector<std::thread> threads;
    for (int i = 0; i < o.http; ++i)
      threads.emplace_back([&, i] { http_client(o, target, utts, size_t(i), report, deadline); });
    for (auto& t : threads) t.join();
  } else {
    asio::io_context ioc;
    for (int i = 0; i < o.streams; ++i)
      std::make_shared<WsClient>(ioc, o, target, utts, size_t(i), report, deadline)->start();
    std::vector<std::thread> threads;
    for (int i = 0; i < 2; ++i) threads.emplace_back([&] { ioc.run(); });
    for (auto& t : threads) t.join();
  }
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  nlohmann::json j = {{"mode", o.http > 0 ? "http" : "websocket"},
                      {"clients", o.http > 0 ? o.http : o.streams},
                      {"completed", report.completed},
                      {"errors", report.errors},
                      {"refused", report.refused},
                      {"mismatches", report.mismatches},
                      {"audio_seconds", report.audio_s},
                      {"wall_seconds", wall}};
  auto pct = [&](const char* name, const std::vector<double>& v) {
    if (v.empty()) return;
    j[name] = {{"count", v.size()}, {"p50", percentile(v, 50)}, {"p95", percentile(v, 95)}, {"p99", percentile(v, 99)}};
    fmt::print("{:<12} n={:<7} p50 {:8.1f} ms  p95 {:8.1f} ms  p99 {:8.1f} ms\n", name, v.size(), percentile(v, 50),
               percentile(v, 95), percentile(v, 99));
  };
  fmt::print("{} {} clients: {} completed, {} errors, {} mismatched, {} told to wait (server busy), {:.1f} s of audio in {:.1f} s ({:.1f}x real time)\n",
             o.http > 0 ? "http" : "websocket", o.http > 0 ? o.http : o.streams, report.completed, report.errors,
             report.mismatches, report.refused, report.audio_s, wall, wall > 0 ? report.audio_s / wall : 0.0);
  pct("partial", report.partial_ms);
  pct("final", report.final_ms);
  pct("request", report.request_ms);
  const Scrape server_after = scrape_metrics(target);
  if (o.http == 0) {
    const std::string h = "wenet_rt_chunk_latency_ms";
    const double p50 = bucket_percentile(server_before, server_after, h, 50),
                 p95 = bucket_percentile(server_before, server_after, h, 95),
                 p99 = bucket_percentile(server_before, server_after, h, 99);
    if (p99 >= 0) {
      j["server_chunk_latency_le"] = {{"p50", p50}, {"p95", p95}, {"p99", p99}};
      fmt::print("server chunk latency (audio in -> result, /metrics buckets): p50 <= {:g} ms  p95 <= {:g} ms  p99 <= {:g} ms\n",
                 p50, p95, p99);
    }
  } else {
    // Where a request's time went inside the server; the rest of the client's latency is the network
    // and the client itself.
    const double read = histogram_mean(server_before, server_after, "wenet_rt_request_read_ms"),
                 queue = histogram_mean(server_before, server_after, "wenet_rt_request_queue_ms"),
                 inside = histogram_mean(server_before, server_after, "wenet_rt_request_latency_ms"),
                 batch = histogram_mean(server_before, server_after, "wenet_rt_offline_batch_size"),
                 run = histogram_mean(server_before, server_after, "wenet_rt_offline_batch_ms");
    if (inside >= 0) {
      j["server_means_ms"] = {{"read", read},         {"queue", queue},     {"read_to_answer", inside},
                              {"batch_size", batch}, {"engine_run", run}};
      fmt::print("server means: request read {:.1f} ms, queued {:.1f} ms, read -> answer {:.1f} ms; "
                 "batches of {:.1f} requests, {:.1f} ms each in the engine\n", read, queue, inside, batch, run);
    }
  }
  for (const auto& m : report.messages) fmt::print("  {}\n", m);
  if (!o.json.empty()) std::ofstream(o.json) << j.dump(2) << '\n';
  return report.errors == 0 && report.mismatches == 0 && report.completed > 0 ? 0 : 1;
}

}  // namespace wenet_rt
