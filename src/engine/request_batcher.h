// Many independent requests (HTTP uploads, one utterance each) joined into batched runs of one
// OfflineEngine: a thread-safe front for a non-thread-safe engine.
//
//   RequestBatcher batcher(engine, {.window_ms = 5, .max_batch = 64, .max_queue = 256});
//   batcher.submit(std::move(request), [](BatchOutcome out) { ... });   // any thread, never blocks
//
// One worker thread feeds the engine's pipeline (OfflineEngine::run_jobs): when the engine is idle,
// the first waiting request waits up to window_ms for more (or until max_batch are waiting); while
// it is busy, whatever waited meanwhile (up to max_batch) enters as the next job, so batches grow
// with the load and later requests are encoded while earlier ones are still being searched and
// rescored. Uploads in memory are decoded by the engine's threads. Each request's outcome goes to
// its callback on the worker thread (keep it short: hand it to your own event loop). A full queue
// answers kOverloaded at once instead of queueing without bound; shutdown() stops taking requests
// and drains (or drops) what is queued.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "engine/offline_engine.h"

namespace wenet_rt {

struct RequestBatcherConfig {
  int window_ms = 5;              // how long the first request waits for others to join its batch
  int max_batch = 64;             // requests per job (entering the engine together) at most
  int max_queue = 256;            // requests waiting (not counting those in the engine); beyond: kOverloaded
  double max_audio_seconds = 0;   // per request, after decoding; 0 = no limit
  void validate() const;
  std::string describe() const;
};

enum class BatchStatus { kOk, kBadAudio, kTooLong, kOverloaded, kShuttingDown, kEngineError };
const char* batch_status_name(BatchStatus status);

struct BatchOutcome {
  BatchStatus status = BatchStatus::kOk;
  RecognitionResult result;  // result.error holds the message when status != kOk
  double queue_ms = 0;       // submit -> its batch started
  double total_ms = 0;       // submit -> outcome
  int batch_size = 0;        // requests in the run it joined
};

struct RequestBatcherStats {
  uint64_t submitted = 0, completed = 0, rejected = 0, failed = 0, batches = 0;
  int queued = 0, max_batch_seen = 0;
  double audio_seconds = 0;
};

class RequestBatcher {
 public:
  using Callback = std::function<void(BatchOutcome)>;

  // `engine` must outlive the batcher; only the batcher's worker uses it from now on.
  RequestBatcher(OfflineEngine& engine, const RequestBatcherConfig& config);
  ~RequestBatcher();  // shutdown() and join
  RequestBatcher(const RequestBatcher&) = delete;
  RequestBatcher& operator=(const RequestBatcher&) = delete;

  // Never blocks on the engine. The callback runs exactly once: on the worker thread, or at once on
  // the calling thread when the request is refused (kOverloaded, kShuttingDown).
  void submit(EngineInput request, Callback done);
  std::future<BatchOutcome> submit(EngineInput request);

  // Stops taking requests (new ones get kShuttingDown). drain: the queued requests are still run;
  // otherwise they get kShuttingDown at once. The requests in the engine always finish.
  void shutdown(bool drain = true);
  // Requests queued or in the engine.
  int pending() const;

  // A hook for every batch of requests when it is done (its size, ms from entering the engine to its
  // results), e.g. for metrics. Set before submitting.
  void set_batch_observer(std::function<void(int, double)> observer);

  RequestBatcherStats stats() const;
  const RequestBatcherConfig& config() const { return config_; }
  int sample_rate() const { return sample_rate_; }

 private:
  struct Pending {
    EngineInput request;
    Callback done;
    std::chrono::steady_clock::time_point submitted;
  };
  struct Taken;  // requests that entered the engine together
  void work();
  std::optional<EngineJob> next_job(bool wait);
  // Answers every request of `t`: from `results` (its inputs' order), or all with `engine_error`.
  void finish(Taken& t, std::vector<RecognitionResult>* results, const std::string& engine_error);

  OfflineEngine& engine_;
  const RequestBatcherConfig config_;
  const int sample_rate_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;
  bool stop_ = false;
  int in_flight_ = 0;                          // requests in the engine
  std::vector<std::shared_ptr<Taken>> running_;  // what the engine holds (answered if it fails)
  RequestBatcherStats stats_;
  std::function<void(int, double)> observer_;
  std::thread worker_;
};

}  // namespace wenet_rt
