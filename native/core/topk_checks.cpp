#include "topk_checks.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <limits>

#include "checks.h"

namespace kdfuse {

const char* const kReverseKlRenormalizeMessage =
    "divergence 'reverse-kl' with missingMass 'renormalize' is infinite: the renormalised teacher is 0 off its top k, "
    "where the student is not; use missingMass 'uniform' or divergence 'kl' or 'jsd'";
const char* const kLogitsUniformMessage =
    "teacherValues 'logits' is defined only with missingMass 'renormalize' (raw logits say nothing of the mass the top "
    "k leave out)";

namespace {
constexpr double kMassTolerance = 1e-4;

// As JavaScript's String(Number(x.toPrecision(6))).
std::string six_digits(double x) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.6g", x);
  return format_number(std::strtod(buf, nullptr));
}

std::string entry(const char* name, int64_t i, int64_t r, const char* what, int64_t v) {
  return std::string(name) + "[" + std::to_string(i) + "] (row " + std::to_string(r) + ", " + what + " " +
         std::to_string(v) + ")";
}
}  // namespace

Status validate_topk_args(const TopkLossArgs& a, int64_t* valid_rows) {
  const DistillLossArgs& b = a.base;
  Status s = validate_distill_scalars(b, b.student != nullptr, true);
  if (!s.ok()) return s;
  if (a.k < 1) return Status::RangeErr("k must be an integer >= 1, got " + format_number(double(a.k)));
  if (!a.indices) return Status::TypeErr("teacherIndices must be an Int32Array, got null");
  if (!a.values) return Status::TypeErr("teacherLogprobs must be a Float32Array, got null");
  if (b.teacher || b.grad_teacher) return Status::Internal("the top-k loss takes no dense teacher");
  if (b.divergence == Divergence::ReverseKL && a.missing == MissingMass::Renormalize)
    return Status::RangeErr(kReverseKlRenormalizeMessage);
  if (a.values_are_logits && a.missing != MissingMass::Renormalize) return Status::RangeErr(kLogitsUniformMessage);
  return validate_distill_arrays(b, b.labels, b.grad_output_rows, valid_rows);
}

double topk_off_list_value(const TopkLossArgs& a, int64_t r, int64_t* listed) {
  const int32_t* idx = a.indices + r * a.k;
  const float* v = a.values + r * a.k;
  int64_t n = 0;
  double mass = 0.0;
  for (int64_t j = 0; j < a.k; ++j) {
    if (idx[j] == -1) continue;
    ++n;
    if (a.missing == MissingMass::Uniform) mass += std::exp(double(v[j]));
  }
  if (listed) *listed = n;
  if (a.missing == MissingMass::Renormalize || n >= a.base.cols) return -std::numeric_limits<double>::infinity();
  return static_cast<float>(std::log(std::max(1.0 - mass, 0.0) / double(a.base.cols - n)));
}

Status validate_topk_teacher(const TopkLossArgs& a, std::vector<int32_t>& stamp) {
  const int64_t rows = a.base.rows, cols = a.base.cols, k = a.k;
  stamp.assign(size_t(cols), -1);  // stamp[c]: the entry of the current row listing c, rows told apart below
  std::vector<int64_t> stamp_row(size_t(cols), -1);
  for (int64_t r = 0; r < rows; ++r) {
    double mass = 0.0;
    for (int64_t j = 0; j < k; ++j) {
      const int64_t i = r * k + j;
      const int32_t c = a.indices[i];
      if (c == -1) continue;
      if (c < 0 || c >= cols)
        return Status::RangeErr(entry("teacherIndices", i, r, "entry", j) + " must be a column in [0, " + std::to_string(cols) +
                                ") or -1 (padding), got " + std::to_string(c));
      if (stamp_row[size_t(c)] == r)
        return Status::RangeErr(entry("teacherIndices", i, r, "entry", j) + " repeats column " + std::to_string(c) +
                                ", listed at entry " + std::to_string(stamp[size_t(c)]));
      stamp_row[size_t(c)] = r;
      stamp[size_t(c)] = int32_t(j);
      const float v = a.values[i];
      if (std::isnan(v)) return Status::RangeErr(entry("teacherLogprobs", i, r, "column", c) + " must not be NaN");
      if (a.values_are_logits && v == std::numeric_limits<float>::infinity())
        return Status::RangeErr(entry("teacherLogprobs", i, r, "column", c) + " must not be +Infinity");
      if (!a.values_are_logits && v > 0.0f)
        return Status::RangeErr(entry("teacherLogprobs", i, r, "column", c) + " must be a log-probability <= 0, got " +
                                format_number(v));
      if (!a.values_are_logits) mass += std::exp(double(v));
    }
    if (!a.values_are_logits && mass > 1.0 + kMassTolerance)
      return Status::RangeErr("teacherLogprobs row " + std::to_string(r) + " lists a probability mass of " + six_digits(mass) +
                              " (the sum of exp over its entries), more than 1 + 1e-4: they must be log-probabilities "
                              "over the whole vocabulary");
  }
  const float inv_t = static_cast<float>(1.0 / a.base.temperature);
  for (int64_t r = 0; r < rows; ++r) {
    if (a.base.labels && a.base.labels[r] == a.base.ignore_index) continue;
    int64_t listed = 0;
    const double off = topk_off_list_value(a, r, &listed);
    float m = -std::numeric_limits<float>::infinity();
    bool scaled_overflow = false;  // any finite listed value breaking the range rule (|v / T| < 2^127), not only the maximum
    for (int64_t j = 0; j < k; ++j)
      if (a.indices[r * k + j] != -1) {
        const float v = a.values[r * k + j];
        m = std::max(m, v);
        scaled_overflow = scaled_overflow || (std::isfinite(v) && !(std::fabs(v * inv_t) < 0x1p127f));
      }
    if (listed < cols) m = std::max(m, static_cast<float>(off));
    if (m == -std::numeric_limits<float>::infinity())
      return Status::RangeErr("teacher row " + std::to_string(r) +
                              " lists no finite log-probability and leaves no mass to spread, so its distribution is "
                              "empty (missingMass '" + (a.missing == MissingMass::Uniform ? "uniform" : "renormalize") + "')");
    if (!(std::fabs(m * inv_t) < 0x1p127f) || scaled_overflow) return Status::RangeErr(temperature_overflow_message(a.base.temperature, "teacher", r));
  }
  return Status::Ok();
}

}  // namespace kdfuse
