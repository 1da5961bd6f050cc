// The KL divergence's per-element term and probability difference in a form that keeps its
// precision when the two distributions are close. Written once over a lane type V (VScalar or
// VAvx2) for the chunked passes (chunk_kernels_impl.h) and the small-rows kernel.
#pragma once

// The CUDA kernels use these too (native/cuda/distill_loss.cu, over a device lane type).
#if defined(__CUDACC__)
#define KDFUSE_HD __host__ __device__
#else
#define KDFUSE_HD
#endif

namespace kdfuse {
namespace {  // internal linkage: each ISA translation unit gets its own copy

// One term of a KL divergence written as KL(b || a) = sum_c a_c f(x_c), x = log b - log a,
// f(x) = 1 + e^x (x - 1) >= 0 (equal to sum b x because sum a = sum b = 1), and the difference of
// the probabilities a - b = -a expm1(x). Unlike b x and a - b, both keep their relative precision
// when a ~ b: near-equal distributions (large T, a student close to its teacher) and near one-hot
// rows, where the sum of b x cancelled to a small fraction of its terms and q - p of two floats
// near 1 lost most of its bits (docs/accuracy.md). For |x| < 1/2 they come from
// g(x) = (expm1(x) - x) / x^2 (a Taylor polynomial, 4e-9 relative at |x| = 1/2):
// f = x^2 (1 - g (1 - x)), expm1(x) = x + x^2 g; elsewhere from b (x - 1) + a and a - b, which lose
// at most three bits there. A zero probability keeps the documented rules (0 log 0 = 0, and an
// infinite term where only b is > 0); the -inf/-inf lanes (x NaN) give 0.
constexpr float kSmallX = 0.5f;

// g(x) = (expm1(x) - x) / x^2 = 1/2 + x/6 + x^2/24 + ... to x^7/9!, for |x| < kSmallX.
template <class V>
KDFUSE_HD inline typename V::R expm1_g(typename V::R x) {
  typename V::R g = V::set1(1.0f / 362880.0f);
  g = V::fma(g, x, V::set1(1.0f / 40320.0f));
  g = V::fma(g, x, V::set1(1.0f / 5040.0f));
  g = V::fma(g, x, V::set1(1.0f / 720.0f));
  g = V::fma(g, x, V::set1(1.0f / 120.0f));
  g = V::fma(g, x, V::set1(1.0f / 24.0f));
  g = V::fma(g, x, V::set1(1.0f / 6.0f));
  return V::fma(g, x, V::set1(0.5f));
}
template <class V>
KDFUSE_HD inline void kl_term(typename V::R a, typename V::R b, typename V::R x, typename V::R* term, typename V::R* diff) {
  using R = typename V::R;
  const R small = V::abs_lt(x, kSmallX);
  const R g = expm1_g<V>(x);
  const R one = V::set1(1.0f), x2 = V::mul(x, x);
  const R f_small = V::mul(V::mul(a, x2), V::fnma(g, V::sub(one, x), one));
  const R em1 = V::fma(x2, g, x);
  const R f_large = V::add(V::sel_pos(b, V::mul(b, V::sub(x, one))), a);
  *term = V::select(small, f_small, f_large);
  *diff = V::select(small, V::sub(V::zero(), V::mul(a, em1)), V::sub(a, b));
}

// KL(b || a) = sum a f(x) with x = (z_b - z_a) - delta is exact only for the exact delta = log-sum
// difference; the float32 exponentials those log-sums are summed from leave delta off by some eps
// (about 2^-25 at large T), which adds eps^2 / 2 to the divergence: T^2 eps^2 / 2 to the loss,
// 1e-8 at T = 1e4 on near-equal rows. s1 = sum a expm1(x), which the passes have already (minus the
// probability difference), measures it: s1 = expm1(-eps) up to the float32 rounding of its terms,
// and the divergence at the exact delta is (kl + s1) / (1 + s1) - log1p(s1), here written as
// kl / (1 + s1) + h(s1), h(s) = s / (1 + s) - log1p(s) = sum_{k >= 2} (-1)^(k+1) (k - 1) / k s^k.
// Applied only where |s1| is a rounding-sized 2^-10 or less (its series then stops at s^7 within
// 1e-16 of h); an infinite divergence is left as it is. Never below 0, which the exact value is not.
// +Infinity where exactly one of two log-probabilities is -Infinity (a column outside one side's
// support), else 0. The log-sum corrections below assume both sums run over the same columns: a
// teacher probability where the student's is 0 made s1 read that mass as rounding, off by up to
// 2^-10 of the divergence (fuzzing finding F19: JSD at T = 100, a -Infinity student logit). Added
// to s1, it switches the correction off for the row.
template <class V>
KDFUSE_HD inline typename V::R support_mismatch(typename V::R la, typename V::R lb) {
  return V::inf_if_only_first(la, lb, V::inf_if_only_first(lb, la, V::zero()));
}

KDFUSE_HD inline double kl_delta_corrected(double kl, double s1) {
  if (!(kl < 1.0e308) || !(s1 > -0x1p-10 && s1 < 0x1p-10)) return kl;
  double h = 0.0, pw = s1 * s1;
  for (int k = 2; k <= 7; ++k) {
    const double term = double(k - 1) / double(k) * pw;
    h += (k % 2 == 0) ? -term : term;
    pw *= s1;
  }
  const double v = kl / (1.0 + s1) + h;
  return v > 0.0 ? v : 0.0;
}

// JSD's two divergences corrected for the same eps. Near p ~ q, KL(p || m) ~ (1 - beta)^2 / 2 and
// KL(q || m) ~ beta^2 / 2 times sum q D^2, D = log p - log q = d + eps for the d the passes form.
// The passes' sum q d^2 is then short of it by 2 eps sum q d + eps^2, with eps = -log1p(s1) from
// s1 = sum q expm1(d) and a = sum q d (both summed by pass 2). Away from p ~ q the shift is of
// relative size eps (about 1e-8) and so is the correction; where some |d| >= 1/2 pass 2 makes s1
// infinite and nothing is changed. Each divergence stays >= 0.
KDFUSE_HD inline void jsd_delta_corrected(double beta, double s1, double a, double* kl_pm, double* kl_qm) {
  if (!(s1 > -0x1p-10 && s1 < 0x1p-10) || !(a > -1.0e300 && a < 1.0e300) || !(*kl_pm < 1.0e308) || !(*kl_qm < 1.0e308)) return;
  // log1p(s1) by its series: |s1| < 2^-10, so five terms are within 1e-16 of it
  const double s2 = s1 * s1;
  const double lp = s1 - s2 / 2.0 + s2 * s1 / 3.0 - s2 * s2 / 4.0 + s2 * s2 * s1 / 5.0;
  const double eps = -lp;
  const double shift = 2.0 * eps * a + eps * eps;
  const double pm = *kl_pm + 0.5 * (1.0 - beta) * (1.0 - beta) * shift;
  const double qm = *kl_qm + 0.5 * beta * beta * shift;
  *kl_pm = pm > 0.0 ? pm : 0.0;
  *kl_qm = qm > 0.0 ? qm : 0.0;
}

// JSD's log-ratios against the mixture m = beta p + (1 - beta) q, from d = log p - log q (which the
// passes form from the logits, precise when p ~ q): xpm = log p - log m, xqm = log q - log m.
// One of them is -log1p(w expm1(-|d|)), w the weight of the smaller-probability side, bounded by
// -log(beta) or -log(1 - beta); the other differs from it by d. Taking the difference of two logs
// of near-equal probabilities instead lost the precision the divergence needs at large T.
// At beta = 1 (m = p) or 0 (m = q) the side is fixed so that the log-ratio against the mixture is
// exactly 0 (w = 0): the other side's weight would be 1 and L = -d would cancel against d.
template <class V>
KDFUSE_HD inline void jsd_logs(typename V::R d, float beta_f, typename V::R beta, typename V::R beta1, typename V::R* xpm,
                     typename V::R* xqm) {
  using R = typename V::R;
  const R pos = beta_f >= 1.0f ? V::gt0(V::set1(1.0f)) : beta_f <= 0.0f ? V::gt0(V::zero()) : V::gt0(d);
  const R y = V::neg_abs(d);  // <= 0
  const R e = V::exp_nonpos(y);
  const R em1 = V::select(V::abs_lt(y, kSmallX), V::fma(V::mul(y, y), expm1_g<V>(y), y), V::sub(e, V::set1(1.0f)));
  const R w = V::select(pos, beta1, beta), w_other = V::select(pos, beta, beta1);
  const R u = V::mul(w, em1);  // in [-1, 0]: the mixture over the larger probability is 1 + u
  const R v = V::add(V::set1(1.0f), u);
  // log1p(u) = log(v) corrected for the rounding of v = 1 + u while v >= 1/2; below, log(w_other +
  // w e) directly: there 1 + u has rounded away a weight w_other below float32's epsilon (beta =
  // 1e-13: 1 - beta is 1), and log(v) would be -inf instead of about log(w_other)
  const R near = V::sub(V::log(v), V::sel_pos(v, V::div(V::sub(V::sub(v, V::set1(1.0f)), u), v)));
  const R far = V::log(V::fma(w, e, w_other));
  const R L = V::sub(V::zero(), V::select(V::gt0(V::add(u, V::set1(0.5f))), near, far));
  *xpm = V::select(pos, L, V::add(L, d));
  *xqm = V::select(pos, V::sub(L, d), L);
}

}  // namespace
}  // namespace kdfuse
