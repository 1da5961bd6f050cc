// C++ tests of native/core/ig.cpp alone: ig_interpolate / ig_accumulate against the formulas in
// ig.h written out here, and their argument checks (Status kind and message naming the argument).
// Prints "N passed, M failed"; exit code 1 on any failure.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "check.h"
#include "ig.h"


static bool starts_with(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }

static void test_values() {
  const int64_t rows = 3, F = 5, brows = 6, n = 7;
  std::vector<float> x(rows * F), b(brows * F), g(n * F), out(n * F);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(std::sin(double(i)) * 100.0);
  for (size_t i = 0; i < b.size(); ++i) b[i] = float(std::cos(double(i)) * 0.01);
  for (size_t i = 0; i < g.size(); ++i) g[i] = float(std::sin(double(i) * 0.3) * 1e-3);
  std::vector<int32_t> xr = {2, 0, 2, 1, 0, 2, 2}, br = {5, 0, 1, 3, 4, 2, 5};
  std::vector<double> alpha = {0.1, 0.5, 0.9, 1.0, 0.0, 0.33, 0.77}, w = {0.2, 0.1, 0.05, 0.3, 0.15, 0.1, 0.1};
  kdfuse::IgPoints p{x.data(), rows, b.data(), brows, F, n, xr.data(), br.data()};
  CHECK(kdfuse::ig_interpolate(p, alpha.data(), out.data()).ok(), "interpolate ok");
  std::vector<double> acc(rows * F, 1.0), want(rows * F, 1.0);
  CHECK(kdfuse::ig_accumulate(p, g.data(), w.data(), acc.data()).ok(), "accumulate ok");
  int bad_i = 0, bad_a = 0;
  for (int64_t q = 0; q < n; ++q)
    for (int64_t f = 0; f < F; ++f) {
      const double xv = x[xr[q] * F + f], bv = b[br[q] * F + f];
      volatile double t = alpha[q] * (xv - bv);  // volatile: no contraction in the reference either
      if (out[q * F + f] != float(bv + t)) ++bad_i;
      volatile double u = w[q] * double(g[q * F + f]);
      want[xr[q] * F + f] += u * (xv - bv);
    }
  for (size_t i = 0; i < acc.size(); ++i) bad_a += acc[i] != want[i];
  CHECK(bad_i == 0, "interpolate: %d values differ", bad_i);
  CHECK(bad_a == 0, "accumulate: %d values differ", bad_a);
}

static void expect_error(const kdfuse::Status& s, kdfuse::ErrorKind kind, const char* prefix) {
  CHECK(s.kind == kind && starts_with(s.message, prefix), "want %s '%s...', got %d '%s'",
        kind == kdfuse::ErrorKind::Type ? "TypeError" : "RangeError", prefix, int(s.kind), s.message.c_str());
}

static void test_errors() {
  using kdfuse::ErrorKind;
  std::vector<float> x(8), b(8), g(8), out(8);
  std::vector<int32_t> xr = {0, 1}, br = {1, 0};
  std::vector<double> a = {0.5, 1.0}, acc(8);
  const kdfuse::IgPoints ok{x.data(), 2, b.data(), 2, 4, 2, xr.data(), br.data()};
  auto with = [&](auto edit) { kdfuse::IgPoints p = ok; edit(p); return p; };
  expect_error(kdfuse::ig_interpolate(with([](auto& p) { p.features = 0; }), a.data(), out.data()), ErrorKind::Range, "features must be");
  expect_error(kdfuse::ig_interpolate(with([](auto& p) { p.x_rows = 0; }), a.data(), out.data()), ErrorKind::Range, "x must have");
  expect_error(kdfuse::ig_accumulate(with([](auto& p) { p.baseline_rows = 0; }), g.data(), a.data(), acc.data()), ErrorKind::Range, "baselines must have");
  expect_error(kdfuse::ig_interpolate(with([](auto& p) { p.points = -1; }), a.data(), out.data()), ErrorKind::Range, "points must be");
  expect_error(kdfuse::ig_interpolate(with([](auto& p) { p.x = nullptr; }), a.data(), out.data()), ErrorKind::Type, "x must be given");
  expect_error(kdfuse::ig_interpolate(with([](auto& p) { p.baseline_row = nullptr; }), a.data(), out.data()), ErrorKind::Type, "baselineRow must be given");
  expect_error(kdfuse::ig_interpolate(ok, nullptr, out.data()), ErrorKind::Type, "alpha must be given");
  expect_error(kdfuse::ig_interpolate(ok, a.data(), nullptr), ErrorKind::Type, "out must be given");
  expect_error(kdfuse::ig_accumulate(ok, nullptr, a.data(), acc.data()), ErrorKind::Type, "grad must be given");
  expect_error(kdfuse::ig_accumulate(ok, g.data(), a.data(), nullptr), ErrorKind::Type, "acc must be given");
  std::vector<int32_t> far = {0, 2}, neg = {-1, 0};
  expect_error(kdfuse::ig_interpolate(with([&](auto& p) { p.x_row = far.data(); }), a.data(), out.data()), ErrorKind::Range, "xRow[1] must be an integer in [0, 2), got 2");
  expect_error(kdfuse::ig_accumulate(with([&](auto& p) { p.baseline_row = neg.data(); }), g.data(), a.data(), acc.data()), ErrorKind::Range, "baselineRow[0] must be");
  std::vector<double> nan = {0.5, NAN}, inf = {INFINITY, 1.0};
  expect_error(kdfuse::ig_interpolate(ok, nan.data(), out.data()), ErrorKind::Range, "alpha[1] must be a finite number, got NaN");
  expect_error(kdfuse::ig_accumulate(ok, g.data(), inf.data(), acc.data()), ErrorKind::Range, "weight[0] must be a finite number");
  CHECK(kdfuse::ig_interpolate(with([](auto& p) { p.points = 0; p.x_row = nullptr; p.baseline_row = nullptr; }), nullptr, nullptr).ok(),
        "zero points: nothing to do");
}

int main() {
  test_values();
  test_errors();
  return finish();
}
