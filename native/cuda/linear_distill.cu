// The fused head on the GPU: the CPU core's linear_distill_loss (native/core/linear_distill.cpp)
// with the same checks, the same row blocks and the same error words, its products done by a tiled
// GEMM kernel and its loss by the distillation kernels of distill_loss.cu on each block's logits,
// which stay on the device; a top-k teacher's entries and row constants are uploaded once and each
// block runs the top-k kernel of topk_loss.cu.
//
// The GEMM: 64 x 64 output tiles per block of 256 threads, each thread 4 x 4 outputs, k in steps of
// 16 through shared memory. Every output sums its k products in order in one thread (no atomics,
// no split k), so results are the same on every run; the column sums of the bias gradient run one
// thread per column over the rows in order, in double.
#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

#include "cuda_compat.cuh"
#include "internal.h"
#include "linear_distill.h"
#include "topk_checks.h"

namespace kdfuse {
namespace cuda {
namespace detail {
namespace {

constexpr int kTile = 64, kTileK = 16, kGemmThreads = 256;

// C[m, n] = op(A)[m, k] op(B)[k, n], or C += that with accumulate; row-major with leading dimensions.
template <bool TA, bool TB>
__global__ void __launch_bounds__(kGemmThreads)
    gemm_kernel(const float* A, const float* B, float* C, int m, int n, int k, int lda, int ldb, int ldc, bool accumulate) {
  __shared__ float As[kTileK][kTile + 1];
  __shared__ float Bs[kTileK][kTile + 1];
  const int t = int(threadIdx.x), tx = t % 16, ty = t / 16;
  const int col0 = int(blockIdx.x) * kTile;
  // row tiles beyond the grid's y limit (65535) are taken by the same blocks in turn
  for (int64_t tile = blockIdx.y; tile * kTile < m; tile += gridDim.y) {
  const int row0 = int(tile * kTile);
  float acc[4][4];
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;
  for (int k0 = 0; k0 < k; k0 += kTileK) {
    for (int e = t; e < kTile * kTileK; e += kGemmThreads) {
      // neighbouring threads read neighbouring addresses of the operand as it is laid out
      const int r = TA ? e % kTile : e / kTileK, kk = TA ? e / kTile : e % kTileK;
      const int gr = row0 + r, gk = k0 + kk;
      As[kk][r] = (gr < m && gk < k) ? (TA ? A[size_t(gk) * lda + gr] : A[size_t(gr) * lda + gk]) : 0.0f;
    }
    for (int e = t; e < kTile * kTileK; e += kGemmThreads) {
      const int c = TB ? e / kTileK : e % kTile, kk = TB ? e % kTileK : e / kTile;
      const int gc = col0 + c, gk = k0 + kk;
      Bs[kk][c] = (gc < n && gk < k) ? (TB ? B[size_t(gc) * ldb + gk] : B[size_t(gk) * ldb + gc]) : 0.0f;
    }
    __syncthreads();
    for (int kk = 0; kk < kTileK; ++kk) {
      float a[4], b[4];
      for (int i = 0; i < 4; ++i) a[i] = As[kk][ty + 16 * i];
      for (int j = 0; j < 4; ++j) b[j] = Bs[kk][tx + 16 * j];
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
  for (int i = 0; i < 4; ++i) {
    const int gr = row0 + ty + 16 * i;
    if (gr >= m) continue;
    for (int j = 0; j < 4; ++j) {
      const int gc = col0 + tx + 16 * j;
      if (gc >= n) continue;
      float* c = C + size_t(gr) * ldc + gc;
      *c = accumulate ? *c + acc[i][j] : acc[i][j];
    }
  }
  }
}

// Each of `rows` rows of z [rows, cols] := bias (or 0).
__global__ void fill_rows(float* z, const float* bias, int64_t rows, int cols) {
  const int64_t n = rows * cols;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    z[i] = bias ? bias[i % cols] : 0.0f;
}

// sums[c] += sum over the rows of g[r, c], in row order, in double.
__global__ void column_sums(const float* g, double* sums, int64_t rows, int cols) {
  for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < cols; c += int64_t(gridDim.x) * blockDim.x) {
    double s = 0.0;
    for (int64_t r = 0; r < rows; ++r) s += double(g[r * cols + c]);
    sums[c] += s;
  }
}

Status gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a, const float* b, float* c, bool accumulate) {
  const dim3 grid(unsigned((n + kTile - 1) / kTile), unsigned(std::min<int64_t>((m + kTile - 1) / kTile, 65535)));
  const int lda = int(ta ? m : k), ldb = int(tb ? k : n), ldc = int(n);
  using GemmFn = void (*)(const float*, const float*, float*, int, int, int, int, int, int, bool);
  const GemmFn kernel = ta ? (tb ? gemm_kernel<true, true> : gemm_kernel<true, false>)
                           : (tb ? gemm_kernel<false, true> : gemm_kernel<false, false>);
  KD_LAUNCH(kernel, grid, kGemmThreads, stream(), a, b, c, int(m), int(n), int(k), lda, ldb, ldc, accumulate);
  return cuda_status(cudaGetLastError(), "launching the matrix-product kernel");
}

constexpr int kFillBlock = 256;
unsigned grid_for(int64_t n) { return unsigned(std::min<int64_t>((n + kFillBlock - 1) / kFillBlock, 4096)); }

Status run_linear(const LinearDistillArgs& a, int64_t valid, DistillLossResult* result) {
  const DistillLossArgs& base = a.base;
  const int64_t rows = base.rows, cols = base.cols, dim = a.dim, block = linear_block_rows(a);
  const bool need_g = a.grad_hidden || a.grad_weight || a.grad_bias;
  const std::vector<float> scale = linear_row_scales(a, valid);
  const bool topk = a.topk_indices != nullptr;
  const TopkLossArgs tk = linear_topk_args(a);  // for the teacher's row constants and each block's kernel
  Scratch h, w, bias, t, labels, gor, z, g, gh, gw, gb, lr, idx, val, tcd;
  const char* what = "copying the inputs to the device";
  Status st;
  if (!(st = upload_scratch(&h, a.hidden, size_t(rows * dim) * sizeof(float), what)).ok()) return st;
  if (!(st = upload_scratch(&w, a.weight, size_t(dim * cols) * sizeof(float), what)).ok()) return st;
  if (!(st = upload_scratch(&bias, a.bias, size_t(cols) * sizeof(float), what)).ok()) return st;
  if (!topk && !(st = upload_scratch(&t, base.teacher, size_t(rows * cols) * sizeof(float), what)).ok()) return st;
  if (topk) {
    const std::vector<double> tc = topk_teacher_constants(tk);
    const size_t nk = size_t(rows * a.k);
    if (!(st = upload_scratch(&idx, a.topk_indices, nk * sizeof(int32_t), what)).ok()) return st;
    if (!(st = upload_scratch(&val, a.topk_values, nk * sizeof(float), what)).ok()) return st;
    if (!(st = upload_scratch(&tcd, tc.data(), tc.size() * sizeof(double), what)).ok()) return st;
  }
  if (!(st = upload_scratch(&labels, base.labels, size_t(rows) * sizeof(int32_t), what)).ok()) return st;
  if (!(st = upload_scratch(&gor, scale.data(), size_t(rows) * sizeof(float), what)).ok()) return st;
  what = "allocating the head's buffers on the device";
  if (!(st = z.alloc(size_t(block * cols) * sizeof(float), what)).ok()) return st;
  if (need_g && !(st = g.alloc(size_t(block * cols) * sizeof(float), what)).ok()) return st;
  if (a.grad_hidden && !(st = gh.alloc(size_t(rows * dim) * sizeof(float), what)).ok()) return st;
  if (a.grad_weight && !(st = gw.alloc(size_t(dim * cols) * sizeof(float), what)).ok()) return st;
  if (a.grad_bias && !(st = gb.alloc(size_t(cols) * sizeof(double), what)).ok()) return st;
  if (a.grad_bias && !(st = cuda_status(cudaMemsetAsync(gb.as<void>(), 0, size_t(cols) * sizeof(double), stream()), "clearing scratch")).ok())
    return st;
  if (!topk && base.loss_rows && !(st = lr.alloc(size_t(rows) * sizeof(float), what)).ok()) return st;

  double total = 0.0;
  for (int64_t r0 = 0; r0 < rows; r0 += block) {
    const int64_t nb = std::min(block, rows - r0);
    KD_LAUNCH(fill_rows, grid_for(nb * cols), kFillBlock, stream(), z.as<float>(), a.bias ? bias.as<float>() : nullptr, nb, int(cols));
    if (!(st = cuda_status(cudaGetLastError(), "launching the bias kernel")).ok()) return st;
    if (!(st = gemm(false, false, nb, cols, dim, h.as<float>() + r0 * dim, w.as<float>(), z.as<float>(), true)).ok()) return st;

    DistillLossArgs b = base;
    b.rows = nb;
    b.reduction = Reduction::None;
    b.student = nullptr;
    b.teacher = nullptr;
    DistillLossResult br;
    if (topk) {
      TopkLossArgs tb = tk;
      tb.base = b;
      tb.base.loss_rows = base.loss_rows ? base.loss_rows + r0 : nullptr;  // written on the host
      TopkDevicePtrs d;
      d.s = z.as<float>();
      d.idx = idx.as<int32_t>() + r0 * a.k;
      d.val = val.as<float>() + r0 * a.k;
      d.tc = tcd.as<double>() + 3 * r0;
      d.labels = base.labels ? labels.as<int32_t>() + r0 : nullptr;
      d.gor = gor.as<float>() + r0;
      d.gs = need_g ? g.as<float>() : nullptr;
      st = topk_on_device(tb, valid, d, &br);
    } else {
      DistillPtrs d;
      d.s = z.as<float>();
      d.t = t.as<float>() + r0 * cols;
      d.labels = base.labels ? labels.as<int32_t>() + r0 : nullptr;
      d.gor = gor.as<float>() + r0;
      d.gs = need_g ? g.as<float>() : nullptr;
      d.loss_rows = base.loss_rows ? lr.as<float>() + r0 : nullptr;
      st = distill_on_device(b, d, &br);
    }
    if (!st.ok()) return linear_block_error(st, r0, r0 + nb);
    total += br.loss;
    if (!need_g) continue;
    if (a.grad_hidden && !(st = gemm(false, true, nb, dim, cols, g.as<float>(), w.as<float>(), gh.as<float>() + r0 * dim, false)).ok())
      return st;
    if (a.grad_weight && !(st = gemm(true, false, dim, cols, nb, h.as<float>() + r0 * dim, g.as<float>(), gw.as<float>(), r0 > 0)).ok())
      return st;
    if (a.grad_bias) {
      KD_LAUNCH(column_sums, grid_for(cols), kFillBlock, stream(), g.as<float>(), gb.as<double>(), nb, int(cols));
      if (!(st = cuda_status(cudaGetLastError(), "launching the bias-gradient kernel")).ok()) return st;
    }
  }
  what = "copying the outputs to the host";
  if (a.grad_hidden && !(st = download(a.grad_hidden, gh.as<void>(), size_t(rows * dim) * sizeof(float), what)).ok()) return st;
  if (a.grad_weight && !(st = download(a.grad_weight, gw.as<void>(), size_t(dim * cols) * sizeof(float), what)).ok()) return st;
  if (a.grad_bias) {
    std::vector<double> sums(static_cast<size_t>(cols), 0.0);
    if (!(st = download(sums.data(), gb.as<void>(), sums.size() * sizeof(double), what)).ok()) return st;
    for (int64_t c = 0; c < cols; ++c) a.grad_bias[c] = static_cast<float>(sums[size_t(c)]);
  }
  if (!topk && base.loss_rows && !(st = download(base.loss_rows, lr.as<void>(), size_t(rows) * sizeof(float), what)).ok())
    return st;
  result->valid_rows = valid;
  result->loss = base.reduction == Reduction::Mean ? (valid > 0 ? total / double(valid) : 0.0) : total;
  return Status::Ok();
}

}  // namespace
}  // namespace detail

Status linear_distill_loss(const LinearDistillArgs& a, DistillLossResult* result) {
  int64_t valid = a.base.rows;
  Status st = validate_linear_distill(a, &valid);
  if (!st.ok()) return st;
  if (!(st = detail::require_device()).ok()) return st;
  if (!(st = detail::check_cols_fit(a.base.cols)).ok()) return st;
  // the GEMM kernel indexes rows, columns and k with 32-bit integers
  const int64_t top = std::numeric_limits<int>::max();
  if (a.dim > top || a.base.rows > top) return Status::RangeErr("rows and dim must be below 2^31 for the CUDA fused head");
  DistillLossResult r;
  st = detail::run_linear(a, valid, &r);
  if (!st.ok()) return linear_poisoned(a, st);
  if (result) *result = r;
  return Status::Ok();
}

}  // namespace cuda
}  // namespace kdfuse
