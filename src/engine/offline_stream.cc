#include "engine/offline_stream.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>

#include "core/error.h"

namespace wenet_rt {
namespace {

class OfflineStream : public Stream, public std::enable_shared_from_this<OfflineStream> {
 public:
  OfflineStream(RequestBatcher& batcher, const StreamOptions& options) : batcher_(batcher), options_(options) {}

  void accept_waveform(const float* samples, size_t count, int sample_rate) override {
    std::lock_guard<std::mutex> lock(mu_);
    check(sample_rate);
    samples_.insert(samples_.end(), samples, samples + count);
  }
  void accept_waveform(const int16_t* samples, size_t count, int sample_rate) override {
    std::lock_guard<std::mutex> lock(mu_);
    check(sample_rate);
    for (size_t i = 0; i < count; ++i) samples_.push_back(float(samples[i]) / 32768.0f);
  }

  void input_finished() override {
    EngineInput request;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (finished_) return;
      finished_ = true;
      request.key = "stream";
      request.samples = std::move(samples_);
      request.sample_rate = batcher_.sample_rate();
      samples_.clear();
    }
    if (request.samples.empty()) {  // nothing said: an empty final result
      StreamResult r;
      r.is_final = true;
      r.nbest.push_back({});
      deliver(std::move(r), "");
      return;
    }
    std::weak_ptr<OfflineStream> self = weak_from_this();
    batcher_.submit(std::move(request), [self](BatchOutcome out) {
      auto s = self.lock();
      if (!s) return;  // abandoned
      StreamResult r;
      r.is_final = true;
      std::string error;
      if (out.status == BatchStatus::kOk) {
        Sentence best{out.result.text, out.result.tokens, out.result.word_pieces, out.result.score};
        r.nbest.push_back(std::move(best));
        r.end_ms = int(out.result.duration_s * 1000);
      } else {
        error = out.result.error;
      }
      s->deliver(std::move(r), error);
    });
  }

  std::vector<StreamResult> poll() override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<StreamResult> out(results_.begin(), results_.end());
    results_.clear();
    return out;
  }
  std::vector<StreamResult> wait(double timeout_s) override {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::duration<double>(timeout_s), [&] { return !results_.empty() || done_; });
    std::vector<StreamResult> out(results_.begin(), results_.end());
    results_.clear();
    return out;
  }
  // Nothing is decoded before input_finished(): caught up until then, and after it once done.
  bool sync(double timeout_s) override {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::duration<double>(std::max(0.0, timeout_s)),
                        [&] { return !finished_ || done_; });
  }
  void set_callback(std::function<void(const StreamResult&)> callback) override {
    std::lock_guard<std::mutex> lock(mu_);
    callback_ = std::move(callback);
  }
  std::string partial() const override { return ""; }
  bool done() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return done_;
  }
  std::string error() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return error_;
  }

 private:
  void check(int sample_rate) const {
    if (finished_) fail("accept_waveform after input_finished");
    if (sample_rate != batcher_.sample_rate())
      fail("expected audio at the model's {} Hz, got {} Hz", batcher_.sample_rate(), sample_rate);
  }
  // The one (last) result; done() becomes true once its callback returned (as the engine's streams).
  void deliver(StreamResult r, const std::string& error) {
    r.last = true;
    std::function<void(const StreamResult&)> callback;
    {
      std::lock_guard<std::mutex> lock(mu_);
      error_ = error;
      if (error.empty()) callback = callback_;
    }
    if (callback) callback(r);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (error.empty() && !callback) results_.push_back(std::move(r));
      done_ = true;
    }
    cv_.notify_all();
  }

  RequestBatcher& batcher_;
  const StreamOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<float> samples_;
  std::deque<StreamResult> results_;
  std::function<void(const StreamResult&)> callback_;
  bool finished_ = false, done_ = false;
  std::string error_;
};

}  // namespace

std::shared_ptr<Stream> make_offline_stream(RequestBatcher& batcher, const StreamOptions& options) {
  return std::make_shared<OfflineStream>(batcher, options);
}

}  // namespace wenet_rt
