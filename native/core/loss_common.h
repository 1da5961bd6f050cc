// Building blocks shared by the fused losses (distill_loss.cpp, topk_loss.cpp): combining the
// chunks' statistics into row log-normalisers, the call's weights and switches, the upstream
// gradient of a row, and the reduction. Internal to the core.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "chunk_kernels.h"
#include "kdfuse_core.h"

namespace kdfuse {
namespace loss_common {

constexpr double kInf = std::numeric_limits<double>::infinity();

// exp(m - M) / sum as a float: the factor turning a chunk's exponentials exp(z - m) into
// probabilities exp(z - M) / sum (0 for an all -inf chunk; no exp call for the chunk holding M).
inline float prob_factor(double m, double row_max, double sum) {
  if (m == -kInf || !(sum > 0.0)) return 0.0f;
  return static_cast<float>((m == row_max ? 1.0 : std::exp(m - row_max)) / sum);
}

// log(sum_k S_k exp(m_k - M)) + M over chunk stats (m at v[im], S at v[is]); -inf if all m are -inf.
inline double combine_lse(const ChunkStats* st, int64_t nchunks, int im, int is, double* mx = nullptr, double* ls = nullptr,
                   double* total = nullptr) {
  double m = -kInf;
  for (int64_t k = 0; k < nchunks; ++k) m = std::max(m, st[k].v[im]);
  if (mx) *mx = m;
  if (ls) *ls = 0.0;
  if (total) *total = 0.0;
  if (m == -kInf) return -kInf;
  double sum = 0.0;
  for (int64_t k = 0; k < nchunks; ++k) {
    // exp(0) = 1 exactly: skipping the call for the chunk holding the maximum changes no bit
    if (st[k].v[im] == m) sum += st[k].v[is];
    else if (st[k].v[im] != -kInf) sum += st[k].v[is] * std::exp(st[k].v[im] - m);
  }
  const double l = std::log(sum);
  if (ls) *ls = l;
  if (total) *total = sum;
  return m + l;
}

// The upstream gradient of row r (1/N included for mean), as a float, for every schedule.
inline float row_scale(const DistillLossArgs& a, int64_t r, int64_t valid) {
  double g;
  switch (a.reduction) {
    case Reduction::Mean: g = valid > 0 ? a.grad_output / double(valid) : 0.0; break;
    case Reduction::Sum: g = a.grad_output; break;
    default: g = a.grad_output_rows ? a.grad_output_rows[r] : 1.0; break;
  }
  return static_cast<float>(g);
}

// The call-level switches and weights of the loss, the same for the chunked passes and the
// small-rows kernel.
struct LossTerms {
  float inv_t;       // 1/T as the kernels use it
  bool have_labels;
  bool unit_t;       // 1/T == 1
  double alpha;      // weight of the soft term (1 without labels: the hard term is absent)
  double w;          // alpha, times T^2 when the soft term is scaled
  double eps;        // label smoothing (0 without labels)
  bool need_r;       // the hard term needs its own normaliser (T != 1)
  bool need_sum_s;   // label smoothing needs sum(s)
  // T = 2 or 4 (as the kernels see it, 1/T in float32): s/T is exact, so exp(s - max s) is the
  // tempered exponential squared (to the fourth), one exponential per element fewer
  int pow_r;
};

inline LossTerms loss_terms(const DistillLossArgs& a) {
  LossTerms t;
  t.inv_t = static_cast<float>(1.0 / a.temperature);
  t.have_labels = a.labels != nullptr;
  t.unit_t = t.inv_t == 1.0f;
  t.alpha = t.have_labels ? a.alpha : 1.0;
  t.w = t.alpha * (a.scale_by_t2 ? a.temperature * a.temperature : 1.0);
  t.eps = t.have_labels ? a.label_smoothing : 0.0;
  t.need_r = t.have_labels && t.alpha < 1.0 && !t.unit_t;
  t.need_sum_s = t.have_labels && t.alpha < 1.0 && t.eps > 0.0;
  t.pow_r = !t.need_r ? 0 : t.inv_t == 0.5f ? 2 : t.inv_t == 0.25f ? 4 : 0;
  return t;
}

// The reduced loss and the per-row losses from each row's loss, summed in row order.
template <class LossOf>
Status finish(const DistillLossArgs& a, DistillLossResult* result, int64_t valid, LossOf loss_of) {
  double total = 0.0;
  for (int64_t r = 0; r < a.rows; ++r) total += loss_of(r);
  if (a.loss_rows)
    for (int64_t r = 0; r < a.rows; ++r) a.loss_rows[r] = static_cast<float>(loss_of(r));
  if (result) {
    result->valid_rows = valid;
    result->loss = (a.reduction == Reduction::Mean) ? (valid > 0 ? total / double(valid) : 0.0) : total;
  }
  return Status::Ok();
}

// Fills the outputs with NaN: a data error found after earlier rows were written must not leave a
// partly written buffer that could pass for a result.
inline void poison(float* grad, int64_t n, float* losses, int64_t rows) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  if (grad) std::fill(grad, grad + n, nan);
  if (losses) std::fill(losses, losses + rows, nan);
}

}  // namespace loss_common
}  // namespace kdfuse
