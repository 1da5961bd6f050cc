// Per-environment settings: each main thread or worker_thread that loads the addon gets its own.
#pragma once
#include <napi.h>

#include "kdfuse_core.h"

namespace kdfuse_addon {

// Where the Float32Array entry points run (setDevice): Auto = CUDA when a device is usable.
enum class DeviceSetting { Auto = 0, Cpu, Cuda };

struct EnvState {
  kdfuse::ExecConfig cfg;  // threads (0 = all available cores) and instruction set
  DeviceSetting device = DeviceSetting::Auto;
  Napi::FunctionReference device_array_class;  // the DeviceArray constructor (cuda_binding.cpp)
};

EnvState& env_state(Napi::Env env);

}  // namespace kdfuse_addon
