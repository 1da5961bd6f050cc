// kdfuse core: the host-side helpers of integrated gradients (src/explain/integrated-gradients.ts).
// Plain C++17, no Node headers. For points q = 0 .. points - 1, each naming a row of x (the example)
// and a row of the stacked baselines:
//
//   ig_interpolate:  out[q*F + f]       = b[br*F + f] + alpha[q] * (x[xr*F + f] - b[br*F + f])
//   ig_accumulate:   acc[xr*F + f]     += weight[q] * grad[q*F + f] * (x[xr*F + f] - b[br*F + f])
//
// with xr = x_row[q], br = baseline_row[q], in float64 (the interpolated point rounded once to
// float32), points taken in order: the same operations in the same order as the TypeScript loops in
// src/kernels/ig.ts, so the results are bit-identical to them. Single-threaded: a batch is
// small (points * F of a few hundred thousand at most) and the result must not depend on threads.
#pragma once
#include <cstdint>

#include "kdfuse_core.h"

namespace kdfuse {

struct IgPoints {
  const float* x = nullptr;          // [x_rows, features] the examples
  int64_t x_rows = 0;
  const float* baselines = nullptr;  // [baseline_rows, features] the baselines, stacked
  int64_t baseline_rows = 0;
  int64_t features = 0;
  int64_t points = 0;                // may be 0 (nothing to do)
  const int32_t* x_row = nullptr;         // [points] in [0, x_rows)
  const int32_t* baseline_row = nullptr;  // [points] in [0, baseline_rows)
};

// alpha: [points], finite; out: [points, features].
Status ig_interpolate(const IgPoints& p, const double* alpha, float* out);
// grad: [points, features]; weight: [points], finite; acc: [x_rows, features], added to.
Status ig_accumulate(const IgPoints& p, const float* grad, const double* weight, double* acc);

}  // namespace kdfuse
