// kdfuse core tests: every kernel checked against an independent float64 reference written here
// (straight from "The math" in docs/design.md: materialise p = softmax(t/T), q = softmax(s/T),
// r = softmax(s) and apply the formulas), plus finite-difference checks of that reference,
// determinism across thread counts and schedules, edge cases, argument errors and the accuracy
// of the vector exp/log. No test framework: CHECK counts failed checks in the current test case and
// prints what failed; the last line is "N passed, M failed" (test cases); exit code 1 on any failure.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "chunk_kernels.h"
#include "kdfuse_core.h"

#if defined(__unix__) || defined(__APPLE__)
#include <sys/wait.h>
#include <unistd.h>
#define KDFUSE_TEST_FORK 1
#endif

using namespace kdfuse;

namespace {

// ================================================================ harness

int g_case_failed_checks = 0;
int g_case_printed = 0;
int kMaxPrintPerCase = 15;  // KDFUSE_TEST_VERBOSE=1 prints every failed check

std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* f, ...) {
  char buf[2048];
  va_list ap;
  va_start(ap, f);
  std::vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}

void report_fail(const char* file, int line, const char* expr, const std::string& msg) {
  ++g_case_failed_checks;
  if (g_case_printed++ < kMaxPrintPerCase) {
    const char* base = std::strrchr(file, '/');
    std::printf("    FAIL %s:%d: %s\n         %s\n", base ? base + 1 : file, line, expr, msg.c_str());
  }
}

#define CHECK(cond, ...)                                                               \
  do {                                                                                 \
    if (!(cond)) report_fail(__FILE__, __LINE__, #cond, fmt(__VA_ARGS__));             \
  } while (0)

struct TestCase {
  std::string name;
  std::function<void()> fn;
};
std::vector<TestCase> g_tests;
void add_test(std::string name, std::function<void()> fn) { g_tests.push_back({std::move(name), std::move(fn)}); }

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr float kInfF = std::numeric_limits<float>::infinity();
constexpr float kNaNF = std::numeric_limits<float>::quiet_NaN();

const char* div_name(Divergence d) {
  switch (d) {
    case Divergence::KL: return "kl";
    case Divergence::ReverseKL: return "reverse-kl";
    default: return "jsd";
  }
}
const char* red_name(Reduction r) {
  switch (r) {
    case Reduction::Mean: return "mean";
    case Reduction::Sum: return "sum";
    default: return "none";
  }
}
const char* isa_label(Isa i) { return i == Isa::Generic ? "generic" : (i == Isa::Auto ? "auto" : "avx2"); }

// The ISAs every numeric case runs under.
std::vector<Isa> isas() { return {Isa::Generic, Isa::Auto}; }

// ================================================================ random numbers (reproducible everywhere)

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed) {}
  uint64_t next() {  // splitmix64
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  double normal() {                                                // Box-Muller
    double u1 = uniform();
    const double u2 = uniform();
    if (u1 < 1e-300) u1 = 1e-300;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  int64_t below(int64_t n) { return int64_t(next() % uint64_t(n)); }
  template <class T>
  T pick(const std::vector<T>& v) { return v[size_t(below(int64_t(v.size())))]; }
};

std::vector<float> normal_floats(Rng& rng, int64_t n, double sigma) {
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = float(sigma * rng.normal());
  return v;
}

std::vector<double> to_double(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

bool has_nan(const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (std::isnan(x[i])) return true;
  return false;
}
bool all_zero(const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (x[i] != 0.0f) return false;
  return true;
}
int64_t count_nonfinite(const float* x, int64_t n) {
  int64_t k = 0;
  for (int64_t i = 0; i < n; ++i) k += !std::isfinite(x[i]);
  return k;
}

// ================================================================ float64 reference (independent of the core)

struct DistillCfg {
  int64_t rows = 1, cols = 1;
  double T = 1.0, alpha = 0.5, eps = 0.0, beta = 0.5, go = 1.0;
  bool t2 = true;
  bool labels = false;    // pass labels
  bool go_rows = false;   // pass grad_output_rows (reduction none)
  bool want_gs = true, want_gt = true, want_rows = true;
  int32_t ignore_index = -100;
  double ignore_frac = 0.0;  // fraction of rows labelled ignore_index
  Reduction red = Reduction::Mean;
  Divergence div = Divergence::KL;
  double sigma = 3.0;        // logits ~ N(0, sigma)

  std::string str() const {
    return fmt("%lldx%lld T=%g div=%s beta=%g labels=%d alpha=%g eps=%g ignore=%d(frac %.2f) red=%s t2=%d go=%g go_rows=%d "
               "gs=%d gt=%d",
               (long long)rows, (long long)cols, T, div_name(div), beta, int(labels), alpha, eps, int(ignore_index),
               ignore_frac, red_name(red), int(t2), go, int(go_rows), int(want_gs), int(want_gt));
  }
};

struct RefResult {
  double loss = 0.0;  // reduced (mean / sum); for none, the sum of the rows
  int64_t valid = 0;
  std::vector<double> rows, gs, gt;
  std::vector<double> scale;  // upstream gradient per row (1/N included for mean)
};

// z = x / T as float32 forms it (x * (1/T), both rounded), the one rounding every float32 kernel
// makes before it can compute anything; the reference works in float64 from there. Set
// g_round_z = false for exact z (the finite-difference checks need a smooth function).
bool g_round_z = true;
double zof(double x, double T) {
  if (!g_round_z) return x / T;
  const float inv = float(1.0 / T);
  return double(float(x) * inv);  // float * float: rounded once to float
}

double ref_lse(const double* z, int64_t n) {
  double m = -kInf;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, z[i]);
  if (m == -kInf) return -kInf;
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(z[i] - m);
  return m + std::log(sum);
}

// The contract of docs/design.md, in double, one row at a time, every distribution materialised.
RefResult ref_distill(const DistillCfg& c, const double* s, const double* t, const int32_t* labels,
                      const double* go_rows) {
  const int64_t R = c.rows, C = c.cols;
  const double T = c.T;
  const bool has_labels = labels != nullptr;
  const double alpha = has_labels ? c.alpha : 1.0;  // no labels: as if alpha = 1
  const double w = alpha * (c.t2 ? T * T : 1.0);
  const double eps = has_labels ? c.eps : 0.0;
  RefResult out;
  out.rows.assign(size_t(R), 0.0);
  out.gs.assign(size_t(R * C), 0.0);
  out.gt.assign(size_t(R * C), 0.0);
  out.scale.assign(size_t(R), 0.0);
  int64_t valid = 0;
  for (int64_t r = 0; r < R; ++r) valid += !(has_labels && labels[r] == c.ignore_index);
  out.valid = valid;
  std::vector<double> zs(C), zt(C), lq(C), lp(C), lr(C), q(C), p(C), rr(C), lm(C);
  double total = 0.0;
  for (int64_t r = 0; r < R; ++r) {
    double g;
    switch (c.red) {
      case Reduction::Mean: g = valid > 0 ? c.go / double(valid) : 0.0; break;
      case Reduction::Sum: g = c.go; break;
      default: g = go_rows ? go_rows[r] : 1.0; break;
    }
    out.scale[r] = g;
    if (has_labels && labels[r] == c.ignore_index) continue;
    const double* sr = s + r * C;
    const double* tr = t + r * C;
    for (int64_t j = 0; j < C; ++j) { zs[j] = zof(sr[j], T); zt[j] = zof(tr[j], T); }
    const double lse_s = ref_lse(zs.data(), C), lse_t = ref_lse(zt.data(), C), lse_r = ref_lse(sr, C);
    for (int64_t j = 0; j < C; ++j) {
      lq[j] = zs[j] - lse_s;
      lp[j] = zt[j] - lse_t;
      lr[j] = sr[j] - lse_r;
      q[j] = std::exp(lq[j]);
      p[j] = std::exp(lp[j]);
      rr[j] = std::exp(lr[j]);
    }
    const double beta = c.beta;
    double D = 0.0, Dp = 0.0, Dq = 0.0;
    switch (c.div) {
      case Divergence::KL:
        for (int64_t j = 0; j < C; ++j) if (p[j] > 0) D += p[j] * (lp[j] - lq[j]);  // 0 log 0 = 0
        break;
      case Divergence::ReverseKL:
        for (int64_t j = 0; j < C; ++j) if (q[j] > 0) D += q[j] * (lq[j] - lp[j]);
        break;
      case Divergence::JSD:
        for (int64_t j = 0; j < C; ++j) lm[j] = std::log(beta * p[j] + (1.0 - beta) * q[j]);
        if (beta > 0) for (int64_t j = 0; j < C; ++j) if (p[j] > 0) Dp += p[j] * (lp[j] - lm[j]);
        if (beta < 1) for (int64_t j = 0; j < C; ++j) if (q[j] > 0) Dq += q[j] * (lq[j] - lm[j]);
        D = (beta > 0 ? beta * Dp : 0.0) + (beta < 1 ? (1.0 - beta) * Dq : 0.0);
        break;
    }
    const bool hard = has_labels && alpha < 1.0;
    double ce = 0.0;
    const int32_t y = hard ? labels[r] : 0;
    if (hard) {
      ce = -(1.0 - eps) * lr[y];
      if (eps > 0) {
        double sl = 0.0;
        for (int64_t j = 0; j < C; ++j) sl += lr[j];
        ce -= eps / double(C) * sl;
      }
    }
    const double row = (w != 0.0 ? w * D : 0.0) + (hard ? (1.0 - alpha) * ce : 0.0);
    out.rows[r] = row;
    total += row;
    // gradients of g * row
    const double coef = g * w / T;
    const double gh = hard ? g * (1.0 - alpha) : 0.0;
    double* gs = out.gs.data() + r * C;
    double* gt = out.gt.data() + r * C;
    for (int64_t j = 0; j < C; ++j) {
      double a = 0.0, b = 0.0;
      if (w != 0.0) {
        switch (c.div) {
          case Divergence::KL:
            a = coef * (q[j] - p[j]);
            b = p[j] > 0 ? coef * p[j] * (lp[j] - lq[j] - D) : 0.0;
            break;
          case Divergence::ReverseKL:
            a = q[j] > 0 ? coef * q[j] * (lq[j] - lp[j] - D) : 0.0;
            b = coef * (p[j] - q[j]);
            break;
          case Divergence::JSD:
            a = (beta < 1 && q[j] > 0) ? coef * (1.0 - beta) * q[j] * (lq[j] - lm[j] - Dq) : 0.0;
            b = (beta > 0 && p[j] > 0) ? coef * beta * p[j] * (lp[j] - lm[j] - Dp) : 0.0;
            break;
        }
      }
      double yhat = 0.0;
      if (hard) {
        yhat = eps / double(C) + (j == y ? 1.0 - eps : 0.0);
        a += gh * (rr[j] - yhat);
      }
      gs[j] = a;
      gt[j] = b;
    }
  }
  out.loss = c.red == Reduction::Mean ? (valid > 0 ? total / double(valid) : 0.0) : total;
  return out;
}

// What the gradients differentiate: sum over rows of scale_r * row loss.
double ref_objective(const DistillCfg& c, const double* s, const double* t, const int32_t* labels,
                     const double* go_rows) {
  const RefResult r = ref_distill(c, s, t, labels, go_rows);
  double J = 0.0;
  for (int64_t i = 0; i < c.rows; ++i) J += r.scale[i] * r.rows[i];
  return J;
}

// ================================================================ what float32 can achieve

// The core works in float32, so a result next to the float64 reference carries rounding that no
// float32 implementation avoids; near-zero values (identical distributions, the zero divergences of
// JSD at beta 0 or 1, p ~ q at high T) then cannot meet a purely relative bound. Each comparison
// therefore allows, on top of the 1e-5 relative bound, K ulps' worth of an error model evaluated
// in the reference (u = 2^-24):
//  - a probability q_c = softmax(z)_c, z = s/T formed in float, carries a relative error of
//      rho_c = 2 + |log q_c| + 2 [ (1 - q_c) |z_c| + sum_{j != c} q_j |z_j| ]   ulps
//    (exp and final rounding, the subtraction of the log-normaliser, and the first-order effect of
//    rounding every z_j: d q_c / d z_j = q_c (delta_cj - q_j));
//  - a gradient element's allowance propagates these through its formula (log q carries rho ulps
//    absolute, the divergence value the p- or q-weighted sum of its terms' errors);
//  - a divergence carries the first-order effect of rounding z (sum |dD/dz_c| 2 |z_c| u), and 2 ulps
//    on each log-ratio term (2 (1 + sum w_c |log ratio_c|) u); the hard-label term 2 (2 + ln C) u.
// A log-normaliser rounded to float and subtracted from z (error ulp(|lse|), which is ulp(max z):
// 1.5e-5 at max z = 240) is deliberately outside this model: a careful implementation keeps the row
// maximum and log(sum) apart so that log q of the largest class is exact.
constexpr double kU = 0x1.0p-24;
constexpr double kLossUlps = 2.0;  // K for losses
constexpr double kGradUlps = 4.0;  // K for gradients

struct RefAllowance {
  std::vector<double> rows;    // per-row loss allowance (absolute, before K)
  double total = 0.0;          // for the reduced loss
  std::vector<double> gs, gt;  // per-element gradient allowance (absolute, before K)
};

// rho_c of the model above for prob = softmax(z), in ulps (0 where prob = 0).
std::vector<double> prob_rho(const double* z, const double* lprob, const double* prob, int64_t C, double zf) {
  double A = 0.0;
  for (int64_t j = 0; j < C; ++j) if (prob[j] > 0) A += prob[j] * std::fabs(z[j]);
  std::vector<double> rho(size_t(C), 0.0);
  const double lnC = std::log(double(C));
  for (int64_t j = 0; j < C; ++j)
    if (prob[j] > 0) {
      const double az = std::fabs(z[j]);
      rho[j] = 2.0 + 2.0 * std::fabs(lprob[j]) + lnC + zf * ((1.0 - prob[j]) * az + std::max(0.0, A - prob[j] * az));
    }
  return rho;
}

RefAllowance ref_allowance(const DistillCfg& c, const double* s, const double* t, const int32_t* labels,
                           const RefResult& ref) {
  const int64_t R = c.rows, C = c.cols;
  const double T = c.T, beta = c.beta;
  const bool has_labels = labels != nullptr;
  const double alpha = has_labels ? c.alpha : 1.0;
  const double w = alpha * (c.t2 ? T * T : 1.0);
  RefAllowance out;
  out.rows.assign(size_t(R), 0.0);
  out.gs.assign(size_t(R * C), 0.0);
  out.gt.assign(size_t(R * C), 0.0);
  std::vector<double> zs(C), zt(C), lq(C), lp(C), lr(C), lm(C), q(C), p(C), r(C), m(C);
  for (int64_t row = 0; row < R; ++row) {
    if (has_labels && labels[row] == c.ignore_index) continue;
    const double* sr = s + row * C;
    const double* tr = t + row * C;
    for (int64_t j = 0; j < C; ++j) { zs[j] = zof(sr[j], T); zt[j] = zof(tr[j], T); }
    const double ls = ref_lse(zs.data(), C), lt = ref_lse(zt.data(), C), l1 = ref_lse(sr, C);
    for (int64_t j = 0; j < C; ++j) {
      lq[j] = zs[j] - ls; lp[j] = zt[j] - lt; lr[j] = sr[j] - l1;
      q[j] = std::exp(lq[j]); p[j] = std::exp(lp[j]); r[j] = std::exp(lr[j]);
      m[j] = beta * p[j] + (1.0 - beta) * q[j];
      lm[j] = std::log(m[j]);
    }
    const double zf = g_round_z ? 0.0 : 2.0;  // z rounding is in the reference itself when rounded
    const std::vector<double> rq = prob_rho(zs.data(), lq.data(), q.data(), C, zf);
    const std::vector<double> rp = prob_rho(zt.data(), lp.data(), p.data(), C, zf);
    const std::vector<double> rr = prob_rho(sr, lr.data(), r.data(), C, 0.0);
    auto fin = [](double x) { return std::isfinite(x) ? std::fabs(x) : 0.0; };
    // divergence value(s) and their error (ulps)
    double D = 0.0, Dp = 0.0, Dq = 0.0, eD = 0.0, eDp = 0.0, eDq = 0.0, sumlr = 0.0;
    for (int64_t j = 0; j < C; ++j) {
      const double rm = m[j] > 0 ? (beta * p[j] * rp[j] + (1.0 - beta) * q[j] * rq[j]) / m[j] : 0.0;
      if (p[j] > 0) {
        D += c.div == Divergence::KL ? p[j] * (lp[j] - lq[j]) : 0.0;
        Dp += p[j] * (lp[j] - lm[j]);
        if (c.div == Divergence::KL) eD += p[j] * (rp[j] * fin(lp[j] - lq[j]) + rp[j] + rq[j]);
        eDp += p[j] * (rp[j] * fin(lp[j] - lm[j]) + rp[j] + rm);
      }
      if (q[j] > 0) {
        if (c.div == Divergence::ReverseKL) { D += q[j] * (lq[j] - lp[j]); eD += q[j] * (rq[j] * fin(lq[j] - lp[j]) + rq[j] + rp[j]); }
        Dq += q[j] * (lq[j] - lm[j]);
        eDq += q[j] * (rq[j] * fin(lq[j] - lm[j]) + rq[j] + rm);
      }
      sumlr += fin(lr[j]);
    }
    const bool hard = has_labels && alpha < 1.0;
    const double g = ref.scale[row];
    const double coef = std::fabs(g * w / T), gh = hard ? std::fabs(g * (1.0 - alpha)) : 0.0;
    double dz = 0.0, lr_terms = 0.0;  // loss: first-order z rounding, and the log-ratio terms
    double* as = out.gs.data() + row * C;
    double* at = out.gt.data() + row * C;
    for (int64_t j = 0; j < C; ++j) {
      const double rm = m[j] > 0 ? (beta * p[j] * rp[j] + (1.0 - beta) * q[j] * rq[j]) / m[j] : 0.0;
      double dDs = 0.0, dDt = 0.0;  // |dD/dzs_j|, |dD/dzt_j|
      double a = 0.0, b = 0.0;      // gradient allowances / coef
      switch (c.div) {
        case Divergence::KL:
          dDs = std::fabs(q[j] - p[j]);
          if (p[j] > 0) {
            dDt = p[j] * fin(lp[j] - lq[j] - D);
            b = p[j] * (rp[j] * fin(lp[j] - lq[j] - D) + rp[j] + rq[j] + eD);
            lr_terms += p[j] * fin(lp[j] - lq[j]);
          }
          a = q[j] * rq[j] + p[j] * rp[j];
          break;
        case Divergence::ReverseKL:
          dDt = std::fabs(p[j] - q[j]);
          if (q[j] > 0) {
            dDs = q[j] * fin(lq[j] - lp[j] - D);
            a = q[j] * (rq[j] * fin(lq[j] - lp[j] - D) + rq[j] + rp[j] + eD);
            lr_terms += q[j] * fin(lq[j] - lp[j]);
          }
          b = q[j] * rq[j] + p[j] * rp[j];
          break;
        case Divergence::JSD:
          if (beta < 1 && q[j] > 0) {
            dDs = (1.0 - beta) * q[j] * fin(lq[j] - lm[j] - Dq);
            a = (1.0 - beta) * q[j] * (rq[j] * fin(lq[j] - lm[j] - Dq) + rq[j] + rm + eDq);
            lr_terms += (1.0 - beta) * q[j] * fin(lq[j] - lm[j]);
          }
          if (beta > 0 && p[j] > 0) {
            dDt = beta * p[j] * fin(lp[j] - lm[j] - Dp);
            b = beta * p[j] * (rp[j] * fin(lp[j] - lm[j] - Dp) + rp[j] + rm + eDp);
            lr_terms += beta * p[j] * fin(lp[j] - lm[j]);
          }
          break;
      }
      dz += zf * (dDs * fin(zs[j]) + dDt * fin(zt[j]));
      double ah = 0.0;
      if (hard) {
        const double yhat = c.eps / double(C) + (j == labels[row] ? 1.0 - c.eps : 0.0);
        ah = gh * (r[j] * rr[j] + 2.0 * yhat);
      }
      as[j] = kU * ((w != 0 ? coef * a : 0.0) + ah);
      at[j] = kU * (w != 0 ? coef * b : 0.0);
    }
    double allow = std::fabs(w) * (dz + 2.0 * (1.0 + lr_terms));
    if (hard) allow += std::fabs(1.0 - alpha) * 2.0 * (2.0 + std::log(double(C)) + (c.eps > 0 ? c.eps * sumlr / double(C) : 0.0));
    out.rows[row] = kU * allow;
    out.total += kU * allow;
  }
  if (c.red == Reduction::Mean) out.total = ref.valid > 0 ? out.total / double(ref.valid) : 0.0;
  return out;
}

// ================================================================ comparisons

double rel_err(double got, double ref) { return std::fabs(got - ref) / std::max(std::fabs(ref), 1e-6); }

// Elementwise |got - ref| <= 1e-5 * max|ref| + kGradUlps * allow (allow: the float32 error model).
void check_grad(const char* what, const float* got, const std::vector<double>& ref, const std::vector<double>* allow,
                const std::string& ctx) {
  const int64_t n = int64_t(ref.size());
  double max_ref = 0.0;
  for (double v : ref) max_ref = std::max(max_ref, std::fabs(v));
  const double base = 1e-5 * max_ref;
  double worst = 0.0;  // largest err / tol
  int64_t wi = -1, nonfinite = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(got[i])) {
      if (nonfinite++ == 0) wi = i;
      continue;
    }
    const double tol = base + (allow ? kGradUlps * (*allow)[size_t(i)] : 0.0);
    const double err = std::fabs(double(got[i]) - ref[size_t(i)]);
    const double ratio = err == 0.0 ? 0.0 : (tol > 0 ? err / tol : kInf);
    if (ratio > worst && nonfinite == 0) { worst = ratio; wi = i; }
  }
  CHECK(nonfinite == 0 && worst <= 1.0,
        "%s: %s: err %.3g x tol at %lld (got %.9g, ref %.9g, err %.3g, tol %.3g = 1e-5 max|ref| %.3g + model %.3g), "
        "nonfinite %lld",
        ctx.c_str(), what, worst, (long long)wi, wi >= 0 ? double(got[wi]) : 0.0, wi >= 0 ? ref[size_t(wi)] : 0.0,
        wi >= 0 ? std::fabs(double(got[wi]) - ref[size_t(wi)]) : 0.0,
        wi >= 0 ? base + (allow ? kGradUlps * (*allow)[size_t(wi)] : 0.0) : 0.0, base,
        (wi >= 0 && allow) ? kGradUlps * (*allow)[size_t(wi)] : 0.0, (long long)nonfinite);
}

// |got - ref| <= 1e-5 * max(|ref|, 1e-6) + kLossUlps * allow
double loss_ratio(double got, double ref, double allow) {
  if (!std::isfinite(got)) return kInf;
  const double err = std::fabs(got - ref);
  return err == 0.0 ? 0.0 : err / (1e-5 * std::max(std::fabs(ref), 1e-6) + kLossUlps * allow);
}

// ================================================================ distill_loss: one configuration vs the reference

struct DistillInputs {
  std::vector<float> s, t, go_rows;
  std::vector<int32_t> labels;
};

DistillInputs make_inputs(const DistillCfg& c, Rng& rng) {
  DistillInputs in;
  in.s = normal_floats(rng, c.rows * c.cols, c.sigma);
  in.t = normal_floats(rng, c.rows * c.cols, c.sigma);
  if (c.labels) {
    in.labels.resize(size_t(c.rows));
    for (auto& y : in.labels) y = int32_t(rng.below(c.cols));
    for (int64_t r = 0; r < c.rows; ++r)
      if (rng.uniform() < c.ignore_frac) in.labels[r] = c.ignore_index;
    // a label that happens to equal a custom in-range ignore index is ignored too: fine, the
    // reference sees the same labels
  }
  if (c.go_rows) {
    in.go_rows.resize(size_t(c.rows));
    for (auto& g : in.go_rows) g = float(rng.uniform() * 2.0 - 0.5);
  }
  return in;
}

struct CoreOut {
  Status st;
  DistillLossResult res;
  std::vector<float> rows, gs, gt;
};

CoreOut run_core(const DistillCfg& c, const DistillInputs& in, Isa isa, int threads = 0) {
  CoreOut o;
  DistillLossArgs a;
  a.student = in.s.data();
  a.teacher = in.t.data();
  a.rows = c.rows;
  a.cols = c.cols;
  a.labels = c.labels ? in.labels.data() : nullptr;
  a.temperature = c.T;
  a.alpha = c.alpha;
  a.scale_by_t2 = c.t2;
  a.label_smoothing = c.eps;
  a.ignore_index = c.ignore_index;
  a.reduction = c.red;
  a.divergence = c.div;
  a.beta = c.beta;
  a.grad_output = c.go;
  a.grad_output_rows = c.go_rows ? in.go_rows.data() : nullptr;
  // outputs start as NaN so anything left unwritten shows
  if (c.want_rows) { o.rows.assign(size_t(c.rows), kNaNF); a.loss_rows = o.rows.data(); }
  if (c.want_gs) { o.gs.assign(size_t(c.rows * c.cols), kNaNF); a.grad_student = o.gs.data(); }
  if (c.want_gt) { o.gt.assign(size_t(c.rows * c.cols), kNaNF); a.grad_teacher = o.gt.data(); }
  o.res.loss = kNaNF;
  ExecConfig cfg;
  cfg.isa = isa;
  cfg.threads = threads;
  o.st = distill_loss(a, &o.res, cfg);
  return o;
}

RefResult run_ref(const DistillCfg& c, const DistillInputs& in) {
  const std::vector<double> s = to_double(in.s), t = to_double(in.t), g = to_double(in.go_rows);
  return ref_distill(c, s.data(), t.data(), c.labels ? in.labels.data() : nullptr, c.go_rows ? g.data() : nullptr);
}

// Compares the core (every ISA) with the reference for one configuration.
void check_distill_against(const DistillCfg& c, const DistillInputs& in, const RefResult& ref) {
  const std::vector<double> sd = to_double(in.s), td = to_double(in.t);
  const RefAllowance al = ref_allowance(c, sd.data(), td.data(), c.labels ? in.labels.data() : nullptr, ref);
  for (Isa isa : isas()) {
    const std::string ctx = fmt("[%s] %s", isa_label(isa), c.str().c_str());
    const CoreOut o = run_core(c, in, isa);
    CHECK(o.st.ok(), "%s: status %d: %s", ctx.c_str(), int(o.st.kind), o.st.message.c_str());
    if (!o.st.ok()) continue;
    CHECK(o.res.valid_rows == ref.valid, "%s: valid_rows %lld, expected %lld", ctx.c_str(), (long long)o.res.valid_rows,
          (long long)ref.valid);
    const double lr = loss_ratio(o.res.loss, ref.loss, al.total);
    CHECK(lr <= 1.0, "%s: loss %.10g, ref %.10g: err %.3g x tol (rel err %.3g, model allowance %.3g)", ctx.c_str(),
          o.res.loss, ref.loss, lr, rel_err(o.res.loss, ref.loss), kLossUlps * al.total);
    if (c.want_rows) {
      double worst = 0.0;
      int64_t wr = 0;
      for (int64_t r = 0; r < c.rows; ++r) {
        const double e = loss_ratio(o.rows[r], ref.rows[r], al.rows[r]);
        if (e > worst) { worst = e; wr = r; }
      }
      CHECK(worst <= 1.0, "%s: loss_rows[%lld] = %.9g, ref %.9g: err %.3g x tol (rel err %.3g, model allowance %.3g)",
            ctx.c_str(), (long long)wr, double(o.rows[wr]), ref.rows[wr], worst, rel_err(o.rows[wr], ref.rows[wr]),
            kLossUlps * al.rows[wr]);
      if (c.labels)
        for (int64_t r = 0; r < c.rows; ++r)
          if (in.labels[r] == c.ignore_index) CHECK(o.rows[r] == 0.0f, "%s: ignored row %lld loss %g", ctx.c_str(), (long long)r, double(o.rows[r]));
    }
    if (c.want_gs) check_grad("grad_student", o.gs.data(), ref.gs, &al.gs, ctx);
    if (c.want_gt) check_grad("grad_teacher", o.gt.data(), ref.gt, &al.gt, ctx);
    if (c.labels) {  // ignored rows: exactly zero gradient
      for (int64_t r = 0; r < c.rows; ++r) {
        if (in.labels[r] != c.ignore_index) continue;
        if (c.want_gs) CHECK(all_zero(o.gs.data() + r * c.cols, c.cols), "%s: ignored row %lld has a student gradient", ctx.c_str(), (long long)r);
        if (c.want_gt) CHECK(all_zero(o.gt.data() + r * c.cols, c.cols), "%s: ignored row %lld has a teacher gradient", ctx.c_str(), (long long)r);
      }
    }
  }
}

void check_distill(const DistillCfg& c, Rng& rng) {
  const DistillInputs in = make_inputs(c, rng);
  check_distill_against(c, in, run_ref(c, in));
}

struct DivSpec {
  Divergence div;
  double beta;
};
const std::vector<DivSpec> kDivs = {{Divergence::KL, 0.5},  {Divergence::ReverseKL, 0.5}, {Divergence::JSD, 0.3},
                                    {Divergence::JSD, 0.5}, {Divergence::JSD, 1.0},        {Divergence::JSD, 0.0}};
const std::vector<int64_t> kCols = {1, 2, 3, 7, 8, 9, 10, 1000, 1023, 1024, 1025, 2049, 32000};
const std::vector<int64_t> kRows = {1, 2, 3, 17, 64};
const std::vector<double> kTemps = {0.05, 0.5, 1.0, 2.0, 4.0, 100.0};

// Every column count x temperature x divergence, the other options varied from case to case.
void test_distill_sweep(int64_t cols) {
  Rng rng(1000 + uint64_t(cols));
  int k = 0;
  for (double T : kTemps) {
    for (const DivSpec& d : kDivs) {
      DistillCfg c;
      std::vector<int64_t> rows_ok;
      for (int64_t r : kRows) if (r * cols <= 140000) rows_ok.push_back(r);
      c.rows = rows_ok[size_t(k) % rows_ok.size()];
      c.cols = cols;
      c.T = T;
      c.div = d.div;
      c.beta = d.beta;
      c.labels = (k % 3) != 0;
      c.alpha = rng.pick<double>({0.0, 0.3, 0.5, 0.9, 1.0});
      c.eps = (k % 2) ? 0.1 : 0.0;
      c.red = Reduction(k % 3);
      c.t2 = (k % 4) != 1;
      c.go = rng.pick<double>({1.0, 0.37, -2.0});
      c.go_rows = c.red == Reduction::None && (k % 2) == 0;
      c.ignore_frac = c.labels ? rng.pick<double>({0.0, 0.25}) : 0.0;
      c.ignore_index = (k % 5 == 0 && cols > 2) ? 1 : -100;  // sometimes an in-range ignore index
      c.want_gt = (k % 7) != 3;
      c.want_gs = (k % 11) != 5;
      check_distill(c, rng);
      ++k;
    }
  }
}

DistillLossArgs base_args(const std::vector<float>& s, const std::vector<float>& t, int64_t rows, int64_t cols) {
  DistillLossArgs a;
  a.student = s.data();
  a.teacher = t.data();
  a.rows = rows;
  a.cols = cols;
  return a;
}

// The configurations the small-rows kernel takes (cols <= kSmallRowsMaxCols, KL, no teacher
// gradient, no label smoothing), swept against the float64 reference for every instruction set:
// the AVX2 table runs that kernel, the generic one the chunked passes.
void test_small_rows_sweep() {
  Rng rng(4242);
  int k = 0;
  for (int64_t cols : {int64_t(1), int64_t(2), int64_t(5), int64_t(8), int64_t(10), int64_t(17), int64_t(31), int64_t(32),
                       int64_t(33), int64_t(63), int64_t(64), int64_t(65)}) {
    for (double T : {0.5, 1.0, 2.0, 3.0, 4.0}) {
      for (int64_t rows : {int64_t(1), int64_t(7), int64_t(8), int64_t(9), int64_t(64)}) {
        DistillCfg c;
        c.rows = rows;
        c.cols = cols;
        c.T = T;
        c.div = Divergence::KL;
        c.labels = (k % 4) != 0;
        c.alpha = rng.pick<double>({0.0, 0.3, 0.5, 1.0});
        c.eps = 0.0;
        c.red = Reduction(k % 3);
        c.t2 = (k % 5) != 2;
        c.go = rng.pick<double>({1.0, 0.37, -2.0});
        c.go_rows = c.red == Reduction::None && (k % 2) == 0;
        c.ignore_frac = c.labels ? rng.pick<double>({0.0, 0.25}) : 0.0;
        c.ignore_index = (k % 6 == 1 && cols > 2) ? 1 : -100;
        c.want_gt = false;
        c.want_gs = (k % 9) != 4;
        c.sigma = rng.pick<double>({1.0, 3.0, 20.0});
        check_distill(c, rng);
        ++k;
      }
    }
  }
}

// The small-rows kernel against the chunked passes on the same instruction set's exp: only the
// order of the float64 sums differs, so they agree far inside the reference tolerances. Masked
// (-Infinity) classes, a row of them in the teacher's softmax, and large logits included.
void test_small_rows_vs_chunked() {
  if (!cpu_has_avx2_fma()) {
    std::printf("    skipped: no AVX2 + FMA on this CPU\n");
    return;
  }
  Rng rng(99);
  for (int64_t cols : {int64_t(3), int64_t(10), int64_t(40), int64_t(64)}) {
    for (double T : {1.0, 2.0, 2.5}) {
      const int64_t rows = 37;
      std::vector<float> s = normal_floats(rng, rows * cols, 4.0), t = normal_floats(rng, rows * cols, 4.0);
      // masked classes in both (a finite KL), and some in the teacher's alone (p = 0 there)
      for (int64_t i = 0; i < rows * cols; i += 7) s[size_t(i)] = t[size_t(i)] = -kInfF;
      for (int64_t i = 3; i < rows * cols; i += 11) t[size_t(i)] = -kInfF;
      s[5] = 80.0f;
      t[6] = -90.0f;
      std::vector<int32_t> y(static_cast<size_t>(rows));
      for (int64_t r = 0; r < rows; ++r) {
        int32_t c = int32_t(rng.next() % uint64_t(cols));
        while (s[size_t(r * cols + c)] == -kInfF) c = (c + 1) % int32_t(cols);  // the label's logit is finite
        y[size_t(r)] = c;
      }
      y[4] = -100;
      DistillLossArgs a = base_args(s, t, rows, cols);
      a.temperature = T;
      a.labels = y.data();
      a.alpha = 0.6;
      a.reduction = Reduction::None;
      std::vector<float> g_small(static_cast<size_t>(rows * cols)), g_chunked(static_cast<size_t>(rows * cols)), l_small(static_cast<size_t>(rows)),
          l_chunked(static_cast<size_t>(rows));
      DistillLossResult r_small, r_chunked;
      a.grad_student = g_small.data();
      a.loss_rows = l_small.data();
      const Status s1 = distill_loss(a, &r_small, ExecConfig{0, Isa::Avx2});
      // a label smoothing of 1e-30 sends the same call down the chunked passes and changes no float
      a.label_smoothing = 1e-30;
      a.grad_student = g_chunked.data();
      a.loss_rows = l_chunked.data();
      const Status s2 = distill_loss(a, &r_chunked, ExecConfig{0, Isa::Avx2});
      const std::string ctx = fmt("%lldx%lld T=%g", (long long)rows, (long long)cols, T);
      CHECK(s1.ok() && s2.ok(), "%s: %s / %s", ctx.c_str(), s1.message.c_str(), s2.message.c_str());
      double worst_l = 0.0, worst_g = 0.0;
      // A row's loss sums float32 terms of size up to ~w (in another order on each path): besides
      // 2e-6 relative, an ulp of each of the row's terms, 1.2e-7 * w * cols, may separate the two.
      const double w = 0.6 * T * T;
      for (int64_t r = 0; r < rows; ++r) {
        const double l = l_chunked[size_t(r)], bound = 2e-6 * std::fabs(l) + 1.2e-7 * w * double(cols) + 1e-9;
        worst_l = std::max(worst_l, std::fabs(double(l_small[size_t(r)]) - l) / bound);
      }
      double gmax = 0.0;
      for (int64_t i = 0; i < rows * cols; ++i) {
        worst_g = std::max(worst_g, double(std::fabs(g_small[size_t(i)] - g_chunked[size_t(i)])));
        gmax = std::max(gmax, double(std::fabs(g_chunked[size_t(i)])));
      }
      CHECK(std::isfinite(r_small.loss), "%s: loss %g", ctx.c_str(), r_small.loss);
      CHECK(worst_l <= 1.0, "%s: row losses differ by %.3g x the bound", ctx.c_str(), worst_l);
      // a last-bit difference in a row's 1/sum moves every probability of the row by an ulp
      CHECK(worst_g <= 4.8e-7 * std::max(1.0, gmax), "%s: gradients differ by %.3g (largest %.3g)", ctx.c_str(), worst_g, gmax);
      CHECK(std::fabs(r_small.loss - r_chunked.loss) <= 2e-6 * std::fabs(r_chunked.loss) + 1.2e-7 * w * double(cols * rows),
            "%s: loss %.9g vs %.9g", ctx.c_str(), r_small.loss, r_chunked.loss);
      // the ignored row: no loss, no gradient, on both paths
      for (int64_t c = 0; c < cols; ++c) CHECK(g_small[size_t(4 * cols + c)] == 0.0f, "%s: ignored row has a gradient", ctx.c_str());
      CHECK(l_small[4] == 0.0f, "%s: ignored row has a loss", ctx.c_str());
      // the result does not depend on the thread count or on the rows around a row
      std::vector<float> g1(static_cast<size_t>(rows * cols));
      a.label_smoothing = 0.0;
      a.grad_student = g1.data();
      a.loss_rows = nullptr;
      DistillLossResult r1;
      CHECK(distill_loss(a, &r1, ExecConfig{1, Isa::Avx2}).ok() && r1.loss == r_small.loss &&
                std::memcmp(g1.data(), g_small.data(), g1.size() * sizeof(float)) == 0,
            "%s: 1 thread differs from all threads", ctx.c_str());
      DistillLossArgs tail = a;  // rows 13.. alone: other groups, other lane positions
      tail.student += 13 * cols;
      tail.teacher += 13 * cols;
      tail.labels += 13;
      tail.rows = rows - 13;
      std::vector<float> gt(static_cast<size_t>((rows - 13) * cols)), lt(static_cast<size_t>(rows - 13));
      tail.grad_student = gt.data();
      tail.loss_rows = lt.data();
      DistillLossResult rt;
      CHECK(distill_loss(tail, &rt, ExecConfig{0, Isa::Avx2}).ok() &&
                std::memcmp(gt.data(), g_small.data() + 13 * cols, gt.size() * sizeof(float)) == 0 &&
                std::memcmp(lt.data(), l_small.data() + 13, lt.size() * sizeof(float)) == 0,
            "%s: rows computed apart differ", ctx.c_str());
    }
  }
}

// All option combinations on a small shape.
void test_distill_options_grid() {
  Rng rng(77);
  const std::vector<double> alphas = {0.0, 0.3, 1.0};
  for (const DivSpec& d : kDivs)
    for (int labels = 0; labels < 2; ++labels)
      for (double eps : {0.0, 0.1})
        for (Reduction red : {Reduction::Mean, Reduction::Sum, Reduction::None})
          for (int t2 = 0; t2 < 2; ++t2)
            for (double alpha : alphas) {
              if (!labels && (eps > 0 || alpha != 0.3)) continue;  // these only matter with labels
              DistillCfg c;
              c.rows = 17;
              c.cols = 9;
              c.T = rng.pick(kTemps);
              c.div = d.div;
              c.beta = d.beta;
              c.labels = labels;
              c.eps = eps;
              c.red = red;
              c.t2 = t2;
              c.alpha = alpha;
              c.go = 1.5;
              c.ignore_frac = labels ? 0.3 : 0.0;
              for (int gr = 0; gr < (red == Reduction::None ? 2 : 1); ++gr) {
                c.go_rows = gr;
                check_distill(c, rng);
              }
            }
}

// Without labels the hard term is absent, whatever alpha says (alpha = 1 is implied).
void test_distill_no_labels_ignores_alpha() {
  Rng rng(5);
  DistillCfg c;
  c.rows = 3;
  c.cols = 10;
  c.T = 2.0;
  const DistillInputs in = make_inputs(c, rng);
  double l0 = 0;
  for (double alpha : {1.0, 0.5, 0.0}) {
    c.alpha = alpha;
    for (Isa isa : isas()) {
      const CoreOut o = run_core(c, in, isa);
      CHECK(o.st.ok(), "%s", o.st.message.c_str());
      if (alpha == 1.0 && isa == Isa::Generic) l0 = o.res.loss;
      CHECK(rel_err(o.res.loss, l0) <= 1e-6, "alpha %g [%s]: loss %.9g vs %.9g with alpha 1", alpha, isa_label(isa), o.res.loss, l0);
    }
  }
}

// ================================================================ 2. finite differences of the reference

void test_reference_finite_differences() {
  struct ExactZ { ExactZ() { g_round_z = false; } ~ExactZ() { g_round_z = true; } } exact_z;
  Rng rng(2024);
  for (const DivSpec& d : kDivs)
    for (double T : {0.5, 2.0})
      for (Reduction red : {Reduction::Mean, Reduction::Sum, Reduction::None}) {
        DistillCfg c;
        c.rows = 3;
        c.cols = 5;
        c.T = T;
        c.div = d.div;
        c.beta = d.beta;
        c.labels = true;
        c.alpha = 0.3;
        c.eps = 0.1;
        c.red = red;
        c.go = 0.7;
        c.go_rows = red == Reduction::None;
        c.ignore_frac = 0.0;
        std::vector<double> s(15), t(15), gr(3);
        for (auto& x : s) x = 1.5 * rng.normal();
        for (auto& x : t) x = 1.5 * rng.normal();
        for (auto& x : gr) x = rng.uniform() + 0.2;
        std::vector<int32_t> labels = {int32_t(rng.below(5)), c.ignore_index, int32_t(rng.below(5))};
        const RefResult ref = ref_distill(c, s.data(), t.data(), labels.data(), gr.data());
        const double h = 1e-5;
        double worst = 0.0, gmax = 0.0;
        std::string where;
        for (int which = 0; which < 2; ++which) {
          std::vector<double>& x = which ? t : s;
          const std::vector<double>& g = which ? ref.gt : ref.gs;
          for (size_t i = 0; i < x.size(); ++i) {
            const double x0 = x[i];
            x[i] = x0 + h;
            const double jp = ref_objective(c, s.data(), t.data(), labels.data(), gr.data());
            x[i] = x0 - h;
            const double jm = ref_objective(c, s.data(), t.data(), labels.data(), gr.data());
            x[i] = x0;
            const double fd = (jp - jm) / (2 * h);
            gmax = std::max(gmax, std::fabs(g[i]));
            if (std::fabs(fd - g[i]) > worst) {
              worst = std::fabs(fd - g[i]);
              where = fmt("%s[%zu] fd %.12g analytic %.12g", which ? "teacher" : "student", i, fd, g[i]);
            }
          }
        }
        CHECK(worst <= 1e-7 * std::max(1.0, gmax), "%s: %s (err %.3g)", c.str().c_str(), where.c_str(), worst);
        // the ignored row has no gradient at all
        for (int64_t j = 0; j < 5; ++j) CHECK(ref.gs[5 + j] == 0.0 && ref.gt[5 + j] == 0.0, "ignored row gradient");
      }
  // Also without labels and with T^2 off.
  for (const DivSpec& d : kDivs) {
    DistillCfg c;
    c.rows = 2;
    c.cols = 5;
    c.T = 1.7;
    c.div = d.div;
    c.beta = d.beta;
    c.t2 = false;
    c.red = Reduction::Sum;
    std::vector<double> s(10), t(10);
    for (auto& x : s) x = 2.0 * rng.normal();
    for (auto& x : t) x = 2.0 * rng.normal();
    const RefResult ref = ref_distill(c, s.data(), t.data(), nullptr, nullptr);
    const double h = 1e-5;
    for (int which = 0; which < 2; ++which) {
      std::vector<double>& x = which ? t : s;
      const std::vector<double>& g = which ? ref.gt : ref.gs;
      for (size_t i = 0; i < x.size(); ++i) {
        const double x0 = x[i];
        x[i] = x0 + h;
        const double jp = ref_objective(c, s.data(), t.data(), nullptr, nullptr);
        x[i] = x0 - h;
        const double jm = ref_objective(c, s.data(), t.data(), nullptr, nullptr);
        x[i] = x0;
        const double fd = (jp - jm) / (2 * h);
        CHECK(std::fabs(fd - g[i]) <= 1e-7 * std::max(1.0, std::fabs(g[i])), "%s: %s[%zu] fd %.12g analytic %.12g",
              c.str().c_str(), which ? "teacher" : "student", i, fd, g[i]);
      }
    }
  }
  // Sanity of the reference itself on a hand-checkable case: identical logits give zero divergence.
  {
    DistillCfg c;
    c.rows = 1;
    c.cols = 4;
    c.T = 3.0;
    for (const DivSpec& d : kDivs) {
      c.div = d.div;
      c.beta = d.beta;
      const double s[4] = {0.1, -2.0, 3.0, 0.5};
      const RefResult ref = ref_distill(c, s, s, nullptr, nullptr);
      CHECK(std::fabs(ref.loss) < 1e-14, "%s: reference divergence of identical logits %.3g", div_name(d.div), ref.loss);
    }
  }
}

// ================================================================ 3. determinism

bool same_bytes(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

void test_determinism(int64_t rows, int64_t cols) {
  Rng rng(9000 + uint64_t(rows * cols));
  for (const DivSpec& d : {DivSpec{Divergence::KL, 0.5}, DivSpec{Divergence::ReverseKL, 0.5}, DivSpec{Divergence::JSD, 0.3}}) {
    DistillCfg c;
    c.rows = rows;
    c.cols = cols;
    c.T = 2.0;
    c.div = d.div;
    c.beta = d.beta;
    c.labels = true;
    c.alpha = 0.4;
    c.eps = 0.1;
    c.ignore_frac = rows > 2 ? 0.1 : 0.0;
    c.red = Reduction::Mean;
    const DistillInputs in = make_inputs(c, rng);
    for (Isa isa : isas()) {
      const CoreOut base = run_core(c, in, isa, 1);
      CHECK(base.st.ok(), "%s", base.st.message.c_str());
      for (int th : {2, 3, 8}) {
        const CoreOut o = run_core(c, in, isa, th);
        const std::string ctx = fmt("[%s] %s threads=%d vs 1", isa_label(isa), c.str().c_str(), th);
        CHECK(o.st.ok(), "%s: %s", ctx.c_str(), o.st.message.c_str());
        CHECK(std::memcmp(&o.res.loss, &base.res.loss, sizeof(double)) == 0, "%s: loss %.17g vs %.17g", ctx.c_str(),
              o.res.loss, base.res.loss);
        CHECK(same_bytes(o.rows, base.rows), "%s: loss_rows differ", ctx.c_str());
        CHECK(same_bytes(o.gs, base.gs), "%s: grad_student differs", ctx.c_str());
        CHECK(same_bytes(o.gt, base.gt), "%s: grad_teacher differs", ctx.c_str());
      }
    }
  }
  // softmax forward and backward too
  const std::vector<float> x = normal_floats(rng, rows * cols, 3.0), dy = normal_floats(rng, rows * cols, 1.0);
  for (Isa isa : isas())
    for (int log = 0; log < 2; ++log) {
      std::vector<float> y1(x.size()), dx1(x.size());
      for (int th : {1, 2, 3, 8}) {
        std::vector<float> y(x.size()), dx(x.size());
        SoftmaxArgs a;
        a.x = x.data();
        a.rows = rows;
        a.cols = cols;
        a.temperature = 1.5;
        a.log = log;
        a.y = y.data();
        ExecConfig cfg{th, isa};
        CHECK(softmax_forward(a, cfg).ok(), "softmax_forward");
        SoftmaxBackwardArgs b;
        b.y = y.data();
        b.dy = dy.data();
        b.rows = rows;
        b.cols = cols;
        b.temperature = 1.5;
        b.log = log;
        b.dx = dx.data();
        CHECK(softmax_backward(b, cfg).ok(), "softmax_backward");
        if (th == 1) { y1 = y; dx1 = dx; continue; }
        CHECK(same_bytes(y, y1), "[%s] softmax %lldx%lld log=%d threads=%d: output differs from threads=1", isa_label(isa),
              (long long)rows, (long long)cols, log, th);
        CHECK(same_bytes(dx, dx1), "[%s] softmax backward %lldx%lld log=%d threads=%d: differs from threads=1",
              isa_label(isa), (long long)rows, (long long)cols, log, th);
      }
    }
}

// ================================================================ 4. edge cases

// Puts -inf into a random ~25% of the columns of each row (at least one column left finite).
// Puts -inf into a random ~25% of the columns of each row, and always into one column (the first
// one after 0 that is not kept), so every row has a masked class; column 0 and `keep` stay finite.
void mask_columns(std::vector<float>* a, std::vector<float>* b, int64_t rows, int64_t cols, Rng& rng,
                  const std::vector<int32_t>* keep) {
  for (int64_t r = 0; r < rows; ++r) {
    bool any = false;
    for (int64_t j = 1; j < cols; ++j) {
      if (keep && (*keep)[size_t(r)] == j) continue;
      if (!any || rng.uniform() < 0.25) {
        any = true;
        if (a) (*a)[size_t(r * cols + j)] = -kInfF;
        if (b) (*b)[size_t(r * cols + j)] = -kInfF;
      }
    }
  }
}

void check_no_nan_grads(const CoreOut& o, const std::string& ctx) {
  CHECK(!has_nan(o.gs.data(), int64_t(o.gs.size())), "%s: NaN in grad_student", ctx.c_str());
  CHECK(!has_nan(o.gt.data(), int64_t(o.gt.size())), "%s: NaN in grad_teacher", ctx.c_str());
  CHECK(!has_nan(o.rows.data(), int64_t(o.rows.size())), "%s: NaN in loss_rows", ctx.c_str());
}

void test_masked_logits() {
  Rng rng(31);
  for (int64_t cols : {9, 1030}) {
    for (const DivSpec& d : kDivs) {
      for (Reduction red : {Reduction::Mean, Reduction::Sum, Reduction::None}) {
        DistillCfg c;
        c.rows = 5;
        c.cols = cols;
        c.T = 2.0;
        c.div = d.div;
        c.beta = d.beta;
        c.red = red;
        c.labels = true;
        c.alpha = 0.6;
        c.eps = 0.0;  // smoothing puts mass on masked student classes: infinite CE (checked below)
        // (a) both masked at the same classes: every divergence finite, compare numerically
        {
          DistillInputs in = make_inputs(c, rng);
          std::vector<float> mask(size_t(c.rows * c.cols), 0.0f);
          mask_columns(&mask, nullptr, c.rows, c.cols, rng, &in.labels);
          for (size_t i = 0; i < mask.size(); ++i)
            if (mask[i] == -kInfF) in.s[i] = in.t[i] = -kInfF;
          check_distill_against(c, in, run_ref(c, in));
        }
        // (b) teacher masked only: KL and JSD finite (teacher prob 0 contributes 0); reverse KL infinite
        // (c) student masked only: reverse KL and JSD finite; KL infinite
        for (int which = 0; which < 2; ++which) {
          DistillInputs in = make_inputs(c, rng);
          mask_columns(which == 0 ? nullptr : &in.s, which == 0 ? &in.t : nullptr, c.rows, c.cols, rng, &in.labels);
          const bool infinite = (which == 0 && d.div == Divergence::ReverseKL) || (which == 1 && d.div == Divergence::KL);
          if (!infinite) {
            check_distill_against(c, in, run_ref(c, in));
            continue;
          }
          for (Isa isa : isas()) {
            const CoreOut o = run_core(c, in, isa);
            const std::string ctx = fmt("[%s] %s masked %s only", isa_label(isa), c.str().c_str(), which ? "student" : "teacher");
            CHECK(o.st.ok(), "%s: %s", ctx.c_str(), o.st.message.c_str());
            CHECK(o.res.loss == kInf, "%s: loss %g, expected +Infinity", ctx.c_str(), o.res.loss);
            for (int64_t r = 0; r < c.rows; ++r) CHECK(o.rows[r] == kInfF, "%s: loss_rows[%lld] = %g", ctx.c_str(), (long long)r, double(o.rows[r]));
            check_no_nan_grads(o, ctx);
          }
        }
      }
    }
  }
  // Label smoothing with masked student classes: CE is +Infinity, never NaN.
  {
    DistillCfg c;
    c.rows = 3;
    c.cols = 20;
    c.labels = true;
    c.eps = 0.1;
    c.alpha = 0.5;
    c.T = 3.0;
    DistillInputs in = make_inputs(c, rng);
    for (int64_t r = 0; r < c.rows; ++r) in.s[size_t(r * c.cols + (in.labels[r] + 1) % c.cols)] = -kInfF;
    for (Isa isa : isas()) {
      const CoreOut o = run_core(c, in, isa);
      const std::string ctx = fmt("[%s] smoothing with masked student classes", isa_label(isa));
      CHECK(o.st.ok() && o.res.loss == kInf, "%s: loss %g (%s)", ctx.c_str(), o.res.loss, o.st.message.c_str());
      check_no_nan_grads(o, ctx);
    }
  }
}

// alpha = 0 (soft term weighted 0) with a student probability 0 where the teacher's is > 0:
// the loss is the hard-label term alone, never NaN (0 * Infinity).
void test_masked_student_alpha_zero() {
  Rng rng(32);
  DistillCfg c;
  c.rows = 3;
  c.cols = 12;
  c.labels = true;
  c.alpha = 0.0;
  c.T = 2.0;
  for (const DivSpec& d : {DivSpec{Divergence::KL, 0.5}}) {
    c.div = d.div;
    DistillInputs in = make_inputs(c, rng);
    for (int64_t r = 0; r < c.rows; ++r) in.s[size_t(r * c.cols + (in.labels[r] + 3) % c.cols)] = -kInfF;
    const RefResult ref = run_ref(c, in);
    for (Isa isa : isas()) {
      const CoreOut o = run_core(c, in, isa);
      const std::string ctx = fmt("[%s] %s masked student", isa_label(isa), c.str().c_str());
      CHECK(o.st.ok(), "%s: %s", ctx.c_str(), o.st.message.c_str());
      CHECK(!std::isnan(o.res.loss), "%s: loss is NaN (0 * Infinity), expected the hard term %.9g", ctx.c_str(), ref.loss);
      check_no_nan_grads(o, ctx);
    }
  }
}

void test_large_logits() {
  Rng rng(41);
  for (double T : {1.0, 2.0, 4.0}) {
    for (const DivSpec& d : kDivs) {
      for (int variant = 0; variant < 2; ++variant) {
        DistillCfg c;
        c.rows = 4;
        c.cols = variant ? 2000 : 10;
        c.T = T;
        c.div = d.div;
        c.beta = d.beta;
        c.labels = true;
        c.alpha = 0.5;
        c.eps = 0.1;
        DistillInputs in = make_inputs(c, rng);
        // +-1e4 mixed with ordinary values
        for (auto* v : {&in.s, &in.t})
          for (auto& x : *v) {
            const double u = rng.uniform();
            x = u < 0.3 ? 1e4f : (u < 0.6 ? -1e4f : x);
          }
        const RefResult ref = run_ref(c, in);
        for (Isa isa : isas()) {
          const CoreOut o = run_core(c, in, isa);
          const std::string ctx = fmt("[%s] +-1e4 logits %s", isa_label(isa), c.str().c_str());
          CHECK(o.st.ok(), "%s: %s", ctx.c_str(), o.st.message.c_str());
          CHECK(std::isfinite(o.res.loss), "%s: loss %g", ctx.c_str(), o.res.loss);
          CHECK(count_nonfinite(o.gs.data(), int64_t(o.gs.size())) == 0, "%s: non-finite student gradient", ctx.c_str());
          CHECK(count_nonfinite(o.gt.data(), int64_t(o.gt.size())) == 0, "%s: non-finite teacher gradient", ctx.c_str());
        }
        check_distill_against(c, in, ref);
      }
    }
  }
}

void test_single_class() {
  Rng rng(51);
  for (const DivSpec& d : kDivs)
    for (double T : kTemps)
      for (int labels = 0; labels < 2; ++labels) {
        DistillCfg c;
        c.rows = 5;
        c.cols = 1;
        c.T = T;
        c.div = d.div;
        c.beta = d.beta;
        c.labels = labels;
        c.eps = 0.1;
        c.alpha = 0.5;
        c.red = Reduction::Sum;
        const DistillInputs in = make_inputs(c, rng);
        // one class: p = q = r = yhat = 1, so the loss and every gradient are exactly 0 in the
        // reference; the core may differ only by the float32 allowance (a few ulps of the loss scale)
        const RefResult ref = run_ref(c, in);
        CHECK(ref.loss == 0.0, "reference single-class loss %g", ref.loss);
        check_distill_against(c, in, ref);
      }
}

void test_all_rows_ignored() {
  Rng rng(61);
  for (const DivSpec& d : kDivs)
    for (Reduction red : {Reduction::Mean, Reduction::Sum, Reduction::None}) {
      for (int64_t cols : {7, 3000}) {
        DistillCfg c;
        c.rows = 4;
        c.cols = cols;
        c.div = d.div;
        c.beta = d.beta;
        c.labels = true;
        c.eps = 0.1;
        c.red = red;
        c.ignore_frac = 1.0;
        c.go_rows = red == Reduction::None;
        const DistillInputs in = make_inputs(c, rng);
        for (Isa isa : isas()) {
          const CoreOut o = run_core(c, in, isa);
          const std::string ctx = fmt("[%s] all ignored %s", isa_label(isa), c.str().c_str());
          CHECK(o.st.ok(), "%s: %s", ctx.c_str(), o.st.message.c_str());
          CHECK(o.res.loss == 0.0 && o.res.valid_rows == 0, "%s: loss %g valid %lld", ctx.c_str(), o.res.loss, (long long)o.res.valid_rows);
          CHECK(all_zero(o.rows.data(), c.rows), "%s: loss_rows not zero", ctx.c_str());
          CHECK(all_zero(o.gs.data(), int64_t(o.gs.size())), "%s: student gradient not zero", ctx.c_str());
          CHECK(all_zero(o.gt.data(), int64_t(o.gt.size())), "%s: teacher gradient not zero", ctx.c_str());
        }
      }
    }
}

// Null outputs are allowed; the loss does not depend on which outputs were asked for.
void test_optional_outputs() {
  Rng rng(71);
  for (const DivSpec& d : kDivs) {
    DistillCfg c;
    c.rows = 3;
    c.cols = 1500;
    c.div = d.div;
    c.beta = d.beta;
    c.labels = true;
    c.eps = 0.1;
    c.T = 3.0;
    const DistillInputs in = make_inputs(c, rng);
    for (Isa isa : isas()) {
      const CoreOut full = run_core(c, in, isa);
      DistillCfg c2 = c;
      c2.want_gs = c2.want_gt = c2.want_rows = false;
      const CoreOut bare = run_core(c2, in, isa);
      CHECK(full.st.ok() && bare.st.ok(), "status");
      CHECK(rel_err(bare.res.loss, full.res.loss) <= 1e-6, "[%s] %s: loss without outputs %.9g vs %.9g", isa_label(isa),
            div_name(d.div), bare.res.loss, full.res.loss);
      // null result pointer is fine too
      DistillLossArgs a;
      a.student = in.s.data();
      a.teacher = in.t.data();
      a.rows = c.rows;
      a.cols = c.cols;
      a.divergence = c.div;
      CHECK(distill_loss(a, nullptr, ExecConfig{0, isa}).ok(), "null result pointer");
    }
  }
}

// ================================================================ 5. errors

bool contains(const std::string& s, const std::string& sub) { return s.find(sub) != std::string::npos; }

void expect_range(const DistillLossArgs& a, const std::vector<std::string>& words, const std::string& what,
                  int threads = 0) {
  for (Isa isa : isas()) {
    DistillLossResult res;
    const Status st = distill_loss(a, &res, ExecConfig{threads, isa});
    CHECK(st.kind == ErrorKind::Range, "%s [%s]: kind %d, expected Range (message '%s')", what.c_str(), isa_label(isa),
          int(st.kind), st.message.c_str());
    for (const std::string& w : words)
      CHECK(contains(st.message, w), "%s [%s]: message '%s' lacks '%s'", what.c_str(), isa_label(isa),
            st.message.c_str(), w.c_str());
  }
}

// Finite logits that 1/T carries to 2^127 or beyond (half of float32's range; past float32 they made
// the row NaN) are a temperature error, in
// both schedules and for either input; in an ignored row they are not. A data error found after
// earlier rows were written leaves every output NaN, never a partly written buffer.
void test_overflow_and_poison() {
  Rng rng(82);
  for (int64_t cols : {int64_t(10), int64_t(3000)}) {
    for (int64_t rows : {int64_t(1), int64_t(6)}) {  // 1 row of 3000 takes the (row, chunk) schedule
      const std::vector<float> s0 = normal_floats(rng, rows * cols, 3.0), t0 = normal_floats(rng, rows * cols, 3.0);
      const int64_t r = rows - 1, at = r * cols + cols / 2;
      for (int which = 0; which < 2; ++which) {
        std::vector<float> s = s0, t = t0;
        (which ? t : s)[size_t(at)] = 3e38f;
        DistillLossArgs a = base_args(s, t, rows, cols);
        a.temperature = 0.5;
        const char* name = which ? "teacher" : "student";
        const std::string what = fmt("%s 3e38 at T 0.5, %lldx%lld", name, (long long)rows, (long long)cols);
        expect_range(a, {"temperature", name, "row " + std::to_string(r), "0.5"}, what);
        expect_range(a, {"temperature"}, what + ", 1 thread", 1);
        a.temperature = 2.0;  // the same logits at T = 2 are fine (1.5e38: below 2^127, the range rule)
        for (Isa isa : isas()) {
          DistillLossResult res;
          const Status st = distill_loss(a, &res, ExecConfig{0, isa});
          CHECK(st.ok() && std::isfinite(res.loss), "%s at T 2 [%s]: %s", what.c_str(), isa_label(isa), st.message.c_str());
        }
        // an ignored row may overflow: it takes no part in the loss
        a.temperature = 0.5;
        std::vector<int32_t> labels(size_t(rows), 0);
        labels[size_t(r)] = -100;
        a.labels = labels.data();
        if (rows > 1) {
          for (Isa isa : isas()) {
            DistillLossResult res;
            const Status st = distill_loss(a, &res, ExecConfig{0, isa});
            CHECK(st.ok() && std::isfinite(res.loss), "%s, row ignored [%s]: %s", what.c_str(), isa_label(isa), st.message.c_str());
          }
        }
      }
      // softmax: the same rule
      std::vector<float> x = s0, y(x.size());
      x[size_t(at)] = 3e38f;  // the row maximum (any finite logit beyond the range rule is refused alike)
      for (Isa isa : isas()) {
        SoftmaxArgs a;
        a.x = x.data();
        a.rows = rows;
        a.cols = cols;
        a.temperature = 0.25;
        a.y = y.data();
        const Status st = softmax_forward(a, ExecConfig{0, isa});
        CHECK(st.kind == ErrorKind::Range && contains(st.message, "temperature") && contains(st.message, "logits row " + std::to_string(r)),
              "softmax 3e38 at T 0.25 [%s]: '%s'", isa_label(isa), st.message.c_str());
      }
      // a NaN in the last row: earlier rows were done first, yet every output ends NaN
      std::vector<float> s = s0;
      s[size_t(at)] = kNaNF;
      for (Isa isa : isas()) {
        std::vector<float> gs(size_t(rows * cols), 7.0f), gt(size_t(rows * cols), 7.0f), lr(size_t(rows), 7.0f);
        DistillLossArgs a = base_args(s, t0, rows, cols);
        a.temperature = 2.0;
        a.reduction = Reduction::None;
        a.grad_student = gs.data();
        a.grad_teacher = gt.data();
        a.loss_rows = lr.data();
        DistillLossResult res;
        const Status st = distill_loss(a, &res, ExecConfig{1, isa});
        CHECK(st.kind == ErrorKind::Range, "NaN in the last row [%s]: kind %d", isa_label(isa), int(st.kind));
        const auto all_nan = [](const std::vector<float>& v) {
          for (float f : v) if (!std::isnan(f)) return false;
          return true;
        };
        CHECK(all_nan(gs) && all_nan(gt) && all_nan(lr), "NaN in the last row [%s]: outputs not all NaN", isa_label(isa));
        std::vector<float> ys(size_t(rows * cols), 7.0f);
        SoftmaxArgs sa;
        sa.x = s.data();
        sa.rows = rows;
        sa.cols = cols;
        sa.y = ys.data();
        CHECK(softmax_forward(sa, ExecConfig{1, isa}).kind == ErrorKind::Range && all_nan(ys), "softmax NaN in the last row [%s]",
              isa_label(isa));
      }
    }
  }
}

void test_errors() {
  Rng rng(81);
  const int64_t R = 4, C = 10;
  const std::vector<float> s0 = normal_floats(rng, R * C, 3.0), t0 = normal_floats(rng, R * C, 3.0);
  // NaN / +Infinity in either input, found and located
  for (int which = 0; which < 2; ++which)
    for (float bad : {kNaNF, kInfF})
      for (int64_t idx : {int64_t(0), int64_t(23), R * C - 1}) {
        std::vector<float> s = s0, t = t0;
        (which ? t : s)[size_t(idx)] = bad;
        DistillLossArgs a = base_args(s, t, R, C);
        const char* name = which ? "teacher" : "student";
        expect_range(a, {name, std::to_string(idx)}, fmt("%s %g at %lld", name, double(bad), (long long)idx));
        // also when the row is ignored, and with labels / teacher gradient
        std::vector<int32_t> labels(R, 1);
        labels[size_t(idx / C)] = -100;
        a.labels = labels.data();
        std::vector<float> gt(size_t(R * C));
        a.grad_teacher = gt.data();
        expect_range(a, {name, std::to_string(idx)}, fmt("%s %g at %lld in an ignored row", name, double(bad), (long long)idx));
      }
  // NaN in a long row that the split schedule handles
  {
    const int64_t C2 = 131072;
    std::vector<float> s = normal_floats(rng, C2, 3.0), t = normal_floats(rng, C2, 3.0);
    t[77777] = kNaNF;
    DistillLossArgs a = base_args(s, t, 1, C2);
    expect_range(a, {"teacher", "77777"}, "teacher NaN in a split row", 8);
  }
  // temperature
  for (double T : {0.0, -1.0, std::nan(""), kInf, -kInf}) {
    DistillLossArgs a = base_args(s0, t0, R, C);
    a.temperature = T;
    expect_range(a, {"temperature"}, fmt("temperature %g", T));
  }
  // alpha
  for (double al : {-0.1, 1.1, std::nan("")}) {
    DistillLossArgs a = base_args(s0, t0, R, C);
    a.alpha = al;
    expect_range(a, {"alpha"}, fmt("alpha %g", al));
  }
  // labels out of range
  for (int32_t bad : {-1, int32_t(C), int32_t(C + 5), -101}) {
    std::vector<int32_t> labels = {0, 1, bad, 3};
    DistillLossArgs a = base_args(s0, t0, R, C);
    a.labels = labels.data();
    expect_range(a, {"labels[2]"}, fmt("label %d", bad));
  }
  // label smoothing, beta
  for (double e : {1.0, -0.1, 1.5}) {
    std::vector<int32_t> labels = {0, 1, 2, 3};
    DistillLossArgs a = base_args(s0, t0, R, C);
    a.labels = labels.data();
    a.label_smoothing = e;
    expect_range(a, {"labelSmoothing"}, fmt("label smoothing %g", e));
  }
  for (double b : {1.5, -0.5}) {
    DistillLossArgs a = base_args(s0, t0, R, C);
    a.divergence = Divergence::JSD;
    a.beta = b;
    expect_range(a, {"beta"}, fmt("beta %g", b));
  }
  // shapes
  {
    DistillLossArgs a = base_args(s0, t0, 0, C);
    expect_range(a, {"rows"}, "rows 0");
    a = base_args(s0, t0, R, 0);
    expect_range(a, {"cols"}, "cols 0");
  }
  // a row with no finite logit
  {
    std::vector<float> s = s0, t = t0;
    for (int64_t j = 0; j < C; ++j) s[size_t(2 * C + j)] = -kInfF;
    expect_range(base_args(s, t, R, C), {"student"}, "student row all -Infinity");
    s = s0;
    for (int64_t j = 0; j < C; ++j) t[size_t(1 * C + j)] = -kInfF;
    expect_range(base_args(s, t, R, C), {"teacher"}, "teacher row all -Infinity");
  }
  // softmax errors
  {
    std::vector<float> x = s0, y(x.size());
    x[17] = kNaNF;
    for (Isa isa : isas()) {
      SoftmaxArgs a;
      a.x = x.data();
      a.rows = R;
      a.cols = C;
      a.y = y.data();
      Status st = softmax_forward(a, ExecConfig{0, isa});
      CHECK(st.kind == ErrorKind::Range && contains(st.message, "17"), "softmax NaN: %s", st.message.c_str());
      a.x = s0.data();
      a.temperature = 0.0;
      st = softmax_forward(a, ExecConfig{0, isa});
      CHECK(st.kind == ErrorKind::Range && contains(st.message, "temperature"), "softmax T=0: %s", st.message.c_str());
      a.temperature = 1.0;
      a.cols = 0;
      st = softmax_forward(a, ExecConfig{0, isa});
      CHECK(st.kind == ErrorKind::Range && contains(st.message, "cols"), "softmax cols 0: %s", st.message.c_str());
    }
  }
}

// ================================================================ 6. softmax

void check_softmax_case(int64_t rows, int64_t cols, double T, Rng& rng) {
  const std::vector<float> x = normal_floats(rng, rows * cols, 3.0);
  const std::vector<float> dy = normal_floats(rng, rows * cols, 1.0);
  // reference forward in double
  std::vector<double> lsm(x.size()), sm(x.size());
  std::vector<double> z(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < cols; ++j) z[j] = zof(x[r * cols + j], T);
    const double l = ref_lse(z.data(), cols);
    for (int64_t j = 0; j < cols; ++j) {
      lsm[r * cols + j] = z[j] - l;
      sm[r * cols + j] = std::exp(z[j] - l);
    }
  }
  for (int log = 0; log < 2; ++log) {
    // backward input: the reference forward output rounded to float
    std::vector<float> yin(x.size());
    for (size_t i = 0; i < x.size(); ++i) yin[i] = float(log ? lsm[i] : sm[i]);
    std::vector<double> dx_ref(x.size()), dx_allow(x.size());
    for (int64_t r = 0; r < rows; ++r) {
      double dot = 0.0, adot = 0.0;
      for (int64_t j = 0; j < cols; ++j) {
        const size_t i = size_t(r * cols + j);
        dot += log ? double(dy[i]) : double(dy[i]) * double(yin[i]);
        adot += log ? std::fabs(double(dy[i])) : std::fabs(double(dy[i]) * double(yin[i]));
      }
      for (int64_t j = 0; j < cols; ++j) {
        const size_t i = size_t(r * cols + j);
        const double yi = yin[i], e = log ? std::exp(yi) : yi;
        dx_ref[i] = log ? (dy[i] - e * dot) / T : yi * (dy[i] - dot) / T;
        // float32: dy - dot cancels (dot rounded to float costs ulp(|dot|)), exp(log y) costs
        // ulps of |log y|; a few ulps of the terms, the model of the distillation checks
        dx_allow[i] = kU * (log ? (std::fabs(double(dy[i])) + e * adot * (2.0 + std::fabs(yi)))
                                : std::fabs(yi) * (std::fabs(double(dy[i])) + adot)) / T;
      }
    }
    for (Isa isa : isas()) {
      const std::string ctx = fmt("[%s] softmax %lldx%lld T=%g log=%d", isa_label(isa), (long long)rows, (long long)cols, T, log);
      std::vector<float> y(x.size(), kNaNF), dx(x.size(), kNaNF);
      SoftmaxArgs a;
      a.x = x.data();
      a.rows = rows;
      a.cols = cols;
      a.temperature = T;
      a.log = log;
      a.y = y.data();
      Status st = softmax_forward(a, ExecConfig{0, isa});
      CHECK(st.ok(), "%s: %s", ctx.c_str(), st.message.c_str());
      double worst = 0.0;
      size_t wi = 0;
      for (size_t i = 0; i < x.size(); ++i) {
        double e;
        if (log) e = std::fabs(double(y[i]) - lsm[i]) / (1e-5 * std::max(1.0, std::fabs(lsm[i])));
        else e = std::fabs(double(y[i]) - sm[i]) / 1e-6;
        if (!(e <= worst)) { worst = std::isnan(e) ? kInf : e; wi = i; }
      }
      CHECK(worst <= 1.0, "%s: forward err %.2f x tol at %zu (got %.9g, ref %.9g)", ctx.c_str(), worst, wi, double(y[wi]),
            log ? lsm[wi] : sm[wi]);
      SoftmaxBackwardArgs b;
      b.y = yin.data();
      b.dy = dy.data();
      b.rows = rows;
      b.cols = cols;
      b.temperature = T;
      b.log = log;
      b.dx = dx.data();
      st = softmax_backward(b, ExecConfig{0, isa});
      CHECK(st.ok(), "%s backward: %s", ctx.c_str(), st.message.c_str());
      check_grad("softmax backward dx", dx.data(), dx_ref, &dx_allow, ctx);
    }
  }
}

void test_softmax_sweep() {
  Rng rng(111);
  for (int64_t cols : kCols)
    for (double T : kTemps) {
      std::vector<int64_t> rows_ok;
      for (int64_t r : kRows) if (r * cols <= 70000) rows_ok.push_back(r);
      check_softmax_case(rng.pick(rows_ok), cols, T, rng);
    }
  for (double T : kTemps) check_softmax_case(1, 50257, T, rng);
  // around the small-rows kernel's width (up to 64 columns, eight rows per group)
  for (int64_t cols : {int64_t(17), int64_t(33), int64_t(64), int64_t(65)})
    for (double T : {0.5, 2.0}) check_softmax_case(rng.pick<int64_t>({9, 23}), cols, T, rng);
  for (double T : {0.5, 1.0, 4.0}) check_softmax_case(3, 131072, T, rng);
}

void test_softmax_masked() {
  Rng rng(112);
  const int64_t R = 3, C = 2100;
  std::vector<float> x = normal_floats(rng, R * C, 3.0);
  mask_columns(&x, nullptr, R, C, rng, nullptr);
  for (Isa isa : isas())
    for (int log = 0; log < 2; ++log) {
      std::vector<float> y(x.size());
      SoftmaxArgs a;
      a.x = x.data();
      a.rows = R;
      a.cols = C;
      a.temperature = 0.7;
      a.log = log;
      a.y = y.data();
      CHECK(softmax_forward(a, ExecConfig{0, isa}).ok(), "masked softmax");
      bool ok = true;
      for (size_t i = 0; i < x.size(); ++i)
        if (x[i] == -kInfF) ok = ok && (log ? y[i] == -kInfF : y[i] == 0.0f);
        else ok = ok && std::isfinite(y[i]);
      CHECK(ok, "[%s] masked softmax log=%d: masked classes must give exactly %s and others finite", isa_label(isa), log,
            log ? "-Infinity" : "0");
      // backward through masked classes: no NaN
      std::vector<float> dy = normal_floats(rng, R * C, 1.0), dx(x.size());
      SoftmaxBackwardArgs b;
      b.y = y.data();
      b.dy = dy.data();
      b.rows = R;
      b.cols = C;
      b.temperature = 0.7;
      b.log = log;
      b.dx = dx.data();
      const Status st = softmax_backward(b, ExecConfig{0, isa});
      if (log) {
        // log-softmax output carries -Infinity; the backward reads exp(y) = 0 there
        CHECK(st.ok() && !has_nan(dx.data(), int64_t(dx.size())), "[%s] log-softmax backward through masked classes: %s",
              isa_label(isa), st.message.c_str());
      } else {
        CHECK(st.ok() && !has_nan(dx.data(), int64_t(dx.size())), "[%s] softmax backward with zeros: %s", isa_label(isa),
              st.message.c_str());
      }
    }
}

// ================================================================ 7. vector exp / log and the triad

struct Table {
  const char* name;
  const ChunkKernels* k;
};
std::vector<Table> tables() {
  std::vector<Table> t = {{"generic", &chunk_kernels_generic()}};
  if (cpu_has_avx2_fma()) t.push_back({"avx2", &chunk_kernels_avx2()});
  return t;
}

// The float64 log of each table (the small-rows kernel's row statistics) against std::log.
void test_log_f64_accuracy() {
  std::vector<double> x;
  for (int i = 0; i <= 20000; ++i) x.push_back(std::pow(10.0, -300.0 + 600.0 * i / 20000.0));
  for (int i = 0; i <= 20000; ++i) x.push_back(0.5 + 1.5 * i / 20000.0);  // around 1, and the sums' range
  for (int i = 1; i <= 20000; ++i) x.push_back(double(i));
  std::vector<double> y(x.size() + 3, 123.0);
  for (const Table& tb : tables()) {
    tb.k->log_array_f64(x.data(), y.data(), int64_t(x.size()) - 1);  // an odd count: the tail path
    double worst = 0.0, wx = 0.0;
    for (size_t i = 0; i + 1 < x.size(); ++i) {
      const double ref = std::log(x[i]);
      const double e = std::fabs(y[i] - ref) / (4.0 * 2.220446049250313e-16 * std::max(std::fabs(ref), 1e-300) + 1e-300);
      if (!(e <= worst)) { worst = std::isnan(e) ? kInf : e; wx = x[i]; }
    }
    std::printf("    %s log f64: max err %.3f x 4 ulp\n", tb.name, worst);
    CHECK(worst <= 1.0, "%s log f64: error %.3f x 4 ulp at x = %.17g", tb.name, worst, wx);
    CHECK(y[x.size() - 1] == 123.0, "%s log_array_f64 wrote past n", tb.name);
  }
}

void test_exp_accuracy() {
  const int64_t N = 100000;
  std::vector<float> x(static_cast<size_t>(N)), y(size_t(N) + 8, 123.0f);
  for (int64_t i = 0; i < N; ++i) x[i] = float(-87.0 * double(i) / double(N - 1));
  for (const Table& tb : tables()) {
    tb.k->exp_array(x.data(), y.data(), N);
    double worst = 0.0;
    int64_t wi = 0;
    for (int64_t i = 0; i < N; ++i) {
      const double ref = std::exp(double(x[i]));
      const double e = std::fabs(double(y[i]) - ref) / ref;
      if (!(e <= worst)) { worst = std::isnan(e) ? kInf : e; wi = i; }
    }
    std::printf("    %s exp: max rel err %.3g on [-87, 0]\n", tb.name, worst);
    CHECK(worst < 4e-7, "%s exp: max rel err %.3g at x=%.9g (got %.9g)", tb.name, worst, double(x[wi]), double(y[wi]));
    CHECK(y[size_t(N)] == 123.0f, "%s exp_array wrote past n", tb.name);
    // exp(0) = 1 exactly; small positive arguments the kernels can see (fma rounding above the max)
    const float xs[6] = {0.0f, 1e-7f, -1e-7f, 1e-3f, 0.5f, 10.0f};
    float ys[6];
    tb.k->exp_array(xs, ys, 6);
    CHECK(ys[0] == 1.0f, "%s exp(0) = %.9g", tb.name, double(ys[0]));
    for (int i = 1; i < 6; ++i)
      CHECK(std::fabs(ys[i] - std::exp(double(xs[i]))) <= 4e-7 * std::exp(double(xs[i])), "%s exp(%g) = %.9g", tb.name,
            double(xs[i]), double(ys[i]));
    // -inf and far below the float range: exactly 0; just below -88: 0 or a tiny subnormal
    const float lo[7] = {-kInfF, -1e30f, -1000.0f, -104.0f, -150.0f, -88.5f, -89.0f};
    float ly[7];
    tb.k->exp_array(lo, ly, 7);
    for (int i = 0; i < 5; ++i) CHECK(ly[i] == 0.0f, "%s exp(%g) = %g, expected exactly 0", tb.name, double(lo[i]), double(ly[i]));
    for (int i = 5; i < 7; ++i)
      CHECK(ly[i] >= 0.0f && ly[i] < std::numeric_limits<float>::min(), "%s exp(%g) = %g, expected 0 or subnormal",
            tb.name, double(lo[i]), double(ly[i]));
    if (std::strcmp(tb.name, "avx2") == 0)  // documented: x < -87.34 gives exactly 0
      for (int i = 5; i < 7; ++i) CHECK(ly[i] == 0.0f, "avx2 exp(%g) = %g, expected exactly 0", double(lo[i]), double(ly[i]));
    // tails of every length
    for (int n = 1; n <= 17; ++n) {
      std::vector<float> a(size_t(n) + 4, 7.0f), b(size_t(n) + 4, 7.0f);
      for (int i = 0; i < n; ++i) a[size_t(i)] = -0.37f * float(i);
      tb.k->exp_array(a.data(), b.data(), n);
      bool ok = b[size_t(n)] == 7.0f;
      for (int i = 0; i < n; ++i) ok = ok && std::fabs(b[size_t(i)] - std::exp(double(a[size_t(i)]))) <= 4e-7 * std::exp(double(a[size_t(i)]));
      CHECK(ok, "%s exp_array n=%d: wrong value or wrote past the end", tb.name, n);
    }
  }
}

void test_log_accuracy() {
  const int64_t N = 100000;
  std::vector<float> x(static_cast<size_t>(N)), y(size_t(N) + 8, 123.0f);
  for (int64_t i = 0; i < N; ++i) x[i] = float(std::pow(10.0, -30.0 + 60.0 * double(i) / double(N - 1)));
  // also dense around 1, where log is small and relative accuracy matters
  std::vector<float> x1(20001), y1(20001);
  for (int i = 0; i <= 20000; ++i) x1[size_t(i)] = float(0.5 + 1.5 * i / 20000.0);
  for (const Table& tb : tables()) {
    tb.k->log_array(x.data(), y.data(), N);
    tb.k->log_array(x1.data(), y1.data(), int64_t(x1.size()));
    // bound: 2 ulp of the result (|log x| <= 69.1 here, so 2.4e-7 * |log x|) plus 1e-7 absolute
    double worst = 0.0, wx = 0.0, wy = 0.0, max_rel_large = 0.0;
    auto scan = [&](const std::vector<float>& xs, const std::vector<float>& ys, size_t n) {
      for (size_t i = 0; i < n; ++i) {
        const double ref = std::log(double(xs[i]));
        const double e = std::fabs(double(ys[i]) - ref) / (2.4e-7 * std::fabs(ref) + 1e-7);
        if (std::fabs(ref) > 1.0) max_rel_large = std::max(max_rel_large, std::fabs(double(ys[i]) - ref) / std::fabs(ref));
        if (!(e <= worst)) { worst = std::isnan(e) ? kInf : e; wx = xs[i]; wy = ys[i]; }
      }
    };
    scan(x, y, size_t(N));
    scan(x1, y1, x1.size());
    std::printf("    %s log: max err %.3f x bound, max rel err %.3g where |log x| > 1\n", tb.name, worst, max_rel_large);
    CHECK(worst <= 1.0, "%s log: err %.3f x (2.4e-7|log x| + 1e-7) at x=%.9g (got %.9g, ref %.9g)", tb.name, worst, wx, wy,
          std::log(wx));
    CHECK(y[size_t(N)] == 123.0f, "%s log_array wrote past n", tb.name);
    const float sp[4] = {0.0f, 1.0f, std::numeric_limits<float>::min(), std::numeric_limits<float>::max()};
    float sy[4];
    tb.k->log_array(sp, sy, 4);
    CHECK(sy[0] == -kInfF, "%s log(0) = %g, expected -Infinity", tb.name, double(sy[0]));
    CHECK(sy[1] == 0.0f, "%s log(1) = %g, expected 0", tb.name, double(sy[1]));
    CHECK(std::fabs(sy[2] - std::log(double(sp[2]))) < 2e-5, "%s log(FLT_MIN) = %.9g", tb.name, double(sy[2]));
    CHECK(std::fabs(sy[3] - std::log(double(sp[3]))) < 2e-5, "%s log(FLT_MAX) = %.9g", tb.name, double(sy[3]));
  }
}

void test_triad() {
  Rng rng(121);
  for (int64_t n : {int64_t(1), int64_t(7), int64_t(8), int64_t(13), int64_t(1000003)}) {
    std::vector<float> b = normal_floats(rng, n, 10.0), c = normal_floats(rng, n, 10.0);
    const float k = 3.1415927f;
    std::vector<float> expect(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) expect[i] = std::fma(k, c[i], b[i]);  // b + k*c, one rounding
    auto check = [&](const std::vector<float>& a, const char* who) {
      int64_t bad = 0, first = -1;
      for (int64_t i = 0; i < n; ++i) {
        // the exact value is b + k*c; the result must be it rounded once (fused) or, if the
        // implementation rounds twice, within 1 ulp of it
        const double exact = double(b[i]) + double(k) * double(c[i]);
        const bool ok = a[i] == expect[i] ||
                        std::fabs(double(a[i]) - exact) <= std::fabs(double(std::nextafter(expect[i], kInfF)) - double(expect[i]));
        if (!ok && bad++ == 0) first = i;
      }
      CHECK(bad == 0 && a[size_t(n)] == -5.0f, "%s triad n=%lld: %lld wrong (first at %lld) or wrote past the end", who,
            (long long)n, (long long)bad, (long long)first);
    };
    for (const Table& tb : tables()) {
      std::vector<float> a(size_t(n) + 1, -5.0f);
      tb.k->triad(a.data(), b.data(), c.data(), k, n);
      check(a, tb.name);
    }
    for (Isa isa : isas())
      for (int th : {1, 4}) {
        std::vector<float> a(size_t(n) + 1, -5.0f);
        stream_triad(a.data(), b.data(), c.data(), k, n, ExecConfig{th, isa});
        check(a, fmt("stream_triad[%s, %d threads]", isa_label(isa), th).c_str());
      }
  }
}

// ================================================================ 8. long rows, float32 vs float64

void test_long_rows_accuracy() {
  Rng rng(131);
  for (const DivSpec& d : kDivs) {
    DistillCfg c;
    c.rows = 2;
    c.cols = 131072;
    c.T = 1.0;
    c.sigma = 5.0;
    c.div = d.div;
    c.beta = d.beta;
    c.red = Reduction::Sum;
    check_distill(c, rng);
  }
  // with labels and smoothing, T != 1 (the hard term's own normaliser)
  DistillCfg c;
  c.rows = 2;
  c.cols = 131072;
  c.T = 2.0;
  c.sigma = 5.0;
  c.labels = true;
  c.eps = 0.1;
  c.alpha = 0.5;
  check_distill(c, rng);
}

// ================================================================ machine facts

void test_machine() {
  CHECK(default_threads() >= 1, "default_threads %d", default_threads());
  CHECK(resolve_isa(Isa::Generic) == Isa::Generic, "Generic resolves to Generic");
  const Isa a = resolve_isa(Isa::Auto);
  CHECK(a == (cpu_has_avx2_fma() ? Isa::Avx2 : Isa::Generic), "Auto resolves to %s", isa_name(a));
  CHECK(resolve_isa(Isa::Avx2) == a, "Avx2 resolves to what this CPU runs");
  CHECK(&kernels_for(Isa::Generic) == &chunk_kernels_generic(), "kernels_for(Generic)");
  if (cpu_has_avx2_fma()) CHECK(&kernels_for(Isa::Auto) == &chunk_kernels_avx2(), "kernels_for(Auto) is AVX2");
}

// Runs one test case; in a child process where fork exists, so a crash fails that case alone.
// Returns the number of failed checks (or -signal for a crash).
int run_case(const TestCase& tc) {
  g_case_failed_checks = 0;
  g_case_printed = 0;
#if defined(KDFUSE_TEST_FORK)
  std::fflush(stdout);
  const char* nofork = std::getenv("KDFUSE_TEST_NOFORK");  // set it to debug in one process
  const pid_t pid = (nofork && *nofork) ? pid_t(-2) : fork();
  if (pid == 0) {
    tc.fn();
    if (g_case_printed > kMaxPrintPerCase)
      std::printf("    ... %d more failed checks not shown\n", g_case_printed - kMaxPrintPerCase);
    std::fflush(stdout);
    _exit(g_case_failed_checks > 250 ? 250 : g_case_failed_checks);
  }
  if (pid > 0) {
    int status = 0;
    if (waitpid(pid, &status, 0) == pid) {
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      if (WIFSIGNALED(status)) return -WTERMSIG(status);
    }
    if (pid != pid_t(-2)) return -1000;
  }
#endif
  tc.fn();  // no fork: run in this process
  if (g_case_printed > kMaxPrintPerCase)
    std::printf("    ... %d more failed checks not shown\n", g_case_printed - kMaxPrintPerCase);
  return g_case_failed_checks;
}

}  // namespace

// Usage: kdfuse_core_test [substring]  (runs only the test cases whose name contains it)
int main(int argc, char** argv) {

  std::printf("kdfuse core tests: Auto runs %s, %d default threads\n", isa_name(Isa::Auto), default_threads());
  add_test("machine facts", test_machine);
  for (int64_t cols : kCols) add_test(fmt("distill vs reference, cols=%lld", (long long)cols), [cols] { test_distill_sweep(cols); });
  add_test("distill option grid (17x9)", test_distill_options_grid);
  add_test("distill without labels ignores alpha", test_distill_no_labels_ignores_alpha);
  add_test("reference gradients by finite differences", test_reference_finite_differences);
  add_test("determinism 64x5000 (whole rows)", [] { test_determinism(64, 5000); });
  add_test("determinism 1x131072 (split row)", [] { test_determinism(1, 131072); });
  add_test("determinism 2x100000 (both schedules)", [] { test_determinism(2, 100000); });
  add_test("masked (-Infinity) logits", test_masked_logits);
  add_test("masked student with alpha = 0", test_masked_student_alpha_zero);
  add_test("logits of +-1e4", test_large_logits);
  add_test("single class", test_single_class);
  add_test("all rows ignored", test_all_rows_ignored);
  add_test("optional outputs", test_optional_outputs);
  add_test("small rows (KL, student gradient) vs reference", test_small_rows_sweep);
  add_test("small-rows kernel vs the chunked passes", test_small_rows_vs_chunked);
  add_test("float64 log accuracy", test_log_f64_accuracy);
  add_test("argument errors", test_errors);
  add_test("temperature overflow and NaN-filled outputs on data errors", test_overflow_and_poison);
  add_test("softmax forward/backward vs reference", test_softmax_sweep);
  add_test("softmax with masked classes", test_softmax_masked);
  add_test("vector exp accuracy", test_exp_accuracy);
  add_test("vector log accuracy", test_log_accuracy);
  add_test("stream triad", test_triad);
  add_test("long rows float32 vs float64 (2x131072)", test_long_rows_accuracy);

  const char* filter = argc > 1 ? argv[1] : nullptr;
  if (const char* v = std::getenv("KDFUSE_TEST_VERBOSE"); v && *v) kMaxPrintPerCase = 1 << 30;
  int passed = 0, failed = 0;
  const auto t_all = std::chrono::steady_clock::now();
  for (const TestCase& tc : g_tests) {
    if (filter && tc.name.find(filter) == std::string::npos) continue;
    const auto t0 = std::chrono::steady_clock::now();
    const int r = run_case(tc);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (r == 0) {
      ++passed;
      std::printf("[PASS] %s (%.0f ms)\n", tc.name.c_str(), ms);
    } else {
      ++failed;
      if (r < 0) std::printf("[FAIL] %s: crashed (signal %d) (%.0f ms)\n", tc.name.c_str(), -r, ms);
      else std::printf("[FAIL] %s: %d%s failed checks (%.0f ms)\n", tc.name.c_str(), r, r == 250 ? "+" : "", ms);
    }
    std::fflush(stdout);
  }
  const double total_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_all).count();
  std::printf("total %.1f s\n", total_s);
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
