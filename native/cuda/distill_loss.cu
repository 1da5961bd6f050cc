// The fused distillation loss on the GPU: docs/design.md "The math"; the CPU twin is
// native/core/distill_loss.cpp + chunk_kernels_impl.h, whose formulas are mirrored term by term.
//
// One kernel does a whole row (one warp per row when rows are short, one block per row else):
//   pass 1  reads s and t once: online max + sum of exp for s/T and t/T (and s at T = 1 and
//           sum(s) when the hard-label term needs them), a NaN / +Infinity check; group
//           reductions (max, then sums in float64) give the log-normalisers;
//   pass 2  reads s and t again (mostly from L2): the divergence terms, and the gradients, which
//           are written once, complete. Where a gradient needs the row's divergence value first
//           (teacher gradient of KL, student gradient of reverse KL, JSD), a read-only pass forms
//           the divergence before the writing pass.
// Per-row losses go to a float64 array that one block then sums in a fixed order: no
// floating-point atomics, results do not change from run to run. A prologue kernel counts the
// rows that are not ignored (the mean needs that count before any gradient is scaled) and checks
// labels and per-row upstream gradients.
#include <algorithm>
#include <vector>

#include "internal.h"
#include "loss_common.h"
#include "row_common.cuh"
#include "kl_term.h"

namespace kdfuse {
namespace cuda {
namespace detail {
namespace {

enum RowErr { kErrBadValue = 1, kErrNoFiniteStudent = 2, kErrNoFiniteTeacher = 3, kErrOverflowStudent = 4, kErrOverflowTeacher = 5 };

// Written by the kernels, read back once per call. Zero means "nothing found".
struct DistillDevResult {
  unsigned long long valid;      // rows not ignored
  unsigned long long bad_label;  // rows - (first row with a label out of range)
  unsigned long long bad_gor;    // rows - (first row with a non-finite gradOutput[row])
  unsigned long long first_err;  // (rows - row) << 2 | RowErr of the first failing row
  double total;                  // sum of the per-row losses
};

struct DistillParams {
  const float* s;
  const float* t;
  const int32_t* labels;  // or null
  const float* gor;       // per-row upstream gradient (reduction none), or null
  float* gs;              // or null
  float* gt;              // or null
  float* loss_rows;       // or null
  double* row_loss;       // [rows]
  DistillDevResult* res;
  int64_t rows;
  int cols;
  float inv_t;
  double temperature, alpha, w, eps, beta, grad_output;
  int32_t ignore_index;
  int reduction;  // Reduction as int
};

// All row-uniform values the element loops need.
struct RowConsts {
  float inv_t;
  float mx_s, mx_t, mx_r;  // row maxima of s/T, t/T, s
  float ls_s, ls_t, ls_r;  // log(sum exp(z - max)) of each
  float delta;             // ls_t - ls_s, rounded once
  float cs, ct, ch, chs, ch1, beta, beta1, ks, kt;
  int post_k;  // 0, or the k of a row redone at scale * 2^-k (each gradient entry then times 2^k)
  int y;
  bool hard, use_p, use_q;
};

// log q and log p of one element: s/T rounded, then shifted by the row maximum, then by the log-sum.
struct Logs {
  float as, at, ls, lt, q, p;
  __device__ __forceinline__ Logs(const RowConsts& c, float sv, float tv) {
    as = sv * c.inv_t - c.mx_s;
    at = tv * c.inv_t - c.mx_t;
    ls = as - c.ls_s;
    lt = at - c.ls_t;
    q = expf(ls);
    p = expf(lt);
  }
  // JSD's mixture m = beta p + (1 - beta) q: expf returns denormals below the smallest normal float,
  // where the CPU core's exp flushes to 0 (vec_scalar.h), so the JSD terms use p and q flushed the same way.
  __device__ __forceinline__ float p_flushed() const { return lt < -87.3365447505531f ? 0.0f : p; }
  __device__ __forceinline__ float q_flushed() const { return ls < -87.3365447505531f ? 0.0f : q; }
};

// One lane for the shared KL / JSD term formulas (native/core/kl_term.h), with the CPU core's
// scalar semantics: exp flushed to 0 below the smallest normal float, masks as 1 / 0.
struct VCuda {
  using R = float;
  __device__ static R set1(float x) { return x; }
  __device__ static R zero() { return 0.0f; }
  __device__ static R add(R a, R b) { return a + b; }
  __device__ static R sub(R a, R b) { return a - b; }
  __device__ static R mul(R a, R b) { return a * b; }
  __device__ static R div(R a, R b) { return a / b; }
  __device__ static R fma(R a, R b, R c) { return fmaf(a, b, c); }
  __device__ static R fnma(R a, R b, R c) { return fmaf(-a, b, c); }
  __device__ static R exp_nonpos(R x) { return x < -87.3365447505531f ? 0.0f : expf(x); }
  __device__ static R log(R x) { return logf(x); }
  __device__ static R sel_pos(R p, R v) { return p > 0.0f ? v : 0.0f; }
  __device__ static R inf_if_only_first(R la, R lb, R v) { return (la != -INFINITY && lb == -INFINITY) ? INFINITY : v; }
  __device__ static R abs_lt(R x, float c) { return fabsf(x) < c ? 1.0f : 0.0f; }
  __device__ static R select(R m, R a, R b) { return m != 0.0f ? a : b; }
  __device__ static R gt0(R x) { return x > 0.0f ? 1.0f : 0.0f; }
  __device__ static R neg_abs(R x) { return -fabsf(x); }
};

template <int Div, int Hard>
struct Elem {
  // The divergence terms of one element into acc0 / acc1, and its gradients (CPU: pass 2 + the
  // label correction + pass 3, in the same order).
  // Products and sums are rounded one by one (--fmad=false); fmaf only where the CPU core fuses.
  __device__ __forceinline__ static void run(const RowConsts& c, int j, float sv, float tv, double& acc0, double& acc1,
                                             double& acc2, double& acc3, float& gs, float& gt) {
    const Logs L(c, sv, tv);
    const float as = L.as, at = L.at, q = L.q, p = L.p;
    float g_s = 0.0f, g_t = 0.0f;
    // the divergence terms in the CPU core's form (native/core/kl_term.h)
    if (Div == 0) {  // KL(p || q); log p - log q formed from the shifted logits
      const float d = (at - as) - c.delta;
      float term, q_minus_p;
      kdfuse::kl_term<VCuda>(q, p, d, &term, &q_minus_p);
      // decided by the log-probabilities, as the CPU core: an underflowed teacher probability is > 0
      acc0 += (at != -INFINITY && as == -INFINITY) ? double(INFINITY) : double(term);
      acc1 += double(kdfuse::support_mismatch<VCuda>(at, as)) - double(q_minus_p);  // sum q expm1(d), for kl_delta_corrected
      g_s = c.cs * q_minus_p;
      if (c.ct != 0.0f) g_t = c.ct * (p > 0.0f ? p * d : 0.0f);
    } else if (Div == 1) {  // KL(q || p)
      const float d = (as - at) + c.delta;
      float term, p_minus_q;
      kdfuse::kl_term<VCuda>(p, q, d, &term, &p_minus_q);
      acc0 += (as != -INFINITY && at == -INFINITY) ? double(INFINITY) : double(term);
      acc1 += double(kdfuse::support_mismatch<VCuda>(at, as)) - double(p_minus_q);  // sum p expm1(d), for kl_delta_corrected
      if (c.cs != 0.0f) g_s = c.cs * (q > 0.0f ? q * d : 0.0f);
      g_t = c.ct * p_minus_q;
    } else {  // JSD: beta KL(p || m) + (1 - beta) KL(q || m), each as sum m f(x)
      const float pf = L.p_flushed(), qf = L.q_flushed();
      float xpm, xqm, term, unused;
      const float d = (at - as) - c.delta;
      kdfuse::jsd_logs<VCuda>(d, c.beta, c.beta, c.beta1, &xpm, &xqm);
      // CPU pass 2: sum q d and sum q expm1(d) for jsd_delta_corrected (q as that pass forms it)
      if (qf > 0.0f) acc2 += double(qf * d);
      acc3 += double(kdfuse::support_mismatch<VCuda>(at, as));  // (F19)
      if (fabsf(d) < kdfuse::kSmallX) acc3 += double(qf * fmaf(d * d, kdfuse::expm1_g<VCuda>(d), d));
      else if (qf > 0.0f) acc3 += double(INFINITY);
      const float mix = fmaf(c.beta, pf, c.beta1 * qf);
      if (c.use_p) {
        kdfuse::kl_term<VCuda>(mix, pf, xpm, &term, &unused);
        acc0 += double(term);
        g_t = (c.ct * c.beta) * (pf > 0.0f ? pf * xpm : 0.0f);
      }
      if (c.use_q) {
        kdfuse::kl_term<VCuda>(mix, qf, xqm, &term, &unused);
        acc1 += double(term);
        g_s = (c.cs * c.beta1) * (qf > 0.0f ? qf * xqm : 0.0f);
      }
    }
    if (Hard != 0 && c.hard) {
      const float r = Hard == 1 ? q : expf((sv - c.mx_r) - c.ls_r);
      g_s = g_s + fmaf(c.ch, r, -c.chs);
      if (j == c.y) g_s = g_s - c.ch1;
    }
    if (c.ks != 0.0f) g_s = fmaf(-c.ks, q, g_s);
    if (c.kt != 0.0f) g_t = fmaf(-c.kt, p, g_t);
    // CPU: DistillRun::rescaled_row, a row computed at scale * 2^-k and multiplied back in float64
    if (c.post_k != 0) {
      g_s = float(ldexp(double(g_s), c.post_k));
      g_t = float(ldexp(double(g_t), c.post_k));
    }
    gs = g_s;
    gt = g_t;
  }
};

// Pass 2 over one row. Write: store the gradients asked for (last read of s and t).
template <int Div, int Hard, bool Write>
__device__ __forceinline__ void row_pass2(const DistillParams& P, const RowConsts& c, const RowSplit& rs, int64_t off,
                                          int lane, int size, double& acc0, double& acc1, double& acc2, double& acc3,
                                          bool& nonfinite) {
  const float* __restrict__ s = P.s + off;
  const float* __restrict__ t = P.t + off;
  float* __restrict__ gs = P.gs ? P.gs + off : nullptr;
  float* __restrict__ gt = P.gt ? P.gt + off : nullptr;
  struct In {
    float4 s, t;
  };
  for_row(
      rs, lane, size,
      [&](int j) {
        float a, b;
        Elem<Div, Hard>::run(c, j, Write ? ld1_last(s + j) : s[j], Write ? ld1_last(t + j) : t[j], acc0, acc1, acc2, acc3, a, b);
        if (Write && gs) st1(gs + j, a);
        if (Write && gt) st1(gt + j, b);
        if (Write) nonfinite = nonfinite || (gs && !is_finite_f(a)) || (gt && !is_finite_f(b));
      },
      [&](int j) { return Write ? In{ld4_last(s + j), ld4_last(t + j)} : In{ld4(s + j), ld4(t + j)}; },
      [&](int j, const In& in) {
        float4 a, b;
        Elem<Div, Hard>::run(c, j, in.s.x, in.t.x, acc0, acc1, acc2, acc3, a.x, b.x);
        Elem<Div, Hard>::run(c, j + 1, in.s.y, in.t.y, acc0, acc1, acc2, acc3, a.y, b.y);
        Elem<Div, Hard>::run(c, j + 2, in.s.z, in.t.z, acc0, acc1, acc2, acc3, a.z, b.z);
        Elem<Div, Hard>::run(c, j + 3, in.s.w, in.t.w, acc0, acc1, acc2, acc3, a.w, b.w);
        if (Write && gs) st4(gs + j, a);
        if (Write && gt) st4(gt + j, b);
        if (Write)
          nonfinite = nonfinite || (gs && !(is_finite_f(a.x) && is_finite_f(a.y) && is_finite_f(a.z) && is_finite_f(a.w))) ||
                      (gt && !(is_finite_f(b.x) && is_finite_f(b.y) && is_finite_f(b.z) && is_finite_f(b.w)));
      });
}

__device__ __forceinline__ void zero_row(float* g, const RowSplit& rs, int lane, int size) {
  if (!g) return;
  if (lane < rs.head) st1(g + lane, 0.0f);
  for (int v = lane; v < rs.nvec; v += size) st4(g + rs.head + 4 * v, make_float4(0.0f, 0.0f, 0.0f, 0.0f));
  if (rs.tail0 + lane < rs.cols) st1(g + rs.tail0 + lane, 0.0f);
}

template <int Div, int Hard, bool WarpRow>
__device__ __forceinline__ void distill_row(const DistillParams& P, int64_t row, int lane, int size, double* smem) {
  const int cols = P.cols;
  const int64_t off = row * int64_t(cols);
  const float* __restrict__ s = P.s + off;
  const float* __restrict__ t = P.t + off;
  const float inv_t = P.inv_t;
  const RowSplit rs(off, cols);

  const RowLabel label(P.labels, row, P.ignore_index);
  const int y = label.y;
  const bool ignored = label.ignored;
  // (a label out of range fails the whole call; such a row just gets no hard term)
  const bool hard = Hard != 0 && !ignored && y >= 0 && y < cols;
  const bool need_r = Hard == 2 && hard;
  const bool need_sum = hard && P.eps > 0.0;

  // ---- pass 1: online statistics, one read of s and t
  Online os, ot;
  double sr = 0.0, sum_s = 0.0;  // sum exp(s - max s) (shares os.m), sum s
  bool bad = false, over_s = false, over_t = false;
  auto raise_s = [&](float vm) {
    if (need_r && vm > os.m) sr = (os.m == -INFINITY) ? 0.0 : sr * exp(double(os.m) - double(vm));
    os.raise(vm, inv_t);
  };
  auto terms = [&](float sv, float tv) {
    os.term(sv, inv_t);
    ot.term(tv, inv_t);
    if (need_r && os.m != -INFINITY) sr += double(expf(sv - os.m));
    if (need_sum) sum_s += double(sv);
    bad = bad || is_bad_f(sv) || is_bad_f(tv);
    over_s = over_s || scaled_overflow_f(sv, inv_t);
    over_t = over_t || scaled_overflow_f(tv, inv_t);
  };
  struct In {
    float4 s, t;
  };
  for_row(
      rs, lane, size,
      [&](int j) {
        const float sv = s[j], tv = t[j];
        raise_s(sv);
        ot.raise(tv, inv_t);
        terms(sv, tv);
      },
      [&](int j) { return In{ld4(s + j), ld4(t + j)}; },
      [&](int, const In& in) {
        raise_s(max4(in.s));
        ot.raise(max4(in.t), inv_t);
        terms(in.s.x, in.t.x);
        terms(in.s.y, in.t.y);
        terms(in.s.z, in.t.z);
        terms(in.s.w, in.t.w);
      });

  double mx[5] = {double(os.m), double(ot.m), bad ? 1.0 : 0.0, over_s ? 1.0 : 0.0, over_t ? 1.0 : 0.0};
  group_reduce<WarpRow, OpMax>(mx, smem);
  const float Ms = float(mx[0]), Mt = float(mx[1]);
  int err = mx[2] != 0.0 ? kErrBadValue : 0;

  double sm[4] = {os.rebased(Ms, inv_t), ot.rebased(Mt, inv_t),
                  (need_r && os.m != -INFINITY) ? sr * exp(double(os.m) - double(Ms)) : 0.0, sum_s};
  group_reduce<WarpRow, OpSum>(sm, smem);
  // normaliser = max + log-sum, as the CPU core's combine_lse
  const double mx_s = double(Ms * inv_t), mx_t = double(Mt * inv_t);
  const double ls_s = Ms == -INFINITY ? 0.0 : log(sm[0]), ls_t = Mt == -INFINITY ? 0.0 : log(sm[1]);
  const double lse_s = Ms == -INFINITY ? -HUGE_VAL : mx_s + ls_s;
  const double lse_t = Mt == -INFINITY ? -HUGE_VAL : mx_t + ls_t;
  if (!err && !ignored) {
    // a finite maximum that 1/T carries out of float32 (as the CPU core's pass 1)
    // a finite logit (the maximum or any other) that 1/T carries out of float32, as the CPU core's pass 1
    if (mx[3] != 0.0) err = kErrOverflowStudent;
    else if (mx[4] != 0.0) err = kErrOverflowTeacher;
    else if (lse_s == -HUGE_VAL) err = kErrNoFiniteStudent;
    else if (lse_t == -HUGE_VAL) err = kErrNoFiniteTeacher;
  }
  if (err || ignored) {  // contributes nothing, and no gradient
    if (err && lane == 0) record_row_error(&P.res->first_err, P.rows, row, err);
    zero_row(P.gs ? P.gs + off : nullptr, rs, lane, size);
    zero_row(P.gt ? P.gt + off : nullptr, rs, lane, size);
    if (lane == 0) {
      P.row_loss[row] = 0.0;
      if (P.loss_rows) P.loss_rows[row] = 0.0f;
    }
    return;
  }

  // ---- row constants (float64, as the CPU core's RowState)
  double lse_r = lse_s, mx_r = mx_s, ls_r = ls_s, ce = 0.0;
  if (hard) {
    if (need_r) {
      mx_r = double(Ms);
      ls_r = log(sm[2]);
      lse_r = mx_r + ls_r;
    }
    const double s_y = double(s[y]);
    ce = (1.0 - P.eps) * (lse_r - s_y);
    if (P.eps > 0.0) ce += P.eps * (lse_r - sm[3] / double(cols));
  }
  double g;
  if (P.reduction == int(Reduction::Mean)) {
    const unsigned long long v = P.res->valid;
    g = v > 0 ? P.grad_output / double(v) : 0.0;
  } else if (P.reduction == int(Reduction::Sum)) {
    g = P.grad_output;
  } else {
    g = P.gor ? double(P.gor[row]) : 1.0;
  }
  const float scale = float(g);
  RowConsts c;
  c.inv_t = inv_t;
  c.mx_s = float(mx_s);
  c.mx_t = float(mx_t);
  c.mx_r = float(mx_r);
  c.ls_s = float(ls_s);
  c.ls_t = float(ls_t);
  c.ls_r = float(ls_r);
  c.delta = float(ls_t - ls_s);
  c.beta = float(P.beta);
  c.beta1 = 1.0f - c.beta;
  c.use_p = c.beta > 0.0f;
  c.use_q = c.beta < 1.0f;
  c.y = y;
  c.hard = hard;
  // the gradient coefficients of an upstream scale (CPU: DistillRun::chunk)
  const auto set_scale = [&](float sc) {
    const double cs = double(sc) * P.w / P.temperature;
    c.cs = float(cs);
    c.ct = c.cs;
    c.ch = hard ? float(double(sc) * (1.0 - P.alpha)) : 0.0f;
    c.chs = float(double(c.ch) * P.eps / double(cols));
    c.ch1 = float(double(c.ch) * (1.0 - P.eps));
    c.ks = c.kt = 0.0f;
    c.post_k = 0;
    return cs;
  };
  double cs = set_scale(scale);

  // ---- pass 2 (and the read-only divergence pass before it where a gradient needs the value)
  const bool want_s = P.gs != nullptr, want_t = P.gt != nullptr;
  const bool first = (Div == 0 && want_t) || (Div == 1 && want_s) ||
                     (Div == 2 && ((want_s && P.beta < 1.0) || (want_t && P.beta > 0.0)));
  double acc0 = 0.0, acc1 = 0.0, acc2 = 0.0, acc3 = 0.0;
  bool nonfinite = false;
  if (first) row_pass2<Div, Hard, false>(P, c, rs, off, lane, size, acc0, acc1, acc2, acc3, nonfinite);
  else row_pass2<Div, Hard, true>(P, c, rs, off, lane, size, acc0, acc1, acc2, acc3, nonfinite);
  double dv[4] = {acc0, acc1, acc2, acc3};
  group_reduce<WarpRow, OpSum>(dv, smem);
  // CPU: combine2, the divergence at the exact log-sum difference
  if (Div != 2) {
    dv[0] = kdfuse::kl_delta_corrected(dv[0], dv[1]);
    dv[1] = 0.0;
  } else {
    kdfuse::jsd_delta_corrected(P.beta, dv[3], dv[2], &dv[0], &dv[1]);
  }
  // CPU: pass3_constants. An infinite divergence leaves the partial gradient as it is.
  const auto set_pass3 = [&]() {
    double ks = 0.0, kt = 0.0;
    if (Div == 0) kt = want_t ? cs * dv[0] : 0.0;
    if (Div == 1) ks = want_s ? cs * dv[0] : 0.0;
    if (Div == 2) {
      ks = (want_s && P.beta < 1.0) ? cs * (1.0 - P.beta) * dv[1] : 0.0;
      kt = (want_t && P.beta > 0.0) ? cs * P.beta * dv[0] : 0.0;
    }
    c.ks = is_finite_d(ks) ? float(ks) : 0.0f;
    c.kt = is_finite_d(kt) ? float(kt) : 0.0f;
  };
  double unused0 = 0.0, unused1 = 0.0, unused2 = 0.0, unused3 = 0.0;
  if (first) {
    set_pass3();
    row_pass2<Div, Hard, true>(P, c, rs, off, lane, size, unused0, unused1, unused2, unused3, nonfinite);
  }
  double div;
  if (Div == 2) {
    div = 0.0;
    if (P.beta > 0.0) div += P.beta * dv[0];
    if (P.beta < 1.0) div += (1.0 - P.beta) * dv[1];
  } else {
    div = dv[0];
  }
  // CPU: DistillRun::rescaled_row. A gradient entry came out infinite or NaN where the loss is
  // finite: the row again at scale * 2^-k, k bringing every coefficient below 1/8.
  double flag[2] = {nonfinite ? 1.0 : 0.0, 0.0};
  group_reduce<WarpRow, OpMax>(flag, smem);
  if (flag[0] != 0.0 && is_finite_d(div)) {
    const double a = fabs(double(scale));
    const double coef = fmax(a * fabs(P.w) / P.temperature, hard ? a * (1.0 - P.alpha) : 0.0);
    int e = 0;
    frexp(coef, &e);
    const int k = e + 3;
    if (k > 0) {
      cs = set_scale(float(ldexp(double(scale), -k)));
      if (first) set_pass3();
      c.post_k = k;
      row_pass2<Div, Hard, true>(P, c, rs, off, lane, size, unused0, unused1, unused2, unused3, nonfinite);
    }
  }
  const double loss = (P.w != 0.0 ? P.w * div : 0.0) + (hard ? (1.0 - P.alpha) * ce : 0.0);
  if (lane == 0) {
    P.row_loss[row] = loss;
    if (P.loss_rows) P.loss_rows[row] = float(loss);
  }
}

template <int Div, int Hard, bool WarpRow>
__global__ void __launch_bounds__(kMaxBlock) distill_kernel(const DistillParams P) {
  __shared__ double smem[32 * 4];
  const RowGroup<WarpRow> grp;
  for (int64_t row = grp.first_row; row < P.rows; row += grp.row_stride)
    distill_row<Div, Hard, WarpRow>(P, row, grp.lane, grp.size, smem);
}

constexpr int kPrologueBlock = 256;

// Valid-row count, label range and per-row upstream gradient checks.
__global__ void __launch_bounds__(kPrologueBlock) distill_prologue(const DistillParams P) {
  unsigned long long count = 0;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t r = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; r < P.rows; r += stride) {
    if (P.labels) {
      const int32_t y = P.labels[r];
      if (y != P.ignore_index) {
        ++count;
        if (y < 0 || y >= P.cols) atomicMax(&P.res->bad_label, static_cast<unsigned long long>(P.rows - r));
      }
    } else {
      ++count;
    }
    if (P.reduction == int(Reduction::None) && P.gor && !is_finite_d(double(P.gor[r])))
      atomicMax(&P.res->bad_gor, static_cast<unsigned long long>(P.rows - r));
  }
  for (int o = 16; o > 0; o >>= 1) count += __shfl_xor_sync(0xffffffffu, count, o);
  if ((threadIdx.x & 31u) == 0 && count) atomicAdd(&P.res->valid, count);  // integers: exact in any order
}

constexpr int kFinalizeBlock = 512;

// Sum of the per-row losses by one block: thread i adds rows i, i + 512, ... in order, then the
// fixed-order group reduction.
__global__ void __launch_bounds__(kFinalizeBlock) distill_finalize(const DistillParams P) {
  __shared__ double smem[32];
  double v[1] = {0.0};
  for (int64_t r = threadIdx.x; r < P.rows; r += blockDim.x) v[0] += P.row_loss[r];
  group_reduce<false, OpSum>(v, smem);
  if (threadIdx.x == 0) P.res->total = v[0];
}

using KernelFn = void (*)(const DistillParams);

template <int Div, int Hard>
KernelFn pick_rows(bool warp_rows) {
  return warp_rows ? &distill_kernel<Div, Hard, true> : &distill_kernel<Div, Hard, false>;
}

template <int Div>
KernelFn pick_hard(int hard, bool warp_rows) {
  switch (hard) {
    case 0: return pick_rows<Div, 0>(warp_rows);
    case 1: return pick_rows<Div, 1>(warp_rows);
    default: return pick_rows<Div, 2>(warp_rows);
  }
}

KernelFn pick(Divergence d, int hard, bool warp_rows) {
  switch (d) {
    case Divergence::KL: return pick_hard<0>(hard, warp_rows);
    case Divergence::ReverseKL: return pick_hard<1>(hard, warp_rows);
    default: return pick_hard<2>(hard, warp_rows);
  }
}

// Device pointers of one call.
struct DistillOutcome {
  double total = 0.0;
  int64_t valid = 0;
  int64_t bad_label_row = -1, bad_gor_row = -1, err_row = -1;
  int err_code = 0;
};

// Runs the kernels of one call on validated arguments and reads back the outcome.
Status run_distill(const DistillLossArgs& a, const DistillPtrs& d, DistillOutcome* out) {
  Scratch res, row_loss;
  Status st = res.alloc(sizeof(DistillDevResult), "allocating scratch memory");
  if (!st.ok()) return st;
  if (!(st = row_loss.alloc(size_t(a.rows) * sizeof(double), "allocating scratch memory")).ok()) return st;
  if (!(st = cuda_status(cudaMemsetAsync(res.as<void>(), 0, sizeof(DistillDevResult), stream()), "clearing scratch"))
           .ok())
    return st;

  // the call's weights and switches, derived as the CPU core derives them (core/loss_common.h)
  const loss_common::LossTerms lt = loss_common::loss_terms(a);
  DistillParams P;
  P.s = d.s;
  P.t = d.t;
  P.labels = d.labels;
  P.gor = a.reduction == Reduction::None ? d.gor : nullptr;
  P.gs = d.gs;
  P.gt = d.gt;
  P.loss_rows = d.loss_rows;
  P.row_loss = row_loss.as<double>();
  P.res = res.as<DistillDevResult>();
  P.rows = a.rows;
  P.cols = int(a.cols);
  P.inv_t = lt.inv_t;
  P.temperature = a.temperature;
  P.alpha = lt.alpha;
  P.w = lt.w;
  P.eps = lt.eps;
  P.beta = a.beta;
  P.grad_output = a.grad_output;
  P.ignore_index = a.ignore_index;
  P.reduction = int(a.reduction);

  const int64_t pro_grid = std::min<int64_t>((a.rows + kPrologueBlock - 1) / kPrologueBlock, 4096);
  KD_LAUNCH(distill_prologue, pro_grid, kPrologueBlock, stream(), P);
  if (!(st = cuda_status(cudaGetLastError(), "launching the prologue kernel")).ok()) return st;

  const int hard = (lt.have_labels && lt.alpha < 1.0) ? (lt.unit_t ? 1 : 2) : 0;
  const RowLaunch l = row_launch(a.rows, a.cols);
  const KernelFn k = pick(a.divergence, hard, l.warp_rows);
  KD_LAUNCH(k, l.grid, l.block, stream(), P);
  if (!(st = cuda_status(cudaGetLastError(), "launching the distillation kernel")).ok()) return st;

  KD_LAUNCH(distill_finalize, 1, kFinalizeBlock, stream(), P);
  if (!(st = cuda_status(cudaGetLastError(), "launching the reduction kernel")).ok()) return st;

  DistillDevResult h;
  if (!(st = download(&h, res.as<void>(), sizeof h, "running the distillation kernels")).ok()) return st;
  out->total = h.total;
  out->valid = int64_t(h.valid);
  out->bad_label_row = h.bad_label ? a.rows - int64_t(h.bad_label) : -1;
  out->bad_gor_row = h.bad_gor ? a.rows - int64_t(h.bad_gor) : -1;
  out->err_row = h.first_err ? a.rows - int64_t(h.first_err >> 3) : -1;
  out->err_code = int(h.first_err & 7u);
  return Status::Ok();
}

void fill_result(const DistillLossArgs& a, const DistillOutcome& o, DistillLossResult* result) {
  if (!result) return;
  result->valid_rows = o.valid;
  result->loss = (a.reduction == Reduction::Mean) ? (o.valid > 0 ? o.total / double(o.valid) : 0.0) : o.total;
}

// The compute-error message of the CPU core for row `row`; `student_row` / `teacher_row` fetch a
// row of the inputs to the host.
template <class Fetch>
Status row_error(int code, int64_t row, int64_t cols, double temperature, Fetch&& fetch) {
  if (code == kErrOverflowStudent || code == kErrOverflowTeacher)
    return Status::RangeErr(temperature_overflow_message(temperature, code == kErrOverflowStudent ? "student" : "teacher", row));
  if (code == kErrNoFiniteStudent) return Status::RangeErr(all_neg_inf_error("student", row));
  if (code == kErrNoFiniteTeacher) return Status::RangeErr(all_neg_inf_error("teacher", row));
  // Rows before `row` have no bad value in either input, so each input's first bad value, if
  // any, is in this row (the CPU core describes the whole student, else the whole teacher).
  std::vector<float> buf;
  Status st = fetch(true, &buf);
  if (!st.ok()) return st;
  std::string m = describe_bad_in_row("student", buf.data(), row, cols);
  if (m.empty()) {
    if (!(st = fetch(false, &buf)).ok()) return st;
    m = describe_bad_in_row("teacher", buf.data(), row, cols);
  }
  return Status::RangeErr(m);
}

}  // namespace
}  // namespace detail

using namespace detail;

Status distill_loss(const DistillLossArgs& a, DistillLossResult* result) {
  Status st = validate_distill_scalars(a, a.student != nullptr, a.teacher != nullptr);
  if (!st.ok()) return st;
  if (!(st = validate_distill_arrays(a, a.labels, a.grad_output_rows)).ok()) return st;
  if (!(st = require_device()).ok()) return st;
  if (!(st = check_cols_fit(a.cols)).ok()) return st;

  const size_t n = size_t(a.rows) * size_t(a.cols), nb = n * sizeof(float), rb = size_t(a.rows) * sizeof(float);
  Scratch s, t, labels, gor, gs, gt, lr;
  const char* what = "copying the inputs to the device";
  if (!(st = upload_scratch(&s, a.student, nb, what)).ok()) return st;
  if (!(st = upload_scratch(&t, a.teacher, nb, what)).ok()) return st;
  if (!(st = upload_scratch(&labels, a.labels, size_t(a.rows) * sizeof(int32_t), what)).ok()) return st;
  if (a.reduction == Reduction::None && !(st = upload_scratch(&gor, a.grad_output_rows, rb, what)).ok()) return st;
  what = "allocating the outputs on the device";
  if (a.grad_student && !(st = gs.alloc(nb, what)).ok()) return st;
  if (a.grad_teacher && !(st = gt.alloc(nb, what)).ok()) return st;
  if (a.loss_rows && !(st = lr.alloc(rb, what)).ok()) return st;

  DistillPtrs d;
  d.s = s.as<float>();
  d.t = t.as<float>();
  d.labels = labels.as<int32_t>();
  d.gor = gor.as<float>();
  d.gs = gs.as<float>();
  d.gt = gt.as<float>();
  d.loss_rows = lr.as<float>();
  DistillOutcome o;
  if (!(st = run_distill(a, d, &o)).ok()) return st;
  if (o.err_row >= 0) {
    return row_error(o.err_code, o.err_row, a.cols, a.temperature, [&](bool student, std::vector<float>* buf) {
      const float* src = (student ? a.student : a.teacher) + o.err_row * a.cols;
      buf->assign(src, src + a.cols);
      return Status::Ok();
    });
  }
  what = "copying the outputs to the host";
  if (a.grad_student && !(st = download(a.grad_student, d.gs, nb, what)).ok()) return st;
  if (a.grad_teacher && !(st = download(a.grad_teacher, d.gt, nb, what)).ok()) return st;
  if (a.loss_rows && !(st = download(a.loss_rows, d.loss_rows, rb, what)).ok()) return st;
  fill_result(a, o, result);
  return Status::Ok();
}

Status distill_loss_device(const DistillLossArgs& a, const DistillDeviceBuffers& b, DistillLossResult* result) {
  Status st = validate_distill_scalars(a, b.student && !b.student->empty(), b.teacher && !b.teacher->empty());
  if (!st.ok()) return st;
  if (!(st = require_device()).ok()) return st;
  if (!(st = check_cols_fit(a.cols)).ok()) return st;
  const int64_t n = a.rows * a.cols;
  if (!(st = check_input(b.student, "student", DType::Float32, n)).ok()) return st;
  if (!(st = check_input(b.teacher, "teacher", DType::Float32, n)).ok()) return st;
  if (b.labels && !(st = check_input(b.labels, "labels", DType::Int32, a.rows)).ok()) return st;
  const bool use_gor = a.reduction == Reduction::None && b.grad_output_rows;
  if (use_gor && !(st = check_input(b.grad_output_rows, "gradOutput", DType::Float32, a.rows)).ok()) return st;
  if (!(st = prepare_output(b.grad_student, DType::Float32, n)).ok()) return st;
  if (!(st = prepare_output(b.grad_teacher, DType::Float32, n)).ok()) return st;
  if (!(st = prepare_output(b.loss_rows, DType::Float32, a.rows)).ok()) return st;
  if (b.grad_student && (b.grad_student == b.student || b.grad_student == b.teacher))
    return Status::RangeErr("gradStudent must not be an input buffer");
  if (b.grad_teacher && (b.grad_teacher == b.student || b.grad_teacher == b.teacher || b.grad_teacher == b.grad_student))
    return Status::RangeErr("gradTeacher must not be an input or the gradStudent buffer");

  DistillPtrs d;
  d.s = static_cast<const float*>(b.student->device_ptr());
  d.t = static_cast<const float*>(b.teacher->device_ptr());
  d.labels = b.labels ? static_cast<const int32_t*>(b.labels->device_ptr()) : nullptr;
  d.gor = use_gor ? static_cast<const float*>(b.grad_output_rows->device_ptr()) : nullptr;
  d.gs = b.grad_student ? static_cast<float*>(b.grad_student->device_ptr()) : nullptr;
  d.gt = b.grad_teacher ? static_cast<float*>(b.grad_teacher->device_ptr()) : nullptr;
  d.loss_rows = b.loss_rows ? static_cast<float*>(b.loss_rows->device_ptr()) : nullptr;
  return distill_on_device(a, d, result);
}

namespace detail {
Status distill_on_device(const DistillLossArgs& a, const DistillPtrs& d, DistillLossResult* result) {
  Status st;
  DistillOutcome o;
  if (!(st = run_distill(a, d, &o)).ok()) return st;
  // Errors in the order the CPU core finds them: labels, per-row upstream gradients, then rows.
  if (o.bad_label_row >= 0) {
    int32_t y = 0;
    if (!(st = download(&y, d.labels + o.bad_label_row, sizeof y, "reading a label")).ok()) return st;
    return Status::RangeErr(label_error(a, o.bad_label_row, y));
  }
  if (o.bad_gor_row >= 0) {
    float g = 0.0f;
    if (!(st = download(&g, d.gor + o.bad_gor_row, sizeof g, "reading gradOutput")).ok()) return st;
    return Status::RangeErr(grad_output_row_error(o.bad_gor_row, g));
  }
  if (o.err_row >= 0) {
    return row_error(o.err_code, o.err_row, a.cols, a.temperature, [&](bool student, std::vector<float>* buf) {
      return download_row(student ? d.s : d.t, o.err_row, a.cols, buf);
    });
  }
  fill_result(a, o, result);
  return Status::Ok();
}
}  // namespace detail

}  // namespace cuda
}  // namespace kdfuse
