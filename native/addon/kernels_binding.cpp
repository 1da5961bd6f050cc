// Entry points for the kernels: sync and Promise-returning async versions of each.
// Each call runs on the CPU core or the CUDA host API, as backend_dispatch.h decides when it is made.
//
// Sync calls read and write the caller's typed arrays in place. Async calls snapshot their inputs
// when called (the caller may reuse, mutate or transfer them at once) and compute into buffers no
// JavaScript code can reach until the Promise settles, so neither GC nor a transfer to a worker
// can pull memory from under the computation; caller-supplied `out` arrays are filled at the end,
// after checking they are still attached.
#include <napi.h>

#include <cstring>
#include <memory>
#include <new>
#include <vector>

#include "args.h"
#include "call_support.h"
#include "output_buffers.h"
#include "backend_dispatch.h"
#include "env_state.h"
#include "kdfuse_core.h"

namespace kdfuse_addon {
namespace {

// ---------------------------------------------------------------- softmax (forward and backward)

struct SoftmaxCall {
  bool backward = false;
  kdfuse::SoftmaxArgs fwd;
  kdfuse::SoftmaxBackwardArgs bwd;
  Target target;  // CPU core or CUDA (backend_dispatch.h), fixed when the call is made
  Input x, dy;
  Output out;
  kdfuse::Status status;

  void parse(Napi::Env env, const Napi::Object& o, CallMode async) {
    const int64_t rows = get_dim(env, o, "rows"), cols = get_dim(env, o, "cols");
    checked_size(env, rows, cols);
    const double temperature = get_number(env, o, "temperature", 1.0);
    const bool log = get_bool(env, o, "log", false);
    const char* xname = backward ? "output" : "logits";
    ArrayArg<float> xa = get_f32(env, o.Get(xname), xname, true);
    check_length(env, xname, xa.length, rows * cols, false);
    ArrayArg<float> dya;
    if (backward) {
      dya = get_f32(env, o.Get("gradOutput"), "gradOutput", true);
      check_length(env, "gradOutput", dya.length, rows * cols, false);
    }
    ArrayArg<float> outa = get_f32(env, o.Get("out"), "out", false);
    if (outa.present()) check_length(env, "out", outa.length, rows * cols, true);
    // checked on the caller's arrays, sync or async, as the TypeScript layer does
    if (outa.present()) {
      const size_t nb = size_t(rows * cols) * sizeof(float);
      check_no_overlap(env, "out", outa.data, nb, xname, xa.data, xa.length * sizeof(float));
      if (dya.present()) check_no_overlap(env, "out", outa.data, nb, "gradOutput", dya.data, dya.length * sizeof(float));
    }
    x.take(env, xname, xa, size_t(rows * cols), async);
    dy.take(env, "gradOutput", dya, size_t(rows * cols), async);
    out.make(env, "out", size_t(rows * cols), outa, async);
    target = current_target(env_state(env));
    if (backward) bwd = {x.data, dy.data, rows, cols, temperature, log, out.data};
    else fwd = {x.data, rows, cols, temperature, log, out.data};
  }
  void check_inputs(Napi::Env env) const {
    x.check_intact(env);
    dy.check_intact(env);
  }
  void run() {
    status = guarded([&] { return backward ? run_softmax_backward(target, bwd) : run_softmax_forward(target, fwd); });
  }
  Napi::Value result(Napi::Env env) {
    if (!status.ok()) throw target_error(env, status, target.cuda);
    return out.finish(env);
  }
};

// ---------------------------------------------------------------- distillation loss


struct DistillCall {
  kdfuse::DistillLossArgs args;
  kdfuse::DistillLossResult res;
  Target target;  // CPU core or CUDA (backend_dispatch.h), fixed when the call is made
  Input student, teacher, grad_rows;
  std::vector<int32_t> labels_copy;
  Output grad_s, grad_t, losses;
  kdfuse::Status status;

  void parse(Napi::Env env, const Napi::Object& o, CallMode async) { parse(env, DistillValues::from_object(o), async); }
  // the positional entry (the TypeScript layer's): the same checks, the same result
  static DistillValues positional(const Napi::CallbackInfo& info) { return DistillValues::from_args(info, "distillationLossArgs"); }
  void parse(Napi::Env env, const DistillValues& v, CallMode async) {
    const int64_t rows = dim_of(env, v.rows, "rows"), cols = dim_of(env, v.cols, "cols");
    const size_t n = size_t(checked_size(env, rows, cols));
    ArrayArg<float> sa = get_f32(env, v.student, "student", true);
    ArrayArg<float> ta = get_f32(env, v.teacher, "teacher", true);
    check_length(env, "student", sa.length, rows * cols, false);
    check_length(env, "teacher", ta.length, rows * cols, false);
    ArrayArg<int32_t> la = get_i32(env, v.labels, "labels", false);
    if (la.present()) check_length(env, "labels", la.length, rows, false, "rows");

    bool want_gs, want_gt;
    read_distill_options(env, v, &args, &want_gs, &want_gt);

    const ArrayArg<float> ga = read_grad_output(env, v.grad_output, args.reduction, rows, &args.grad_output);

    const Napi::Value outv = out_object(env, v.out);
    ArrayArg<float> ogs, ogt, ol;
    if (!outv.IsEmpty()) {
      const Napi::Object outs = outv.As<Napi::Object>();
      ogs = get_f32(env, outs.Get("gradStudent"), "out.gradStudent", false);
      ogt = get_f32(env, outs.Get("gradTeacher"), "out.gradTeacher", false);
      ol = get_f32(env, outs.Get("losses"), "out.losses", false);
    }
    if (ogs.present()) check_length(env, "out.gradStudent", ogs.length, rows * cols, true);
    if (ogt.present()) check_length(env, "out.gradTeacher", ogt.length, rows * cols, true);
    if (ol.present()) check_length(env, "out.losses", ol.length, rows, true, "rows");

    // Outputs must not share memory with any input (labels and per-row gradOutput included: the
    // kernel reads them after writing gradients) or with each other; checked on the caller's
    // arrays, sync or async, as the TypeScript layer does.
    {
      const size_t nb = n * sizeof(float);
      const Span outs[] = {
          {"out.gradStudent", want_gs && ogs.present() ? ogs.data : nullptr, nb},
          {"out.gradTeacher", want_gt && ogt.present() ? ogt.data : nullptr, nb},
          {"out.losses", args.reduction == kdfuse::Reduction::None && ol.present() ? ol.data : nullptr,
           size_t(rows) * sizeof(float)},
      };
      const Span ins[] = {span_of("student", sa), span_of("teacher", ta), span_of("labels", la), span_of("gradOutput", ga)};
      check_all_apart(env, outs, 3, ins, 4);
    }
    student.take(env, "student", sa, n, async);
    teacher.take(env, "teacher", ta, n, async);
    grad_rows.take(env, "gradOutput", ga, size_t(rows), async);
    if (want_gs) grad_s.make(env, "out.gradStudent", n, ogs, async);
    if (want_gt) grad_t.make(env, "out.gradTeacher", n, ogt, async);
    if (args.reduction == kdfuse::Reduction::None) losses.make(env, "out.losses", size_t(rows), ol, async);

    args.student = student.data;
    args.teacher = teacher.data;
    args.rows = rows;
    args.cols = cols;
    if (la.present()) {
      if (async) {
        labels_copy.assign(la.data, la.data + rows);
        args.labels = labels_copy.data();
      } else {
        args.labels = la.data;
      }
    }
    args.grad_output_rows = grad_rows.data;
    args.grad_student = grad_s.data;
    args.grad_teacher = grad_t.data;
    args.loss_rows = losses.data;
    target = current_target(env_state(env));
  }
  void check_inputs(Napi::Env env) const {
    for (const Input* i : {&student, &teacher, &grad_rows}) i->check_intact(env);
  }
  void run() { status = guarded([&] { return run_distill_loss(target, args, &res); }); }
  Napi::Value result(Napi::Env env) {
    if (!status.ok()) throw target_error(env, status, target.cuda);
    Napi::Object o = Napi::Object::New(env);
    o.Set("loss", res.loss);
    if (losses.wanted()) o.Set("losses", losses.finish(env));
    if (grad_s.wanted()) o.Set("gradStudent", grad_s.finish(env));
    if (grad_t.wanted()) o.Set("gradTeacher", grad_t.finish(env));
    return o;
  }
};

// ---------------------------------------------------------------- sync / async plumbing

// softmax's entries: one Call for the four functions, forward or backward fixed by the entry
template <bool Backward>
Napi::Value softmax_sync(const Napi::CallbackInfo& info) {
  SoftmaxCall call;
  call.backward = Backward;
  return call_sync(info.Env(), call, require_object(info, "options"));
}

template <bool Backward>
Napi::Value softmax_async(const Napi::CallbackInfo& info) {
  auto call = std::make_unique<SoftmaxCall>();
  call->backward = Backward;
  return call_async(info, std::move(call));
}

Napi::Value StreamTriad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = require_object(info, "options");
  ArrayArg<float> a = get_f32(env, o.Get("a"), "a", true);
  ArrayArg<float> b = get_f32(env, o.Get("b"), "b", true);
  ArrayArg<float> c = get_f32(env, o.Get("c"), "c", true);
  if (b.length != a.length || c.length != a.length) throw_range(env, "a, b and c must have the same length");
  const double k = get_number(env, o, "scalar", 3.0);
  kdfuse::stream_triad(a.data, b.data, c.data, static_cast<float>(k), int64_t(a.length), env_state(env).cfg);
  return env.Undefined();
}

}  // namespace

void register_kernels(Napi::Env env, Napi::Object exports) {
  exports.Set("softmax", Napi::Function::New(env, softmax_sync<false>, "softmax"));
  exports.Set("softmaxAsync", Napi::Function::New(env, softmax_async<false>, "softmaxAsync"));
  exports.Set("softmaxBackward", Napi::Function::New(env, softmax_sync<true>, "softmaxBackward"));
  exports.Set("softmaxBackwardAsync", Napi::Function::New(env, softmax_async<true>, "softmaxBackwardAsync"));
  exports.Set("distillationLoss", Napi::Function::New(env, object_entry<DistillCall>, "distillationLoss"));
  exports.Set("distillationLossArgs", Napi::Function::New(env, positional_entry<DistillCall>, "distillationLossArgs"));
  exports.Set("distillationLossAsync", Napi::Function::New(env, promise_entry<DistillCall>, "distillationLossAsync"));
  exports.Set("streamTriad", Napi::Function::New(env, StreamTriad, "streamTriad"));
}

}  // namespace kdfuse_addon
