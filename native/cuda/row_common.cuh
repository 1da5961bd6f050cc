// Device-side building blocks shared by the kernels: which threads own a row, deterministic
// reductions over those threads, the aligned row walk, and the online (single-read) max + sum.
#pragma once
#include "cuda_compat.cuh"

namespace kdfuse {
namespace cuda {
namespace detail {

constexpr int kMaxBlock = 512;         // largest block of the row kernels (__launch_bounds__)
constexpr int kWarpRowBlock = 256;     // block of the warp-per-row kernels: 8 rows per block
constexpr int kWarpRowMaxCols = 1024;  // rows this short get one warp each, longer rows one block
constexpr int64_t kMaxGrid = 1 << 20;  // the row loops stride over the grid beyond this many groups

// Launch shape for rows of `cols` columns: one warp per row for short rows, else one block per row
// with more threads for longer rows. Depends only on cols, so results only depend on the inputs.
struct RowLaunch {
  bool warp_rows;
  int block;
  int64_t grid;
};
inline RowLaunch row_launch(int64_t rows, int64_t cols) {
  RowLaunch l;
  l.warp_rows = cols <= kWarpRowMaxCols;
  if (l.warp_rows) {
    l.block = kWarpRowBlock;
    l.grid = (rows + kWarpRowBlock / 32 - 1) / (kWarpRowBlock / 32);
  } else {
    l.block = cols <= 4096 ? 128 : cols <= 16384 ? 256 : kMaxBlock;
    l.grid = rows;
  }
  if (l.grid > kMaxGrid) l.grid = kMaxGrid;
  return l;
}

// The threads that share a row: a warp (WarpRow) or the whole block.
template <bool WarpRow>
struct RowGroup {
  int lane, size;
  int64_t first_row, row_stride;
  __device__ __forceinline__ RowGroup() {
    if (WarpRow) {
      lane = int(threadIdx.x & 31u);
      size = 32;
      const int64_t per_block = int64_t(blockDim.x >> 5);
      first_row = int64_t(blockIdx.x) * per_block + int64_t(threadIdx.x >> 5);
      row_stride = int64_t(gridDim.x) * per_block;
    } else {
      lane = int(threadIdx.x);
      size = int(blockDim.x);
      first_row = int64_t(blockIdx.x);
      row_stride = int64_t(gridDim.x);
    }
  }
};

struct OpSum {
  __device__ __forceinline__ static double apply(double a, double b) { return a + b; }
  __device__ __forceinline__ static double identity() { return 0.0; }
};
struct OpMax {
  __device__ __forceinline__ static double apply(double a, double b) { return a > b ? a : b; }
  __device__ __forceinline__ static double identity() { return -HUGE_VAL; }
};

template <class Op, int N>
__device__ __forceinline__ void warp_reduce(double (&v)[N]) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
#pragma unroll
    for (int i = 0; i < N; ++i) v[i] = Op::apply(v[i], __shfl_xor_sync(0xffffffffu, v[i], o));
  }
}

// Reduces v[0..N) over the row group; every thread of the group gets the same value (an xor
// butterfly gives both partners a + b == b + a), and the order is fixed by the group size alone:
// butterfly inside each warp, then the warp partials, in warp order, by the same butterfly.
// Every thread of the group must call it (it is never inside row-divergent code). smem holds
// 32 * N doubles and is only used in block mode.
template <bool WarpRow, class Op, int N>
__device__ __forceinline__ void group_reduce(double (&v)[N], double* smem) {
  warp_reduce<Op>(v);
  if (WarpRow) return;
  const int warp = int(threadIdx.x >> 5), lane = int(threadIdx.x & 31u), nwarps = int(blockDim.x >> 5);
  __syncthreads();  // whoever read smem in the previous reduction is done with it
  if (lane == 0) {
#pragma unroll
    for (int i = 0; i < N; ++i) smem[i * 32 + warp] = v[i];
  }
  __syncthreads();
#pragma unroll
  for (int i = 0; i < N; ++i) v[i] = lane < nwarps ? smem[i * 32 + lane] : Op::identity();
  warp_reduce<Op>(v);
}

// The columns of one row, as thread `lane` of `size` sees them. Every array starts 16-byte
// aligned, so a row's alignment follows from its flat offset: a scalar head up to the first
// 16-byte boundary (< 4 columns), a float4 body, a scalar tail (< 4 columns).
struct RowSplit {
  int cols, head, nvec, tail0;
  __device__ __forceinline__ RowSplit(int64_t off, int n) : cols(n) {
    head = int((4 - (off & 3)) & 3);
    if (head > n) head = n;
    nvec = (n - head) >> 2;
    tail0 = head + 4 * nvec;
  }
};

// Calls scalar(j) for this thread's head / tail columns and proc(j, load(j)) for its float4
// groups (j = first column of the four). Two groups per iteration, both loaded before either is
// processed, so each thread keeps several 16-byte loads in flight.
template <class Scalar, class Load, class Proc>
__device__ __forceinline__ void for_row(const RowSplit& rs, int lane, int size, Scalar&& scalar, Load&& load,
                                        Proc&& proc) {
  if (lane < rs.head) scalar(lane);
  int v = lane;
  for (; v + size < rs.nvec; v += 2 * size) {
    const int j0 = rs.head + 4 * v, j1 = j0 + 4 * size;
    const auto a = load(j0);
    const auto b = load(j1);
    proc(j0, a);
    proc(j1, b);
  }
  if (v < rs.nvec) {
    const int j = rs.head + 4 * v;
    proc(j, load(j));
  }
  if (rs.tail0 + lane < rs.cols) scalar(rs.tail0 + lane);
}

__device__ __forceinline__ float max4(float4 v) { return fmaxf(fmaxf(v.x, v.y), fmaxf(v.z, v.w)); }

// Online softmax statistics of the values x seen by one thread: m = max(x) and, in float64,
// sum = sum exp(x * k - m * k), each term formed as the CPU core forms it: the product x * k
// rounded to float, then the (float) shift by the maximum, then expf (no fused multiply-add: the
// library is built with --fmad=false). When a larger maximum arrives the sum is rescaled once, so
// the data is read once.
struct Online {
  float m = -INFINITY, mk = -INFINITY;  // mk = m * k
  double sum = 0.0;
  __device__ __forceinline__ void raise(float vm, float k) {
    if (vm > m) {
      const float nk = vm * k;
      sum = (m == -INFINITY) ? 0.0 : sum * exp(double(mk) - double(nk));
      m = vm;
      mk = nk;
    }
  }
  __device__ __forceinline__ void term(float x, float k) {
    if (m != -INFINITY) sum += double(expf(x * k - mk));
  }
  // This thread's sum relative to the group's maximum M (as the CPU core combines its chunks).
  __device__ __forceinline__ double rebased(float M, float k) const {
    if (m == -INFINITY) return 0.0;
    return sum * exp(double(mk) - double(M * k));
  }
};

// A row's label (-1 without labels) and whether the row is ignored (its label is ignore_index).
struct RowLabel {
  int y = -1;
  bool ignored = false;
  __device__ __forceinline__ RowLabel(const int32_t* labels, int64_t row, int32_t ignore_index) {
    if (labels) {
      y = labels[row];
      ignored = y == ignore_index;
    }
  }
};

// Records the first failing row of a call: the largest ((rows - row) << 3 | code) wins (codes < 8).
__device__ __forceinline__ void record_row_error(unsigned long long* slot, int64_t rows, int64_t row, int code) {
  atomicMax(slot, (static_cast<unsigned long long>(rows - row) << 3) | static_cast<unsigned long long>(code));
}

}  // namespace detail
}  // namespace cuda
}  // namespace kdfuse
