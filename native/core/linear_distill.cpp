// The fused distillation head: loss and gradients of a linear projection (hidden · weight + bias)
// followed by the distillation loss, without forming the [rows, classes] logits.
//
// Rows are taken in blocks (as Liger-Kernel's fused linear losses chunk the batch): for a block
// of b rows,
//   logits  [b, cols]  = bias + hidden[b, dim] · weight[dim, cols]        (sgemm)
//   G       [b, cols]  = d loss / d logits: distill_loss on the block, reduction none with each
//                        row's upstream scale (the call's mean / sum folded in)
//   gradHidden[b, dim] = G · weight^T                                      (sgemm)
//   gradWeight        += hidden[b, dim]^T · G                              (sgemm, beta = 1)
//   gradBias          += column sums of G                                  (float64)
// so the extra memory is two [b, cols] buffers, b chosen so each holds about 16 MB. The block size
// depends only on the shape, and every product sums in a fixed order, so results do not depend on
// the thread count. The loss terms, options and error words are distill_loss's (docs/math.md).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <new>
#include <string>
#include <vector>

#include "checks.h"
#include "gemm.h"
#include "kdfuse_core.h"
#include "linear_distill.h"
#include "thread_pool.h"
#include "topk_checks.h"

namespace kdfuse {
namespace {

// Floats per block buffer (logits or G): 16 MB, far below the full logits at LLM sizes and large
// enough that the weight read per block is amortised over many rows.
constexpr int64_t kBlockFloats = int64_t(1) << 22;

}  // namespace

int64_t linear_block_rows(const LinearDistillArgs& a) {
  if (a.block_rows > 0) return std::min(a.block_rows, a.base.rows);
  int64_t b = std::max<int64_t>(1, kBlockFloats / a.base.cols);
  if (b >= 6) b -= b % 6;  // whole micro-kernel panels (6 rows)
  return std::min(b, a.base.rows);
}

namespace {

// Whether x[0, n) holds a value the head refuses: NaN or +-Infinity (any_inf), else NaN or
// +Infinity (the teacher's rule). A branch-free pass the compiler vectorises, split over the
// thread pool; only when it finds one is the first described (by the slower loops below).
bool any_refused(const float* x, int64_t n, bool neg_inf_refused, int threads) {
  constexpr int64_t kSpan = 1 << 16;
  const int64_t spans = (n + kSpan - 1) / kSpan;
  std::atomic<bool> found{false};
  parallel_for(parts_for(threads_for(threads, n), n, spans), spans, [&](int64_t s0, int64_t s1) {
    for (int64_t sp = s0; sp < s1 && !found.load(std::memory_order_relaxed); ++sp) {
      const int64_t i0 = sp * kSpan, i1 = std::min(n, i0 + kSpan);
      uint32_t bad = 0;
      for (int64_t i = i0; i < i1; ++i) {
        uint32_t b;
        std::memcpy(&b, x + i, sizeof b);
        const uint32_t mag = b & 0x7fffffffu;
        // exponent all ones: NaN (mantissa != 0) or an infinity; -Infinity passes for the teacher
        bad |= uint32_t(mag >= 0x7f800000u) & (neg_inf_refused ? 1u : uint32_t(b != 0xff800000u));
      }
      if (bad) found = true;
    }
  });
  return found;
}

// The first entry of x that is not finite, described; "" if none. NaN and +-Infinity are refused
// in the head's parameters and inputs alike (-Infinity * 0 would be NaN inside the product).
std::string describe_nonfinite(const char* name, const float* x, int64_t rows, int64_t cols) {
  const int64_t n = rows * cols;
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i]))
      return std::string(name) + " must be finite, got " + (std::isnan(x[i]) ? "NaN" : x[i] > 0 ? "Infinity" : "-Infinity") +
             " at index " + std::to_string(i) + " (row " + std::to_string(i / cols) + ", column " + std::to_string(i % cols) + ")";
  return "";
}

// linear_topk_args for the checks, which ask that a student is given: hidden stands in (never read).
TopkLossArgs topk_args_to_check(const LinearDistillArgs& a) {
  TopkLossArgs t = linear_topk_args(a);
  t.base.student = a.hidden;
  return t;
}

}  // namespace

TopkLossArgs linear_topk_args(const LinearDistillArgs& a) {
  TopkLossArgs t;
  t.base = a.base;
  t.base.student = nullptr;
  t.k = a.k;
  t.indices = a.topk_indices;
  t.values = a.topk_values;
  t.values_are_logits = a.values_are_logits;
  t.missing = a.missing;
  return t;
}

Status validate_linear_distill(const LinearDistillArgs& a, int64_t* valid) {
  const DistillLossArgs& b = a.base;
  if (b.student || b.grad_student || b.grad_teacher)
    return Status::TypeErr("the fused head computes the student logits and trains no teacher: base.student, "
                           "base.grad_student and base.grad_teacher must be null");
  if (a.dim < 1) return Status::RangeErr("dim must be an integer >= 1, got " + std::to_string(a.dim));
  const bool topk = a.topk_indices || a.topk_values;
  if (topk && b.teacher) return Status::TypeErr("give the teacher as dense logits or as its top k entries, not both");
  Status s = topk ? validate_topk_args(topk_args_to_check(a), valid) : validate_distill_scalars(b, true, b.teacher != nullptr);
  if (!s.ok()) return s;
  if (!a.hidden) return Status::TypeErr("hidden must be a Float32Array, got null");
  if (!a.weight) return Status::TypeErr("weight must be a Float32Array, got null");
  if (b.rows > std::numeric_limits<int64_t>::max() / a.dim || a.dim > std::numeric_limits<int64_t>::max() / b.cols)
    return Status::RangeErr("rows * dim or dim * cols is too large");
  if (!(s = validate_distill_arrays(b, b.labels, b.grad_output_rows, valid)).ok()) return s;
  const int threads = 0;  // the scans' split does not change what they find
  std::string m;
  if (any_refused(a.hidden, b.rows * a.dim, true, threads)) m = describe_nonfinite("hidden", a.hidden, b.rows, a.dim);
  if (m.empty() && any_refused(a.weight, a.dim * b.cols, true, threads)) m = describe_nonfinite("weight", a.weight, a.dim, b.cols);
  if (m.empty() && a.bias && any_refused(a.bias, b.cols, true, threads)) m = describe_nonfinite("bias", a.bias, 1, b.cols);
  if (!m.empty()) return Status::RangeErr(m);
  if (!topk) {
    if (any_refused(b.teacher, b.rows * b.cols, false, threads)) m = describe_bad_value("teacher", b.teacher, b.rows, b.cols);
    return m.empty() ? Status::Ok() : Status::RangeErr(m);
  }
  // the whole teacher before the first product: a bad entry in the last row costs no GEMM
  thread_local std::vector<int32_t> stamp;
  return validate_topk_teacher(topk_args_to_check(a), stamp);
}

Status linear_poisoned(const LinearDistillArgs& a, Status s) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  auto fill = [&](float* p, int64_t n) {
    if (p) std::fill(p, p + n, nan);
  };
  fill(a.base.loss_rows, a.base.rows);
  fill(a.grad_hidden, a.base.rows * a.dim);
  fill(a.grad_weight, a.dim * a.base.cols);
  fill(a.grad_bias, a.base.cols);
  return s;
}

Status linear_block_error(const Status& s, int64_t r0, int64_t r1) {
  std::string m = s.message;
  for (size_t at = m.find("student"); at != std::string::npos; at = m.find("student", at + 1)) {
    m.replace(at, 7, "student logits (hidden · weight + bias)");
    at += 30;
  }
  return Status{s.kind, "in rows [" + std::to_string(r0) + ", " + std::to_string(r1) + ") (row numbers below count from " +
                            std::to_string(r0) + "): " + m};
}

std::vector<float> linear_row_scales(const LinearDistillArgs& a, int64_t valid) {
  std::vector<float> scale(static_cast<size_t>(a.base.rows));
  for (int64_t r = 0; r < a.base.rows; ++r) {
    switch (a.base.reduction) {
      case Reduction::Mean: scale[size_t(r)] = valid > 0 ? float(a.base.grad_output / double(valid)) : 0.0f; break;
      case Reduction::Sum: scale[size_t(r)] = float(a.base.grad_output); break;
      default: scale[size_t(r)] = a.base.grad_output_rows ? a.base.grad_output_rows[r] : 1.0f; break;
    }
  }
  return scale;
}

Status linear_distill_loss(const LinearDistillArgs& a, DistillLossResult* result, const ExecConfig& cfg) {
  int64_t valid = a.base.rows;
  Status s = validate_linear_distill(a, &valid);
  if (!s.ok()) return s;
  const int64_t rows = a.base.rows, cols = a.base.cols, dim = a.dim;
  const bool need_g = a.grad_hidden || a.grad_weight || a.grad_bias;
  const int64_t block = linear_block_rows(a);

  try {
    // Kept between calls (per thread): fresh pages cost more than the products on some machines.
    thread_local std::vector<float> logits, grad;
    if (int64_t(logits.size()) < block * cols) logits.resize(size_t(block * cols));
    if (need_g && int64_t(grad.size()) < block * cols) grad.resize(size_t(block * cols));
    const std::vector<float> scale = linear_row_scales(a, valid);
    std::vector<double> bias_sum(a.grad_bias ? size_t(cols) : 0, 0.0);

    double total = 0.0;
    for (int64_t r0 = 0; r0 < rows; r0 += block) {
      const int64_t nb = std::min(block, rows - r0);
      float* z = logits.data();
      if (a.bias) {
        for (int64_t r = 0; r < nb; ++r) std::copy(a.bias, a.bias + cols, z + r * cols);
      }
      sgemm(false, false, nb, cols, dim, 1.0f, a.hidden + r0 * dim, dim, a.weight, cols, a.bias ? 1.0f : 0.0f, z, cols, cfg.threads);

      DistillLossArgs b = a.base;
      b.student = z;
      b.teacher = a.base.teacher ? a.base.teacher + r0 * cols : nullptr;
      b.rows = nb;
      b.labels = a.base.labels ? a.base.labels + r0 : nullptr;
      b.reduction = Reduction::None;
      b.grad_output_rows = scale.data() + r0;
      b.loss_rows = a.base.loss_rows ? a.base.loss_rows + r0 : nullptr;
      b.grad_student = need_g ? grad.data() : nullptr;
      b.grad_teacher = nullptr;
      DistillLossResult br;
      if (a.topk_indices) {
        TopkLossArgs t = linear_topk_args(a);
        t.base = b;
        t.base.teacher = nullptr;
        t.indices = a.topk_indices + r0 * a.k;
        t.values = a.topk_values + r0 * a.k;
        s = topk_distill_loss(t, &br, cfg);
      } else {
        s = distill_loss(b, &br, cfg);
      }
      if (!s.ok()) return linear_poisoned(a, linear_block_error(s, r0, r0 + nb));
      total += br.loss;
      if (!need_g) continue;

      const float* g = grad.data();
      if (a.grad_hidden) sgemm(false, true, nb, dim, cols, 1.0f, g, cols, a.weight, cols, 0.0f, a.grad_hidden + r0 * dim, dim, cfg.threads);
      if (a.grad_weight)
        sgemm(true, false, dim, cols, nb, 1.0f, a.hidden + r0 * dim, dim, g, cols, r0 == 0 ? 0.0f : 1.0f, a.grad_weight, cols, cfg.threads);
      if (a.grad_bias) {
        // column ranges on the pool: each column's sum runs over the rows in order, whatever the split
        double* sums = bias_sum.data();
        const int64_t work = nb * cols;
        parallel_for(parts_for(threads_for(cfg.threads, work), work, cols), cols, [&](int64_t c0, int64_t c1) {
          for (int64_t r = 0; r < nb; ++r) {
            const float* gr = g + r * cols;
            for (int64_t c = c0; c < c1; ++c) sums[c] += double(gr[c]);
          }
        });
      }
    }
    if (a.grad_bias)
      for (int64_t c = 0; c < cols; ++c) a.grad_bias[c] = static_cast<float>(bias_sum[size_t(c)]);
    result->valid_rows = valid;
    result->loss = a.base.reduction == Reduction::Mean ? (valid > 0 ? total / double(valid) : 0.0) : total;
    return Status::Ok();
  } catch (const std::bad_alloc&) {
    return linear_poisoned(a, Status::RangeErr("out of memory for the fused head's block buffers (" +
                                        std::to_string(2 * block * cols * int64_t(sizeof(float))) + " bytes)"));
  }
}

}  // namespace kdfuse
