// A small CPU emulator for the subset of CUDA the kdfuse kernels use, so the same kernel and host
// source (compiled as C++ with KDFUSE_CUDA_EMULATE) runs and is checked against the CPU core on
// machines without a GPU. Not a performance tool, and not used by the library itself.
//
// Each block runs as blockDim cooperative fibers (ucontext) on the calling thread; __syncthreads
// and the warp shuffles are barriers between them. The scheduler is adversarial: each block gets
// a random priority order of its warps, and the highest-priority thread that can run always runs,
// so one warp races as far ahead of the others as the barriers allow and a missing __syncthreads
// shows up as wrong results. A barrier some threads never reach is reported as a deadlock. Device memory is host memory, filled with NaN bytes when allocated so unwritten
// outputs are caught, and 128-bit accesses check their alignment.
#pragma once
#include <math.h>
#include <ucontext.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <utility>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

struct dim3 {
  unsigned x, y, z;
  dim3(unsigned long long a = 1, unsigned b = 1, unsigned c = 1) : x(unsigned(a)), y(b), z(c) {}
};
struct alignas(16) float4 {
  float x, y, z, w;
};
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }

namespace kdfuse_emu {

struct Barrier {
  int expected = 0, arrived = 0;
  unsigned long gen = 0;
};

struct Fiber {
  ucontext_t ctx;
  dim3 tid;
  int linear = 0;
  bool done = false;
  Barrier* waiting = nullptr;  // the barrier this fiber waits at, and its generation then
  unsigned long wait_gen = 0;
};

struct State {
  dim3 grid, block, bid;
  std::vector<Fiber> fibers;
  std::vector<char*> stacks;
  Fiber* cur = nullptr;
  ucontext_t sched;
  Barrier block_bar;
  std::vector<Barrier> warp_bars;
  std::vector<unsigned long long> slots;
  const std::function<void()>* body = nullptr;
  unsigned long long rng = 0x9E3779B97F4A7C15ull;  // fixed seed: runs are reproducible
  size_t alloc_limit = size_t(1) << 36;  // larger allocations fail as out of memory
  State() = default;
  State(const State&) = delete;
  State& operator=(const State&) = delete;
  // The fiber stacks live as long as the program; freed at exit so LeakSanitizer (CI's build-asan)
  // does not report them once this object's vector of pointers is gone.
  ~State() {
    for (char* p : stacks) std::free(p);
  }
};

inline State& st() {
  static State s;
  return s;
}

constexpr size_t kStack = 256 * 1024;

[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "CUDA emulator: %s\n", what);
  std::abort();
}

inline void yield() {
  State& S = st();
  swapcontext(&S.cur->ctx, &S.sched);
}

inline void wait(Barrier& b) {
  State& S = st();
  if (++b.arrived == b.expected) {
    b.arrived = 0;
    ++b.gen;
    return;
  }
  S.cur->waiting = &b;
  S.cur->wait_gen = b.gen;
  yield();
  S.cur->waiting = nullptr;
}

inline void fiber_entry(int idx) {
  State& S = st();
  (*S.body)();
  S.fibers[size_t(idx)].done = true;
}

inline void run_block() {
  State& S = st();
  const int n = int(S.block.x * S.block.y * S.block.z);
  if (n < 1 || n > 1024 || n % 32 != 0) fail("block size must be a multiple of 32 in [32, 1024]");
  S.fibers.assign(size_t(n), Fiber{});
  while (S.stacks.size() < size_t(n)) {
    char* p = static_cast<char*>(std::malloc(kStack));
    if (!p) fail("out of memory for fiber stacks");
    S.stacks.push_back(p);
  }
  S.block_bar = Barrier{};
  S.block_bar.expected = n;
  S.warp_bars.assign(size_t(n / 32), Barrier{});
  for (auto& w : S.warp_bars) w.expected = 32;
  S.slots.assign(size_t(n), 0);
  for (int i = 0; i < n; ++i) {
    Fiber& f = S.fibers[size_t(i)];
    f.linear = i;
    f.tid = dim3(unsigned(i) % S.block.x, (unsigned(i) / S.block.x) % S.block.y, unsigned(i) / (S.block.x * S.block.y));
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = S.stacks[size_t(i)];
    f.ctx.uc_stack.ss_size = kStack;
    f.ctx.uc_link = &S.sched;
    makecontext(&f.ctx, reinterpret_cast<void (*)()>(&fiber_entry), 1, i);
  }
  auto next = [&S] {
    S.rng ^= S.rng << 13;
    S.rng ^= S.rng >> 7;
    S.rng ^= S.rng << 17;
    return S.rng;
  };
  const int nw = n / 32;
  std::vector<int> warp_order(static_cast<size_t>(nw));
  for (int i = 0; i < nw; ++i) warp_order[size_t(i)] = i;
  for (int i = nw - 1; i > 0; --i) std::swap(warp_order[size_t(i)], warp_order[size_t(next() % unsigned(i + 1))]);
  std::vector<int> order;
  for (int w : warp_order)
    for (int l = 0; l < 32; ++l) order.push_back(w * 32 + l);
  int remaining = n;
  while (remaining > 0) {
    Fiber* f = nullptr;
    for (int i : order) {
      Fiber& g = S.fibers[size_t(i)];
      if (!g.done && (!g.waiting || g.waiting->gen != g.wait_gen)) {
        f = &g;
        break;
      }
    }
    if (!f) fail("deadlock: some threads wait at a barrier the others never reach");
    S.cur = f;
    swapcontext(&S.sched, &f->ctx);
    S.cur = nullptr;
    if (f->done) --remaining;
  }
}

template <class F>
void launch(dim3 grid, dim3 block, F&& body) {
  State& S = st();
  const std::function<void()> fn(body);
  S.grid = grid;
  S.block = block;
  S.body = &fn;
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        S.bid = dim3(x, y, z);
        run_block();
      }
  S.body = nullptr;
}

inline void check_aligned16(const void* p) {
  if (reinterpret_cast<uintptr_t>(p) % 16 != 0) fail("misaligned 128-bit access");
}

inline void set_alloc_limit(size_t bytes) { st().alloc_limit = bytes; }

}  // namespace kdfuse_emu

#define threadIdx (::kdfuse_emu::st().cur->tid)
#define blockIdx (::kdfuse_emu::st().bid)
#define blockDim (::kdfuse_emu::st().block)
#define gridDim (::kdfuse_emu::st().grid)

inline void __syncthreads() { ::kdfuse_emu::wait(::kdfuse_emu::st().block_bar); }
// the threads of this thread's warp wait for each other (and see each other's stores)
inline void __syncwarp(unsigned = 0xffffffffu) {
  auto& S = ::kdfuse_emu::st();
  ::kdfuse_emu::wait(S.warp_bars[size_t(S.cur->linear >> 5)]);
}

template <class T>
T __shfl_xor_sync(unsigned, T v, int lane_mask, int = 32) {
  static_assert(sizeof(T) <= sizeof(unsigned long long), "shuffle of a type wider than 8 bytes");
  auto& S = ::kdfuse_emu::st();
  const int i = S.cur->linear, w = i >> 5;
  std::memcpy(&S.slots[size_t(i)], &v, sizeof(T));
  ::kdfuse_emu::wait(S.warp_bars[size_t(w)]);
  T r;
  std::memcpy(&r, &S.slots[size_t((w << 5) | ((i & 31) ^ lane_mask))], sizeof(T));
  ::kdfuse_emu::wait(S.warp_bars[size_t(w)]);
  return r;
}

inline unsigned long long atomicMax(unsigned long long* p, unsigned long long v) {
  const unsigned long long old = *p;
  if (v > old) *p = v;
  return old;
}
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
  const unsigned long long old = *p;
  *p = old + v;
  return old;
}
template <class T>
T __ldcs(const T* p) {
  return *p;
}
template <class T>
void __stcs(T* p, T v) {
  *p = v;
}

// ---------------------------------------------------------------- the runtime API subset
typedef int cudaError_t;
enum : int { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorMemoryAllocation = 2 };
struct CUstream_st;
typedef CUstream_st* cudaStream_t;
#define cudaStreamPerThread (reinterpret_cast<cudaStream_t>(0x2))
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4
};
enum cudaDeviceAttr {
  cudaDevAttrComputeCapabilityMajor = 75,
  cudaDevAttrComputeCapabilityMinor = 76,
  cudaDevAttrMemoryPoolsSupported = 115
};
struct cudaDeviceProp {
  char name[256];
};
struct CUmemPoolHandle_st;
typedef CUmemPoolHandle_st* cudaMemPool_t;
enum cudaMemPoolAttr { cudaMemPoolAttrReleaseThreshold = 4 };

inline const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorMemoryAllocation: return "out of memory";
    default: return "invalid argument";
  }
}
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline cudaError_t cudaGetDeviceCount(int* n) {
  *n = 1;
  return cudaSuccess;
}
inline cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr a, int) {
  *v = a == cudaDevAttrComputeCapabilityMajor ? 9 : a == cudaDevAttrComputeCapabilityMinor ? 0 : 1;
  return cudaSuccess;
}
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int) {
  std::snprintf(p->name, sizeof p->name, "%s", "kdfuse CPU emulator");
  return cudaSuccess;
}
inline cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t* p, int) {
  *p = nullptr;
  return cudaSuccess;
}
inline cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t, cudaMemPoolAttr, void*) { return cudaSuccess; }
inline cudaError_t cudaMalloc(void** p, size_t bytes) {
  *p = nullptr;
  if (bytes > ::kdfuse_emu::st().alloc_limit) return cudaErrorMemoryAllocation;
  const size_t rounded = (bytes + 255) / 256 * 256;
  void* q = std::aligned_alloc(256, rounded ? rounded : 256);
  if (!q) return cudaErrorMemoryAllocation;
  std::memset(q, 0xff, rounded);  // NaN: outputs a kernel forgets to write do not pass as zeros
  *p = q;
  return cudaSuccess;
}
inline cudaError_t cudaFree(void* p) {
  std::free(p);
  return cudaSuccess;
}
inline cudaError_t cudaMallocAsync(void** p, size_t bytes, cudaStream_t) { return cudaMalloc(p, bytes); }
inline cudaError_t cudaFreeAsync(void* p, cudaStream_t) { return cudaFree(p); }
inline cudaError_t cudaMemcpyAsync(void* d, const void* s, size_t n, cudaMemcpyKind, cudaStream_t) {
  std::memcpy(d, s, n);
  return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* d, int v, size_t n, cudaStream_t) {
  std::memset(d, v, n);
  return cudaSuccess;
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
