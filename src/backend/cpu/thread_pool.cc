#include "backend/cpu/thread_pool.h"

#include <sched.h>

#include <algorithm>
#include <chrono>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define WENET_CPU_RELAX() _mm_pause()
#else
#define WENET_CPU_RELAX() std::this_thread::yield()
#endif

namespace wenet_rt::cpu {

thread_local bool ThreadPool::inside_ = false;
thread_local int ThreadPool::inside_thread_ = 0;

namespace {
// How long an idle worker polls for the next job before sleeping: long enough to bridge the gap
// between two ops of a forward pass, short enough not to hold a core the rest of the time.
constexpr auto kSpin = std::chrono::microseconds(200);
}  // namespace

int ThreadPool::available_cpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

ThreadPool::ThreadPool(int threads) : size_(threads > 0 ? threads : available_cpus()) {
  for (int i = 1; i < size_; ++i) threads_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  generation_.fetch_add(1);
  {
    std::lock_guard<std::mutex> lock(sleep_mu_);
    sleep_cv_.notify_all();
  }
  for (std::thread& t : threads_) t.join();
}

void ThreadPool::work(int thread) {
  inside_ = true;
  inside_thread_ = thread;
  for (int64_t i; (i = next_.fetch_add(1, std::memory_order_relaxed)) < n_;) {
    try {
      call_(ctx_, i, thread);
    } catch (...) {
      // The first exception of the job is rethrown by run(); the other tasks still run.
      std::lock_guard<std::mutex> lock(error_mu_);
      if (!error_) error_ = std::current_exception();
    }
  }
  inside_ = false;
}

void ThreadPool::run_job(int64_t n, Call call, void* ctx) {
  call_ = call;
  ctx_ = ctx;
  n_ = n;
  next_.store(0, std::memory_order_relaxed);
  open_.store(true);  // publishes the job (seq_cst: also orders the fields above)
  generation_.fetch_add(1);
  if (sleeping_.load() > 0) {
    std::lock_guard<std::mutex> lock(sleep_mu_);
    sleep_cv_.notify_all();
  }
  work(0);
  // Close the job, then wait for the workers that joined it (a worker joining from now on sees
  // it closed and leaves without touching it).
  open_.store(false);
  while (inside_job_.load() > 0) WENET_CPU_RELAX();
  if (error_) {
    std::exception_ptr e = error_;
    error_ = nullptr;
    std::rethrow_exception(e);
  }
}

void ThreadPool::worker(int index) {
  // Generations start at 0 when the pool is made: a thread that starts late still sees every job
  // (and the stop) published before it ran.
  uint32_t seen = 0;
  for (;;) {
    const auto start = std::chrono::steady_clock::now();
    uint32_t g;
    int polls = 0;
    while ((g = generation_.load(std::memory_order_acquire)) == seen) {
      WENET_CPU_RELAX();
      if (++polls % 64 == 0 && std::chrono::steady_clock::now() - start > kSpin) {
        // Announce the sleep before the last look: a job published after that look finds
        // sleeping_ > 0 and notifies under the lock, which this thread holds until it waits.
        std::unique_lock<std::mutex> lock(sleep_mu_);
        sleeping_.fetch_add(1);
        sleep_cv_.wait(lock, [&] { return generation_.load() != seen; });
        sleeping_.fetch_sub(1);
        polls = 0;
      }
    }
    seen = g;
    if (stop_.load()) return;
    inside_job_.fetch_add(1);
    if (open_.load()) work(index);
    inside_job_.fetch_sub(1);
  }
}

}  // namespace wenet_rt::cpu
