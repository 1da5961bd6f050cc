// The per-chunk loops of every kernel, compiled once per instruction set (chunk_kernels_generic.cpp,
// chunk_kernels_avx2.cpp) and reached through a table of plain function pointers. Everything above
// this interface (validation, scheduling, row statistics in float64) is ISA-independent and lives in
// TUs compiled for the baseline CPU, so no AVX2 code can leak into the generic path.
#pragma once
#include <cstdint>

#include "kdfuse_core.h"

namespace kdfuse {

// Partial results of one chunk, combined per row in float64 and in chunk order.
struct ChunkStats {
  // pass 1 in v[0..5]; pass 2 the divergence sums in v[6..7] and, for JSD, sum q d and
  // sum q expm1(d) in v[8..9] (kl_term.h, jsd_delta_corrected)
  double v[10];
  // pass 1: 1 a NaN or +Infinity was seen, 2 (3) a student (teacher) logit breaks the range rule;
  // pass 2: kGradNotFinite where a stored gradient is not finite
  int bad;
};
constexpr int kGradNotFinite = 4;

// Everything a chunk loop needs; the row-level constants are filled in by the scheduler.
struct DistillChunk {
  const float* s;  // student logits of this chunk
  const float* t;  // teacher logits of this chunk
  int64_t n;       // elements in the chunk
  float inv_t;     // 1 / T
  // pass 1 switches
  bool need_r;      // hard-label term at T = 1 needs its own normaliser (T != 1)
  bool need_sum_s;  // label smoothing needs sum(s)
  // 2 or 4 when T is: exp(s - max s) is then exp(s/T - max s/T)^T, with s/T exact (a power-of-two
  // scaling), so e_r is the square (or fourth power) of e_s rather than an exponential of its own,
  // and is neither stored nor loaded. 0: e_r has its own exponential (and scratch array).
  int pow_r;
  bool hard;        // the hard-label term is present in this row's gradient
  // row constants for passes 2 and 3
  int divergence;          // Divergence as int
  float lse_s, lse_t;      // log-normalisers of s/T and t/T
  float lse_r;             // log-normaliser of s (T = 1); equals lse_s when T == 1
  float delta;             // log-sum difference ls_t - ls_s, rounded once
  float mx_s, mx_t, mx_r;  // row maxima of s/T, t/T, s
  float ls_s, ls_t, ls_r;  // log(sum exp(z - max)) of each
  float cs;                // coefficient of the soft term's student gradient (scale * w / T)
  float ct;                // coefficient of the soft term's teacher gradient
  float ch;                // coefficient of the hard term's gradient (scale * (1 - alpha))
  float ch_smooth;         // ch * eps / C
  float beta;
  float ks, kt;            // pass 3: amounts to subtract, grad_s -= ks * q, grad_t -= kt * p
  // The chunk's exponentials e = exp(z - m) with m this chunk's maximum (pass 1 sums them). Passes
  // 2 and 3 form every probability as e * k, k = exp(m - M) / sum for the row maximum M: no
  // exponential is computed again when pass 1 stored e (whole rows on one thread, in a scratch row
  // that is still in cache), and when it did not (rows split across threads) e is recomputed by
  // the very same instructions, so both schedules give the same bits.
  // The e buffers are read and written in whole 8-float vectors: each is padded to a multiple of
  // 8 floats, and the lanes past the chunk's end hold 0.
  float* es;               // pass 1: where to store e of s/T, t/T and s (T = 1), or null;
  float* et;               // passes 2 and 3: where to read them when e_stored
  float* er;
  bool e_stored;
  float cm_s, cm_t, cm_r;  // passes 2 and 3: this chunk's maxima of s/T, t/T, s (pass 1's v[0], v[2], v[4])
  float kq, kp, kr;        // passes 2 and 3: q = e_s * kq, p = e_t * kp, r = e_r * kr
  float* gs;               // student gradient of this chunk, or null
  float* gt;               // teacher gradient of this chunk, or null
};

// One chunk of a student row for the top-k loss (topk_loss.cpp): the teacher is not read here,
// only the student; the k listed columns are put right by the scheduler afterwards.
struct TopkChunk {
  const float* s;  // student logits of this chunk
  int64_t n;
  float inv_t;
  // pass 1 switches: the T = 1 normaliser, sum(s), sum e (z - m) (for the student's entropy)
  bool need_r, need_sum_s, need_ez;
  int pow_r;  // 2 or 4 when T is (as DistillChunk::pow_r): exp(s - max s) is e squared (to the fourth)
  // pass 1 stores e = exp(s/T - m) here when given (m this chunk's maximum of s/T); pass 2 reads
  // it when e_stored, else recomputes it with the same instructions. Padded to whole vectors of 8.
  float* es;
  bool e_stored;
  // pass 2
  int mode;              // 0: affine (gs = sel_pos(q, q (a (z - mx) + b)) + c0); 1: uniform JSD sums; 2: uniform JSD gradient
  float cm_s, cm_r;      // this chunk's maxima of s/T and of s (pass 1's v[0], v[2])
  float mx_s, ls_s;      // the row's maximum of s/T and log(sum exp(s/T - mx))
  float kq, kr;          // q = e * kq; r = exp(s - cm_r) * kr (T != 1 with the hard term)
  float a, b, c0;        // mode 0 coefficients
  int hard;              // 0 none, 1 r = q (T == 1), 2 r from its own normaliser
  float ch, ch_smooth;   // hard-term coefficients (as DistillChunk)
  float cs;              // mode 2: scale * w / T * (1 - beta)
  float beta, pu, lpu;   // modes 1, 2: JSD weight, the off-list teacher probability and its log
  float kqm;             // mode 2: KL(q || m) of the row (0 when infinite)
  float* gs;             // student gradient of this chunk, or null
};

struct SoftmaxChunk {
  const float* x;   // forward: logits; backward: forward output y
  const float* dy;  // backward only
  int64_t n;
  float inv_t;
  float lse;        // forward pass 2: log(sum exp(x/T - mx))
  float mx;         // forward pass 2: row max of x/T
  float dot;        // backward pass 2: sum(dy * y) (softmax) or sum(dy) (log-softmax)
  bool log;
  float* out;
};

// Rows of at most kSmallRowsMaxCols columns for the plain KL loss (student gradient only, no label
// smoothing), eight rows at a time with one row per lane: on such rows the per-row machinery of the
// chunked passes (horizontal reductions, three scalar logs, the chunk set-up) costs more than the
// elements. Each lane does exactly what one row alone would, so results do not depend on how rows
// are grouped or split between threads. See small_rows_avx2.cpp.
constexpr int64_t kSmallRowsMaxCols = 64;

// A row's error in the distillation loss, the same codes on both paths (chunked and small rows).
enum RowError { kRowOk = 0, kRowBadValue, kRowNoFiniteStudent, kRowNoFiniteTeacher, kRowOverflowStudent, kRowOverflowTeacher };
// A row's error in softmax (forward).
enum SoftmaxRowError { kSoftmaxOk = 0, kSoftmaxBadValue, kSoftmaxNoFinite, kSoftmaxOverflow };

struct SmallRows {
  const float* s;          // [rows, cols] student logits (the whole array)
  const float* t;          // [rows, cols] teacher logits
  int64_t cols;
  int64_t r0, r1;          // the rows to do
  const int32_t* labels;   // or null
  int32_t ignore_index;
  float inv_t;
  int pow_r;               // as DistillChunk::pow_r
  bool need_r;             // the hard term has its own normaliser (T != 1)
  double temperature, alpha, w;  // w: weight of the soft term (alpha, times T^2 when scaled)
  const float* scale;      // [rows] upstream gradient per row (reduction none), or null:
  float scale_all;         // the same for every row (1/N for mean included)
  float* gs;               // [rows, cols] student gradient, or null
  double* loss;            // [rows] each row's loss
  int* error;              // [rows] RowError (the kernel returns whether any is set)
  float* scratch;          // 6 * 8 * cols floats, 32-byte aligned
};

// Softmax (or log-softmax) with temperature on rows of at most kSmallRowsMaxCols columns, eight rows
// at a time as SmallRows does for the loss.
struct SmallSoftmaxRows {
  const float* x;  // [rows, cols] (the whole array)
  int64_t cols;
  int64_t r0, r1;
  float inv_t;
  bool log;
  float* y;        // [rows, cols]
  int* error;      // [rows] SoftmaxRowError
  float* scratch;  // 2 * 8 * cols floats, 32-byte aligned
};

struct ChunkKernels {
  // Distillation loss.
  // pass 1: v = {ms, sum exp(s/T - ms), mt, sum exp(t/T - mt), max s, sum exp(s - max s), sum s}
  //         where ms / mt are the chunk's maxima of s/T and t/T as float (-inf for an all -inf chunk).
  void (*distill_pass1)(const DistillChunk& c, ChunkStats* out);
  // pass 2: divergence partial sums into v[6..7] (v[0..5] keep pass 1's maxima for pass 3); writes
  //         the gradients (complete for KL student, partial where pass 3 follows).
  void (*distill_pass2)(const DistillChunk& c, ChunkStats* out);
  // pass 3: subtract the row-constant part of the gradients that needed the divergence value.
  int (*distill_pass3)(const DistillChunk& c);  // kGradNotFinite or 0
  // Softmax forward: pass 1 v = {max x, sum exp(x/T - m)}; pass 2 writes y.
  void (*softmax_pass1)(const SoftmaxChunk& c, ChunkStats* out);
  void (*softmax_pass2)(const SoftmaxChunk& c);
  // Softmax backward: pass 1 v[0] = sum(dy * y) or sum(dy); pass 2 writes dx.
  void (*softmax_bwd_pass1)(const SoftmaxChunk& c, ChunkStats* out);
  void (*softmax_bwd_pass2)(const SoftmaxChunk& c);
  // Elementwise exp / log of the vector code, exposed for the accuracy tests.
  void (*exp_array)(const float* x, float* y, int64_t n);
  void (*log_array)(const float* x, float* y, int64_t n);
  // Memory-bandwidth probe.
  void (*triad)(float* a, const float* b, const float* c, float scalar, int64_t n);
  // Small rows (see SmallRows); null where this instruction set has no such kernel.
  bool (*distill_small_rows)(const SmallRows& a);
  // Small softmax rows; null where there is no such kernel. Both return whether any row has an error.
  bool (*softmax_small_rows)(const SmallSoftmaxRows& a);
  // Elementwise natural log in float64 as that kernel computes it, for the accuracy tests.
  void (*log_array_f64)(const double* x, double* y, int64_t n);
  // Top-k loss. pass 1: v = {max s/T, sum exp(s/T - m), max s, sum exp(s - max s), sum s,
  //   sum e (s/T - m)} (the last three only when switched on); bad as distill_pass1 (2: overflow).
  void (*topk_pass1)(const TopkChunk& c, ChunkStats* out);
  // pass 2: mode 0 and 2 write the gradient of every column as if unlisted; mode 1 sums the
  //   uniform JSD's terms as if every column were unlisted into v[6], v[7].
  void (*topk_pass2)(const TopkChunk& c, ChunkStats* out);
};

const ChunkKernels& chunk_kernels_generic();
const ChunkKernels& chunk_kernels_avx2();  // only valid where the CPU has AVX2 and FMA
const ChunkKernels& kernels_for(Isa isa);  // the table this CPU can run for `isa`

}  // namespace kdfuse
