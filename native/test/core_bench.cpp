// The C++ core's distillation loss timed alone (no Node-API, no TypeScript): the harness behind the
// kernel-only figures quoted in the README and the closing notes.
//
//   kdfuse_core_bench ROWS COLS [THREADS=0] [CALLS=50] [T=2] [LABELS=1]
//
// KL loss, alpha 0.5, mean over rows, student gradient into a reused buffer; logits uniform in
// [-4, 4), seed fixed. Prints the median and the fastest call, and the effective GB/s at 12 bytes
// per element (read s and t, write dL/ds). THREADS 0 = all the cores this process may use.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "kdfuse_core.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s ROWS COLS [THREADS=0] [CALLS=50] [T=2] [LABELS=1]\n", argv[0]);
    return 2;
  }
  const int64_t rows = std::atoll(argv[1]), cols = std::atoll(argv[2]);
  const int threads = argc > 3 ? std::atoi(argv[3]) : 0;
  const int calls = argc > 4 ? std::max(1, std::atoi(argv[4])) : 50;
  const double temperature = argc > 5 ? std::atof(argv[5]) : 2.0;
  const bool labels = argc > 6 ? std::atoi(argv[6]) != 0 : true;
  if (rows < 1 || cols < 1) {
    std::fprintf(stderr, "ROWS and COLS must be integers >= 1\n");
    return 2;
  }
  const size_t n = size_t(rows * cols);
  std::vector<float> s(n), t(n), g(n);
  std::vector<int32_t> y(static_cast<size_t>(rows));
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-4.0f, 4.0f);
  for (float& v : s) v = u(rng);
  for (float& v : t) v = u(rng);
  for (int32_t& v : y) v = int32_t(rng() % uint64_t(cols));

  kdfuse::DistillLossArgs a;
  a.student = s.data();
  a.teacher = t.data();
  a.rows = rows;
  a.cols = cols;
  a.labels = labels ? y.data() : nullptr;
  a.temperature = temperature;
  a.alpha = 0.5;
  a.grad_student = g.data();
  kdfuse::ExecConfig cfg;
  cfg.threads = threads;

  std::vector<double> secs;
  for (int i = 0; i < calls + 1; ++i) {  // one warm-up call
    kdfuse::DistillLossResult res;
    const auto t0 = std::chrono::steady_clock::now();
    const kdfuse::Status st = kdfuse::distill_loss(a, &res, cfg);
    const auto t1 = std::chrono::steady_clock::now();
    if (!st.ok()) {
      std::fprintf(stderr, "error: %s\n", st.message.c_str());
      return 1;
    }
    if (i > 0) secs.push_back(std::chrono::duration<double>(t1 - t0).count());
  }
  std::sort(secs.begin(), secs.end());
  const double med = secs[secs.size() / 2];
  std::printf("%lldx%lld, %d threads (0 = all), T = %g, labels %s: median %.3f us, fastest %.3f us, %.2f GB/s over %d calls\n",
              (long long)rows, (long long)cols, threads, temperature, labels ? "yes" : "no", med * 1e6, secs[0] * 1e6,
              12.0 * double(n) / med / 1e9, calls);
  return 0;
}
