// The AVX2 + FMA micro-kernel of sgemm. This file alone is compiled with -mavx2 -mfma; gemm.cpp
// calls it only after cpu_has_avx2_fma() said yes. No standard-library templates here, so no
// AVX2-compiled copy of a shared inline function can leak into the baseline code.
#include <immintrin.h>

#include "gemm_kernels.h"

namespace kdfuse {

namespace {

// alpha * acc, then + beta * C as a separate multiply and add: the rounding gemm_write_tile gives.
inline void store_row(float* c, __m256 lo, __m256 hi, __m256 va, __m256 vb, bool read_c) {
  lo = _mm256_mul_ps(lo, va);
  hi = _mm256_mul_ps(hi, va);
  if (read_c) {
    lo = _mm256_add_ps(lo, _mm256_mul_ps(vb, _mm256_loadu_ps(c)));
    hi = _mm256_add_ps(hi, _mm256_mul_ps(vb, _mm256_loadu_ps(c + 8)));
  }
  _mm256_storeu_ps(c, lo);
  _mm256_storeu_ps(c + 8, hi);
}

inline void spill_row(float* t, __m256 lo, __m256 hi, __m256 va) {
  _mm256_storeu_ps(t, _mm256_mul_ps(lo, va));
  _mm256_storeu_ps(t + 8, _mm256_mul_ps(hi, va));
}

// r[i] lane j <- r[j] lane i
inline void transpose8(__m256 r[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20); r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  r[1] = _mm256_permute2f128_ps(s1, s5, 0x20); r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20); r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  r[3] = _mm256_permute2f128_ps(s3, s7, 0x20); r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

}  // namespace

void sgemm_pack_a_rows_avx2(const float* a, int64_t lda, int64_t kc, float* dst) {
  int64_t p = 0;
  for (; p + 8 <= kc; p += 8) {
    __m256 r[8];
    for (int i = 0; i < kGemmMR; ++i) r[i] = _mm256_loadu_ps(a + i * lda + p);
    r[6] = r[7] = _mm256_setzero_ps();
    transpose8(r);
    // 8-wide stores 6 apart: each overwrites the 2 spare lanes the previous one left
    for (int q = 0; q < 8; ++q) _mm256_storeu_ps(dst + (p + q) * kGemmMR, r[q]);
  }
  for (; p < kc; ++p)
    for (int i = 0; i < kGemmMR; ++i) dst[p * kGemmMR + i] = a[i * lda + p];
}

void sgemm_pack_b_rows_avx2(const float* b, int64_t ldb, int64_t kc, float* dst) {
  int64_t p = 0;
  for (; p + 8 <= kc; p += 8) {
    for (int half = 0; half < 2; ++half) {
      __m256 r[8];
      for (int j = 0; j < 8; ++j) r[j] = _mm256_loadu_ps(b + (half * 8 + j) * ldb + p);
      transpose8(r);
      for (int q = 0; q < 8; ++q) _mm256_storeu_ps(dst + (p + q) * kGemmNR + half * 8, r[q]);
    }
  }
  for (; p < kc; ++p)
    for (int j = 0; j < kGemmNR; ++j) dst[p * kGemmNR + j] = b[j * ldb + p];
}

void sgemm_micro_avx2(int64_t kc, const float* pa, const float* pb, float* c, int64_t ldc, float alpha, float beta,
                      int mr, int nr) {
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps(), c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps(), c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps(), c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  for (int64_t p = 0; p < kc; ++p) {
    const __m256 b0 = _mm256_loadu_ps(pb), b1 = _mm256_loadu_ps(pb + 8);
    __m256 a = _mm256_broadcast_ss(pa + 0);
    c00 = _mm256_fmadd_ps(a, b0, c00); c01 = _mm256_fmadd_ps(a, b1, c01);
    a = _mm256_broadcast_ss(pa + 1);
    c10 = _mm256_fmadd_ps(a, b0, c10); c11 = _mm256_fmadd_ps(a, b1, c11);
    a = _mm256_broadcast_ss(pa + 2);
    c20 = _mm256_fmadd_ps(a, b0, c20); c21 = _mm256_fmadd_ps(a, b1, c21);
    a = _mm256_broadcast_ss(pa + 3);
    c30 = _mm256_fmadd_ps(a, b0, c30); c31 = _mm256_fmadd_ps(a, b1, c31);
    a = _mm256_broadcast_ss(pa + 4);
    c40 = _mm256_fmadd_ps(a, b0, c40); c41 = _mm256_fmadd_ps(a, b1, c41);
    a = _mm256_broadcast_ss(pa + 5);
    c50 = _mm256_fmadd_ps(a, b0, c50); c51 = _mm256_fmadd_ps(a, b1, c51);
    pa += kGemmMR;
    pb += kGemmNR;
  }
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
  if (mr == kGemmMR && nr == kGemmNR) {
    const bool read_c = beta != 0.0f;
    store_row(c + 0 * ldc, c00, c01, va, vb, read_c);
    store_row(c + 1 * ldc, c10, c11, va, vb, read_c);
    store_row(c + 2 * ldc, c20, c21, va, vb, read_c);
    store_row(c + 3 * ldc, c30, c31, va, vb, read_c);
    store_row(c + 4 * ldc, c40, c41, va, vb, read_c);
    store_row(c + 5 * ldc, c50, c51, va, vb, read_c);
    return;
  }
  // an edge tile: C has fewer rows or columns than the tile, so go through a buffer
  alignas(32) float t[kGemmMR * kGemmNR];
  spill_row(t + 0 * kGemmNR, c00, c01, va);
  spill_row(t + 1 * kGemmNR, c10, c11, va);
  spill_row(t + 2 * kGemmNR, c20, c21, va);
  spill_row(t + 3 * kGemmNR, c30, c31, va);
  spill_row(t + 4 * kGemmNR, c40, c41, va);
  spill_row(t + 5 * kGemmNR, c50, c51, va);
  gemm_write_tile(t, c, ldc, beta, mr, nr);
}

}  // namespace kdfuse
