// The distillation loss against a top-k sparse teacher on the GPU: the contract and the CPU twin
// are native/core/topk_loss.cpp (docs/served-teacher.md), whose formulas are mirrored term by term.
// The host checks the arguments and the teacher's entries with the CPU core's own checks and forms
// each row's teacher normaliser (it depends on the k entries alone). One kernel does a whole row
// (a warp per short row, a block per long one), reading only the student:
//   pass 1  online max + sum of exp for s/T (and s at T = 1, and sum(s), where needed);
//   entries the k listed columns (spread over the row's threads): the divergence's listed terms;
//   extra   reverse KL: sum q log q; JSD with 'uniform': the unlisted columns' terms (read-only);
//   pass 2  the gradient of every column as if unlisted, then (after the row's threads meet) the
//           listed columns and the label's one-hot part, in float64.
// Per-row losses go to a float64 array summed on the host in row order: results do not change
// from run to run.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "internal.h"
#include "loss_common.h"
#include "row_common.cuh"
#include "topk_checks.h"

namespace kdfuse {
namespace cuda {
namespace detail {
namespace {

enum TopkErr { kTopkBadValue = 1, kTopkNoFinite = 2, kTopkOverflow = 4 };

struct TopkParams {
  const float* s;
  const int32_t* idx;
  const float* val;
  const double* tc;       // [rows, 3]: lse_t, log of the unlisted probability (or -inf), unlisted columns
  const int32_t* labels;  // or null
  const float* gor;       // per-row upstream gradient (reduction none), or null
  float* gs;              // or null
  double* row_loss;       // [rows]
  unsigned long long* first_err;
  int64_t rows, k;
  int cols;
  float inv_t;
  double inv_t_d, temperature, alpha, w, eps, beta, grad_output;
  int64_t valid;
  int32_t ignore_index;
  int reduction, divergence;
  bool uniform, need_sum_kl;
};

template <bool WarpRow>
__device__ __forceinline__ void group_sync() {
  if (WarpRow) __syncwarp();
  else __syncthreads();
}

__device__ __forceinline__ double weighted(double p, double v) { return p > 0.0 ? p * v : 0.0; }

template <bool WarpRow>
__device__ void topk_row(const TopkParams& P, int64_t row, int lane, int size, double* smem) {
  const int cols = P.cols;
  const int64_t off = row * int64_t(cols);
  const float* __restrict__ s = P.s + off;
  const float inv_t = P.inv_t;
  const RowSplit rs(off, cols);
  const RowLabel label(P.labels, row, P.ignore_index);
  const int y = label.y;
  const bool ignored = label.ignored;
  const bool hard = P.labels && !ignored && P.alpha < 1.0;
  const bool need_r = hard && inv_t != 1.0f;
  const bool need_sum = (hard && P.eps > 0.0) || P.need_sum_kl;

  // ---- pass 1
  Online os;
  double sr = 0.0, sum_s = 0.0;
  bool bad = false, over = false;
  auto raise_s = [&](float vm) {
    if (need_r && vm > os.m) sr = (os.m == -INFINITY) ? 0.0 : sr * exp(double(os.m) - double(vm));
    os.raise(vm, inv_t);
  };
  auto term = [&](float sv) {
    os.term(sv, inv_t);
    if (need_r && os.m != -INFINITY) sr += double(expf(sv - os.m));
    if (need_sum) sum_s += double(sv);
    bad = bad || is_bad_f(sv);
    over = over || scaled_overflow_f(sv, inv_t);
  };
  for_row(
      rs, lane, size,
      [&](int j) {
        raise_s(s[j]);
        term(s[j]);
      },
      [&](int j) { return ld4(s + j); },
      [&](int, const float4& v) {
        raise_s(max4(v));
        term(v.x);
        term(v.y);
        term(v.z);
        term(v.w);
      });
  double mx[3] = {double(os.m), bad ? 1.0 : 0.0, over ? 1.0 : 0.0};
  group_reduce<WarpRow, OpMax>(mx, smem);
  const float Ms = float(mx[0]);
  double sm[3] = {os.rebased(Ms, inv_t), (need_r && os.m != -INFINITY) ? sr * exp(double(os.m) - double(Ms)) : 0.0, sum_s};
  group_reduce<WarpRow, OpSum>(sm, smem);
  const double mx_s = double(Ms * inv_t);
  const double ls_s = Ms == -INFINITY ? 0.0 : log(sm[0]);
  const double lse_s = Ms == -INFINITY ? -HUGE_VAL : mx_s + ls_s;
  int err = mx[1] != 0.0 ? kTopkBadValue : 0;
  if (!err && !ignored) {
    if (mx[2] != 0.0) err = kTopkOverflow;  // the maximum included
    else if (lse_s == -HUGE_VAL) err = kTopkNoFinite;
  }
  float* gs = P.gs ? P.gs + off : nullptr;
  if (err || ignored) {
    if (err && lane == 0) record_row_error(P.first_err, P.rows, row, err);
    if (gs) {
      if (lane < rs.head) st1(gs + lane, 0.0f);
      for (int v = lane; v < rs.nvec; v += size) st4(gs + rs.head + 4 * v, make_float4(0.0f, 0.0f, 0.0f, 0.0f));
      if (rs.tail0 + lane < rs.cols) st1(gs + rs.tail0 + lane, 0.0f);
    }
    if (lane == 0) P.row_loss[row] = 0.0;
    return;
  }
  double lse_r = lse_s, mx_r = mx_s, ls_r = ls_s;
  if (need_r) {
    mx_r = double(Ms);
    ls_r = log(sm[1]);
    lse_r = mx_r + ls_r;
  }

  // ---- the listed entries
  const double lse_t = P.tc[3 * row], lpu = P.tc[3 * row + 1], n_off = P.tc[3 * row + 2];
  const double pu = lpu == -HUGE_VAL ? 0.0 : exp(lpu);
  const int div_kind = P.divergence;
  const double beta = P.beta;
  const bool jsd_row = div_kind == int(Divergence::JSD) && P.uniform && n_off > 0.0;
  const int32_t* __restrict__ idx = P.idx + row * P.k;
  const float* __restrict__ val = P.val + row * P.k;
  double e[5] = {0.0, 0.0, 0.0, 0.0, 0.0};  // q listed, log q listed, d0, d1, label listed
  for (int64_t j = lane; j < P.k; j += size) {
    const int32_t col = idx[j];
    if (col == -1) continue;
    const double lq = double(s[col] * inv_t) - lse_s, q = exp(lq);
    const double lp = double(val[j]) * P.inv_t_d - lse_t, p = exp(lp);
    e[0] += q;
    e[1] += lq;
    if (col == y) e[4] = 1.0;
    if (div_kind == int(Divergence::KL)) {
      e[2] += weighted(p, lp - lq);
    } else if (div_kind == int(Divergence::ReverseKL)) {
      e[2] += weighted(q, lp);
    } else {
      const double lm = log(beta * p + (1.0 - beta) * q);
      e[2] += weighted(p, lp - lm);
      e[3] += weighted(q, lq - lm);
      if (jsd_row) {
        const double lmu = log(beta * pu + (1.0 - beta) * q);
        e[2] -= weighted(pu, lpu - lmu);
        e[3] -= weighted(q, lq - lmu);
      }
    }
  }
  group_reduce<WarpRow, OpSum>(e, smem);
  const bool label_listed = e[4] != 0.0;
  const double q_off = n_off > 0.0 ? fmax(0.0, 1.0 - e[0]) : 0.0;

  // the row's upstream gradient, as the CPU core's row_scale
  double g;
  if (P.reduction == int(Reduction::Mean)) g = P.valid > 0 ? P.grad_output / double(P.valid) : 0.0;
  else if (P.reduction == int(Reduction::Sum)) g = P.grad_output;
  else g = P.gor ? double(P.gor[row]) : 1.0;
  const float scale = float(g);

  // ---- divergence and coefficients (CPU: TopkRun::row)
  const float fmx = float(mx_s), fls = float(ls_s), fpu = float(pu), flpu = float(lpu), fbeta = float(beta);
  const float fbeta1 = 1.0f - fbeta;
  const bool use_p = fbeta > 0.0f, use_q = fbeta < 1.0f;
  double d0 = e[2], d1 = e[3], div = 0.0, kd = 0.0;
  float ca = 0.0f, cb = 0.0f, cc0 = 0.0f;
  if (div_kind == int(Divergence::KL)) {
    if (pu > 0.0) {
      const double sum_lq_off = sm[2] * P.inv_t_d - double(cols) * lse_s - e[1];
      d0 += n_off * pu * lpu - pu * sum_lq_off;
    }
    div = d0;
  } else if (div_kind == int(Divergence::ReverseKL)) {
    double h[1] = {0.0};  // sum q log q
    for_row(
        rs, lane, size,
        [&](int j) {
          const float lq = (s[j] * inv_t - fmx) - fls, q = expf(lq);
          h[0] += q > 0.0f ? double(q * lq) : 0.0;
        },
        [&](int j) { return ld4(s + j); },
        [&](int, const float4& v) {
          const float x[4] = {v.x, v.y, v.z, v.w};
          for (int i = 0; i < 4; ++i) {
            const float lq = (x[i] * inv_t - fmx) - fls, q = expf(lq);
            h[0] += q > 0.0f ? double(q * lq) : 0.0;
          }
        });
    group_reduce<WarpRow, OpSum>(h, smem);
    div = h[0] - d0 - (q_off > 0.0 ? q_off * lpu : 0.0);
    kd = is_finite_d(div) ? div : 0.0;
  } else {
    if (jsd_row) {
      double u2[2] = {0.0, 0.0};
      auto elem = [&](float sv) {
        const float lq = (sv * inv_t - fmx) - fls, q = expf(lq);
        const float lm = logf(fmaf(fbeta, fpu, fbeta1 * q));
        if (use_p && fpu > 0.0f) u2[0] += double(fpu * (flpu - lm));
        if (use_q && q > 0.0f) u2[1] += double(q * (lq - lm));
      };
      for_row(
          rs, lane, size, [&](int j) { elem(s[j]); }, [&](int j) { return ld4(s + j); },
          [&](int, const float4& v) {
            elem(v.x);
            elem(v.y);
            elem(v.z);
            elem(v.w);
          });
      group_reduce<WarpRow, OpSum>(u2, smem);
      d0 += u2[0];
      d1 += u2[1];
    } else if (beta < 1.0) {
      d1 += -log(1.0 - beta) * q_off;  // m = (1 - beta) q where p = 0
    }
    div = (beta > 0.0 ? beta * d0 : 0.0) + (beta < 1.0 ? (1.0 - beta) * d1 : 0.0);
    kd = is_finite_d(d1) ? d1 : 0.0;
  }
  double ce = 0.0;
  if (hard) {
    ce = (1.0 - P.eps) * (lse_r - double(s[y]));
    if (P.eps > 0.0) ce += P.eps * (lse_r - sm[2] / double(cols));
  }
  const double loss = (P.w != 0.0 ? P.w * div : 0.0) + (hard ? (1.0 - P.alpha) * ce : 0.0);
  if (lane == 0) P.row_loss[row] = loss;
  if (!gs) return;

  // ---- pass 2 and the listed columns at the upstream scale sc. True where an entry this lane
  // wrote is infinite or NaN.
  const auto write_row = [&](float sc) {
    const double csv = double(sc) * P.w / P.temperature;
    // the affine coefficients of pass 2 (CPU: TopkRun::row's g)
    if (div_kind == int(Divergence::KL)) {
      cb = float(csv);
      cc0 = float(-csv * pu);
    } else if (div_kind == int(Divergence::ReverseKL)) {
      ca = float(csv);
      cb = float(csv * (-ls_s - lpu - kd));
    } else if (!jsd_row) {
      cb = beta < 1.0 ? float(csv * (1.0 - beta) * (-log(1.0 - beta) - kd)) : 0.0f;
    }
    const float ch = hard ? float(double(sc) * (1.0 - P.alpha)) : 0.0f;
    const float chs = float(double(ch) * P.eps / double(cols));
    const float fmx_r = float(mx_r), fls_r = float(ls_r), fcs = float(csv * (1.0 - beta)), fkd = float(kd);
    bool nonfinite = false;
    auto grad = [&](float sv) {
      const float z = sv * inv_t;
      const float lq = (z - fmx) - fls, q = expf(lq);
      float gv;
      if (!jsd_row) {
        const float t = ca != 0.0f ? fmaf(ca, z - fmx, cb) : cb;
        gv = (q > 0.0f ? q * t : 0.0f) + cc0;
      } else {
        const float lm = logf(fmaf(fbeta, fpu, fbeta1 * q));
        const float qd = q > 0.0f ? q * (lq - lm) : 0.0f;
        gv = use_q ? fcs * fmaf(-fkd, q, qd) : 0.0f;
      }
      if (hard) {
        const float r = need_r ? expf((sv - fmx_r) - fls_r) : q;
        gv = gv + fmaf(ch, r, -chs);
      }
      nonfinite = nonfinite || !is_finite_f(gv);
      return gv;
    };
    for_row(
        rs, lane, size, [&](int j) { st1(gs + j, grad(s[j])); }, [&](int j) { return ld4(s + j); },
        [&](int j, const float4& v) { st4(gs + j, make_float4(grad(v.x), grad(v.y), grad(v.z), grad(v.w))); });
    group_sync<WarpRow>();  // the listed columns are rewritten below by other threads of the row

    // ---- the listed columns and the one-hot part, in float64
    for (int64_t j = lane; j < P.k; j += size) {
      const int32_t col = idx[j];
      if (col == -1) continue;
      const double lq = double(s[col] * inv_t) - lse_s, q = exp(lq);
      const double lp = double(val[j]) * P.inv_t_d - lse_t, p = exp(lp);
      double ds;
      if (div_kind == int(Divergence::KL)) ds = q - p;
      else if (div_kind == int(Divergence::ReverseKL)) ds = weighted(q, lq - lp) - kd * q;
      else ds = beta < 1.0 ? (1.0 - beta) * (weighted(q, lq - log(beta * p + (1.0 - beta) * q)) - kd * q) : 0.0;
      double v = csv * ds;
      if (hard) {
        double hv = exp(double(s[col]) - lse_r) - P.eps / double(cols);
        if (col == y) hv -= 1.0 - P.eps;
        v += double(sc) * (1.0 - P.alpha) * hv;
      }
      gs[col] = float(v);
      nonfinite = nonfinite || !is_finite_f(gs[col]);
    }
    if (hard && !label_listed && lane == 0) gs[y] -= float(double(ch) * (1.0 - P.eps));
    return nonfinite;
  };
  double flag[1] = {write_row(scale) ? 1.0 : 0.0};
  group_sync<WarpRow>();
  group_reduce<WarpRow, OpMax>(flag, smem);
  if (flag[0] != 0.0 && is_finite_d(loss)) {
    const double a = fabs(double(scale));
    const double coef = fmax(a * fabs(P.w) / P.temperature, a * (1.0 - P.alpha));
    int ex = 0;
    frexp(coef, &ex);
    const int k = ex + 3;
    if (k > 0) {  // CPU: TopkRun::rescaled_row, the row at scale * 2^-k, each entry then times 2^k
      group_sync<WarpRow>();
      write_row(float(ldexp(double(scale), -k)));
      group_sync<WarpRow>();
      for_row(
          rs, lane, size, [&](int j) { gs[j] = float(ldexp(double(gs[j]), k)); }, [&](int j) { return ld4(gs + j); },
          [&](int j, const float4& v) {
            st4(gs + j, make_float4(float(ldexp(double(v.x), k)), float(ldexp(double(v.y), k)), float(ldexp(double(v.z), k)),
                                    float(ldexp(double(v.w), k))));
          });
    }
  }
}

template <bool WarpRow>
__global__ void __launch_bounds__(kMaxBlock) topk_kernel(const TopkParams P) {
  __shared__ double smem[32 * 5];
  const RowGroup<WarpRow> grp;
  // every thread of a row group takes the same rows, so the group's reductions stay in step
  for (int64_t row = grp.first_row; row < P.rows; row += grp.row_stride) topk_row<WarpRow>(P, row, grp.lane, grp.size, smem);
}

}  // namespace
}  // namespace detail

using namespace detail;

namespace detail {

std::vector<double> topk_teacher_constants(const TopkLossArgs& a) {
  const DistillLossArgs& b = a.base;
  // Each row's teacher constants from its k entries (the CPU core forms them the same way).
  const double inv_t_d = 1.0 / b.temperature;
  std::vector<double> tc(size_t(b.rows) * 3);
  for (int64_t r = 0; r < b.rows; ++r) {
    int64_t listed = 0;
    const double u = topk_off_list_value(a, r, &listed);
    const int64_t n_off = b.cols - listed;
    const bool have_u = n_off > 0 && u != -HUGE_VAL;
    double mt = -HUGE_VAL, sum = 0.0;
    for (int64_t j = 0; j < a.k; ++j)
      if (a.indices[r * a.k + j] != -1) mt = std::max(mt, double(a.values[r * a.k + j]) * inv_t_d);
    if (have_u) mt = std::max(mt, u * inv_t_d);
    for (int64_t j = 0; j < a.k; ++j)
      if (a.indices[r * a.k + j] != -1) sum += std::exp(double(a.values[r * a.k + j]) * inv_t_d - mt);
    if (have_u) sum += double(n_off) * std::exp(u * inv_t_d - mt);
    const double lse_t = mt + std::log(sum);  // rows that end up -inf here are ignored ones
    tc[size_t(3 * r)] = lse_t;
    tc[size_t(3 * r + 1)] = have_u ? u * inv_t_d - lse_t : -HUGE_VAL;
    tc[size_t(3 * r + 2)] = double(n_off);
  }
  return tc;
}

Status topk_on_device(const TopkLossArgs& a, int64_t valid, const TopkDevicePtrs& d, DistillLossResult* result) {
  const DistillLossArgs& b = a.base;
  Scratch rl, err;
  const char* what = "allocating scratch memory";
  Status st;
  if (!(st = rl.alloc(size_t(b.rows) * sizeof(double), what)).ok()) return st;
  if (!(st = err.alloc(sizeof(unsigned long long), what)).ok()) return st;
  if (!(st = cuda_status(cudaMemsetAsync(err.as<void>(), 0, sizeof(unsigned long long), stream()), "clearing scratch")).ok())
    return st;

  const loss_common::LossTerms lt = loss_common::loss_terms(b);
  TopkParams P;
  P.s = d.s;
  P.idx = d.idx;
  P.val = d.val;
  P.tc = d.tc;
  P.labels = d.labels;
  P.gor = b.reduction == Reduction::None ? d.gor : nullptr;
  P.gs = d.gs;
  P.row_loss = rl.as<double>();
  P.first_err = err.as<unsigned long long>();
  P.rows = b.rows;
  P.k = a.k;
  P.cols = int(b.cols);
  P.inv_t = lt.inv_t;
  P.inv_t_d = 1.0 / b.temperature;
  P.temperature = b.temperature;
  P.alpha = lt.alpha;
  P.w = lt.w;
  P.eps = lt.eps;
  P.beta = b.beta;
  P.grad_output = b.grad_output;
  P.valid = valid;
  P.ignore_index = b.ignore_index;
  P.reduction = int(b.reduction);
  P.divergence = int(b.divergence);
  P.uniform = a.missing == MissingMass::Uniform;
  P.need_sum_kl = b.divergence == Divergence::KL && P.uniform;

  const RowLaunch l = row_launch(b.rows, b.cols);
  if (l.warp_rows) {
    KD_LAUNCH(topk_kernel<true>, l.grid, l.block, stream(), P);
  } else {
    KD_LAUNCH(topk_kernel<false>, l.grid, l.block, stream(), P);
  }
  if (!(st = cuda_status(cudaGetLastError(), "launching the top-k distillation kernel")).ok()) return st;

  unsigned long long first_err = 0;
  if (!(st = download(&first_err, err.as<void>(), sizeof first_err, "running the top-k distillation kernel")).ok()) return st;
  if (first_err) {
    const int64_t row = b.rows - int64_t(first_err >> 3);
    const int code = int(first_err & 7u);
    if (code == kTopkOverflow) return Status::RangeErr(temperature_overflow_message(b.temperature, "student", row));
    if (code == kTopkNoFinite) return Status::RangeErr(all_neg_inf_error("student", row));
    // described as the CPU core does, by the student's first bad value (an ignored row's too): from
    // the host array, or (the fused head's logits) from the rows up to the flagged one on the device
    if (b.student) return Status::RangeErr(describe_bad_value("student", b.student, b.rows, b.cols));
    std::vector<float> buf(size_t((row + 1) * b.cols));
    if (!(st = download(buf.data(), d.s, buf.size() * sizeof(float), "reading the student")).ok()) return st;
    return Status::RangeErr(describe_bad_value("student", buf.data(), row + 1, b.cols));
  }
  std::vector<double> row_loss(size_t(b.rows));
  if (!(st = download(row_loss.data(), rl.as<void>(), row_loss.size() * sizeof(double), "copying the outputs to the host")).ok())
    return st;
  return loss_common::finish(b, result, valid, [&](int64_t r) { return row_loss[size_t(r)]; });
}

}  // namespace detail

Status topk_distill_loss(const TopkLossArgs& a, DistillLossResult* result) {
  int64_t valid = a.base.rows;
  Status st = validate_topk_args(a, &valid);
  if (!st.ok()) return st;
  {
    std::vector<int32_t> stamp;
    if (!(st = validate_topk_teacher(a, stamp)).ok()) return st;
  }
  const DistillLossArgs& b = a.base;
  if (!(st = require_device()).ok()) return st;
  if (!(st = check_cols_fit(b.cols)).ok()) return st;
  const std::vector<double> tc = topk_teacher_constants(a);

  const size_t n = size_t(b.rows) * size_t(b.cols), nb = n * sizeof(float), nk = size_t(b.rows) * size_t(a.k);
  Scratch s, idx, val, tcd, labels, gor, gs;
  const char* what = "copying the inputs to the device";
  if (!(st = upload_scratch(&s, b.student, nb, what)).ok()) return st;
  if (!(st = upload_scratch(&idx, a.indices, nk * sizeof(int32_t), what)).ok()) return st;
  if (!(st = upload_scratch(&val, a.values, nk * sizeof(float), what)).ok()) return st;
  if (!(st = upload_scratch(&tcd, tc.data(), tc.size() * sizeof(double), what)).ok()) return st;
  if (!(st = upload_scratch(&labels, b.labels, size_t(b.rows) * sizeof(int32_t), what)).ok()) return st;
  if (b.reduction == Reduction::None &&
      !(st = upload_scratch(&gor, b.grad_output_rows, size_t(b.rows) * sizeof(float), what)).ok())
    return st;
  if (b.grad_student && !(st = gs.alloc(nb, "allocating the outputs on the device")).ok()) return st;

  TopkDevicePtrs d;
  d.s = s.as<float>();
  d.idx = idx.as<int32_t>();
  d.val = val.as<float>();
  d.tc = tcd.as<double>();
  d.labels = labels.as<int32_t>();
  d.gor = gor.as<float>();
  d.gs = gs.as<float>();
  if (!(st = topk_on_device(a, valid, d, result)).ok()) return st;
  if (b.grad_student && !(st = download(b.grad_student, gs.as<void>(), nb, "copying the outputs to the host")).ok()) return st;
  return Status::Ok();
}

}  // namespace cuda
}  // namespace kdfuse
