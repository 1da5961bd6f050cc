// Memory for the large Float32Arrays the kernels return.
//
// A fresh multi-megabyte allocation is mapped on demand, so the kernel's first write to every page
// takes a page fault and a page zero-fill: at 2048 x 32000 that was three quarters of a call's
// time. Large outputs therefore come from a small process-wide cache of blocks that earlier results
// gave back when JavaScript collected them; a miss allocates a new block. Node runs those
// finalizers after the current task, so a loop that never yields to the event loop misses the
// cache every time; a training loop that awaits anything hits it. Where the build could use V8's
// own API (gc_release.h), the collector returns them itself and a loop that never yields hits it too. Results not yet released are
// bounded by half the same limit: past it (a long loop that never yields) results are ordinary V8 buffers,
// so memory stays bounded.
// Small outputs are ordinary V8 array buffers: cheaper than an external buffer's bookkeeping.
#pragma once
#include <napi.h>

#include <cstddef>
#include <cstdint>

namespace kdfuse_addon {

// Outputs of at least this many bytes use the cache.
constexpr size_t kPooledMinBytes = size_t(1) << 20;

// A Float32Array of n elements whose contents are unspecified (the caller overwrites all of it).
Napi::Float32Array new_output_f32(Napi::Env env, size_t n, float** data);

// Scratch memory from the same cache (the async calls' private copies of their inputs): a block of
// `bytes`, or null when out of memory; hand it back with release_block and the same size.
void* acquire_block(size_t bytes);
void release_block(void* p, size_t bytes);

// Whether this process's pooled results go back to the cache during garbage collection (gc_release.h)
// rather than from a task after it.
bool results_released_by_gc(napi_env env);

struct BufferCacheStats {
  size_t limit_bytes;   // most bytes kept for reuse
  size_t cached_bytes;  // bytes held now
  size_t cached_blocks;
  size_t pending_bytes;  // results handed out whose memory JavaScript has not released yet
  uint64_t hits, misses;
  uint64_t declined;     // results made as V8 buffers because pending_bytes had reached half the limit
  uint64_t collections;  // full collections asked for to bring dropped results back (collect_if_dropped)
  double collection_ms;     // the latest such collection's duration (negative: none yet)
  double fresh_ms_per_mib;  // the latest fresh result block's mapping cost per MiB (negative: none yet)
};
BufferCacheStats buffer_cache_stats();
// Sets the limit (0 turns the cache off) and frees what is over it.
void set_buffer_cache_limit(size_t bytes);

}  // namespace kdfuse_addon
