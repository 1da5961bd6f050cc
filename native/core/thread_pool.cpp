#include "thread_pool.h"

#include "kdfuse_core.h"

#include <condition_variable>
#include <mutex>
#include <new>
#include <system_error>
#include <thread>
#include <vector>

namespace kdfuse {
namespace {

constexpr int64_t kMinWorkPerThread = 1 << 15;  // elements
constexpr int kMaxThreads = 256;

class Pool {
 public:
  void run(int parts, int64_t n, RangeFn fn, void* ctx) {
    std::unique_lock<std::mutex> owner(run_mu_, std::try_to_lock);
    if (parts <= 1 || n <= 1 || !owner.owns_lock()) {
      fn(ctx, 0, n);
      return;
    }
    if (parts > n) parts = static_cast<int>(n);
    bool spawn_failed_inline = false;
    {
      std::lock_guard<std::mutex> lk(mu_);
      while (static_cast<int>(workers_.size()) < parts - 1 && spawn_worker()) {
      }
      // A thread the system refused (a process or memory limit): the call runs on the threads
      // there are. Every split gives the same bits, so only the speed changes.
      if (parts > static_cast<int>(workers_.size()) + 1) parts = static_cast<int>(workers_.size()) + 1;
      if (parts <= 1) {
        spawn_failed_inline = true;
      } else {
        fn_ = fn;
        ctx_ = ctx;
        n_ = n;
        parts_ = parts;
        pending_ = parts - 1;
        ++generation_;
      }
    }
    if (spawn_failed_inline) {
      fn(ctx, 0, n);
      return;
    }
    start_.notify_all();
    int64_t b, e;
    block(0, parts, n, &b, &e);
    fn(ctx, b, e);
    std::unique_lock<std::mutex> lk(mu_);
    done_.wait(lk, [this] { return pending_ == 0; });
  }

 private:
  // Starts one more worker; false when the system refuses a thread (std::system_error) or the
  // memory for it, or when a test has capped the spawns (set_thread_spawn_limit_for_testing).
  bool spawn_worker() {
    if (spawn_limit_ >= 0 && static_cast<int>(workers_.size()) >= spawn_limit_) return false;
    const int idx = static_cast<int>(workers_.size()) + 1;
    try {
      workers_.reserve(workers_.size() + 1);  // so that storing the started thread cannot throw
      std::thread t([this, idx] { worker(idx); });
      t.detach();  // the pool lives as long as the process
      workers_.emplace_back(std::move(t));
    } catch (const std::system_error&) {
      return false;
    } catch (const std::bad_alloc&) {
      return false;
    }
    return true;
  }

 public:
  int spawn_limit_ = -1;

 private:
  static void block(int idx, int parts, int64_t n, int64_t* b, int64_t* e) {
    *b = n * idx / parts;
    *e = n * (idx + 1) / parts;
  }

  void worker(int idx) {
    uint64_t seen = 0;
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
      start_.wait(lk, [&] { return generation_ != seen; });
      seen = generation_;
      if (idx >= parts_) continue;
      RangeFn fn = fn_;
      void* ctx = ctx_;
      int64_t b, e;
      block(idx, parts_, n_, &b, &e);
      lk.unlock();
      if (b < e) fn(ctx, b, e);
      lk.lock();
      if (--pending_ == 0) done_.notify_one();
    }
  }

  std::mutex run_mu_;  // one parallel call at a time
  std::mutex mu_;
  std::condition_variable start_, done_;
  std::vector<std::thread> workers_;
  RangeFn fn_ = nullptr;
  void* ctx_ = nullptr;
  int64_t n_ = 0;
  int parts_ = 0;
  int pending_ = 0;
  uint64_t generation_ = 0;
};

Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: detached workers may outlive static destructors
  return *p;
}

}  // namespace

void parallel_for(int parts, int64_t n, RangeFn fn, void* ctx) { pool().run(parts, n, fn, ctx); }

void set_thread_spawn_limit_for_testing(int limit) { pool().spawn_limit_ = limit; }

int threads_for(int cfg_threads, int64_t work) {
  if (cfg_threads > 0) return cfg_threads;
  return work < 2 * kMinWorkPerThread ? 1 : default_threads();
}

int parts_for(int threads, int64_t work, int64_t items) {
  if (threads > kMaxThreads) threads = kMaxThreads;
  int64_t by_work = work / kMinWorkPerThread;
  int64_t parts = threads;
  if (by_work < parts) parts = by_work;
  if (items < parts) parts = items;
  return parts < 1 ? 1 : static_cast<int>(parts);
}

}  // namespace kdfuse
