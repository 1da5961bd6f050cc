// The distillation loss against a top-k sparse teacher (docs/served-teacher.md). Its result is the
// dense loss with the densified teacher, but the dense teacher is never formed. Per row:
//   pass 1  streams the student: chunk maxima and sums of exponentials at 1/T (and at 1 for the
//           hard term), sum(s), and sum q log q when a divergence needs them (topk_pass1);
//   row     the teacher's terms over its k entries in float64: its normaliser, the divergence, the
//           coefficients of the gradient off the list (and, for JSD with 'uniform', one more
//           streaming pass for the terms that hold log m per column);
//   pass 2  writes the gradient of every column as if it were unlisted (topk_pass2), then the k
//           listed columns and the label's one-hot part are written in float64.
// Rows are spread over threads, one row wholly on one thread, so results do not depend on how many.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <new>
#include <vector>

#include "checks.h"
#include "chunk_kernels.h"
#include "kdfuse_core.h"
#include "loss_common.h"
#include "thread_pool.h"
#include "topk_checks.h"

namespace kdfuse {
namespace {
using namespace loss_common;

// Rows up to this many columns keep the exponentials of pass 1 in a scratch row for pass 2.
constexpr int64_t kScratchMaxCols = 65536;

// p * v where p > 0, else 0 (so that 0 * log 0 = 0), as the dense reference.
inline double weighted(double p, double v) { return p > 0.0 ? p * v : 0.0; }

struct RowOut {
  double loss;
  int error;  // RowError
};

class TopkRun {
 public:
  TopkRun(const TopkLossArgs& a, const ChunkKernels& k, int64_t valid)
      : a_(a), b_(a.base), k_(k), nchunks_((a.base.cols + kChunk - 1) / kChunk), lt_(loss_terms(a.base)), valid_(valid) {
    inv_t_d_ = 1.0 / b_.temperature;
    jsd_uniform_ = b_.divergence == Divergence::JSD && a.missing == MissingMass::Uniform;
  }

  int64_t nchunks() const { return nchunks_; }
  int64_t scratch_floats() const { return b_.cols <= kScratchMaxCols ? (b_.cols + 7) / 8 * 8 : 0; }

  TopkChunk base_chunk(int64_t r, int64_t kc) const {
    TopkChunk c{};
    c.s = b_.student + r * b_.cols + kc * kChunk;
    c.n = std::min<int64_t>(kChunk, b_.cols - kc * kChunk);
    c.inv_t = lt_.inv_t;
    c.need_r = lt_.need_r;
    c.pow_r = lt_.pow_r;
    // sum(s): label smoothing, and KL with 'uniform' (sum over unlisted columns of log q)
    c.need_sum_s = lt_.need_sum_s || (b_.divergence == Divergence::KL && a_.missing == MissingMass::Uniform);
    c.need_ez = b_.divergence == Divergence::ReverseKL;  // sum q log q
    return c;
  }

  void run_rows(int64_t r0, int64_t r1, RowOut* out) const {
    thread_local std::vector<ChunkStats> st;
    thread_local std::vector<float> scratch_row;
    if (int64_t(st.size()) < nchunks_) st.resize(size_t(nchunks_));
    const int64_t sf = scratch_floats();
    if (int64_t(scratch_row.size()) < sf) scratch_row.resize(size_t(sf));
    for (int64_t r = r0; r < r1; ++r) {
      bool nonfinite = false;
      out[r] = row(r, st.data(), sf ? scratch_row.data() : nullptr, 0, &nonfinite);
      if (nonfinite) rescaled_row(r, st.data(), sf ? scratch_row.data() : nullptr, out[r]);
    }
  }

 private:
  // A student logit over T as pass 1 forms it (a float product), so that a listed column's log q
  // agrees with the row's normaliser built from those products.
  double zs(float s) const { return double(s * lt_.inv_t); }

  // A row whose gradient came out with an infinite or NaN entry where its loss is finite, as
  // DistillRun::rescaled_row in distill_loss.cpp: the row again at its upstream scale times 2^-k,
  // every coefficient then below 1/8, and each entry multiplied by 2^k in float64.
  void rescaled_row(int64_t r, ChunkStats* st, float* scratch, const RowOut& first) const {
    if (first.error != kRowOk || !std::isfinite(first.loss)) return;
    const double scale = std::fabs(double(row_scale(b_, r, valid_)));
    const double coef = std::max(scale * std::fabs(lt_.w) / b_.temperature, scale * (1.0 - lt_.alpha));
    int e = 0;
    std::frexp(coef, &e);
    const int k = e + 3;
    if (k <= 0) return;
    bool unused = false;
    row(r, st, scratch, k, &unused);
    float* gs = b_.grad_student + r * b_.cols;
    for (int64_t i = 0; i < b_.cols; ++i) gs[i] = static_cast<float>(std::ldexp(double(gs[i]), k));
  }

  // One row at its upstream scale times 2^-down; *nonfinite: a gradient entry is infinite or NaN.
  RowOut row(int64_t r, ChunkStats* st, float* scratch, int down, bool* nonfinite) const {
    const int64_t cols = b_.cols;
    const double row_g = std::ldexp(double(row_scale(b_, r, valid_)), -down);
    float* gs = b_.grad_student ? b_.grad_student + r * cols : nullptr;
    const bool ignored = lt_.have_labels && b_.labels[r] == b_.ignore_index;
    for (int64_t kc = 0; kc < nchunks_; ++kc) {
      TopkChunk c = base_chunk(r, kc);
      c.es = scratch ? scratch + kc * kChunk : nullptr;
      k_.topk_pass1(c, &st[kc]);
    }
    int overflow = 0;
    for (int64_t kc = 0; kc < nchunks_; ++kc) {
      if (st[kc].bad == 1) return {0.0, kRowBadValue};
      if (st[kc].bad) overflow = 1;
    }
    if (ignored || overflow) {
      if (gs) std::memset(gs, 0, size_t(cols) * sizeof(float));
      return {0.0, ignored ? kRowOk : kRowOverflowStudent};
    }
    double mx_s, ls_s, sum_s;
    const double lse_s = combine_lse(st, nchunks_, 0, 1, &mx_s, &ls_s, &sum_s);
    if (lse_s == -kInf) return {0.0, kRowNoFiniteStudent};
    const bool hard = lt_.have_labels && lt_.alpha < 1.0;
    double lse_r = lse_s, mx_r = mx_s, sum_r = sum_s;
    if (hard && !lt_.unit_t) lse_r = combine_lse(st, nchunks_, 2, 3, &mx_r, nullptr, &sum_r);
    double total_s = 0.0;  // sum of the student logits
    for (int64_t kc = 0; kc < nchunks_; ++kc) total_s += st[kc].v[4];

    // ---- the teacher's k entries, in float64
    const int64_t k = a_.k;
    const int32_t* idx = a_.indices + r * k;
    const float* val = a_.values + r * k;
    const float* s = b_.student + r * cols;
    int64_t listed = 0;
    const double u = topk_off_list_value(a_, r, &listed);
    const int64_t off = cols - listed;  // unlisted columns
    double mt = -kInf;
    for (int64_t j = 0; j < k; ++j)
      if (idx[j] != -1) mt = std::max(mt, double(val[j]) * inv_t_d_);
    const double ut = u * inv_t_d_;
    const bool have_u = off > 0 && u != -kInf;
    if (have_u) mt = std::max(mt, ut);
    double st_sum = 0.0;
    for (int64_t j = 0; j < k; ++j)
      if (idx[j] != -1) st_sum += std::exp(double(val[j]) * inv_t_d_ - mt);
    if (have_u) st_sum += double(off) * std::exp(ut - mt);
    const double lse_t = mt + std::log(st_sum);
    const double lpu = have_u ? ut - lse_t : -kInf;
    const double pu = have_u ? std::exp(lpu) : 0.0;

    const double beta = b_.beta;
    // JSD with 'uniform' needs a streaming pass for the terms holding log m per unlisted column;
    // a row listing every column has none
    const bool jsd_row = jsd_uniform_ && off > 0;
    double q_listed = 0.0, d0 = 0.0, d1 = 0.0, lq_listed = 0.0;
    // each entry's log q, q, log p, p, kept for the gradient of its column below
    thread_local std::vector<double> ent;
    if (int64_t(ent.size()) < 4 * k) ent.resize(size_t(4 * k));
    for (int64_t j = 0; j < k; ++j) {
      if (idx[j] == -1) continue;
      const double lq = zs(s[idx[j]]) - lse_s;
      const double q = std::exp(lq);
      const double lp = double(val[j]) * inv_t_d_ - lse_t;
      const double p = std::exp(lp);
      ent[size_t(4 * j)] = lq;
      ent[size_t(4 * j + 1)] = q;
      ent[size_t(4 * j + 2)] = lp;
      ent[size_t(4 * j + 3)] = p;
      q_listed += q;
      lq_listed += lq;
      switch (b_.divergence) {
        case Divergence::KL: d0 += weighted(p, lp - lq); break;
        case Divergence::ReverseKL: d0 += weighted(q, lp); break;  // sum q log p, subtracted below
        case Divergence::JSD: {
          const double lm = std::log(beta * p + (1.0 - beta) * q);
          d0 += weighted(p, lp - lm);
          d1 += weighted(q, lq - lm);
          if (jsd_row) {  // take out what the streaming pass adds for this column as if unlisted
            const double lmu = std::log(beta * pu + (1.0 - beta) * q);
            d0 -= weighted(pu, lpu - lmu);
            d1 -= weighted(q, lq - lmu);
          }
          break;
        }
      }
    }
    const double q_off = off > 0 ? std::max(0.0, 1.0 - q_listed) : 0.0;
    double div = 0.0, kd = 0.0;  // the divergence, and the row constant its gradient subtracts
    TopkChunk g{};                // pass 2's coefficients
    const double cs = row_g * lt_.w / b_.temperature;
    switch (b_.divergence) {
      case Divergence::KL: {
        if (pu > 0.0) {  // unlisted: pu (log pu - log q) summed, with sum log q = sum z - cols lse_s - listed
          const double sum_lq_off = total_s * inv_t_d_ - double(cols) * lse_s - lq_listed;
          d0 += double(off) * pu * lpu - pu * sum_lq_off;
        }
        div = d0;
        g.b = float(cs);
        g.c0 = float(-cs * pu);
        break;
      }
      case Divergence::ReverseKL: {  // uniform only: sum q log q - sum q log p
        double hq = 0.0;             // sum q log q from pass 1's sum e (z - m)
        for (int64_t kc = 0; kc < nchunks_; ++kc) {
          if (st[kc].v[0] == -kInf) continue;
          const double f = std::exp(st[kc].v[0] - mx_s) / sum_s;
          hq += f * (st[kc].v[5] + (st[kc].v[0] - lse_s) * st[kc].v[1]);
        }
        div = hq - d0 - (q_off > 0.0 ? q_off * lpu : 0.0);
        kd = std::isfinite(div) ? div : 0.0;
        g.a = float(cs);
        g.b = float(cs * (-ls_s - lpu - kd));
        break;
      }
      case Divergence::JSD: {
        if (!jsd_row && beta < 1.0) d1 += -std::log(1.0 - beta) * q_off;  // m = (1 - beta) q where p = 0
        break;
      }
    }

    // ---- pass 2 (and the uniform JSD's streaming sums first)
    TopkChunk tmpl{};
    tmpl.mx_s = float(mx_s);
    tmpl.ls_s = float(ls_s);
    tmpl.hard = hard ? (lt_.need_r ? 2 : 1) : 0;
    tmpl.ch = hard ? float(row_g * (1.0 - lt_.alpha)) : 0.0f;
    tmpl.ch_smooth = float(double(tmpl.ch) * lt_.eps / double(cols));
    tmpl.beta = float(beta);
    tmpl.pu = float(pu);
    tmpl.lpu = float(lpu);
    tmpl.a = g.a;
    tmpl.b = g.b;
    tmpl.c0 = g.c0;
    auto run_pass2 = [&](int mode) {
      double s6 = 0.0, s7 = 0.0;
      for (int64_t kc = 0; kc < nchunks_; ++kc) {
        TopkChunk c = base_chunk(r, kc);
        const TopkChunk keep = c;
        c = tmpl;
        c.s = keep.s; c.n = keep.n; c.inv_t = keep.inv_t; c.pow_r = keep.pow_r;
        c.es = scratch ? scratch + kc * kChunk : nullptr;
        c.e_stored = scratch != nullptr;
        c.mode = mode;
        c.cm_s = float(st[kc].v[0]);
        c.cm_r = float(st[kc].v[2]);
        c.kq = prob_factor(st[kc].v[0], mx_s, sum_s);
        if (tmpl.hard == 2) c.kr = prob_factor(st[kc].v[2], mx_r, sum_r);
        c.gs = gs ? gs + kc * kChunk : nullptr;
        ChunkStats o{};
        k_.topk_pass2(c, &o);
        if (mode != 1 && o.bad) *nonfinite = true;
        s6 += o.v[6];
        s7 += o.v[7];
      }
      return std::make_pair(s6, s7);
    };
    if (b_.divergence == Divergence::JSD) {
      if (jsd_row) {
        const auto sums = run_pass2(1);
        d0 += sums.first;
        d1 += sums.second;
      }
      div = (beta > 0.0 ? beta * d0 : 0.0) + (beta < 1.0 ? (1.0 - beta) * d1 : 0.0);
      kd = std::isfinite(d1) ? d1 : 0.0;
      if (!jsd_row) tmpl.b = beta < 1.0 ? float(cs * (1.0 - beta) * (-std::log(1.0 - beta) - kd)) : 0.0f;
      tmpl.cs = float(cs * (1.0 - beta));
      tmpl.kqm = float(kd);
    }
    double ce = 0.0;
    if (hard) {
      const int32_t y = b_.labels[r];
      ce = (1.0 - lt_.eps) * (lse_r - double(s[y]));
      if (lt_.eps > 0.0) ce += lt_.eps * (lse_r - total_s / double(cols));
    }
    const double loss = (lt_.w != 0.0 ? lt_.w * div : 0.0) + (hard ? (1.0 - lt_.alpha) * ce : 0.0);
    if (!gs) return {loss, kRowOk};
    run_pass2(jsd_row ? 2 : 0);

    // ---- the listed columns, and the label's one-hot part
    const double scale = row_g;
    bool label_listed = false;
    for (int64_t j = 0; j < k; ++j) {
      if (idx[j] == -1) continue;
      const int32_t col = idx[j];
      const double lq = ent[size_t(4 * j)], q = ent[size_t(4 * j + 1)], lp = ent[size_t(4 * j + 2)], p = ent[size_t(4 * j + 3)];
      double ds = 0.0;
      switch (b_.divergence) {
        case Divergence::KL: ds = q - p; break;
        case Divergence::ReverseKL: ds = weighted(q, lq - lp) - kd * q; break;
        case Divergence::JSD:
          ds = beta < 1.0 ? (1.0 - beta) * (weighted(q, lq - std::log(beta * p + (1.0 - beta) * q)) - kd * q) : 0.0;
          break;
      }
      double v = cs * ds;
      if (hard) {
        double h = std::exp(double(s[col]) - lse_r) - lt_.eps / double(cols);
        if (col == b_.labels[r]) {  // the one-hot part in float64 too: a row sure of its label gets exactly 0
          h -= 1.0 - lt_.eps;
          label_listed = true;
        }
        v += scale * (1.0 - lt_.alpha) * h;
      }
      gs[col] = static_cast<float>(v);
      if (!std::isfinite(gs[col])) *nonfinite = true;
    }
    if (hard && !label_listed) gs[b_.labels[r]] -= static_cast<float>(double(tmpl.ch) * (1.0 - lt_.eps));
    return {loss, kRowOk};
  }

  const TopkLossArgs& a_;
  const DistillLossArgs& b_;
  const ChunkKernels& k_;
  int64_t nchunks_;
  LossTerms lt_;
  int64_t valid_;
  double inv_t_d_;
  bool jsd_uniform_;
};

Status row_error(const TopkLossArgs& a, int64_t r, int error) {
  const DistillLossArgs& b = a.base;
  switch (error) {
    case kRowBadValue: return Status::RangeErr(describe_bad_value("student", b.student, b.rows, b.cols));
    case kRowNoFiniteStudent:
      return Status::RangeErr("student row " + std::to_string(r) + " must have at least one finite logit, got all -Infinity");
    default: return Status::RangeErr(temperature_overflow_message(b.temperature, "student", r));
  }
}

}  // namespace

Status topk_distill_loss(const TopkLossArgs& a, DistillLossResult* result, const ExecConfig& cfg) {
  int64_t valid = a.base.rows;
  Status s = validate_topk_args(a, &valid);
  if (!s.ok()) return s;
  {
    thread_local std::vector<int32_t> stamp;
    if (!(s = validate_topk_teacher(a, stamp)).ok()) return s;
  }
  const DistillLossArgs& b = a.base;
  TopkRun run(a, kernels_for(cfg.isa), valid);
  thread_local std::vector<RowOut> rows;
  if (int64_t(rows.size()) < b.rows) rows.resize(size_t(b.rows));
  RowOut* out = rows.data();
  const int64_t work = b.rows * b.cols;
  const int parts = parts_for(threads_for(cfg.threads, work), work, b.rows);
  std::atomic<bool> out_of_memory{false};
  parallel_for(parts, b.rows, [&](int64_t r0, int64_t r1) {
    try {
      run.run_rows(r0, r1, out);
    } catch (const std::bad_alloc&) {
      out_of_memory = true;
    }
  });
  const int64_t n = b.rows * b.cols;
  if (out_of_memory) {
    poison(b.grad_student, n, b.loss_rows, b.rows);
    return Status::RangeErr("out of memory for the per-thread scratch rows");
  }
  // Errors are reported for the first offending row, whatever the schedule.
  for (int64_t r = 0; r < b.rows; ++r) {
    if (out[r].error != kRowOk) {
      poison(b.grad_student, n, b.loss_rows, b.rows);
      return row_error(a, r, out[r].error);
    }
  }
  return finish(b, result, valid, [out](int64_t r) { return out[r].loss; });
}

}  // namespace kdfuse
