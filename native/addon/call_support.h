// What every kernel entry point shares: its inputs (the caller's memory, or a private copy for an
// async call), its outputs (returned arrays, or the caller's `out` filled when an async call
// settles), and the worker that runs an async call and settles its Promise. See kernels_binding.cpp.
#pragma once
#include <napi.h>

#include <cstring>
#include <memory>
#include <new>
#include <string>

#include "args.h"
#include "gc_release.h"
#include "output_buffers.h"

namespace kdfuse_addon {

// How a call holds its inputs (and whether it is async: a CallMode converts to that bool).
struct CallMode {
  bool async = false;
  // async with borrowInputs: the caller's memory is read in place by the worker, pinned (gc_release.h)
  // so that a transfer cannot free it; the caller promised not to write it until the call settles
  bool borrow = false;
  operator bool() const { return async; }  // NOLINT: reads as "async" where a call only asks that
};

// An input: the caller's memory (sync, or async borrowed), or a private copy (async), the copy's
// memory from the buffer cache so repeated async calls of one shape reuse it.
struct Input {
  const float* data = nullptr;
  float* copy = nullptr;
  size_t copy_bytes = 0;
  void* pin = nullptr;                    // borrowed: the caller's buffer, held alive
  Napi::Reference<Napi::Value> borrowed;  // borrowed: the caller's array, to see it detached
  const char* name = "";
  Input() = default;
  Input(const Input&) = delete;
  Input& operator=(const Input&) = delete;
  ~Input() {
    release_block(copy, copy_bytes);
    unpin_buffer(pin);
  }
  void take(Napi::Env env, const char* nm, const ArrayArg<float>& a, size_t n, CallMode mode) {
    name = nm;
    if (!a.present()) return;
    data = a.data;
    if (!mode.async) return;
    if (mode.borrow && results_released_by_gc(env)) {  // the same use of V8's API (KDFUSE_GC_RELEASE=0 turns both off)
      void* at = nullptr;
      pin = pin_buffer(static_cast<napi_value>(a.value), &at);
      if (pin) {
        data = static_cast<const float*>(at);
        borrowed = Napi::Persistent(a.value);
        return;
      }  // this build cannot pin: copied as without borrowInputs
    }
    copy_bytes = n * sizeof(float);
    copy = static_cast<float*>(acquire_block(copy_bytes));
    if (!copy)
      throw_range(env, "out of memory: a copy of an input of " + std::to_string(copy_bytes) + " bytes could not be allocated");
    // on this thread: splitting it over the kernels' pool gained little (50 -> 45 ms at 262 MB) and
    // held the pool, so an async kernel running meanwhile lost its other threads
    if (n > 0) std::memcpy(copy, a.data, copy_bytes);
    data = copy;
  }
  // A borrowed input whose array was detached (transferred) while the call ran: the caller broke
  // the promise borrowInputs made, so the result is not handed back as if whole.
  void check_intact(Napi::Env env) const {
    if (borrowed.IsEmpty()) return;
    const Napi::Value v = borrowed.Value();
    bool detached = false;
    if (v.IsTypedArray()) napi_is_detached_arraybuffer(env, v.As<Napi::TypedArray>().ArrayBuffer(), &detached);
    if (detached)
      throw_type(env, std::string(name) + " was detached (transferred) while the call was running with borrowInputs: true; "
                                          "its result was discarded");
  }
};

// An output: the array returned to JavaScript, and (async with a caller `out`) where to copy it.
struct Output {
  std::string name;
  float* data = nullptr;
  size_t n = 0;
  Napi::Reference<Napi::Float32Array> result;   // what the call returns
  Napi::Reference<Napi::Float32Array> user;     // async: the caller's out array to fill at the end
  void make(Napi::Env env, const std::string& nm, size_t count, const ArrayArg<float>& out, bool async) {
    name = nm;
    n = count;
    if (out.present() && !async) {
      data = out.data;
      result = Napi::Persistent(out.value.As<Napi::Float32Array>());
      return;
    }
    Napi::Float32Array a = new_f32(env, count, &data);
    result = Napi::Persistent(a);
    if (out.present()) user = Napi::Persistent(out.value.As<Napi::Float32Array>());
  }
  bool wanted() const { return !result.IsEmpty(); }
  // Async end: copy into the caller's array if there is one; returns the array to hand back.
  Napi::Value finish(Napi::Env env) {
    if (user.IsEmpty()) return result.Value();
    Napi::Float32Array u = user.Value();
    bool detached = false;
    napi_is_detached_arraybuffer(env, u.ArrayBuffer(), &detached);
    if (detached || u.ElementLength() < n)
      throw_type(env, name + " was detached (transferred) while the call was running; its result was discarded");
    std::memcpy(u.Data(), data, n * sizeof(float));
    return u;
  }
};

// The `out` object, or an empty value when there is none (its fields are then not read at all).
inline Napi::Value out_object(Napi::Env env, const Napi::Value& v) {
  if (v.IsUndefined()) return Napi::Value();
  if (!v.IsObject() || v.IsArray() || v.IsTypedArray())
    throw_type(env, "out must be an object such as { gradStudent: Float32Array }, got " + describe(v));
  return v;
}

template <class Call>
class CallWorker : public Napi::AsyncWorker {
 public:
  CallWorker(Napi::Env env, std::unique_ptr<Call> call)
      : Napi::AsyncWorker(env, "kdfuse"), call_(std::move(call)), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise promise() { return deferred_.Promise(); }
  void Execute() override { call_->run(); }
  void OnOK() override {
    Napi::Env env = Env();
    try {
      call_->check_inputs(env);
      deferred_.Resolve(call_->result(env));
    } catch (const Napi::Error& e) {
      reject(e);
    }
  }
  void OnError(const Napi::Error& e) override { reject(e); }

 private:
  // When the environment is being torn down (a worker_thread terminated with calls in flight),
  // JavaScript can no longer run: building the result and settling the Promise fail, and nobody
  // can observe the Promise any more. That last failure is dropped: thrown on, it would leave the
  // completion callback as a C++ exception and abort the whole process.
  void reject(const Napi::Error& e) {
    try {
      deferred_.Reject(e.Value());
    } catch (const Napi::Error&) {
    }
  }
  std::unique_ptr<Call> call_;
  Napi::Promise::Deferred deferred_;
};

// A kernel run on any thread: its Status, with running out of memory turned into a RangeError.
template <class F>
kdfuse::Status guarded(F&& run) {
  try {
    return run();
  } catch (const std::bad_alloc&) {
    return kdfuse::Status::RangeErr("out of memory");
  }
}

// The entry forms every kernel call shares. A Call has parse(env, values, async), run() and
// result(env); `values` is an options object or the call's positional values.
template <class Call, class Values>
Napi::Value call_sync(Napi::Env env, Call& call, const Values& values) {
  call.parse(env, values, CallMode{});
  call.run();
  return call.result(env);
}

// The async form: inputs copied now (or borrowed when the second argument is true: borrowInputs),
// the kernel run on a worker, a Promise returned. Argument errors reject the Promise rather than
// throw, as async functions do.
template <class Call>
Napi::Value call_async(const Napi::CallbackInfo& info, std::unique_ptr<Call> call) {
  Napi::Env env = info.Env();
  auto reject = [&](const Napi::Error& e) {
    Napi::Promise::Deferred d = Napi::Promise::Deferred::New(env);
    d.Reject(e.Value());
    return d.Promise();
  };
  try {
    CallMode mode;
    mode.async = true;
    mode.borrow = info.Length() > 1 && info[1].IsBoolean() && info[1].As<Napi::Boolean>().Value();
    call->parse(env, require_object(info, "options"), mode);
  } catch (const Napi::Error& e) {
    return reject(e);
  } catch (const std::bad_alloc&) {
    return reject(Napi::RangeError::New(env, "out of memory copying the inputs"));
  }
  auto* worker = new CallWorker<Call>(env, std::move(call));
  Napi::Promise p = worker->promise();
  worker->Queue();
  return p;
}

// A kernel's three entry points over its Call: an options object, positional values (the
// TypeScript layer's entry; Call::positional(info) reads them), and the Promise form.
template <class Call>
Napi::Value object_entry(const Napi::CallbackInfo& info) {
  Call call;
  return call_sync(info.Env(), call, require_object(info, "options"));
}
template <class Call>
Napi::Value positional_entry(const Napi::CallbackInfo& info) {
  Call call;
  return call_sync(info.Env(), call, Call::positional(info));
}
template <class Call>
Napi::Value promise_entry(const Napi::CallbackInfo& info) {
  return call_async(info, std::make_unique<Call>());
}

}  // namespace kdfuse_addon
