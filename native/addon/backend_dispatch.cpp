#include "backend_dispatch.h"

#include "args.h"
#ifdef KDFUSE_HAVE_CUDA
#include "kdfuse_cuda.h"
#endif

namespace kdfuse_addon {

bool cuda_built() {
#ifdef KDFUSE_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

bool cuda_available() {
#ifdef KDFUSE_HAVE_CUDA
  return kdfuse::cuda::device_info().available;
#else
  return false;
#endif
}

std::string cuda_device_name() {
#ifdef KDFUSE_HAVE_CUDA
  return kdfuse::cuda::device_info().name;
#else
  return "";
#endif
}

std::string cuda_reason() {
#ifdef KDFUSE_HAVE_CUDA
  return kdfuse::cuda::device_info().reason;
#else
  return "built without CUDA (no CUDA driver or compiler at build time, or KDFUSE_CUDA=0; `npx kdfuse info` says which)";
#endif
}

std::string cuda_unavailable_message() {
  if (!cuda_built()) return "kdfuse was built without CUDA (no CUDA driver or compiler at build time, or KDFUSE_CUDA=0; `npx kdfuse info` says which)";
  if (!cuda_available()) return "no CUDA device (" + cuda_reason() + ")";
  return "";
}

Target current_target(const EnvState& st) {
  Target t;
  t.cfg = st.cfg;
  t.cuda = st.device != DeviceSetting::Cpu && cuda_available();
  return t;
}

kdfuse::Status run_distill_loss(const Target& t, const kdfuse::DistillLossArgs& a, kdfuse::DistillLossResult* r) {
#ifdef KDFUSE_HAVE_CUDA
  if (t.cuda) return kdfuse::cuda::distill_loss(a, r);
#endif
  return kdfuse::distill_loss(a, r, t.cfg);
}

kdfuse::Status run_topk_loss(const Target& t, const kdfuse::TopkLossArgs& a, kdfuse::DistillLossResult* r) {
#ifdef KDFUSE_HAVE_CUDA
  if (t.cuda) return kdfuse::cuda::topk_distill_loss(a, r);
#endif
  return kdfuse::topk_distill_loss(a, r, t.cfg);
}

kdfuse::Status run_linear_loss(const Target& t, const kdfuse::LinearDistillArgs& a, kdfuse::DistillLossResult* r) {
#ifdef KDFUSE_HAVE_CUDA
  if (t.cuda) return kdfuse::cuda::linear_distill_loss(a, r);
#endif
  return kdfuse::linear_distill_loss(a, r, t.cfg);
}

kdfuse::Status run_softmax_forward(const Target& t, const kdfuse::SoftmaxArgs& a) {
#ifdef KDFUSE_HAVE_CUDA
  if (t.cuda) return kdfuse::cuda::softmax_forward(a);
#endif
  return kdfuse::softmax_forward(a, t.cfg);
}

kdfuse::Status run_softmax_backward(const Target& t, const kdfuse::SoftmaxBackwardArgs& a) {
#ifdef KDFUSE_HAVE_CUDA
  if (t.cuda) return kdfuse::cuda::softmax_backward(a);
#endif
  return kdfuse::softmax_backward(a, t.cfg);
}

Napi::Error target_error(Napi::Env env, const kdfuse::Status& s, bool cuda) {
  if (cuda && s.kind == kdfuse::ErrorKind::Internal) return Napi::Error::New(env, s.message);
  return status_error(env, s);
}

}  // namespace kdfuse_addon
