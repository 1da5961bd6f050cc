// libFuzzer target: kdfuse::distill_loss with fuzzed shapes, options, labels and logits.
//
// Checks, on every input: no sanitizer report; a refusal is a Type/Range error with a message, and
// only for calls the contract refuses (reference.h, distill_refusal); an accepted call is one the
// contract accepts. On accepted calls with T in the documented accuracy range [0.05, 100]
// (README, "Accuracy and determinism") the results agree with the float64 reference:
//   per-row loss:  |got - want| <= 1e-5 |want| + w 2^-20 Zmax + (1 - alpha) (2^-20 Smax + 2^-20)
//     (w = alpha T^2 or alpha, Zmax = max finite |s/T|, |t/T| of the row, Smax = max finite |s|: z = s * (1/T)
//     is rounded once to float32, which moves log-probabilities by a few ulps of Zmax)
//   reduced loss:  the rows' bounds, summed (divided by the valid rows for mean)
//   gradients:     |got - want| <= 1e-5 max|want| + 2^-20 Zmax (w / T) |g| + 1e-6 (1 - alpha) |g|
//     (the README's 1e-5 * max|grad| plus the float32 resolution floor it states for JSD, applied to
//     every divergence: the same rounding of z enters q - p)
// Outside [0.05, 100] only the first checks apply: large T is issue 13 item 4 (fixed on main).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz_bytes.h"
#include "kdfuse_core.h"
#include "reference.h"

using namespace kdfuse_fuzz;

namespace {

const double kTemps[] = {1.0, 2.0, 4.0, 0.05, 100.0, 0.5, 3.0, 7.3, 20.0, 0.1, 1e-3, 0.049, 100.5,
                         1e3, 1e4, 1e6, 4294967296.0, 1e308, 0.0, -1.0, kNaN, kInf, 5e-324, 1e-300};
const double kUnit[] = {0.5, 0.0, 1.0, 0.9, 0.1, 0.999999, 1e-9, -0.0, -1e-9, 1.000001, kNaN, kInf, 2.0};
const double kGrad[] = {1.0, 0.5, -1.0, 0.0, 3.0, 1e-30, 1e30, -7.0, kNaN, kInf, 1e300};

const char* kind_name(kdfuse::ErrorKind k) {
  switch (k) {
    case kdfuse::ErrorKind::None: return "none";
    case kdfuse::ErrorKind::Type: return "TypeError";
    case kdfuse::ErrorKind::Range: return "RangeError";
    default: return "Internal";
  }
}

// Some finite element of row r leaves float32 once multiplied by float(1/T).
bool z_overflows(const float* x, int64_t r, int64_t cols, double t) {
  for (int64_t c = 0; c < cols; ++c)
    if (std::isfinite(x[r * cols + c]) && !std::isfinite(x[r * cols + c] * float(1.0 / t))) return true;
  return false;
}

void dump_floats(const char* name, const std::vector<float>& v, int64_t cols) {
  std::fprintf(stderr, "%s:", name);
  const size_t limit = std::getenv("KDFUSE_FUZZ_DUMP")[0] == '2' ? v.size() : 256;
  for (size_t i = 0; i < v.size() && i < limit; ++i) std::fprintf(stderr, "%s%.9g", i % size_t(cols) ? " " : "\n  ", double(v[i]));
  std::fprintf(stderr, v.size() > limit ? " ...\n" : "\n");
}

void dump(const kdfuse::DistillLossArgs& a, const kdfuse::ExecConfig& cfg, const std::vector<float>& s, const std::vector<float>& t) {
  std::fprintf(stderr, "rows %lld cols %lld T %.17g alpha %.17g eps %.17g beta %.17g gradOutput %.17g scaleT2 %d reduction %d divergence %d "
               "ignoreIndex %d threads %d isa %d student %s teacher %s lossRows %d gradStudent %d gradTeacher %d\n",
               (long long)a.rows, (long long)a.cols, a.temperature, a.alpha, a.label_smoothing, a.beta, a.grad_output, int(a.scale_by_t2),
               int(a.reduction), int(a.divergence), a.ignore_index, cfg.threads, int(cfg.isa), a.student ? "set" : "null",
               a.teacher ? "set" : "null", a.loss_rows != nullptr, a.grad_student != nullptr, a.grad_teacher != nullptr);
  if (a.labels) {
    std::fprintf(stderr, "labels:");
    for (int64_t r = 0; r < a.rows; ++r) std::fprintf(stderr, " %d", a.labels[r]);
    std::fprintf(stderr, "\n");
  }
  if (a.grad_output_rows) {
    std::fprintf(stderr, "gradOutput rows:");
    for (int64_t r = 0; r < a.rows; ++r) std::fprintf(stderr, " %g", double(a.grad_output_rows[r]));
    std::fprintf(stderr, "\n");
  }
  dump_floats("student", s, a.cols);
  dump_floats("teacher", t, a.cols);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Bytes in(data, size);
  kdfuse::DistillLossArgs a;
  a.rows = 1 + in.u8() % 16;
  a.cols = 1 + in.u16() % 2100;  // past one 1024-column chunk and the 64-column small-rows kernel
  a.temperature = in.pick(kTemps);
  a.alpha = in.pick(kUnit);
  a.label_smoothing = in.pick(kUnit) * 0.5;  // mostly inside [0, 1), the table's ends still reach out
  if (in.u8() & 1) a.label_smoothing = 0.0;
  a.beta = in.pick(kUnit);
  a.grad_output = in.pick(kGrad);
  const uint8_t flags = in.u8();
  const uint8_t flags2 = in.u8();
  a.scale_by_t2 = flags & 1;
  const bool with_labels = flags & 2, want_rows = flags & 4, want_gs = flags & 8, want_gt = flags & 16,
             with_gor = flags & 32;
  a.reduction = kdfuse::Reduction(in.u8() % 3);
  a.divergence = kdfuse::Divergence(in.u8() % 3);
  static const int32_t kIgnore[] = {-100, -1, 0, 1, INT32_MIN, INT32_MAX};
  const uint8_t ig = in.u8();
  a.ignore_index = ig < 6 ? kIgnore[ig] : int32_t(in.u32());
  kdfuse::ExecConfig cfg;
  cfg.threads = 1 + in.u8() % 4;
  cfg.isa = kdfuse::Isa(in.u8() % 3);
  const ValueMode ms = read_mode(in), mt = read_mode(in);
  Filler fill{in.u64()};

  const int64_t R = a.rows, C = a.cols, N = R * C;
  std::vector<int32_t> labels;
  if (with_labels) {
    labels.resize(size_t(R));
    for (auto& y : labels) {
      const uint8_t k = in.empty() ? uint8_t(fill.next() % 16) : in.u8();
      // mostly in range; some ignored; some just outside or far outside
      y = k < 12 ? int32_t((k + fill.next()) % uint64_t(C)) : k < 14 ? a.ignore_index : k == 14 ? int32_t(C) : -1;
      if (k >= 16 && k < 20) y = int32_t(C) + (k - 16);
    }
    a.labels = labels.data();
  }
  std::vector<float> gor;
  if (with_gor) {
    static const double kRowG[] = {1.0, 0.25, -2.0, 0.0, kNaN, kInf};
    gor.resize(size_t(R));
    for (auto& g : gor) g = float(kRowG[(in.empty() ? fill.next() : in.u8()) % 6]);
    if (!(flags2 & 1))  // bad values only when asked for, so most runs with gradOutput rows are accepted
      for (auto& g : gor)
        if (!std::isfinite(g)) g = 1.0f;
    a.grad_output_rows = gor.data();
  }
  const std::vector<float> s = read_floats(in, size_t(N), ms, fill);
  const std::vector<float> t = read_floats(in, size_t(N), mt, fill);
  a.student = (flags2 & 2) && (flags2 & 4) ? nullptr : s.data();
  a.teacher = (flags2 & 2) && (flags2 & 8) ? nullptr : t.data();

  // Outputs filled with a marker so an unwritten element shows.
  std::vector<float> loss_rows(want_rows ? size_t(R) : 0, kNaNF), gs(want_gs ? size_t(N) : 0, kNaNF),
      gt(want_gt ? size_t(N) : 0, kNaNF);
  a.loss_rows = want_rows ? loss_rows.data() : nullptr;
  a.grad_student = want_gs ? gs.data() : nullptr;
  a.grad_teacher = want_gt ? gt.data() : nullptr;

  if (std::getenv("KDFUSE_FUZZ_DUMP")) dump(a, cfg, s, t);  // a reproducer in words
  kdfuse::DistillLossResult res;
  const kdfuse::Status st = kdfuse::distill_loss(a, &res, cfg);
  const char* refusal = distill_refusal(a);
  if (!st.ok()) {
    if (st.kind != kdfuse::ErrorKind::Range && st.kind != kdfuse::ErrorKind::Type)
      finding("distill_loss refused with a %s: %s", kind_name(st.kind), st.message.c_str());
    if (st.message.empty()) finding("distill_loss refused with an empty message");
    if (!*refusal && st.message.find("out of memory") == std::string::npos)
      finding("distill_loss refused a call the contract accepts: %s", st.message.c_str());
    return 0;
  }
  if (*refusal && !f3_tiny_temperature(a.temperature)) finding("distill_loss accepted a call the contract refuses (%s)", refusal);
  if (!in_documented_temperature_range(a.temperature)) return 0;  // issue 13 item 4: no accuracy claim here

  const DistillRef ref = distill_ref(a);
  const double T = a.temperature;
  const double alpha = a.labels ? a.alpha : 1.0;
  const double w = alpha * (a.scale_by_t2 ? T * T : 1.0);
  const double hard = a.labels && alpha < 1 ? 1.0 - alpha : 0.0;
  int64_t valid = 0;
  double sum_tol = 0, zmax_all = 0;
  bool skip_total = false;
  for (int64_t r = 0; r < R; ++r) {
    if (ref.ignored[size_t(r)]) {
      if (want_rows && loss_rows[size_t(r)] != 0.0f) finding("ignored row %lld has loss %g", (long long)r, double(loss_rows[size_t(r)]));
      continue;
    }
    ++valid;
    const double zmax = std::max(max_abs_finite(s.data(), r, C), max_abs_finite(t.data(), r, C)) / T;
    const double smax = max_abs_finite(s.data(), r, C);
    zmax_all = std::max(zmax_all, zmax);
    const double want = ref.rows[size_t(r)];
    double tol = 1e-5 * std::fabs(want) + w * 0x1p-20 * zmax + hard * (0x1p-20 * smax + 0x1p-20);
    // Finding F2 of the fuzzing (docs/reliability.md), same cause as issue 13 item 4: the divergence
    // is summed from float32 log-probabilities of size up to Zmax + log(cols), so when it is small
    // (near-identical rows, large T) only its absolute error, about w 2^-24 (Zmax + log cols), is
    // bounded, not 1e-5 of it: at T = 100 with logits of size 0.01 the loss is 63% off. Allowed here
    // unless KDFUSE_FUZZ_STRICT=1.
    if (!strict()) tol += w * 0x1p-22 * (zmax + std::log(double(C)));
    sum_tol += tol;
    // Known defect, fixed on main (issue 13 item 6): a student probability of 0 facing a teacher
    // probability that is > 0 only below float32's normal range (the kernels' exponential flushes
    // it to 0) must give Infinity; today's kernel decides on the flushed float32 probability and
    // returns a finite loss. Such rows are skipped here so the rest of the fuzzing goes on.
    // Finding F9 (docs/reliability.md): a finite logit other than the row's maximum whose z = s * (1/T)
    // overflows float32 (s = -3.4e38 at T = 0.05) is taken as a -Infinity logit, so the loss is
    // Infinity where the float64 loss is finite (1.86e36); the reference backend gives the latter.
    // Such rows are skipped (with the reduced loss and gradients) unless KDFUSE_FUZZ_STRICT=1.
    if (!strict() && (z_overflows(s.data(), r, C, T) || z_overflows(t.data(), r, C, T))) {
      skip_total = true;
      continue;
    }
    // KDFUSE_FUZZ_STRICT=1 turns this exception off (to check the fix).
    if (!strict() && std::isinf(want) && ref.inf_from_float32_underflow[size_t(r)]) {
      skip_total = true;
      continue;
    }
    if (want_rows && !close(loss_rows[size_t(r)], want, tol))
      finding("row %lld loss %.9g, reference %.17g (tol %.3g, T %g, div %d)", (long long)r, double(loss_rows[size_t(r)]), want, tol, T,
              int(a.divergence));
  }
  if (res.valid_rows != valid) finding("valid_rows %lld, expected %lld", (long long)res.valid_rows, (long long)valid);
  if (!skip_total) {
    const double tol = a.reduction == kdfuse::Reduction::Mean ? (valid ? sum_tol / double(valid) : 0) : sum_tol;
    if (!close(res.loss, ref.loss, tol)) finding("loss %.17g, reference %.17g (tol %.3g, T %g)", res.loss, ref.loss, tol, T);
  }
  if (skip_total) return 0;  // gradients of such rows follow the same (known) decision
  // the largest upstream gradient any row sees
  double gmax = 1.0;
  if (a.reduction == kdfuse::Reduction::Mean) gmax = valid ? std::fabs(a.grad_output) / double(valid) : 0.0;
  else if (a.reduction == kdfuse::Reduction::Sum) gmax = std::fabs(a.grad_output);
  else if (a.grad_output_rows) {
    gmax = 0.0;
    for (int64_t r = 0; r < R; ++r) gmax = std::max(gmax, std::fabs(double(a.grad_output_rows[r])));
  }
  auto check_grad = [&](const std::vector<float>& got, const std::vector<double>& want, const char* name) {
    double m = 0;
    for (double v : want) m = std::max(m, std::fabs(v));
    double tol = 1e-5 * m + 0x1p-20 * zmax_all * (w / T) * gmax + 1e-6 * hard * gmax + 1e-37;
    // Finding F1 of the fuzzing (docs/reliability.md), not one of issue 13's numbered items but the
    // same cause as item 4 (large T): the soft gradient (w/T)(q - p) is formed from float32
    // probabilities, so it is resolved only to about 2^-24 (w/T) |g| whatever its own size; at
    // T = 100 with logits of size 0.01 that is 2e-4 of max|grad|. Allowed here unless
    // KDFUSE_FUZZ_STRICT=1, so the rest of the fuzzing goes on; the fix for item 4 should close it.
    if (!strict()) tol += 0x1p-22 * (w / T) * gmax;
    // Known defect, fixed or bounded on main (issue 13 item 7): the KL and reverse-KL gradients
    // q (e - K) lose precision like JSD's near one-hot rows at small T, a little beyond the JSD
    // floor above (1.05x of it at T = 0.05, reverse KL, logits of size 30: corpus file
    // finding_issue13_item7_reverse_kl). Allowed up to 4x the floor unless KDFUSE_FUZZ_STRICT=1.
    if (!strict() && a.divergence != kdfuse::Divergence::JSD) tol += 3 * 0x1p-20 * zmax_all * (w / T) * gmax;
    for (int64_t i = 0; i < N; ++i)
      if (!close(got[size_t(i)], want[size_t(i)], tol) &&
          // issue 13 item 6 on the gradient side (known, fixed on main): an entry that is infinite
          // through a probability below float32's normal range comes out 0 (corpus file
          // finding_issue13_item6_gradient); allowed unless KDFUSE_FUZZ_STRICT=1
          !(!strict() && std::isinf(want[size_t(i)]) && got[size_t(i)] == 0.0f))
        finding("%s[%lld] (row %lld) = %.9g, reference %.17g (tol %.3g, T %g, div %d)", name, (long long)i, (long long)(i / C),
                double(got[size_t(i)]), want[size_t(i)], tol, T, int(a.divergence));
  };
  // Finding F7 (docs/reliability.md): a gradOutput that is a finite double but beyond float32
  // (e.g. 5e173) is accepted, and the kernels' float32 row scale becomes Infinity, so a gradient
  // element that should be 0 comes out NaN (Infinity * 0); the reference backend gives 0.
  // Skipped unless KDFUSE_FUZZ_STRICT=1.
  if (!strict() && std::fabs(a.grad_output) > double(std::numeric_limits<float>::max())) return 0;
  // Finding F8 (docs/reliability.md): an upstream gradient or soft-term weight below float32's
  // range (gradOutput = -2.6e-69 with mean, alpha = 1e-314: finite doubles, accepted) flushes to 0
  // in the kernels, so a gradient entry that is infinite (a -Infinity student logit facing a
  // teacher probability > 0) comes out 0. Skipped unless KDFUSE_FUZZ_STRICT=1.
  if (!strict() && ((w > 0 && float(w / T) == 0.0f) || (gmax > 0 && float(gmax) == 0.0f))) return 0;
  if (want_gs) check_grad(gs, ref.gs, "gradStudent");
  if (want_gt) check_grad(gt, ref.gt, "gradTeacher");
  return 0;
}
