#include "engine/request_batcher.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/error.h"
#include "frontend/audio.h"

namespace wenet_rt {

void RequestBatcherConfig::validate() const {
  WENET_CHECK(window_ms >= 0, "request batcher: expected window_ms >= 0, got {}", window_ms);
  WENET_CHECK(max_batch >= 1, "request batcher: expected max_batch >= 1, got {}", max_batch);
  WENET_CHECK(max_queue >= 1, "request batcher: expected max_queue >= 1, got {}", max_queue);
  WENET_CHECK(max_audio_seconds >= 0, "request batcher: expected max_audio_seconds >= 0, got {}", max_audio_seconds);
}

std::string RequestBatcherConfig::describe() const {
  return fmt::format("window {} ms, batch <= {}, queue <= {}, audio <= {} s", window_ms, max_batch, max_queue,
                     max_audio_seconds > 0 ? fmt::format("{:g}", max_audio_seconds) : "any");
}

const char* batch_status_name(BatchStatus status) {
  switch (status) {
    case BatchStatus::kOk: return "ok";
    case BatchStatus::kBadAudio: return "bad_audio";
    case BatchStatus::kTooLong: return "too_long";
    case BatchStatus::kOverloaded: return "overloaded";
    case BatchStatus::kShuttingDown: return "shutting_down";
    case BatchStatus::kEngineError: return "engine_error";
  }
  return "?";
}

namespace {

double ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

BatchOutcome refused(const std::string& key, BatchStatus status, std::string message) {
  BatchOutcome out;
  out.status = status;
  out.result.key = key;
  out.result.error = std::move(message);
  return out;
}

}  // namespace

RequestBatcher::RequestBatcher(OfflineEngine& engine, const RequestBatcherConfig& config)
    : engine_(engine), config_(config), sample_rate_(engine.sample_rate()) {
  config_.validate();
  worker_ = std::thread([this] { work(); });
}

RequestBatcher::~RequestBatcher() {
  shutdown(false);
  if (worker_.joinable()) worker_.join();
}

void RequestBatcher::set_batch_observer(std::function<void(int, double)> observer) {
  std::lock_guard<std::mutex> lock(mu_);
  observer_ = std::move(observer);
}

void RequestBatcher::submit(EngineInput request, Callback done) {
  std::unique_lock<std::mutex> lock(mu_);
  ++stats_.submitted;
  if (stop_ || int(queue_.size()) >= config_.max_queue) {
    const bool stopping = stop_;
    ++stats_.rejected;
    lock.unlock();
    done(stopping ? refused(request.key, BatchStatus::kShuttingDown, "the server is shutting down")
                  : refused(request.key, BatchStatus::kOverloaded,
                            fmt::format("overloaded: {} requests are already waiting; retry later", config_.max_queue)));
    return;
  }
  queue_.push_back({std::move(request), std::move(done), std::chrono::steady_clock::now()});
  stats_.queued = int(queue_.size());
  lock.unlock();
  cv_.notify_one();
}

std::future<BatchOutcome> RequestBatcher::submit(EngineInput request) {
  auto promise = std::make_shared<std::promise<BatchOutcome>>();
  auto future = promise->get_future();
  submit(std::move(request), [promise](BatchOutcome out) { promise->set_value(std::move(out)); });
  return future;
}

void RequestBatcher::shutdown(bool drain) {
  std::deque<Pending> dropped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    if (!drain) {
      dropped.swap(queue_);
      stats_.queued = 0;
      stats_.rejected += dropped.size();
    }
  }
  cv_.notify_all();
  for (auto& p : dropped) p.done(refused(p.request.key, BatchStatus::kShuttingDown, "the server is shutting down"));
}

int RequestBatcher::pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return int(queue_.size()) + in_flight_;
}

RequestBatcherStats RequestBatcher::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void RequestBatcher::work() {
  for (;;) {
    std::vector<Pending> batch;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopped, nothing left to drain
      // The first request opens a window for others to join; a full batch (or a stop) closes it early.
      const auto deadline = queue_.front().submitted + std::chrono::milliseconds(config_.window_ms);
      cv_.wait_until(lock, deadline, [&] { return stop_ || int(queue_.size()) >= config_.max_batch; });
      if (queue_.empty()) return;
      const size_t n = std::min(queue_.size(), size_t(config_.max_batch));
      for (size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      stats_.queued = int(queue_.size());
      in_flight_ = int(batch.size());
    }
    run_batch(batch);
  }
}

void RequestBatcher::run_batch(std::vector<Pending>& batch) {
  const auto start = std::chrono::steady_clock::now();
  std::vector<BatchOutcome> outcomes(batch.size());
  std::vector<EngineInput> inputs;
  std::vector<size_t> index;  // inputs[j] is batch[index[j]]
  for (size_t i = 0; i < batch.size(); ++i) {
    BatchOutcome& out = outcomes[i];
    EngineInput& in = batch[i].request;
    out.result.key = in.key;
    out.queue_ms = std::chrono::duration<double, std::milli>(start - batch[i].submitted).count();
    try {
      // Encoded uploads are decoded by the engine's threads (in parallel, while planning); only
      // their headers are read here, for the length limit.
      if (in.path.empty() && in.encoded.empty() && in.samples.empty()) fail("'{}': no audio (no samples, no file)", in.key);
      if (config_.max_audio_seconds > 0) {
        const AudioInfo info = !in.path.empty()      ? probe_audio(in.path)
                               : !in.encoded.empty() ? probe_audio_bytes(in.encoded, in.key)
                                                     : AudioInfo{(long long)in.samples.size(), in.sample_rate};
        const double seconds = double(info.frames) / std::max(info.sample_rate, 1);
        if (seconds > config_.max_audio_seconds) {
          out.status = BatchStatus::kTooLong;
          out.result.error = fmt::format("audio too long: {:.1f} s, at most {:g} s per request", seconds,
                                         config_.max_audio_seconds);
          continue;
        }
      }
    } catch (const std::exception& e) {
      out.status = BatchStatus::kBadAudio;
      out.result.error = e.what();
      continue;
    }
    inputs.push_back(std::move(in));
    index.push_back(i);
  }

  double engine_ms = 0;
  if (!inputs.empty()) {
    const auto t0 = std::chrono::steady_clock::now();
    try {
      auto results = engine_.run(std::move(inputs));
      for (size_t j = 0; j < results.size() && j < index.size(); ++j) {
        BatchOutcome& out = outcomes[index[j]];
        out.result = std::move(results[j]);
        if (!out.result.error.empty()) out.status = BatchStatus::kBadAudio;
      }
    } catch (const std::exception& e) {
      for (size_t i : index) {
        outcomes[i].status = BatchStatus::kEngineError;
        outcomes[i].result.error = fmt::format("recognition failed: {}", e.what());
      }
    }
    engine_ms = ms_since(t0);
  }

  std::function<void(int, double)> observer;
  {
    std::lock_guard<std::mutex> lock(mu_);
    in_flight_ = 0;  // before the callbacks: a caller woken by one sees nothing pending
    ++stats_.batches;
    stats_.max_batch_seen = std::max(stats_.max_batch_seen, int(batch.size()));
    for (const auto& o : outcomes) {
      ++stats_.completed;
      if (o.status != BatchStatus::kOk) ++stats_.failed;
      stats_.audio_seconds += o.result.duration_s;
    }
    observer = observer_;
  }
  if (observer && !index.empty()) observer(int(index.size()), engine_ms);
  for (size_t i = 0; i < batch.size(); ++i) {
    outcomes[i].batch_size = int(batch.size());
    outcomes[i].total_ms = ms_since(batch[i].submitted);
    batch[i].done(std::move(outcomes[i]));
  }
}

}  // namespace wenet_rt
