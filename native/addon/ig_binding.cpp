// Entry points for the integrated-gradients helpers (native/core/ig.h): igInterpolate and
// igAccumulate, synchronous, on the caller's typed arrays. Every argument is checked here (the
// functions can be called directly): TypeError for a wrong type, RangeError for a wrong length,
// index or value, each message naming the argument.
//
//   igInterpolate({ x, baselines, features, xRow, baselineRow, alpha, out })
//   igAccumulate({ grad, x, baselines, features, xRow, baselineRow, weight, acc })
#include <napi.h>

#include <string>

#include "args.h"
#include "ig.h"
#include "kdfuse_core.h"

namespace kdfuse_addon {
namespace {

// The arguments both functions share, read and checked; `per_point` is alpha or weight.
struct Common {
  ArrayArg<float> x, baselines;
  ArrayArg<int32_t> x_row, baseline_row;
  ArrayArg<double> per_point;
  std::string per_point_name;
  kdfuse::IgPoints p;
};

Common read_common(Napi::Env env, const Napi::Object& o, const char* per_point_name) {
  Common c;
  c.x = get_f32(env, o.Get("x"), "x", true);
  c.baselines = get_f32(env, o.Get("baselines"), "baselines", true);
  const int64_t F = get_dim(env, o, "features");
  c.x_row = get_i32(env, o.Get("xRow"), "xRow", true);
  c.baseline_row = get_i32(env, o.Get("baselineRow"), "baselineRow", true);
  c.per_point = get_f64(env, o.Get(per_point_name), per_point_name, true);
  c.per_point_name = per_point_name;
  if (c.x.length == 0 || c.x.length % size_t(F) != 0)
    throw_range(env, "x must have a length that is a positive multiple of features = " + std::to_string(F) + ", got " +
                         std::to_string(c.x.length));
  if (c.baselines.length == 0 || c.baselines.length % size_t(F) != 0)
    throw_range(env, "baselines must have a length that is a positive multiple of features = " + std::to_string(F) + ", got " +
                         std::to_string(c.baselines.length));
  const int64_t n = int64_t(c.x_row.length);
  check_length(env, "baselineRow", c.baseline_row.length, n, false, "xRow.length");
  check_length(env, per_point_name, c.per_point.length, n, false, "xRow.length");
  checked_size(env, n, F);
  c.p.x = c.x.data;
  c.p.x_rows = int64_t(c.x.length) / F;
  c.p.baselines = c.baselines.data;
  c.p.baseline_rows = int64_t(c.baselines.length) / F;
  c.p.features = F;
  c.p.points = n;
  c.p.x_row = c.x_row.data;
  c.p.baseline_row = c.baseline_row.data;
  return c;
}

// The outputs are written while the inputs are read: they must not share memory with any of them.
template <class T>
void check_output_apart(Napi::Env env, const std::string& name, const ArrayArg<T>& out, const Common& c) {
  const size_t ob = out.length * sizeof(T);
  check_no_overlap(env, name, out.data, ob, "x", c.x.data, c.x.length * sizeof(float));
  check_no_overlap(env, name, out.data, ob, "baselines", c.baselines.data, c.baselines.length * sizeof(float));
  check_no_overlap(env, name, out.data, ob, "xRow", c.x_row.data, c.x_row.length * sizeof(int32_t));
  check_no_overlap(env, name, out.data, ob, "baselineRow", c.baseline_row.data, c.baseline_row.length * sizeof(int32_t));
  check_no_overlap(env, name, out.data, ob, c.per_point_name, c.per_point.data,
                   c.per_point.length * sizeof(double));
}

Napi::Value IgInterpolate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = require_object(info, "options");
  Common c = read_common(env, o, "alpha");
  ArrayArg<float> out = get_f32(env, o.Get("out"), "out", true);
  check_length(env, "out", out.length, c.p.points * c.p.features, false, "xRow.length * features");
  check_output_apart(env, "out", out, c);
  const kdfuse::Status s = kdfuse::ig_interpolate(c.p, c.per_point.data, out.data);
  if (!s.ok()) throw_status(env, s);
  return env.Undefined();
}

Napi::Value IgAccumulate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = require_object(info, "options");
  ArrayArg<float> grad = get_f32(env, o.Get("grad"), "grad", true);
  Common c = read_common(env, o, "weight");
  ArrayArg<double> acc = get_f64(env, o.Get("acc"), "acc", true);
  check_length(env, "grad", grad.length, c.p.points * c.p.features, false, "xRow.length * features");
  check_length(env, "acc", acc.length, int64_t(c.x.length), false, "x.length");
  check_output_apart(env, "acc", acc, c);
  check_no_overlap(env, "acc", acc.data, acc.length * sizeof(double), "grad", grad.data, grad.length * sizeof(float));
  const kdfuse::Status s = kdfuse::ig_accumulate(c.p, grad.data, c.per_point.data, acc.data);
  if (!s.ok()) throw_status(env, s);
  return env.Undefined();
}

}  // namespace

void register_ig(Napi::Env env, Napi::Object exports) {
  exports.Set("igInterpolate", Napi::Function::New(env, IgInterpolate, "igInterpolate"));
  exports.Set("igAccumulate", Napi::Function::New(env, IgAccumulate, "igAccumulate"));
}

}  // namespace kdfuse_addon
