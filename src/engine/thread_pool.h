// A fixed set of worker threads taking tasks from one queue: the engine's CPU side (audio reading,
// fbank on the CPU backend, CTC prefix searches). Created once per engine and reused.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace wenet_rt {

class ThreadPool {
 public:
  explicit ThreadPool(int threads) {
    for (int i = 0; i < (threads > 0 ? threads : 1); ++i) workers_.emplace_back([this] { work(); });
  }
  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : workers_) t.join();
  }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return int(workers_.size()); }

  // Queues fn; the future holds its result or exception.
  template <typename F>
  auto submit(F&& fn) -> std::future<decltype(fn())> {
    auto task = std::make_shared<std::packaged_task<decltype(fn())()>>(std::forward<F>(fn));
    std::future<decltype(fn())> result = task->get_future();
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.emplace_back([task] { (*task)(); });
    }
    cv_.notify_one();
    return result;
  }

  // fn(i) for i in [0, n), spread over the workers; returns when all are done, rethrowing the
  // first exception. Must not be called from a worker (it would wait on its own queue).
  void parallel_for(size_t n, const std::function<void(size_t)>& fn) {
    std::vector<std::future<void>> done;
    const size_t tasks = std::min(n, workers_.size());
    auto next = std::make_shared<std::atomic<size_t>>(0);
    for (size_t t = 0; t < tasks; ++t)
      done.push_back(submit([next, n, &fn] {
        for (size_t i; (i = next->fetch_add(1)) < n;) fn(i);
      }));
    for (auto& f : done) f.get();
  }

 private:
  void work() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping and drained
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      task();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace wenet_rt
