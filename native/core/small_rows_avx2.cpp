// The plain KL distillation loss on rows of a few dozen columns, eight rows at a time, one row per
// lane (see SmallRows in chunk_kernels.h). The chunked passes spend most of a 10-column row on
// per-row work: horizontal reductions, three scalar float64 logs, setting up two chunk structs. Here
// a group's columns are gathered into lanes, every per-row quantity is a vector over eight rows
// (the logs included, in float64), and only the label column and the write-back are per row.
//
// Each lane follows the operations of the chunked passes on a one-chunk row (distill_loss.cpp,
// chunk_kernels_impl.h) with the same exp, the same float32 formulas and float64 row statistics;
// only the order of the float64 sums differs (column by column here). No lane sees another, so a
// row's result does not depend on its group, on the rows around it or on the thread split.
// Compiled with -mavx2 -mfma.
#include <cmath>
#include <cstring>

#include "chunk_kernels.h"
#include "vec_avx2.h"

namespace kdfuse {
namespace {

using V = VAvx2;

// log(x) in float64 for x > 0 finite and normal: x = 2^e m, m in [sqrt(1/2), sqrt(2)),
// log m = 2 atanh(z), z = (m - 1) / (m + 1), |z| <= 0.1716, by its series to z^21 (the next term is
// below 1e-18 of the sum), and e ln 2 with ln 2 in two parts (e * hi is exact). A few ulp.
inline __m256d dlog(__m256d x) {
  const __m256d one = _mm256_set1_pd(1.0);
  const __m256i bits = _mm256_castpd_si256(x);
  // the biased exponent as a double: 2^52 + k has the bit pattern of 2^52 with k in its mantissa
  const __m256d two52 = _mm256_set1_pd(0x1p52);
  const __m256i biased = _mm256_srli_epi64(bits, 52);
  __m256d e = _mm256_sub_pd(_mm256_castsi256_pd(_mm256_or_si256(biased, _mm256_castpd_si256(two52))),
                            _mm256_set1_pd(0x1p52 + 1023.0));
  __m256d m = _mm256_castsi256_pd(_mm256_or_si256(_mm256_and_si256(bits, _mm256_set1_epi64x(0x000FFFFFFFFFFFFFLL)),
                                                  _mm256_castpd_si256(one)));
  const __m256d big = _mm256_cmp_pd(m, _mm256_set1_pd(1.4142135623730951), _CMP_GT_OQ);
  m = _mm256_blendv_pd(m, _mm256_mul_pd(m, _mm256_set1_pd(0.5)), big);
  e = _mm256_add_pd(e, _mm256_and_pd(big, one));
  const __m256d z = _mm256_div_pd(_mm256_sub_pd(m, one), _mm256_add_pd(m, one));
  const __m256d w = _mm256_mul_pd(z, z);
  __m256d y = _mm256_set1_pd(1.0 / 21);
  for (double k : {19.0, 17.0, 15.0, 13.0, 11.0, 9.0, 7.0, 5.0, 3.0}) y = _mm256_fmadd_pd(y, w, _mm256_set1_pd(1.0 / k));
  y = _mm256_fmadd_pd(y, w, one);
  const __m256d lm = _mm256_mul_pd(_mm256_add_pd(z, z), y);
  const __m256d ln2_hi = _mm256_set1_pd(0x1.62e42fefa38p-1), ln2_lo = _mm256_set1_pd(0x1.ef35793c7673p-45);
  return _mm256_add_pd(_mm256_mul_pd(e, ln2_hi), _mm256_fmadd_pd(e, ln2_lo, lm));
}

// Eight float64 lanes as two vectors (lanes 0-3, 4-7), and conversions to and from eight floats.
struct D8 {
  __m256d lo, hi;
};
inline D8 d8_zero() { return {_mm256_setzero_pd(), _mm256_setzero_pd()}; }
inline D8 d8_of(__m256 v) { return {_mm256_cvtps_pd(_mm256_castps256_ps128(v)), _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1))}; }
inline D8 d8_add(D8 a, __m256 v) {
  const D8 b = d8_of(v);
  return {_mm256_add_pd(a.lo, b.lo), _mm256_add_pd(a.hi, b.hi)};
}
inline D8 d8_log(D8 a) { return {dlog(a.lo), dlog(a.hi)}; }
inline void d8_store(double* p, D8 a) {
  _mm256_storeu_pd(p, a.lo);
  _mm256_storeu_pd(p + 4, a.hi);
}

inline __m256 is_inf(__m256 x) {
  const __m256 ax = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
  return _mm256_cmp_ps(ax, _mm256_set1_ps(__builtin_inff()), _CMP_EQ_OQ);
}
inline __m256 is_neg_inf(__m256 x) { return _mm256_cmp_ps(x, _mm256_set1_ps(-__builtin_inff()), _CMP_EQ_OQ); }

// one group: rows g0 .. g0 + nl - 1 (nl <= 8)
void group(const SmallRows& a, int64_t g0, int nl) {
  const int64_t C = a.cols;
  float* const S = a.scratch;   // [C][8] student logits, transposed
  float* const T = S + 8 * C;   // teacher logits
  float* const ES = T + 8 * C;  // e of s/T, t/T and s (T = 1)
  float* const ET = ES + 8 * C;
  float* const ER = ET + 8 * C;
  float* const G = ER + 8 * C;  // the student gradient, transposed
  const float kNegInf = -__builtin_inff();

  // a partial group repeats its last row in the spare lanes (read, never written back)
  alignas(32) int32_t offs[8];
  for (int j = 0; j < 8; ++j) offs[j] = int32_t((j < nl ? j : nl - 1) * C);
  const __m256i vidx = _mm256_load_si256(reinterpret_cast<const __m256i*>(offs));
  const float* s0 = a.s + g0 * C;
  const float* t0 = a.t + g0 * C;

  // pass 1: maxima and the bad-value check
  __m256 mxs = _mm256_set1_ps(kNegInf), mxt = mxs, bad = _mm256_setzero_ps();
  for (int64_t c = 0; c < C; ++c) {
    const __m256 s = _mm256_i32gather_ps(s0 + c, vidx, 4), t = _mm256_i32gather_ps(t0 + c, vidx, 4);
    _mm256_store_ps(S + 8 * c, s);
    _mm256_store_ps(T + 8 * c, t);
    mxs = _mm256_max_ps(mxs, s);
    mxt = _mm256_max_ps(mxt, t);
    bad = _mm256_or_ps(bad, _mm256_or_ps(V::bad(s), V::bad(t)));
  }
  const __m256 inv_t = _mm256_set1_ps(a.inv_t);
  const __m256 ms = _mm256_mul_ps(mxs, inv_t), mt = _mm256_mul_ps(mxt, inv_t);
  // a finite maximum that 1/T carries out of float32 (as distill_pass1_impl)
  const __m256 ovs = _mm256_andnot_ps(is_inf(mxs), is_inf(ms)), ovt = _mm256_andnot_ps(is_inf(mxt), is_inf(mt));
  const __m256 zero = _mm256_setzero_ps();
  const __m256 nms = _mm256_blendv_ps(_mm256_sub_ps(zero, ms), zero, is_neg_inf(ms));
  const __m256 nmt = _mm256_blendv_ps(_mm256_sub_ps(zero, mt), zero, is_neg_inf(mt));
  const __m256 vmr = _mm256_blendv_ps(mxs, zero, is_neg_inf(mxs));
  D8 ss = d8_zero(), st = d8_zero(), sr = d8_zero();
  for (int64_t c = 0; c < C; ++c) {
    const __m256 s = _mm256_load_ps(S + 8 * c), t = _mm256_load_ps(T + 8 * c);
    const __m256 es = V::exp_nonpos(_mm256_add_ps(_mm256_mul_ps(s, inv_t), nms));
    const __m256 et = V::exp_nonpos(_mm256_add_ps(_mm256_mul_ps(t, inv_t), nmt));
    _mm256_store_ps(ES + 8 * c, es);
    _mm256_store_ps(ET + 8 * c, et);
    ss = d8_add(ss, es);
    st = d8_add(st, et);
    if (a.need_r) {
      const __m256 er = a.pow_r ? V::pow_small(es, a.pow_r) : V::exp_nonpos(_mm256_sub_ps(s, vmr));
      _mm256_store_ps(ER + 8 * c, er);
      sr = d8_add(sr, er);
    }
  }

  // row statistics, eight rows at once in float64
  const D8 ls_s = d8_log(ss), ls_t = d8_log(st), ls_r = a.need_r ? d8_log(sr) : ls_s;
  alignas(32) double lss[8], lst[8], lsr[8], sums[8], sumt[8], sumr[8];
  d8_store(lss, ls_s);
  d8_store(lst, ls_t);
  d8_store(lsr, ls_r);
  d8_store(sums, ss);
  d8_store(sumt, st);
  d8_store(sumr, a.need_r ? sr : ss);
  alignas(32) float f_ms[8], f_mt[8], f_mxs[8], f_bad[8], f_ovs[8], f_ovt[8];
  _mm256_store_ps(f_ms, ms);
  _mm256_store_ps(f_mt, mt);
  _mm256_store_ps(f_mxs, mxs);
  _mm256_store_ps(f_bad, bad);
  _mm256_store_ps(f_ovs, ovs);
  _mm256_store_ps(f_ovt, ovt);

  // per row: errors, the hard term's cross-entropy, and the constants of pass 2
  alignas(32) float delta[8], kq[8], kp[8], kr[8], cs[8], ch[8];
  double ce[8];
  int label[8];
  bool active[8], hard[8];
  for (int j = 0; j < 8; ++j) {
    const int64_t r = g0 + (j < nl ? j : nl - 1);
    const int32_t y = a.labels ? a.labels[r] : 0;
    const bool ignored = a.labels && y == a.ignore_index;
    int err = kSmallOk;
    if (f_bad[j] != 0.0f) err = kSmallBad;
    else if (ignored) err = kSmallOk;
    else if (f_ovs[j] != 0.0f) err = kSmallOverflowS;
    else if (f_ovt[j] != 0.0f) err = kSmallOverflowT;
    else if (f_ms[j] == kNegInf) err = kSmallNoFiniteS;
    else if (f_mt[j] == kNegInf) err = kSmallNoFiniteT;
    active[j] = err == kSmallOk && !ignored;
    hard[j] = active[j] && a.labels && a.alpha < 1.0;
    label[j] = y;
    if (j < nl) a.error[r] = err;
    delta[j] = kq[j] = kp[j] = kr[j] = cs[j] = ch[j] = 0.0f;
    ce[j] = 0.0;
    if (!active[j]) continue;
    // as combine1 / chunk() do for a one-chunk row: prob_factor(m, m, sum) = 1 / sum
    delta[j] = static_cast<float>(lst[j] - lss[j]);
    kq[j] = static_cast<float>(1.0 / sums[j]);
    kp[j] = static_cast<float>(1.0 / sumt[j]);
    const double scale = a.scale[r];
    cs[j] = static_cast<float>(scale * a.w / a.temperature);
    if (hard[j]) {
      if (a.need_r) kr[j] = static_cast<float>(1.0 / sumr[j]);
      ch[j] = static_cast<float>(scale * (1.0 - a.alpha));
      // lse_r: the T = 1 normaliser (the tempered one when T = 1)
      const double lse_r = a.need_r ? double(f_mxs[j]) + lsr[j] : double(f_ms[j]) + lss[j];
      ce[j] = lse_r - double(a.s[r * C + y]);
    }
  }

  // pass 2: the divergence and the student gradient
  const __m256 vdelta = _mm256_load_ps(delta), vkq = _mm256_load_ps(kq), vkp = _mm256_load_ps(kp), vkr = _mm256_load_ps(kr);
  const __m256 vcs = _mm256_load_ps(cs), vch = _mm256_load_ps(ch);
  D8 div = d8_zero();
  for (int64_t c = 0; c < C; ++c) {
    const __m256 s = _mm256_load_ps(S + 8 * c), t = _mm256_load_ps(T + 8 * c);
    const __m256 as = _mm256_sub_ps(_mm256_mul_ps(s, inv_t), ms), at = _mm256_sub_ps(_mm256_mul_ps(t, inv_t), mt);
    const __m256 d = _mm256_sub_ps(_mm256_sub_ps(at, as), vdelta);
    const __m256 q = _mm256_mul_ps(_mm256_load_ps(ES + 8 * c), vkq);
    const __m256 p = _mm256_mul_ps(_mm256_load_ps(ET + 8 * c), vkp);
    div = d8_add(div, V::sel_pos(p, _mm256_mul_ps(p, d)));
    if (a.gs) {
      __m256 g = _mm256_mul_ps(vcs, _mm256_sub_ps(q, p));
      const __m256 r = a.need_r ? _mm256_mul_ps(_mm256_load_ps(ER + 8 * c), vkr) : q;
      g = _mm256_add_ps(g, _mm256_fmadd_ps(vch, r, _mm256_sub_ps(zero, zero)));  // ch r - ch eps / C, eps = 0
      _mm256_store_ps(G + 8 * c, g);
    }
  }
  alignas(32) double divs[8];
  d8_store(divs, div);

  for (int j = 0; j < nl; ++j) {
    const int64_t r = g0 + j;
    if (!active[j]) {
      a.loss[r] = 0.0;
      if (a.gs) std::memset(a.gs + r * C, 0, size_t(C) * sizeof(float));
      continue;
    }
    a.loss[r] = (a.w != 0.0 ? a.w * divs[j] : 0.0) + (hard[j] ? (1.0 - a.alpha) * ce[j] : 0.0);
    if (a.gs) {
      float* g = a.gs + r * C;
      for (int64_t c = 0; c < C; ++c) g[c] = G[8 * c + j];
      if (hard[j]) g[label[j]] -= ch[j];  // the one-hot part, as pass2 subtracts it (eps = 0)
    }
  }
}

}  // namespace

void distill_small_rows_avx2(const SmallRows& a) {
  for (int64_t g0 = a.r0; g0 < a.r1; g0 += 8) group(a, g0, int(a.r1 - g0 < 8 ? a.r1 - g0 : 8));
}

void log_f64_avx2(const double* x, double* y, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) _mm256_storeu_pd(y + i, dlog(_mm256_loadu_pd(x + i)));
  if (i < n) {
    double in[4] = {1.0, 1.0, 1.0, 1.0}, out[4];
    for (int64_t k = 0; k < n - i; ++k) in[k] = x[i + k];
    _mm256_storeu_pd(out, dlog(_mm256_loadu_pd(in)));
    for (int64_t k = 0; k < n - i; ++k) y[i + k] = out[k];
  }
}

}  // namespace kdfuse
