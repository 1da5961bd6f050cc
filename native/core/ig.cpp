// Integrated-gradients helpers: building a batch of interpolated points and accumulating
// grad * (x - x') in float64. See ig.h; the TypeScript twin is src/kernels/ig.ts.
#include "ig.h"

#include <cmath>
#include <limits>
#include <new>
#include <string>
#include <vector>

#include "checks.h"

namespace kdfuse {
namespace {

// The index arrays are copied before they are checked and only the copies are used: the caller's
// arrays may live in a SharedArrayBuffer that another thread changes between the check and the use.
struct RowIndex {
  std::vector<int32_t> x, b;
};

Status check_points(const IgPoints& p, RowIndex* idx) {
  if (p.features < 1) return Status::RangeErr("features must be an integer >= 1, got " + format_number(double(p.features)));
  if (p.x_rows < 1) return Status::RangeErr("x must have at least one row of features elements, got " + format_number(double(p.x_rows)) + " rows");
  if (p.baseline_rows < 1)
    return Status::RangeErr("baselines must have at least one row of features elements, got " + format_number(double(p.baseline_rows)) + " rows");
  if (p.points < 0) return Status::RangeErr("points must be an integer >= 0, got " + format_number(double(p.points)));
  const int64_t big = std::numeric_limits<int64_t>::max();
  if (p.x_rows > big / p.features || p.baseline_rows > big / p.features || p.points > big / p.features)
    return Status::RangeErr("rows * features is too large");
  if (!p.x) return Status::TypeErr("x must be given");
  if (!p.baselines) return Status::TypeErr("baselines must be given");
  if (p.points == 0) return Status::Ok();
  if (!p.x_row) return Status::TypeErr("xRow must be given");
  if (!p.baseline_row) return Status::TypeErr("baselineRow must be given");
  try {
    idx->x.assign(p.x_row, p.x_row + p.points);
    idx->b.assign(p.baseline_row, p.baseline_row + p.points);
  } catch (const std::bad_alloc&) {
    return Status::RangeErr("out of memory copying xRow and baselineRow (" + std::to_string(p.points) + " points)");
  }
  for (int64_t q = 0; q < p.points; ++q) {
    if (idx->x[q] < 0 || idx->x[q] >= p.x_rows)
      return Status::RangeErr("xRow[" + std::to_string(q) + "] must be an integer in [0, " + std::to_string(p.x_rows) + "), got " +
                              std::to_string(idx->x[q]));
    if (idx->b[q] < 0 || idx->b[q] >= p.baseline_rows)
      return Status::RangeErr("baselineRow[" + std::to_string(q) + "] must be an integer in [0, " + std::to_string(p.baseline_rows) +
                              "), got " + std::to_string(idx->b[q]));
  }
  return Status::Ok();
}

Status check_finite(const char* name, const double* v, int64_t n) {
  if (n > 0 && !v) return Status::TypeErr(std::string(name) + " must be given");
  for (int64_t q = 0; q < n; ++q)
    if (!std::isfinite(v[q]))
      return Status::RangeErr(std::string(name) + "[" + std::to_string(q) + "] must be a finite number, got " + format_number(v[q]));
  return Status::Ok();
}

}  // namespace

Status ig_interpolate(const IgPoints& p, const double* alpha, float* out) {
  RowIndex idx;
  Status s = check_points(p, &idx);
  if (!s.ok()) return s;
  if ((s = check_finite("alpha", alpha, p.points)); !s.ok()) return s;
  if (p.points > 0 && !out) return Status::TypeErr("out must be given");
  const int64_t F = p.features;
  for (int64_t q = 0; q < p.points; ++q) {
    const float* x = p.x + int64_t(idx.x[q]) * F;
    const float* b = p.baselines + int64_t(idx.b[q]) * F;
    float* o = out + q * F;
    const double a = alpha[q];
    // double arithmetic, one rounding to float32 at the end: JavaScript's b + a * (x - b)
    for (int64_t f = 0; f < F; ++f) {
      const double bf = b[f];
      o[f] = static_cast<float>(bf + a * (double(x[f]) - bf));
    }
  }
  return Status::Ok();
}

Status ig_accumulate(const IgPoints& p, const float* grad, const double* weight, double* acc) {
  RowIndex idx;
  Status s = check_points(p, &idx);
  if (!s.ok()) return s;
  if ((s = check_finite("weight", weight, p.points)); !s.ok()) return s;
  if (p.points > 0 && !grad) return Status::TypeErr("grad must be given");
  if (p.points > 0 && !acc) return Status::TypeErr("acc must be given");
  const int64_t F = p.features;
  for (int64_t q = 0; q < p.points; ++q) {
    const float* x = p.x + int64_t(idx.x[q]) * F;
    const float* b = p.baselines + int64_t(idx.b[q]) * F;
    const float* g = grad + q * F;
    double* a = acc + int64_t(idx.x[q]) * F;
    const double w = weight[q];
    // (w * g) * (x - b), then added: JavaScript's acc += w * g * (x - b), left to right
    for (int64_t f = 0; f < F; ++f) a[f] += (w * double(g[f])) * (double(x[f]) - double(b[f]));
  }
  return Status::Ok();
}

}  // namespace kdfuse
