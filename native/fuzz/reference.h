// The fuzz targets' oracle: the contract of the kernels (README "Accuracy and determinism", the
// reference backend src/kernels/reference.ts) written again in plain float64, materialising
// p = softmax(t/T), q = softmax(s/T) and r = softmax(s), plus which calls the contract accepts.
// Deliberately literal and slow: it shares no code with native/core.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "fuzz_bytes.h"
#include "kdfuse_core.h"

namespace kdfuse_fuzz {

// A finding: print what disagreed and abort, so libFuzzer saves the input as a crash.
[[noreturn]] inline void finding(const char* f, ...) __attribute__((format(printf, 1, 2)));
[[noreturn]] inline void finding(const char* f, ...) {
  va_list ap;
  va_start(ap, f);
  std::fprintf(stderr, "kdfuse fuzz finding: ");
  std::vfprintf(stderr, f, ap);
  std::fprintf(stderr, "\n");
  va_end(ap);
  std::abort();
}

// The temperature the contract accepts: finite and at least float32's smallest normal number, so
// that 1/T is finite in float32 (below it a row whose maximum is 0 became NaN: finding F3, fixed).
inline bool temperature_ok(double t) { return std::isfinite(t) && t >= 0x1p-126 && t <= 0x1p126; }  // and F13

// A scalar upstream gradient the contract accepts: 0 or a normal float32 magnitude (beyond float32 a
// zero gradient became NaN, below its normal range an infinite one 0: findings F7, F8, fixed).
inline bool grad_output_ok(double g) {
  const double m = std::fabs(g);
  return std::isfinite(g) && (m == 0 || (m >= 0x1p-126 && m <= double(std::numeric_limits<float>::max())));
}

// log-probabilities z - lse(z), formed as (z - max) - log(sum exp(z - max)): for rows of huge
// logits, z - (max + log(sum)) would lose log(sum) to rounding (max + 0.69 == max beyond 2^53),
// giving probabilities that sum to more than 1 (finding F5, docs/reliability.md).
inline std::vector<double> log_softmax(const std::vector<double>& z) {
  double m = -kInf;
  for (double v : z) m = std::max(m, v);
  std::vector<double> out(z.size());
  if (m == -kInf) {
    for (auto& v : out) v = kNaN;
    return out;
  }
  double s = 0;
  for (double v : z) s += std::exp(v - m);
  const double l = std::log(s);
  for (size_t i = 0; i < z.size(); ++i) out[i] = (z[i] - m) - l;
  return out;
}

inline std::vector<double> scaled_row(const float* x, int64_t r, int64_t cols, double inv_t) {
  std::vector<double> z(static_cast<size_t>(cols));
  for (int64_t c = 0; c < cols; ++c) z[size_t(c)] = double(x[r * cols + c]) * inv_t;
  return z;
}

inline bool bad_value(float v, bool allow_pos_inf = false) { return std::isnan(v) || (!allow_pos_inf && v == kInfF); }

// Some finite logit of the row breaks the range rule once multiplied by float(1/T), as the kernels
// form z: |z| must stay below 2^127, half of float32's range, so that z - max z stays finite too
// (findings F9 and F12; the contract refuses such rows, the maximum's included).
inline bool overflows_at(const float* x, int64_t r, int64_t cols, double t) {
  const float k = float(1.0 / t);
  for (int64_t c = 0; c < cols; ++c)
    if (std::isfinite(x[r * cols + c]) && !(std::fabs(x[r * cols + c] * k) < 0x1p127f)) return true;
  return false;
}

inline bool all_neg_inf(const float* x, int64_t r, int64_t cols) {
  for (int64_t c = 0; c < cols; ++c)
    if (x[r * cols + c] != -kInfF) return false;
  return true;
}

// Largest finite |x| of row r (0 when none).
inline double max_abs_finite(const float* x, int64_t r, int64_t cols) {
  double m = 0;
  for (int64_t c = 0; c < cols; ++c)
    if (std::isfinite(x[r * cols + c])) m = std::max(m, std::fabs(double(x[r * cols + c])));
  return m;
}

// ---------------------------------------------------------------- softmax
inline bool softmax_accepts(const kdfuse::SoftmaxArgs& a) {
  if (a.rows < 1 || a.cols < 1 || !temperature_ok(a.temperature)) return false;
  for (int64_t i = 0; i < a.rows * a.cols; ++i)
    if (bad_value(a.x[i])) return false;
  for (int64_t r = 0; r < a.rows; ++r)
    if (overflows_at(a.x, r, a.cols, a.temperature) || all_neg_inf(a.x, r, a.cols)) return false;
  return true;
}

inline std::vector<double> softmax_ref(const kdfuse::SoftmaxArgs& a) {
  std::vector<double> y(size_t(a.rows * a.cols));
  for (int64_t r = 0; r < a.rows; ++r) {
    const auto lz = log_softmax(scaled_row(a.x, r, a.cols, 1.0 / a.temperature));
    for (int64_t c = 0; c < a.cols; ++c) {
      const double v = lz[size_t(c)];
      y[size_t(r * a.cols + c)] = a.log ? v : std::exp(v);
    }
  }
  return y;
}

// ---------------------------------------------------------------- distillation loss
// Why the contract refuses a call ("" when it accepts), in the order of reference.ts.
inline const char* distill_refusal(const kdfuse::DistillLossArgs& a) {
  if (a.rows < 1 || a.cols < 1) return "dims";
  if (!a.student || !a.teacher) return "null input";
  if (!temperature_ok(a.temperature) || a.temperature > 1e4) return "temperature";  // (0, 10000]: issue 13 item 4
  if (!(std::isfinite(a.alpha) && a.alpha >= 0 && a.alpha <= 1)) return "alpha";
  if (!(std::isfinite(a.label_smoothing) && a.label_smoothing >= 0 && a.label_smoothing < 1)) return "labelSmoothing";
  if (!(std::isfinite(a.beta) && a.beta >= 0 && a.beta <= 1)) return "beta";
  if (!grad_output_ok(a.grad_output)) return "gradOutput";
  if (a.labels)
    for (int64_t r = 0; r < a.rows; ++r) {
      const int32_t y = a.labels[r];
      if (y != a.ignore_index && (y < 0 || y >= a.cols)) return "label";
    }
  if (a.reduction == kdfuse::Reduction::None && a.grad_output_rows)
    for (int64_t r = 0; r < a.rows; ++r)
      if (!std::isfinite(a.grad_output_rows[r])) return "gradOutput row";
  for (int64_t i = 0; i < a.rows * a.cols; ++i)
    if (bad_value(a.student[i]) || bad_value(a.teacher[i])) return "NaN/+Inf";
  for (int64_t r = 0; r < a.rows; ++r) {
    if (a.labels && a.labels[r] == a.ignore_index) continue;
    if (overflows_at(a.student, r, a.cols, a.temperature) || overflows_at(a.teacher, r, a.cols, a.temperature))
      return "overflow at T";
    if (all_neg_inf(a.student, r, a.cols) || all_neg_inf(a.teacher, r, a.cols)) return "all -Inf row";
  }
  return "";
}

struct DistillRef {
  double loss = 0;
  std::vector<double> rows, gs, gt;
  // per row, w (sum |z_s dDiv/dz_s| + sum |z_t dDiv/dz_t|) over finite z = logit / T: the first-order
  // change of the loss when each z moves by its own relative amount (float32's rounding of logit / T)
  std::vector<double> cond;
  std::vector<bool> ignored;
};

inline double weighted(double p, double v) { return p > 0 ? p * v : 0.0; }

inline DistillRef distill_ref(const kdfuse::DistillLossArgs& a) {
  using kdfuse::Divergence;
  const int64_t R = a.rows, C = a.cols;
  const double T = a.temperature, beta = a.beta;
  const double alpha = a.labels ? a.alpha : 1.0;
  const double w = alpha * (a.scale_by_t2 ? T * T : 1.0);
  const double eps = a.labels ? a.label_smoothing : 0.0;
  int64_t valid = R;
  if (a.labels) {
    valid = 0;
    for (int64_t r = 0; r < R; ++r) valid += a.labels[r] != a.ignore_index;
  }
  DistillRef out;
  out.rows.assign(size_t(R), 0.0);
  out.gs.assign(size_t(R * C), 0.0);
  out.gt.assign(size_t(R * C), 0.0);
  out.ignored.assign(size_t(R), false);
  out.cond.assign(size_t(R), 0.0);
  double total = 0;
  for (int64_t r = 0; r < R; ++r) {
    const bool ignored = a.labels && a.labels[r] == a.ignore_index;
    out.ignored[size_t(r)] = ignored;
    if (ignored) continue;
    const bool hard = a.labels && alpha < 1;
    const auto zs = scaled_row(a.student, r, C, 1.0 / T), zt = scaled_row(a.teacher, r, C, 1.0 / T);
    const std::vector<double> lq = log_softmax(zs), lp = log_softmax(zt);
    std::vector<double> q(static_cast<size_t>(C)), p(static_cast<size_t>(C)), dS(static_cast<size_t>(C)), dT(static_cast<size_t>(C));
    for (size_t c = 0; c < size_t(C); ++c) {
      q[c] = std::exp(lq[c]);
      p[c] = std::exp(lp[c]);
    }
    double div = 0;
    // a probability of 0 (a -Infinity logit) facing one > 0 makes the KL infinite, decided by the
    // log-probabilities: the other one may underflow even float64 (issue 13 item 6)
    auto kl_term = [](double pc, double lpc, double lqc) { return lqc == -kInf && lpc > -kInf ? kInf : weighted(pc, lpc - lqc); };
    if (a.divergence == Divergence::KL) {
      for (size_t c = 0; c < size_t(C); ++c) div += kl_term(p[c], lp[c], lq[c]);
      const double k = std::isfinite(div) ? div : 0;
      for (size_t c = 0; c < size_t(C); ++c) {
        dS[c] = q[c] - p[c];
        dT[c] = weighted(p[c], lp[c] - lq[c]) - k * p[c];
      }
    } else if (a.divergence == Divergence::ReverseKL) {
      for (size_t c = 0; c < size_t(C); ++c) div += kl_term(q[c], lq[c], lp[c]);
      const double k = std::isfinite(div) ? div : 0;
      for (size_t c = 0; c < size_t(C); ++c) {
        dS[c] = weighted(q[c], lq[c] - lp[c]) - k * q[c];
        dT[c] = p[c] - q[c];
      }
    } else {
      std::vector<double> lm(static_cast<size_t>(C));
      double kpm = 0, kqm = 0;
      for (size_t c = 0; c < size_t(C); ++c) {
        // log m in log space: beta p + (1 - beta) q underflows float64 long before log m leaves it
        const double a = beta > 0 ? std::log(beta) + lp[c] : -kInf, b = beta < 1 ? std::log1p(-beta) + lq[c] : -kInf;
        const double hi = std::max(a, b), lo = std::min(a, b);
        lm[c] = hi == -kInf ? -kInf : hi + std::log1p(std::exp(lo - hi));
        kpm += weighted(p[c], lp[c] - lm[c]);
        kqm += weighted(q[c], lq[c] - lm[c]);
      }
      div = (beta > 0 ? beta * kpm : 0) + (beta < 1 ? (1 - beta) * kqm : 0);
      const double kp = std::isfinite(kpm) ? kpm : 0, kq = std::isfinite(kqm) ? kqm : 0;
      for (size_t c = 0; c < size_t(C); ++c) {
        dS[c] = beta < 1 ? (1 - beta) * (weighted(q[c], lq[c] - lm[c]) - kq * q[c]) : 0;
        dT[c] = beta > 0 ? beta * (weighted(p[c], lp[c] - lm[c]) - kp * p[c]) : 0;
      }
    }
    double ce = 0;
    std::vector<double> rp;
    const int32_t y = a.labels ? a.labels[r] : -1;
    if (hard) {
      const auto lr = log_softmax(scaled_row(a.student, r, C, 1.0));
      rp.resize(static_cast<size_t>(C));
      double sum = 0;
      for (size_t c = 0; c < size_t(C); ++c) {
        rp[c] = std::exp(lr[c]);
        sum += lr[c];
      }
      // CE = lse - z_y = -log r_y; with smoothing, eps (lse - mean z) = -eps mean(log r)
      ce = -(1 - eps) * lr[size_t(y)];
      if (eps > 0) ce += -eps * (sum / double(C));
    }
    // alpha = 0 means no soft term at all, even where the divergence is infinite (0 * Infinity
    // would be NaN; src/kernels/reference.ts had that flaw: finding F10, docs/reliability.md)
    const double loss = (w == 0 ? 0.0 : w * div) + (hard ? (1 - alpha) * ce : 0);
    total += loss;
    out.rows[size_t(r)] = loss;
    double cond = 0;
    for (size_t c = 0; c < size_t(C); ++c) {
      if (std::isfinite(zs[c]) && std::isfinite(dS[c])) cond += std::fabs(zs[c] * dS[c]);
      if (std::isfinite(zt[c]) && std::isfinite(dT[c])) cond += std::fabs(zt[c] * dT[c]);
    }
    out.cond[size_t(r)] = w * cond;
    const double g = a.reduction == kdfuse::Reduction::Mean ? (valid > 0 ? a.grad_output / double(valid) : 0)
                     : a.reduction == kdfuse::Reduction::Sum ? a.grad_output
                     : (a.grad_output_rows ? double(a.grad_output_rows[r]) : 1.0);
    // an upstream gradient of 0 gives a gradient of 0, also where the divergence is infinite (the
    // contract; 0 * Infinity made the reference NaN: corpus input finding_reference_zero_upstream)
    for (size_t c = 0; c < size_t(C); ++c) {
      double v = w == 0 || g == 0 ? 0.0 : (w / T) * dS[c];
      if (hard) v += (1 - alpha) * (rp[c] - (eps / double(C) + (int64_t(c) == y ? 1 - eps : 0)));
      out.gs[size_t(r * C) + c] = g == 0 ? 0.0 : g * v;
      out.gt[size_t(r * C) + c] = w == 0 || g == 0 ? 0.0 : g * (w / T) * dT[c];
    }
  }
  out.loss = a.reduction == kdfuse::Reduction::Mean ? (valid > 0 ? total / double(valid) : 0) : total;
  return out;
}

// |got - want| within tol, where a float32 result that overflowed (|want| beyond float32) may be
// +-Infinity of the same sign, and an infinite want must be met exactly.
inline bool close(double got, double want, double tol) {
  if (std::isinf(want)) return got == want;
  if (std::fabs(want) > double(std::numeric_limits<float>::max()) && std::isinf(got) && (got > 0) == (want > 0)) return true;
  return std::fabs(got - want) <= tol;
}

}  // namespace kdfuse_fuzz
