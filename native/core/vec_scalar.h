// One-lane "vector" for the portable path: the same kernel templates compile to plain scalar code.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>

struct VScalar {
  using R = float;
  static constexpr int W = 1;
  static R load(const float* p) { return *p; }
  static R loadn(const float* p, int, float) { return *p; }
  static void store(float* p, R v) { *p = v; }
  static void storen(float* p, R v, int) { *p = v; }
  static R set1(float x) { return x; }
  static R zero() { return 0.0f; }
  static R add(R a, R b) { return a + b; }
  static R sub(R a, R b) { return a - b; }
  static R mul(R a, R b) { return a * b; }
  static R fma(R a, R b, R c) { return std::fma(a, b, c); }
  static R fnma(R a, R b, R c) { return std::fma(-a, b, c); }  // c - a * b
  static R max(R a, R b) { return a > b ? a : b; }
  // same range as VAvx2::exp: results below the smallest normal float are flushed to 0
  static R exp(R x) { return x < -87.3365447505531f ? 0.0f : std::exp(x); }
  static R exp_nonpos(R x) { return exp(x); }
  static R log(R x) { return std::log(x); }
  // as VAvx2::pow_small
  static R pow_small(R e, int pw) {
    const R m = e < (pw == 2 ? 0x1p-63f : 0x1p-31f) ? 0.0f : e;
    const R y = m * m;
    return pw == 2 ? y : y * y;
  }
  // v where p > 0, else exactly 0 (keeps 0 * -inf from becoming NaN)
  static R sel_pos(R p, R v) { return p > 0.0f ? v : 0.0f; }
  // +inf where log a is finite and log b is -inf, else v (see vec_avx2.h)
  static R inf_if_only_first(R la, R lb, R v) {
    const float ninf = -std::numeric_limits<float>::infinity();
    return (la != ninf && lb == ninf) ? std::numeric_limits<float>::infinity() : v;
  }
  static R bad(R x) { return (std::isnan(x) || x == std::numeric_limits<float>::infinity()) ? 1.0f : 0.0f; }
  static R or_(R a, R b) { return (a != 0.0f || b != 0.0f) ? 1.0f : 0.0f; }
  // 1 where |x| < c (0 for NaN); a where the mask is set, else b (as VAvx2)
  static R not_abs_lt(R x, R c) { return std::fabs(x) < c ? 0.0f : 1.0f; }
  static R abs_lt(R x, float c) { return std::fabs(x) < c ? 1.0f : 0.0f; }
  static R select(R m, R a, R b) { return m != 0.0f ? a : b; }
  static R gt0(R x) { return x > 0.0f ? 1.0f : 0.0f; }
  static R neg_abs(R x) { return -std::fabs(x); }
  static R div(R a, R b) { return a / b; }
  static bool any(R m) { return m != 0.0f; }
  static double hsum(R v) { return v; }
  // float64 accumulator for sums of many float terms
  using D = double;
  static D dzero() { return 0.0; }
  static D dadd(D acc, R v) { return acc + double(v); }
  static double dsum(D acc) { return acc; }
  static float hmax(R v) { return v; }
};
