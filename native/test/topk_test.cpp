// The top-k loss of the C++ core against its contract: kdfuse::distill_loss (the dense kernel,
// itself tested against a float64 reference in core_suite_test.cpp) with the densified teacher.
// Also: results independent of the thread count, both instruction sets, and every error.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "kdfuse_core.h"

using namespace kdfuse;

namespace {

struct Case {
  int64_t rows, cols, k;
  std::vector<float> s, vals;
  std::vector<int32_t> idx, labels;
};

// A teacher's top k of a random distribution, some rows padded with -1.
Case make_case(std::mt19937& g, int64_t rows, int64_t cols, int64_t k) {
  std::normal_distribution<float> n(0.0f, 3.0f);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  Case c{rows, cols, k, {}, {}, {}, {}};
  c.s.resize(size_t(rows * cols));
  for (auto& x : c.s) x = n(g);
  c.idx.assign(size_t(rows * k), -1);
  c.vals.assign(size_t(rows * k), 0.0f);
  c.labels.resize(size_t(rows));
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<double> z(static_cast<size_t>(cols));
    double m = -1e300;
    for (auto& v : z) { v = n(g); m = std::max(m, v); }
    double sum = 0;
    for (double v : z) sum += std::exp(v - m);
    const double lse = m + std::log(sum);
    std::vector<int32_t> order(static_cast<size_t>(cols));
    for (int64_t i = 0; i < cols; ++i) order[size_t(i)] = int32_t(i);
    std::shuffle(order.begin(), order.end(), g);
    const int64_t listed = u(g) < 0.25 ? 1 + int64_t(u(g) * double(k - 1)) : k;
    for (int64_t j = 0; j < std::min(listed, cols); ++j) {
      c.idx[size_t(r * k + j)] = order[size_t(j)];
      c.vals[size_t(r * k + j)] = float(std::min(0.0, z[size_t(order[size_t(j)])] - lse));
    }
    c.labels[size_t(r)] = u(g) < 0.2 ? -100 : int32_t(u(g) * double(cols));
  }
  return c;
}

std::vector<float> densify(const Case& c, MissingMass mm) {
  std::vector<float> t(size_t(c.rows * c.cols));
  for (int64_t r = 0; r < c.rows; ++r) {
    int64_t listed = 0;
    double mass = 0;
    for (int64_t j = 0; j < c.k; ++j)
      if (c.idx[size_t(r * c.k + j)] >= 0) { ++listed; mass += std::exp(double(c.vals[size_t(r * c.k + j)])); }
    const float rest = mm == MissingMass::Uniform && listed < c.cols
                           ? float(std::log(std::max(1.0 - mass, 0.0) / double(c.cols - listed)))
                           : -std::numeric_limits<float>::infinity();
    std::fill(t.begin() + r * c.cols, t.begin() + (r + 1) * c.cols, rest);
    for (int64_t j = 0; j < c.k; ++j) {
      const int32_t col = c.idx[size_t(r * c.k + j)];
      if (col >= 0) t[size_t(r * c.cols + col)] = c.vals[size_t(r * c.k + j)];
    }
  }
  return t;
}

DistillLossArgs base_args(const Case& c, Divergence d, bool labels, double T) {
  DistillLossArgs b;
  b.student = c.s.data();
  b.rows = c.rows;
  b.cols = c.cols;
  b.labels = labels ? c.labels.data() : nullptr;
  b.temperature = T;
  b.alpha = 0.7;
  b.label_smoothing = labels ? 0.1 : 0.0;
  b.divergence = d;
  b.beta = 0.3;
  b.reduction = Reduction::None;
  return b;
}

double max_abs(const std::vector<float>& x) {
  double m = 0;
  for (float v : x) if (std::isfinite(v)) m = std::max(m, double(std::fabs(v)));
  return m;
}

void compare(const Case& c, Divergence d, MissingMass mm, bool labels, double T, Isa isa, const char* what) {
  std::vector<float> gs(c.s.size()), gd(c.s.size()), ls(size_t(c.rows)), ld(size_t(c.rows));
  TopkLossArgs a;
  a.base = base_args(c, d, labels, T);
  a.base.grad_student = gs.data();
  a.base.loss_rows = ls.data();
  a.k = c.k;
  a.indices = c.idx.data();
  a.values = c.vals.data();
  a.missing = mm;
  DistillLossResult rt, rd;
  ExecConfig cfg;
  cfg.isa = isa;
  Status st = topk_distill_loss(a, &rt, cfg);
  CHECK(st.ok(), "%s: %s", what, st.message.c_str());
  const std::vector<float> t = densify(c, mm);
  DistillLossArgs b = base_args(c, d, labels, T);
  b.teacher = t.data();
  b.grad_student = gd.data();
  b.loss_rows = ld.data();
  st = distill_loss(b, &rd, cfg);
  CHECK(st.ok(), "%s dense: %s", what, st.message.c_str());
  // JSD: the per-column log m in float32 (see test/topk-loss.test.ts)
  const double row_floor = d == Divergence::JSD ? std::ldexp(1.0, -20) * (12.0 / T * 3 + std::log(double(c.cols)) + 1) * T * T : 1e-6;
  CHECK(std::fabs(rt.loss - rd.loss) <= 2e-5 * std::fabs(rd.loss) + row_floor * double(c.rows), "%s loss %.9g vs dense %.9g", what,
        rt.loss, rd.loss);
  const double gtol = 2e-5 * std::max(max_abs(gd), 1e-10) + (d == Divergence::JSD ? row_floor / T : 0.0);
  int bad = 0;
  for (size_t i = 0; i < gs.size(); ++i)
    if (!(std::fabs(double(gs[i]) - double(gd[i])) <= gtol)) ++bad;
  CHECK(bad == 0, "%s: %d gradient elements differ from the dense kernel's by more than %g", what, bad, gtol);
}

Status run_topk(const Case& c, MissingMass mm, Divergence d, int threads, std::vector<float>* gs, double* loss) {
  TopkLossArgs a;
  a.base = base_args(c, d, true, 2.0);
  gs->assign(c.s.size(), 0.0f);
  a.base.grad_student = gs->data();
  a.k = c.k;
  a.indices = c.idx.data();
  a.values = c.vals.data();
  a.missing = mm;
  DistillLossResult r;
  ExecConfig cfg;
  cfg.threads = threads;
  Status st = topk_distill_loss(a, &r, cfg);
  *loss = r.loss;
  return st;
}

bool has(const Status& s, const char* text) { return !s.ok() && s.kind == ErrorKind::Range && s.message.find(text) != std::string::npos; }

}  // namespace

int main() {
  std::mt19937 g(17);
  const int64_t shapes[][3] = {{5, 1, 1}, {9, 7, 7}, {13, 100, 1}, {7, 1025, 64}, {4, 5000, 5000}, {3, 32000, 64}};
  for (const auto& sh : shapes) {
    const Case c = make_case(g, sh[0], sh[1], sh[2]);
    for (Isa isa : {Isa::Generic, Isa::Auto}) {
      for (double T : {1.0, 2.0, 3.3}) {
        for (bool labels : {false, true}) {
          char what[128];
          const char* isa_s = isa == Isa::Generic ? "generic" : "auto";
          std::snprintf(what, sizeof what, "%lldx%lld k=%lld T=%g %s %s", (long long)c.rows, (long long)c.cols, (long long)c.k, T,
                        labels ? "labels" : "", isa_s);
          compare(c, Divergence::KL, MissingMass::Renormalize, labels, T, isa, (std::string(what) + " kl renormalize").c_str());
          compare(c, Divergence::KL, MissingMass::Uniform, labels, T, isa, (std::string(what) + " kl uniform").c_str());
          compare(c, Divergence::ReverseKL, MissingMass::Uniform, labels, T, isa, (std::string(what) + " rkl uniform").c_str());
          compare(c, Divergence::JSD, MissingMass::Renormalize, labels, T, isa, (std::string(what) + " jsd renormalize").c_str());
          compare(c, Divergence::JSD, MissingMass::Uniform, labels, T, isa, (std::string(what) + " jsd uniform").c_str());
        }
      }
    }
  }

  // the same bits whatever the thread count
  {
    const Case c = make_case(g, 41, 3000, 50);
    for (MissingMass mm : {MissingMass::Renormalize, MissingMass::Uniform}) {
      for (Divergence d : {Divergence::KL, Divergence::JSD}) {
        std::vector<float> g1, gn;
        double l1, ln;
        run_topk(c, mm, d, 1, &g1, &l1);
        for (int th : {2, 3, 7}) {
          run_topk(c, mm, d, th, &gn, &ln);
          CHECK(l1 == ln && std::memcmp(g1.data(), gn.data(), g1.size() * sizeof(float)) == 0, "threads %d changed the result", th);
        }
      }
    }
  }

  // errors, each a RangeError naming what is wrong, nothing crashing
  {
    Case c = make_case(g, 3, 10, 3);
    for (int64_t j = 0; j < 9; ++j) { c.idx[size_t(j)] = int32_t(j % 3 + 3 * (j / 3)); c.vals[size_t(j)] = -2.0f; }
    std::vector<float> gs;
    double loss;
    CHECK(run_topk(c, MissingMass::Uniform, Divergence::KL, 1, &gs, &loss).ok(), "the base error case runs");
    Case e = c;
    e.idx[4] = 10;
    CHECK(has(run_topk(e, MissingMass::Uniform, Divergence::KL, 1, &gs, &loss), "teacherIndices[4] (row 1, entry 1) must be a column in [0, 10)"), "range");
    e = c;
    e.idx[5] = e.idx[3];
    CHECK(has(run_topk(e, MissingMass::Uniform, Divergence::KL, 1, &gs, &loss), "repeats column 3, listed at entry 0"), "duplicate");
    e = c;
    e.vals[2] = 0.5f;
    CHECK(has(run_topk(e, MissingMass::Uniform, Divergence::KL, 1, &gs, &loss), "teacherLogprobs[2] (row 0, column 2) must be a log-probability <= 0, got 0.5"), "positive");
    e = c;
    e.vals[7] = std::nanf("");
    CHECK(has(run_topk(e, MissingMass::Uniform, Divergence::KL, 1, &gs, &loss), "teacherLogprobs[7] (row 2, column 7) must not be NaN"), "NaN value");
    e = c;
    e.vals[0] = e.vals[1] = -0.1f;
    CHECK(has(run_topk(e, MissingMass::Uniform, Divergence::KL, 1, &gs, &loss), "teacherLogprobs row 0 lists a probability mass of"), "mass");
    e = c;
    e.s[12] = std::nanf("");
    CHECK(has(run_topk(e, MissingMass::Uniform, Divergence::KL, 1, &gs, &loss), "student must not contain NaN, got NaN at index 12 (row 1, column 2)"), "student NaN");
    CHECK(std::isnan(gs[0]), "a failed call leaves its outputs NaN, not partly written");
    CHECK(has(run_topk(c, MissingMass::Renormalize, Divergence::ReverseKL, 1, &gs, &loss), "is infinite"), "reverse KL renormalize");
    e = c;
    std::fill(e.idx.begin() + 3, e.idx.begin() + 6, -1);
    e.labels[1] = 4;
    CHECK(has(run_topk(e, MissingMass::Renormalize, Divergence::KL, 1, &gs, &loss), "teacher row 1 lists no finite"), "empty renormalised row");
    CHECK(run_topk(e, MissingMass::Uniform, Divergence::KL, 1, &gs, &loss).ok(), "an empty row with uniform is the uniform teacher");
  }
  return finish();
}
