// sgemm timed alone on the fused head's shapes, with 1 and 2 threads, beside a plain i-k-j triple
// loop compiled here (what the head would do without a GEMM). Not a test.
//
//   kdfuse_gemm_bench [RUNS=7]
//
// GFLOP/s = 2 m n k / median time of RUNS calls after one warm-up call. Operands uniform in
// [-1, 1), seed fixed. The plain loop runs fewer times on the large shapes (it takes seconds).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "gemm.h"

namespace {

struct Shape {
  const char* name;
  bool ta, tb;
  int64_t m, n, k;
};

// C = op(A) op(B), i-k-j order: the inner loop runs along a row of C.
void plain(const Shape& s, const float* a, const float* b, float* c) {
  const int64_t lda = s.ta ? s.m : s.k, ldb = s.tb ? s.k : s.n;
  std::fill(c, c + s.m * s.n, 0.0f);
  for (int64_t i = 0; i < s.m; ++i)
    for (int64_t p = 0; p < s.k; ++p) {
      const float aip = s.ta ? a[p * lda + i] : a[i * lda + p];
      float* ci = c + i * s.n;
      if (s.tb) {
        for (int64_t j = 0; j < s.n; ++j) ci[j] += aip * b[j * ldb + p];
      } else {
        const float* bp = b + p * ldb;
        for (int64_t j = 0; j < s.n; ++j) ci[j] += aip * bp[j];
      }
    }
}

template <class F>
double median_seconds(int runs, F&& f) {
  f();  // warm-up: first-touch pages, pack buffers, pool threads
  std::vector<double> t;
  for (int r = 0; r < runs; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

}  // namespace

int main(int argc, char** argv) {
  const int runs = argc > 1 ? std::max(1, std::atoi(argv[1])) : 7;
  std::printf("CPU: %s\n", cpu_model().c_str());
  const Shape shapes[] = {{"logits  H*W     NN", false, false, 64, 32000, 128},
                          {"grad W  H^T*G   TN", true, false, 128, 32000, 64},
                          {"grad H  G*W^T   NT", false, true, 64, 128, 32000},
                          {"square-ish      NN", false, false, 2048, 4096, 1024}};
  std::printf("%-20s %5s %6s %6s | %9s %9s %9s  (GFLOP/s, median of %d)\n", "shape", "m", "n", "k", "1 thread",
              "2 threads", "plain", runs);
  std::mt19937 gen(1);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (const Shape& s : shapes) {
    std::vector<float> a(size_t(s.m * s.k)), b(size_t(s.k * s.n)), c(size_t(s.m * s.n));
    for (float& v : a) v = u(gen);
    for (float& v : b) v = u(gen);
    const int64_t lda = s.ta ? s.m : s.k, ldb = s.tb ? s.k : s.n;
    const double flop = 2.0 * double(s.m) * double(s.n) * double(s.k);
    double gf[2];
    for (int threads : {1, 2}) {
      const double sec = median_seconds(runs, [&] {
        kdfuse::sgemm(s.ta, s.tb, s.m, s.n, s.k, 1.0f, a.data(), lda, b.data(), ldb, 0.0f, c.data(), s.n, threads);
      });
      gf[threads - 1] = flop / sec * 1e-9;
    }
    const int plain_runs = flop > 1e10 ? 1 : std::min(runs, 3);
    const double sec = median_seconds(plain_runs, [&] { plain(s, a.data(), b.data(), c.data()); });
    std::printf("%-20s %5lld %6lld %6lld | %9.1f %9.1f %9.1f\n", s.name, (long long)s.m, (long long)s.n, (long long)s.k,
                gf[0], gf[1], flop / sec * 1e-9);
  }
  return 0;
}
