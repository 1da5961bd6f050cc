// Entry points of the top-k distillation loss: topkDistillationLoss (options object),
// topkDistillationLossArgs (positional, the TypeScript layer's entry; order in kTopkArgs, the same
// as src/kernels/native.ts's TOPK_ARG_NAMES) and topkDistillationLossAsync. Sync calls use the
// caller's arrays in place; async calls copy the inputs when called (see call_support.h).
#include <napi.h>

#include <memory>
#include <new>
#include <vector>

#include "args.h"
#include "backend_dispatch.h"
#include "call_support.h"
#include "env_state.h"
#include "kdfuse_core.h"

namespace kdfuse_addon {
namespace {

struct TopkValues {
  Napi::Value student, rows, cols, k, indices, values, missing, teacher_values, labels, temperature, alpha, scale_by_t2,
      label_smoothing, ignore_index, reduction, divergence, beta, grad_output, compute_gs, out;
};

constexpr NamedArg<TopkValues> kTopkArgs[] = {
    {"student", &TopkValues::student}, {"rows", &TopkValues::rows}, {"cols", &TopkValues::cols}, {"k", &TopkValues::k},
    {"teacherIndices", &TopkValues::indices}, {"teacherLogprobs", &TopkValues::values},
    {"missingMass", &TopkValues::missing}, {"teacherValues", &TopkValues::teacher_values}, {"labels", &TopkValues::labels},
    {"temperature", &TopkValues::temperature}, {"alpha", &TopkValues::alpha},
    {"scaleByTemperatureSquared", &TopkValues::scale_by_t2}, {"labelSmoothing", &TopkValues::label_smoothing},
    {"ignoreIndex", &TopkValues::ignore_index}, {"reduction", &TopkValues::reduction},
    {"divergence", &TopkValues::divergence}, {"beta", &TopkValues::beta}, {"gradOutput", &TopkValues::grad_output},
    {"computeStudentGrad", &TopkValues::compute_gs}, {"out", &TopkValues::out},
};

const char* const kMissingMass[] = {"renormalize", "uniform", nullptr};
const char* const kTeacherValues[] = {"logprobs", "logits", nullptr};

TopkValues from_object(const Napi::Object& o) { return values_from_object(o, kTopkArgs); }

TopkValues from_args(const Napi::CallbackInfo& info) { return values_from_args(info, kTopkArgs, "topkDistillationLossArgs"); }

struct TopkCall {
  kdfuse::TopkLossArgs args;
  kdfuse::DistillLossResult res;
  Target target;
  Input student, values, grad_rows;
  std::vector<int32_t> indices_copy, labels_copy;
  Output grad_s, losses;
  kdfuse::Status status;

  void parse(Napi::Env env, const TopkValues& v, CallMode async) {
    const int64_t rows = dim_of(env, v.rows, "rows"), cols = dim_of(env, v.cols, "cols"), k = dim_of(env, v.k, "k");
    const size_t n = size_t(checked_size(env, rows, cols));
    const size_t nk = size_t(checked_size(env, rows, k));
    ArrayArg<float> sa = get_f32(env, v.student, "student", true);
    check_length(env, "student", sa.length, rows * cols, false);
    ArrayArg<int32_t> ia = get_i32(env, v.indices, "teacherIndices", true);
    ArrayArg<float> va = get_f32(env, v.values, "teacherLogprobs", true);
    check_length(env, "teacherIndices", ia.length, rows * k, false, "rows * k");
    check_length(env, "teacherLogprobs", va.length, rows * k, false, "rows * k");
    ArrayArg<int32_t> la = get_i32(env, v.labels, "labels", false);
    if (la.present()) check_length(env, "labels", la.length, rows, false, "rows");

    kdfuse::DistillLossArgs& b = args.base;
    DistillValues dv;  // the options the dense call shares, read by the same code
    dv.temperature = v.temperature; dv.alpha = v.alpha; dv.scale_by_t2 = v.scale_by_t2;
    dv.label_smoothing = v.label_smoothing; dv.ignore_index = v.ignore_index; dv.reduction = v.reduction;
    dv.divergence = v.divergence; dv.beta = v.beta; dv.compute_gs = v.compute_gs; dv.compute_gt = env.Undefined();
    bool want_gs, want_gt;
    read_distill_options(env, dv, &b, &want_gs, &want_gt);
    args.missing = static_cast<kdfuse::MissingMass>(choice_of(env, v.missing, "missingMass", kMissingMass, 0));
    args.values_are_logits = choice_of(env, v.teacher_values, "teacherValues", kTeacherValues, 0) == 1;
    args.k = k;

    const ArrayArg<float> ga = read_grad_output(env, v.grad_output, b.reduction, rows, &b.grad_output);

    const Napi::Value outv = out_object(env, v.out);
    ArrayArg<float> ogs, ol;
    if (!outv.IsEmpty()) {
      const Napi::Object outs = outv.As<Napi::Object>();
      ogs = get_f32(env, outs.Get("gradStudent"), "out.gradStudent", false);
      ol = get_f32(env, outs.Get("losses"), "out.losses", false);
    }
    if (ogs.present()) check_length(env, "out.gradStudent", ogs.length, rows * cols, true);
    if (ol.present()) check_length(env, "out.losses", ol.length, rows, true, "rows");
    {  // outputs apart from every input (indices and labels are read after the gradient is written)
      const Span outs[] = {
          {"out.gradStudent", want_gs && ogs.present() ? ogs.data : nullptr, n * sizeof(float)},
          {"out.losses", b.reduction == kdfuse::Reduction::None && ol.present() ? ol.data : nullptr,
           size_t(rows) * sizeof(float)},
      };
      const Span ins[] = {span_of("student", sa), span_of("teacherIndices", ia), span_of("teacherLogprobs", va),
                          span_of("labels", la), span_of("gradOutput", ga)};
      check_all_apart(env, outs, 2, ins, 5);
    }

    student.take(env, "student", sa, n, async);
    values.take(env, "teacherLogprobs", va, nk, async);
    grad_rows.take(env, "gradOutput", ga, size_t(rows), async);
    if (want_gs) grad_s.make(env, "out.gradStudent", n, ogs, async);
    if (b.reduction == kdfuse::Reduction::None) losses.make(env, "out.losses", size_t(rows), ol, async);
    if (async) {
      indices_copy.assign(ia.data, ia.data + nk);
      args.indices = indices_copy.data();
      if (la.present()) {
        labels_copy.assign(la.data, la.data + rows);
        b.labels = labels_copy.data();
      }
    } else {
      args.indices = ia.data;
      if (la.present()) b.labels = la.data;
    }
    b.student = student.data;
    b.rows = rows;
    b.cols = cols;
    args.values = values.data;
    b.grad_output_rows = grad_rows.data;
    b.grad_student = grad_s.data;
    b.loss_rows = losses.data;
    target = current_target(env_state(env));
  }
  void parse(Napi::Env env, const Napi::Object& o, CallMode async) { parse(env, from_object(o), async); }
  static TopkValues positional(const Napi::CallbackInfo& info) { return from_args(info); }
  void check_inputs(Napi::Env env) const {
    for (const Input* i : {&student, &values, &grad_rows}) i->check_intact(env);
  }
  void run() { status = guarded([&] { return run_topk_loss(target, args, &res); }); }
  Napi::Value result(Napi::Env env) {
    if (!status.ok()) throw target_error(env, status, target.cuda);
    Napi::Object o = Napi::Object::New(env);
    o.Set("loss", res.loss);
    if (losses.wanted()) o.Set("losses", losses.finish(env));
    if (grad_s.wanted()) o.Set("gradStudent", grad_s.finish(env));
    return o;
  }
};


}  // namespace

void register_topk(Napi::Env env, Napi::Object exports) {
  exports.Set("topkDistillationLoss", Napi::Function::New(env, object_entry<TopkCall>, "topkDistillationLoss"));
  exports.Set("topkDistillationLossArgs", Napi::Function::New(env, positional_entry<TopkCall>, "topkDistillationLossArgs"));
  exports.Set("topkDistillationLossAsync", Napi::Function::New(env, promise_entry<TopkCall>, "topkDistillationLossAsync"));
}

}  // namespace kdfuse_addon
