// Shared between gemm.cpp (baseline ISA) and gemm_avx2.cpp (-mavx2 -mfma): the micro-tile shape,
// the packed-panel layout and the write-back of a tile. Everything here has internal linkage so a
// copy compiled with AVX2 can never be picked by the linker for the baseline translation unit.
#pragma once
#include <cstdint>

namespace kdfuse {

// 6x16: 12 ymm accumulators + 2 B vectors + 1 A broadcast fit the 16 ymm registers, and 12
// independent FMA chains cover the FMA latency (4 cycles) on two FMA pipes.
constexpr int kGemmMR = 6;
constexpr int kGemmNR = 16;

// A packed panel holds kc steps of MR floats (op(A) column p of the MR rows), B panels kc steps of
// NR floats; rows or columns past the matrix edge are zero in the panel.
using GemmMicroKernel = void (*)(int64_t kc, const float* pa, const float* pb, float* c, int64_t ldc, float alpha,
                                 float beta, int mr, int nr);

void sgemm_micro_avx2(int64_t kc, const float* pa, const float* pb, float* c, int64_t ldc, float alpha, float beta,
                      int mr, int nr);

// Full panels packed with 8x8 register transposes (the scalar packs cost about as much as the
// arithmetic when m or n is as small as the fused head's 64). pack_a: MR rows of a, `lda` apart,
// kc floats each; it may write 2 floats past the panel. pack_b: NR rows of b (op(B) = B^T).
void sgemm_pack_a_rows_avx2(const float* a, int64_t lda, int64_t kc, float* dst);
void sgemm_pack_b_rows_avx2(const float* b, int64_t ldb, int64_t kc, float* dst);

namespace {
// The partial-tile write-back, used by both micro-kernels. t already holds alpha * sum; the full-tile
// AVX2 path does the same multiply then add (never fused) so edge and inner tiles round alike.
inline void gemm_write_tile(const float* t, float* c, int64_t ldc, float beta, int mr, int nr) {
  for (int r = 0; r < mr; ++r) {
    float* cr = c + r * ldc;
    const float* tr = t + r * kGemmNR;
    if (beta == 0.0f) {
      for (int j = 0; j < nr; ++j) cr[j] = tr[j];
    } else {
      for (int j = 0; j < nr; ++j) cr[j] = tr[j] + beta * cr[j];
    }
  }
}
}  // namespace

}  // namespace kdfuse
