// libFuzzer target: kdfuse::ig_interpolate and kdfuse::ig_accumulate (ig.h) with fuzzed rows,
// features, point indices (in and out of range), alpha / weight (including NaN and +-Infinity) and
// data. Checks: no sanitizer report; refusals are Range/Type errors with a message, exactly for the
// calls the contract refuses; accepted calls are bit-identical to the float64 formulas of ig.h,
// written again here (this file is compiled with -ffp-contract=off like the core, so neither side
// fuses a multiply-add). ig.h makes no accuracy claim tied to a temperature: every accepted call
// is compared.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "fuzz_bytes.h"
#include "ig.h"
#include "reference.h"

using namespace kdfuse_fuzz;

namespace {
const double kAlpha[] = {0.0, 1.0, 0.5, 0.25, 0.999, 1e-300, -0.5, 2.0, 1e300, kNaN, kInf, -kInf};

bool same(double a, double b) { return (std::isnan(a) && std::isnan(b)) || a == b; }
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Bytes in(data, size);
  const bool accumulate = in.u8() & 1;
  kdfuse::IgPoints p;
  p.x_rows = 1 + in.u8() % 8;
  p.baseline_rows = 1 + in.u8() % 8;
  p.features = 1 + in.u16() % 300;
  p.points = in.u8() % 33;
  const uint8_t flags = in.u8();
  const bool bad_dims = (flags & 0x70) == 0x70;  // rarely: zero or negative sizes
  if (bad_dims) {
    switch (flags & 3) {
      case 0: p.features = 0; break;
      case 1: p.x_rows = 0; break;
      case 2: p.baseline_rows = -1; break;
      default: p.points = -1; break;
    }
  }
  const ValueMode m = read_mode(in);
  Filler fill{in.u64()};
  const int64_t F = std::max<int64_t>(p.features, 1), P = std::max<int64_t>(p.points, 0);
  const std::vector<float> x = read_floats(in, size_t(std::max<int64_t>(p.x_rows, 1) * F), m, fill);
  const std::vector<float> b = read_floats(in, size_t(std::max<int64_t>(p.baseline_rows, 1) * F), m, fill);
  std::vector<int32_t> xr(static_cast<size_t>(P)), br(static_cast<size_t>(P));
  std::vector<double> alpha(static_cast<size_t>(P));
  for (int64_t q = 0; q < P; ++q) {
    const uint8_t k = in.empty() ? uint8_t(fill.next() % 64) : in.u8();
    xr[size_t(q)] = k == 62 ? int32_t(p.x_rows) : k == 63 ? -1 : int32_t(fill.next() % uint64_t(std::max<int64_t>(p.x_rows, 1)));
    br[size_t(q)] = k == 61 ? int32_t(p.baseline_rows) : int32_t(fill.next() % uint64_t(std::max<int64_t>(p.baseline_rows, 1)));
    const uint8_t ka = in.empty() ? uint8_t(fill.next() % 64) : in.u8();
    alpha[size_t(q)] = ka < 9 ? kAlpha[ka] : ka < 12 && (flags & 4) ? kAlpha[ka] : fill.uniform();
  }
  p.x = (flags & 0x88) == 0x88 ? nullptr : x.data();
  p.baselines = b.data();
  p.x_row = xr.data();
  p.baseline_row = br.data();

  // the contract (ig.h): sizes, then indices, then finite alpha / weight
  bool accepts = p.features >= 1 && p.x_rows >= 1 && p.baseline_rows >= 1 && p.points >= 0 && p.x;
  for (int64_t q = 0; accepts && q < P; ++q)
    accepts = xr[size_t(q)] >= 0 && xr[size_t(q)] < p.x_rows && br[size_t(q)] >= 0 && br[size_t(q)] < p.baseline_rows &&
              std::isfinite(alpha[size_t(q)]);

  kdfuse::Status st;
  std::vector<float> out;
  std::vector<float> grad;
  std::vector<double> acc, want_acc;
  if (!accumulate) {
    out.assign(size_t(P * F), kNaNF);
    st = kdfuse::ig_interpolate(p, alpha.data(), out.data());
  } else {
    grad = read_floats(in, size_t(P * F), m, fill);
    acc.resize(size_t(std::max<int64_t>(p.x_rows, 1) * F));
    for (auto& v : acc) v = fill.normal();
    want_acc = acc;
    st = kdfuse::ig_accumulate(p, grad.data(), alpha.data(), acc.data());
  }
  if (!st.ok()) {
    if (st.kind != kdfuse::ErrorKind::Range && st.kind != kdfuse::ErrorKind::Type) finding("ig refused with kind %d: %s", int(st.kind), st.message.c_str());
    if (st.message.empty()) finding("ig refused with an empty message");
    if (accepts) finding("ig refused a call the contract accepts: %s", st.message.c_str());
    if (accumulate)  // a refused call must leave the accumulator as it was
      for (size_t i = 0; i < acc.size(); ++i)
        if (!same(acc[i], want_acc[i])) finding("refused ig_accumulate changed acc[%zu]", i);
    return 0;
  }
  if (!accepts) finding("ig accepted a call the contract refuses");
  for (int64_t q = 0; q < P; ++q) {
    const float* xv = x.data() + int64_t(xr[size_t(q)]) * F;
    const float* bv = b.data() + int64_t(br[size_t(q)]) * F;
    const double a = alpha[size_t(q)];
    for (int64_t f = 0; f < F; ++f) {
      if (!accumulate) {
        const double bf = bv[f];
        const float want = float(bf + a * (double(xv[f]) - bf));
        if (!same(out[size_t(q * F + f)], want))
          finding("ig_interpolate out[%lld] = %.9g, expected %.9g", (long long)(q * F + f), double(out[size_t(q * F + f)]), double(want));
      } else {
        want_acc[size_t(int64_t(xr[size_t(q)]) * F + f)] += (a * double(grad[size_t(q * F + f)])) * (double(xv[f]) - double(bv[f]));
      }
    }
  }
  if (accumulate)
    for (size_t i = 0; i < acc.size(); ++i)
      if (!same(acc[i], want_acc[i])) finding("ig_accumulate acc[%zu] = %.17g, expected %.17g", i, acc[i], want_acc[i]);
  return 0;
}
