// Single-precision matrix product for the C++ core: the building block of the fused
// "linear projection + distillation loss" head (logits tile H*W, gradient tiles H^T*G and G*W^T).
#pragma once
#include <cstdint>

namespace kdfuse {

// Row-major C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C.
// op(A) = A (a is [m, k], leading dimension lda) or, with trans_a, A^T (a is [k, m]); the same for B.
// beta = 0 never reads C (it may hold NaN); alpha = 0 or k = 0 never reads A or B (BLAS rules).
// threads <= 0: all cores, where the product is large enough to be worth splitting. The k sum of
// each element is formed in the same order whatever the thread count, so C is bit-identical for
// any `threads` (it may differ between the AVX2 and the generic micro-kernel).
void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
           const float* b, int64_t ldb, float beta, float* c, int64_t ldc, int threads);

// Tests only: true runs the generic micro-kernel even where the CPU has AVX2 + FMA.
void sgemm_force_generic_for_testing(bool generic);

// Which GEMM sgemm runs: the BLAS found at build time ("openblas", "blis", "accelerate", "blas")
// or the one written here ("kdfuse-avx2", "kdfuse-generic"). With a BLAS, `threads` is that
// library's business (OPENBLAS_NUM_THREADS, ...) and its bits are its own.
const char* sgemm_backend();
// Process-wide: true makes sgemm use the GEMM written here even when a BLAS was found (the
// benchmark measures both; the tests check both).
void sgemm_force_builtin(bool builtin);

}  // namespace kdfuse
