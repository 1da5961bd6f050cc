// The chunk loops with AVX2 + FMA. This file alone is compiled with -mavx2 -mfma; the dispatcher
// calls into it only after cpu_has_avx2_fma() said yes.
#include "vec_avx2.h"
#include "chunk_kernels_impl.h"

namespace kdfuse {
const ChunkKernels& chunk_kernels_avx2() { return make_table<VAvx2>(); }
}  // namespace kdfuse
