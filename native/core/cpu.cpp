// What this machine offers: cores we may run on, and whether the AVX2 path can run.
#include <thread>

#include "chunk_kernels.h"
#include "kdfuse_core.h"
#if defined(__linux__)
#include <sched.h>
#endif

namespace kdfuse {

int default_threads() {
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
#endif
  const unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? static_cast<int>(n) : 1;
}

bool cpu_has_avx2_fma() {
#if defined(KDFUSE_HAVE_AVX2) && (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
#else
  return false;
#endif
}

Isa resolve_isa(Isa requested) {
  if (requested == Isa::Generic) return Isa::Generic;
  return cpu_has_avx2_fma() ? Isa::Avx2 : Isa::Generic;
}

const char* isa_name(Isa isa) {
  switch (resolve_isa(isa)) {
    case Isa::Avx2: return "avx2";
    default: return "generic";
  }
}

const ChunkKernels& kernels_for(Isa isa) {
#if defined(KDFUSE_HAVE_AVX2)
  if (resolve_isa(isa) == Isa::Avx2) return chunk_kernels_avx2();
#endif
  (void)isa;
  return chunk_kernels_generic();
}

}  // namespace kdfuse
