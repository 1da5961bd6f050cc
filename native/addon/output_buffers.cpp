#include "output_buffers.h"

#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>


namespace kdfuse_addon {
namespace {

constexpr size_t kMaxBlocks = 8;

struct Block {
  void* p;
  size_t bytes;  // the requested size: blocks are reused only for an equal size
};

// One cache per process, shared by every environment (worker threads included) and never
// destroyed, because V8 may release a result's memory while the process is exiting.
struct Cache {
  std::mutex mu;
  std::vector<Block> free;
  size_t cached = 0;
  size_t limit = size_t(1) << 30;
  // Bytes of results handed to JavaScript whose finalizer has not run yet. Node runs finalizers
  // only once the current task ends, so a loop that never yields would otherwise map a new block
  // per call without bound; past `limit` results are ordinary V8 buffers, which V8's GC frees.
  size_t pending = 0;
  uint64_t hits = 0, misses = 0, declined = 0;
};
Cache& cache() {
  static Cache* c = new Cache;
  return *c;
}

void* map_block(size_t bytes) { return std::malloc(bytes); }
void unmap_block(void* p, size_t) { std::free(p); }

// A block of `bytes` (null: out of memory). A result block (`result`) counts as pending until it is
// given back; none is handed out past the limit (null and `*declined`).
void* take(size_t bytes, bool result = false, bool* declined = nullptr) {
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    if (result) {
      if (c.pending + bytes > c.limit) {
        ++c.declined;
        *declined = true;
        return nullptr;
      }
      c.pending += bytes;
    }
    for (size_t i = 0; i < c.free.size(); ++i) {
      if (c.free[i].bytes == bytes) {
        void* p = c.free[i].p;
        c.free.erase(c.free.begin() + static_cast<std::ptrdiff_t>(i));
        c.cached -= bytes;
        ++c.hits;
        return p;
      }
    }
    ++c.misses;
  }
  void* p = map_block(bytes);
  if (!p && result) {
    std::lock_guard<std::mutex> lock(c.mu);
    c.pending -= bytes;
  }
  return p;
}

// The newest block is kept; the oldest ones are freed to stay within the limits.
void give_back(void* p, size_t bytes, bool result = false) {
  std::vector<Block> drop;
  {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mu);
    if (result) c.pending -= bytes;
    if (bytes > c.limit) {
      drop.push_back({p, bytes});
    } else {
      c.free.push_back({p, bytes});
      c.cached += bytes;
      while (c.cached > c.limit || c.free.size() > kMaxBlocks) {
        drop.push_back(c.free.front());
        c.cached -= c.free.front().bytes;
        c.free.erase(c.free.begin());
      }
    }
  }
  for (const Block& d : drop) unmap_block(d.p, d.bytes);
}

}  // namespace

Napi::Float32Array new_output_f32(Napi::Env env, size_t n, float** data) {
  const size_t bytes = n * sizeof(float);
  bool declined = false;
  void* p = bytes >= kPooledMinBytes ? take(bytes, true, &declined) : nullptr;
  if (p) {
    napi_value ab;
    napi_status st = napi_create_external_arraybuffer(
        env, p, bytes,
        [](napi_env e, void* d, void* hint) {
          const size_t b = reinterpret_cast<size_t>(hint);
          int64_t ignored;
          napi_adjust_external_memory(e, -static_cast<int64_t>(b), &ignored);
          give_back(d, b, true);
        },
        reinterpret_cast<void*>(bytes), &ab);
    if (st == napi_ok) {
      // V8 learns of the memory behind the result, so that its collector runs (and the finalizer can
      // hand the block back) at the pace of these allocations, not of the JavaScript heap alone
      int64_t ignored;
      napi_adjust_external_memory(env, static_cast<int64_t>(bytes), &ignored);
      *data = static_cast<float*>(p);
      return Napi::Float32Array::New(env, n, Napi::ArrayBuffer(env, ab), 0);
    }
    give_back(p, bytes, true);
    // external buffers are refused where V8 runs with its sandbox: clear that error and fall back
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) {
      napi_value ignored;
      napi_get_and_clear_last_exception(env, &ignored);
    }
  }
  Napi::Float32Array a = Napi::Float32Array::New(env, n);
  *data = a.Data();
  return a;
}

void* acquire_block(size_t bytes) {
  return bytes >= kPooledMinBytes ? take(bytes) : std::malloc(bytes > 0 ? bytes : 1);
}

void release_block(void* p, size_t bytes) {
  if (!p) return;
  if (bytes >= kPooledMinBytes) give_back(p, bytes);
  else std::free(p);
}

BufferCacheStats buffer_cache_stats() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return {c.limit, c.cached, c.free.size(), c.pending, c.hits, c.misses, c.declined};
}

void set_buffer_cache_limit(size_t bytes) {
  std::vector<Block> drop;
  {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mu);
    c.limit = bytes;
    while (c.cached > c.limit && !c.free.empty()) {
      drop.push_back(c.free.front());
      c.cached -= c.free.front().bytes;
      c.free.erase(c.free.begin());
    }
  }
  for (const Block& d : drop) unmap_block(d.p, d.bytes);
}

}  // namespace kdfuse_addon
