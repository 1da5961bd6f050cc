#include "thread_pool.h"

#include "kdfuse_core.h"

#include <condition_variable>
#include <mutex>
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
    {
      std::lock_guard<std::mutex> lk(mu_);
      while (static_cast<int>(workers_.size()) < parts - 1) {
        const int idx = static_cast<int>(workers_.size()) + 1;
        workers_.emplace_back([this, idx] { worker(idx); });
        workers_.back().detach();  // the pool lives as long as the process
      }
      fn_ = fn;
      ctx_ = ctx;
      n_ = n;
      parts_ = parts;
      pending_ = parts - 1;
      ++generation_;
    }
    start_.notify_all();
    int64_t b, e;
    block(0, parts, n, &b, &e);
    fn(ctx, b, e);
    std::unique_lock<std::mutex> lk(mu_);
    done_.wait(lk, [this] { return pending_ == 0; });
  }

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
