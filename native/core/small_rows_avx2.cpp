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
#include "kl_term.h"

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

// Lanes (rows) that break the range rule (kHalfRange in chunk_kernels_impl.h: every finite
// logit / T below 2^127 in magnitude), given each lane's maximum and minimum of the transposed
// [C][8] block X: the extremes decide, unless a -inf hides a lane's finite minimum; then every value.
inline __m256 range_breaks(__m256 mx, __m256 mn, const float* X, int64_t C, __m256 inv_t) {
  const __m256 lim = _mm256_set1_ps(0x1p127f), sign = _mm256_set1_ps(-0.0f);
  const auto out = [&](__m256 z) { return _mm256_cmp_ps(_mm256_andnot_ps(sign, z), lim, _CMP_GE_OQ); };
  __m256 hit = _mm256_or_ps(_mm256_andnot_ps(is_neg_inf(mx), out(_mm256_mul_ps(mx, inv_t))),
                            _mm256_andnot_ps(is_neg_inf(mn), out(_mm256_mul_ps(mn, inv_t))));
  const __m256 hidden = _mm256_andnot_ps(is_neg_inf(mx), is_neg_inf(mn));
  if (_mm256_movemask_ps(hidden) == 0) return hit;
  for (int64_t c = 0; c < C; ++c) {
    const __m256 x = _mm256_load_ps(X + 8 * c);
    hit = _mm256_or_ps(hit, _mm256_andnot_ps(is_inf(x), out(_mm256_mul_ps(x, inv_t))));  // NaN lanes are bad anyway
  }
  return hit;
}

// A group's rows g0 .. g0 + nl - 1 as lanes: the gather offset of each lane's row (a partial group
// repeats its last row in the spare lanes: read, never written back) and which lanes are rows.
struct GroupLanes {
  __m256i offsets, in_group;
  GroupLanes(int64_t cols, int nl) {
    alignas(32) int32_t offs[8];
    for (int j = 0; j < 8; ++j) offs[j] = int32_t((j < nl ? j : nl - 1) * cols);
    offsets = _mm256_load_si256(reinterpret_cast<const __m256i*>(offs));
    in_group = _mm256_cmpgt_epi32(_mm256_set1_epi32(nl), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
};

// The first error of each lane's row, as the chunked passes check in order: a later mark wins, so
// the checks are marked from the last to the first.
struct LaneErrors {
  __m256i code = _mm256_setzero_si256();
  void mark(__m256 where, int c) {
    code = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(code), _mm256_castsi256_ps(_mm256_set1_epi32(c)), where));
  }
  __m256i ok() const { return _mm256_cmpeq_epi32(code, _mm256_setzero_si256()); }
  // Stores the group's rows' codes at dst; whether any of them is an error.
  bool store(int* dst, const GroupLanes& g) const {
    _mm256_maskstore_epi32(dst, g.in_group, code);
    return _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_andnot_si256(ok(), g.in_group))) != 0;
  }
};

// Lane j of a transposed [cols][8] scratch array into a row of cols floats.
inline void copy_lane(const float* src, int j, int64_t cols, float* dst) {
  for (int64_t c = 0; c < cols; ++c) dst[c] = src[8 * c + j];
}

// one group: rows g0 .. g0 + nl - 1 (nl <= 8)
// returns whether any row of the group has an error
bool group(const SmallRows& a, int64_t g0, int nl) {
  const int64_t C = a.cols;
  float* const S = a.scratch;   // [C][8] student logits, transposed
  float* const T = S + 8 * C;   // teacher logits
  float* const ES = T + 8 * C;  // e of s/T, t/T and s (T = 1)
  float* const ET = ES + 8 * C;
  float* const ER = ET + 8 * C;
  float* const G = ER + 8 * C;  // the student gradient, transposed
  const float kNegInf = -__builtin_inff();

  const GroupLanes lanes(C, nl);
  const float* s0 = a.s + g0 * C;
  const float* t0 = a.t + g0 * C;

  // pass 1: maxima and the bad-value check
  __m256 mxs = _mm256_set1_ps(kNegInf), mxt = mxs, mns = _mm256_set1_ps(-kNegInf), mnt = mns, bad = _mm256_setzero_ps();
  for (int64_t c = 0; c < C; ++c) {
    const __m256 s = _mm256_i32gather_ps(s0 + c, lanes.offsets, 4), t = _mm256_i32gather_ps(t0 + c, lanes.offsets, 4);
    _mm256_store_ps(S + 8 * c, s);
    _mm256_store_ps(T + 8 * c, t);
    mxs = _mm256_max_ps(mxs, s);
    mxt = _mm256_max_ps(mxt, t);
    mns = _mm256_min_ps(mns, s);
    mnt = _mm256_min_ps(mnt, t);
    bad = _mm256_or_ps(bad, _mm256_cmp_ps(s, t, _CMP_UNORD_Q));  // a NaN in either
  }
  // +Infinity: the maximum holds it (a NaN may hide it there, but that row is bad already)
  const __m256 pinf = _mm256_set1_ps(__builtin_inff());
  bad = _mm256_or_ps(bad, _mm256_or_ps(_mm256_cmp_ps(mxs, pinf, _CMP_EQ_OQ), _mm256_cmp_ps(mxt, pinf, _CMP_EQ_OQ)));
  const __m256 inv_t = _mm256_set1_ps(a.inv_t);
  const __m256 ms = _mm256_mul_ps(mxs, inv_t), mt = _mm256_mul_ps(mxt, inv_t);
  // a finite maximum that 1/T carries out of float32 (as distill_pass1_impl)
  const __m256 ovs = range_breaks(mxs, mns, S, C, inv_t), ovt = range_breaks(mxt, mnt, T, C, inv_t);
  const __m256 zero = _mm256_setzero_ps();
  const __m256 nms = _mm256_blendv_ps(_mm256_sub_ps(zero, ms), zero, is_neg_inf(ms));
  const __m256 nmt = _mm256_blendv_ps(_mm256_sub_ps(zero, mt), zero, is_neg_inf(mt));
  const __m256 vmr = _mm256_blendv_ps(mxs, zero, is_neg_inf(mxs));
  for (int64_t c = 0; c < C; ++c) {
    const __m256 s = _mm256_load_ps(S + 8 * c), t = _mm256_load_ps(T + 8 * c);
    const __m256 es = V::exp_nonpos(_mm256_add_ps(_mm256_mul_ps(s, inv_t), nms));
    _mm256_store_ps(ES + 8 * c, es);
    _mm256_store_ps(ET + 8 * c, V::exp_nonpos(_mm256_add_ps(_mm256_mul_ps(t, inv_t), nmt)));
    if (a.need_r) _mm256_store_ps(ER + 8 * c, a.pow_r ? V::pow_small(es, a.pow_r) : V::exp_nonpos(_mm256_sub_ps(s, vmr)));
  }
  // the row sums in float64, each column converted as it is (as the chunked pass 1)
  D8 ss = d8_zero(), st = d8_zero(), sr = d8_zero();
  for (int64_t c2 = 0; c2 < C; ++c2) {
    ss = d8_add(ss, _mm256_load_ps(ES + 8 * c2));
    st = d8_add(st, _mm256_load_ps(ET + 8 * c2));
    if (a.need_r) sr = d8_add(sr, _mm256_load_ps(ER + 8 * c2));
  }

  // row statistics and per-row constants, eight rows at once (float64 where the chunked passes
  // use it); lanes past the group's end are computed and never stored
  const __m256i y = a.labels ? _mm256_maskload_epi32(a.labels + g0, lanes.in_group) : _mm256_setzero_si256();
  const __m256 ignored = a.labels ? _mm256_castsi256_ps(_mm256_cmpeq_epi32(y, _mm256_set1_epi32(a.ignore_index))) : zero;
  LaneErrors err;
  err.mark(is_neg_inf(mt), kRowNoFiniteTeacher);
  err.mark(is_neg_inf(ms), kRowNoFiniteStudent);
  err.mark(ovt, kRowOverflowTeacher);
  err.mark(ovs, kRowOverflowStudent);
  err.mark(ignored, kRowOk);
  err.mark(bad, kRowBadValue);
  const bool any_error = err.store(a.error + g0, lanes);
  const __m256 active = _mm256_andnot_ps(ignored, _mm256_castsi256_ps(err.ok()));
  const __m256 hard = a.labels && a.alpha < 1.0 ? active : zero;
  const auto to_f = [](__m256d lo, __m256d hi) { return _mm256_set_m128(_mm256_cvtpd_ps(hi), _mm256_cvtpd_ps(lo)); };
  const auto lo_of = [](__m256 v) { return _mm256_cvtps_pd(_mm256_castps256_ps128(v)); };
  const auto hi_of = [](__m256 v) { return _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)); };
  const __m256d one = _mm256_set1_pd(1.0);
  // delta = log(sum t) - log(sum s), taken as one log of the ratio (the chunked passes take two
  // logs; the two agree to float64 rounding, far below the float32 delta)
  const D8 ratio = {_mm256_div_pd(st.lo, ss.lo), _mm256_div_pd(st.hi, ss.hi)};
  const D8 ls_ts = d8_log(ratio);
  const __m256 vdelta = _mm256_and_ps(active, to_f(ls_ts.lo, ls_ts.hi));
  // as combine1 / chunk() do for a one-chunk row: prob_factor(m, m, sum) = 1 / sum
  const __m256 vkq = _mm256_and_ps(active, to_f(_mm256_div_pd(one, ss.lo), _mm256_div_pd(one, ss.hi)));
  const __m256 vkp = _mm256_and_ps(active, to_f(_mm256_div_pd(one, st.lo), _mm256_div_pd(one, st.hi)));
  const __m256 scale = a.scale ? _mm256_maskload_ps(a.scale + g0, lanes.in_group) : _mm256_set1_ps(a.scale_all);
  const __m256d w_t = _mm256_set1_pd(a.w), temp = _mm256_set1_pd(a.temperature), hard_w = _mm256_set1_pd(1.0 - a.alpha);
  const __m256 vcs = _mm256_and_ps(active, to_f(_mm256_div_pd(_mm256_mul_pd(lo_of(scale), w_t), temp),
                                                _mm256_div_pd(_mm256_mul_pd(hi_of(scale), w_t), temp)));
  const __m256 vch = _mm256_and_ps(hard, to_f(_mm256_mul_pd(lo_of(scale), hard_w), _mm256_mul_pd(hi_of(scale), hard_w)));
  // the hard term's cross-entropy: lse_r - s_y, lse_r the T = 1 normaliser (the tempered one at T = 1)
  D8 ce = d8_zero();
  __m256 vkr = zero;
  if (a.labels && a.alpha < 1.0) {  // no hard term, no cross-entropy and no log for it
    D8 lse_r;
    if (a.need_r) {
      const D8 ls_r = d8_log(sr);
      lse_r = {_mm256_add_pd(lo_of(mxs), ls_r.lo), _mm256_add_pd(hi_of(mxs), ls_r.hi)};
      vkr = _mm256_and_ps(hard, to_f(_mm256_div_pd(one, sr.lo), _mm256_div_pd(one, sr.hi)));
    } else {
      const D8 ls_s = d8_log(ss);
      lse_r = {_mm256_add_pd(lo_of(ms), ls_s.lo), _mm256_add_pd(hi_of(ms), ls_s.hi)};
    }
    const __m256i y_at = _mm256_add_epi32(lanes.offsets, _mm256_and_si256(y, _mm256_castps_si256(hard)));  // in range where hard
    const __m256 s_y = _mm256_mask_i32gather_ps(zero, s0, y_at, hard, 4);
    ce = {_mm256_sub_pd(lse_r.lo, lo_of(s_y)), _mm256_sub_pd(lse_r.hi, hi_of(s_y))};
  }

  // pass 2: the divergence and the student gradient
  D8 div = d8_zero(), s1 = d8_zero();  // s1: sum q expm1(d), for kl_delta_corrected (kl_term.h)
  __m256 pending = zero;  // the divergence terms (each >= 0) are summed two columns in float32 first
  for (int64_t c = 0; c < C; ++c) {
    const __m256 s = _mm256_load_ps(S + 8 * c), t = _mm256_load_ps(T + 8 * c);
    const __m256 as = _mm256_sub_ps(_mm256_mul_ps(s, inv_t), ms), at = _mm256_sub_ps(_mm256_mul_ps(t, inv_t), mt);
    const __m256 d = _mm256_sub_ps(_mm256_sub_ps(at, as), vdelta);
    const __m256 q = _mm256_mul_ps(_mm256_load_ps(ES + 8 * c), vkq);
    const __m256 p = _mm256_mul_ps(_mm256_load_ps(ET + 8 * c), vkp);
    __m256 term, q_minus_p;
    kl_term<V>(q, p, d, &term, &q_minus_p);  // as the chunked pass 2
    const __m256 pd = V::inf_if_only_first(at, as, term);
    if (c & 1) div = d8_add(div, _mm256_add_ps(pending, pd));
    else if (c + 1 == C) div = d8_add(div, pd);
    else pending = pd;
    s1 = d8_add(s1, _mm256_sub_ps(support_mismatch<V>(at, as), q_minus_p));  // (F19)
    if (a.gs) {
      __m256 g = _mm256_mul_ps(vcs, q_minus_p);
      const __m256 r = a.need_r ? _mm256_mul_ps(_mm256_load_ps(ER + 8 * c), vkr) : q;
      g = _mm256_add_ps(g, _mm256_fmadd_ps(vch, r, _mm256_sub_ps(zero, zero)));  // ch r - ch eps / C, eps = 0
      _mm256_store_ps(G + 8 * c, g);
    }
  }
  // each row's loss: w div + (1 - alpha) ce, each term only where it is present (w = 0 adds no NaN)
  const __m256d w_div = _mm256_set1_pd(a.w);
  const auto row_loss = [&](__m256d d, __m256d c, __m256 act, __m256 hrd, bool hi) {
    const __m256d act_d = _mm256_castsi256_pd(_mm256_cvtepi32_epi64(hi ? _mm256_extracti128_si256(_mm256_castps_si256(act), 1)
                                                                      : _mm256_castsi256_si128(_mm256_castps_si256(act))));
    const __m256d hrd_d = _mm256_castsi256_pd(_mm256_cvtepi32_epi64(hi ? _mm256_extracti128_si256(_mm256_castps_si256(hrd), 1)
                                                                      : _mm256_castsi256_si128(_mm256_castps_si256(hrd))));
    const __m256d soft = a.w != 0.0 ? _mm256_and_pd(act_d, _mm256_mul_pd(w_div, d)) : _mm256_setzero_pd();
    return _mm256_add_pd(soft, _mm256_and_pd(hrd_d, _mm256_mul_pd(hard_w, c)));
  };
  {  // each lane's divergence at the exact log-sum difference, as combine2 does for chunked rows
    alignas(32) double dv[8], sv[8];
    d8_store(dv, div);
    d8_store(sv, s1);
    for (int j = 0; j < 8; ++j) dv[j] = kl_delta_corrected(dv[j], sv[j]);
    div = {_mm256_load_pd(dv), _mm256_load_pd(dv + 4)};
  }
  alignas(32) double loss[8];
  _mm256_store_pd(loss, row_loss(div.lo, ce.lo, active, hard, false));
  _mm256_store_pd(loss + 4, row_loss(div.hi, ce.hi, active, hard, true));
  alignas(32) float f_active[8], f_hard[8], f_ch[8];
  alignas(32) int32_t labels[8];
  _mm256_store_ps(f_active, active);
  _mm256_store_ps(f_hard, hard);
  _mm256_store_ps(f_ch, vch);
  _mm256_store_si256(reinterpret_cast<__m256i*>(labels), y);

  for (int j = 0; j < nl; ++j) {
    const int64_t r = g0 + j;
    a.loss[r] = loss[j];
    if (!a.gs) continue;
    float* g = a.gs + r * C;
    if (f_active[j] == 0.0f) {
      std::memset(g, 0, size_t(C) * sizeof(float));
      continue;
    }
    copy_lane(G, j, C, g);
    if (f_hard[j] != 0.0f) g[labels[j]] -= f_ch[j];  // the one-hot part, as pass2 subtracts it (eps = 0)
  }
  return any_error;
}

}  // namespace

// Runs group(a, g0, rows in the group) over a's rows; whether any group had an error row.
template <class Args, class Group>
bool for_groups(const Args& a, Group group_fn) {
  bool any_error = false;
  for (int64_t g0 = a.r0; g0 < a.r1; g0 += 8) any_error |= group_fn(a, g0, int(a.r1 - g0 < 8 ? a.r1 - g0 : 8));
  return any_error;
}

bool distill_small_rows_avx2(const SmallRows& a) { return for_groups(a, group); }

namespace {

// one group of softmax rows g0 .. g0 + nl - 1, as softmax_pass1 / combine / softmax_pass2 do a row
bool softmax_group(const SmallSoftmaxRows& a, int64_t g0, int nl) {
  const int64_t C = a.cols;
  float* const X = a.scratch;  // [C][8] the logits, transposed
  float* const Y = X + 8 * C;  // the output, transposed
  const float kNegInf = -__builtin_inff();
  const GroupLanes lanes(C, nl);
  const float* x0 = a.x + g0 * C;
  __m256 mx = _mm256_set1_ps(kNegInf), mn = _mm256_set1_ps(-kNegInf), bad = _mm256_setzero_ps();
  for (int64_t c = 0; c < C; ++c) {
    const __m256 x = _mm256_i32gather_ps(x0 + c, lanes.offsets, 4);
    _mm256_store_ps(X + 8 * c, x);
    mx = _mm256_max_ps(mx, x);
    mn = _mm256_min_ps(mn, x);
    bad = _mm256_or_ps(bad, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
  }
  bad = _mm256_or_ps(bad, _mm256_cmp_ps(mx, _mm256_set1_ps(__builtin_inff()), _CMP_EQ_OQ));
  const __m256 inv_t = _mm256_set1_ps(a.inv_t), zero = _mm256_setzero_ps();
  const __m256 mz = _mm256_mul_ps(mx, inv_t);
  const __m256 nm = _mm256_blendv_ps(_mm256_sub_ps(zero, mz), zero, is_neg_inf(mz));
  D8 sum = d8_zero();
  for (int64_t c = 0; c < C; ++c)
    sum = d8_add(sum, V::exp_nonpos(_mm256_add_ps(_mm256_mul_ps(_mm256_load_ps(X + 8 * c), inv_t), nm)));
  // softmax.cpp's order: a bad value, an overflow at 1/T, no finite logit
  LaneErrors err;
  err.mark(is_neg_inf(mz), kSoftmaxNoFinite);
  err.mark(range_breaks(mx, mn, X, C, inv_t), kSoftmaxOverflow);
  err.mark(bad, kSoftmaxBadValue);
  const bool any_error = err.store(a.error + g0, lanes);
  const D8 ls = d8_log(sum);
  const __m256 lse = _mm256_set_m128(_mm256_cvtpd_ps(ls.hi), _mm256_cvtpd_ps(ls.lo));
  for (int64_t c = 0; c < C; ++c) {
    const __m256 z = _mm256_sub_ps(_mm256_sub_ps(_mm256_mul_ps(_mm256_load_ps(X + 8 * c), inv_t), mz), lse);
    _mm256_store_ps(Y + 8 * c, a.log ? z : V::exp_nonpos(z));
  }
  alignas(32) int32_t row_ok[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(row_ok), err.ok());
  for (int j = 0; j < nl; ++j)
    if (row_ok[j]) copy_lane(Y, j, C, a.y + (g0 + j) * C);  // an error row: the caller fills the output with NaN
  return any_error;
}

}  // namespace

bool softmax_small_rows_avx2(const SmallSoftmaxRows& a) { return for_groups(a, softmax_group); }

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
