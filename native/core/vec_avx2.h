// Eight float lanes with AVX2 + FMA. Include only from translation units compiled with -mavx2 -mfma.
// exp and log follow the classic Cephes single-precision range reduction and minimax polynomials
// (about 1 ulp on the ranges the kernels use); native/test checks them against std::exp / std::log.
#pragma once
#include <immintrin.h>
#include <cstdint>

struct VAvx2 {
  using R = __m256;
  static constexpr int W = 8;

  static __m256i tail_mask(int n) {
    // lanes [0, n) set
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx);
  }
  static R load(const float* p) { return _mm256_loadu_ps(p); }
  // n valid lanes; the rest are `fill`
  static R loadn(const float* p, int n, float fill) {
    if (n == W) return _mm256_loadu_ps(p);
    const __m256i m = tail_mask(n);
    const R v = _mm256_maskload_ps(p, m);
    return _mm256_blendv_ps(_mm256_set1_ps(fill), v, _mm256_castsi256_ps(m));
  }
  static void store(float* p, R v) { _mm256_storeu_ps(p, v); }
  static void storen(float* p, R v, int n) {
    if (n == W) _mm256_storeu_ps(p, v);
    else _mm256_maskstore_ps(p, tail_mask(n), v);
  }
  static R set1(float x) { return _mm256_set1_ps(x); }
  static R zero() { return _mm256_setzero_ps(); }
  static R add(R a, R b) { return _mm256_add_ps(a, b); }
  static R sub(R a, R b) { return _mm256_sub_ps(a, b); }
  static R mul(R a, R b) { return _mm256_mul_ps(a, b); }
  static R fma(R a, R b, R c) { return _mm256_fmadd_ps(a, b, c); }
  static R fnma(R a, R b, R c) { return _mm256_fnmadd_ps(a, b, c); }
  static R max(R a, R b) { return _mm256_max_ps(a, b); }

  // exp(x) for x <= 88.37; x < -87.33 (and -inf) gives exactly 0.
  static R exp(R x) {
    const R underflow = _mm256_cmp_ps(x, _mm256_set1_ps(-87.3365447505531f), _CMP_LT_OQ);
    x = _mm256_min_ps(x, _mm256_set1_ps(88.3762626647949f));
    // Lanes that underflow (and the -inf fill of masked tails) are computed as exp(0) and zeroed at
    // the end: evaluated at the clamp they made a subnormal product, and every subnormal result
    // costs a microcode assist (a fifth of the loss kernel's time on 10-column rows).
    return _mm256_andnot_ps(underflow, exp_reduced(_mm256_andnot_ps(underflow, x)));
  }

  // exp(x) for x <= 0 (every exponent of a logit minus its maximum): no overflow clamp.
  static R exp_nonpos(R x) {
    const R underflow = _mm256_cmp_ps(x, _mm256_set1_ps(-87.3365447505531f), _CMP_LT_OQ);
    return _mm256_andnot_ps(underflow, exp_reduced(_mm256_andnot_ps(underflow, x)));
  }

  // Cephes range reduction and polynomial, for x in [-87.33, 88.37].
  static R exp_reduced(R x) {
    const R fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
    R y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
    const R z = _mm256_mul_ps(x, x);
    y = _mm256_fmadd_ps(y, z, x);
    y = _mm256_add_ps(y, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_cvtps_epi32(fx);
    e = _mm256_slli_epi32(_mm256_add_epi32(e, _mm256_set1_epi32(127)), 23);
    y = _mm256_mul_ps(y, _mm256_castsi256_ps(e));
    return y;
  }

  // log(x) for x > 0 (denormals are treated as the smallest normal); log(0) = -inf.
  static R log(R x) {
    const R is_zero = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LE_OQ);
    x = _mm256_max_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32(0x00800000)));
    __m256i ei = _mm256_srli_epi32(_mm256_castps_si256(x), 23);
    x = _mm256_and_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32(~0x7f800000)));
    x = _mm256_or_ps(x, _mm256_set1_ps(0.5f));
    ei = _mm256_sub_epi32(ei, _mm256_set1_epi32(0x7f));
    R e = _mm256_add_ps(_mm256_cvtepi32_ps(ei), _mm256_set1_ps(1.0f));
    const R small = _mm256_cmp_ps(x, _mm256_set1_ps(0.707106781186547524f), _CMP_LT_OQ);
    const R tmp = _mm256_and_ps(x, small);
    x = _mm256_sub_ps(x, _mm256_set1_ps(1.0f));
    e = _mm256_sub_ps(e, _mm256_and_ps(_mm256_set1_ps(1.0f), small));
    x = _mm256_add_ps(x, tmp);
    const R z = _mm256_mul_ps(x, x);
    R y = _mm256_set1_ps(7.0376836292e-2f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(-1.1514610310e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.1676998740e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(-1.2420140846e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.4249322787e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(-1.6668057665e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(2.0000714765e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(-2.4999993993e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(3.3333331174e-1f));
    y = _mm256_mul_ps(_mm256_mul_ps(y, x), z);
    y = _mm256_fmadd_ps(e, _mm256_set1_ps(-2.12194440e-4f), y);
    y = _mm256_fnmadd_ps(z, _mm256_set1_ps(0.5f), y);
    x = _mm256_add_ps(x, y);
    x = _mm256_fmadd_ps(e, _mm256_set1_ps(0.693359375f), x);
    return _mm256_blendv_ps(x, _mm256_set1_ps(-__builtin_inff()), is_zero);
  }

  // e^2 (pw 2) or e^4 (pw 4) for e in [0, 1], with e below 2^-63 (2^-31) taken as 0 so that no
  // product is subnormal (each would cost a microcode assist); exp gives 0 there too.
  static R pow_small(R e, int pw) {
    const R tiny = _mm256_cmp_ps(e, _mm256_set1_ps(pw == 2 ? 0x1p-63f : 0x1p-31f), _CMP_LT_OQ);
    const R m = _mm256_andnot_ps(tiny, e);
    const R y = _mm256_mul_ps(m, m);
    return pw == 2 ? y : _mm256_mul_ps(y, y);
  }
  static R sel_pos(R p, R v) { return _mm256_and_ps(_mm256_cmp_ps(p, _mm256_setzero_ps(), _CMP_GT_OQ), v); }
  // +inf where log a is finite and log b is -inf (a's probability may have underflowed to 0: the
  // divergence term is infinite all the same), else v
  static R inf_if_only_first(R la, R lb, R v) {
    const R ninf = _mm256_set1_ps(-__builtin_inff());
    const R m = _mm256_andnot_ps(_mm256_cmp_ps(la, ninf, _CMP_EQ_OQ), _mm256_cmp_ps(lb, ninf, _CMP_EQ_OQ));
    return _mm256_blendv_ps(v, _mm256_set1_ps(__builtin_inff()), m);
  }
  static R bad(R x) {
    const R nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    const R pinf = _mm256_cmp_ps(x, _mm256_set1_ps(__builtin_inff()), _CMP_EQ_OQ);
    return _mm256_or_ps(nan, pinf);
  }
  static R or_(R a, R b) { return _mm256_or_ps(a, b); }
  // lanes where |x| < c (false for NaN)
  // lanes where |x| < c does not hold (NaN included)
  static R not_abs_lt(R x, R c) { return _mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), x), c, _CMP_NLT_UQ); }
  static R abs_lt(R x, float c) {
    return _mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), x), _mm256_set1_ps(c), _CMP_LT_OQ);
  }
  // a where the mask is set, else b
  static R select(R m, R a, R b) { return _mm256_blendv_ps(b, a, m); }
  static R gt0(R x) { return _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GT_OQ); }  // lanes where x > 0
  static R neg_abs(R x) { return _mm256_or_ps(_mm256_set1_ps(-0.0f), x); }          // -|x|
  static R div(R a, R b) { return _mm256_div_ps(a, b); }
  static bool any(R m) { return _mm256_movemask_ps(m) != 0; }
  // float64 accumulator (two vectors of four doubles) for sums of many float terms
  struct D { __m256d lo, hi; };
  static D dzero() { return {_mm256_setzero_pd(), _mm256_setzero_pd()}; }
  static D dadd(D acc, R v) {
    acc.lo = _mm256_add_pd(acc.lo, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
    acc.hi = _mm256_add_pd(acc.hi, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
    return acc;
  }
  // Horizontal reductions as fixed trees of vector operations (a scalar loop over the lanes was
  // a serial chain of dependent adds, which dominated rows of a few dozen columns).
  static double dsum(D acc) {
    const __m256d v = _mm256_add_pd(acc.lo, acc.hi);
    const __m128d h = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
  }
  static double hsum(R v) {
    alignas(32) float l[8];
    _mm256_store_ps(l, v);
    double s = 0.0;
    for (int i = 0; i < 8; ++i) s += l[i];
    return s;
  }
  static float hmax(R v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
  }
};
