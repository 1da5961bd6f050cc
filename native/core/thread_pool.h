// A small persistent pool of worker threads shared by every caller in the process.
// Work is split into contiguous blocks and the caller runs the first block itself. When another
// call already holds the pool (two async calls at once, say), the newcomer runs all of its work on
// its own thread instead of waiting: the kernels give identical results for any split.
#pragma once
#include <cstdint>

namespace kdfuse {

using RangeFn = void (*)(void* ctx, int64_t begin, int64_t end);

// Runs fn(ctx, b, e) over [0, n) in `parts` contiguous blocks (parts <= 1: all on the caller).
void parallel_for(int parts, int64_t n, RangeFn fn, void* ctx);

template <class F>
void parallel_for(int parts, int64_t n, F&& f) {
  parallel_for(parts, n, [](void* c, int64_t b, int64_t e) { (*static_cast<F*>(c))(b, e); }, &f);
}

// Tests only: the pool starts at most `limit` worker threads from now on, as if the system refused
// more (-1: no limit). Workers already started stay.
void set_thread_spawn_limit_for_testing(int limit);

// How many parts to use for `work` elements: small calls stay on one thread because waking a
// worker costs more than the work itself.
int parts_for(int threads, int64_t work, int64_t items);

// The threads a call of `work` elements may use: cfg.threads, or default_threads() (a system call)
// only when the work is large enough to be split at all.
int threads_for(int cfg_threads, int64_t work);

}  // namespace kdfuse
