#include "output_buffers.h"

#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#define KDFUSE_MMAP_BLOCKS 1
#endif


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
  // per call without bound; past half the limit results are ordinary V8 buffers, which V8's GC frees.
  size_t pending = 0;
  uint64_t hits = 0, misses = 0, declined = 0;
};
Cache& cache() {
  static Cache* c = new Cache;
  return *c;
}

// Blocks are mapped from the kernel, not taken from malloc, where the platform allows: a freed block
// then goes straight back to the system. From malloc, glibc keeps freed multi-megabyte blocks in its
// heap (freeing an mmap-ed chunk raises its mmap threshold, so the next ones come from the heap) and
// a loop over large results left the process gigabytes larger after every result was freed.
void* map_block(size_t bytes) {
#ifdef KDFUSE_MMAP_BLOCKS
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
#else
  return std::malloc(bytes);
#endif
}
void unmap_block(void* p, size_t bytes) {
#ifdef KDFUSE_MMAP_BLOCKS
  munmap(p, bytes);
#else
  (void)bytes;
  std::free(p);
#endif
}

// A block of `bytes` (null: out of memory). A result block (`result`) counts as pending until it is
// given back; none is handed out past the limit (null and `*declined`).
void* take(size_t bytes, bool result = false, bool* declined = nullptr) {
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    if (result) {
      // Half the limit: in a loop that never yields, that much memory of dropped results waits for
      // finalizers that cannot run yet, on top of what the cache keeps.
      if (c.pending + bytes > c.limit / 2) {
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

namespace {

// The external ArrayBuffer over p, or null when V8 refuses external memory (where it runs with its
// sandbox; that error is cleared). V8 is told of the memory, so that its collector runs (and the
// finalizer frees it) at the pace of these allocations, not of the JavaScript heap alone.
napi_value external_buffer(napi_env env, void* p, size_t bytes, bool pooled) {
  napi_value ab;
  const napi_finalize fin = pooled ? +[](napi_env e, void* d, void* hint) {
    const size_t b = reinterpret_cast<size_t>(hint);
    int64_t ignored;
    napi_adjust_external_memory(e, -static_cast<int64_t>(b), &ignored);
    give_back(d, b, true);
  } : +[](napi_env e, void* d, void* hint) {
    int64_t ignored;
    napi_adjust_external_memory(e, -static_cast<int64_t>(reinterpret_cast<size_t>(hint)), &ignored);
    std::free(d);
  };
  if (napi_create_external_arraybuffer(env, p, bytes, fin, reinterpret_cast<void*>(bytes), &ab) != napi_ok) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) {
      napi_value ignored;
      napi_get_and_clear_last_exception(env, &ignored);
    }
    return nullptr;
  }
  int64_t ignored;
  napi_adjust_external_memory(env, static_cast<int64_t>(bytes), &ignored);
  return ab;
}

[[noreturn]] void throw_out_of_memory(Napi::Env env, size_t bytes) {
  throw Napi::RangeError::New(env, "out of memory: a result of " + std::to_string(bytes) +
                                       " bytes could not be allocated");
}

}  // namespace

Napi::Float32Array new_output_f32(Napi::Env env, size_t n, float** data) {
  const size_t bytes = n * sizeof(float);
  if (bytes >= kPooledMinBytes) {
    // From the cache (already-touched memory) while the results held by JavaScript stay within its
    // limit. The memory is ours: a failed mapping is a RangeError here, where V8's own allocation
    // would end the process.
    bool declined = false;
    if (void* p = take(bytes, true, &declined)) {
      if (napi_value ab = external_buffer(env, p, bytes, true)) {
        *data = static_cast<float*>(p);
        return Napi::Float32Array::New(env, n, Napi::ArrayBuffer(env, ab), 0);
      }
      give_back(p, bytes, true);
    } else if (!declined) {
      throw_out_of_memory(env, bytes);
    } else {
      // Past the limit: JavaScript holds (or has dropped, with finalizers not yet run: Node runs them
      // only between tasks) that many bytes of results. An external buffer would be freed no sooner,
      // so a loop that never yields would grow without bound; an ordinary V8 buffer is freed by the
      // collector itself. V8 ends the process when that allocation fails, so first make sure the
      // memory can be had.
      void* probe = map_block(bytes);
      if (!probe) throw_out_of_memory(env, bytes);
      unmap_block(probe, bytes);
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
