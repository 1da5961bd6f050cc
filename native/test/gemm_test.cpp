// C++ tests of sgemm (native/core/gemm.h) against a float64 product written here: all four
// transposes, alpha/beta (beta 0 must not read a NaN-filled C), edge sizes that are not multiples
// of the micro-tile, leading dimensions wider than the matrix (the padding is NaN and must not be
// read or written), the fused head's shapes, bit-identical C for 1, 2 and 4 threads, and the
// generic micro-kernel beside the AVX2 one. Prints "N passed, M failed"; exit code 1 on any failure.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "gemm.h"

namespace {

const float kNaN = std::numeric_limits<float>::quiet_NaN();

struct Case {
  bool ta, tb;
  int64_t m, n, k;
  float alpha, beta;
  int64_t pad;  // extra columns in each leading dimension
};

struct Mats {
  int64_t lda, ldb, ldc;
  std::vector<float> a, b, c0;  // c0: C before the call
};

// Random operands stored as op() says, each row `pad` floats wider than needed, padding NaN.
Mats make(const Case& t, std::mt19937& gen) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  Mats x;
  const int64_t a_rows = t.ta ? t.k : t.m, a_cols = t.ta ? t.m : t.k;
  const int64_t b_rows = t.tb ? t.n : t.k, b_cols = t.tb ? t.k : t.n;
  x.lda = a_cols + t.pad;
  x.ldb = b_cols + t.pad;
  x.ldc = t.n + t.pad;
  auto fill = [&](std::vector<float>& v, int64_t rows, int64_t cols, int64_t ld, bool nan_body) {
    v.assign(size_t(rows * ld), kNaN);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) v[size_t(r * ld + c)] = nan_body ? kNaN : u(gen);
  };
  fill(x.a, a_rows, a_cols, x.lda, false);
  fill(x.b, b_rows, b_cols, x.ldb, false);
  fill(x.c0, t.m, t.n, x.ldc, t.beta == 0.0f);
  return x;
}

float op_at(const std::vector<float>& v, bool trans, int64_t ld, int64_t r, int64_t c) {
  return trans ? v[size_t(c * ld + r)] : v[size_t(r * ld + c)];
}

std::vector<float> run(const Case& t, const Mats& x, int threads) {
  std::vector<float> c = x.c0;
  kdfuse::sgemm(t.ta, t.tb, t.m, t.n, t.k, t.alpha, x.a.data(), x.lda, x.b.data(), x.ldb, t.beta, c.data(), x.ldc,
                threads);
  return c;
}

// Every element within 1e-5 of sum |alpha a b| + |beta c| of the float64 value; padding untouched.
bool check_against_reference(const Case& t, const Mats& x, const std::vector<float>& c) {
  int bad = 0;
  for (int64_t i = 0; i < t.m; ++i) {
    for (int64_t j = 0; j < t.n; ++j) {
      double s = 0, mag = 0;
      for (int64_t p = 0; p < t.k; ++p) {
        const double prod = double(op_at(x.a, t.ta, x.lda, i, p)) * op_at(x.b, t.tb, x.ldb, p, j);
        s += prod;
        mag += std::fabs(prod);
      }
      double ref = double(t.alpha) * s, tol = std::fabs(double(t.alpha)) * mag;
      if (t.beta != 0.0f) {
        const double c0 = x.c0[size_t(i * x.ldc + j)];
        ref += double(t.beta) * c0;
        tol += std::fabs(double(t.beta) * c0);
      }
      tol = 1e-5 * tol + 1e-30;
      const float got = c[size_t(i * x.ldc + j)];
      if (!(std::fabs(got - ref) <= tol) && bad++ < 3)
        std::printf("  C[%lld,%lld] = %.9g, float64 %.9g, tolerance %.3g\n", (long long)i, (long long)j, got, ref, tol);
    }
    for (int64_t j = t.n; j < x.ldc; ++j)
      if (!std::isnan(c[size_t(i * x.ldc + j)]) && bad++ < 3) std::printf("  C[%lld,%lld] padding written\n", (long long)i, (long long)j);
  }
  return bad == 0;
}

void check_case(const Case& t, std::mt19937& gen, int threads) {
  const Mats x = make(t, gen);
  const std::vector<float> c = run(t, x, threads);
  CHECK(check_against_reference(t, x, c), "%s%s m=%lld n=%lld k=%lld alpha=%g beta=%g pad=%lld threads=%d", t.ta ? "T" : "N",
        t.tb ? "T" : "N", (long long)t.m, (long long)t.n, (long long)t.k, t.alpha, t.beta, (long long)t.pad, threads);
}

// Small and edge sizes: every transpose over the whole grid of small sizes, with alpha/beta and
// padding varied from case to case.
void test_edge_sizes(std::mt19937& gen) {
  const int64_t sizes[] = {1, 2, 5, 7, 16, 17, 33};
  const float ab[][2] = {{1.0f, 0.0f}, {1.0f, 1.0f}, {-0.5f, 0.0f}, {2.0f, 1.0f}, {0.75f, -1.5f}};
  int idx = 0;
  for (int tr = 0; tr < 4; ++tr)
    for (int64_t m : sizes)
      for (int64_t n : sizes)
        for (int64_t k : sizes) {
          const float* v = ab[idx % 5];
          check_case({bool(tr & 1), bool(tr & 2), m, n, k, v[0], v[1], int64_t(idx % 3 == 0 ? 3 : 0)}, gen, 1);
          ++idx;
        }
}

// Larger sizes that cross the KC (256), MC (144) and narrow-NC (256) block edges, sampled.
void test_block_edges(std::mt19937& gen) {
  const int64_t sizes[] = {1, 5, 17, 64, 100, 129, 300};
  std::uniform_int_distribution<int> pick(0, 6);
  for (int i = 0; i < 120; ++i) {
    const Case t{bool(i & 1), bool(i & 2), sizes[pick(gen)], sizes[pick(gen)], sizes[pick(gen)], i % 3 == 0 ? 1.0f : -1.25f,
                 i % 2 == 0 ? 0.0f : 1.0f, int64_t(i % 4 == 0 ? 5 : 0)};
    check_case(t, gen, i % 5 == 0 ? 2 : 1);
  }
  for (int tr = 0; tr < 4; ++tr) check_case({bool(tr & 1), bool(tr & 2), 300, 300, 300, 1.0f, 1.0f, 1}, gen, 2);
  // several wide column blocks (NC 4096) below a tall A
  check_case({false, false, 150, 4200, 20, 1.0f, 0.0f, 0}, gen, 1);
  check_case({true, true, 150, 4200, 300, 1.0f, 1.0f, 2}, gen, 2);
}

// The fused head's three products (and the large square-ish one once, at a reduced size).
void test_issue_shapes(std::mt19937& gen) {
  check_case({false, false, 64, 32000, 128, 1.0f, 0.0f, 0}, gen, 0);  // logits tile H * W
  check_case({true, false, 128, 32000, 64, 1.0f, 0.0f, 0}, gen, 0);   // grad W = H^T * G
  check_case({false, true, 64, 128, 32000, 1.0f, 1.0f, 0}, gen, 0);   // grad H += G * W^T
  // W as a column block of a wider row-major matrix: ldb is the full width
  Case t{false, false, 64, 1000, 128, 1.0f, 0.0f, 0};
  Mats x = make(t, gen);
  std::vector<float> wide(size_t(128 * 4000));
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (float& v : wide) v = u(gen);
  x.ldb = 4000;
  x.b.assign(wide.begin() + 1500, wide.end());  // columns [1500, 2500) of the [128, 4000] matrix
  CHECK(check_against_reference(t, x, run(t, x, 2)), "NN column block of W, ldb 4000");
}

void test_edge_values(std::mt19937& gen) {
  // k = 0 and alpha = 0: C = beta C, A and B not read (NaN here)
  std::vector<float> nan_ab(64, kNaN), c(12, 3.0f);
  kdfuse::sgemm(false, false, 3, 4, 0, 1.0f, nan_ab.data(), 1, nan_ab.data(), 4, 0.5f, c.data(), 4, 1);
  CHECK(c[0] == 1.5f && c[11] == 1.5f, "k = 0 scales C by beta: %g", c[0]);
  c.assign(12, kNaN);
  kdfuse::sgemm(true, true, 3, 4, 5, 0.0f, nan_ab.data(), 3, nan_ab.data(), 5, 0.0f, c.data(), 4, 1);
  CHECK(c[0] == 0.0f && c[11] == 0.0f, "alpha = 0, beta = 0 gives 0 over a NaN C: %g", c[0]);
  // m or n = 0 touches nothing
  kdfuse::sgemm(false, false, 0, 4, 5, 1.0f, nan_ab.data(), 5, nan_ab.data(), 4, 0.0f, nullptr, 4, 1);
  CHECK(true, "m = 0");
  (void)gen;
}

// Any thread count gives the same bits, including counts above the core count.
void test_threads_bit_identical(std::mt19937& gen) {
  const Case cases[] = {{false, false, 64, 32000, 128, 1.0f, 0.0f, 0}, {true, false, 128, 4000, 64, 0.5f, 1.0f, 3},
                        {false, true, 64, 128, 32000, 1.0f, 1.0f, 0},  {true, true, 301, 299, 517, -1.0f, 1.0f, 1},
                        {false, false, 1000, 40, 300, 1.0f, 0.0f, 0},  {false, false, 7, 5000, 1000, 1.0f, 0.0f, 0}};
  for (const Case& t : cases) {
    const Mats x = make(t, gen);
    const std::vector<float> c1 = run(t, x, 1);
    for (int threads : {2, 3, 4, 0}) {
      const std::vector<float> ct = run(t, x, threads);
      CHECK(std::memcmp(c1.data(), ct.data(), c1.size() * sizeof(float)) == 0, "%lldx%lldx%lld: %d threads differ from 1",
            (long long)t.m, (long long)t.n, (long long)t.k, threads);
    }
  }
}

}  // namespace

int main() {
  std::mt19937 gen(7);
  // the GEMM written here, with each micro-kernel, whether or not a BLAS was found
  kdfuse::sgemm_force_builtin(true);
  for (bool generic : {false, true}) {
    kdfuse::sgemm_force_generic_for_testing(generic);
    std::printf("micro-kernel: %s (%s)\n", generic ? "generic" : "default for this CPU", kdfuse::sgemm_backend());
    test_edge_sizes(gen);
    test_block_edges(gen);
    test_edge_values(gen);
    test_threads_bit_identical(gen);
    if (!generic) test_issue_shapes(gen);
  }
  kdfuse::sgemm_force_generic_for_testing(false);
  kdfuse::sgemm_force_builtin(false);
  // and the BLAS found at build time, if any, against the same float64 reference
  if (std::string(kdfuse::sgemm_backend()).rfind("kdfuse", 0) != 0) {
    std::printf("BLAS: %s\n", kdfuse::sgemm_backend());
    test_edge_sizes(gen);
    test_block_edges(gen);
    test_edge_values(gen);
    test_issue_shapes(gen);
  }
  return finish();
}
