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

struct RequestBatcher::Taken {
  std::vector<Pending> requests;
  std::vector<BatchOutcome> outcomes;
  std::vector<size_t> index;  // the job's input j is requests[index[j]]
  std::chrono::steady_clock::time_point started;
};

void RequestBatcher::work() {
  for (;;) {
    try {
      engine_.run_jobs([this](bool wait) { return next_job(wait); });
      return;  // stopped, and everything taken is answered
    } catch (const std::exception& e) {
      // The engine failed mid-run: what it held is answered with the error; it starts again.
      std::vector<std::shared_ptr<Taken>> lost;
      {
        std::lock_guard<std::mutex> lock(mu_);
        lost.swap(running_);
      }
      for (auto& t : lost) finish(*t, nullptr, fmt::format("recognition failed: {}", e.what()));
    }
  }
}

std::optional<EngineJob> RequestBatcher::next_job(bool wait) {
  auto t = std::make_shared<Taken>();
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (wait) {
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      // The first request opens a window for others to join; a full batch (or a stop) closes it early.
      if (!queue_.empty()) {
        const auto deadline = queue_.front().submitted + std::chrono::milliseconds(config_.window_ms);
        cv_.wait_until(lock, deadline, [&] { return stop_ || int(queue_.size()) >= config_.max_batch; });
      }
    }
    if (queue_.empty()) return stop_ ? std::nullopt : std::optional<EngineJob>(EngineJob{});
    const size_t n = std::min(queue_.size(), size_t(config_.max_batch));
    for (size_t i = 0; i < n; ++i) {
      t->requests.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    stats_.queued = int(queue_.size());
    in_flight_ += int(n);
    running_.push_back(t);
  }
  t->started = std::chrono::steady_clock::now();
  t->outcomes.resize(t->requests.size());
  EngineJob job;
  for (size_t i = 0; i < t->requests.size(); ++i) {
    BatchOutcome& out = t->outcomes[i];
    EngineInput& in = t->requests[i].request;
    out.result.key = in.key;
    out.queue_ms = std::chrono::duration<double, std::milli>(t->started - t->requests[i].submitted).count();
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
    job.inputs.push_back(std::move(in));
    t->index.push_back(i);
  }
  if (job.inputs.empty()) {  // nothing for the engine: answered now
    finish(*t, nullptr, "");
    return EngineJob{};
  }
  job.done = [this, t](std::vector<RecognitionResult> results) { finish(*t, &results, ""); };
  return job;
}

void RequestBatcher::finish(Taken& t, std::vector<RecognitionResult>* results, const std::string& engine_error) {
  const double engine_ms = ms_since(t.started);
  for (size_t j = 0; j < t.index.size(); ++j) {
    BatchOutcome& out = t.outcomes[t.index[j]];
    if (!engine_error.empty()) {
      out.status = BatchStatus::kEngineError;
      out.result.error = engine_error;
    } else if (results && j < results->size()) {
      out.result = std::move((*results)[j]);
      if (!out.result.error.empty()) out.status = BatchStatus::kBadAudio;
    }
  }
  std::function<void(int, double)> observer;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Before the callbacks: a caller woken by one sees nothing pending.
    in_flight_ -= int(t.requests.size());
    running_.erase(std::remove_if(running_.begin(), running_.end(), [&](const auto& p) { return p.get() == &t; }),
                   running_.end());
    ++stats_.batches;
    stats_.max_batch_seen = std::max(stats_.max_batch_seen, int(t.requests.size()));
    for (const auto& o : t.outcomes) {
      ++stats_.completed;
      if (o.status != BatchStatus::kOk) ++stats_.failed;
      stats_.audio_seconds += o.result.duration_s;
    }
    observer = observer_;
  }
  if (observer && !t.index.empty()) observer(int(t.index.size()), engine_ms);
  for (size_t i = 0; i < t.requests.size(); ++i) {
    t.outcomes[i].batch_size = int(t.requests.size());
    t.outcomes[i].total_ms = ms_since(t.requests[i].submitted);
    t.requests[i].done(std::move(t.outcomes[i]));
  }
}

}  // namespace wenet_rt
