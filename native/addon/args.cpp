#include "args.h"
#include "output_buffers.h"

#include <cmath>
#include <cstdlib>
#include <limits>

namespace kdfuse_addon {

namespace {

const char* typed_array_name(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array: return "Int8Array";
    case napi_uint8_array: return "Uint8Array";
    case napi_uint8_clamped_array: return "Uint8ClampedArray";
    case napi_int16_array: return "Int16Array";
    case napi_uint16_array: return "Uint16Array";
    case napi_int32_array: return "Int32Array";
    case napi_uint32_array: return "Uint32Array";
    case napi_float32_array: return "Float32Array";
    case napi_float64_array: return "Float64Array";
    case napi_bigint64_array: return "BigInt64Array";
    case napi_biguint64_array: return "BigUint64Array";
    default: return "TypedArray";
  }
}


}  // namespace

std::string describe(const Napi::Value& v) {
  if (v.IsEmpty() || v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsNumber()) return "number " + v.ToString().Utf8Value();
  if (v.IsString()) return "string '" + v.As<Napi::String>().Utf8Value() + "'";
  if (v.IsBoolean()) return std::string("boolean ") + (v.As<Napi::Boolean>().Value() ? "true" : "false");
  if (v.IsTypedArray()) return typed_array_name(v.As<Napi::TypedArray>().TypedArrayType());
  if (v.IsArray()) return "Array";
  if (v.IsArrayBuffer()) return "ArrayBuffer";
  if (v.IsFunction()) return "function";
  if (v.IsObject()) return "object";
  return "value";
}

void throw_type(Napi::Env env, const std::string& msg) { throw Napi::TypeError::New(env, msg); }
void throw_range(Napi::Env env, const std::string& msg) { throw Napi::RangeError::New(env, msg); }

Napi::Error status_error(Napi::Env env, const kdfuse::Status& s) {
  switch (s.kind) {
    case kdfuse::ErrorKind::Type: return Napi::TypeError::New(env, s.message);
    case kdfuse::ErrorKind::Range: return Napi::RangeError::New(env, s.message);
    default: return Napi::Error::New(env, "kdfuse internal error: " + s.message);
  }
}

void throw_status(Napi::Env env, const kdfuse::Status& s) { throw status_error(env, s); }

Napi::Object require_object(const Napi::CallbackInfo& info, const char* what) {
  if (info.Length() < 1 || !info[0].IsObject() || info[0].IsArray() || info[0].IsTypedArray())
    throw_type(info.Env(), std::string(what) + " must be an object, got " + describe(info.Length() ? info[0] : info.Env().Undefined()));
  return info[0].As<Napi::Object>();
}

template <class T>
static ArrayArg<T> get_typed(Napi::Env env, const Napi::Value& v, const std::string& name, bool required,
                             napi_typedarray_type want, const char* want_name) {
  ArrayArg<T> a;
  const std::string article = std::string("AEIO").find(want_name[0]) != std::string::npos ? " must be an " : " must be a ";
  if (v.IsUndefined() || v.IsNull()) {
    if (required) throw_type(env, name + article + want_name + ", got " + describe(v));
    return a;
  }
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != want)
    throw_type(env, name + article + want_name + ", got " + describe(v));
  // napi_get_typedarray_info gives the data pointer for arrays over an ArrayBuffer and over a
  // SharedArrayBuffer alike (Napi::ArrayBuffer::Data() fails on the latter with "Invalid argument")
  napi_typedarray_type type;
  size_t length = 0, offset = 0;
  void* data = nullptr;
  napi_value buffer;
  if (napi_get_typedarray_info(env, v, &type, &length, &data, &buffer, &offset) != napi_ok)
    throw_type(env, name + article + want_name + ", got one whose memory could not be read");
  bool detached = false;
  napi_is_detached_arraybuffer(env, buffer, &detached);  // false for a SharedArrayBuffer: it cannot be detached
  if (detached)
    throw_type(env, name + " must be a usable " + want_name + ", got one whose buffer was detached (transferred)");
  a.length = length;
  a.data = static_cast<T*>(data);
  a.value = v;
  if (a.data == nullptr) {
    // a zero-length array may have no memory at all; keep a non-null marker so present() holds
    static T empty_marker[1];
    a.data = empty_marker;
  }
  return a;
}

ArrayArg<float> get_f32(Napi::Env env, const Napi::Value& v, const std::string& name, bool required) {
  return get_typed<float>(env, v, name, required, napi_float32_array, "Float32Array");
}

ArrayArg<int32_t> get_i32(Napi::Env env, const Napi::Value& v, const std::string& name, bool required) {
  return get_typed<int32_t>(env, v, name, required, napi_int32_array, "Int32Array");
}

ArrayArg<double> get_f64(Napi::Env env, const Napi::Value& v, const std::string& name, bool required) {
  return get_typed<double>(env, v, name, required, napi_float64_array, "Float64Array");
}

void check_length(Napi::Env env, const std::string& name, size_t have, int64_t want, bool at_least,
                  const char* what) {
  const bool ok = at_least ? int64_t(have) >= want : int64_t(have) == want;
  if (!ok)
    throw_range(env, name + " must have " + (at_least ? "at least " : "") + what + " = " + std::to_string(want) +
                         " elements, got " + std::to_string(have));
}

void check_no_overlap(Napi::Env env, const std::string& out_name, const void* out, size_t out_bytes,
                      const std::string& in_name, const void* in, size_t in_bytes) {
  const auto o = reinterpret_cast<uintptr_t>(out), i = reinterpret_cast<uintptr_t>(in);
  if (o < i + in_bytes && i < o + out_bytes)
    throw_range(env, out_name + " must not share memory with " + in_name);
}

ArrayArg<float> read_grad_output(Napi::Env env, const Napi::Value& g, kdfuse::Reduction reduction, int64_t rows,
                                 double* scalar) {
  ArrayArg<float> ga;
  if (reduction == kdfuse::Reduction::None && !g.IsUndefined() && !g.IsNumber()) {
    ga = get_f32(env, g, "gradOutput", true);
    check_length(env, "gradOutput", ga.length, rows, false, "rows");
  } else if (!g.IsUndefined()) {
    if (!g.IsNumber())
      throw_type(env, "gradOutput must be a number (or a Float32Array of rows elements with reduction 'none'), got " +
                          describe(g));
    *scalar = g.As<Napi::Number>().DoubleValue();
  }
  return ga;
}

void check_all_apart(Napi::Env env, const Span* outs, size_t nouts, const Span* ins, size_t nins) {
  for (size_t i = 0; i < nouts; ++i) {
    if (!outs[i].p) continue;
    for (size_t j = 0; j < nins; ++j)
      if (ins[j].p) check_no_overlap(env, outs[i].name, outs[i].p, outs[i].bytes, ins[j].name, ins[j].p, ins[j].bytes);
    for (size_t j = 0; j < i; ++j)
      if (outs[j].p) check_no_overlap(env, outs[i].name, outs[i].p, outs[i].bytes, outs[j].name, outs[j].p, outs[j].bytes);
  }
}

int64_t dim_of(Napi::Env env, const Napi::Value& v, const char* name) {
  if (!v.IsNumber()) throw_type(env, std::string(name) + " must be a number, got " + describe(v));
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d != std::floor(d) || d < 1 || d > 9007199254740991.0)
    throw_range(env, std::string(name) + " must be an integer >= 1, got " + v.ToString().Utf8Value());
  return static_cast<int64_t>(d);
}
int64_t get_dim(Napi::Env env, const Napi::Object& o, const char* name) { return dim_of(env, o.Get(name), name); }

int64_t checked_size(Napi::Env env, int64_t rows, int64_t cols) {
  // at most 2^53 - 1 elements: larger products overflow (and no typed array is that long)
  if (rows > 9007199254740991 / cols)
    throw_range(env, "rows * cols is too large, got " + std::to_string(rows) + " * " + std::to_string(cols));
  return rows * cols;
}

double number_of(Napi::Env env, const Napi::Value& v, const char* name, double fallback) {
  if (v.IsUndefined()) return fallback;
  if (!v.IsNumber()) throw_type(env, std::string(name) + " must be a number, got " + describe(v));
  return v.As<Napi::Number>().DoubleValue();  // ranges are checked by the core
}
double get_number(Napi::Env env, const Napi::Object& o, const char* name, double fallback) {
  return number_of(env, o.Get(name), name, fallback);
}

bool bool_of(Napi::Env env, const Napi::Value& v, const char* name, bool fallback) {
  if (v.IsUndefined()) return fallback;
  if (!v.IsBoolean()) throw_type(env, std::string(name) + " must be a boolean, got " + describe(v));
  return v.As<Napi::Boolean>().Value();
}
bool get_bool(Napi::Env env, const Napi::Object& o, const char* name, bool fallback) {
  return bool_of(env, o.Get(name), name, fallback);
}

int32_t int32_of(Napi::Env env, const Napi::Value& v, const char* name, int32_t fallback) {
  if (v.IsUndefined()) return fallback;
  if (!v.IsNumber()) throw_type(env, std::string(name) + " must be a number, got " + describe(v));
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d != std::floor(d) || d < -2147483648.0 || d > 2147483647.0)
    throw_range(env, std::string(name) + " must be a 32-bit integer, got " + v.ToString().Utf8Value());
  return static_cast<int32_t>(d);
}
int32_t get_int32(Napi::Env env, const Napi::Object& o, const char* name, int32_t fallback) {
  return int32_of(env, o.Get(name), name, fallback);
}

int choice_of(Napi::Env env, const Napi::Value& v, const char* name, const char* const* choices, int fallback) {
  if (v.IsUndefined()) return fallback;
  // the list of choices is spelled out only for an error (it took two allocations per call)
  const auto list = [choices] {
    std::string l;
    for (int i = 0; choices[i]; ++i) l += std::string(i ? ", " : "") + "'" + choices[i] + "'";
    return l;
  };
  if (!v.IsString()) throw_type(env, std::string(name) + " must be one of " + list() + ", got " + describe(v));
  const std::string s = v.As<Napi::String>().Utf8Value();
  for (int i = 0; choices[i]; ++i)
    if (s == choices[i]) return i;
  throw_range(env, std::string(name) + " must be one of " + list() + ", got '" + s + "'");
}
int get_choice(Napi::Env env, const Napi::Object& o, const char* name, const char* const* choices, int fallback) {
  return choice_of(env, o.Get(name), name, choices, fallback);
}

const char* const kReductions[] = {"mean", "sum", "none", nullptr};
const char* const kDivergences[] = {"kl", "reverse-kl", "jsd", nullptr};

namespace {
// Each argument's option name and field, in the order of the positional entry (and of
// src/kernels/distill-loss.ts's DISTILL_ARG_NAMES).
constexpr NamedArg<DistillValues> kDistillArgs[] = {
    {"student", &DistillValues::student}, {"teacher", &DistillValues::teacher}, {"rows", &DistillValues::rows},
    {"cols", &DistillValues::cols}, {"labels", &DistillValues::labels}, {"temperature", &DistillValues::temperature},
    {"alpha", &DistillValues::alpha}, {"scaleByTemperatureSquared", &DistillValues::scale_by_t2},
    {"labelSmoothing", &DistillValues::label_smoothing}, {"ignoreIndex", &DistillValues::ignore_index},
    {"reduction", &DistillValues::reduction}, {"divergence", &DistillValues::divergence}, {"beta", &DistillValues::beta},
    {"gradOutput", &DistillValues::grad_output}, {"computeStudentGrad", &DistillValues::compute_gs},
    {"computeTeacherGrad", &DistillValues::compute_gt}, {"out", &DistillValues::out},
};
}  // namespace

DistillValues DistillValues::from_object(const Napi::Object& o) { return values_from_object(o, kDistillArgs); }

DistillValues DistillValues::from_args(const Napi::CallbackInfo& info, const char* entry) {
  return values_from_args(info, kDistillArgs, entry);
}

void read_distill_options(Napi::Env env, const DistillValues& v, kdfuse::DistillLossArgs* args, bool* want_gs,
                          bool* want_gt) {
  args->temperature = number_of(env, v.temperature, "temperature", 1.0);
  args->alpha = number_of(env, v.alpha, "alpha", 0.5);
  args->scale_by_t2 = bool_of(env, v.scale_by_t2, "scaleByTemperatureSquared", true);
  args->label_smoothing = number_of(env, v.label_smoothing, "labelSmoothing", 0.0);
  args->ignore_index = int32_of(env, v.ignore_index, "ignoreIndex", -100);
  args->reduction = static_cast<kdfuse::Reduction>(choice_of(env, v.reduction, "reduction", kReductions, 0));
  args->divergence = static_cast<kdfuse::Divergence>(choice_of(env, v.divergence, "divergence", kDivergences, 0));
  args->beta = number_of(env, v.beta, "beta", 0.5);
  *want_gs = bool_of(env, v.compute_gs, "computeStudentGrad", true);
  *want_gt = bool_of(env, v.compute_gt, "computeTeacherGrad", false);
}

void read_distill_options(Napi::Env env, const Napi::Object& o, kdfuse::DistillLossArgs* args, bool* want_gs,
                          bool* want_gt) {
  read_distill_options(env, DistillValues::from_object(o), args, want_gs, want_gt);
}

Napi::Float32Array new_f32(Napi::Env env, size_t n, float** data) { return new_output_f32(env, n, data); }

}  // namespace kdfuse_addon
