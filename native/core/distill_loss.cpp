// The fused distillation loss: validation, per-row statistics in float64 and scheduling.
// The element loops live in chunk_kernels_impl.h; see docs/design.md for the math.
//
// Each row is processed in fixed chunks of kChunk columns:
//   pass 1  reads s and t once: chunk maxima, sums of exponentials (and the T = 1 normaliser and
//           sum(s) when the hard term needs them); combined per row into log-normalisers;
//   pass 2  reads them again (from cache when a whole row is done by one thread): the divergence
//           and the gradients;
//   pass 3  only where a gradient needs the row's divergence value (teacher gradient of KL,
//           student gradient of reverse KL, both for JSD): subtracts that row constant.
// Rows are spread over threads; when there are fewer rows than threads, each pass instead runs over
// all (row, chunk) pairs with the per-row combines in between. Both schedules run the same chunk
// code and combine in the same order, so the results are bit-identical.
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
#include "kl_term.h"
#include "loss_common.h"
#include "small_rows.h"
#include "thread_pool.h"

namespace kdfuse {
namespace {
using namespace loss_common;

// Rows up to this many columns keep their exponentials in a scratch row (3 floats per column:
// 768 KiB at the limit, within this machine's L2 + L3 share); longer rows recompute them.
constexpr int64_t kScratchMaxCols = 65536;

struct RowState {
  double lse_s, lse_t, lse_r;
  double mx_s, mx_t, mx_r;  // row maxima (floats) and log(sum exp(z - max)) of each normaliser
  double ls_s, ls_t, ls_r;
  double sum_s, sum_t, sum_r;  // sum exp(z - max) of each normaliser (ls = log(sum))
  double ce;       // hard-label cross-entropy (when hard)
  double div0, div1;
  double loss;     // this row's loss, before the upstream gradient
  float scale;     // upstream gradient for this row (includes 1/N for mean)
  bool ignored;
  bool hard;
  int error;
};

class DistillRun {
 public:
  DistillRun(const DistillLossArgs& a, const ChunkKernels& k)
      : a_(a), k_(k), nchunks_((a.cols + kChunk - 1) / kChunk), lt_(loss_terms(a)) {}

  // Called once per row before any pass: ignored rows, upstream scale.
  void init_rows(std::vector<RowState>& rs, int64_t valid) {
    for (int64_t r = 0; r < a_.rows; ++r) {
      RowState& st = rs[r];
      st = RowState{};
      st.ignored = lt_.have_labels && a_.labels[r] == a_.ignore_index;
      st.hard = lt_.have_labels && !st.ignored && lt_.alpha < 1.0;
      st.scale = row_scale(a_, r, valid);
    }
    rows_ = rs.data();
  }

  // Pass 1 reads only the inputs and the switches: no row constants to convert.
  DistillChunk pass1_chunk(int64_t r, int64_t k) const {
    const int64_t off = r * a_.cols + k * kChunk;
    DistillChunk c{};
    c.s = a_.student + off;
    c.t = a_.teacher + off;
    c.n = std::min<int64_t>(kChunk, a_.cols - k * kChunk);
    c.inv_t = lt_.inv_t;
    c.need_r = lt_.need_r;
    c.need_sum_s = lt_.need_sum_s;
    c.pow_r = lt_.pow_r;
    return c;
  }

  // The chunk's arguments; `st` (this chunk's pass-1 stats) is given for passes 2 and 3.
  DistillChunk chunk(int64_t r, int64_t k, const ChunkStats* st1 = nullptr) const {
    const int64_t off = r * a_.cols + k * kChunk;
    DistillChunk c = pass1_chunk(r, k);
    const RowState& st = rows_[r];
    c.hard = st.hard;
    c.divergence = static_cast<int>(a_.divergence);
    c.lse_s = static_cast<float>(st.lse_s);
    c.lse_t = static_cast<float>(st.lse_t);
    c.lse_r = static_cast<float>(st.lse_r);
    c.delta = static_cast<float>(st.ls_t - st.ls_s);
    c.mx_s = static_cast<float>(st.mx_s); c.mx_t = static_cast<float>(st.mx_t); c.mx_r = static_cast<float>(st.mx_r);
    c.ls_s = static_cast<float>(st.ls_s); c.ls_t = static_cast<float>(st.ls_t); c.ls_r = static_cast<float>(st.ls_r);
    const double cs = double(st.scale) * lt_.w / a_.temperature;
    c.cs = static_cast<float>(cs);
    c.ct = static_cast<float>(cs);
    c.ch = st.hard ? static_cast<float>(double(st.scale) * (1.0 - lt_.alpha)) : 0.0f;
    c.ch_smooth = static_cast<float>(double(c.ch) * lt_.eps / double(a_.cols));
    c.beta = static_cast<float>(a_.beta);
    c.gs = a_.grad_student ? a_.grad_student + off : nullptr;
    c.gt = a_.grad_teacher ? a_.grad_teacher + off : nullptr;
    if (st1) {
      c.cm_s = static_cast<float>(st1->v[0]);
      c.cm_t = static_cast<float>(st1->v[2]);
      c.cm_r = static_cast<float>(st1->v[4]);
      c.kq = prob_factor(st1->v[0], st.mx_s, st.sum_s);
      c.kp = prob_factor(st1->v[2], st.mx_t, st.sum_t);
      if (c.need_r && st.hard) c.kr = prob_factor(st1->v[4], st.mx_r, st.sum_r);
    }
    return c;
  }

  // Points a chunk at the scratch row holding (pass 1) or to hold its exponentials.
  void use_scratch(DistillChunk* c, float* scratch, int64_t k, bool stored) const {
    const int64_t off = k * kChunk;
    const int64_t stride = scratch_stride();
    c->es = scratch + off;
    c->et = scratch + stride + off;
    c->er = c->need_r && !lt_.pow_r ? scratch + 2 * stride + off : nullptr;
    c->e_stored = stored;
  }

  // Floats of scratch a whole row needs.
  // Each of the row's e arrays, padded to whole vectors of 8 (see DistillChunk::es).
  int64_t scratch_stride() const { return (a_.cols + 7) / 8 * 8; }
  int64_t scratch_floats() const { return (lt_.need_r && !lt_.pow_r ? 3 : 2) * scratch_stride(); }

  void pass1(int64_t r, int64_t k, ChunkStats* out, float* scratch = nullptr) const {
    DistillChunk c = pass1_chunk(r, k);
    if (scratch) use_scratch(&c, scratch, k, false);
    k_.distill_pass1(c, out);
  }

  void combine1(int64_t r, const ChunkStats* st) const {
    RowState& rs = rows_[r];
    int overflow = 0;
    for (int64_t k = 0; k < nchunks_; ++k) {
      if (st[k].bad == 1) { rs.error = kRowBadValue; return; }
      if (st[k].bad && (overflow == 0 || st[k].bad < overflow)) overflow = st[k].bad;
    }
    if (overflow) {  // a chunk stopped early: its sums are not formed, and the row is an error unless ignored
      if (!rs.ignored) rs.error = overflow == 2 ? kRowOverflowStudent : kRowOverflowTeacher;
      return;
    }
    rs.lse_s = combine_lse(st, nchunks_, 0, 1, &rs.mx_s, &rs.ls_s, &rs.sum_s);
    rs.lse_t = combine_lse(st, nchunks_, 2, 3, &rs.mx_t, &rs.ls_t, &rs.sum_t);
    if (rs.ignored) return;
    if (rs.lse_s == -kInf) { rs.error = kRowNoFiniteStudent; return; }
    if (rs.lse_t == -kInf) { rs.error = kRowNoFiniteTeacher; return; }
    rs.lse_r = rs.lse_s; rs.mx_r = rs.mx_s; rs.ls_r = rs.ls_s; rs.sum_r = rs.sum_s;
    if (rs.hard) {
      if (!lt_.unit_t) rs.lse_r = combine_lse(st, nchunks_, 4, 5, &rs.mx_r, &rs.ls_r, &rs.sum_r);
      const int32_t y = a_.labels[r];
      const double s_y = a_.student[r * a_.cols + y];
      double ce = (1.0 - lt_.eps) * (rs.lse_r - s_y);
      if (lt_.eps > 0.0) {
        double sum_s = 0.0;
        for (int64_t k = 0; k < nchunks_; ++k) sum_s += st[k].v[6];
        ce += lt_.eps * (rs.lse_r - sum_s / double(a_.cols));
      }
      rs.ce = ce;
    }
  }

  bool row_active(int64_t r) const { return !rows_[r].ignored && rows_[r].error == kRowOk; }

  // `out` holds this chunk's pass-1 stats; pass 2 adds its sums in v[6..7].
  void pass2(int64_t r, int64_t k, ChunkStats* out, float* scratch = nullptr) const {
    const int64_t c0 = k * kChunk;
    const int64_t n = std::min<int64_t>(kChunk, a_.cols - c0);
    if (!row_active(r)) {  // contributes nothing, and no gradient
      out->v[6] = out->v[7] = out->v[8] = out->v[9] = 0.0;
      if (a_.grad_student) std::memset(a_.grad_student + r * a_.cols + c0, 0, size_t(n) * sizeof(float));
      if (a_.grad_teacher) std::memset(a_.grad_teacher + r * a_.cols + c0, 0, size_t(n) * sizeof(float));
      return;
    }
    DistillChunk c = chunk(r, k, out);
    if (scratch) use_scratch(&c, scratch, k, true);
    k_.distill_pass2(c, out);
    if (c.hard && c.gs) {  // the one-hot part of the smoothed target
      const int64_t y = a_.labels[r];
      if (y >= c0 && y < c0 + n) c.gs[y - c0] -= static_cast<float>(double(c.ch) * (1.0 - lt_.eps));
    }
  }

  void combine2(int64_t r, const ChunkStats* st) const {
    RowState& rs = rows_[r];
    if (!row_active(r)) { rs.loss = 0.0; return; }
    double d0 = 0.0, d1 = 0.0, qd = 0.0, s1 = 0.0;
    for (int64_t k = 0; k < nchunks_; ++k) { d0 += st[k].v[6]; d1 += st[k].v[7]; qd += st[k].v[8]; s1 += st[k].v[9]; }
    // KL and reverse KL: v[7] holds sum a expm1(x), JSD's v[8..9] sum q d and sum q expm1(d); they
    // correct the divergence for the rounding of the log-sum difference (kl_term.h)
    if (a_.divergence != Divergence::JSD) {
      d0 = kl_delta_corrected(d0, d1);
      d1 = 0.0;
    } else {
      jsd_delta_corrected(a_.beta, s1, qd, &d0, &d1);
    }
    rs.div0 = d0;
    rs.div1 = d1;
    double div;
    if (a_.divergence == Divergence::JSD) {
      div = 0.0;
      if (a_.beta > 0.0) div += a_.beta * d0;
      if (a_.beta < 1.0) div += (1.0 - a_.beta) * d1;
    } else {
      div = d0;
    }
    rs.loss = (lt_.w != 0.0 ? lt_.w * div : 0.0) + (rs.hard ? (1.0 - lt_.alpha) * rs.ce : 0.0);
  }

  // The row constants pass 3 subtracts; false when the row needs no pass 3.
  bool pass3_constants(int64_t r, double* ks, double* kt) const {
    *ks = *kt = 0.0;
    if (!row_active(r)) return false;
    const RowState& rs = rows_[r];
    const double cs = double(rs.scale) * lt_.w / a_.temperature;
    double s = 0.0, t = 0.0;
    switch (a_.divergence) {
      case Divergence::KL: t = a_.grad_teacher ? cs * rs.div0 : 0.0; break;
      case Divergence::ReverseKL: s = a_.grad_student ? cs * rs.div0 : 0.0; break;
      case Divergence::JSD:
        s = (a_.grad_student && a_.beta < 1.0) ? cs * (1.0 - a_.beta) * rs.div1 : 0.0;
        t = (a_.grad_teacher && a_.beta > 0.0) ? cs * a_.beta * rs.div0 : 0.0;
        break;
    }
    // An infinite divergence (student probability 0 where the teacher's is not) leaves the
    // partial gradient as it is rather than turning inf - inf into NaN.
    if (!std::isfinite(s)) s = 0.0;
    if (!std::isfinite(t)) t = 0.0;
    *ks = s;
    *kt = t;
    return s != 0.0 || t != 0.0;
  }

  // Pass 3: grad -= k * q (and k * p). Returns kGradNotFinite where a stored gradient is not finite.
  int pass3(int64_t r, int64_t k, const ChunkStats* st1, double ks, double kt, float* scratch = nullptr) const {
    DistillChunk c = chunk(r, k, st1);
    if (scratch) use_scratch(&c, scratch, k, true);
    c.ks = static_cast<float>(ks);  // beyond float32's range: infinite, and the row is redone (rescaled_row)
    c.kt = static_cast<float>(kt);
    if (c.ks == 0.0f) c.gs = nullptr;
    if (c.kt == 0.0f) c.gt = nullptr;
    return (c.gs || c.gt) ? k_.distill_pass3(c) : 0;
  }

  // Passes 2 and 3 of row r; true when a gradient entry came out infinite or NaN.
  bool gradient_passes(int64_t r, ChunkStats* st, float* scratch) const {
    int flags = 0;
    for (int64_t k = 0; k < nchunks_; ++k) {
      pass2(r, k, &st[k], scratch);
      flags |= st[k].bad;
    }
    combine2(r, st);
    double ks, kt;
    if (pass3_constants(r, &ks, &kt))
      for (int64_t k = 0; k < nchunks_; ++k) flags |= pass3(r, k, &st[k], ks, kt, scratch);
    return flags != 0;
  }

  // A row whose gradient came out with an infinite or NaN entry although its loss is finite. The
  // float32 passes form products that the exact gradient does not: coefficient * p * d in pass 2
  // before pass 3 subtracts coefficient * p * KL, coefficient * KL itself, a coefficient above
  // float32's range times a probability difference of 0. Each can overflow where the gradient,
  // p (d - KL) times the coefficient, is far inside the range (fuzzing finding F14, and the
  // extreme-case table's huge logits at T = 100). The gradient is linear in the row's upstream
  // scale, so the row's passes 2 and 3 run again at scale * 2^-k, which brings every coefficient
  // below 1/8 (then |coefficient * p * d| < 2^125, as |d| < 2^128 by the range rule), and each entry
  // is multiplied by 2^k in float64 and rounded once: it overflows only where the exact value
  // does. An entry below float32's normal range at the smaller scale loses bits, 2^(k-149) at most,
  // far inside the statement's 2^-18 |c| term. An infinite loss (a zero probability against a
  // positive one) keeps its documented infinite entries.
  void rescaled_row(int64_t r, ChunkStats* st, float* scratch) const {
    RowState& rs = rows_[r];
    if (!row_active(r) || !std::isfinite(rs.loss)) return;
    const double scale = std::fabs(double(rs.scale));
    const double coef = std::max(scale * std::fabs(lt_.w) / a_.temperature, rs.hard ? scale * (1.0 - lt_.alpha) : 0.0);
    int e = 0;
    std::frexp(coef, &e);  // coef < 2^e
    const int k = e + 3;
    if (k <= 0) return;  // the coefficients are small already: the entries overflow exactly
    const float saved = rs.scale;
    rs.scale = static_cast<float>(std::ldexp(double(saved), -k));
    gradient_passes(r, st, scratch);
    rs.scale = saved;
    combine2(r, st);  // the loss as before (it does not depend on the scale)
    const int64_t off = r * a_.cols;
    for (float* g : {a_.grad_student, a_.grad_teacher}) {
      if (!g) continue;
      for (int64_t i = off; i < off + a_.cols; ++i) g[i] = static_cast<float>(std::ldexp(double(g[i]), k));
    }
  }

  // Whole rows, one thread each. Pass 1 keeps the row's exponentials in a per-thread scratch row
  // (while it fits in the outer caches) so passes 2 and 3 compute none.
  void run_rows(int64_t r0, int64_t r1) const {
    thread_local std::vector<ChunkStats> st;
    thread_local std::vector<float> scratch_row;
    if (int64_t(st.size()) < nchunks_) st.resize(size_t(nchunks_));
    float* scratch = nullptr;
    if (a_.cols <= kScratchMaxCols) {
      const int64_t need = scratch_floats();
      if (int64_t(scratch_row.size()) < need) scratch_row.resize(size_t(need));
      scratch = scratch_row.data();
    }
    for (int64_t r = r0; r < r1; ++r) {
      for (int64_t k = 0; k < nchunks_; ++k) pass1(r, k, &st[k], scratch);
      combine1(r, st.data());
      if (gradient_passes(r, st.data(), scratch)) rescaled_row(r, st.data(), scratch);
    }
  }

  int64_t nchunks() const { return nchunks_; }

 private:
  const DistillLossArgs& a_;
  const ChunkKernels& k_;
  RowState* rows_ = nullptr;
  int64_t nchunks_;
  LossTerms lt_;
};

// A data error is found row by row, after earlier rows' gradients were written: the outputs are
// filled with NaN so that no partly written buffer can pass for a result.
Status poisoned(const DistillLossArgs& a, Status s) {
  const size_t n = size_t(a.rows * a.cols);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  if (a.grad_student) std::fill(a.grad_student, a.grad_student + n, nan);
  if (a.grad_teacher) std::fill(a.grad_teacher, a.grad_teacher + n, nan);
  if (a.loss_rows) std::fill(a.loss_rows, a.loss_rows + a.rows, nan);
  return s;
}

// The error of row r (a RowError), in the words every backend uses.
Status row_error(const DistillLossArgs& a, int64_t r, int error) {
  switch (error) {
    case kRowBadValue: {
      std::string m = describe_bad_value("student", a.student + r * a.cols, 1, a.cols);
      if (!m.empty()) {
        // describe_bad_value saw one row: restate the position in the whole array
        m = describe_bad_value("student", a.student, a.rows, a.cols);
      } else {
        m = describe_bad_value("teacher", a.teacher, a.rows, a.cols);
      }
      return Status::RangeErr(m);
    }
    case kRowNoFiniteStudent:
      return Status::RangeErr("student row " + std::to_string(r) + " must have at least one finite logit, got all -Infinity");
    case kRowNoFiniteTeacher:
      return Status::RangeErr("teacher row " + std::to_string(r) + " must have at least one finite logit, got all -Infinity");
    default:
      return Status::RangeErr(temperature_overflow_message(a.temperature, error == kRowOverflowStudent ? "student" : "teacher", r));
  }
}

// Whether the small-rows kernel takes this call: short rows, plain KL, the student gradient only.
// The small-rows kernel has no rescaled_row: it takes calls whose gradient coefficients are below
// 2^100, where its entries (a coefficient times a probability difference) cannot overflow.
bool takes_small_rows(const DistillLossArgs& a, const ChunkKernels& k, int64_t valid) {
  if (!(k.distill_small_rows && a.cols <= kSmallRowsMaxCols && a.divergence == Divergence::KL && !a.grad_teacher &&
        (!a.labels || a.label_smoothing == 0.0)))
    return false;
  if (!a.grad_student) return true;
  const LossTerms lt = loss_terms(a);
  double scale = 0.0;
  const int64_t n = a.reduction == Reduction::None ? a.rows : 1;
  for (int64_t r = 0; r < n; ++r) scale = std::max(scale, std::fabs(double(row_scale(a, r, valid))));
  return scale * std::max(std::fabs(lt.w) / a.temperature, 1.0 - lt.alpha) < 0x1p100;
}

Status distill_small_rows(const DistillLossArgs& a, DistillLossResult* result, const ExecConfig& cfg, const ChunkKernels& k,
                          int64_t valid) {
  thread_local std::vector<float> scale;
  thread_local std::vector<double> loss;
  thread_local std::vector<int> error;
  if (int64_t(loss.size()) < a.rows) {
    loss.resize(size_t(a.rows));
    error.resize(size_t(a.rows));
  }
  // one upstream gradient for every row unless the reduction is none
  const bool per_row = a.reduction == Reduction::None;
  if (per_row) {
    if (int64_t(scale.size()) < a.rows) scale.resize(size_t(a.rows));
    for (int64_t r = 0; r < a.rows; ++r) scale[size_t(r)] = row_scale(a, r, valid);
  }
  const LossTerms lt = loss_terms(a);
  SmallRows base{};
  base.s = a.student;
  base.t = a.teacher;
  base.cols = a.cols;
  base.labels = a.labels;
  base.ignore_index = a.ignore_index;
  base.inv_t = lt.inv_t;
  base.need_r = lt.need_r;
  base.pow_r = lt.pow_r;
  base.temperature = a.temperature;
  base.alpha = lt.alpha;
  base.w = lt.w;
  base.scale = per_row ? scale.data() : nullptr;
  base.scale_all = per_row ? 0.0f : row_scale(a, 0, valid);
  base.gs = a.grad_student;
  base.loss = loss.data();
  base.error = error.data();
  const bool any_error = run_small_rows<6 * 8 * kSmallRowsMaxCols>(base, a.rows, a.cols, cfg.threads, k.distill_small_rows);
  if (any_error)
    for (int64_t r = 0; r < a.rows; ++r)
      if (error[size_t(r)] != kRowOk) return poisoned(a, row_error(a, r, error[size_t(r)]));
  const double* l = loss.data();
  return finish(a, result, valid, [l](int64_t r) { return l[r]; });
}

// The argument checks; `valid` gets the rows that are not ignored.
Status validate(const DistillLossArgs& a, int64_t* valid) {
  Status s = validate_distill_scalars(a, a.student != nullptr, a.teacher != nullptr);
  if (!s.ok()) return s;
  return validate_distill_arrays(a, a.labels, a.grad_output_rows, valid);
}

}  // namespace

Status distill_loss(const DistillLossArgs& a, DistillLossResult* result, const ExecConfig& cfg) {
  int64_t valid = a.rows;
  Status s = validate(a, &valid);
  if (!s.ok()) return s;
  const ChunkKernels& kernels = kernels_for(cfg.isa);
  if (takes_small_rows(a, kernels, valid)) return distill_small_rows(a, result, cfg, kernels, valid);

  DistillRun run(a, kernels);
  thread_local std::vector<RowState> rows;
  if (int64_t(rows.size()) < a.rows) rows.resize(size_t(a.rows));
  run.init_rows(rows, valid);

  const int threads = threads_for(cfg.threads, a.rows * a.cols);
  const int64_t nchunks = run.nchunks();
  const int64_t work = a.rows * a.cols;
  const int row_parts = parts_for(threads, work, a.rows);
  const int chunk_parts = parts_for(threads, work, a.rows * nchunks);
  // A worker's scratch may fail to grow: the exception must not leave a pool thread (that would end
  // the process), so it is caught there and reported once all parts are done.
  std::atomic<bool> out_of_memory{false};
  if (row_parts >= chunk_parts) {
    parallel_for(row_parts, a.rows, [&](int64_t r0, int64_t r1) {
      try {
        run.run_rows(r0, r1);
      } catch (const std::bad_alloc&) {
        out_of_memory = true;
      }
    });
  } else {
    // Few long rows: every pass runs over all (row, chunk) pairs.
    thread_local std::vector<ChunkStats> st;
    const int64_t items = a.rows * nchunks;
    if (int64_t(st.size()) < items) st.resize(size_t(items));
    ChunkStats* stp = st.data();
    parallel_for(chunk_parts, items, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) run.pass1(i / nchunks, i % nchunks, &stp[i]);
    });
    for (int64_t r = 0; r < a.rows; ++r) run.combine1(r, stp + r * nchunks);
    parallel_for(chunk_parts, items, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) run.pass2(i / nchunks, i % nchunks, &stp[i]);
    });
    for (int64_t r = 0; r < a.rows; ++r) run.combine2(r, stp + r * nchunks);
    thread_local std::vector<double> k3;
    if (int64_t(k3.size()) < 2 * a.rows) k3.resize(size_t(2 * a.rows));
    double* k3p = k3.data();  // thread_locals are per thread: the workers get the pointer
    bool any3 = false;
    for (int64_t r = 0; r < a.rows; ++r) any3 = run.pass3_constants(r, &k3p[2 * r], &k3p[2 * r + 1]) || any3;
    if (any3) {
      parallel_for(chunk_parts, items, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          const int64_t r = i / nchunks;
          if (k3p[2 * r] != 0.0 || k3p[2 * r + 1] != 0.0) stp[i].bad |= run.pass3(r, i % nchunks, &stp[i], k3p[2 * r], k3p[2 * r + 1]);
        }
      });
    }
    for (int64_t r = 0; r < a.rows; ++r) {  // passes 2 and 3 left kGradNotFinite in bad
      bool redo = false;
      for (int64_t k = 0; k < nchunks; ++k) redo = redo || stp[r * nchunks + k].bad != 0;
      if (redo) run.rescaled_row(r, stp + r * nchunks, nullptr);
    }
  }

  if (out_of_memory) return poisoned(a, Status::RangeErr("out of memory for the per-thread scratch rows"));
  // Errors are reported for the first offending row, whatever the schedule.
  for (int64_t r = 0; r < a.rows; ++r)
    if (rows[r].error != kRowOk) return poisoned(a, row_error(a, r, rows[r].error));
  return finish(a, result, valid, [&](int64_t r) { return rows[r].loss; });
}

}  // namespace kdfuse
