// The CPU backend's worker threads: created once per backend, reused by every op, no allocation
// per call. run(n, fn) calls fn(task, thread) for every task in [0, n), tasks claimed one at a time
// by the calling thread and the workers; it returns when all are done. A worker that is late (its
// core busy elsewhere) never holds the caller up: the caller runs whatever is left itself, and a
// worker only joins a job that is still open. Idle workers spin briefly, then sleep on a condition variable.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace wenet_rt::cpu {

class ThreadPool {
 public:
  // `threads` in all, the caller included; <= 0: the cores this process may run on.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return size_; }

  // fn(int64_t task, int thread) for task in [0, n); thread in [0, size()) is the running
  // thread's index (for per-thread scratch). Called from inside a task, runs inline. An exception
  // thrown by a task is rethrown here once all tasks are done.
  template <class F>
  void run(int64_t n, F&& fn) {
    if (n <= 0) return;
    if (n == 1 || size_ == 1 || inside_) {
      const int t = inside_ ? inside_thread_ : 0;
      for (int64_t i = 0; i < n; ++i) fn(i, t);
      return;
    }
    run_job(n, [](void* ctx, int64_t i, int t) { (*static_cast<F*>(ctx))(i, t); }, &fn);
  }

  // The default thread count: the CPUs in this process' affinity mask.
  static int available_cpus();

 private:
  using Call = void (*)(void*, int64_t, int);
  void run_job(int64_t n, Call call, void* ctx);
  void worker(int index);
  void work(int thread);

  int size_ = 1;
  std::vector<std::thread> threads_;
  // The current job.
  Call call_ = nullptr;
  void* ctx_ = nullptr;
  int64_t n_ = 0;
  alignas(64) std::atomic<int64_t> next_{0};
  alignas(64) std::atomic<uint32_t> generation_{0};
  std::atomic<bool> open_{false};
  std::atomic<int> inside_job_{0};
  std::atomic<int> sleeping_{0};
  std::mutex sleep_mu_;
  std::condition_variable sleep_cv_;
  std::atomic<bool> stop_{false};
  std::mutex error_mu_;
  std::exception_ptr error_;
  static thread_local bool inside_;
  static thread_local int inside_thread_;
};

}  // namespace wenet_rt::cpu
