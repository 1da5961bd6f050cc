// Argument checks shared by the kernels. Messages name the argument, what was expected and what
// came, in the same words as src/kernels/validate.ts.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "kdfuse_core.h"

namespace kdfuse {

std::string format_number(double x);  // like JavaScript's String(x) for the common cases

inline Status check_dims(int64_t rows, int64_t cols) {
  if (rows < 1) return Status::RangeErr("rows must be an integer >= 1, got " + format_number(double(rows)));
  if (cols < 1) return Status::RangeErr("cols must be an integer >= 1, got " + format_number(double(cols)));
  if (rows > std::numeric_limits<int64_t>::max() / cols)
    return Status::RangeErr("rows * cols is too large");
  return Status::Ok();
}

// float32's smallest normal number, 2^-126.
constexpr double kFloat32MinNormal = 1.1754943508222875e-38;
// The smallest temperature: float32's smallest normal number, so that 1/T is finite in float32
// (below it a row whose maximum is 0 became NaN, 0 * Infinity: fuzzing finding F3).
constexpr double kMinTemperature = kFloat32MinNormal;
inline Status check_temperature(double t) {
  if (!std::isfinite(t) || t <= 0.0)
    return Status::RangeErr("temperature must be a finite number > 0, got " + format_number(t));
  if (t < kMinTemperature)
    return Status::RangeErr("temperature must be at least 1.1754943508222875e-38 (float32's smallest normal number, so "
                            "that 1/temperature is finite in float32), got " + format_number(t));
  // above 2^126 float32's 1/T is not normal (0 beyond about 1e45: a row of -Infinity logits passed
  // as 0 * -Infinity = NaN instead of an error, fuzzing finding F13)
  if (t > 0x1p126)
    return Status::RangeErr("temperature must be at most 8.507059173023462e+37 (so that 1/temperature is a normal "
                            "float32), got " + format_number(t));
  return Status::Ok();
}

// The distillation losses keep their stated accuracy up to this temperature (docs/accuracy.md):
// beyond it s/T and t/T differ by less than float32 resolves around the row maximum.
constexpr double kMaxLossTemperature = 1e4;
inline Status check_loss_temperature(double t) {
  // the loss's own bound first: it is the one a caller meets, below check_temperature's 2^126
  if (std::isfinite(t) && t > kMaxLossTemperature)
    return Status::RangeErr("temperature must be at most 10000 for the distillation loss (its stated accuracy holds "
                            "in (0, 10000]), got " + format_number(t));
  return check_temperature(t);
}

inline Status check_unit_interval(const char* name, double x, bool open_right = false) {
  const bool ok = std::isfinite(x) && x >= 0.0 && (open_right ? x < 1.0 : x <= 1.0);
  if (!ok)
    return Status::RangeErr(std::string(name) + (open_right ? " must be in [0, 1), got " : " must be in [0, 1], got ") +
                            format_number(x));
  return Status::Ok();
}

// Finds the first NaN or +Infinity in `x` and describes it; "" if none.
std::string describe_bad_value(const char* name, const float* x, int64_t rows, int64_t cols, bool allow_pos_inf = false);

// The distillation-loss argument checks, shared by the CPU core and the CUDA backend so both
// accept and reject exactly the same calls with the same words.
Status validate_distill_scalars(const DistillLossArgs& a, bool have_student, bool have_teacher);
// valid_rows (optional): the rows whose label is not ignore_index (all rows without labels).
Status validate_distill_arrays(const DistillLossArgs& a, const int32_t* labels, const float* grad_output_rows,
                               int64_t* valid_rows = nullptr);
// A row whose finite maximum, divided by the temperature, overflows float32 (who: "student",
// "teacher" or "logits").
std::string temperature_overflow_message(double temperature, const char* who, int64_t row);
std::string label_error(const DistillLossArgs& a, int64_t row, int32_t y);
std::string grad_output_row_error(int64_t row, float g);

}  // namespace kdfuse
