// libFuzzer target: kdfuse::softmax_backward (softmax and log-softmax) with fuzzed y, dy and T.
// Checks: no sanitizer report; refusals are Range/Type errors with a message, exactly for the calls
// the contract refuses (NaN or +Infinity in output or gradOutput, a bad temperature); on accepted
// calls whose y is a possible forward output (softmax: y in [0, 1]; log-softmax: y <= 0) with finite
// |dy| <= 1e30 and T in [0.05, 100], each element agrees with the float64 reference
//   softmax:      dx = y (dy - sum(dy y)) / T
//                 |dx - want| <= (|y| (2^-21 |dy| + 2^-16 sum|dy y|)) / T + 1e-6 |want| + 1e-37
//   log-softmax:  dx = (dy - exp(y) sum(dy)) / T
//                 |dx - want| <= (2^-21 |dy| + exp(y) (2^-21 |sum dy| + 2^-16 sum|dy|)) / T + 1e-6 |want| + 1e-37
// (2^-16: float32 partial sums over a chunk of 1024 columns, combined in float64; the README states
// no separate bound for the backward pass, so this is the float32 rounding bound of the formula).
#include <cstdint>
#include <vector>

#include "fuzz_bytes.h"
#include "kdfuse_core.h"
#include "reference.h"

using namespace kdfuse_fuzz;

namespace {
const double kTemps[] = {1.0, 2.0, 4.0, 0.05, 100.0, 0.5, 3.0, 0.1, 1e-3, 1e4, 1e308, 0.0, -1.0, kNaN, kInf, 5e-324};
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Bytes in(data, size);
  kdfuse::SoftmaxBackwardArgs a;
  a.rows = 1 + in.u8() % 16;
  a.cols = 1 + in.u16() % 2100;
  a.temperature = in.pick(kTemps);
  const uint8_t flags = in.u8();
  a.log = flags & 1;
  const bool make_y_a_softmax = flags & 2;  // most real calls pass the forward output
  kdfuse::ExecConfig cfg;
  cfg.threads = 1 + in.u8() % 4;
  cfg.isa = kdfuse::Isa(in.u8() % 3);
  const ValueMode my = read_mode(in), md = read_mode(in);
  Filler fill{in.u64()};
  const int64_t R = a.rows, C = a.cols, N = R * C;
  std::vector<float> y = read_floats(in, size_t(N), my, fill);
  const std::vector<float> dy = read_floats(in, size_t(N), md, fill);
  if (make_y_a_softmax) {
    kdfuse::SoftmaxArgs f;
    f.rows = R;
    f.cols = C;
    f.log = a.log;
    for (auto& v : y)
      if (!std::isfinite(v)) v = -kInfF;
    for (int64_t r = 0; r < R; ++r) y[size_t(r * C)] = std::isfinite(y[size_t(r * C)]) ? y[size_t(r * C)] : 0.0f;
    std::vector<float> x = y;
    f.x = x.data();
    f.y = y.data();
    f.temperature = 1.0;
    if (!softmax_accepts(f)) return 0;
    if (!kdfuse::softmax_forward(f).ok()) finding("softmax_forward refused an accepted call while building y");
  }
  std::vector<float> dx(size_t(N), kNaNF);
  a.y = y.data();
  a.dy = dy.data();
  a.dx = dx.data();
  const kdfuse::Status st = kdfuse::softmax_backward(a, cfg);
  bool accepts = temperature_ok(a.temperature);
  for (int64_t i = 0; i < N; ++i) accepts = accepts && !bad_value(y[size_t(i)]) && !bad_value(dy[size_t(i)]);
  if (!st.ok()) {
    if (st.kind != kdfuse::ErrorKind::Range && st.kind != kdfuse::ErrorKind::Type)
      finding("softmax_backward refused with kind %d: %s", int(st.kind), st.message.c_str());
    if (st.message.empty()) finding("softmax_backward refused with an empty message");
    if (accepts) finding("softmax_backward refused a call the contract accepts: %s", st.message.c_str());
    return 0;
  }
  if (!accepts) finding("softmax_backward accepted a call the contract refuses");
  if (!in_documented_temperature_range(a.temperature)) return 0;
  for (int64_t i = 0; i < N; ++i) {
    const double v = y[size_t(i)], d = dy[size_t(i)];
    if (!(std::isfinite(d) && std::fabs(d) <= 1e30)) return 0;
    if (a.log ? !(v <= 0) : !(v >= 0 && v <= 1)) return 0;
  }
  const double T = a.temperature;
  for (int64_t r = 0; r < R; ++r) {
    const size_t o = size_t(r * C);
    double acc = 0, abs_acc = 0;
    for (size_t c = 0; c < size_t(C); ++c) {
      const double v = y[o + c], d = dy[o + c];
      acc += a.log ? d : d * v;
      abs_acc += a.log ? std::fabs(d) : std::fabs(d * v);
    }
    for (size_t c = 0; c < size_t(C); ++c) {
      const double v = y[o + c], d = dy[o + c];
      const double want = a.log ? (d - std::exp(v) * acc) / T : v * (d - acc) / T;
      const double tol = (a.log ? 0x1p-21 * std::fabs(d) + std::exp(v) * (0x1p-21 * std::fabs(acc) + 0x1p-16 * abs_acc)
                                : std::fabs(v) * (0x1p-21 * std::fabs(d) + 0x1p-16 * abs_acc)) / T +
                         1e-6 * std::fabs(want) + 1e-37;
      if (!close(dx[o + c], want, tol))
        finding("%s backward dx[%lld] = %.9g, reference %.17g (tol %.3g, T %g)", a.log ? "logSoftmax" : "softmax", (long long)(o + c),
                double(dx[o + c]), want, tol, T);
    }
  }
  return 0;
}
