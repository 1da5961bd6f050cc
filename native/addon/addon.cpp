// Module set-up and the small state/inspection entry points. The kernels' entry points are in
// kernels_binding.cpp; argument reading is in args.cpp. This layer knows nothing of the math.
#include <napi.h>

#include "args.h"
#include "backend_dispatch.h"
#include "env_state.h"
#include "gemm.h"
#include "kdfuse_core.h"
#include "output_buffers.h"

namespace kdfuse_addon {

void register_kernels(Napi::Env env, Napi::Object exports);
void register_cuda(Napi::Env env, Napi::Object exports);
void register_ig(Napi::Env env, Napi::Object exports);
void register_topk(Napi::Env env, Napi::Object exports);
void register_linear(Napi::Env env, Napi::Object exports);

EnvState& env_state(Napi::Env env) { return *env.GetInstanceData<EnvState>(); }

namespace {

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber())
    throw_type(env, "threads must be a number, got " + describe(info.Length() ? info[0] : env.Undefined()));
  const double n = info[0].As<Napi::Number>().DoubleValue();
  if (!(n >= 0 && n <= 256 && n == static_cast<int>(n)))
    throw_range(env, "threads must be an integer in [0, 256] (0 = all available cores), got " +
                         info[0].ToString().Utf8Value());
  env_state(env).cfg.threads = static_cast<int>(n);
  return env.Undefined();
}

Napi::Value SetSimd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string list = "mode must be one of 'auto', 'generic', 'avx2', got ";
  if (info.Length() < 1 || !info[0].IsString())
    throw_type(env, list + describe(info.Length() ? info[0] : env.Undefined()));
  const std::string s = info[0].As<Napi::String>().Utf8Value();
  if (s == "auto") env_state(env).cfg.isa = kdfuse::Isa::Auto;
  else if (s == "generic") env_state(env).cfg.isa = kdfuse::Isa::Generic;
  else if (s == "avx2") env_state(env).cfg.isa = kdfuse::Isa::Avx2;
  else throw_range(env, list + "'" + s + "'");
  return env.Undefined();
}

const char* setting_name(DeviceSetting d) {
  return d == DeviceSetting::Cpu ? "cpu" : d == DeviceSetting::Cuda ? "cuda" : "auto";
}

// Where the Float32Array entry points of this environment run. 'cuda' without a usable device
// throws and keeps the previous setting, so the CPU backend stays in use.
Napi::Value SetDevice(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string list = "device must be one of 'cpu', 'cuda', 'auto', got ";
  if (info.Length() < 1 || !info[0].IsString())
    throw_type(env, list + describe(info.Length() ? info[0] : env.Undefined()));
  const std::string s = info[0].As<Napi::String>().Utf8Value();
  DeviceSetting d;
  if (s == "auto") d = DeviceSetting::Auto;
  else if (s == "cpu") d = DeviceSetting::Cpu;
  else if (s == "cuda") d = DeviceSetting::Cuda;
  else throw_range(env, list + "'" + s + "'");
  if (d == DeviceSetting::Cuda && !cuda_available())
    throw Napi::Error::New(env, "setDevice('cuda'): " + cuda_unavailable_message() +
                                    "; the setting is unchanged ('" + setting_name(env_state(env).device) +
                                    "'), the kernels run on the CPU");
  env_state(env).device = d;
  return env.Undefined();
}

// The most bytes of freed large results kept for reuse (0: none); see output_buffers.h.
Napi::Value SetBufferCache(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber())
    throw_type(env, "bytes must be a number, got " + describe(info.Length() ? info[0] : env.Undefined()));
  const double b = info[0].As<Napi::Number>().DoubleValue();
  if (!(b >= 0 && b <= 9007199254740991.0 && b == static_cast<double>(static_cast<int64_t>(b))))
    throw_range(env, "bytes must be an integer >= 0, got " + info[0].ToString().Utf8Value());
  set_buffer_cache_limit(static_cast<size_t>(b));
  return env.Undefined();
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const EnvState& st = env_state(env);
  Napi::Object o = Napi::Object::New(env);
  o.Set("simd", kdfuse::isa_name(st.cfg.isa));
  o.Set("cpuHasAvx2", kdfuse::cpu_has_avx2_fma());
  o.Set("threads", st.cfg.threads > 0 ? st.cfg.threads : kdfuse::default_threads());
  o.Set("defaultThreads", kdfuse::default_threads());
  o.Set("chunk", static_cast<double>(kdfuse::kChunk));
  o.Set("gemm", kdfuse::sgemm_backend());  // the fused head's matrix product (gemm.h)
  const Target target = current_target(st);
  o.Set("device", target.cuda ? "cuda" : "cpu");
  o.Set("deviceSetting", setting_name(st.device));
  Napi::Object cuda = Napi::Object::New(env);
  cuda.Set("built", cuda_built());
  cuda.Set("available", cuda_available());
  cuda.Set("active", target.cuda);
  if (!cuda_device_name().empty()) cuda.Set("device", cuda_device_name());
  if (!cuda_available()) cuda.Set("reason", cuda_reason());
  else if (target.cuda) cuda.Set("reason", std::string("in use: the kernels run on the device (setDevice('") +
                                               setting_name(st.device) + "'))");
  else cuda.Set("reason", "available, not in use: setDevice('cpu') is in effect");
  o.Set("cuda", cuda);
  const BufferCacheStats bc = buffer_cache_stats();
  Napi::Object cache = Napi::Object::New(env);
  cache.Set("limitBytes", static_cast<double>(bc.limit_bytes));
  cache.Set("cachedBytes", static_cast<double>(bc.cached_bytes));
  cache.Set("cachedBlocks", static_cast<double>(bc.cached_blocks));
  cache.Set("hits", static_cast<double>(bc.hits));
  cache.Set("misses", static_cast<double>(bc.misses));
  cache.Set("pendingBytes", static_cast<double>(bc.pending_bytes));
  cache.Set("declined", static_cast<double>(bc.declined));
  cache.Set("collections", static_cast<double>(bc.collections));
  if (bc.collection_ms >= 0.0) cache.Set("collectionMs", bc.collection_ms);
  if (bc.fresh_ms_per_mib >= 0.0) cache.Set("freshMsPerMiB", bc.fresh_ms_per_mib);
  cache.Set("releasedBy", results_released_by_gc(env) ? "gc" : "task");
  o.Set("bufferCache", cache);
  return o;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new EnvState());
  exports.Set("setThreads", Napi::Function::New(env, SetThreads, "setThreads"));
  exports.Set("setSimd", Napi::Function::New(env, SetSimd, "setSimd"));
  exports.Set("setDevice", Napi::Function::New(env, SetDevice, "setDevice"));
  exports.Set("info", Napi::Function::New(env, Info, "info"));
  exports.Set("setBufferCache", Napi::Function::New(env, SetBufferCache, "setBufferCache"));
  register_kernels(env, exports);
  register_cuda(env, exports);
  register_ig(env, exports);
  register_topk(env, exports);
  register_linear(env, exports);
  return exports;
}

}  // namespace
}  // namespace kdfuse_addon

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return kdfuse_addon::Init(env, exports); }

NODE_API_MODULE(kdfuse, InitModule)
