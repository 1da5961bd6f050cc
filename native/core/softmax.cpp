// Softmax and log-softmax with temperature, forward and backward, over rows of [rows, cols].
// Same chunked two-pass structure and schedules as distill_loss.cpp.
#include <algorithm>
#include <atomic>
#include <new>
#include <cmath>
#include <limits>
#include <vector>

#include "checks.h"
#include "chunk_kernels.h"
#include "kdfuse_core.h"
#include "small_rows.h"
#include "thread_pool.h"

namespace kdfuse {
namespace {

// Runs pass1 over a row's chunks, combine(row, stats), then pass2 over its chunks, on whole rows
// per thread or on (row, chunk) pairs when rows are few; `combine` returns false for a bad row.
template <class P1, class C, class P2>
void two_pass_rows(int threads, int64_t rows, int64_t cols, P1 pass1, C combine, P2 pass2) {
  const int64_t nchunks = (cols + kChunk - 1) / kChunk;
  const int64_t work = rows * cols;
  const int row_parts = parts_for(threads, work, rows);
  const int chunk_parts = parts_for(threads, work, rows * nchunks);
  if (row_parts >= chunk_parts) {
    std::atomic<bool> out_of_memory{false};
    parallel_for(row_parts, rows, [&](int64_t r0, int64_t r1) {
      thread_local std::vector<ChunkStats> st;
      try {  // a bad_alloc must not leave a pool thread: that would end the process
        if (int64_t(st.size()) < nchunks) st.resize(size_t(nchunks));
      } catch (const std::bad_alloc&) {
        out_of_memory = true;
        return;
      }
      for (int64_t r = r0; r < r1; ++r) {
        for (int64_t k = 0; k < nchunks; ++k) pass1(r, k, &st[k]);
        if (combine(r, st.data()))
          for (int64_t k = 0; k < nchunks; ++k) pass2(r, k);
      }
    });
    if (out_of_memory) throw std::bad_alloc();  // on the caller's thread, where the addon catches it
    return;
  }
  thread_local std::vector<ChunkStats> st;
  thread_local std::vector<char> ok;
  const int64_t items = rows * nchunks;
  if (int64_t(st.size()) < items) st.resize(size_t(items));
  if (int64_t(ok.size()) < rows) ok.resize(size_t(rows));
  // thread_locals are per thread: the workers get pointers to the caller's
  ChunkStats* stp = st.data();
  char* okp = ok.data();
  parallel_for(chunk_parts, items, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) pass1(i / nchunks, i % nchunks, &stp[i]);
  });
  for (int64_t r = 0; r < rows; ++r) okp[r] = combine(r, stp + r * nchunks) ? 1 : 0;
  parallel_for(chunk_parts, items, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      if (okp[i / nchunks]) pass2(i / nchunks, i % nchunks);
  });
}

SoftmaxChunk make_chunk(const float* x, const float* dy, float* out, int64_t r, int64_t k, int64_t cols, float inv_t,
                        bool log) {
  const int64_t off = r * cols + k * kChunk;
  SoftmaxChunk c{};
  c.x = x + off;
  c.dy = dy ? dy + off : nullptr;
  c.out = out + off;
  c.n = std::min<int64_t>(kChunk, cols - k * kChunk);
  c.inv_t = inv_t;
  c.log = log;
  return c;
}

// Rows are checked as they are done, after earlier rows were written: on a data error the whole
// output (n floats) is filled with NaN, so no partly written buffer can pass for a result.
Status poisoned(float* out, int64_t n, Status s) {
  std::fill(out, out + size_t(n), std::numeric_limits<float>::quiet_NaN());
  return s;
}

// The forward pass's error for row r (a SoftmaxRowError), with the output poisoned.
Status forward_error(const SoftmaxArgs& a, int64_t r, int code) {
  const int64_t n = a.rows * a.cols;
  if (code == kSoftmaxBadValue) return poisoned(a.y, n, Status::RangeErr(describe_bad_value("logits", a.x, a.rows, a.cols)));
  if (code == kSoftmaxOverflow) return poisoned(a.y, n, Status::RangeErr(temperature_overflow_message(a.temperature, "logits", r)));
  return poisoned(a.y, n, Status::RangeErr("logits row " + std::to_string(r) + " must have at least one finite logit, got all -Infinity"));
}

// The forward pass on rows of at most kSmallRowsMaxCols columns: eight rows at a time (see
// SmallSoftmaxRows), the same errors as the chunked passes.
Status softmax_small_rows(const SoftmaxArgs& a, const ExecConfig& cfg, const ChunkKernels& K, float inv_t) {
  thread_local std::vector<int> err;
  if (int64_t(err.size()) < a.rows) err.resize(size_t(a.rows));
  SmallSoftmaxRows base{};
  base.x = a.x;
  base.cols = a.cols;
  base.inv_t = inv_t;
  base.log = a.log;
  base.y = a.y;
  base.error = err.data();
  if (run_small_rows<2 * 8 * kSmallRowsMaxCols>(base, a.rows, a.cols, cfg.threads, K.softmax_small_rows))
    for (int64_t r = 0; r < a.rows; ++r)
      if (err[size_t(r)] != kSoftmaxOk) return forward_error(a, r, err[size_t(r)]);
  return Status::Ok();
}

int threads_of(const ExecConfig& cfg) { return cfg.threads > 0 ? cfg.threads : default_threads(); }

}  // namespace

Status softmax_forward(const SoftmaxArgs& a, const ExecConfig& cfg) {
  Status s = check_dims(a.rows, a.cols);
  if (!s.ok()) return s;
  if (!(s = check_temperature(a.temperature)).ok()) return s;
  if (!a.x || !a.y) return Status::TypeErr("logits and out must be Float32Arrays");
  const ChunkKernels& K = kernels_for(cfg.isa);
  const float inv_t = static_cast<float>(1.0 / a.temperature);
  if (K.softmax_small_rows && a.cols <= kSmallRowsMaxCols) return softmax_small_rows(a, cfg, K, inv_t);
  const int64_t nchunks = (a.cols + kChunk - 1) / kChunk;
  thread_local std::vector<float> lse, mxv;
  thread_local std::vector<int> err;  // SoftmaxRowError
  if (int64_t(lse.size()) < a.rows) { lse.resize(size_t(a.rows)); err.resize(size_t(a.rows)); mxv.resize(size_t(a.rows)); }
  float* lsep = lse.data();
  float* mxp = mxv.data();
  int* errp = err.data();
  two_pass_rows(
      threads_for(cfg.threads, a.rows * a.cols), a.rows, a.cols,
      [&](int64_t r, int64_t k, ChunkStats* out) {
        K.softmax_pass1(make_chunk(a.x, nullptr, a.y, r, k, a.cols, inv_t, a.log), out);
      },
      [&](int64_t r, const ChunkStats* st) {
        errp[r] = kSoftmaxOk;
        for (int64_t k = 0; k < nchunks; ++k)
          if (st[k].bad == 1) { errp[r] = kSoftmaxBadValue; return false; }
        for (int64_t k = 0; k < nchunks; ++k)
          if (st[k].bad) { errp[r] = kSoftmaxOverflow; return false; }  // the maximum overflows at 1/T
        double m = -HUGE_VAL;
        for (int64_t k = 0; k < nchunks; ++k) m = std::max(m, st[k].v[0]);
        if (m == -HUGE_VAL) { errp[r] = kSoftmaxNoFinite; return false; }
        double sum = 0.0;
        for (int64_t k = 0; k < nchunks; ++k)
          if (st[k].v[0] != -HUGE_VAL) sum += st[k].v[1] * std::exp(st[k].v[0] - m);
        lsep[r] = static_cast<float>(std::log(sum));
        mxp[r] = static_cast<float>(m);
        return true;
      },
      [&](int64_t r, int64_t k) {
        SoftmaxChunk c = make_chunk(a.x, nullptr, a.y, r, k, a.cols, inv_t, a.log);
        c.lse = lsep[r];
        c.mx = mxp[r];
        K.softmax_pass2(c);
      });
  for (int64_t r = 0; r < a.rows; ++r)
    if (errp[r] != kSoftmaxOk) return forward_error(a, r, errp[r]);
  return Status::Ok();
}

Status softmax_backward(const SoftmaxBackwardArgs& a, const ExecConfig& cfg) {
  Status s = check_dims(a.rows, a.cols);
  if (!s.ok()) return s;
  if (!(s = check_temperature(a.temperature)).ok()) return s;
  if (!a.y || !a.dy || !a.dx) return Status::TypeErr("output, gradOutput and out must be Float32Arrays");
  const ChunkKernels& K = kernels_for(cfg.isa);
  const float inv_t = static_cast<float>(1.0 / a.temperature);
  const int64_t nchunks = (a.cols + kChunk - 1) / kChunk;
  thread_local std::vector<float> dot;
  thread_local std::vector<int> bad;
  if (int64_t(dot.size()) < a.rows) { dot.resize(size_t(a.rows)); bad.resize(size_t(a.rows)); }
  float* dotp = dot.data();
  int* badp = bad.data();
  two_pass_rows(
      threads_for(cfg.threads, a.rows * a.cols), a.rows, a.cols,
      [&](int64_t r, int64_t k, ChunkStats* out) {
        SoftmaxChunk c = make_chunk(a.y, a.dy, a.dx, r, k, a.cols, inv_t, a.log);
        K.softmax_bwd_pass1(c, out);
      },
      [&](int64_t r, const ChunkStats* st) {
        badp[r] = 0;
        double sum = 0.0;
        for (int64_t k = 0; k < nchunks; ++k) {
          if (st[k].bad) { badp[r] = 1; return false; }
          sum += st[k].v[0];
        }
        dotp[r] = static_cast<float>(sum);
        return true;
      },
      [&](int64_t r, int64_t k) {
        SoftmaxChunk c = make_chunk(a.y, a.dy, a.dx, r, k, a.cols, inv_t, a.log);
        c.dot = dotp[r];
        K.softmax_bwd_pass2(c);
      });
  for (int64_t r = 0; r < a.rows; ++r) {
    if (badp[r]) {
      std::string m = describe_bad_value("output", a.y, a.rows, a.cols);
      if (m.empty()) m = describe_bad_value("gradOutput", a.dy, a.rows, a.cols);
      return poisoned(a.dx, a.rows * a.cols, Status::RangeErr(m));
    }
  }
  return Status::Ok();
}

void stream_triad(float* a, const float* b, const float* c, float scalar, int64_t n, const ExecConfig& cfg) {
  const ChunkKernels& K = kernels_for(cfg.isa);
  const int parts = parts_for(threads_of(cfg), n, n);
  parallel_for(parts, n, [&](int64_t i0, int64_t i1) { K.triad(a + i0, b + i0, c + i0, scalar, i1 - i0); });
}

}  // namespace kdfuse
