// The pieces of the fused head (linear_distill.cpp) that its CUDA version shares with the CPU
// core, so both accept and reject the same calls with the same words and split rows the same way.
#pragma once
#include <cstdint>
#include <vector>

#include "kdfuse_core.h"

namespace kdfuse {

// Every argument and input check, before any product; `valid` gets the rows not ignored.
Status validate_linear_distill(const LinearDistillArgs& a, int64_t* valid);
// Rows per block: a.block_rows, or about 16 MB of logits per block, in whole 6-row panels.
int64_t linear_block_rows(const LinearDistillArgs& a);
// Each row's upstream scale with the call's reduction folded in (mean: grad_output / valid).
std::vector<float> linear_row_scales(const LinearDistillArgs& a, int64_t valid);
// A block's error names its rows and says that the student is the head's logits.
Status linear_block_error(const Status& s, int64_t r0, int64_t r1);
// The call as a top-k loss over all rows (a top-k teacher), student null: each block sets its own.
TopkLossArgs linear_topk_args(const LinearDistillArgs& a);
// Every output NaN, then s: a failed call never leaves a partly written result that could pass for one.
Status linear_poisoned(const LinearDistillArgs& a, Status s);

}  // namespace kdfuse
