// The CUDA runtime, or (with KDFUSE_CUDA_EMULATE) the small CPU emulator in dev/emulate/emu_cuda.h
// that runs the very same kernel and host code on the CPU, so that the kernels are tested on
// machines without a GPU. Kernel launches go through KD_LAUNCH so both can compile them.
#pragma once

#if defined(KDFUSE_CUDA_EMULATE)
#include "dev/emulate/emu_cuda.h"
#define KD_LAUNCH(kernel, grid, block, stream, ...) \
  ::kdfuse_emu::launch(dim3(grid), dim3(block), [&] { kernel(__VA_ARGS__); })
#else
#include <cuda_runtime.h>
#define KD_LAUNCH(kernel, grid, block, stream, ...) kernel<<<dim3(grid), dim3(block), 0, (stream)>>>(__VA_ARGS__)
#endif

#include <cmath>
#include <cstdint>

namespace kdfuse {
namespace cuda {
namespace detail {

// 128-bit accesses; `p` must be 16-byte aligned (every row loop below only uses them where it is).
__device__ __forceinline__ float4 ld4(const float* p) {
#if defined(KDFUSE_CUDA_EMULATE)
  ::kdfuse_emu::check_aligned16(p);
#endif
  return *reinterpret_cast<const float4*>(p);
}
// Last read of the data in this call: evict-first, so the lines other rows still need stay in L2.
__device__ __forceinline__ float4 ld4_last(const float* p) {
#if defined(KDFUSE_CUDA_EMULATE)
  ::kdfuse_emu::check_aligned16(p);
#endif
  return __ldcs(reinterpret_cast<const float4*>(p));
}
__device__ __forceinline__ float ld1_last(const float* p) { return __ldcs(p); }
// Outputs are written once and not read again by the kernel: streaming stores.
__device__ __forceinline__ void st4(float* p, float4 v) {
#if defined(KDFUSE_CUDA_EMULATE)
  ::kdfuse_emu::check_aligned16(p);
#endif
  __stcs(reinterpret_cast<float4*>(p), v);
}
__device__ __forceinline__ void st1(float* p, float v) { __stcs(p, v); }

__host__ __device__ __forceinline__ bool is_nan_f(float x) { return x != x; }
__host__ __device__ __forceinline__ bool is_bad_f(float x) { return x != x || x == INFINITY; }  // NaN or +inf
// A finite logit that breaks the range rule at 1/T = k: |x k| must stay below 2^127, half of float32's
// range, so that z - max z stays finite too (findings F9, F12; the CPU core's breaks_range)
__host__ __device__ __forceinline__ bool scaled_overflow_f(float x, float k) {
  return x == x && x != INFINITY && x != -INFINITY && !(fabsf(x * k) < 0x1p127f);
}
__host__ __device__ __forceinline__ bool is_finite_d(double x) { return x - x == 0.0; }
__host__ __device__ __forceinline__ bool is_finite_f(float x) { return x - x == 0.0f; }

}  // namespace detail
}  // namespace cuda
}  // namespace kdfuse
