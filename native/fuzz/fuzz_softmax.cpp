// libFuzzer target: kdfuse::softmax_forward (softmax and log-softmax) with fuzzed shapes, temperature
// and logits. Checks: no sanitizer report; refusals are Range/Type errors with a message, exactly
// for the calls the contract refuses (reference.h, softmax_accepts); on accepted calls with T in the
// documented accuracy range [0.05, 100] (README, "Accuracy and determinism"), each element agrees
// with the float64 reference:
//   softmax:      |y - want| <= want (2^-20 Zmax + 1e-6) + 2^-125
//   log-softmax:  |y - want| <= 2^-20 Zmax + 1e-6 |want| + 1e-6, -Infinity exactly
// (Zmax = the row's largest finite |x / T|: z = x * (1/T) is rounded once to float32; 2^-125: the
// vector exponential flushes results below float32's normal range to 0).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "fuzz_bytes.h"
#include "kdfuse_core.h"
#include "reference.h"

using namespace kdfuse_fuzz;

namespace {
const double kTemps[] = {1.0, 2.0, 4.0, 0.05, 100.0, 0.5, 3.0, 7.3, 0.1, 1e-3, 0.049, 1e4, 1e308, 0.0, -1.0, kNaN, kInf, 5e-324};
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Bytes in(data, size);
  kdfuse::SoftmaxArgs a;
  a.rows = 1 + in.u8() % 16;
  a.cols = 1 + in.u16() % 2100;
  a.temperature = in.pick(kTemps);
  a.log = in.u8() & 1;
  kdfuse::ExecConfig cfg;
  cfg.threads = 1 + in.u8() % 4;
  cfg.isa = kdfuse::Isa(in.u8() % 3);
  const ValueMode m = read_mode(in);
  Filler fill{in.u64()};
  const int64_t N = a.rows * a.cols;
  const std::vector<float> x = read_floats(in, size_t(N), m, fill);
  std::vector<float> y(size_t(N), kNaNF);
  a.x = x.data();
  a.y = y.data();
  if (std::getenv("KDFUSE_FUZZ_DUMP")) {  // a reproducer in words
    std::fprintf(stderr, "rows %lld cols %lld T %.17g log %d threads %d isa %d\nlogits:", (long long)a.rows, (long long)a.cols,
                 a.temperature, int(a.log), cfg.threads, int(cfg.isa));
    for (int64_t i = 0; i < N && i < 256; ++i) std::fprintf(stderr, "%s%.9g", i % a.cols ? " " : "\n  ", double(x[size_t(i)]));
    std::fprintf(stderr, "\n");
  }
  const kdfuse::Status st = kdfuse::softmax_forward(a, cfg);
  const bool accepts = softmax_accepts(a);
  if (!st.ok()) {
    if (st.kind != kdfuse::ErrorKind::Range && st.kind != kdfuse::ErrorKind::Type) finding("softmax refused with kind %d: %s", int(st.kind), st.message.c_str());
    if (st.message.empty()) finding("softmax refused with an empty message");
    if (accepts) finding("softmax refused a call the contract accepts: %s", st.message.c_str());
    return 0;
  }
  if (!accepts) finding("softmax accepted a call the contract refuses");
  if (!in_documented_temperature_range(a.temperature)) return 0;  // issue 13 item 4: no accuracy claim here
  const std::vector<double> want = softmax_ref(a);
  for (int64_t r = 0; r < a.rows; ++r) {
    const double zmax = max_abs_finite(x.data(), r, a.cols) / a.temperature;
    for (int64_t c = 0; c < a.cols; ++c) {
      const size_t i = size_t(r * a.cols + c);
      const double w = want[i];
      const double tol = a.log ? 0x1p-20 * zmax + 1e-6 * std::fabs(w) + 1e-6 : w * (0x1p-20 * zmax + 1e-6) + 0x1p-125;
      if (!close(y[i], w, tol))
        finding("%s[%lld] = %.9g, reference %.17g (tol %.3g, T %g, row %lld)", a.log ? "logSoftmax" : "softmax", (long long)i, double(y[i]), w,
                tol, a.temperature, (long long)r);
    }
  }
  return 0;
}
