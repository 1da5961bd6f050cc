#include "checks.h"

#include <cstdio>

namespace kdfuse {

std::string format_number(double x) {
  if (std::isnan(x)) return "NaN";
  if (std::isinf(x)) return x > 0 ? "Infinity" : "-Infinity";
  if (x == std::floor(x) && std::fabs(x) < 1e15) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(x));
    return buf;
  }
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", x);
  // shortest form that reads back the same, as JavaScript prints numbers
  for (int p = 1; p <= 17; ++p) {
    char b2[40];
    std::snprintf(b2, sizeof b2, "%.*g", p, x);
    if (std::strtod(b2, nullptr) == x) return b2;
  }
  return buf;
}

std::string describe_bad_value(const char* name, const float* x, int64_t rows, int64_t cols, bool allow_pos_inf) {
  const int64_t n = rows * cols;
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    const bool nan = std::isnan(v);
    const bool pinf = !allow_pos_inf && v == std::numeric_limits<float>::infinity();
    if (nan || pinf) {
      return std::string(name) + " must not contain " + (nan ? "NaN" : "+Infinity") + ", got " +
             (nan ? "NaN" : "Infinity") + " at index " + std::to_string(i) + " (row " + std::to_string(i / cols) +
             ", column " + std::to_string(i % cols) + ")";
    }
  }
  return "";
}

std::string label_error(const DistillLossArgs& a, int64_t row, int32_t y) {
  return "labels[" + std::to_string(row) + "] must be an integer in [0, " + std::to_string(a.cols) +
         ") or ignoreIndex (" + std::to_string(a.ignore_index) + "), got " + std::to_string(y);
}

std::string grad_output_row_error(int64_t row, float g) {
  return "gradOutput[" + std::to_string(row) + "] must be a finite number, got " + format_number(g);
}

Status validate_distill_scalars(const DistillLossArgs& a, bool have_student, bool have_teacher) {
  Status s = check_dims(a.rows, a.cols);
  if (!s.ok()) return s;
  if (!have_student) return Status::TypeErr("student must be a Float32Array, got null");
  if (!have_teacher) return Status::TypeErr("teacher must be a Float32Array, got null");
  if (!(s = check_loss_temperature(a.temperature)).ok()) return s;
  if (!(s = check_unit_interval("alpha", a.alpha)).ok()) return s;
  if (!(s = check_unit_interval("labelSmoothing", a.label_smoothing, true)).ok()) return s;
  if (!(s = check_unit_interval("beta", a.beta)).ok()) return s;
  if (!std::isfinite(a.grad_output))
    return Status::RangeErr("gradOutput must be a finite number, got " + format_number(a.grad_output));
  // The kernels scale in float32: beyond its range a zero gradient became NaN (0 * Infinity), and
  // below its normal range an infinite one became 0 (fuzzing findings F7, F8, docs/reliability.md).
  const double g = std::fabs(a.grad_output);
  if (g != 0.0 && (g < kFloat32MinNormal || g > double(std::numeric_limits<float>::max())))
    return Status::RangeErr("gradOutput must be 0 or of a magnitude in [1.1754943508222875e-38, 3.4028234663852886e+38] "
                            "(a normal float32), got " + format_number(a.grad_output));
  return Status::Ok();
}

Status validate_distill_arrays(const DistillLossArgs& a, const int32_t* labels, const float* grad_output_rows,
                               int64_t* valid_rows) {
  int64_t valid = a.rows;
  if (labels) {
    valid = 0;
    for (int64_t r = 0; r < a.rows; ++r) {
      const int32_t y = labels[r];
      if (y == a.ignore_index) continue;
      if (y < 0 || y >= a.cols) return Status::RangeErr(label_error(a, r, y));
      ++valid;
    }
  }
  if (valid_rows) *valid_rows = valid;
  if (a.reduction == Reduction::None && grad_output_rows) {
    for (int64_t r = 0; r < a.rows; ++r)
      if (!std::isfinite(grad_output_rows[r])) return Status::RangeErr(grad_output_row_error(r, grad_output_rows[r]));
  }
  return Status::Ok();
}

std::string temperature_overflow_message(double temperature, const char* who, int64_t row) {
  const std::string w(who), values = w == "logits" ? w : w + " logits";
  return "temperature must be large enough that " + values +
         " / temperature stay below 2^127 = 1.7014118346046923e+38 in magnitude (half of float32's range), got " +
         format_number(temperature) + " with " + who + " row " + std::to_string(row);
}

}  // namespace kdfuse
