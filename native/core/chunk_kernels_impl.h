// The chunk loops, written once over a lane type V (VScalar or VAvx2). Included by exactly one
// translation unit per instruction set, inside a namespace of its own, and nothing here calls
// into the C++ standard library's inline code, so no ISA-specific copy of it can be shared.
//
// Masked tail lanes are loaded as -inf (exp gives 0, max is unaffected) or as 0 for plain sums,
// and every product with a probability goes through sel_pos so 0 * (+-inf) never becomes NaN.
#pragma once
#include "chunk_kernels.h"
#include "kdfuse_core.h"
#include "kl_term.h"

namespace kdfuse {
namespace {  // internal linkage: each ISA translation unit gets its own copy

constexpr float kNegInf = -__builtin_inff();

alignas(32) constexpr float kOnes[8] = {1, 1, 1, 1, 1, 1, 1, 1};

inline bool is_neg_inf(float x) { return x == kNegInf; }

// Calls f(offset, lanes) for every vector of [0, n); only the last may be partial.
template <class V, class F>
inline void for_each_vec(int64_t n, F&& f) {
  int64_t i = 0;
  for (; i + V::W <= n; i += V::W) f(i, V::W);
  if (i < n) f(i, static_cast<int>(n - i));
}

// The range rule of every backend: each finite logit / T must be below 2^127 in magnitude (at most
// half of float32's largest value), so that a difference of two, z - max z, stays finite too. A
// rule on the row maximum alone let a logit of -3.4e38 at T = 0.05 become -Infinity (fuzzing
// finding F9), and one on each z alone let z - max overflow (F12): a finite log-probability was
// then taken for -Infinity and the loss came out Infinity where the exact loss is finite.
constexpr float kHalfRange = 0x1p127f;

// A gradient vector as stored (m lanes): its non-finite lanes into `flag`. Passes 2 and 3 report
// them (kGradNotFinite) so that the scheduler can redo the row at a smaller scale (distill_loss.cpp,
// DistillRun::rescaled_row); the lanes past a tail hold padding and are read back from memory.
template <class V>
inline typename V::R nonfinite_stored(typename V::R flag, typename V::R g, const float* at, int m) {
  const typename V::R inf = V::set1(__builtin_inff());
  return V::or_(flag, V::not_abs_lt(m == V::W ? g : V::loadn(at, m, 0.0f), inf));
}

// Pass 1 screens each chunk for bad values and for the range rule with one compare per vector: a
// lane is flagged when |x| is not below 2^126 * T (NaN and +-inf included). Every value breaking
// the rule is flagged (|x / T| >= 2^127 needs |x| > 2^126 T even after rounding), so an unflagged
// chunk is fine; a flagged one (a -inf logit, a huge one, a bad value) is classified exactly.
inline float screen_bound(float inv_t) { return 0x1p126f / inv_t; }

// Tail lanes are screened as 0 (the max loop's -inf fill would flag every partial vector).
template <class V>
inline typename V::R screen(typename V::R flag, typename V::R x, const float* p, int m, typename V::R bound) {
  return V::or_(flag, V::not_abs_lt(m == V::W ? x : V::loadn(p, m, 0.0f), bound));
}

// A flagged chunk: 1 if it holds a NaN or +inf, else 2 if a finite value breaks the range rule,
// else 0 (the flag came from -inf logits or large values the rule allows). The chunk is in L1.
template <class V>
inline int classify_flagged(const float* x, int64_t n, float inv_t) {
  using R = typename V::R;
  const float inf = -kNegInf;
  const R vt = V::set1(inv_t);
  R bad = V::zero(), range = V::zero();
  for_each_vec<V>(n, [&](int64_t i, int m) {
    const R v = V::loadn(x + i, m, 0.0f);
    bad = V::or_(bad, V::bad(v));
    // finite lanes whose z is not below 2^127 in magnitude
    range = V::or_(range, V::select(V::abs_lt(V::mul(v, vt), kHalfRange), V::zero(), V::abs_lt(v, inf)));
  });
  return V::any(bad) ? 1 : V::any(range) ? 2 : 0;
}

// ---------------------------------------------------------------- distillation loss

// exp(x / T - m) as pass 1 computes it (nm = -m, or 0 for an all -inf chunk); passes 2 and 3
// recompute it with these same instructions when pass 1 did not store it.
template <class V>
inline typename V::R exp_shifted(typename V::R x, typename V::R inv_t, typename V::R nm) {
  return V::exp_nonpos(V::add(V::mul(x, inv_t), nm));
}
inline float neg_or_zero(float m) { return m == -__builtin_inff() ? 0.0f : -m; }

// The chunk's stored or recomputed exponentials of s/T, t/T and s (T = 1) at offset i.
template <class V>
struct ChunkExp {
  const DistillChunk& c;
  typename V::R inv_t, nms, nmt, mr;
  explicit ChunkExp(const DistillChunk& ch)
      : c(ch), inv_t(V::set1(ch.inv_t)), nms(V::set1(neg_or_zero(ch.cm_s))), nmt(V::set1(neg_or_zero(ch.cm_t))),
        mr(V::set1(ch.cm_r == -__builtin_inff() ? 0.0f : ch.cm_r)) {}
  typename V::R s(int64_t i, typename V::R x) const {
    return c.e_stored ? V::load(c.es + i) : exp_shifted<V>(x, inv_t, nms);
  }
  typename V::R t(int64_t i, typename V::R x) const {
    return c.e_stored ? V::load(c.et + i) : exp_shifted<V>(x, inv_t, nmt);
  }
  // es: this lane's e_s, as s() gave it (e_r is its power when pow_r is set)
  typename V::R r(int64_t i, typename V::R x, typename V::R es) const {
    if (c.pow_r) return V::pow_small(es, c.pow_r);
    return c.e_stored ? V::load(c.er + i) : V::exp_nonpos(V::sub(x, mr));
  }
};

// PowR: 0, or 2 / 4 when e_r is e_s squared / to the fourth (DistillChunk::pow_r).
template <class V, bool NeedR, bool NeedSum, int PowR>
void distill_pass1_impl(const DistillChunk& c, ChunkStats* out) {
  using R = typename V::R;
  const R bound = V::set1(screen_bound(c.inv_t));
  R maxs = V::set1(kNegInf), maxt = V::set1(kNegInf), flag = V::zero();
  for_each_vec<V>(c.n, [&](int64_t i, int m) {
    const R s = V::loadn(c.s + i, m, kNegInf);
    const R t = V::loadn(c.t + i, m, kNegInf);
    maxs = V::max(maxs, s);
    maxt = V::max(maxt, t);
    flag = screen<V>(screen<V>(flag, s, c.s + i, m, bound), t, c.t + i, m, bound);
  });
  out->bad = 0;
  if (V::any(flag)) {
    // a bad value in either input (1) before a logit that 1/T carries out of the range rule's bounds
    // (2: student, 3: teacher; a finite maximum out of float32 would turn every exponential of the
    // row into inf - inf = NaN), reported as a temperature error
    const int ks = classify_flagged<V>(c.s, c.n, c.inv_t), kt = classify_flagged<V>(c.t, c.n, c.inv_t);
    out->bad = (ks == 1 || kt == 1) ? 1 : ks == 2 ? 2 : kt == 2 ? 3 : 0;
    if (out->bad) return;
  }
  const float max_s = V::hmax(maxs), max_t = V::hmax(maxt);
  const float ms = max_s * c.inv_t, mt = max_t * c.inv_t;
  // an all -inf chunk sums to exactly 0 against any finite reference
  const R nms = V::set1(is_neg_inf(ms) ? 0.0f : -ms);
  const R nmt = V::set1(is_neg_inf(mt) ? 0.0f : -mt);
  const R vmr = V::set1(is_neg_inf(max_s) ? 0.0f : max_s);
  const R inv_t = V::set1(c.inv_t);
  // The exponentials go to memory first (the caller's scratch row, or this chunk's buffer on the
  // stack) and are summed by a second loop over that L1-resident copy. One fused loop held three
  // float64 accumulators beside the exp constants, more than the 16 vector registers: the
  // accumulators were spilled and every add waited on a store-to-load round trip.
  alignas(32) float local[3][kChunk];
  float* const es_out = c.es ? c.es : local[0];
  float* const et_out = c.es ? c.et : local[1];
  float* const er_out = c.es ? c.er : local[2];
  for_each_vec<V>(c.n, [&](int64_t i, int m) {
    // The next chunk (of this row, or the next row's first) is fetched from memory while this one
    // computes exponentials: the loads of its max loop then hit the cache. A prefetch past the
    // end of the arrays is a hint, never a fault.
    if (i % 16 == 0) {
      __builtin_prefetch(c.s + i + kChunk);
      __builtin_prefetch(c.t + i + kChunk);
    }
    const R s = V::loadn(c.s + i, m, kNegInf);
    const R t = V::loadn(c.t + i, m, kNegInf);
    // whole vectors: the lanes past the chunk's end hold exp(-inf) = 0 and land in padding
    V::store(es_out + i, exp_shifted<V>(s, inv_t, nms));
    V::store(et_out + i, exp_shifted<V>(t, inv_t, nmt));
    if (NeedR && PowR == 0) V::store(er_out + i, V::exp_nonpos(V::sub(s, vmr)));
  });
  // Sums of exponentials are accumulated in float64, each exponential converted as it is: their
  // rounding sets the accuracy of the log-normalisers, and through delta = ls_t - ls_s of every
  // log-ratio. (Adding two exponentials in float32 first, to halve the conversions, lost a
  // probability below 2^-24 of the row's largest one: on near one-hot rows that was all of delta.)
  typename V::D ss = V::dzero(), st = V::dzero(), sr = V::dzero(), sum = V::dzero();
  const auto er_at = [&](int64_t i) { return PowR ? V::pow_small(V::load(es_out + i), PowR) : V::load(er_out + i); };
  const int64_t padded = (c.n + V::W - 1) / V::W * V::W;  // the e arrays hold whole vectors
  for (int64_t i = 0; i < padded; i += V::W) {
    ss = V::dadd(ss, V::load(es_out + i));
    st = V::dadd(st, V::load(et_out + i));
    if (NeedR) sr = V::dadd(sr, er_at(i));
  }
  if (NeedSum) for_each_vec<V>(c.n, [&](int64_t j, int m) { sum = V::dadd(sum, V::loadn(c.s + j, m, 0.0f)); });
  out->v[0] = ms;
  out->v[1] = V::dsum(ss);
  out->v[2] = mt;
  out->v[3] = V::dsum(st);
  out->v[4] = max_s;
  out->v[5] = NeedR ? V::dsum(sr) : 0.0;
  out->v[6] = NeedSum ? V::dsum(sum) : 0.0;
  out->v[7] = 0.0;
}

template <class V, bool NeedSum>
void distill_pass1_sum(const DistillChunk& c, ChunkStats* out) {
  if (!c.need_r) distill_pass1_impl<V, false, NeedSum, 0>(c, out);
  else if (c.pow_r == 2) distill_pass1_impl<V, true, NeedSum, 2>(c, out);
  else if (c.pow_r == 4) distill_pass1_impl<V, true, NeedSum, 4>(c, out);
  else distill_pass1_impl<V, true, NeedSum, 0>(c, out);
}

template <class V>
void distill_pass1(const DistillChunk& c, ChunkStats* out) {
  if (c.need_sum_s) distill_pass1_sum<V, true>(c, out);
  else distill_pass1_sum<V, false>(c, out);
}

// Hard-label gradient (without the one-hot part, which the scheduler subtracts at the label):
// ch * r - ch * eps / C.
template <class V, int Hard>
inline typename V::R hard_grad(typename V::R q, typename V::R r, typename V::R vch, typename V::R vchs) {
  return V::fma(vch, Hard == 1 ? q : r, V::sub(V::zero(), vchs));
}

// Hard: 0 no hard term, 1 hard term with r = q (T == 1), 2 hard term with its own normaliser.
template <class V, int Div, int Hard>
void distill_pass2_impl(const DistillChunk& c, ChunkStats* out) {
  using R = typename V::R;
  const R inv_t = V::set1(c.inv_t);
  const R vms = V::set1(c.mx_s), vmt = V::set1(c.mx_t), vls_s = V::set1(c.ls_s), vls_t = V::set1(c.ls_t);
  const R vkq = V::set1(c.kq), vkp = V::set1(c.kp), vkr = V::set1(c.kr);
  const ChunkExp<V> e(c);
  const R vdelta = V::set1(c.delta);
  const R vcs = V::set1(c.cs), vct = V::set1(c.ct), vch = V::set1(c.ch), vchs = V::set1(c.ch_smooth);
  const R vbeta = V::set1(c.beta), vbeta1 = V::set1(1.0f - c.beta);
  const bool use_p_term = c.beta > 0.0f, use_q_term = c.beta < 1.0f;  // JSD: skip a zero-weight term
  typename V::D acc0 = V::dzero(), acc1 = V::dzero(), acc2 = V::dzero(), acc3 = V::dzero();
  R nonfinite = V::zero();
  for_each_vec<V>(c.n, [&](int64_t i, int m) {
    if (i % 16 == 0) {  // the next chunk's gradient lines, fetched for writing ahead of the stores
      if (c.gs) __builtin_prefetch(c.gs + i + kChunk, 1);
      if (c.gt) __builtin_prefetch(c.gt + i + kChunk, 1);
    }
    const R s = V::loadn(c.s + i, m, kNegInf);
    const R t = V::loadn(c.t + i, m, kNegInf);
    // s/T rounded as in pass 1, then shifted (not fused), so a row's maximum maps to the same value
    const R as = V::sub(V::mul(s, inv_t), vms), at = V::sub(V::mul(t, inv_t), vmt);  // z - max
    const R ls = V::sub(as, vls_s);  // log q
    const R lt = V::sub(at, vls_t);  // log p
    // JSD keeps p and q in their exp(log p) form: its per-element log(m) must see the same values
    // as the log-probabilities it is subtracted from, or near-equal terms stop cancelling.
    const R es = e.s(i, s);
    const R q = Div == 2 ? V::exp_nonpos(ls) : V::mul(es, vkq);
    const R p = Div == 2 ? V::exp_nonpos(lt) : V::mul(e.t(i, t), vkp);
    R gs = V::zero(), gt = V::zero();
    if (Div == 0) {  // KL(p || q); log p - log q formed from (t - s) so it keeps its precision when p ~ q
      const R d = V::sub(V::sub(at, as), vdelta);
      R term, q_minus_p;
      kl_term<V>(q, p, d, &term, &q_minus_p);
      // decided by the log-probabilities: a teacher probability that underflowed float32 is still > 0
      acc0 = V::dadd(acc0, V::inf_if_only_first(at, as, term));
      acc1 = V::dadd(acc1, V::sub(support_mismatch<V>(at, as), q_minus_p));  // sum q expm1(d), for kl_delta_corrected
      if (c.gs) gs = V::mul(vcs, q_minus_p);
      if (c.gt && c.ct != 0.0f) gt = V::mul(vct, V::sel_pos(p, V::mul(p, d)));
    } else if (Div == 1) {  // KL(q || p)
      const R d = V::add(V::sub(as, at), vdelta);
      R term, p_minus_q;
      kl_term<V>(p, q, d, &term, &p_minus_q);
      acc0 = V::dadd(acc0, V::inf_if_only_first(as, at, term));
      acc1 = V::dadd(acc1, V::sub(support_mismatch<V>(at, as), p_minus_q));  // sum p expm1(d), for kl_delta_corrected
      if (c.gs && c.cs != 0.0f) gs = V::mul(vcs, V::sel_pos(q, V::mul(q, d)));
      if (c.gt) gt = V::mul(vct, p_minus_q);
    } else {  // JSD: beta KL(p || m) + (1 - beta) KL(q || m)
      // each KL(. || m) as sum m f(x) (kl_term.h), its log-ratios x from d = log p - log q
      R xpm, xqm, term, unused;
      const R d = V::sub(V::sub(at, as), vdelta);
      jsd_logs<V>(d, c.beta, vbeta, vbeta1, &xpm, &xqm);
      // for jsd_delta_corrected: sum q d, and sum q expm1(d) where every |d| < 1/2 (else infinite)
      acc2 = V::dadd(acc2, V::sel_pos(q, V::mul(q, d)));
      acc3 = V::dadd(acc3, V::add(support_mismatch<V>(at, as),
                                  V::select(V::abs_lt(d, kSmallX), V::mul(q, V::fma(V::mul(d, d), expm1_g<V>(d), d)),
                                            V::sel_pos(q, V::set1(__builtin_inff())))));
      const R mix = V::fma(vbeta, p, V::mul(vbeta1, q));
      if (use_p_term) {
        kl_term<V>(mix, p, xpm, &term, &unused);
        acc0 = V::dadd(acc0, term);
        if (c.gt) gt = V::mul(V::mul(vct, vbeta), V::sel_pos(p, V::mul(p, xpm)));
      }
      if (use_q_term) {
        kl_term<V>(mix, q, xqm, &term, &unused);
        acc1 = V::dadd(acc1, term);
        if (c.gs) gs = V::mul(V::mul(vcs, vbeta1), V::sel_pos(q, V::mul(q, xqm)));
      }
    }
    if (c.gs) {
      if (Hard) gs = V::add(gs, hard_grad<V, Hard>(q, Hard == 2 ? V::mul(e.r(i, s, es), vkr) : q, vch, vchs));
      V::storen(c.gs + i, gs, m);
      nonfinite = nonfinite_stored<V>(nonfinite, gs, c.gs + i, m);
    }
    if (c.gt) {
      V::storen(c.gt + i, gt, m);
      nonfinite = nonfinite_stored<V>(nonfinite, gt, c.gt + i, m);
    }
  });
  out->bad = V::any(nonfinite) ? kGradNotFinite : 0;
  out->v[6] = V::dsum(acc0);
  out->v[7] = V::dsum(acc1);
  out->v[8] = Div == 2 ? V::dsum(acc2) : 0.0;
  out->v[9] = Div == 2 ? V::dsum(acc3) : 0.0;
}

template <class V, int Div>
void distill_pass2_div(const DistillChunk& c, ChunkStats* out) {
  if (!c.hard) distill_pass2_impl<V, Div, 0>(c, out);
  else if (!c.need_r) distill_pass2_impl<V, Div, 1>(c, out);
  else distill_pass2_impl<V, Div, 2>(c, out);
}

template <class V>
void distill_pass2(const DistillChunk& c, ChunkStats* out) {
  switch (c.divergence) {
    case 0: distill_pass2_div<V, 0>(c, out); break;
    case 1: distill_pass2_div<V, 1>(c, out); break;
    default: distill_pass2_div<V, 2>(c, out); break;
  }
}

template <class V>
int distill_pass3(const DistillChunk& c) {
  using R = typename V::R;
  const R ks = V::set1(c.ks), kt = V::set1(c.kt), vkq = V::set1(c.kq), vkp = V::set1(c.kp);
  const ChunkExp<V> e(c);
  R nonfinite = V::zero();
  const auto apply = [&](float* g, R k, R x, int64_t i, int m) {
    const R v = V::fnma(k, x, V::loadn(g + i, m, 0.0f));
    V::storen(g + i, v, m);
    nonfinite = nonfinite_stored<V>(nonfinite, v, g + i, m);
  };
  if (c.divergence == 2) {  // JSD: the probabilities as pass 2 formed them
    const R inv_t = V::set1(c.inv_t);
    const R vms = V::set1(c.mx_s), vmt = V::set1(c.mx_t), vls_s = V::set1(c.ls_s), vls_t = V::set1(c.ls_t);
    for_each_vec<V>(c.n, [&](int64_t i, int m) {
      if (c.gs) {
        const R q = V::exp_nonpos(V::sub(V::sub(V::mul(V::loadn(c.s + i, m, kNegInf), inv_t), vms), vls_s));
        apply(c.gs, ks, q, i, m);
      }
      if (c.gt) {
        const R p = V::exp_nonpos(V::sub(V::sub(V::mul(V::loadn(c.t + i, m, kNegInf), inv_t), vmt), vls_t));
        apply(c.gt, kt, p, i, m);
      }
    });
    return V::any(nonfinite) ? kGradNotFinite : 0;
  }
  for_each_vec<V>(c.n, [&](int64_t i, int m) {
    if (c.gs) {
      const R q = V::mul(e.s(i, c.e_stored ? V::zero() : V::loadn(c.s + i, m, kNegInf)), vkq);
      apply(c.gs, ks, q, i, m);
    }
    if (c.gt) {
      const R p = V::mul(e.t(i, c.e_stored ? V::zero() : V::loadn(c.t + i, m, kNegInf)), vkp);
      apply(c.gt, kt, p, i, m);
    }
  });
  return V::any(nonfinite) ? kGradNotFinite : 0;
}

// ---------------------------------------------------------------- top-k loss (student side)

template <class V, bool NeedR, bool NeedSum, bool NeedEz, int PowR>
void topk_pass1_impl(const TopkChunk& c, ChunkStats* out) {
  using R = typename V::R;
  const R bound = V::set1(screen_bound(c.inv_t));
  R maxs = V::set1(kNegInf), flag = V::zero();
  for_each_vec<V>(c.n, [&](int64_t i, int m) {
    const R s = V::loadn(c.s + i, m, kNegInf);
    maxs = V::max(maxs, s);
    flag = screen<V>(flag, s, c.s + i, m, bound);
  });
  out->bad = V::any(flag) ? classify_flagged<V>(c.s, c.n, c.inv_t) : 0;  // as distill_pass1
  if (out->bad) return;
  const float max_s = V::hmax(maxs);
  const float ms = max_s * c.inv_t;
  const R nms = V::set1(is_neg_inf(ms) ? 0.0f : -ms);
  const R vmr = V::set1(is_neg_inf(max_s) ? 0.0f : max_s);
  const R inv_t = V::set1(c.inv_t);
  // As distill_pass1: the exponentials go to memory first (the scratch row, or a buffer on the
  // stack) and a second loop over that L1-resident copy sums them, so the float64 accumulators
  // and the exp constants need not share the vector registers.
  alignas(32) float local[2][kChunk];
  float* const e_out = c.es ? c.es : local[0];
  float* const r_out = local[1];
  for_each_vec<V>(c.n, [&](int64_t i, int m) {
    if (i % 16 == 0) __builtin_prefetch(c.s + i + kChunk);
    const R s = V::loadn(c.s + i, m, kNegInf);
    V::store(e_out + i, exp_shifted<V>(s, inv_t, nms));  // whole vectors: lanes past the end hold 0
    if (NeedR && PowR == 0) V::store(r_out + i, V::exp_nonpos(V::sub(s, vmr)));
  });
  typename V::D ss = V::dzero(), sr = V::dzero(), sum = V::dzero(), sez = V::dzero();
  const auto r_at = [&](int64_t i) { return PowR ? V::pow_small(V::load(e_out + i), PowR) : V::load(r_out + i); };
  const int64_t padded = (c.n + V::W - 1) / V::W * V::W;
  int64_t i = 0;
  for (; i + 2 * V::W <= padded; i += 2 * V::W) {
    ss = V::dadd(ss, V::add(V::load(e_out + i), V::load(e_out + i + V::W)));
    if (NeedR) sr = V::dadd(sr, V::add(r_at(i), r_at(i + V::W)));
  }
  if (i < padded) {
    ss = V::dadd(ss, V::load(e_out + i));
    if (NeedR) sr = V::dadd(sr, r_at(i));
  }
  if (NeedSum || NeedEz) {
    for_each_vec<V>(c.n, [&](int64_t j, int m) {
      if (NeedSum) sum = V::dadd(sum, V::loadn(c.s + j, m, 0.0f));
      if (NeedEz) {
        const R e = V::load(e_out + j);
        sez = V::dadd(sez, V::sel_pos(e, V::mul(e, V::add(V::mul(V::loadn(c.s + j, m, kNegInf), inv_t), nms))));
      }
    });
  }
  out->v[0] = ms;
  out->v[1] = V::dsum(ss);
  out->v[2] = max_s;
  out->v[3] = NeedR ? V::dsum(sr) : 0.0;
  out->v[4] = NeedSum ? V::dsum(sum) : 0.0;
  out->v[5] = NeedEz ? V::dsum(sez) : 0.0;
  out->v[6] = out->v[7] = 0.0;
}

template <class V, bool NeedSum, bool NeedEz>
void topk_pass1_r(const TopkChunk& c, ChunkStats* out) {
  if (!c.need_r) topk_pass1_impl<V, false, NeedSum, NeedEz, 0>(c, out);
  else if (c.pow_r == 2) topk_pass1_impl<V, true, NeedSum, NeedEz, 2>(c, out);
  else if (c.pow_r == 4) topk_pass1_impl<V, true, NeedSum, NeedEz, 4>(c, out);
  else topk_pass1_impl<V, true, NeedSum, NeedEz, 0>(c, out);
}

template <class V>
void topk_pass1(const TopkChunk& c, ChunkStats* out) {
  switch ((c.need_sum_s ? 1 : 0) | (c.need_ez ? 2 : 0)) {
    case 0: topk_pass1_r<V, false, false>(c, out); break;
    case 1: topk_pass1_r<V, true, false>(c, out); break;
    case 2: topk_pass1_r<V, false, true>(c, out); break;
    default: topk_pass1_r<V, true, true>(c, out); break;
  }
}

// Mode: 0 affine gradient, 1 uniform JSD sums, 2 uniform JSD gradient; Hard as distill_pass2.
template <class V, int Mode, int Hard>
void topk_pass2_impl(const TopkChunk& c, ChunkStats* out) {
  using R = typename V::R;
  const R inv_t = V::set1(c.inv_t), nms = V::set1(neg_or_zero(c.cm_s)), vmx = V::set1(c.mx_s), vls = V::set1(c.ls_s);
  const R vkq = V::set1(c.kq), vkr = V::set1(c.kr), mr = V::set1(c.cm_r == kNegInf ? 0.0f : c.cm_r);
  const R va = V::set1(c.a), vb = V::set1(c.b), vc0 = V::set1(c.c0), vch = V::set1(c.ch), vchs = V::set1(c.ch_smooth);
  const R vcs = V::set1(c.cs), vbeta = V::set1(c.beta), vbeta1 = V::set1(1.0f - c.beta), vpu = V::set1(c.pu), vlpu = V::set1(c.lpu);
  const R vkqm = V::set1(c.kqm);
  const bool use_p = c.beta > 0.0f, use_q = c.beta < 1.0f;
  const bool affine_a = c.a != 0.0f;
  typename V::D acc0 = V::dzero(), acc1 = V::dzero();
  R nonfinite = V::zero();
  for_each_vec<V>(c.n, [&](int64_t i, int m) {
    if (Mode != 1 && i % 16 == 0) __builtin_prefetch(c.gs + i + kChunk, 1);
    const R s = V::loadn(c.s + i, m, kNegInf);
    const R e = c.e_stored ? V::load(c.es + i) : exp_shifted<V>(s, inv_t, nms);
    const R q = V::mul(e, vkq);
    R g = V::zero();
    if (Mode == 0) {
      // q (a (z - mx) + b) + c0: a = 0 but for reverse KL, whose gradient holds log q
      const R t = affine_a ? V::fma(va, V::sub(V::mul(s, inv_t), vmx), vb) : vb;
      g = V::add(V::sel_pos(q, V::mul(q, t)), vc0);
    } else {
      const R lq = V::sub(V::sub(V::mul(s, inv_t), vmx), vls);
      const R lm = V::log(V::fma(vbeta, vpu, V::mul(vbeta1, q)));
      const R qd = V::sel_pos(q, V::mul(q, V::sub(lq, lm)));
      if (Mode == 1) {
        // the p term does not vanish where q does: lanes past the chunk's end are masked off
        const R pd = V::sel_pos(vpu, V::mul(vpu, V::sub(vlpu, lm)));
        if (use_p) acc0 = V::dadd(acc0, m == V::W ? pd : V::sel_pos(V::loadn(kOnes, m, 0.0f), pd));
        if (use_q) acc1 = V::dadd(acc1, qd);
      } else if (use_q) {
        g = V::mul(vcs, V::fnma(vkqm, q, qd));
      }
    }
    if (Mode != 1) {
      if (Hard) {
        const R r = Hard == 1 ? q
                    : V::mul(c.pow_r ? V::pow_small(e, c.pow_r) : V::exp_nonpos(V::sub(s, mr)), vkr);
        g = V::add(g, V::fma(vch, r, V::sub(V::zero(), vchs)));
      }
      V::storen(c.gs + i, g, m);
      nonfinite = nonfinite_stored<V>(nonfinite, g, c.gs + i, m);
    }
  });
  out->bad = V::any(nonfinite) ? kGradNotFinite : 0;
  out->v[6] = V::dsum(acc0);
  out->v[7] = V::dsum(acc1);
}

template <class V, int Mode>
void topk_pass2_mode(const TopkChunk& c, ChunkStats* out) {
  if (Mode == 1 || !c.hard) topk_pass2_impl<V, Mode, 0>(c, out);
  else if (c.hard == 1) topk_pass2_impl<V, Mode, 1>(c, out);
  else topk_pass2_impl<V, Mode, 2>(c, out);
}

template <class V>
void topk_pass2(const TopkChunk& c, ChunkStats* out) {
  if (c.mode == 0) topk_pass2_mode<V, 0>(c, out);
  else if (c.mode == 1) topk_pass2_mode<V, 1>(c, out);
  else topk_pass2_mode<V, 2>(c, out);
}

// ---------------------------------------------------------------- softmax with temperature

template <class V>
void softmax_pass1(const SoftmaxChunk& c, ChunkStats* out) {
  using R = typename V::R;
  const R bound = V::set1(screen_bound(c.inv_t));
  R mx = V::set1(kNegInf), flag = V::zero();
  for_each_vec<V>(c.n, [&](int64_t i, int m) {
    const R x = V::loadn(c.x + i, m, kNegInf);
    mx = V::max(mx, x);
    flag = screen<V>(flag, x, c.x + i, m, bound);
  });
  out->bad = V::any(flag) ? classify_flagged<V>(c.x, c.n, c.inv_t) : 0;  // as in distill_pass1
  if (out->bad) return;
  const float mraw = V::hmax(mx);
  const float mz = mraw * c.inv_t;
  const R nm = V::set1(is_neg_inf(mz) ? 0.0f : -mz);
  const R inv_t = V::set1(c.inv_t);
  typename V::D sum = V::dzero();
  for_each_vec<V>(c.n, [&](int64_t i, int m) {
    sum = V::dadd(sum, V::exp_nonpos(V::add(V::mul(V::loadn(c.x + i, m, kNegInf), inv_t), nm)));
  });
  out->v[0] = mz;
  out->v[1] = V::dsum(sum);
}

template <class V>
void softmax_pass2(const SoftmaxChunk& c) {
  using R = typename V::R;
  const R inv_t = V::set1(c.inv_t), vmx = V::set1(c.mx), vls = V::set1(c.lse);
  for_each_vec<V>(c.n, [&](int64_t i, int m) {
    const R z = V::sub(V::sub(V::mul(V::loadn(c.x + i, m, kNegInf), inv_t), vmx), vls);
    V::storen(c.out + i, c.log ? z : V::exp_nonpos(z), m);
  });
}

template <class V>
void softmax_bwd_pass1(const SoftmaxChunk& c, ChunkStats* out) {
  using R = typename V::R;
  typename V::D acc = V::dzero();
  R bad = V::zero();
  for_each_vec<V>(c.n, [&](int64_t i, int m) {
    const R dy = V::loadn(c.dy + i, m, 0.0f);
    const R y = V::loadn(c.x + i, m, 0.0f);
    bad = V::or_(bad, V::or_(V::bad(y), V::bad(dy)));
    acc = V::dadd(acc, c.log ? dy : V::mul(dy, y));
  });
  out->bad = V::any(bad) ? 1 : 0;
  out->v[0] = V::dsum(acc);
}

template <class V>
void softmax_bwd_pass2(const SoftmaxChunk& c) {
  using R = typename V::R;
  const R inv_t = V::set1(c.inv_t), dot = V::set1(c.dot);
  for_each_vec<V>(c.n, [&](int64_t i, int m) {
    const R dy = V::loadn(c.dy + i, m, 0.0f);
    R dx;
    if (c.log) {
      const R p = V::exp(V::loadn(c.x + i, m, kNegInf));
      dx = V::mul(V::fnma(p, dot, dy), inv_t);  // (dy - softmax * sum(dy)) / T
    } else {
      const R y = V::loadn(c.x + i, m, 0.0f);
      dx = V::mul(V::mul(y, V::sub(dy, dot)), inv_t);  // y (dy - sum(dy y)) / T
    }
    V::storen(c.out + i, dx, m);
  });
}

// ---------------------------------------------------------------- test hooks and the triad

template <class V>
void exp_array(const float* x, float* y, int64_t n) {
  for_each_vec<V>(n, [&](int64_t i, int m) { V::storen(y + i, V::exp(V::loadn(x + i, m, 0.0f)), m); });
}

template <class V>
void log_array(const float* x, float* y, int64_t n) {
  for_each_vec<V>(n, [&](int64_t i, int m) { V::storen(y + i, V::log(V::loadn(x + i, m, 1.0f)), m); });
}

template <class V>
void triad(float* a, const float* b, const float* c, float scalar, int64_t n) {
  const typename V::R k = V::set1(scalar);
  for_each_vec<V>(n, [&](int64_t i, int m) {
    V::storen(a + i, V::fma(k, V::loadn(c + i, m, 0.0f), V::loadn(b + i, m, 0.0f)), m);
  });
}

// small_rows: the ISA's kernel for SmallRows (or null); log_f64: its float64 log.
template <class V>
const ChunkKernels& make_table(bool (*small_rows)(const SmallRows&), bool (*small_softmax)(const SmallSoftmaxRows&),
                               void (*log_f64)(const double*, double*, int64_t)) {
  static const ChunkKernels table = {
      &distill_pass1<V>, &distill_pass2<V>, &distill_pass3<V>, &softmax_pass1<V>,  &softmax_pass2<V>,
      &softmax_bwd_pass1<V>, &softmax_bwd_pass2<V>, &exp_array<V>, &log_array<V>, &triad<V>, small_rows, small_softmax,
      log_f64, &topk_pass1<V>, &topk_pass2<V>,
  };
  return table;
}

}  // namespace
}  // namespace kdfuse
