// C++ tests of the fused head (linear_distill_loss) against a float64 reference that materialises
// everything: logits = hidden · weight + bias in float64, the distillation loss and d loss / d logits
// from native/fuzz/reference.h (plain float64, no code shared with the core), then gradHidden,
// gradWeight and gradBias as float64 products. Random cases over each divergence, labels with
// ignored rows, smoothing, T² on and off, every reduction, bias and none, block sizes that split
// the rows unevenly, and 1 or 2 threads (bit-identical). Errors: NaN inputs and bad arguments are
// refused with every output poisoned. Prints "N passed, M failed"; exit code 1 on any failure.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "../fuzz/reference.h"
#include "check.h"
#include "kdfuse_core.h"

namespace {

struct Case {
  int64_t rows, dim, cols, block;
  kdfuse::Divergence div;
  kdfuse::Reduction red;
  bool labels, bias, t2;
  double T, alpha, eps;
  int threads;
  int64_t k = 0;  // > 0: the teacher given as its top k entries per row (densified for the reference)
  kdfuse::MissingMass missing = kdfuse::MissingMass::Renormalize;
};

struct Data {
  std::vector<float> hidden, weight, bias, teacher, gor;
  std::vector<int32_t> labels;
  std::vector<int32_t> idx;  // top-k teacher: [rows, k] column ids (-1 pads)
  std::vector<float> val;    // [rows, k] log-probabilities
};

// A top-k teacher from the dense one: each row's k largest log-softmax entries (some rows padded
// with -1), and `teacher` replaced by its densified form (the loss the top-k call must equal):
// listed columns hold their log-probability, the others -inf (renormalize) or the spread of the
// left-over mass (uniform), as float.
void make_topk(const Case& c, Data& d) {
  d.idx.assign(size_t(c.rows * c.k), -1);
  d.val.assign(size_t(c.rows * c.k), 0.0f);
  std::vector<float> dense(size_t(c.rows * c.cols));
  for (int64_t r = 0; r < c.rows; ++r) {
    const float* t = d.teacher.data() + r * c.cols;
    double m = -1e300, sum = 0;
    for (int64_t j = 0; j < c.cols; ++j) m = std::max(m, double(t[j]));
    for (int64_t j = 0; j < c.cols; ++j) sum += std::exp(double(t[j]) - m);
    std::vector<int32_t> order(size_t(c.cols));
    for (int64_t j = 0; j < c.cols; ++j) order[size_t(j)] = int32_t(j);
    std::stable_sort(order.begin(), order.end(), [&](int32_t x, int32_t y) { return t[x] > t[y]; });
    const int64_t kr = std::min<int64_t>(c.cols, (r % 4 == 1) ? std::max<int64_t>(1, c.k - 2) : c.k);  // some rows padded
    double mass = 0;
    for (int64_t j = 0; j < kr; ++j) {
      const int32_t col = order[size_t(j)];
      const float lp = float(double(t[col]) - m - std::log(sum));
      d.idx[size_t(r * c.k + (c.k - 1 - j))] = col;  // listed in reverse order, padding first
      d.val[size_t(r * c.k + (c.k - 1 - j))] = lp;
      mass += std::exp(double(lp));
    }
    const float off = (c.missing == kdfuse::MissingMass::Renormalize || kr >= c.cols)
                          ? -std::numeric_limits<float>::infinity()
                          : float(std::log(std::max(1.0 - mass, 0.0) / double(c.cols - kr)));
    for (int64_t j = 0; j < c.cols; ++j) dense[size_t(r * c.cols + j)] = off;
    for (int64_t j = 0; j < c.k; ++j)
      if (d.idx[size_t(r * c.k + j)] >= 0) dense[size_t(r * c.cols + d.idx[size_t(r * c.k + j)])] = d.val[size_t(r * c.k + j)];
  }
  d.teacher = dense;
}

Data make(const Case& c, std::mt19937& gen) {
  std::normal_distribution<float> n01(0.0f, 1.0f);
  Data d;
  d.hidden.resize(size_t(c.rows * c.dim));
  d.weight.resize(size_t(c.dim * c.cols));
  d.teacher.resize(size_t(c.rows * c.cols));
  for (auto& v : d.hidden) v = n01(gen);
  const float ws = 2.0f / std::sqrt(float(c.dim));  // logits of a few units, as a trained head gives
  for (auto& v : d.weight) v = ws * n01(gen);
  for (auto& v : d.teacher) v = 2.5f * n01(gen);
  if (c.bias) {
    d.bias.resize(size_t(c.cols));
    for (auto& v : d.bias) v = 0.5f * n01(gen);
  }
  if (c.labels) {
    d.labels.resize(size_t(c.rows));
    std::uniform_int_distribution<int32_t> y(0, int32_t(c.cols - 1));
    for (int64_t r = 0; r < c.rows; ++r) d.labels[size_t(r)] = (r % 5 == 3) ? -100 : y(gen);
  }
  if (c.red == kdfuse::Reduction::None) {
    d.gor.resize(size_t(c.rows));
    for (auto& v : d.gor) v = 0.5f + std::fabs(n01(gen));
  }
  if (c.k > 0) make_topk(c, d);
  return d;
}

kdfuse::LinearDistillArgs args(const Case& c, const Data& d) {
  kdfuse::LinearDistillArgs a;
  a.base.rows = c.rows;
  a.base.cols = c.cols;
  a.base.teacher = d.teacher.data();
  a.base.labels = c.labels ? d.labels.data() : nullptr;
  a.base.temperature = c.T;
  a.base.alpha = c.alpha;
  a.base.scale_by_t2 = c.t2;
  a.base.label_smoothing = c.eps;
  a.base.reduction = c.red;
  a.base.divergence = c.div;
  a.base.beta = 0.3;
  a.base.grad_output = 0.75;
  a.base.grad_output_rows = c.red == kdfuse::Reduction::None ? d.gor.data() : nullptr;
  a.hidden = d.hidden.data();
  a.weight = d.weight.data();
  a.bias = c.bias ? d.bias.data() : nullptr;
  a.dim = c.dim;
  a.block_rows = c.block;
  return a;
}

// The call as the kernel takes it: the dense teacher, or its top k entries.
kdfuse::LinearDistillArgs call_args(const Case& c, const Data& d) {
  kdfuse::LinearDistillArgs a = args(c, d);
  if (c.k > 0) {
    a.base.teacher = nullptr;
    a.k = c.k;
    a.topk_indices = d.idx.data();
    a.topk_values = d.val.data();
    a.missing = c.missing;
  }
  return a;
}

struct Out {
  std::vector<float> rows, gh, gw, gb;
  double loss = 0;
};

kdfuse::Status run(const Case& c, const Data& d, Out* o) {
  kdfuse::LinearDistillArgs a = call_args(c, d);
  o->rows.assign(size_t(c.rows), -1.0f);
  o->gh.assign(size_t(c.rows * c.dim), -1.0f);
  o->gw.assign(size_t(c.dim * c.cols), -1.0f);
  o->gb.assign(size_t(c.cols), -1.0f);
  a.base.loss_rows = o->rows.data();
  a.grad_hidden = o->gh.data();
  a.grad_weight = o->gw.data();
  a.grad_bias = c.bias ? o->gb.data() : nullptr;
  kdfuse::DistillLossResult res;
  kdfuse::ExecConfig cfg;
  cfg.threads = c.threads;
  const kdfuse::Status s = kdfuse::linear_distill_loss(a, &res, cfg);
  o->loss = res.loss;
  return s;
}

// The float64 reference. The logits go to reference.h as float32 (its input type): their
// rounding, 2^-24 of a few units, is far inside the 1e-5 compared here.
struct Ref {
  double loss;
  std::vector<double> rows, gh, gw, gb;
  std::vector<double> g;     // d loss / d logits
  std::vector<double> zmax;  // per row, max |logit / T| of student and teacher
};

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::fabs(x));
  return m;
}

Ref reference(const Case& c, const Data& d) {
  std::vector<double> z(size_t(c.rows * c.cols));
  for (int64_t r = 0; r < c.rows; ++r)
    for (int64_t j = 0; j < c.cols; ++j) {
      double v = c.bias ? double(d.bias[size_t(j)]) : 0.0;
      for (int64_t k = 0; k < c.dim; ++k) v += double(d.hidden[size_t(r * c.dim + k)]) * double(d.weight[size_t(k * c.cols + j)]);
      z[size_t(r * c.cols + j)] = v;
    }
  std::vector<float> zf(z.begin(), z.end());
  kdfuse::LinearDistillArgs a = args(c, d);
  kdfuse::DistillLossArgs b = a.base;
  b.student = zf.data();
  const kdfuse_fuzz::DistillRef dr = kdfuse_fuzz::distill_ref(b);
  Ref out;
  out.loss = dr.loss;
  out.rows = dr.rows;
  out.g = dr.gs;
  out.zmax.assign(size_t(c.rows), 0.0);
  for (int64_t r = 0; r < c.rows; ++r)
    for (int64_t j = 0; j < c.cols; ++j)
      out.zmax[size_t(r)] = std::max({out.zmax[size_t(r)], std::fabs(z[size_t(r * c.cols + j)]) / c.T,
                                      std::isfinite(d.teacher[size_t(r * c.cols + j)])
                                          ? std::fabs(double(d.teacher[size_t(r * c.cols + j)])) / c.T : 0.0});
  out.gh.assign(size_t(c.rows * c.dim), 0.0);
  out.gw.assign(size_t(c.dim * c.cols), 0.0);
  out.gb.assign(size_t(c.cols), 0.0);
  for (int64_t r = 0; r < c.rows; ++r)
    for (int64_t j = 0; j < c.cols; ++j) {
      const double g = dr.gs[size_t(r * c.cols + j)];
      out.gb[size_t(j)] += g;
      for (int64_t k = 0; k < c.dim; ++k) {
        out.gh[size_t(r * c.dim + k)] += g * double(d.weight[size_t(k * c.cols + j)]);
        out.gw[size_t(k * c.cols + j)] += g * double(d.hidden[size_t(r * c.dim + k)]);
      }
    }
  return out;
}

// max |got - want| / max|want| over the entries (0 when both are 0)
double rel_err(const std::vector<float>& got, const std::vector<double>& want) {
  double m = 0, e = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    m = std::max(m, std::fabs(want[i]));
    e = std::max(e, std::fabs(double(got[i]) - want[i]));
  }
  return m > 0 ? e / m : e;
}

void check_case(const Case& c, std::mt19937& gen, int index) {
  const Data d = make(c, gen);
  Out o;
  const kdfuse::Status s = run(c, d, &o);
  CHECK(s.ok(), "case %d: %s", index, s.message.c_str());
  if (!s.ok()) return;
  const Ref ref = reference(c, d);
  if (std::getenv("KDFUSE_DEBUG_CASE") && std::atoi(std::getenv("KDFUSE_DEBUG_CASE")) == index) {
    // the kernel's own d loss / d logits on the same float32 logits, against the reference's
    std::vector<float> zf(size_t(c.rows * c.cols));
    for (int64_t r = 0; r < c.rows; ++r)
      for (int64_t j = 0; j < c.cols; ++j) {
        double v = c.bias ? double(d.bias[size_t(j)]) : 0.0;
        for (int64_t k = 0; k < c.dim; ++k) v += double(d.hidden[size_t(r * c.dim + k)]) * double(d.weight[size_t(k * c.cols + j)]);
        zf[size_t(r * c.cols + j)] = float(v);
      }
    kdfuse::LinearDistillArgs a = args(c, d);
    kdfuse::DistillLossArgs b = a.base;
    b.student = zf.data();
    std::vector<float> g(zf.size());
    b.grad_student = g.data();
    kdfuse::DistillLossResult br;
    kdfuse::distill_loss(b, &br);
    const kdfuse_fuzz::DistillRef dr = kdfuse_fuzz::distill_ref(b);
    for (size_t i = 0; i < g.size(); ++i) std::printf("z %.6g  g %.9g ref %.9g\n", double(zf[i]), double(g[i]), dr.gs[i]);
    for (size_t i = 0; i < o.gh.size(); ++i) std::printf("gh %.9g ref %.9g\n", double(o.gh[i]), ref.gh[i]);
  }
  const double lt = 1e-5 * std::fabs(ref.loss) + 1e-9;
  CHECK(std::fabs(o.loss - ref.loss) <= lt, "case %d: loss %.9g, reference %.12g", index, o.loss, ref.loss);
  double worst_row = 0;
  for (int64_t r = 0; r < c.rows; ++r)
    worst_row = std::max(worst_row, std::fabs(double(o.rows[size_t(r)]) - ref.rows[size_t(r)]) / (std::fabs(ref.rows[size_t(r)]) + 1e-3));
  CHECK(worst_row <= 1e-5, "case %d: per-row loss error %.3g", index, worst_row);
  // Gradients. For T >= 1: within 1e-5 max|g| (the target). At every T: within the
  // kernel's statement (docs/accuracy.md) carried through the products: d loss / d logits of row r
  // is known to e_r = 1e-5 max|G| + 2^-18 (1 + max|z|) |c_r|, so gradHidden[r, k] to
  // e_r sum_j |W[k, j]|, gradWeight[k, j] to sum_r |H[r, k]| e_r, gradBias[j] to sum_r e_r.
  const double eh = rel_err(o.gh, ref.gh), ew = rel_err(o.gw, ref.gw), eb = c.bias ? rel_err(o.gb, ref.gb) : 0.0;
  if (c.T >= 1.0) {
    CHECK(eh <= 1e-5, "case %d (rows %lld dim %lld cols %lld div %d): gradHidden error %.3g of max|g|", index, (long long)c.rows,
          (long long)c.dim, (long long)c.cols, int(c.div), eh);
    CHECK(ew <= 1e-5, "case %d: gradWeight error %.3g of max|g|", index, ew);
    CHECK(eb <= 1e-5, "case %d: gradBias error %.3g of max|g|", index, eb);
  }
  {
    const double w = (c.labels ? c.alpha : 1.0) * (c.t2 ? c.T * c.T : 1.0);
    int64_t valid = c.rows;
    if (c.labels) valid = std::count_if(d.labels.begin(), d.labels.end(), [](int32_t y) { return y != -100; });
    double gmax = 0;
    for (double v : ref.g) gmax = std::max(gmax, std::fabs(v));
    std::vector<double> e(size_t(c.rows));
    for (int64_t r = 0; r < c.rows; ++r) {
      const double up = c.red == kdfuse::Reduction::Mean ? 0.75 / double(std::max<int64_t>(valid, 1))
                        : c.red == kdfuse::Reduction::Sum ? 0.75 : double(d.gor[size_t(r)]);
      e[size_t(r)] = 1e-5 * gmax + 0x1p-18 * (1.0 + ref.zmax[size_t(r)]) * (w / c.T) * up + 1e-6 * up;
    }
    const double mh = max_abs(ref.gh), mw = max_abs(ref.gw);
    bool ok = true;
    for (int64_t r = 0; r < c.rows && ok; ++r)
      for (int64_t k = 0; k < c.dim; ++k) {
        double wsum = 0;
        for (int64_t j = 0; j < c.cols; ++j) wsum += std::fabs(double(d.weight[size_t(k * c.cols + j)]));
        ok = ok && std::fabs(double(o.gh[size_t(r * c.dim + k)]) - ref.gh[size_t(r * c.dim + k)]) <= e[size_t(r)] * wsum + 1e-5 * mh;
      }
    CHECK(ok, "case %d: gradHidden outside the statement", index);
    ok = true;
    for (int64_t k = 0; k < c.dim && ok; ++k)
      for (int64_t j = 0; j < c.cols; ++j) {
        double t = 1e-5 * mw;
        for (int64_t r = 0; r < c.rows; ++r) t += std::fabs(double(d.hidden[size_t(r * c.dim + k)])) * e[size_t(r)];
        ok = ok && std::fabs(double(o.gw[size_t(k * c.cols + j)]) - ref.gw[size_t(k * c.cols + j)]) <= t;
      }
    CHECK(ok, "case %d: gradWeight outside the statement", index);
    if (c.bias) {
      double t = 1e-5 * max_abs(ref.gb);
      for (double v : e) t += v;
      ok = true;
      for (int64_t j = 0; j < c.cols; ++j) ok = ok && std::fabs(double(o.gb[size_t(j)]) - ref.gb[size_t(j)]) <= t;
      CHECK(ok, "case %d: gradBias outside the statement", index);
    }
  }
  // the same bits with another thread count
  Case c2 = c;
  c2.threads = c.threads == 1 ? 2 : 1;
  Out o2;
  CHECK(run(c2, d, &o2).ok(), "case %d: second run failed", index);
  CHECK(o2.loss == o.loss && o2.gh == o.gh && o2.gw == o.gw && o2.gb == o.gb && o2.rows == o.rows,
        "case %d: results differ between 1 and 2 threads", index);
}

void random_cases() {
  std::mt19937 gen(20261205);
  const int64_t dims[] = {1, 7, 33, 128};
  const int64_t colss[] = {1, 10, 1000, 3001};
  const int64_t rowss[] = {1, 5, 13, 40};
  const kdfuse::Divergence divs[] = {kdfuse::Divergence::KL, kdfuse::Divergence::ReverseKL, kdfuse::Divergence::JSD};
  const kdfuse::Reduction reds[] = {kdfuse::Reduction::Mean, kdfuse::Reduction::Sum, kdfuse::Reduction::None};
  const double temps[] = {1.0, 2.0, 0.5, 4.0};
  int index = 0;
  for (int i = 0; i < 72; ++i) {
    Case c;
    c.rows = rowss[i % 4];
    c.dim = dims[(i / 4) % 4];
    c.cols = colss[(i / 2 + i / 16) % 4];
    c.block = (i % 3 == 0) ? 0 : (i % 3 == 1 ? 4 : 6);
    c.div = divs[i % 3];
    c.red = reds[(i / 3) % 3];
    c.labels = (i % 5) != 0;
    c.bias = (i % 2) == 0;
    c.t2 = (i % 7) != 0;
    c.T = temps[(i / 5) % 4];
    c.alpha = c.labels ? ((i % 4 == 0) ? 1.0 : 0.5) : 0.5;
    c.eps = (c.labels && i % 3 == 2) ? 0.1 : 0.0;
    c.threads = 1 + (i % 2);
    check_case(c, gen, index++);
  }
  // the teacher as its top k entries: renormalize (kl, jsd) and uniform (every divergence)
  for (int i = 0; i < 24; ++i) {
    Case c;
    c.rows = rowss[i % 4];
    c.dim = dims[(i / 2) % 4];
    c.cols = colss[1 + (i / 3) % 3];
    c.k = std::min<int64_t>(c.cols, i % 2 ? 5 : 20);
    c.block = (i % 3 == 0) ? 0 : 4;
    c.missing = i % 4 < 2 ? kdfuse::MissingMass::Renormalize : kdfuse::MissingMass::Uniform;
    c.div = c.missing == kdfuse::MissingMass::Renormalize ? (i % 2 ? kdfuse::Divergence::JSD : kdfuse::Divergence::KL) : divs[i % 3];
    c.red = reds[(i / 3) % 3];
    c.labels = (i % 5) != 0;
    c.bias = (i % 2) == 0;
    c.t2 = true;
    c.T = temps[(i / 5) % 4];
    c.alpha = 0.5;
    c.eps = (c.labels && i % 3 == 2) ? 0.1 : 0.0;
    c.threads = 1 + (i % 2);
    check_case(c, gen, index++);
  }
}

// Bad input: refused with a message naming the argument, outputs poisoned (NaN), never a crash.
void errors() {
  std::mt19937 gen(7);
  Case c{6, 4, 20, 4, kdfuse::Divergence::KL, kdfuse::Reduction::Mean, true, true, true, 2.0, 0.5, 0.0, 1};
  Data d = make(c, gen);
  Out o;
  d.weight[13] = std::numeric_limits<float>::quiet_NaN();
  kdfuse::Status s = run(c, d, &o);
  CHECK(!s.ok() && s.kind == kdfuse::ErrorKind::Range && s.message.find("weight must be finite, got NaN at index 13") != std::string::npos,
        "NaN weight: %s", s.message.c_str());
  // refused before any work: the outputs are untouched
  CHECK(o.gh[0] == -1.0f && o.gw[5] == -1.0f && o.rows[2] == -1.0f && o.gb[1] == -1.0f, "NaN weight: outputs written");
  d = make(c, gen);
  d.teacher[5 * 20 + 3] = std::numeric_limits<float>::quiet_NaN();
  s = run(c, d, &o);
  CHECK(!s.ok() && s.message.find("teacher must not contain NaN") != std::string::npos && s.message.find("row 5") != std::string::npos,
        "NaN teacher: %s", s.message.c_str());
  d = make(c, gen);
  d.labels[2] = 20;
  s = run(c, d, &o);
  CHECK(!s.ok() && s.message.find("labels[2]") != std::string::npos, "bad label: %s", s.message.c_str());
  // logits that overflow float32 at T: the block's error names the logits and the rows
  d = make(c, gen);
  for (auto& v : d.hidden) v = 1e30f;
  for (auto& v : d.weight) v = 1e10f;
  s = run(c, d, &o);
  CHECK(!s.ok() && s.message.find("student logits (hidden · weight + bias)") != std::string::npos && s.message.find("in rows [0, 4)") != std::string::npos,
        "overflowing logits: %s", s.message.c_str());
  // refused in the first block, after work began: every output is NaN
  CHECK(std::isnan(o.gw[0]) && std::isnan(o.gh[0]) && std::isnan(o.rows[5]) && std::isnan(o.gb[0]), "overflowing logits: outputs not poisoned");
  // a top-k teacher with a repeated column in row 4 of 6: refused before any product
  Case ck = c;
  ck.k = 3;
  d = make(ck, gen);
  d.idx[size_t(4 * 3 + 2)] = d.idx[size_t(4 * 3 + 1)];
  o = Out();
  s = run(ck, d, &o);
  CHECK(!s.ok() && s.message.find("teacherIndices[14] (row 4, entry 2) repeats column") != std::string::npos,
        "repeated top-k column: %s", s.message.c_str());
  CHECK(!s.ok() && o.gw[0] == -1.0f && o.gh[0] == -1.0f, "repeated top-k column: outputs written");
  {
    kdfuse::LinearDistillArgs both = call_args(ck, d);
    both.base.teacher = d.teacher.data();
    kdfuse::DistillLossResult r2;
    s = kdfuse::linear_distill_loss(both, &r2);
    CHECK(!s.ok() && s.kind == kdfuse::ErrorKind::Type && s.message.find("not both") != std::string::npos, "two teachers: %s",
          s.message.c_str());
  }
  const Data d2 = make(c, gen);
  kdfuse::LinearDistillArgs a = args(c, d2);
  a.dim = 0;
  kdfuse::DistillLossResult res;
  s = kdfuse::linear_distill_loss(a, &res);
  CHECK(!s.ok() && s.message.find("dim must be") != std::string::npos, "dim 0: %s", s.message.c_str());
}

}  // namespace

int main() {
  random_cases();
  errors();
  return finish();
}
