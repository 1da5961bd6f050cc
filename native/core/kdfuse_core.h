// kdfuse core: fused distillation-loss and tempered-softmax kernels.
// Plain C++17, no Node or tfjs headers: the addon and the C++ tests both call this API.
// The math each function implements is the contract in docs/design.md; src/kernels/reference.ts
// is the same contract written as plain TypeScript.
#pragma once
#include <cstdint>
#include <string>

namespace kdfuse {

// Which error class the caller should raise. The addon maps these to TypeError / RangeError.
enum class ErrorKind { None = 0, Type, Range, Internal };

struct Status {
  ErrorKind kind = ErrorKind::None;
  std::string message;
  bool ok() const { return kind == ErrorKind::None; }
  static Status Ok() { return {}; }
  static Status RangeErr(std::string m) { return {ErrorKind::Range, std::move(m)}; }
  static Status TypeErr(std::string m) { return {ErrorKind::Type, std::move(m)}; }
  static Status Internal(std::string m) { return {ErrorKind::Internal, std::move(m)}; }
};

// Instruction set used by the vectorised loops. Auto picks AVX2+FMA when the CPU has both.
enum class Isa { Auto = 0, Generic, Avx2 };

enum class Reduction { Mean = 0, Sum, None };
enum class Divergence { KL = 0, ReverseKL, JSD };

// How a call is executed. Results do not depend on `threads` (fixed reduction order).
struct ExecConfig {
  int threads = 0;      // <= 0: default_threads()
  Isa isa = Isa::Auto;
};

// Columns are processed in fixed chunks of this many elements: the partial sums of a chunk are
// formed in float32 lanes and combined in float64, always in the same order, so results are
// bit-identical whatever the number of threads or how a long row is split between them.
constexpr int64_t kChunk = 1024;

struct SoftmaxArgs {
  const float* x = nullptr;  // [rows, cols] logits
  int64_t rows = 0, cols = 0;
  double temperature = 1.0;
  bool log = false;          // log-softmax instead of softmax
  float* y = nullptr;        // [rows, cols] output
};

struct SoftmaxBackwardArgs {
  const float* y = nullptr;   // forward output (softmax, or log-softmax when log = true)
  const float* dy = nullptr;  // upstream gradient
  int64_t rows = 0, cols = 0;
  double temperature = 1.0;
  bool log = false;
  float* dx = nullptr;        // gradient with respect to the logits
};

struct DistillLossArgs {
  const float* student = nullptr;  // [rows, cols] student logits s
  const float* teacher = nullptr;  // [rows, cols] teacher logits t
  int64_t rows = 0, cols = 0;
  const int32_t* labels = nullptr; // [rows] or null (no hard-label term)
  double temperature = 1.0;
  double alpha = 0.5;              // weight of the soft (distillation) term
  bool scale_by_t2 = true;         // multiply the soft term by T^2
  double label_smoothing = 0.0;    // eps in [0, 1)
  int32_t ignore_index = -100;
  Reduction reduction = Reduction::Mean;
  Divergence divergence = Divergence::KL;
  double beta = 0.5;               // JSD mixing weight
  double grad_output = 1.0;        // upstream gradient for mean/sum
  const float* grad_output_rows = nullptr;  // [rows] upstream gradient for reduction none (null = ones)
  // Outputs (any may be null when not wanted).
  float* loss_rows = nullptr;      // [rows] per-row loss (written for every reduction when given)
  float* grad_student = nullptr;   // [rows, cols]
  float* grad_teacher = nullptr;   // [rows, cols]
};

struct DistillLossResult {
  double loss = 0.0;      // reduced loss (mean or sum); for reduction none, the sum of the rows
  int64_t valid_rows = 0; // rows not ignored
};

// What the columns a top-k row does not list hold in the densified teacher (docs/served-teacher.md).
enum class MissingMass { Renormalize = 0, Uniform };

// The distillation loss against a teacher given by its top k entries per row. The result equals
// distill_loss with the densified teacher t: t[r, idx] = value for the listed columns; every other
// column -inf (Renormalize) or log(max(1 - sum exp(value), 0) / (cols - k_r)) as a float (Uniform).
// The dense teacher is never formed. `base` holds every option of the dense call; its teacher and
// grad_teacher must be null.
struct TopkLossArgs {
  DistillLossArgs base;
  int64_t k = 0;
  const int32_t* indices = nullptr;  // [rows, k] column ids, distinct within a row; -1 pads
  const float* values = nullptr;     // [rows, k] log-probabilities at T = 1 (or raw logits)
  bool values_are_logits = false;    // only with Renormalize
  MissingMass missing = MissingMass::Renormalize;
};

// The distillation loss of a linear head: student logits = hidden · weight + bias, never formed
// whole. `base` holds every option of distill_loss; its student, grad_student and grad_teacher
// must be null (the logits are computed here; the teacher is an input, not trained). Rows are
// processed in blocks whose logits and logit gradient fit a few tens of MB; each block runs
// distill_loss and three matrix products (logits, gradHidden, gradWeight).
struct LinearDistillArgs {
  DistillLossArgs base;              // base.rows, base.cols (classes), base.teacher [rows, cols], options, loss_rows
  const float* hidden = nullptr;     // [rows, dim]
  const float* weight = nullptr;     // [dim, cols] (the tfjs Dense kernel layout)
  const float* bias = nullptr;       // [cols] or null
  int64_t dim = 0;
  float* grad_hidden = nullptr;      // [rows, dim] or null
  float* grad_weight = nullptr;      // [dim, cols] or null
  float* grad_bias = nullptr;        // [cols] or null
  int64_t block_rows = 0;            // rows per block; 0: from the size (tests set it to cover block edges)
  // The teacher as its top k entries per row (TopkLossArgs' meaning) instead of base.teacher: set
  // topk_indices and topk_values, and leave base.teacher null.
  int64_t k = 0;
  const int32_t* topk_indices = nullptr;  // [rows, k]
  const float* topk_values = nullptr;     // [rows, k]
  bool values_are_logits = false;
  MissingMass missing = MissingMass::Renormalize;
};

Status softmax_forward(const SoftmaxArgs& a, const ExecConfig& cfg = {});
Status softmax_backward(const SoftmaxBackwardArgs& a, const ExecConfig& cfg = {});
Status distill_loss(const DistillLossArgs& a, DistillLossResult* result, const ExecConfig& cfg = {});
Status topk_distill_loss(const TopkLossArgs& a, DistillLossResult* result, const ExecConfig& cfg = {});
Status linear_distill_loss(const LinearDistillArgs& a, DistillLossResult* result, const ExecConfig& cfg = {});

// Machine facts.
int default_threads();          // cores this process may run on
bool cpu_has_avx2_fma();
Isa resolve_isa(Isa requested); // Auto -> what this CPU runs; Avx2 on a CPU without it -> Generic
const char* isa_name(Isa isa);

// Memory-bandwidth probe for the benchmarks: a[i] = b[i] + scalar * c[i], multi-threaded.
void stream_triad(float* a, const float* b, const float* c, float scalar, int64_t n, const ExecConfig& cfg = {});

}  // namespace kdfuse
