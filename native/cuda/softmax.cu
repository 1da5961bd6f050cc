// Softmax and log-softmax with temperature, forward and backward, on the GPU. CPU twin:
// native/core/softmax.cpp + chunk_kernels_impl.h (same formulas, term by term).
//
// One kernel per direction; a warp per row for short rows, a block per row otherwise.
//   forward   pass 1: online max + sum of exp(x/T - max) in float64 (one read); group
//             reductions give the row max and log-sum; pass 2 re-reads x (mostly from L2) and
//             writes y = (x/T - max) - logsum, or its exp, once.
//   backward  pass 1: sum(dy * y) (softmax) or sum(dy) (log-softmax), NaN / +Infinity check;
//             pass 2 writes dx = y (dy - dot) / T or (dy - softmax * dot) / T.
#include <algorithm>
#include <vector>

#include "internal.h"
#include "row_common.cuh"

namespace kdfuse {
namespace cuda {
namespace detail {
namespace {

enum { kErrBad = 1, kErrNoFinite = 2, kErrOverflow = 3 };

struct SoftmaxParams {
  const float* x;   // forward: logits; backward: forward output y
  const float* dy;  // backward only
  float* out;
  int64_t rows;
  int cols;
  float inv_t;
  bool log;
  unsigned long long* first_err;  // (rows - row) << 2 | code of the first failing row
};

template <bool WarpRow>
__global__ void __launch_bounds__(kMaxBlock) softmax_fwd_kernel(const SoftmaxParams P) {
  __shared__ double smem[32 * 2];
  const RowGroup<WarpRow> g;
  const float k = P.inv_t;
  struct In {
    float4 x;
  };
  for (int64_t row = g.first_row; row < P.rows; row += g.row_stride) {
    const int64_t off = row * int64_t(P.cols);
    const float* __restrict__ x = P.x + off;
    float* __restrict__ out = P.out + off;
    const RowSplit rs(off, P.cols);
    Online o;
    bool bad = false, over = false;
    for_row(
        rs, g.lane, g.size,
        [&](int j) {
          const float v = x[j];
          o.raise(v, k);
          o.term(v, k);
          bad = bad || is_bad_f(v);
          over = over || scaled_overflow_f(v, k);
        },
        [&](int j) { return In{ld4(x + j)}; },
        [&](int, const In& in) {
          o.raise(max4(in.x), k);
          o.term(in.x.x, k);
          o.term(in.x.y, k);
          o.term(in.x.z, k);
          o.term(in.x.w, k);
          bad = bad || is_bad_f(in.x.x) || is_bad_f(in.x.y) || is_bad_f(in.x.z) || is_bad_f(in.x.w);
          over = over || scaled_overflow_f(in.x.x, k) || scaled_overflow_f(in.x.y, k) || scaled_overflow_f(in.x.z, k) ||
                 scaled_overflow_f(in.x.w, k);
        });
    double mx[3] = {double(o.m), bad ? 1.0 : 0.0, over ? 1.0 : 0.0};
    group_reduce<WarpRow, OpMax>(mx, smem);
    const float M = float(mx[0]);
    double sm[1] = {o.rebased(M, k)};
    group_reduce<WarpRow, OpSum>(sm, smem);
    // as the CPU core: a bad value, then a finite maximum that 1/T carries out of float32, then no finite logit
    const int err = mx[1] != 0.0 ? kErrBad : (mx[2] != 0.0) ? kErrOverflow : (M == -INFINITY ? kErrNoFinite : 0);
    if (err) {
      if (g.lane == 0) record_row_error(P.first_err, P.rows, row, err);
      continue;
    }
    const float mxk = M * k, ls = float(log(sm[0]));  // CPU: row max of x/T and log-sum, as floats
    auto y_of = [&](float v) {
      const float z = (v * k - mxk) - ls;  // rounded step by step (--fmad=false), as the CPU core
      return P.log ? z : expf(z);
    };
    for_row(
        rs, g.lane, g.size, [&](int j) { st1(out + j, y_of(ld1_last(x + j))); },
        [&](int j) { return In{ld4_last(x + j)}; },
        [&](int j, const In& in) { st4(out + j, make_float4(y_of(in.x.x), y_of(in.x.y), y_of(in.x.z), y_of(in.x.w))); });
  }
}

template <bool WarpRow>
__global__ void __launch_bounds__(kMaxBlock) softmax_bwd_kernel(const SoftmaxParams P) {
  __shared__ double smem[32 * 2];
  const RowGroup<WarpRow> g;
  struct In {
    float4 y, dy;
  };
  for (int64_t row = g.first_row; row < P.rows; row += g.row_stride) {
    const int64_t off = row * int64_t(P.cols);
    const float* __restrict__ y = P.x + off;
    const float* __restrict__ dy = P.dy + off;
    float* __restrict__ dx = P.out + off;
    const RowSplit rs(off, P.cols);
    double acc = 0.0;
    bool bad = false;
    auto add = [&](float yv, float dyv) {
      bad = bad || is_bad_f(yv) || is_bad_f(dyv);
      acc += double(P.log ? dyv : dyv * yv);
    };
    for_row(
        rs, g.lane, g.size, [&](int j) { add(y[j], dy[j]); }, [&](int j) { return In{ld4(y + j), ld4(dy + j)}; },
        [&](int, const In& in) {
          add(in.y.x, in.dy.x);
          add(in.y.y, in.dy.y);
          add(in.y.z, in.dy.z);
          add(in.y.w, in.dy.w);
        });
    double v[2] = {acc, bad ? 1.0 : 0.0};
    group_reduce<WarpRow, OpSum>(v, smem);
    if (v[1] != 0.0) {
      if (g.lane == 0) record_row_error(P.first_err, P.rows, row, kErrBad);
      continue;
    }
    const float dot = float(v[0]), k = P.inv_t;
    auto dx_of = [&](float yv, float dyv) {
      if (P.log) return fmaf(-expf(yv), dot, dyv) * k;  // (dy - softmax * sum(dy)) / T
      return (yv * (dyv - dot)) * k;                    // y (dy - sum(dy y)) / T
    };
    for_row(
        rs, g.lane, g.size, [&](int j) { st1(dx + j, dx_of(ld1_last(y + j), ld1_last(dy + j))); },
        [&](int j) { return In{ld4_last(y + j), ld4_last(dy + j)}; },
        [&](int j, const In& in) {
          st4(dx + j, make_float4(dx_of(in.y.x, in.dy.x), dx_of(in.y.y, in.dy.y), dx_of(in.y.z, in.dy.z),
                                  dx_of(in.y.w, in.dy.w)));
        });
  }
}

// Launches one kernel over validated arguments; *err_row / *err_code: the first failing row (-1, 0 if none).
Status run_softmax(bool backward, const SoftmaxParams& p0, int64_t* err_row, int* err_code) {
  Scratch err;
  Status st = err.alloc(sizeof(unsigned long long), "allocating scratch memory");
  if (!st.ok()) return st;
  if (!(st = cuda_status(cudaMemsetAsync(err.as<void>(), 0, sizeof(unsigned long long), stream()), "clearing scratch"))
           .ok())
    return st;
  SoftmaxParams P = p0;
  P.first_err = err.as<unsigned long long>();
  const RowLaunch l = row_launch(P.rows, P.cols);
  using KernelFn = void (*)(const SoftmaxParams);
  KernelFn k = backward ? (l.warp_rows ? &softmax_bwd_kernel<true> : &softmax_bwd_kernel<false>)
                        : (l.warp_rows ? &softmax_fwd_kernel<true> : &softmax_fwd_kernel<false>);
  KD_LAUNCH(k, l.grid, l.block, stream(), P);
  if (!(st = cuda_status(cudaGetLastError(), "launching the softmax kernel")).ok()) return st;
  unsigned long long h = 0;
  if (!(st = download(&h, err.as<void>(), sizeof h, "running the softmax kernel")).ok()) return st;
  *err_row = h ? P.rows - int64_t(h >> 3) : -1;
  *err_code = int(h & 7u);
  return Status::Ok();
}

Status validate_softmax(int64_t rows, int64_t cols, double temperature) {
  Status s = check_dims(rows, cols);
  if (!s.ok()) return s;
  return check_temperature(temperature);
}

SoftmaxParams params(int64_t rows, int64_t cols, double temperature, bool log) {
  SoftmaxParams P{};
  P.rows = rows;
  P.cols = int(cols);
  P.inv_t = static_cast<float>(1.0 / temperature);
  P.log = log;
  return P;
}

}  // namespace
}  // namespace detail

using namespace detail;

Status softmax_forward(const SoftmaxArgs& a) {
  Status st = validate_softmax(a.rows, a.cols, a.temperature);
  if (!st.ok()) return st;
  if (!a.x || !a.y) return Status::TypeErr("logits and out must be Float32Arrays");
  if (!(st = require_device()).ok()) return st;
  if (!(st = check_cols_fit(a.cols)).ok()) return st;
  const size_t nb = size_t(a.rows) * size_t(a.cols) * sizeof(float);
  Scratch x, y;
  if (!(st = upload_scratch(&x, a.x, nb, "copying the inputs to the device")).ok()) return st;
  if (!(st = y.alloc(nb, "allocating the output on the device")).ok()) return st;
  SoftmaxParams P = params(a.rows, a.cols, a.temperature, a.log);
  P.x = x.as<float>();
  P.out = y.as<float>();
  int64_t row;
  int code;
  if (!(st = run_softmax(false, P, &row, &code)).ok()) return st;
  if (row >= 0) {
    if (code == kErrBad) return Status::RangeErr(describe_bad_value("logits", a.x, a.rows, a.cols));
    if (code == kErrOverflow) return Status::RangeErr(temperature_overflow_message(a.temperature, "logits", row));
    return Status::RangeErr(all_neg_inf_error("logits", row));
  }
  return download(a.y, P.out, nb, "copying the output to the host");
}

Status softmax_backward(const SoftmaxBackwardArgs& a) {
  Status st = validate_softmax(a.rows, a.cols, a.temperature);
  if (!st.ok()) return st;
  if (!a.y || !a.dy || !a.dx) return Status::TypeErr("output, gradOutput and out must be Float32Arrays");
  if (!(st = require_device()).ok()) return st;
  if (!(st = check_cols_fit(a.cols)).ok()) return st;
  const size_t nb = size_t(a.rows) * size_t(a.cols) * sizeof(float);
  Scratch y, dy, dx;
  if (!(st = upload_scratch(&y, a.y, nb, "copying the inputs to the device")).ok()) return st;
  if (!(st = upload_scratch(&dy, a.dy, nb, "copying the inputs to the device")).ok()) return st;
  if (!(st = dx.alloc(nb, "allocating the output on the device")).ok()) return st;
  SoftmaxParams P = params(a.rows, a.cols, a.temperature, a.log);
  P.x = y.as<float>();
  P.dy = dy.as<float>();
  P.out = dx.as<float>();
  int64_t row;
  int code;
  if (!(st = run_softmax(true, P, &row, &code)).ok()) return st;
  if (row >= 0) {
    std::string m = describe_bad_value("output", a.y, a.rows, a.cols);
    if (m.empty()) m = describe_bad_value("gradOutput", a.dy, a.rows, a.cols);
    return Status::RangeErr(m);
  }
  return download(a.dx, P.out, nb, "copying the output to the host");
}

Status softmax_forward_device(const SoftmaxArgs& a, const DeviceBuffer& x, DeviceBuffer* y) {
  Status st = validate_softmax(a.rows, a.cols, a.temperature);
  if (!st.ok()) return st;
  if (x.empty() || !y) return Status::TypeErr("logits and out must be Float32Arrays");
  if (!(st = require_device()).ok()) return st;
  if (!(st = check_cols_fit(a.cols)).ok()) return st;
  const int64_t n = a.rows * a.cols;
  if (!(st = check_input(&x, "logits", DType::Float32, n)).ok()) return st;
  if (y == &x) return Status::RangeErr("out must not be the logits buffer");
  if (!(st = prepare_output(y, DType::Float32, n)).ok()) return st;
  SoftmaxParams P = params(a.rows, a.cols, a.temperature, a.log);
  P.x = static_cast<const float*>(x.device_ptr());
  P.out = static_cast<float*>(y->device_ptr());
  int64_t row;
  int code;
  if (!(st = run_softmax(false, P, &row, &code)).ok()) return st;
  if (row >= 0) {
    if (code == kErrOverflow) return Status::RangeErr(temperature_overflow_message(a.temperature, "logits", row));
    if (code != kErrBad) return Status::RangeErr(all_neg_inf_error("logits", row));
    std::vector<float> buf;  // rows before `row` are clean: the array's first bad value is in it
    if (!(st = download_row(P.x, row, a.cols, &buf)).ok()) return st;
    return Status::RangeErr(describe_bad_in_row("logits", buf.data(), row, a.cols));
  }
  return Status::Ok();
}

Status softmax_backward_device(const SoftmaxBackwardArgs& a, const DeviceBuffer& y, const DeviceBuffer& dy,
                               DeviceBuffer* dx) {
  Status st = validate_softmax(a.rows, a.cols, a.temperature);
  if (!st.ok()) return st;
  if (y.empty() || dy.empty() || !dx) return Status::TypeErr("output, gradOutput and out must be Float32Arrays");
  if (!(st = require_device()).ok()) return st;
  if (!(st = check_cols_fit(a.cols)).ok()) return st;
  const int64_t n = a.rows * a.cols;
  if (!(st = check_input(&y, "output", DType::Float32, n)).ok()) return st;
  if (!(st = check_input(&dy, "gradOutput", DType::Float32, n)).ok()) return st;
  if (dx == &y || dx == &dy) return Status::RangeErr("out must not be an input buffer");
  if (!(st = prepare_output(dx, DType::Float32, n)).ok()) return st;
  SoftmaxParams P = params(a.rows, a.cols, a.temperature, a.log);
  P.x = static_cast<const float*>(y.device_ptr());
  P.dy = static_cast<const float*>(dy.device_ptr());
  P.out = static_cast<float*>(dx->device_ptr());
  int64_t row;
  int code;
  if (!(st = run_softmax(true, P, &row, &code)).ok()) return st;
  if (row >= 0) {
    // The CPU core describes the first bad value of the whole output, else of the whole gradOutput.
    std::vector<float> hy(static_cast<size_t>(n)), hdy;
    if (!(st = download(hy.data(), P.x, size_t(n) * sizeof(float), "copying the inputs to the host")).ok()) return st;
    std::string m = describe_bad_value("output", hy.data(), a.rows, a.cols);
    if (m.empty()) {
      hdy.resize(size_t(n));
      if (!(st = download(hdy.data(), P.dy, size_t(n) * sizeof(float), "copying the inputs to the host")).ok())
        return st;
      m = describe_bad_value("gradOutput", hdy.data(), a.rows, a.cols);
    }
    return Status::RangeErr(m);
  }
  return Status::Ok();
}

}  // namespace cuda
}  // namespace kdfuse
