// Entry points of the fused distillation head (kdfuse::linear_distill_loss):
// linearDistillationLoss (options object), linearDistillationLossArgs (positional, the TypeScript
// layer's entry; order in kLinearArgs, the same as src/kernels/native.ts's LINEAR_ARG_NAMES) and
// linearDistillationLossAsync. Sync calls use the caller's arrays in place; async calls copy the
// inputs when called (see call_support.h). With the device set to CUDA the head runs on the GPU
// (backend_dispatch.h).
#include <napi.h>

#include <algorithm>
#include <memory>
#include <new>
#include <vector>

#include "args.h"
#include "backend_dispatch.h"
#include "call_support.h"
#include "env_state.h"
#include "gemm.h"
#include "kdfuse_core.h"

namespace kdfuse_addon {
namespace {

struct LinearValues {
  Napi::Value hidden, weight, bias, rows, dim, cols, teacher, k, indices, values, missing, teacher_values, labels, temperature,
      alpha, scale_by_t2, label_smoothing, ignore_index, reduction, divergence, beta, grad_output, compute_gh, compute_gw, out;
};

constexpr NamedArg<LinearValues> kLinearArgs[] = {
    {"hidden", &LinearValues::hidden}, {"weight", &LinearValues::weight}, {"bias", &LinearValues::bias},
    {"rows", &LinearValues::rows}, {"dim", &LinearValues::dim}, {"cols", &LinearValues::cols},
    {"teacher", &LinearValues::teacher}, {"k", &LinearValues::k}, {"teacherIndices", &LinearValues::indices},
    {"teacherLogprobs", &LinearValues::values}, {"missingMass", &LinearValues::missing},
    {"teacherValues", &LinearValues::teacher_values}, {"labels", &LinearValues::labels},
    {"temperature", &LinearValues::temperature}, {"alpha", &LinearValues::alpha},
    {"scaleByTemperatureSquared", &LinearValues::scale_by_t2}, {"labelSmoothing", &LinearValues::label_smoothing},
    {"ignoreIndex", &LinearValues::ignore_index}, {"reduction", &LinearValues::reduction},
    {"divergence", &LinearValues::divergence}, {"beta", &LinearValues::beta}, {"gradOutput", &LinearValues::grad_output},
    {"computeHiddenGrad", &LinearValues::compute_gh}, {"computeWeightGrad", &LinearValues::compute_gw},
    {"out", &LinearValues::out},
};

const char* const kMissingMass[] = {"renormalize", "uniform", nullptr};
const char* const kTeacherValues[] = {"logprobs", "logits", nullptr};

LinearValues from_object(const Napi::Object& o) { return values_from_object(o, kLinearArgs); }

LinearValues from_args(const Napi::CallbackInfo& info) { return values_from_args(info, kLinearArgs, "linearDistillationLossArgs"); }

struct LinearCall {
  kdfuse::LinearDistillArgs args;
  kdfuse::DistillLossResult res;
  Target target;
  Input hidden, weight, bias, teacher, values, grad_rows;
  std::vector<int32_t> indices_copy, labels_copy;
  Output grad_h, grad_w, grad_b, losses;
  kdfuse::Status status;

  void parse(Napi::Env env, const LinearValues& v, CallMode async) {
    const int64_t rows = dim_of(env, v.rows, "rows"), dim = dim_of(env, v.dim, "dim"), cols = dim_of(env, v.cols, "cols");
    const int64_t nh = checked_size(env, rows, dim), nw = checked_size(env, dim, cols), nt = checked_size(env, rows, cols);
    // the out object's fields first: reading them may run JavaScript (a getter), which could detach
    // or move an input's buffer after its pointer was taken below; nothing read after this point
    // runs JavaScript
    const Napi::Value outv = out_object(env, v.out);
    ArrayArg<float> ogh, ogw, ogb, ol;
    if (!outv.IsEmpty()) {
      const Napi::Object outs = outv.As<Napi::Object>();
      const Napi::Value gh_v = outs.Get("gradHidden"), gw_v = outs.Get("gradWeight"), gb_v = outs.Get("gradBias"),
                        l_v = outs.Get("losses");
      ogh = get_f32(env, gh_v, "out.gradHidden", false);
      ogw = get_f32(env, gw_v, "out.gradWeight", false);
      ogb = get_f32(env, gb_v, "out.gradBias", false);
      ol = get_f32(env, l_v, "out.losses", false);
    }
    ArrayArg<float> ha = get_f32(env, v.hidden, "hidden", true);
    check_length(env, "hidden", ha.length, nh, false, "rows * dim");
    ArrayArg<float> wa = get_f32(env, v.weight, "weight", true);
    check_length(env, "weight", wa.length, nw, false, "dim * cols");
    ArrayArg<float> ba = get_f32(env, v.bias, "bias", false);
    if (ba.present()) check_length(env, "bias", ba.length, cols, false, "cols");

    // the teacher: dense logits, or its top k entries per row
    const bool topk = !v.indices.IsUndefined() && !v.indices.IsNull();
    ArrayArg<float> ta, va;
    ArrayArg<int32_t> ia;
    int64_t k = 0;
    if (topk) {
      if (!v.teacher.IsUndefined() && !v.teacher.IsNull())
        throw_type(env, "give the teacher as dense logits (teacher) or as its top k entries (teacherIndices, teacherLogprobs), not both");
      k = dim_of(env, v.k, "k");
      ia = get_i32(env, v.indices, "teacherIndices", true);
      va = get_f32(env, v.values, "teacherLogprobs", true);
      check_length(env, "teacherIndices", ia.length, checked_size(env, rows, k), false, "rows * k");
      check_length(env, "teacherLogprobs", va.length, rows * k, false, "rows * k");
      args.missing = static_cast<kdfuse::MissingMass>(choice_of(env, v.missing, "missingMass", kMissingMass, 0));
      args.values_are_logits = choice_of(env, v.teacher_values, "teacherValues", kTeacherValues, 0) == 1;
      args.k = k;
    } else {
      ta = get_f32(env, v.teacher, "teacher", true);
      check_length(env, "teacher", ta.length, nt, false);
    }
    ArrayArg<int32_t> la = get_i32(env, v.labels, "labels", false);
    if (la.present()) check_length(env, "labels", la.length, rows, false, "rows");

    kdfuse::DistillLossArgs& b = args.base;
    DistillValues dv;  // the options the dense call shares, read by the same code
    dv.temperature = v.temperature; dv.alpha = v.alpha; dv.scale_by_t2 = v.scale_by_t2;
    dv.label_smoothing = v.label_smoothing; dv.ignore_index = v.ignore_index; dv.reduction = v.reduction;
    dv.divergence = v.divergence; dv.beta = v.beta; dv.compute_gs = env.Undefined(); dv.compute_gt = env.Undefined();
    bool unused_gs, unused_gt;
    read_distill_options(env, dv, &b, &unused_gs, &unused_gt);
    const bool want_gh = bool_of(env, v.compute_gh, "computeHiddenGrad", true);
    const bool want_gw = bool_of(env, v.compute_gw, "computeWeightGrad", true);
    const bool want_gb = want_gw && ba.present();

    const ArrayArg<float> ga = read_grad_output(env, v.grad_output, b.reduction, rows, &b.grad_output);

    if (ogh.present()) check_length(env, "out.gradHidden", ogh.length, nh, true, "rows * dim");
    if (ogw.present()) check_length(env, "out.gradWeight", ogw.length, nw, true, "dim * cols");
    if (ogb.present()) check_length(env, "out.gradBias", ogb.length, cols, true, "cols");
    if (ol.present()) check_length(env, "out.losses", ol.length, rows, true, "rows");
    {  // outputs apart from every input and from each other (the products read inputs after writing)
      const Span outs[] = {
          {"out.gradHidden", want_gh && ogh.present() ? ogh.data : nullptr, size_t(nh) * sizeof(float)},
          {"out.gradWeight", want_gw && ogw.present() ? ogw.data : nullptr, size_t(nw) * sizeof(float)},
          {"out.gradBias", want_gb && ogb.present() ? ogb.data : nullptr, size_t(cols) * sizeof(float)},
          {"out.losses", b.reduction == kdfuse::Reduction::None && ol.present() ? ol.data : nullptr, size_t(rows) * sizeof(float)},
      };
      const Span ins[] = {span_of("hidden", ha), span_of("weight", wa), span_of("bias", ba), span_of("teacher", ta),
                          span_of("teacherIndices", ia), span_of("teacherLogprobs", va), span_of("labels", la),
                          span_of("gradOutput", ga)};
      check_all_apart(env, outs, 4, ins, 8);
    }

    hidden.take(env, "hidden", ha, size_t(nh), async);
    weight.take(env, "weight", wa, size_t(nw), async);
    bias.take(env, "bias", ba, size_t(cols), async);
    teacher.take(env, "teacher", ta, size_t(nt), async);
    values.take(env, "teacherLogprobs", va, size_t(rows * k), async);
    grad_rows.take(env, "gradOutput", ga, size_t(rows), async);
    if (want_gh) grad_h.make(env, "out.gradHidden", size_t(nh), ogh, async);
    if (want_gw) grad_w.make(env, "out.gradWeight", size_t(nw), ogw, async);
    if (want_gb) grad_b.make(env, "out.gradBias", size_t(cols), ogb, async);
    if (b.reduction == kdfuse::Reduction::None) losses.make(env, "out.losses", size_t(rows), ol, async);
    if (async) {
      if (topk) {
        indices_copy.assign(ia.data, ia.data + rows * k);
        args.topk_indices = indices_copy.data();
      }
      if (la.present()) {
        labels_copy.assign(la.data, la.data + rows);
        b.labels = labels_copy.data();
      }
    } else {
      if (topk) args.topk_indices = ia.data;
      if (la.present()) b.labels = la.data;
    }
    b.rows = rows;
    b.cols = cols;
    b.teacher = teacher.data;
    b.grad_output_rows = grad_rows.data;
    b.loss_rows = losses.data;
    args.topk_values = values.data;
    args.hidden = hidden.data;
    args.weight = weight.data;
    args.bias = bias.data;
    args.dim = dim;
    args.grad_hidden = grad_h.data;
    args.grad_weight = grad_w.data;
    args.grad_bias = grad_b.data;
    target = current_target(env_state(env));
  }
  void parse(Napi::Env env, const Napi::Object& o, CallMode async) { parse(env, from_object(o), async); }
  static LinearValues positional(const Napi::CallbackInfo& info) { return from_args(info); }
  void check_inputs(Napi::Env env) const {
    for (const Input* i : {&hidden, &weight, &bias, &teacher, &values, &grad_rows}) i->check_intact(env);
  }
  void run() { status = guarded([&] { return run_linear_loss(target, args, &res); }); }
  Napi::Value result(Napi::Env env) {
    if (!status.ok()) throw target_error(env, status, target.cuda);
    Napi::Object o = Napi::Object::New(env);
    o.Set("loss", res.loss);
    if (losses.wanted()) o.Set("losses", losses.finish(env));
    if (grad_h.wanted()) o.Set("gradHidden", grad_h.finish(env));
    if (grad_w.wanted()) o.Set("gradWeight", grad_w.finish(env));
    if (grad_b.wanted()) o.Set("gradBias", grad_b.finish(env));
    return o;
  }
};


// For `npm run bench` only: C = op(A) op(B) by the head's sgemm or, with plain: true, by a plain
// i-k-j triple loop compiled here (what the head would cost without a blocked GEMM), so both are
// timed from JavaScript on the same operands. { transA, transB, m, n, k, a, b, c, plain, builtin }.
void plain_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a, const float* b, float* c) {
  const int64_t lda = ta ? m : k, ldb = tb ? k : n;
  std::fill(c, c + m * n, 0.0f);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t p = 0; p < k; ++p) {
      const float aip = ta ? a[p * lda + i] : a[i * lda + p];
      float* ci = c + i * n;
      if (tb) {
        for (int64_t j = 0; j < n; ++j) ci[j] += aip * b[j * ldb + p];
      } else {
        const float* bp = b + p * ldb;
        for (int64_t j = 0; j < n; ++j) ci[j] += aip * bp[j];
      }
    }
}

Napi::Value bench_sgemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Napi::Object o = require_object(info, "options");
  const bool ta = get_bool(env, o, "transA", false), tb = get_bool(env, o, "transB", false);
  const int64_t m = get_dim(env, o, "m"), n = get_dim(env, o, "n"), k = get_dim(env, o, "k");
  ArrayArg<float> a = get_f32(env, o.Get("a"), "a", true), b = get_f32(env, o.Get("b"), "b", true),
                  c = get_f32(env, o.Get("c"), "c", true);
  check_length(env, "a", a.length, checked_size(env, m, k), true, "m * k");
  check_length(env, "b", b.length, checked_size(env, k, n), true, "k * n");
  check_length(env, "c", c.length, checked_size(env, m, n), true, "m * n");
  const Span outs[] = {span_of("c", c)};
  const Span ins[] = {span_of("a", a), span_of("b", b)};
  check_all_apart(env, outs, 1, ins, 2);
  if (get_bool(env, o, "plain", false)) {
    plain_gemm(ta, tb, m, n, k, a.data, b.data, c.data);
  } else {
    // builtin: true times the GEMM written here even where a BLAS was found (restored after)
    const bool builtin = get_bool(env, o, "builtin", false);
    if (builtin) kdfuse::sgemm_force_builtin(true);
    struct Restore {
      bool on;
      ~Restore() { if (on) kdfuse::sgemm_force_builtin(false); }
    } restore{builtin};
    kdfuse::sgemm(ta, tb, m, n, k, 1.0f, a.data, ta ? m : k, b.data, tb ? k : n, 0.0f, c.data, n,
                  current_target(env_state(env)).cfg.threads);
  }
  return env.Undefined();
}

}  // namespace

void register_linear(Napi::Env env, Napi::Object exports) {
  exports.Set("linearDistillationLoss", Napi::Function::New(env, object_entry<LinearCall>, "linearDistillationLoss"));
  exports.Set("linearDistillationLossArgs", Napi::Function::New(env, positional_entry<LinearCall>, "linearDistillationLossArgs"));
  exports.Set("linearDistillationLossAsync", Napi::Function::New(env, promise_entry<LinearCall>, "linearDistillationLossAsync"));
  exports.Set("benchSgemm", Napi::Function::New(env, bench_sgemm, "benchSgemm"));
}

}  // namespace kdfuse_addon
