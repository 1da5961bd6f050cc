// Where the kernels run: the one place the addon chooses between the CPU core and the CUDA host
// API. The entry points (kernels_binding.cpp) read their arguments into the core's structs and
// call the run_* functions below; they know nothing of either backend.
//
// The CUDA host API is used when the addon was built with CUDA (KDFUSE_HAVE_CUDA), a device is
// usable (kdfuse::cuda::device_info().available) and the environment's setting (setDevice) is
// 'cuda' or 'auto'. It takes the same structs, so the choice is invisible to the caller except in
// speed and in the extra errors a device can raise.
#pragma once
#include <napi.h>

#include <string>

#include "env_state.h"
#include "kdfuse_core.h"

namespace kdfuse_addon {

// Where one call runs. Decided on the JavaScript thread when the call's arguments are read, so an
// async call runs where it was started even if setDevice changes before it executes.
struct Target {
  bool cuda = false;
  kdfuse::ExecConfig cfg;  // CPU threads and instruction set (unused on the device)
};
Target current_target(const EnvState& st);

// ---------------------------------------------------------------- CUDA availability
bool cuda_built();
bool cuda_available();     // built, and a device is usable
std::string cuda_device_name();  // "" when none
// Why CUDA cannot be used, as a full sentence for errors: "kdfuse was built without CUDA (...)" or
// "no CUDA device (<the CUDA runtime's reason>)". Empty when it can.
std::string cuda_unavailable_message();
// The reason alone, for backend().cuda.reason ("" when available).
std::string cuda_reason();

// ---------------------------------------------------------------- the kernels
// May run on any thread (async calls run them in a worker's Execute).
kdfuse::Status run_distill_loss(const Target& t, const kdfuse::DistillLossArgs& a, kdfuse::DistillLossResult* r);
kdfuse::Status run_topk_loss(const Target& t, const kdfuse::TopkLossArgs& a, kdfuse::DistillLossResult* r);
kdfuse::Status run_linear_loss(const Target& t, const kdfuse::LinearDistillArgs& a, kdfuse::DistillLossResult* r);
kdfuse::Status run_softmax_forward(const Target& t, const kdfuse::SoftmaxArgs& a);
kdfuse::Status run_softmax_backward(const Target& t, const kdfuse::SoftmaxBackwardArgs& a);

// The JavaScript error for a failed Status from a call on `t`. As status_error (TypeError,
// RangeError — CUDA out of memory included), except that an Internal error from the device becomes
// an Error carrying the CUDA message as it is ("CUDA error: <cudaGetErrorString> (<what>)").
Napi::Error target_error(Napi::Env env, const kdfuse::Status& s, bool cuda);

}  // namespace kdfuse_addon
