// Running a small-rows kernel (SmallRows, SmallSoftmaxRows in chunk_kernels.h) over all rows: groups
// of eight rows are spread over the threads, each part with its scratch on its own stack.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "chunk_kernels.h"
#include "thread_pool.h"

namespace kdfuse {

// Runs kernel(part) over [0, rows) for a copy of `base` per part; ScratchFloats per part. Returns
// whether any part reported an error row.
template <size_t ScratchFloats, class Args>
bool run_small_rows(const Args& base, int64_t rows, int64_t cols, int cfg_threads, bool (*kernel)(const Args&)) {
  const int64_t groups = (rows + 7) / 8;
  std::atomic<bool> any_error{false};
  parallel_for(parts_for(threads_for(cfg_threads, rows * cols), rows * cols, groups), groups, [&](int64_t g0, int64_t g1) {
    alignas(32) float scratch[ScratchFloats];
    Args part = base;
    part.r0 = g0 * 8;
    part.r1 = std::min(g1 * 8, rows);
    part.scratch = scratch;
    if (kernel(part)) any_error = true;
  });
  return any_error;
}

}  // namespace kdfuse
