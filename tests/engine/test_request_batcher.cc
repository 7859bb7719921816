// The request batcher: requests from many threads joined into engine runs with results identical
// to running them directly, a bounded queue answering 'overloaded', per-request audio failures
// and limits that leave the rest of the batch alone, and a shutdown that drains.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "engine/request_batcher.h"

namespace wenet_rt {
namespace {

namespace fs = std::filesystem;

std::string demo_dir() { return std::string(WENET_SOURCE_DIR) + "/models/demo"; }

std::vector<std::pair<std::string, std::string>> demo_examples() {
  std::vector<std::pair<std::string, std::string>> files;
  for (const auto& e : fs::directory_iterator(demo_dir() + "/examples"))
    if (e.path().extension() == ".wav") files.emplace_back(e.path().stem().string(), e.path().string());
  std::sort(files.begin(), files.end());
  return files;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

RecognizerConfig config() {
  RecognizerConfig c;
  c.threads = 2;
  return c;
}

class RequestBatcherTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    engine_ = new OfflineEngine(load_model_dir(demo_dir()), config());
    std::vector<EngineInput> in;
    for (const auto& [key, path] : demo_examples()) in.push_back(EngineInput{.key = key, .path = path});
    expected_ = new std::vector<RecognitionResult>(engine_->run(in));
  }
  static void TearDownTestSuite() {
    delete engine_;
    delete expected_;
  }
  static OfflineEngine* engine_;
  static std::vector<RecognitionResult>* expected_;
};
OfflineEngine* RequestBatcherTest::engine_ = nullptr;
std::vector<RecognitionResult>* RequestBatcherTest::expected_ = nullptr;

TEST_F(RequestBatcherTest, ConcurrentRequestsJoinOneBatchWithUnchangedResults) {
  RequestBatcher batcher(*engine_, {.window_ms = 300, .max_batch = 64, .max_queue = 64});
  std::vector<int> batch_sizes;
  batcher.set_batch_observer([&](int n, double) { batch_sizes.push_back(n); });
  const auto files = demo_examples();
  std::vector<std::future<BatchOutcome>> futures(files.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < files.size(); ++i) {
    threads.emplace_back([&, i] {
      EngineInput r;
      r.key = files[i].first;
      if (i % 2) r.encoded = slurp(files[i].second);  // half as uploads in memory
      else r.path = files[i].second;
      futures[i] = batcher.submit(std::move(r));
    });
  }
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < files.size(); ++i) {
    const BatchOutcome out = futures[i].get();
    SCOPED_TRACE(files[i].first);
    EXPECT_EQ(out.status, BatchStatus::kOk) << out.result.error;
    EXPECT_EQ(out.result.key, files[i].first);
    EXPECT_EQ(out.result.text, (*expected_)[i].text);
    EXPECT_EQ(out.result.tokens, (*expected_)[i].tokens);
    EXPECT_EQ(out.batch_size, int(files.size()));
  }
  EXPECT_EQ(batch_sizes, std::vector<int>{int(files.size())});
  EXPECT_EQ(batcher.stats().batches, 1u);
  EXPECT_EQ(batcher.stats().completed, files.size());
}

TEST_F(RequestBatcherTest, MaxBatchCutsBatches) {
  RequestBatcher batcher(*engine_, {.window_ms = 1000, .max_batch = 2, .max_queue = 64});
  const auto files = demo_examples();
  std::vector<std::future<BatchOutcome>> futures;
  for (const auto& [key, path] : files) futures.push_back(batcher.submit(EngineInput{.key = key, .path = path}));
  for (size_t i = 0; i < files.size(); ++i) EXPECT_EQ(futures[i].get().result.text, (*expected_)[i].text);
  EXPECT_EQ(batcher.stats().batches, (files.size() + 1) / 2);
  EXPECT_EQ(batcher.stats().max_batch_seen, 2);
}

TEST_F(RequestBatcherTest, FullQueueAnswersOverloadedAtOnce) {
  RequestBatcher batcher(*engine_, {.window_ms = 2000, .max_batch = 64, .max_queue = 2});
  const auto files = demo_examples();
  auto a = batcher.submit(EngineInput{.key = "a", .path = files[0].second});
  auto b = batcher.submit(EngineInput{.key = "b", .path = files[1].second});
  auto c = batcher.submit(EngineInput{.key = "c", .path = files[2].second});
  ASSERT_EQ(c.wait_for(std::chrono::seconds(0)), std::future_status::ready);  // refused without waiting
  const BatchOutcome oc = c.get();
  EXPECT_EQ(oc.status, BatchStatus::kOverloaded);
  EXPECT_NE(oc.result.error.find("overloaded"), std::string::npos) << oc.result.error;
  EXPECT_EQ(a.get().status, BatchStatus::kOk);
  EXPECT_EQ(b.get().status, BatchStatus::kOk);
  EXPECT_EQ(batcher.stats().rejected, 1u);
}

TEST_F(RequestBatcherTest, BadAudioAndTooLongFailAloneInTheirBatch) {
  RequestBatcher batcher(*engine_, {.window_ms = 300, .max_batch = 64, .max_queue = 64, .max_audio_seconds = 8.0});
  const auto files = demo_examples();
  EngineInput garbage;
  garbage.key = "garbage";
  garbage.encoded = "this is not audio at all, just some text that is long enough";
  EngineInput too_long;
  too_long.key = "long";
  too_long.samples = std::vector<float>(16000 * 10, 0.01f);  // every example is shorter than 8 s
  too_long.sample_rate = 16000;
  EngineInput none;
  none.key = "none";
  auto g = batcher.submit(std::move(garbage));
  auto l = batcher.submit(std::move(too_long));
  auto n = batcher.submit(std::move(none));
  auto ok = batcher.submit(EngineInput{.key = files[4].first, .path = files[4].second});
  const BatchOutcome og = g.get(), ol = l.get(), on = n.get(), ook = ok.get();
  EXPECT_EQ(og.status, BatchStatus::kBadAudio);
  EXPECT_NE(og.result.error.find("cannot decode"), std::string::npos) << og.result.error;
  EXPECT_EQ(ol.status, BatchStatus::kTooLong);
  EXPECT_NE(ol.result.error.find("too long: 10.0 s"), std::string::npos) << ol.result.error;
  EXPECT_EQ(on.status, BatchStatus::kBadAudio);
  EXPECT_EQ(ook.status, BatchStatus::kOk) << ook.result.error;
  EXPECT_EQ(ook.result.text, (*expected_)[4].text);
}

TEST_F(RequestBatcherTest, ShutdownDrainsThenRefuses) {
  RequestBatcher batcher(*engine_, {.window_ms = 2000, .max_batch = 64, .max_queue = 8});
  const auto files = demo_examples();
  auto a = batcher.submit(EngineInput{.key = "a", .path = files[0].second});
  batcher.shutdown();  // closes the window early, the queued request still runs
  auto b = batcher.submit(EngineInput{.key = "b", .path = files[1].second});
  EXPECT_EQ(b.get().status, BatchStatus::kShuttingDown);
  const BatchOutcome oa = a.get();
  EXPECT_EQ(oa.status, BatchStatus::kOk);
  EXPECT_EQ(oa.result.text, (*expected_)[0].text);
  EXPECT_EQ(batcher.pending(), 0);
}

TEST(RequestBatcherConfig, ValidateNamesTheField) {
  RequestBatcherConfig c;
  c.max_batch = 0;
  try {
    c.validate();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("max_batch"), std::string::npos);
  }
}

}  // namespace
}  // namespace wenet_rt
