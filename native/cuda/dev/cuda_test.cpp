// Checks every CUDA kernel against the CPU core on the same random cases: same Status (kind and
// message) for bad input, loss within 1e-5 relative, gradients and outputs within 1e-5 * max|ref|,
// infinities in the same places, the device API bit-identical to the host API, and repeated runs
// bit-identical. Without a device it checks that calls fail cleanly, prints "skipped: ..." and
// exits 0. Built twice: against the GPU (kdfuse_cuda_test) and against the CPU emulator of the
// same CUDA source (kdfuse_cuda_emu_test, KDFUSE_CUDA_EMULATE), which has a device everywhere.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "kdfuse_core.h"
#include "kdfuse_cuda.h"

using namespace kdfuse;
namespace kc = kdfuse::cuda;

namespace {

int g_checks = 0, g_failures = 0;
std::string g_case;

#define CHECK(cond, ...)                                                      \
  do {                                                                        \
    ++g_checks;                                                               \
    if (!(cond)) {                                                            \
      ++g_failures;                                                           \
      if (g_failures <= 40) {                                                 \
        std::fprintf(stderr, "FAIL [%s] line %d: ", g_case.c_str(), __LINE__); \
        std::fprintf(stderr, __VA_ARGS__);                                    \
        std::fprintf(stderr, "\n");                                           \
      }                                                                       \
    }                                                                         \
  } while (0)

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

#if defined(KDFUSE_CUDA_EMULATE)
constexpr bool kEmulated = true;
#else
constexpr bool kEmulated = false;
#endif

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint64_t next() {
    s += 0x9E3779B97F4A7C15ull;
    uint64_t z = s;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return double(next() >> 11) * (1.0 / 9007199254740992.0); }
  int below(int n) { return int(next() % uint64_t(n)); }
  float normal() {
    const double u = std::max(uniform(), 1e-300), v = uniform();
    return float(std::sqrt(-2.0 * std::log(u)) * std::cos(6.283185307179586 * v));
  }
};

const char* kind_name(ErrorKind k) {
  switch (k) {
    case ErrorKind::None: return "ok";
    case ErrorKind::Type: return "TypeError";
    case ErrorKind::Range: return "RangeError";
    default: return "Internal";
  }
}

bool same_status(const Status& cpu, const Status& gpu, const char* what) {
  const bool same = cpu.kind == gpu.kind && cpu.message == gpu.message;
  CHECK(same, "%s: CPU %s \"%s\" vs CUDA %s \"%s\"", what, kind_name(cpu.kind), cpu.message.c_str(),
        kind_name(gpu.kind), gpu.message.c_str());
  return same;
}

// |gpu - cpu| <= tol * max|cpu| (+ abs_floor) over finite values; non-finite values must match exactly.
void compare_array(const char* what, const float* cpu, const float* gpu, size_t n, double tol = 1e-5,
                   double abs_floor = 0.0) {
  double m = 0.0;
  for (size_t i = 0; i < n; ++i)
    if (std::isfinite(cpu[i])) m = std::max(m, double(std::fabs(cpu[i])));
  const double bound = tol * m + abs_floor + 1e-30;
  size_t bad = 0, first = 0;
  double worst = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const float c = cpu[i], g = gpu[i];
    bool ok;
    if (std::isnan(c)) ok = std::isnan(g);
    else if (std::isinf(c)) ok = g == c;
    else {
      const double e = std::fabs(double(g) - double(c));
      ok = std::isfinite(g) && e <= bound;
      if (std::isfinite(g)) worst = std::max(worst, e);
    }
    if (!ok && bad++ == 0) first = i;
  }
  CHECK(bad == 0, "%s: %zu of %zu elements differ; first at %zu: CPU %.9g, CUDA %.9g (bound %.3g, max|ref| %.3g)", what,
        bad, n, first, n ? cpu[first] : 0.0f, n ? gpu[first] : 0.0f, bound, m);
  (void)worst;
}

void compare_value(const char* what, double cpu, double gpu, double abs_floor) {
  bool ok;
  if (std::isnan(cpu)) ok = std::isnan(gpu);
  else if (std::isinf(cpu)) ok = gpu == cpu;
  else ok = std::isfinite(gpu) && std::fabs(gpu - cpu) <= 1e-5 * std::fabs(cpu) + abs_floor;
  CHECK(ok, "%s: CPU %.12g vs CUDA %.12g", what, cpu, gpu);
}

bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

// ---------------------------------------------------------------- distillation loss

struct DistillCase {
  int64_t rows = 1, cols = 1;
  DistillLossArgs a;  // options only; pointers are filled per run
  bool labels = false, want_gs = true, want_gt = false, loss_rows = false, gor_rows = false;
  double ignore_frac = 0.0;
  int mask = 0;        // 0 none; 1 some -inf in both; 2 -inf in student where teacher is finite (infinite divergence)
  float noise = -1.0f; // < 0: independent teacher; else teacher = student + noise * N(0, 1)
  float scale = 2.0f;  // logit scale
};

struct DistillData {
  std::vector<float> s, t, gor;
  std::vector<int32_t> y;
};

DistillData make_data(const DistillCase& c, Rng& rng) {
  DistillData d;
  const size_t n = size_t(c.rows * c.cols);
  d.s.resize(n);
  d.t.resize(n);
  for (size_t i = 0; i < n; ++i) {
    d.s[i] = c.scale * rng.normal();
    d.t[i] = c.noise < 0 ? c.scale * rng.normal() : d.s[i] + c.noise * rng.normal();
  }
  if (c.mask) {
    for (int64_t r = 0; r < c.rows; ++r) {
      for (int64_t j = 0; j < c.cols; ++j) {
        if (rng.uniform() >= 0.1) continue;
        const size_t i = size_t(r * c.cols + j);
        if (c.mask == 1) {
          const int w = rng.below(3);
          if (w != 1) d.s[i] = -kInf;
          if (w != 0) d.t[i] = -kInf;
        } else {
          d.s[i] = -kInf;
        }
      }
      // keep a finite logit in each row
      d.s[size_t(r * c.cols)] = 1.0f;
      d.t[size_t(r * c.cols)] = 0.5f;
    }
  }
  if (c.labels) {
    d.y.resize(size_t(c.rows));
    for (auto& v : d.y) v = rng.uniform() < c.ignore_frac ? c.a.ignore_index : rng.below(int(c.cols));
  }
  if (c.gor_rows) {
    d.gor.resize(size_t(c.rows));
    for (auto& v : d.gor) v = float(rng.uniform() * 2.0 - 0.5);
  }
  return d;
}

struct DistillOut {
  Status st;
  DistillLossResult res;
  std::vector<float> gs, gt, lr;
};

DistillLossArgs bind(const DistillCase& c, const DistillData& d, DistillOut* o) {
  DistillLossArgs a = c.a;
  a.rows = c.rows;
  a.cols = c.cols;
  a.student = d.s.data();
  a.teacher = d.t.data();
  a.labels = d.y.empty() ? nullptr : d.y.data();
  a.grad_output_rows = d.gor.empty() ? nullptr : d.gor.data();
  const size_t n = size_t(c.rows * c.cols);
  o->gs.assign(c.want_gs ? n : 0, kNaN);
  o->gt.assign(c.want_gt ? n : 0, kNaN);
  o->lr.assign(c.loss_rows ? size_t(c.rows) : 0, kNaN);
  a.grad_student = c.want_gs ? o->gs.data() : nullptr;
  a.grad_teacher = c.want_gt ? o->gt.data() : nullptr;
  a.loss_rows = c.loss_rows ? o->lr.data() : nullptr;
  return a;
}

DistillOut run_cpu(const DistillCase& c, const DistillData& d) {
  DistillOut o;
  const DistillLossArgs a = bind(c, d, &o);
  o.st = kdfuse::distill_loss(a, &o.res);
  return o;
}

DistillOut run_gpu(const DistillCase& c, const DistillData& d) {
  DistillOut o;
  const DistillLossArgs a = bind(c, d, &o);
  o.st = kc::distill_loss(a, &o.res);
  return o;
}

DistillOut run_gpu_device(const DistillCase& c, const DistillData& d, int repeats) {
  DistillOut o;
  DistillLossArgs a = bind(c, d, &o);
  kc::DeviceBuffer s, t, y, g, gs, gt, lr;
  Status st = s.upload(d.s.data(), int64_t(d.s.size()));
  if (st.ok()) st = t.upload(d.t.data(), int64_t(d.t.size()));
  if (st.ok() && !d.y.empty()) st = y.upload(d.y.data(), int64_t(d.y.size()));
  if (st.ok() && !d.gor.empty()) st = g.upload(d.gor.data(), int64_t(d.gor.size()));
  if (!st.ok()) {
    o.st = st;
    return o;
  }
  kc::DistillDeviceBuffers b;
  b.student = &s;
  b.teacher = &t;
  b.labels = d.y.empty() ? nullptr : &y;
  b.grad_output_rows = d.gor.empty() ? nullptr : &g;
  b.grad_student = c.want_gs ? &gs : nullptr;
  b.grad_teacher = c.want_gt ? &gt : nullptr;
  b.loss_rows = c.loss_rows ? &lr : nullptr;
  for (int i = 0; i < repeats; ++i) {
    o.st = kc::distill_loss_device(a, b, &o.res);
    if (!o.st.ok()) return o;
  }
  if (c.want_gs) o.st = gs.download(o.gs.data(), int64_t(o.gs.size()));
  if (o.st.ok() && c.want_gt) o.st = gt.download(o.gt.data(), int64_t(o.gt.size()));
  if (o.st.ok() && c.loss_rows) o.st = lr.download(o.lr.data(), int64_t(o.lr.size()));
  return o;
}

std::string describe(const DistillCase& c) {
  const DistillLossArgs& a = c.a;
  char buf[400];
  std::snprintf(buf, sizeof buf,
                "distill %lldx%lld div=%d T=%g alpha=%g t2=%d eps=%g beta=%g red=%d labels=%d ign=%g gs=%d gt=%d "
                "rows=%d gor=%d mask=%d noise=%g",
                (long long)c.rows, (long long)c.cols, int(a.divergence), a.temperature, a.alpha, int(a.scale_by_t2),
                a.label_smoothing, a.beta, int(a.reduction), int(c.labels), c.ignore_frac, int(c.want_gs),
                int(c.want_gt), int(c.loss_rows), int(c.gor_rows), c.mask, double(c.noise));
  return buf;
}

void check_distill(const DistillCase& c, uint64_t seed, bool device_api) {
  g_case = describe(c);
  Rng rng(seed);
  const DistillData d = make_data(c, rng);
  const DistillOut cpu = run_cpu(c, d);
  const DistillOut gpu = run_gpu(c, d);
  if (!same_status(cpu.st, gpu.st, "status")) return;
  if (cpu.st.ok()) {
    CHECK(cpu.res.valid_rows == gpu.res.valid_rows, "valid_rows: CPU %lld vs CUDA %lld", (long long)cpu.res.valid_rows,
          (long long)gpu.res.valid_rows);
    // float32 log-normalisers leave about 1e-6 of absolute error per row loss, whatever its size
    const double w = (c.labels ? c.a.alpha : 1.0) * (c.a.scale_by_t2 ? c.a.temperature * c.a.temperature : 1.0);
    const double rows_in_sum = c.a.reduction == Reduction::Mean ? 1.0 : double(std::max<int64_t>(1, cpu.res.valid_rows));
    compare_value("loss", cpu.res.loss, gpu.res.loss, 2e-6 * std::max(1.0, w) * rows_in_sum);
    // Where the true gradient is zero (JSD with beta = 0 and no hard term, say) both sides hold
    // rounding noise, so the bound also has a floor of 1e-6 of the largest gradient the options
    // allow: |upstream scale| * max(w / T, 1 - alpha).
    double up = std::fabs(c.a.grad_output);
    if (c.a.reduction == Reduction::Mean) up /= double(std::max<int64_t>(1, cpu.res.valid_rows));
    if (c.a.reduction == Reduction::None) {
      up = d.gor.empty() ? 1.0 : 0.0;
      for (float g : d.gor) up = std::max(up, double(std::fabs(g)));
    }
    const double floor = 1e-6 * up * std::max(w / c.a.temperature, c.labels ? 1.0 - c.a.alpha : 0.0);
    if (c.want_gs) compare_array("grad_student", cpu.gs.data(), gpu.gs.data(), cpu.gs.size(), 1e-5, floor);
    if (c.want_gt) compare_array("grad_teacher", cpu.gt.data(), gpu.gt.data(), cpu.gt.size(), 1e-5, floor);
    if (c.loss_rows) {
      for (size_t r = 0; r < cpu.lr.size(); ++r)
        compare_value("loss_rows", cpu.lr[r], gpu.lr[r], 2e-6 * std::max(1.0, w));
    }
  }
  if (!device_api) return;
  // The device API runs the same kernels: bit-identical to the host API, also when called twice.
  const DistillOut dev = run_gpu_device(c, d, 2);
  if (!same_status(gpu.st, dev.st, "device API status")) return;
  if (!gpu.st.ok()) return;
  CHECK(dev.res.loss == gpu.res.loss || (std::isnan(dev.res.loss) && std::isnan(gpu.res.loss)),
        "device API loss %.17g vs host API %.17g", dev.res.loss, gpu.res.loss);
  CHECK(bit_equal(dev.gs, gpu.gs), "device API grad_student differs from the host API");
  CHECK(bit_equal(dev.gt, gpu.gt), "device API grad_teacher differs from the host API");
  CHECK(bit_equal(dev.lr, gpu.lr), "device API loss_rows differs from the host API");
}

DistillCase random_case(int64_t rows, int64_t cols, Rng& rng) {
  DistillCase c;
  c.rows = rows;
  c.cols = cols;
  const Divergence divs[] = {Divergence::KL, Divergence::ReverseKL, Divergence::JSD};
  const double temps[] = {1.0, 2.0, 0.5, 4.0, 1.5};
  const double alphas[] = {0.0, 0.3, 0.5, 1.0};
  const double betas[] = {0.0, 0.5, 1.0, 0.3};
  const Reduction reds[] = {Reduction::Mean, Reduction::Sum, Reduction::None};
  c.a.divergence = divs[rng.below(3)];
  c.a.temperature = temps[rng.below(5)];
  c.a.alpha = alphas[rng.below(4)];
  c.a.scale_by_t2 = rng.below(4) != 0;
  c.a.beta = betas[rng.below(4)];
  c.a.reduction = reds[rng.below(3)];
  c.a.grad_output = rng.below(2) ? 1.0 : 0.7;
  c.labels = rng.below(3) != 0;
  c.ignore_frac = rng.below(2) ? 0.25 : 0.0;
  c.a.label_smoothing = rng.below(2) ? 0.1 : 0.0;
  c.want_gs = rng.below(6) != 0;
  c.want_gt = rng.below(2) != 0;
  c.loss_rows = rng.below(2) != 0;
  c.gor_rows = c.a.reduction == Reduction::None && rng.below(2) != 0;
  c.mask = rng.below(4) == 0 ? 1 + rng.below(2) : 0;
  c.noise = rng.below(4) == 0 ? 0.5f : -1.0f;
  return c;
}

void distill_cases(bool large) {
  // Shapes around every boundary of the kernels: alignment heads and tails, warp rows up to 1024
  // columns, block rows of 128, 256 and 512 threads, rows that start misaligned.
  std::vector<std::pair<int64_t, int64_t>> shapes = {{1, 1},    {1, 3},    {2, 5},     {3, 7},    {5, 32},
                                                     {4, 33},   {9, 100},  {17, 129},  {3, 1024}, {3, 1025},
                                                     {2, 1029}, {3, 4099}, {2, 16385}, {2, 32000}};
  if (large) {
    shapes.push_back({64, 32000});
    shapes.push_back({3, 128000});
    shapes.push_back({300, 513});
    shapes.push_back({40000, 10});  // more rows than one grid-stride pass of warp rows in some configs
  }
  Rng pick(12345);
  uint64_t seed = 1;
  for (const auto& sh : shapes) {
    const int n = sh.first * sh.second > 20000 ? 4 : 10;
    for (int i = 0; i < n; ++i) check_distill(random_case(sh.first, sh.second, pick), seed++, i < 2);
  }
  // Every kernel variant (divergence x hard-term mode x row mode) with both gradients.
  for (int64_t cols : {int64_t(37), int64_t(2051)}) {
    for (int div = 0; div < 3; ++div) {
      for (int hard = 0; hard < 3; ++hard) {
        DistillCase c;
        c.rows = 6;
        c.cols = cols;
        c.a.divergence = Divergence(div);
        c.a.temperature = hard == 1 ? 1.0 : 3.0;
        c.labels = hard != 0;
        c.ignore_frac = 0.2;
        c.a.alpha = 0.6;
        c.a.label_smoothing = 0.05;
        c.want_gt = true;
        c.loss_rows = true;
        check_distill(c, seed++, true);
        c.want_gs = false;  // teacher gradient only
        check_distill(c, seed++, false);
        c.want_gt = false;  // loss only
        check_distill(c, seed++, false);
      }
    }
  }
  // Low temperature: many exp results fall below the smallest normal float, which the CPU core
  // flushes to 0 (JSD's log m once went to -inf here, giving an infinite loss).
  for (int div = 0; div < 3; ++div) {
    DistillCase c;
    c.rows = 4;
    c.cols = 1000;
    c.a.divergence = Divergence(div);
    c.a.temperature = 0.1;
    c.scale = 3.0f;
    c.labels = true;
    c.want_gt = true;
    c.loss_rows = true;
    check_distill(c, seed++, true);
    c.cols = 5000;  // block rows
    c.a.beta = 0.3;
    check_distill(c, seed++, false);
  }
  // Near-equal teacher and student (small KL), all rows ignored, infinite divergences.
  {
    DistillCase c;
    c.rows = 8;
    c.cols = 3000;
    c.noise = 0.3f;
    c.a.temperature = 2.0;
    c.want_gt = true;
    check_distill(c, seed++, true);
    c.labels = true;
    c.ignore_frac = 1.0;
    c.a.alpha = 0.5;
    check_distill(c, seed++, true);
    c.ignore_frac = 0.0;
    for (int div = 0; div < 3; ++div) {
      c.mask = 2;
      c.a.divergence = Divergence(div);
      check_distill(c, seed++, true);
      c.mask = 1;
      check_distill(c, seed++, false);
    }
  }
}

void set_at(std::vector<float>& v, int64_t cols, int64_t r, int64_t c, float x) { v[size_t(r * cols + c)] = x; }

void distill_errors() {
  uint64_t seed = 1000;
  auto base = [] {
    DistillCase c;
    c.rows = 6;
    c.cols = 37;
    c.labels = true;
    c.a.alpha = 0.5;
    c.want_gt = true;
    return c;
  };
  auto run = [&](const char* name, const DistillCase& c, auto&& edit) {
    g_case = std::string("distill error: ") + name;
    Rng rng(seed++);
    DistillData d = make_data(c, rng);
    edit(d, c);
    DistillOut cpu = run_cpu(c, d);
    DistillOut gpu = run_gpu(c, d);
    same_status(cpu.st, gpu.st, "host API status");
    DistillOut dev = run_gpu_device(c, d, 1);
    same_status(cpu.st, dev.st, "device API status");
    CHECK(!cpu.st.ok() || std::string(name).find("ignored") != std::string::npos, "expected an error");
  };
  const DistillCase c = base();
  run("NaN in teacher", c, [](DistillData& d, const DistillCase& k) { set_at(d.t, k.cols, 2, 5, kNaN); });
  run("+Infinity in student", c, [](DistillData& d, const DistillCase& k) { set_at(d.s, k.cols, 1, 0, kInf); });
  run("NaN in student row 3, teacher row 1", c, [](DistillData& d, const DistillCase& k) {
    set_at(d.s, k.cols, 3, 4, kNaN);
    set_at(d.t, k.cols, 1, 36, kNaN);
  });
  run("NaN in student and teacher of the same row", c, [](DistillData& d, const DistillCase& k) {
    set_at(d.s, k.cols, 4, 30, kNaN);
    set_at(d.t, k.cols, 4, 2, kInf);
  });
  run("NaN in an ignored row", c, [](DistillData& d, const DistillCase& k) {
    d.y[2] = k.a.ignore_index;
    set_at(d.t, k.cols, 2, 5, kNaN);
  });
  run("student row all -Infinity", c, [](DistillData& d, const DistillCase& k) {
    for (int64_t j = 0; j < k.cols; ++j) set_at(d.s, k.cols, 2, j, -kInf);
  });
  run("teacher row all -Infinity", c, [](DistillData& d, const DistillCase& k) {
    for (int64_t j = 0; j < k.cols; ++j) set_at(d.t, k.cols, 4, j, -kInf);
  });
  run("all -Infinity in an ignored row", c, [](DistillData& d, const DistillCase& k) {
    d.y[3] = k.a.ignore_index;
    for (int64_t j = 0; j < k.cols; ++j) set_at(d.s, k.cols, 3, j, -kInf);
  });
  {
    DistillCase k = c;
    k.a.temperature = 0.5;  // finite logits that 1/T carries out of float32
    run("student logit 3e38 at T 0.5", k, [](DistillData& d, const DistillCase& q) { set_at(d.s, q.cols, 2, 7, 3e38f); });
    run("teacher logit 3e38 at T 0.5", k, [](DistillData& d, const DistillCase& q) { set_at(d.t, q.cols, 1, 0, 3e38f); });
    run("logit 3e38 at T 0.5 in an ignored row", k, [](DistillData& d, const DistillCase& q) {
      d.y[3] = q.a.ignore_index;
      set_at(d.s, q.cols, 3, 5, 3e38f);
    });
  }
  run("label too large", c, [](DistillData& d, const DistillCase& k) {
    d.y[3] = int32_t(k.cols);
    set_at(d.t, k.cols, 0, 1, kNaN);  // the label error is reported first
  });
  run("negative label", c, [](DistillData& d, const DistillCase&) { d.y[0] = -5; });
  {
    DistillCase k = c;
    k.a.reduction = Reduction::None;
    k.gor_rows = true;
    run("gradOutput row NaN", k, [](DistillData& d, const DistillCase&) { d.gor[4] = kNaN; });
  }
  auto bad_option = [&](const char* name, auto&& edit) {
    DistillCase k = c;
    edit(k);
    run(name, k, [](DistillData&, const DistillCase&) {});
  };
  bad_option("temperature 0", [](DistillCase& k) { k.a.temperature = 0.0; });
  bad_option("temperature NaN", [](DistillCase& k) { k.a.temperature = std::nan(""); });
  bad_option("alpha 1.5", [](DistillCase& k) { k.a.alpha = 1.5; });
  bad_option("labelSmoothing 1", [](DistillCase& k) { k.a.label_smoothing = 1.0; });
  bad_option("beta -0.1", [](DistillCase& k) { k.a.beta = -0.1; });
  bad_option("gradOutput Infinity", [](DistillCase& k) { k.a.grad_output = HUGE_VAL; });

  // Shapes and null inputs (no arrays needed).
  g_case = "distill error: shapes and nulls";
  DistillLossArgs a;
  float x[4] = {0, 1, 2, 3};
  a.student = x;
  a.teacher = x;
  a.rows = 0;
  a.cols = 4;
  same_status(kdfuse::distill_loss(a, nullptr), kc::distill_loss(a, nullptr), "rows 0");
  a.rows = 1;
  a.cols = 0;
  same_status(kdfuse::distill_loss(a, nullptr), kc::distill_loss(a, nullptr), "cols 0");
  a.cols = 4;
  a.student = nullptr;
  same_status(kdfuse::distill_loss(a, nullptr), kc::distill_loss(a, nullptr), "student null");
  kc::DistillDeviceBuffers b;
  same_status(kdfuse::distill_loss(a, nullptr), kc::distill_loss_device(a, b, nullptr), "device API student null");
}

// ---------------------------------------------------------------- softmax

void check_softmax(int64_t rows, int64_t cols, double T, bool log, bool mask, uint64_t seed) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "softmax %lldx%lld T=%g log=%d mask=%d", (long long)rows, (long long)cols, T, int(log),
                int(mask));
  g_case = buf;
  Rng rng(seed);
  const size_t n = size_t(rows * cols);
  std::vector<float> x(n), dy(n);
  for (size_t i = 0; i < n; ++i) {
    x[i] = 3.0f * rng.normal();
    dy[i] = rng.normal();
    if (mask && rng.uniform() < 0.1 && i % size_t(cols) != 0) x[i] = -kInf;
  }
  std::vector<float> yc(n, kNaN), yg(n, kNaN);
  SoftmaxArgs f;
  f.x = x.data();
  f.rows = rows;
  f.cols = cols;
  f.temperature = T;
  f.log = log;
  f.y = yc.data();
  const Status sc = kdfuse::softmax_forward(f);
  f.y = yg.data();
  const Status sg = kc::softmax_forward(f);
  if (!same_status(sc, sg, "forward status") || !sc.ok()) return;
  compare_array("forward", yc.data(), yg.data(), n);

  // Backward from the CPU forward output, so both sides see the same y.
  std::vector<float> dxc(n, kNaN), dxg(n, kNaN);
  SoftmaxBackwardArgs bw;
  bw.y = yc.data();
  bw.dy = dy.data();
  bw.rows = rows;
  bw.cols = cols;
  bw.temperature = T;
  bw.log = log;
  bw.dx = dxc.data();
  const Status bc = kdfuse::softmax_backward(bw);
  bw.dx = dxg.data();
  const Status bg = kc::softmax_backward(bw);
  if (!same_status(bc, bg, "backward status") || !bc.ok()) return;
  compare_array("backward", dxc.data(), dxg.data(), n);

  // Device API: bit-identical to the host API.
  kc::DeviceBuffer dx_, dy_, y_, out;
  Status st = dx_.upload(x.data(), int64_t(n));
  if (st.ok()) st = kc::softmax_forward_device(f, dx_, &out);
  std::vector<float> yd(n, kNaN);
  if (st.ok()) st = out.download(yd.data(), int64_t(n));
  CHECK(st.ok(), "device forward: %s", st.message.c_str());
  CHECK(bit_equal(yd, yg), "device API forward differs from the host API");
  if (st.ok()) st = y_.upload(yc.data(), int64_t(n));
  if (st.ok()) st = dy_.upload(dy.data(), int64_t(n));
  if (st.ok()) st = kc::softmax_backward_device(bw, y_, dy_, &out);
  std::vector<float> dxd(n, kNaN);
  if (st.ok()) st = out.download(dxd.data(), int64_t(n));
  CHECK(st.ok(), "device backward: %s", st.message.c_str());
  CHECK(bit_equal(dxd, dxg), "device API backward differs from the host API");
}

void softmax_cases(bool large) {
  std::vector<std::pair<int64_t, int64_t>> shapes = {{1, 1},   {2, 3},    {3, 17},   {7, 64},   {5, 1000},
                                                     {3, 1024}, {3, 1025}, {2, 5003}, {2, 32000}};
  if (large) {
    shapes.push_back({128, 32000});
    shapes.push_back({2, 128001});
    shapes.push_back({50000, 7});
  }
  uint64_t seed = 5000;
  for (const auto& sh : shapes)
    for (double T : {1.0, 2.5, 0.7})
      for (int log = 0; log < 2; ++log) check_softmax(sh.first, sh.second, T, log != 0, (seed % 3) == 0, seed++);
}

void softmax_errors() {
  const int64_t rows = 4, cols = 9;
  std::vector<float> x(rows * cols, 0.5f), y(rows * cols), dy(rows * cols, 0.1f), out(rows * cols);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(i % 7) - 3.0f;
  auto fwd = [&](const char* name, double T) {
    g_case = std::string("softmax error: ") + name;
    SoftmaxArgs a;
    a.x = x.data();
    a.rows = rows;
    a.cols = cols;
    a.temperature = T;
    a.y = out.data();
    const Status c = kdfuse::softmax_forward(a);
    same_status(c, kc::softmax_forward(a), "host API");
    kc::DeviceBuffer bx, by;
    if (bx.upload(x.data(), int64_t(x.size())).ok()) same_status(c, kc::softmax_forward_device(a, bx, &by), "device API");
  };
  auto bwd = [&](const char* name) {
    g_case = std::string("softmax backward error: ") + name;
    SoftmaxBackwardArgs a;
    a.y = y.data();
    a.dy = dy.data();
    a.rows = rows;
    a.cols = cols;
    a.log = true;
    a.dx = out.data();
    const Status c = kdfuse::softmax_backward(a);
    same_status(c, kc::softmax_backward(a), "host API");
    kc::DeviceBuffer by, bdy, bdx;
    if (by.upload(y.data(), int64_t(y.size())).ok() && bdy.upload(dy.data(), int64_t(dy.size())).ok())
      same_status(c, kc::softmax_backward_device(a, by, bdy, &bdx), "device API");
  };
  fwd("temperature -1", -1.0);
  x[2 * cols + 3] = kNaN;
  fwd("NaN", 1.0);
  x[2 * cols + 3] = 0.0f;
  x[1 * cols + 8] = kInf;
  fwd("+Infinity", 2.0);
  x[1 * cols + 8] = 0.0f;
  x[2 * cols + 1] = 3e38f;
  fwd("3e38 at T 0.25", 0.25);
  x[2 * cols + 1] = 0.0f;
  for (int64_t j = 0; j < cols; ++j) x[size_t(3 * cols + j)] = -kInf;
  fwd("all -Infinity", 1.0);
  for (size_t i = 0; i < y.size(); ++i) y[i] = -2.0f;
  y[cols] = -kInf;  // fine for log-softmax
  dy[0] = kNaN;     // row 0: gradOutput; row 2: output -> the CPU core names the output
  y[2 * cols + 1] = kNaN;
  bwd("NaN in gradOutput row 0, NaN in output row 2");
  y[2 * cols + 1] = -2.0f;
  bwd("NaN in gradOutput");
  g_case = "softmax error: null";
  SoftmaxArgs a;
  a.rows = 1;
  a.cols = 1;
  same_status(kdfuse::softmax_forward(a), kc::softmax_forward(a), "null logits");
}

// Rows whose float32 gradient overflows where the exact one does not: both sides redo the row at
// scale * 2^-k (DistillRun::rescaled_row; findings F14 and the T = 100 teacher gradient). Every entry
// must come out finite and agree; the logits reach 3e38 (inside the range rule at these T).
void rescaled_rows() {
  struct Big {
    Divergence div;
    double T, g;
    bool gt;
    float scale;
  };
  const Big cases[] = {{Divergence::ReverseKL, 7.3, -2.0, false, 3.4e38f}, {Divergence::KL, 100.0, 1.0, true, 3e38f},
                       {Divergence::JSD, 100.0, 1.0, true, 3e38f},         {Divergence::KL, 1e4, 1e36, true, 2.0f},
                       {Divergence::ReverseKL, 1e4, 1e36, true, 2.0f},     {Divergence::JSD, 1e4, 1e36, true, 2.0f}};
  Rng rng(99);
  for (const Big& b : cases) {
    for (const int64_t cols : {int64_t(7), int64_t(1500)}) {
      DistillCase c;
      c.rows = 3;
      c.cols = cols;
      c.a.divergence = b.div;
      c.a.temperature = b.T;
      c.a.grad_output = b.g;
      c.a.reduction = Reduction::Sum;
      c.want_gt = b.gt;
      c.scale = b.scale;
      char what[120];
      std::snprintf(what, sizeof what, "rescaled row div=%d T=%g g=%g cols=%lld", int(b.div), b.T, b.g, (long long)cols);
      g_case = what;
      DistillData d;
      d.s.resize(size_t(c.rows * cols));
      d.t.resize(d.s.size());
      for (size_t i = 0; i < d.s.size(); ++i) {
        // huge logits: uniform in (-scale, scale); small ones: a student equal to its teacher
        d.s[i] = b.scale > 1e30f ? float(b.scale * (2.0 * rng.uniform() - 1.0)) : float(b.scale * rng.normal());
        d.t[i] = b.scale > 1e30f ? float(b.scale * (2.0 * rng.uniform() - 1.0)) : d.s[i];
      }
      const DistillOut cpu = [&] { DistillOut o; const DistillLossArgs a = bind(c, d, &o); o.st = kdfuse::distill_loss(a, &o.res); return o; }();
      const DistillOut gpu = [&] { DistillOut o; const DistillLossArgs a = bind(c, d, &o); o.st = kc::distill_loss(a, &o.res); return o; }();
      if (!same_status(cpu.st, gpu.st, "status") || !cpu.st.ok()) continue;
      for (const auto* v : {&cpu.gs, &cpu.gt, &gpu.gs, &gpu.gt}) {
        bool finite = true;
        for (float x : *v) finite = finite && std::isfinite(x);
        CHECK(finite, "a gradient entry is not finite");
      }
      compare_value("loss", cpu.res.loss, gpu.res.loss, 1e-6 * std::fabs(cpu.res.loss));
      // both sides within the statement's 2^-18 (1 + max|z|) |c| of the exact gradient
      double maxz = 0.0;
      for (size_t i = 0; i < d.s.size(); ++i) maxz = std::max({maxz, std::fabs(double(d.s[i])), std::fabs(double(d.t[i]))});
      maxz /= b.T;
      const double floor = std::ldexp(1.0, -17) * (1.0 + maxz) * std::fabs(b.T * b.g);  // |c| = (T^2 / T) |g|
      compare_array("grad_student", cpu.gs.data(), gpu.gs.data(), cpu.gs.size(), 1e-5, floor);
      if (c.want_gt) compare_array("grad_teacher", cpu.gt.data(), gpu.gt.data(), cpu.gt.size(), 1e-5, floor);
    }
  }
}

// ---------------------------------------------------------------- top-k loss

struct TopkData {
  int64_t rows, cols, k;
  std::vector<float> s, vals;
  std::vector<int32_t> idx, labels;
  std::vector<float> gor;
};

// A teacher's k random columns of a random distribution, a quarter of the rows padded with -1.
TopkData make_topk(Rng& rng, int64_t rows, int64_t cols, int64_t k) {
  TopkData d{rows, cols, k, {}, {}, {}, {}, {}};
  d.s.resize(size_t(rows * cols));
  for (auto& x : d.s) x = 3.0f * rng.normal();
  d.idx.assign(size_t(rows * k), -1);
  d.vals.assign(size_t(rows * k), 0.0f);
  d.labels.resize(size_t(rows));
  d.gor.resize(size_t(rows));
  std::vector<int32_t> order(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) order[size_t(c)] = int32_t(c);
    for (int64_t c = cols - 1; c > 0; --c) std::swap(order[size_t(c)], order[size_t(rng.below(int(c + 1)))]);
    const int64_t listed = std::min(cols, rng.uniform() < 0.25 ? 1 + int64_t(rng.uniform() * double(k - 1)) : k);
    // log-probabilities of a distribution over all columns: listed ones take part of its mass
    double mass = 0.0;
    std::vector<double> w(static_cast<size_t>(listed));
    for (auto& x : w) { x = std::exp(2.0 * rng.normal()); mass += x; }
    const double keep = listed == cols ? 1.0 : 0.3 + 0.6 * rng.uniform();
    for (int64_t j = 0; j < listed; ++j) {
      d.idx[size_t(r * k + j)] = order[size_t(j)];
      d.vals[size_t(r * k + j)] = float(std::min(0.0, std::log(keep * w[size_t(j)] / mass)));
    }
    d.labels[size_t(r)] = rng.uniform() < 0.2 ? -100 : rng.below(int(cols));
    d.gor[size_t(r)] = rng.normal();
  }
  return d;
}

struct TopkOut {
  Status st;
  DistillLossResult res;
  std::vector<float> gs;
  std::vector<float> lr;
};

template <class Fn>
TopkOut run_topk_with(Fn fn, const TopkData& d, TopkLossArgs a) {
  TopkOut o;
  o.gs.assign(d.s.size(), kNaN);
  o.lr.assign(size_t(d.rows), kNaN);
  a.base.student = d.s.data();
  a.base.rows = d.rows;
  a.base.cols = d.cols;
  a.k = d.k;
  a.indices = d.idx.data();
  a.values = d.vals.data();
  a.base.grad_student = o.gs.data();
  a.base.loss_rows = o.lr.data();
  if (a.base.reduction == Reduction::None) a.base.grad_output_rows = d.gor.data();
  o.st = fn(a, &o.res);
  return o;
}

void check_topk(const TopkData& d, TopkLossArgs a, const char* what) {
  g_case = what;
  const TopkOut cpu = run_topk_with([](const TopkLossArgs& x, DistillLossResult* r) { return kdfuse::topk_distill_loss(x, r); }, d, a);
  const TopkOut gpu = run_topk_with([](const TopkLossArgs& x, DistillLossResult* r) { return kc::topk_distill_loss(x, r); }, d, a);
  if (!same_status(cpu.st, gpu.st, "status") || !cpu.st.ok()) return;
  // JSD: per-column log m in float32 on both sides, by different roundings (see test/topk-loss.test.ts)
  const double T = a.base.temperature;
  const double floor = a.base.divergence == Divergence::JSD ? std::ldexp(1.0, -20) * (12.0 / T + std::log(double(d.cols)) + 1) * T * T : 1e-7;
  compare_value("loss", cpu.res.loss, gpu.res.loss, floor * double(d.rows));
  compare_array("losses", cpu.lr.data(), gpu.lr.data(), cpu.lr.size(), 1e-5, floor);
  compare_array("gradStudent", cpu.gs.data(), gpu.gs.data(), cpu.gs.size(), 1e-5, floor / T);
}

// Top-k rows redone at a smaller scale (TopkRun::rescaled_row): an upstream gradient of 1e36 at
// T = 1e4 makes the JSD coefficient infinite in float32, which gave NaN where the exact entries are 0.
void topk_rescaled_rows() {
  Rng rng(4242);
  TopkData d = make_topk(rng, 4, 300, 8);
  for (size_t i = 0; i < d.s.size(); ++i) d.s[i] = 1e-3f * float(i % 7);  // near-uniform student
  for (const Divergence div : {Divergence::JSD, Divergence::ReverseKL}) {
    TopkLossArgs a;
    a.missing = MissingMass::Uniform;
    a.base.divergence = div;
    a.base.temperature = 1e4;
    a.base.reduction = Reduction::Sum;
    a.base.grad_output = 1e36;
    g_case = div == Divergence::JSD ? "topk rescaled row JSD" : "topk rescaled row reverse KL";
    const TopkOut cpu = run_topk_with([](const TopkLossArgs& x, DistillLossResult* r) { return kdfuse::topk_distill_loss(x, r); }, d, a);
    const TopkOut gpu = run_topk_with([](const TopkLossArgs& x, DistillLossResult* r) { return kc::topk_distill_loss(x, r); }, d, a);
    if (!same_status(cpu.st, gpu.st, "status") || !cpu.st.ok()) continue;
    bool nan = false;
    for (float x : cpu.gs) nan = nan || std::isnan(x);
    for (float x : gpu.gs) nan = nan || std::isnan(x);
    CHECK(!nan, "a gradient entry is NaN");
    compare_array("gradStudent", cpu.gs.data(), gpu.gs.data(), cpu.gs.size(), 1e-5, std::ldexp(1.0, -17) * 1e4 * 1e36);
  }
}

void topk_cases(bool large) {
  Rng rng(1717);
  const int64_t shapes[][3] = {{7, 1, 1}, {9, 10, 10}, {20, 100, 8}, {6, 1025, 64}, {3, 5000, 1}, {2, 9000, 128}};
  const int64_t big[][3] = {{64, 32000, 64}, {300, 1000, 50}};
  std::vector<std::array<int64_t, 3>> all;
  for (const auto& s : shapes) all.push_back({s[0], s[1], s[2]});
  if (large) for (const auto& s : big) all.push_back({s[0], s[1], s[2]});
  int i = 0;
  for (const auto& sh : all) {
    const TopkData d = make_topk(rng, sh[0], sh[1], sh[2]);
    for (int variant = 0; variant < 10; ++variant, ++i) {
      TopkLossArgs a;
      const int dv = variant % 3;
      a.base.divergence = dv == 0 ? Divergence::KL : dv == 1 ? Divergence::ReverseKL : Divergence::JSD;
      a.missing = dv == 1 || variant >= 5 ? MissingMass::Uniform : MissingMass::Renormalize;
      a.base.temperature = variant % 4 == 0 ? 1.0 : variant % 4 == 1 ? 2.0 : 0.7 + 3.0 * rng.uniform();
      a.base.reduction = variant % 3 == 0 ? Reduction::Mean : variant % 3 == 1 ? Reduction::Sum : Reduction::None;
      if (variant % 2 == 0) {
        a.base.labels = d.labels.data();
        a.base.alpha = 0.6;
        a.base.label_smoothing = variant % 4 == 0 ? 0.1 : 0.0;
      }
      a.base.beta = variant == 8 ? 1.0 : variant == 5 ? 0.0 : 0.3;
      a.base.scale_by_t2 = variant % 5 != 3;
      char what[160];
      std::snprintf(what, sizeof what, "topk %lldx%lld k=%lld #%d div %d %s T=%.2f", (long long)d.rows, (long long)d.cols,
                    (long long)d.k, variant, dv, a.missing == MissingMass::Uniform ? "uniform" : "renormalize",
                    a.base.temperature);
      check_topk(d, a, what);
    }
  }
  // the same bits from run to run
  g_case = "topk determinism";
  const TopkData d = make_topk(rng, kEmulated ? 3 : 256, kEmulated ? 5000 : 32000, 64);
  TopkLossArgs a;
  a.missing = MissingMass::Uniform;
  a.base.divergence = Divergence::JSD;
  a.base.temperature = 2.0;
  const auto gpu = [](const TopkLossArgs& x, DistillLossResult* r) { return kc::topk_distill_loss(x, r); };
  const TopkOut r1 = run_topk_with(gpu, d, a), r2 = run_topk_with(gpu, d, a);
  CHECK(r1.st.ok() && r1.res.loss == r2.res.loss && bit_equal(r1.gs, r2.gs), "top-k results differ between runs");
}

void topk_errors() {
  Rng rng(5);
  TopkData base = make_topk(rng, 3, 10, 3);
  for (int64_t j = 0; j < 9; ++j) { base.idx[size_t(j)] = int32_t(j); base.vals[size_t(j)] = -2.5f; }
  const auto cpu = [](const TopkLossArgs& x, DistillLossResult* r) { return kdfuse::topk_distill_loss(x, r); };
  const auto gpu = [](const TopkLossArgs& x, DistillLossResult* r) { return kc::topk_distill_loss(x, r); };
  auto both = [&](const TopkData& d, TopkLossArgs a, const char* what) {
    g_case = what;
    same_status(run_topk_with(cpu, d, a).st, run_topk_with(gpu, d, a).st, what);
  };
  TopkLossArgs a;
  a.missing = MissingMass::Uniform;
  both(base, a, "top-k base case");
  TopkData d = base;
  d.idx[4] = 10;
  both(d, a, "top-k index out of range");
  d = base;
  d.idx[5] = d.idx[3];
  both(d, a, "top-k repeated index");
  d = base;
  d.vals[2] = 0.5f;
  both(d, a, "top-k positive log-probability");
  d = base;
  d.vals[7] = kNaN;
  both(d, a, "top-k NaN log-probability");
  d = base;
  d.vals[0] = d.vals[1] = -0.1f;
  both(d, a, "top-k listed mass");
  d = base;
  d.s[12] = kNaN;
  both(d, a, "top-k student NaN");
  d = base;
  for (int64_t c = 10; c < 20; ++c) d.s[size_t(c)] = -kInf;
  both(d, a, "top-k student all -inf");
  d = base;
  d.s[3] = 3e38f;
  TopkLossArgs cold = a;
  cold.base.temperature = 0.01;
  both(d, cold, "top-k temperature overflow");
  TopkLossArgs rkl;
  rkl.base.divergence = Divergence::ReverseKL;
  both(base, rkl, "top-k reverse KL renormalize");
  d = base;
  std::fill(d.idx.begin() + 3, d.idx.begin() + 6, -1);
  TopkLossArgs ren;
  both(d, ren, "top-k empty renormalised row");
}

// ---------------------------------------------------------------- misc

void determinism() {
  g_case = "determinism";
  DistillCase c;
  c.rows = kEmulated ? 4 : 512;
  c.cols = kEmulated ? 9000 : 32000;
  c.labels = true;
  c.a.temperature = 2.0;
  c.a.label_smoothing = 0.1;
  c.a.divergence = Divergence::JSD;
  c.want_gt = true;
  c.loss_rows = true;
  Rng rng(77);
  const DistillData d = make_data(c, rng);
  const DistillOut a = run_gpu(c, d), b = run_gpu(c, d);
  CHECK(a.st.ok() && b.st.ok(), "run failed: %s", a.st.message.c_str());
  CHECK(a.res.loss == b.res.loss, "loss differs between runs: %.17g vs %.17g", a.res.loss, b.res.loss);
  CHECK(bit_equal(a.gs, b.gs) && bit_equal(a.gt, b.gt) && bit_equal(a.lr, b.lr), "outputs differ between runs");
}

void buffers() {
  g_case = "device buffers";
  kc::DeviceBuffer b;
  Status st = b.allocate(kc::DType::Float32, int64_t(1) << 40);  // 4 TiB
  CHECK(st.kind == ErrorKind::Range && st.message.find("out of memory") != std::string::npos,
        "a 4 TiB buffer should fail as out of memory (Range), got %s \"%s\"", kind_name(st.kind), st.message.c_str());
  CHECK(b.empty(), "failed allocation left a buffer");
  const int32_t in[3] = {1, -2, 3};
  int32_t out[3] = {0, 0, 0};
  st = b.upload(in, 3);
  if (st.ok()) st = b.download(out, 3);
  CHECK(st.ok() && out[0] == 1 && out[1] == -2 && out[2] == 3, "int32 round trip: %s", st.message.c_str());
  float f[3];
  st = b.download(f, 3);
  CHECK(st.kind == ErrorKind::Type, "downloading Int32 as Float32 should be a TypeError");
  kc::DeviceBuffer m = std::move(b);
  CHECK(b.empty() && m.size() == 3, "move");
}

// ---------------------------------------------------------------- fused head

struct LinearData {
  int64_t rows, dim, cols;
  std::vector<float> h, w, b, t, gor;
  std::vector<int32_t> y;
};

LinearData make_linear(Rng& rng, int64_t rows, int64_t dim, int64_t cols) {
  LinearData d{rows, dim, cols, {}, {}, {}, {}, {}, {}};
  d.h.resize(size_t(rows * dim));
  d.w.resize(size_t(dim * cols));
  d.b.resize(size_t(cols));
  d.t.resize(size_t(rows * cols));
  d.gor.resize(size_t(rows));
  d.y.resize(size_t(rows));
  for (float& v : d.h) v = rng.normal();
  for (float& v : d.w) v = 2.0f * rng.normal() / std::sqrt(float(dim));
  for (float& v : d.b) v = 0.5f * rng.normal();
  for (float& v : d.t) v = 2.5f * rng.normal();
  for (float& v : d.gor) v = 0.5f + float(rng.uniform());
  for (int64_t r = 0; r < rows; ++r) d.y[size_t(r)] = r % 5 == 3 ? -100 : rng.below(int(cols));
  return d;
}

struct LinearOut {
  Status st;
  DistillLossResult res;
  std::vector<float> gh, gw, gb, lr;
};

template <class Fn>
LinearOut run_linear_with(Fn fn, const LinearData& d, LinearDistillArgs a, bool bias, bool labels) {
  LinearOut o;
  o.gh.assign(size_t(d.rows * d.dim), -1.0f);
  o.gw.assign(size_t(d.dim * d.cols), -1.0f);
  o.gb.assign(size_t(d.cols), -1.0f);
  o.lr.assign(size_t(d.rows), -1.0f);
  a.base.rows = d.rows;
  a.base.cols = d.cols;
  a.base.teacher = d.t.data();
  a.base.labels = labels ? d.y.data() : nullptr;
  a.base.grad_output_rows = d.gor.data();
  a.base.loss_rows = o.lr.data();
  a.hidden = d.h.data();
  a.weight = d.w.data();
  a.bias = bias ? d.b.data() : nullptr;
  a.dim = d.dim;
  a.grad_hidden = o.gh.data();
  a.grad_weight = o.gw.data();
  a.grad_bias = bias ? o.gb.data() : nullptr;
  o.st = fn(a, &o.res);
  return o;
}

// A valid call: both succeed, with the loss within 1e-5 relative and every output within 1e-5 max|ref|.
bool compare_linear(const LinearOut& cpu, const LinearOut& gpu, bool bias, bool per_row, const char* what) {
  CHECK(cpu.st.ok(), "%s: the CPU core refused a valid call: %s", what, cpu.st.message.c_str());
  if (!same_status(cpu.st, gpu.st, what) || !cpu.st.ok()) return false;
  compare_value("loss", cpu.res.loss, gpu.res.loss, 1e-9);
  compare_array("gradHidden", cpu.gh.data(), gpu.gh.data(), cpu.gh.size());
  compare_array("gradWeight", cpu.gw.data(), gpu.gw.data(), cpu.gw.size());
  if (bias) compare_array("gradBias", cpu.gb.data(), gpu.gb.data(), cpu.gb.size());
  if (per_row) compare_array("losses", cpu.lr.data(), gpu.lr.data(), cpu.lr.size());
  return true;
}

const auto linear_cpu = [](const LinearDistillArgs& x, DistillLossResult* r) { return kdfuse::linear_distill_loss(x, r); };
const auto linear_gpu = [](const LinearDistillArgs& x, DistillLossResult* r) { return kc::linear_distill_loss(x, r); };

void linear_cases(bool large) {
  Rng rng(1805);
  const int64_t shapes[][3] = {{5, 7, 40}, {13, 33, 130}, {40, 16, 300}, {3, 1, 70}};
  const Divergence divs[] = {Divergence::KL, Divergence::ReverseKL, Divergence::JSD};
  const Reduction reds[] = {Reduction::Mean, Reduction::Sum, Reduction::None};
  int i = 0;
  for (const auto& sh : shapes) {
    const LinearData d = make_linear(rng, sh[0] * (large ? 4 : 1), sh[1], sh[2] * (large ? 20 : 1));
    for (int v = 0; v < 3; ++v, ++i) {
      LinearDistillArgs a;
      a.base.temperature = v == 0 ? 1.0 : v == 1 ? 2.0 : 0.5;
      a.base.divergence = divs[i % 3];
      a.base.reduction = reds[(i / 3) % 3];
      a.base.label_smoothing = v == 2 ? 0.1 : 0.0;
      a.base.grad_output = 0.75;
      a.block_rows = i % 2 ? 4 : 0;  // several blocks, and one
      const bool bias = i % 2 == 0, labels = i % 4 != 1;
      char what[160];
      std::snprintf(what, sizeof what, "linear %lldx%lld->%lld #%d div %d red %d T=%.1f", (long long)d.rows, (long long)d.dim,
                    (long long)d.cols, i, int(a.base.divergence), int(a.base.reduction), a.base.temperature);
      g_case = what;
      const LinearOut cpu = run_linear_with(linear_cpu, d, a, bias, labels), gpu = run_linear_with(linear_gpu, d, a, bias, labels);
      if (!compare_linear(cpu, gpu, bias, a.base.reduction == Reduction::None, what)) continue;
      const LinearOut again = run_linear_with(linear_gpu, d, a, bias, labels);
      CHECK(again.res.loss == gpu.res.loss && bit_equal(again.gw, gpu.gw) && bit_equal(again.gh, gpu.gh), "%s: runs differ", what);
    }
  }
}

// The fused head with a top-k teacher (each row's top k of a random dense teacher's log-softmax).
void linear_topk_cases(bool large) {
  Rng rng(1806);
  const int64_t shapes[][4] = {{6, 5, 50, 4}, {14, 9, 200, 16}};
  int i = 0;
  for (const auto& sh : shapes) {
    const LinearData d = make_linear(rng, sh[0] * (large ? 4 : 1), sh[1], sh[2] * (large ? 10 : 1));
    const int64_t k = sh[3];
    std::vector<int32_t> idx(size_t(d.rows * k), -1);
    std::vector<float> val(size_t(d.rows * k), 0.0f);
    for (int64_t r = 0; r < d.rows; ++r) {
      const float* t = d.t.data() + r * d.cols;
      std::vector<int32_t> order(size_t(d.cols));
      for (int64_t c = 0; c < d.cols; ++c) order[size_t(c)] = int32_t(c);
      std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t x, int32_t y) { return t[x] > t[y]; });
      double m = t[order[0]], sum = 0.0;
      for (int64_t c = 0; c < d.cols; ++c) sum += std::exp(double(t[c]) - m);
      const int64_t listed = r % 3 == 1 ? k / 2 : k;  // some rows padded
      for (int64_t j = 0; j < listed; ++j) {
        idx[size_t(r * k + j)] = order[size_t(j)];
        val[size_t(r * k + j)] = float(double(t[order[size_t(j)]]) - m - std::log(sum));
      }
    }
    for (int v = 0; v < 4; ++v, ++i) {
      LinearDistillArgs a;
      a.base.temperature = v % 2 ? 2.0 : 1.0;
      a.missing = v < 2 ? MissingMass::Renormalize : MissingMass::Uniform;
      a.base.divergence = v < 2 ? (v ? Divergence::JSD : Divergence::KL) : (v == 2 ? Divergence::ReverseKL : Divergence::KL);
      a.base.reduction = v == 1 ? Reduction::None : Reduction::Mean;
      a.block_rows = v % 2 ? 4 : 0;
      a.k = k;
      a.topk_indices = idx.data();
      a.topk_values = val.data();
      char what[160];
      std::snprintf(what, sizeof what, "linear top-%lld %lldx%lld->%lld #%d div %d missing %d", (long long)k, (long long)d.rows,
                    (long long)d.dim, (long long)d.cols, i, int(a.base.divergence), int(a.missing));
      g_case = what;
      const auto topk_only = [](auto fn) {
        return [fn](const LinearDistillArgs& x, DistillLossResult* r) {
          LinearDistillArgs y = x;
          y.base.teacher = nullptr;
          return fn(y, r);
        };
      };
      const bool bias = v % 2 == 0;
      const LinearOut cpu = run_linear_with(topk_only(linear_cpu), d, a, bias, true);
      const LinearOut gpu = run_linear_with(topk_only(linear_gpu), d, a, bias, true);
      if (!compare_linear(cpu, gpu, bias, a.base.reduction == Reduction::None, what)) continue;
    }
  }
}

void linear_errors() {
  Rng rng(18);
  LinearData d = make_linear(rng, 6, 4, 20);
  LinearDistillArgs a;
  a.base.temperature = 2.0;
  a.block_rows = 4;
  g_case = "linear NaN weight";
  d.w[13] = kNaN;
  LinearOut cpu = run_linear_with(linear_cpu, d, a, true, true), gpu = run_linear_with(linear_gpu, d, a, true, true);
  same_status(cpu.st, gpu.st, "NaN weight");
  CHECK(gpu.gw[0] == -1.0f, "NaN weight: outputs written");
  g_case = "linear overflowing logits";
  d = make_linear(rng, 6, 4, 20);
  for (float& v : d.h) v = 1e30f;
  for (float& v : d.w) v = 1e10f;
  cpu = run_linear_with(linear_cpu, d, a, true, true);
  gpu = run_linear_with(linear_gpu, d, a, true, true);
  same_status(cpu.st, gpu.st, "overflowing logits");
  CHECK(std::isnan(gpu.gw[0]) && std::isnan(gpu.gh[0]) && std::isnan(gpu.lr[5]), "overflowing logits: outputs not poisoned");
  g_case = "linear top-k teacher, bad entry";
  d = make_linear(rng, 3, 3, 10);
  const int32_t idx[3] = {1, 4, 4};
  a.k = 1;
  a.topk_indices = idx;
  const auto topk_call = [](auto fn) {
    return [fn](const LinearDistillArgs& x, DistillLossResult* r) {
      LinearDistillArgs y = x;
      y.base.teacher = nullptr;
      return fn(y, r);
    };
  };
  float bad[3] = {-0.5f, 0.5f, -0.2f};  // a log-probability > 0
  a.topk_values = bad;
  cpu = run_linear_with(topk_call(linear_cpu), d, a, false, false);
  gpu = run_linear_with(topk_call(linear_gpu), d, a, false, false);
  same_status(cpu.st, gpu.st, "top-k bad entry");
  CHECK(!gpu.st.ok() && gpu.st.message.find("log-probability <= 0") != std::string::npos, "top-k bad entry: %s", gpu.st.message.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  const bool large = !kEmulated || (argc > 1 && std::strcmp(argv[1], "--large") == 0);
  const kc::DeviceInfo& info = kc::device_info();
  if (!info.available) {
    // No device is a normal state: calls must fail cleanly, with a Status.
    float x[2] = {0, 1}, y[2];
    SoftmaxArgs a;
    a.x = x;
    a.y = y;
    a.rows = 1;
    a.cols = 2;
    const Status st = kc::softmax_forward(a);
    kc::DeviceBuffer b;
    const Status su = b.upload(x, 2);
    if (st.ok() || st.kind != ErrorKind::Internal || su.ok()) {
      std::fprintf(stderr, "FAIL: without a device, calls must return an Internal error (got \"%s\")\n",
                   st.message.c_str());
      return 1;
    }
    std::printf("skipped: no CUDA device (%s)\n", info.reason.c_str());
    return 0;
  }
  std::printf("device: %s%s\n", info.name.c_str(), kEmulated ? " (the CUDA source run on the CPU)" : "");
  buffers();
  softmax_errors();
  distill_errors();
  softmax_cases(large);
  distill_cases(large);
  rescaled_rows();
  determinism();
  topk_errors();
  topk_cases(large);
  topk_rescaled_rows();
  linear_errors();
  linear_cases(large);
  linear_topk_cases(large);
  std::printf("%d checks, %d failures\n", g_checks, g_failures);
  return g_failures == 0 ? 0 : 1;
}
