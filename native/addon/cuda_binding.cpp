// The device-resident API (kd.cuda in TypeScript): DeviceArray, a JavaScript object that owns a
// kdfuse::cuda::DeviceBuffer; cudaUpload, which makes one from a Float32Array or Int32Array; and
// cudaDistillationLoss, which runs the fused loss on DeviceArrays and leaves its outputs on the
// device unless they are asked for.
//
// Compiled with or without CUDA, so the addon always exports the same functions: arguments are
// checked first (TypeError / RangeError naming the argument), then a call that needs a device
// throws an Error saying why there is none ("no CUDA device (<reason>)", or "kdfuse was built
// without CUDA (...)"). A DeviceArray frees its device memory on dispose() or when it is
// garbage-collected; its size is reported to V8 as external memory so that forgotten arrays are
// collected under pressure.
#include <napi.h>

#include <cmath>
#include <memory>
#include <new>
#include <string>
#include <utility>

#include "args.h"
#include "backend_dispatch.h"
#include "checks.h"
#include "env_state.h"
#include "kdfuse_core.h"
#ifdef KDFUSE_HAVE_CUDA
#include "kdfuse_cuda.h"
#endif

namespace kdfuse_addon {
namespace {

#ifdef KDFUSE_HAVE_CUDA
using Buffer = kdfuse::cuda::DeviceBuffer;
bool buffer_is_int32(const Buffer& b) { return b.dtype() == kdfuse::cuda::DType::Int32; }
#else
// Never holds memory: without CUDA no DeviceArray can be made (cudaUpload throws first).
struct Buffer {
  int64_t size() const { return 0; }
  bool empty() const { return true; }
  void reset() {}
};
bool buffer_is_int32(const Buffer&) { return false; }
#endif

// The buffer the DeviceArray being constructed takes over. Set only around make_device_array's
// call of the constructor, on this thread: `new DeviceArray()` from JavaScript finds it null.
thread_local Buffer* tl_pending = nullptr;

[[noreturn]] void throw_unavailable(Napi::Env env) { throw Napi::Error::New(env, cuda_unavailable_message()); }

class DeviceArray : public Napi::ObjectWrap<DeviceArray> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "DeviceArray",
                       {InstanceAccessor<&DeviceArray::Length>("length"),
                        InstanceAccessor<&DeviceArray::DTypeName>("dtype"),
                        InstanceAccessor<&DeviceArray::Disposed>("disposed"),
                        InstanceMethod<&DeviceArray::Download>("download"),
                        InstanceMethod<&DeviceArray::Dispose>("dispose")});
  }

  explicit DeviceArray(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DeviceArray>(info) {
    if (!tl_pending)
      throw Napi::TypeError::New(info.Env(), "DeviceArray cannot be constructed directly; use kd.cuda.upload(data)");
    buf_ = std::move(*tl_pending);
    tl_pending = nullptr;
    length_ = buf_.size();
    int32_ = buffer_is_int32(buf_);
    account(info.Env(), length_ * 4);
  }

  ~DeviceArray() override { release(Env()); }

  Buffer& buffer() { return buf_; }
  bool disposed() const { return buf_.empty(); }
  bool is_int32() const { return int32_; }
  int64_t length() const { return length_; }

 private:
  Napi::Value Length(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), double(length_)); }
  Napi::Value DTypeName(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), int32_ ? "int32" : "float32");
  }
  Napi::Value Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), disposed()); }

  Napi::Value Download(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (disposed()) throw_type(env, "download() needs a DeviceArray that is not disposed, got a disposed one");
#ifdef KDFUSE_HAVE_CUDA
    kdfuse::Status s;
    Napi::Value out;
    if (int32_) {
      Napi::Int32Array a = Napi::Int32Array::New(env, size_t(length_));
      s = buf_.download(a.Data(), length_);
      out = a;
    } else {
      float* p = nullptr;
      Napi::Float32Array a = new_f32(env, size_t(length_), &p);
      s = buf_.download(p, length_);
      out = a;
    }
    if (!s.ok()) throw target_error(env, s, true);
    return out;
#else
    throw_unavailable(env);
#endif
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    release(info.Env());
    return info.Env().Undefined();
  }

  void release(napi_env env) {
    if (!buf_.empty()) buf_.reset();
    account(env, -accounted_);
  }
  void account(napi_env env, int64_t delta) {
    if (delta == 0) return;
    int64_t ignored = 0;
    // Best effort: at environment teardown this may fail, and nothing needs it to succeed.
    napi_adjust_external_memory(env, delta, &ignored);
    accounted_ += delta;
  }

  Buffer buf_;
  int64_t length_ = 0;
  bool int32_ = false;
  int64_t accounted_ = 0;
};

// A new DeviceArray owning `b` (moved from).
Napi::Object make_device_array(Napi::Env env, Buffer&& b) {
  struct Guard {
    Buffer* prev;
    ~Guard() { tl_pending = prev; }
  } guard{tl_pending};
  tl_pending = &b;
  return env_state(env).device_array_class.New({});
}

bool is_device_array(Napi::Env env, const Napi::Value& v) {
  if (!v.IsObject()) return false;
  if (!v.As<Napi::Object>().InstanceOf(env_state(env).device_array_class.Value())) return false;
  void* p = nullptr;
  return napi_unwrap(env, v, &p) == napi_ok && p != nullptr;
}

std::string describe_value(Napi::Env env, const Napi::Value& v) {
  if (is_device_array(env, v)) {
    DeviceArray* a = DeviceArray::Unwrap(v.As<Napi::Object>());
    return std::string(a->disposed() ? "a disposed " : a->is_int32() ? "an " : "a ") + (a->is_int32() ? "int32" : "float32") +
           " DeviceArray";
  }
  return describe(v);
}

// A DeviceArray argument of `dtype` ("float32" / "int32") holding exactly `want` elements; null when
// absent and not required.
DeviceArray* get_device_array(Napi::Env env, const Napi::Value& v, const std::string& name, bool required,
                              bool int32, int64_t want, const char* what) {
  const char* dt = int32 ? "an int32 DeviceArray" : "a float32 DeviceArray";
  if (v.IsUndefined() || v.IsNull()) {
    if (required) throw_type(env, name + " must be " + dt + " (from kd.cuda.upload), got " + describe(v));
    return nullptr;
  }
  if (!is_device_array(env, v))
    throw_type(env, name + " must be " + dt + " (from kd.cuda.upload), got " + describe(v));
  DeviceArray* a = DeviceArray::Unwrap(v.As<Napi::Object>());
  if (a->is_int32() != int32) throw_type(env, name + " must be " + dt + ", got " + describe_value(env, v));
  if (a->disposed()) throw_type(env, name + " must be a DeviceArray that is not disposed, got a disposed one");
  check_length(env, name, size_t(a->length()), want, false, what);
  return a;
}

void throw_if(Napi::Env env, const kdfuse::Status& s) {
  if (!s.ok()) throw status_error(env, s);
}

// ---------------------------------------------------------------- cudaUpload(data)

Napi::Value Upload(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Value v = info.Length() ? info[0] : env.Undefined();
  const std::string want = "data must be a Float32Array or an Int32Array, got ";
  if (!v.IsTypedArray()) throw_type(env, want + describe(v));
  const napi_typedarray_type t = v.As<Napi::TypedArray>().TypedArrayType();
  if (t != napi_float32_array && t != napi_int32_array) throw_type(env, want + describe(v));
  const bool int32 = t == napi_int32_array;
  ArrayArg<float> f;
  ArrayArg<int32_t> i;
  if (int32) i = get_i32(env, v, "data", true);
  else f = get_f32(env, v, "data", true);
  const size_t n = int32 ? i.length : f.length;
  if (n == 0) throw_range(env, "data must have at least 1 element, got 0");
#ifdef KDFUSE_HAVE_CUDA
  if (!cuda_available()) throw_unavailable(env);
  Buffer b;
  const kdfuse::Status s = int32 ? b.upload(i.data, int64_t(n)) : b.upload(f.data, int64_t(n));
  if (!s.ok()) throw target_error(env, s, true);
  return make_device_array(env, std::move(b));
#else
  throw_unavailable(env);
#endif
}

// ---------------------------------------------------------------- cudaDistillationLoss(options)

const char* const kOutputs[] = {"gradStudent", "gradTeacher", "losses", nullptr};
enum { kGradStudent = 0, kGradTeacher, kLosses, kNumOutputs };

Napi::Value DistillationLoss(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = require_object(info, "options");

  // Shapes and options first, in the order of the TypeScript layer (src/kernels/cuda.ts) ...
  kdfuse::DistillLossArgs args;
  args.rows = get_dim(env, o, "rows");
  args.cols = get_dim(env, o, "cols");
  const int64_t n = checked_size(env, args.rows, args.cols);
  bool want_gs, want_gt;
  read_distill_options(env, o, &args, &want_gs, &want_gt);
  throw_if(env, kdfuse::check_temperature(args.temperature));
  throw_if(env, kdfuse::check_unit_interval("alpha", args.alpha));
  throw_if(env, kdfuse::check_unit_interval("labelSmoothing", args.label_smoothing, true));
  throw_if(env, kdfuse::check_unit_interval("beta", args.beta));
  const bool none = args.reduction == kdfuse::Reduction::None;

  bool wanted[kNumOutputs] = {want_gs, want_gt, none};
  bool download[kNumOutputs] = {false, false, false};
  {
    Napi::Value d = o.Get("download");
    std::string list;
    for (int k = 0; kOutputs[k]; ++k) list += std::string(k ? ", " : "") + "'" + kOutputs[k] + "'";
    if (!d.IsUndefined()) {
      if (!d.IsArray()) throw_type(env, "download must be an array of " + list + ", got " + describe(d));
      Napi::Array arr = d.As<Napi::Array>();
      for (uint32_t j = 0; j < arr.Length(); ++j) {
        Napi::Value e = arr.Get(j);
        const std::string nm = "download[" + std::to_string(j) + "]";
        if (!e.IsString()) throw_type(env, nm + " must be one of " + list + ", got " + describe(e));
        const std::string s = e.As<Napi::String>().Utf8Value();
        int k = 0;
        while (kOutputs[k] && s != kOutputs[k]) ++k;
        if (!kOutputs[k]) throw_range(env, nm + " must be one of " + list + ", got '" + s + "'");
        download[k] = true;
      }
    }
    if (download[kGradStudent] && !want_gs)
      throw_range(env, "download includes 'gradStudent' but computeStudentGrad is false");
    if (download[kGradTeacher] && !want_gt)
      throw_range(env, "download includes 'gradTeacher' but computeTeacherGrad is false (set it to true to compute it)");
    if (download[kLosses] && !none)
      throw_range(env, std::string("download includes 'losses' but reduction is '") + kReductions[int(args.reduction)] +
                           "'; per-row losses come with reduction 'none'");
  }

  Napi::Value g = o.Get("gradOutput");
  const bool grad_rows = none && !g.IsUndefined() && !g.IsNumber();
  if (!g.IsUndefined() && !grad_rows) {
    if (!g.IsNumber())
      throw_type(env, "gradOutput must be a number (or a float32 DeviceArray of rows elements with reduction 'none'), got " +
                          describe_value(env, g));
    args.grad_output = g.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(args.grad_output))
      throw_range(env, "gradOutput must be a finite number, got " + g.ToString().Utf8Value());
  }

  // ... then the arrays.
  DeviceArray* student = get_device_array(env, o.Get("student"), "student", true, false, n, "rows * cols");
  DeviceArray* teacher = get_device_array(env, o.Get("teacher"), "teacher", true, false, n, "rows * cols");
  DeviceArray* labels = get_device_array(env, o.Get("labels"), "labels", false, true, args.rows, "rows");
  DeviceArray* gor = grad_rows ? get_device_array(env, g, "gradOutput", true, false, args.rows, "rows") : nullptr;

  DeviceArray* outs[kNumOutputs] = {nullptr, nullptr, nullptr};
  Napi::Value out_values[kNumOutputs];
  {
    Napi::Value ov = o.Get("out");
    if (!ov.IsUndefined()) {
      if (!ov.IsObject() || ov.IsArray() || ov.IsTypedArray() || is_device_array(env, ov))
        throw_type(env, "out must be an object such as { gradStudent: DeviceArray }, got " + describe_value(env, ov));
      Napi::Object oo = ov.As<Napi::Object>();
      for (int k = 0; k < kNumOutputs; ++k) {
        out_values[k] = oo.Get(kOutputs[k]);
        outs[k] = get_device_array(env, out_values[k], std::string("out.") + kOutputs[k], false, false,
                                   k == kLosses ? args.rows : n, k == kLosses ? "rows" : "rows * cols");
        if (!wanted[k]) outs[k] = nullptr;  // not computed: left alone, as the CPU API leaves unused out arrays
      }
    }
    const std::pair<DeviceArray*, const char*> inputs[] = {
        {student, "student"}, {teacher, "teacher"}, {labels, "labels"}, {gor, "gradOutput"}};
    for (int k = 0; k < kNumOutputs; ++k) {
      if (!outs[k]) continue;
      const std::string nm = std::string("out.") + kOutputs[k];
      for (const auto& in : inputs)
        if (in.first == outs[k]) throw_range(env, nm + " must not be the same DeviceArray as " + in.second);
      for (int j = 0; j < k; ++j)
        if (outs[j] == outs[k]) throw_range(env, nm + " must not be the same DeviceArray as out." + kOutputs[j]);
    }
  }

#ifdef KDFUSE_HAVE_CUDA
  if (!cuda_available()) throw_unavailable(env);
  Buffer fresh[kNumOutputs];
  Buffer* bufs[kNumOutputs] = {nullptr, nullptr, nullptr};
  for (int k = 0; k < kNumOutputs; ++k)
    if (wanted[k]) bufs[k] = outs[k] ? &outs[k]->buffer() : &fresh[k];
  kdfuse::cuda::DistillDeviceBuffers d;
  d.student = &student->buffer();
  d.teacher = &teacher->buffer();
  d.labels = labels ? &labels->buffer() : nullptr;
  d.grad_output_rows = gor ? &gor->buffer() : nullptr;
  d.grad_student = bufs[kGradStudent];
  d.grad_teacher = bufs[kGradTeacher];
  d.loss_rows = bufs[kLosses];
  kdfuse::DistillLossResult res;
  kdfuse::Status s;
  try {
    s = kdfuse::cuda::distill_loss_device(args, d, &res);
  } catch (const std::bad_alloc&) {
    s = kdfuse::Status::RangeErr("out of memory");
  }
  if (!s.ok()) throw target_error(env, s, true);

  Napi::Object result = Napi::Object::New(env);
  result.Set("loss", res.loss);
  for (int k : {kLosses, kGradStudent, kGradTeacher}) {
    if (!wanted[k]) continue;
    if (download[k]) {
      float* p = nullptr;
      const int64_t count = bufs[k]->size();
      Napi::Float32Array a = new_f32(env, size_t(count), &p);
      const kdfuse::Status ds = bufs[k]->download(p, count);
      if (!ds.ok()) throw target_error(env, ds, true);
      result.Set(kOutputs[k], a);  // a fresh device buffer is freed on return
    } else if (outs[k]) {
      result.Set(kOutputs[k], out_values[k]);
    } else {
      result.Set(kOutputs[k], make_device_array(env, std::move(fresh[k])));
    }
  }
  return result;
#else
  throw_unavailable(env);
#endif
}

}  // namespace

void register_cuda(Napi::Env env, Napi::Object exports) {
  Napi::Function cls = DeviceArray::Define(env);
  env_state(env).device_array_class = Napi::Persistent(cls);
  exports.Set("DeviceArray", cls);
  exports.Set("cudaUpload", Napi::Function::New(env, Upload, "cudaUpload"));
  exports.Set("cudaDistillationLoss", Napi::Function::New(env, DistillationLoss, "cudaDistillationLoss"));
}

}  // namespace kdfuse_addon
