// The server on loopback with the real streaming engine on the demo model (a U2++ streaming model
// whose examples transcribe exactly): WeNet's protocol round trip with partial results and a final
// with word_pieces, continuous decoding giving a final per utterance, nbest > 1, a vanishing client
// freeing its engine slot, "server busy" when the engine is full; and the offline path (OfflineStream
// through the RequestBatcher) that serves models not trained for streaming.
// (test_server.cc covers the faults the real engine cannot produce on demand, with a fake stream.)
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <thread>

#include "engine/offline_engine.h"
#include "engine/offline_stream.h"
#include "engine/request_batcher.h"
#include "engine/streaming_engine.h"
#include "frontend/audio.h"
#include "model/model_dir.h"
#include "server/server.h"
#include "server_test_client.h"

namespace wenet_rt::server {
namespace {

using namespace test_client;

const std::string kDemo = std::string(WENET_SOURCE_DIR) + "/models/demo";

std::map<std::string, std::string> expected_texts() {
  std::map<std::string, std::string> out;
  std::ifstream in(kDemo + "/examples/text");
  std::string line;
  while (std::getline(in, line))
    if (const size_t sp = line.find(' '); sp != std::string::npos) out[line.substr(0, sp)] = line.substr(sp + 1);
  return out;
}

std::vector<int16_t> pcm_of(const std::string& key) {
  const Audio a = read_audio(kDemo + "/examples/" + key + ".wav", 16000);
  std::vector<int16_t> pcm;
  for (float s : a.samples) pcm.push_back(int16_t(std::clamp(s * 32768.0f, -32768.0f, 32767.0f)));
  return pcm;
}

const ModelDir& demo_model() {
  static const ModelDir m = load_model_dir(kDemo);
  return m;
}

StreamingConfig engine_config(int max_streams) {
  StreamingConfig c;
  c.threads = 2;
  c.max_streams = max_streams;
  return c;
}

// A server whose WebSocket streams go to a real StreamingEngine.
struct EngineServer {
  explicit EngineServer(int max_streams = 8) : engine(demo_model(), engine_config(max_streams)) {
    ServerConfig c;
    c.address = "127.0.0.1";
    c.port = 0;
    ServerBackends b;
    b.create_stream = [this](const StreamOptions& o) { return engine.create_stream(o); };
    b.streaming_stats = [this] { return engine.stats(); };
    b.max_streams = engine.config().max_streams;
    b.sample_rate = engine.sample_rate();
    server = std::make_unique<Server>(c, b);
    server->start();
  }
  ~EngineServer() { server.reset(); }  // connections first, then the engine
  int port() const { return server->port(); }
  bool wait_engine_idle() {
    for (int i = 0; i < 500 && engine.stats().active_streams > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return engine.stats().active_streams == 0;
  }

  StreamingEngine engine;
  std::unique_ptr<Server> server;
};

// Sends `pcm` in 100 ms messages, then `end`; returns every message up to speech_end (and the close).
std::vector<json> stream(Client& c, const std::vector<int16_t>& pcm) {
  for (size_t i = 0; i < pcm.size(); i += 1600) {
    const size_t n = std::min<size_t>(1600, pcm.size() - i);
    c.binary(std::string(reinterpret_cast<const char*>(pcm.data() + i), n * 2));
  }
  c.text(R"({"signal":"end"})");
  std::vector<json> seen;
  c.read_until("speech_end", &seen);
  seen.push_back(c.read());  // the close
  return seen;
}

std::vector<json> of_type(const std::vector<json>& seen, const std::string& type) {
  std::vector<json> out;
  for (const json& m : seen)
    if (m.value("type", "") == type) out.push_back(json::parse(m.value("nbest", "[]")));
  return out;
}

TEST(ServerEngine, RoundTripWithPartialsAndAFinalWithWordPieces) {
  const auto expected = expected_texts();
  EngineServer s;
  for (const std::string key : {"test000000", "test000001"}) {
    SCOPED_TRACE(key);
    Client c(s.port());
    c.start();
    const std::vector<json> seen = stream(c, pcm_of(key));
    for (const json& m : seen) EXPECT_NE(m.value("status", ""), "failed") << m.dump();
    const auto partials = of_type(seen, "partial_result");
    const auto finals = of_type(seen, "final_result");
    EXPECT_GE(partials.size(), 1u);
    for (const json& p : partials) {
      ASSERT_EQ(p.size(), 1u);
      EXPECT_FALSE(p[0].value("sentence", "").empty());
      EXPECT_FALSE(p[0].contains("word_pieces"));
    }
    ASSERT_EQ(finals.size(), 1u);
    ASSERT_EQ(finals[0].size(), 1u);
    EXPECT_EQ(finals[0][0].value("sentence", ""), expected.at(key));
    const json& pieces = finals[0][0].at("word_pieces");
    ASSERT_FALSE(pieces.empty());
    int previous_end = 0;
    for (const json& w : pieces) {
      EXPECT_LE(previous_end, w.value("start", -1));
      EXPECT_LE(w.value("start", 0), w.value("end", -1));
      previous_end = w.value("end", 0);
    }
    EXPECT_EQ(seen[seen.size() - 2].dump(), R"({"status":"ok","type":"speech_end"})");
    EXPECT_EQ(seen.back().value("closed", -1), int(websocket::close_code::normal));
  }
  EXPECT_TRUE(s.wait_engine_idle());
  const std::string m = s.server->metrics();
  EXPECT_NE(m.find("wenet_rt_engine_streams 0\n"), std::string::npos) << m;
  EXPECT_NE(m.find("wenet_rt_engine_streams_opened_total 2\n"), std::string::npos) << m;
  EXPECT_EQ(m.find("wenet_rt_stream_chunks_total 0\n"), std::string::npos) << m;
  EXPECT_EQ(m.find("wenet_rt_chunk_latency_ms_count 0\n"), std::string::npos) << m;
}

TEST(ServerEngine, ContinuousDecodingGivesAFinalPerUtterance) {
  const auto expected = expected_texts();
  EngineServer s;
  // Two utterances 2 s apart: WeNet's rule 2 (1 s of silence after speech) ends the first.
  std::vector<int16_t> pcm = pcm_of("test000002");
  pcm.insert(pcm.end(), 32000, 0);
  const std::vector<int16_t> second = pcm_of("test000005");
  pcm.insert(pcm.end(), second.begin(), second.end());
  Client c(s.port());
  c.start(/*nbest=*/1, /*continuous=*/true);
  const std::vector<json> seen = stream(c, pcm);
  const auto finals = of_type(seen, "final_result");
  std::vector<std::string> texts;
  for (const json& f : finals)
    if (!f.empty() && !f[0].value("sentence", "").empty()) texts.push_back(f[0].value("sentence", ""));
  ASSERT_EQ(texts.size(), 2u) << json(texts).dump();
  EXPECT_EQ(texts[0], expected.at("test000002"));
  EXPECT_EQ(texts[1], expected.at("test000005"));
  // The second utterance's word pieces count from the stream's start.
  const json& last_pieces = finals.back()[0].at("word_pieces");
  ASSERT_FALSE(last_pieces.empty());
  EXPECT_GT(last_pieces[0].value("start", 0), int(pcm.size() - second.size()) / 16 - 500);
  EXPECT_EQ(seen[seen.size() - 2].value("type", ""), "speech_end");
  // Without continuous decoding the first endpoint ends the stream: one final, then speech_end.
  Client once(s.port());
  once.start(1, false);
  const size_t first_part = pcm.size() - second.size();
  for (size_t i = 0; i < first_part; i += 1600)
    once.binary(std::string(reinterpret_cast<const char*>(pcm.data() + i), std::min<size_t>(1600, first_part - i) * 2));
  std::vector<json> seen_once;
  once.read_until("speech_end", &seen_once);
  const auto once_finals = of_type(seen_once, "final_result");
  ASSERT_EQ(once_finals.size(), 1u);
  EXPECT_EQ(once_finals[0][0].value("sentence", ""), expected.at("test000002"));
  EXPECT_EQ(seen_once.back().value("type", ""), "speech_end");
  EXPECT_TRUE(s.wait_engine_idle());
}

TEST(ServerEngine, NBest) {
  const auto expected = expected_texts();
  EngineServer s;
  Client c(s.port());
  c.start(/*nbest=*/3);
  const std::vector<json> seen = stream(c, pcm_of("test000003"));
  for (const json& p : of_type(seen, "partial_result")) EXPECT_LE(p.size(), 3u);
  const auto finals = of_type(seen, "final_result");
  ASSERT_EQ(finals.size(), 1u);
  ASSERT_EQ(finals[0].size(), 3u) << finals[0].dump();
  EXPECT_EQ(finals[0][0].value("sentence", ""), expected.at("test000003"));
  EXPECT_NE(finals[0][1].value("sentence", ""), finals[0][0].value("sentence", ""));
  for (const json& h : finals[0]) EXPECT_TRUE(h.contains("word_pieces"));
  // nbest beyond the engine's beam: a failed message naming it.
  Client big(s.port());
  big.text(R"({"signal":"start","nbest":50})");
  expect_failed(big.read(), "nbest");
}

TEST(ServerEngine, VanishingClientFreesItsEngineSlot) {
  EngineServer s(/*max_streams=*/1);
  const std::vector<int16_t> pcm = pcm_of("test000000");
  {
    Client a(s.port());
    a.start();
    a.binary(std::string(reinterpret_cast<const char*>(pcm.data()), 32000 * 2));  // 2 s: a few chunks
    EXPECT_EQ(a.read().value("type", ""), "partial_result");
    EXPECT_EQ(s.engine.stats().active_streams, 1);
    beast::get_lowest_layer(a.ws()).socket().close();  // gone mid-stream, without a close frame
  }
  EXPECT_TRUE(s.wait_engine_idle());
  EXPECT_NE(s.server->metrics().find("wenet_rt_active_streams 0\n"), std::string::npos);
  Client b(s.port());  // the one slot is free again
  b.start();
  const auto finals = of_type(stream(b, pcm), "final_result");
  ASSERT_EQ(finals.size(), 1u);
  EXPECT_EQ(finals[0][0].value("sentence", ""), expected_texts().at("test000000"));
}

TEST(ServerEngine, FullEngineAnswersServerBusy) {
  EngineServer s(/*max_streams=*/2);
  Client a(s.port()), b(s.port());
  a.start();
  b.start();
  Client c(s.port());
  c.text(R"({"signal":"start"})");
  expect_failed(c.read(), "server busy: all 2 streams are in use");
  const std::string m = s.server->metrics();
  EXPECT_NE(m.find("wenet_rt_streams_refused_total 1\n"), std::string::npos) << m;
  EXPECT_NE(m.find("wenet_rt_errors_total 0\n"), std::string::npos) << m;  // a refusal is not an error
  a.text(R"({"signal":"end"})");
  a.read_until("speech_end");
  EXPECT_TRUE([&] {
    for (int i = 0; i < 200 && s.engine.stats().active_streams > 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return s.engine.stats().active_streams == 1;
  }());
  Client d(s.port());
  d.start();  // room again
}

TEST(ServerEngine, OfflinePathForModelsThatCannotStream) {
  const auto expected = expected_texts();
  RecognizerConfig rc;
  rc.threads = 2;
  OfflineEngine engine(demo_model(), rc);
  RequestBatcher batcher(engine, {});
  ServerConfig c;
  c.address = "127.0.0.1";
  c.port = 0;
  ServerBackends b;
  b.batcher = &batcher;
  b.create_stream = [&batcher](const StreamOptions& o) { return make_offline_stream(batcher, o); };
  auto server = std::make_unique<Server>(c, b);
  server->start();
  Client cl(server->port());
  cl.start();
  const std::vector<json> seen = stream(cl, pcm_of("test000001"));
  EXPECT_TRUE(of_type(seen, "partial_result").empty());
  const auto finals = of_type(seen, "final_result");
  ASSERT_EQ(finals.size(), 1u);
  EXPECT_EQ(finals[0][0].value("sentence", ""), expected.at("test000001"));
  EXPECT_FALSE(finals[0][0].at("word_pieces").empty());
  EXPECT_EQ(seen[seen.size() - 2].value("type", ""), "speech_end");
  server.reset();
}

}  // namespace
}  // namespace wenet_rt::server
