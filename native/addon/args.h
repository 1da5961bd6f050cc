// Reading JavaScript arguments into C++ values. Every check the TypeScript layer makes is made
// here again, because the addon can be called directly: wrong types throw TypeError, wrong
// values, lengths and ranges throw RangeError, and each message names the argument.
#pragma once
#include <napi.h>

#include <cstdint>
#include <string>

#include "kdfuse_core.h"

namespace kdfuse_addon {

// A short description of a JavaScript value for error messages ("Float64Array", "number 3", ...).
std::string describe(const Napi::Value& v);

[[noreturn]] void throw_type(Napi::Env env, const std::string& msg);
[[noreturn]] void throw_range(Napi::Env env, const std::string& msg);
// Throws the JavaScript error matching a failed core Status.
[[noreturn]] void throw_status(Napi::Env env, const kdfuse::Status& s);
Napi::Error status_error(Napi::Env env, const kdfuse::Status& s);

Napi::Object require_object(const Napi::CallbackInfo& info, const char* what);

// A typed array argument: data pointer and element count, after type and detachment checks.
template <class T>
struct ArrayArg {
  T* data = nullptr;
  size_t length = 0;
  Napi::Value value;  // the JavaScript object (empty when absent)
  bool present() const { return data != nullptr; }
};

// name is used in messages ("student", "out.gradStudent"); required arrays must be present.
ArrayArg<float> get_f32(Napi::Env env, const Napi::Value& v, const std::string& name, bool required);
ArrayArg<int32_t> get_i32(Napi::Env env, const Napi::Value& v, const std::string& name, bool required);
ArrayArg<double> get_f64(Napi::Env env, const Napi::Value& v, const std::string& name, bool required);

// Checks that `a` has exactly `n` elements (inputs) or at least `n` (outputs).
void check_length(Napi::Env env, const std::string& name, size_t have, int64_t want, bool at_least,
                  const char* what = "rows * cols");
// Outputs must not share memory with inputs: the kernels read inputs after writing outputs.
void check_no_overlap(Napi::Env env, const std::string& out_name, const void* out, size_t out_bytes,
                      const std::string& in_name, const void* in, size_t in_bytes);

// The upstream gradient of a loss: a number into *scalar, or with reduction 'none' a Float32Array of
// `rows` values (returned; absent otherwise). Shared by the dense and the top-k loss.
ArrayArg<float> read_grad_output(Napi::Env env, const Napi::Value& g, kdfuse::Reduction reduction, int64_t rows,
                                 double* scalar);

// A block of memory a call reads or writes, for check_all_apart (absent: p null).
struct Span {
  const char* name;
  const void* p;
  size_t bytes;
};
template <class T>
Span span_of(const char* name, const ArrayArg<T>& a) {
  return {name, a.present() ? static_cast<const void*>(a.data) : nullptr, a.length * sizeof(T)};
}
// Every output must be apart from every input (the kernels read labels, indices and per-row
// gradOutput after writing gradients) and from the other outputs.
void check_all_apart(Napi::Env env, const Span* outs, size_t nouts, const Span* ins, size_t nins);

// The same checks on a value already in hand (name is used in messages).
int64_t dim_of(Napi::Env env, const Napi::Value& v, const char* name);
double number_of(Napi::Env env, const Napi::Value& v, const char* name, double fallback);
bool bool_of(Napi::Env env, const Napi::Value& v, const char* name, bool fallback);
int32_t int32_of(Napi::Env env, const Napi::Value& v, const char* name, int32_t fallback);
int choice_of(Napi::Env env, const Napi::Value& v, const char* name, const char* const* choices, int fallback);

int64_t get_dim(Napi::Env env, const Napi::Object& o, const char* name);
// rows * cols as an element count, checked to fit (before anything is sized by it).
int64_t checked_size(Napi::Env env, int64_t rows, int64_t cols);
double get_number(Napi::Env env, const Napi::Object& o, const char* name, double fallback);
bool get_bool(Napi::Env env, const Napi::Object& o, const char* name, bool fallback);
int32_t get_int32(Napi::Env env, const Napi::Object& o, const char* name, int32_t fallback);
// One of `choices` (a null-terminated list); returns its index.
int get_choice(Napi::Env env, const Napi::Object& o, const char* name, const char* const* choices, int fallback);

// A kernel's arguments as values, gathered by one table of {option name, field} in the order of its
// positional entry (the TypeScript layer's *_ARG_NAMES): from an options object by name, or from
// positional arguments as they are. Every kernel's Values struct is read through these two.
template <class Values>
struct NamedArg {
  const char* name;
  Napi::Value Values::* field;
};

template <class Values, size_t N>
Values values_from_object(const Napi::Object& o, const NamedArg<Values> (&table)[N]) {
  Values v;
  for (const NamedArg<Values>& a : table) v.*a.field = o.Get(a.name);
  return v;
}

// Throws a TypeError listing the arguments unless there are exactly N.
template <class Values, size_t N>
Values values_from_args(const Napi::CallbackInfo& info, const NamedArg<Values> (&table)[N], const char* entry) {
  if (info.Length() != N) {
    std::string names;
    for (const NamedArg<Values>& a : table) names += std::string(names.empty() ? "" : ", ") + a.name;
    throw_type(info.Env(), std::string(entry) + " takes " + std::to_string(N) + " arguments (" + names + "), got " +
                               std::to_string(info.Length()));
  }
  Values v;
  for (size_t i = 0; i < N; ++i) v.*table[i].field = info[i];
  return v;
}

// The option names of the distillation loss, in the order of kdfuse::Reduction / Divergence.
extern const char* const kReductions[];
extern const char* const kDivergences[];

// The distillation loss's arguments as values: read from an options object by name, or taken as
// they are from positional arguments (the TypeScript layer's entry: reading a property by name
// costs about 70 ns, seventeen of them a fifth of a small call). The order and the names are
// kDistillArgs' in args.cpp.
struct DistillValues {
  Napi::Value student, teacher, rows, cols, labels, temperature, alpha, scale_by_t2, label_smoothing, ignore_index,
      reduction, divergence, beta, grad_output, compute_gs, compute_gt, out;
  static DistillValues from_object(const Napi::Object& o);
  // Throws a TypeError listing the arguments unless there are exactly as many as kDistillArgs.
  static DistillValues from_args(const Napi::CallbackInfo& info, const char* entry);
};

// Reads the distillation loss's scalar options (temperature, alpha, ..., computeTeacherGrad) into
// `args`, with their defaults; shared by the CPU/CUDA entry point and the device-resident one.
void read_distill_options(Napi::Env env, const DistillValues& v, kdfuse::DistillLossArgs* args, bool* want_gs,
                          bool* want_gt);
void read_distill_options(Napi::Env env, const Napi::Object& o, kdfuse::DistillLossArgs* args, bool* want_gs,
                          bool* want_gt);

// A new Float32Array of n elements whose memory is not zero-filled (the kernels overwrite it).
Napi::Float32Array new_f32(Napi::Env env, size_t n, float** data);

}  // namespace kdfuse_addon
