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

}  // namespace kdfuse
