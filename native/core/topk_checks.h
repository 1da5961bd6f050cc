// Checks and teacher-side values of the top-k loss, shared by the CPU core (topk_loss.cpp) and the
// CUDA backend so both accept and reject the same calls with the same words (those of
// src/kernels/topk-validate.ts).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "kdfuse_core.h"

namespace kdfuse {

extern const char* const kReverseKlRenormalizeMessage;
extern const char* const kLogitsUniformMessage;

// Scalars and presence: everything the dense call checks, plus k, the divergence / missing-mass
// combination and teacher values. `valid_rows` as validate_distill_arrays.
Status validate_topk_args(const TopkLossArgs& a, int64_t* valid_rows);

// The teacher's entries (index range, repeats, NaN, signs, listed mass: every row), then for rows
// not ignored an empty distribution and a temperature overflow. `stamp` is scratch (cols ints).
Status validate_topk_teacher(const TopkLossArgs& a, std::vector<int32_t>& stamp);

// The value every unlisted column of row r holds in the densified teacher (as a float, widened);
// -inf for Renormalize or when the row lists every column. `listed` gets k_r.
double topk_off_list_value(const TopkLossArgs& a, int64_t r, int64_t* listed);

}  // namespace kdfuse
