// C++ tests of native/core alone (no Node): the fused loss and softmax against a plain float64
// implementation written here, bit-identical results across thread counts and instruction sets'
// schedules, and error reporting. Prints "N passed, M failed"; exit code 1 on any failure.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "kdfuse_core.h"
#include "thread_pool.h"


// float64 KL distillation loss (divergence kl, reduction mean, optional labels, no smoothing)
static double ref_kl(const std::vector<float>& s, const std::vector<float>& t, const std::vector<int32_t>* y, int64_t rows,
                     int64_t cols, double T, double alpha, std::vector<double>* grad) {
  grad->assign(size_t(rows * cols), 0.0);
  double total = 0.0;
  const double a = y ? alpha : 1.0, w = a * T * T;
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<double> p(cols), q(cols), rr(cols);
    double ms = -INFINITY, mt = -INFINITY, m1 = -INFINITY;
    for (int64_t c = 0; c < cols; ++c) {
      ms = std::max(ms, s[r * cols + c] / T); mt = std::max(mt, t[r * cols + c] / T); m1 = std::max(m1, double(s[r * cols + c]));
    }
    double zs = 0, zt = 0, z1 = 0;
    for (int64_t c = 0; c < cols; ++c) {
      q[c] = std::exp(s[r * cols + c] / T - ms); zs += q[c];
      p[c] = std::exp(t[r * cols + c] / T - mt); zt += p[c];
      rr[c] = std::exp(s[r * cols + c] - m1); z1 += rr[c];
    }
    double kl = 0;
    for (int64_t c = 0; c < cols; ++c) {
      q[c] /= zs; p[c] /= zt; rr[c] /= z1;
      if (p[c] > 0) kl += p[c] * (std::log(p[c]) - std::log(q[c]));
    }
    double L = w * kl;
    if (y) L += (1 - alpha) * -std::log(rr[(*y)[r]]);
    total += L;
    for (int64_t c = 0; c < cols; ++c) {
      double g = w / T * (q[c] - p[c]);
      if (y) g += (1 - alpha) * (rr[c] - (c == (*y)[r] ? 1.0 : 0.0));
      (*grad)[r * cols + c] = g / double(rows);
    }
  }
  return total / double(rows);
}

static void test_kl_against_reference(kdfuse::Isa isa) {
  std::mt19937 gen(42);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  const int64_t shapes[][2] = {{1, 1}, {3, 2}, {17, 10}, {5, 1000}, {4, 1025}, {2, 32000}, {1, 50257}};
  for (auto& sh : shapes) {
    for (double T : {0.5, 1.0, 4.0}) {
      for (bool labels : {false, true}) {
        const int64_t rows = sh[0], cols = sh[1];
        std::vector<float> s(rows * cols), t(rows * cols), g(rows * cols);
        for (auto& v : s) v = nd(gen);
        for (auto& v : t) v = nd(gen);
        std::vector<int32_t> y(rows);
        for (auto& v : y) v = int32_t(gen() % cols);
        kdfuse::DistillLossArgs a;
        a.student = s.data(); a.teacher = t.data(); a.rows = rows; a.cols = cols; a.temperature = T; a.alpha = 0.7;
        a.labels = labels ? y.data() : nullptr; a.grad_student = g.data();
        kdfuse::DistillLossResult res;
        kdfuse::ExecConfig cfg; cfg.isa = isa;
        const kdfuse::Status st = kdfuse::distill_loss(a, &res, cfg);
        CHECK(st.ok(), "status %s", st.message.c_str());
        std::vector<double> gref;
        const double want = ref_kl(s, t, labels ? &y : nullptr, rows, cols, T, 0.7, &gref);
        CHECK(std::fabs(res.loss - want) <= 1e-5 * std::max(std::fabs(want), 1e-3), "%s %lldx%lld T=%g loss %.9g vs %.9g",
              kdfuse::isa_name(isa), (long long)rows, (long long)cols, T, res.loss, want);
        double gmax = 1e-10, worst = 0;
        for (double v : gref) gmax = std::max(gmax, std::fabs(v));
        for (size_t i = 0; i < g.size(); ++i) worst = std::max(worst, std::fabs(g[i] - gref[i]));
        CHECK(worst <= 1e-5 * gmax, "%s %lldx%lld T=%g grad err %.3g > %.3g", kdfuse::isa_name(isa), (long long)rows,
              (long long)cols, T, worst, 1e-5 * gmax);
      }
    }
  }
}

static void test_softmax(kdfuse::Isa isa) {
  std::mt19937 gen(7);
  std::normal_distribution<float> nd(0.0f, 4.0f);
  for (int64_t cols : {1, 9, 1000, 131072}) {
    const int64_t rows = 2;
    std::vector<float> x(rows * cols), y(rows * cols), ly(rows * cols);
    for (auto& v : x) v = nd(gen);
    kdfuse::ExecConfig cfg; cfg.isa = isa;
    kdfuse::SoftmaxArgs a{x.data(), rows, cols, 2.0, false, y.data()};
    CHECK(kdfuse::softmax_forward(a, cfg).ok(), "softmax status");
    a.log = true; a.y = ly.data();
    CHECK(kdfuse::softmax_forward(a, cfg).ok(), "log-softmax status");
    double worst = 0, worst_log = 0;
    for (int64_t r = 0; r < rows; ++r) {
      double m = -INFINITY, z = 0;
      for (int64_t c = 0; c < cols; ++c) m = std::max(m, x[r * cols + c] / 2.0);
      for (int64_t c = 0; c < cols; ++c) z += std::exp(x[r * cols + c] / 2.0 - m);
      for (int64_t c = 0; c < cols; ++c) {
        const double l = x[r * cols + c] / 2.0 - m - std::log(z);
        worst = std::max(worst, std::fabs(y[r * cols + c] - std::exp(l)));
        worst_log = std::max(worst_log, std::fabs(ly[r * cols + c] - l) / std::max(1.0, std::fabs(l)));
      }
    }
    CHECK(worst <= 1e-6, "%s softmax cols=%lld err %.3g", kdfuse::isa_name(isa), (long long)cols, worst);
    CHECK(worst_log <= 1e-5, "%s log-softmax cols=%lld err %.3g", kdfuse::isa_name(isa), (long long)cols, worst_log);
  }
}

static void test_determinism() {
  std::mt19937 gen(11);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  for (auto sh : {std::pair<int64_t, int64_t>{64, 5000}, {1, 131072}, {3, 70000}}) {
    const int64_t n = sh.first * sh.second;
    std::vector<float> s(n), t(n);
    for (auto& v : s) v = nd(gen);
    for (auto& v : t) v = nd(gen);
    std::vector<std::vector<float>> grads;
    std::vector<double> losses;
    for (int threads : {1, 2, 3, 8}) {
      std::vector<float> g(n), gt(n);
      kdfuse::DistillLossArgs a;
      a.student = s.data(); a.teacher = t.data(); a.rows = sh.first; a.cols = sh.second; a.temperature = 2;
      a.divergence = kdfuse::Divergence::JSD; a.grad_student = g.data(); a.grad_teacher = gt.data();
      kdfuse::DistillLossResult res;
      kdfuse::ExecConfig cfg; cfg.threads = threads;
      CHECK(kdfuse::distill_loss(a, &res, cfg).ok(), "status");
      g.insert(g.end(), gt.begin(), gt.end());
      grads.push_back(g);
      losses.push_back(res.loss);
    }
    for (size_t i = 1; i < grads.size(); ++i) {
      CHECK(losses[i] == losses[0], "loss differs with threads");
      CHECK(std::memcmp(grads[i].data(), grads[0].data(), grads[0].size() * sizeof(float)) == 0, "grad differs with threads");
    }
  }
}

// A thread the system refuses (RLIMIT_NPROC, memory) must not end the process (std::system_error
// escaped parallel_for and called terminate): the call runs on the threads there are, with the
// same bits as on one thread. Run first, before any other call has started pool workers.
static void test_thread_spawn_failure() {
  std::mt19937 gen(5);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  const int64_t rows = 64, cols = 5000, n = rows * cols;
  std::vector<float> s(n), t(n);
  for (auto& v : s) v = nd(gen);
  for (auto& v : t) v = nd(gen);
  std::vector<std::vector<float>> grads;
  std::vector<double> losses;
  for (int limit : {0, 1, -1}) {
    kdfuse::set_thread_spawn_limit_for_testing(limit);
    for (int threads : {1, 4}) {
      std::vector<float> g(n);
      kdfuse::DistillLossArgs a;
      a.student = s.data(); a.teacher = t.data(); a.rows = rows; a.cols = cols; a.temperature = 2;
      a.grad_student = g.data();
      kdfuse::DistillLossResult res;
      kdfuse::ExecConfig cfg; cfg.threads = threads;
      CHECK(kdfuse::distill_loss(a, &res, cfg).ok(), "status with spawn limit %d", limit);
      std::vector<float> sm(n);
      kdfuse::SoftmaxArgs sa{s.data(), rows, cols, 2.0, false, sm.data()};
      CHECK(kdfuse::softmax_forward(sa, cfg).ok(), "softmax status with spawn limit %d", limit);
      g.insert(g.end(), sm.begin(), sm.end());
      grads.push_back(g);
      losses.push_back(res.loss);
    }
  }
  kdfuse::set_thread_spawn_limit_for_testing(-1);
  for (size_t i = 1; i < grads.size(); ++i) {
    CHECK(losses[i] == losses[0], "loss differs when threads are refused (%zu)", i);
    CHECK(std::memcmp(grads[i].data(), grads[0].data(), grads[0].size() * sizeof(float)) == 0, "result differs when threads are refused (%zu)", i);
  }
}

static void test_errors() {
  float s[4] = {1, NAN, 2, 3}, t[4] = {0, 0, 0, 0};
  kdfuse::DistillLossArgs a;
  a.student = s; a.teacher = t; a.rows = 2; a.cols = 2;
  kdfuse::Status st = kdfuse::distill_loss(a, nullptr);
  CHECK(st.kind == kdfuse::ErrorKind::Range && st.message.find("student") != std::string::npos &&
            st.message.find("index 1") != std::string::npos, "NaN message: %s", st.message.c_str());
  s[1] = 0;
  a.temperature = -1;
  st = kdfuse::distill_loss(a, nullptr);
  CHECK(st.kind == kdfuse::ErrorKind::Range && st.message.find("temperature") != std::string::npos, "T: %s", st.message.c_str());
  a.temperature = 1; a.alpha = 1.5;
  st = kdfuse::distill_loss(a, nullptr);
  CHECK(st.kind == kdfuse::ErrorKind::Range && st.message.find("alpha") != std::string::npos, "alpha: %s", st.message.c_str());
  a.alpha = 0.5;
  int32_t y[2] = {0, 5};
  a.labels = y;
  st = kdfuse::distill_loss(a, nullptr);
  CHECK(st.kind == kdfuse::ErrorKind::Range && st.message.find("labels[1]") != std::string::npos, "labels: %s", st.message.c_str());
  a.labels = nullptr;
  s[0] = s[1] = -INFINITY;
  st = kdfuse::distill_loss(a, nullptr);
  CHECK(st.kind == kdfuse::ErrorKind::Range && st.message.find("student row 0") != std::string::npos, "all -inf: %s", st.message.c_str());
}

int main() {
  test_thread_spawn_failure();
  test_kl_against_reference(kdfuse::Isa::Generic);
  if (kdfuse::cpu_has_avx2_fma()) test_kl_against_reference(kdfuse::Isa::Avx2);
  test_softmax(kdfuse::Isa::Generic);
  if (kdfuse::cpu_has_avx2_fma()) test_softmax(kdfuse::Isa::Avx2);
  test_determinism();
  test_errors();
  return finish();
}
