#include "output_buffers.h"

#include "gc_release.h"

#include <algorithm>
#include <chrono>
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
  // Bytes of results handed to JavaScript and not given back yet. With Node-API finalizers (released
  // by a task) a loop that never yields would otherwise map a new block per call without bound; past
  // half the limit results are then ordinary V8 buffers, which V8's GC frees (take()).
  size_t pending = 0;
  uint64_t hits = 0, misses = 0, declined = 0;
  // collect_if_dropped: no collection is asked for until this many bytes are pending (0: one result's
  // worth), and how many were asked for
  size_t collect_at = 0;
  uint64_t collections = 0, skipped = 0;
  // Measured costs (negative: not measured yet), each the latest figure: a forced collection, and
  // mapping a fresh block with its pages (per MiB).
  double collection_ms = -1.0, fresh_ms_per_mib = -1.0;
};
Cache& cache() {
  static Cache* c = new Cache;
  return *c;
}

// Blocks are mapped from the kernel, not taken from malloc, where the platform allows: a freed block
// then goes straight back to the system. From malloc, glibc keeps freed multi-megabyte blocks in its
// heap (freeing an mmap-ed chunk raises its mmap threshold, so the next ones come from the heap) and
// a loop over large results left the process gigabytes larger after every result was freed.
// `populate`: the pages are faulted in by the mapping itself (MAP_POPULATE), which on these VMs costs
// about half of faulting them one by one as the kernel first writes them.
void* map_block(size_t bytes, bool populate = false) {
#ifdef KDFUSE_MMAP_BLOCKS
  int flags = MAP_PRIVATE | MAP_ANONYMOUS;
#ifdef MAP_POPULATE
  if (populate) flags |= MAP_POPULATE;
#endif
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, flags, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
#else
  (void)populate;
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

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// A block of `bytes` (null: out of memory). A result block (`result`) counts as pending until it is
// given back; with `may_decline`, none is handed out past half the limit (null and `*declined`).
void* take(size_t bytes, bool result = false, bool may_decline = false, bool* declined = nullptr) {
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    if (result) {
      // Half the limit: in a loop that never yields, that much memory of dropped results waits for
      // finalizers that cannot run yet, on top of what the cache keeps.
      if (may_decline && c.pending + bytes > c.limit / 2) {
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
  const auto t0 = std::chrono::steady_clock::now();
  void* p = map_block(bytes, result);
  std::lock_guard<std::mutex> lock(c.mu);
  if (!p && result) c.pending -= bytes;
  if (p && result) c.fresh_ms_per_mib = ms_since(t0) / (double(bytes) / double(1 << 20));
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
napi_value external_buffer(napi_env env, void* p, size_t bytes, bool* still_ours) {
  napi_value ab;
  const napi_finalize fin = [](napi_env e, void* d, void* hint) {
    const size_t b = reinterpret_cast<size_t>(hint);
    int64_t ignored;
    napi_adjust_external_memory(e, -static_cast<int64_t>(b), &ignored);
    give_back(d, b, true);
  };
  const napi_status st = napi_create_external_arraybuffer(env, p, bytes, fin, reinterpret_cast<void*>(bytes), &ab);
  if (st != napi_ok) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) {
      napi_value ignored;
      napi_get_and_clear_last_exception(env, &ignored);
    }
    // Refused before taking the memory (V8's sandbox), it is still ours; on other failures Node may
    // already have run the finalizer, so the block is not touched again (a leak, not a double free).
    *still_ours = st == napi_no_external_buffers_allowed;
    return nullptr;
  }
  int64_t ignored;
  napi_adjust_external_memory(env, static_cast<int64_t>(bytes), &ignored);
  return ab;
}

}  // namespace

// Whether results go back to the cache during garbage collection (gc_release.h): this build has it,
// the running Node is the major it was built for, and KDFUSE_GC_RELEASE is not "0" (the tests set
// it to check the Node-API path too). Decided once per process.
bool results_released_by_gc(napi_env env) {
  static const bool use = [env] {
    const char* off = std::getenv("KDFUSE_GC_RELEASE");
    if (off && std::string(off) == "0") return false;
    const napi_node_version* v = nullptr;
    return napi_get_node_version(env, &v) == napi_ok && v && gc_release_usable(v->major);
  }();
  return use;
}

namespace {

// A loop that drops its results allocates almost nothing on the JavaScript heap, so V8 may not
// collect for many calls, and each call meanwhile maps fresh pages for its result (on these VMs the
// page faults of a 262 MB result cost more than the kernel). When a result of this size is wanted,
// at least one is pending and none is cached, a full collection is asked for: with results released
// by the collector it returns every dropped one to the cache before this call takes its block. It is
// asked for only while it is the cheaper way: both costs are measured as they happen, and once a
// collection costs more than half of what fresh pages of this size would, fresh pages are taken
// (a small result beside a large JavaScript heap: tfjs's, say). When a collection brings nothing
// back the results are being kept (a list of them), so none is asked for again until twice as many
// bytes are pending: a loop that keeps its results pays for O(log n) collections, not one per call.
void collect_if_dropped(size_t bytes) {
  Cache& c = cache();
  size_t before;
  {
    std::lock_guard<std::mutex> lock(c.mu);
    // fewer bytes pending than at the last fruitless collection: results were let go since
    if (c.pending < c.collect_at / 2) c.collect_at = 0;
    if (c.pending < bytes || c.pending < c.collect_at) return;
    for (const Block& b : c.free)
      if (b.bytes == bytes) return;
    const double fresh_ms = c.fresh_ms_per_mib * (double(bytes) / double(1 << 20));
    // dearer than fresh pages: skipped, but measured again every 64th time (the heap, and so the
    // cost of a collection, changes over a process's life)
    if (c.collection_ms >= 0.0 && c.fresh_ms_per_mib >= 0.0 && 2.0 * c.collection_ms > fresh_ms && ++c.skipped % 64 != 0) return;
    before = c.pending;
    ++c.collections;
  }
  const auto t0 = std::chrono::steady_clock::now();
  gc_release_collect();
  const double took = ms_since(t0);
  std::lock_guard<std::mutex> lock(c.mu);
  c.collection_ms = took;
  c.collect_at = before - std::min(before, c.pending) >= bytes ? 0 : 2 * before;
}

// The pooled result's ArrayBuffer, released by the collector itself where possible.
// Null when refused; then *still_ours says whether the block may be given back (external_buffer).
napi_value pooled_buffer(napi_env env, void* p, size_t bytes, bool* still_ours) {
  *still_ours = true;
  if (results_released_by_gc(env)) {
    void* ab = gc_released_arraybuffer(p, bytes, [](void* d, size_t b, void*) { give_back(d, b, true); });
    if (ab) return static_cast<napi_value>(ab);
  }
  return external_buffer(env, p, bytes, still_ours);
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
    const bool by_gc = results_released_by_gc(env);
    if (by_gc) collect_if_dropped(bytes);
    // with the collector releasing results, pending memory needs no cap: V8 counts it and collects
    if (void* p = take(bytes, true, !by_gc, &declined)) {
      bool still_ours = true;
      if (napi_value ab = pooled_buffer(env, p, bytes, &still_ours)) {
        *data = static_cast<float*>(p);
        return Napi::Float32Array::New(env, n, Napi::ArrayBuffer(env, ab), 0);
      }
      if (still_ours) give_back(p, bytes, true);
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
  return {c.limit, c.cached, c.free.size(), c.pending, c.hits, c.misses, c.declined, c.collections, c.collection_ms, c.fresh_ms_per_mib};
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
