// Per-environment settings: each main thread or worker_thread that loads the addon gets its own.
#pragma once
#include <napi.h>

#include "kdfuse_core.h"

namespace kdfuse_addon {

struct EnvState {
  kdfuse::ExecConfig cfg;  // threads (0 = all available cores) and instruction set
};

EnvState& env_state(Napi::Env env);

}  // namespace kdfuse_addon
