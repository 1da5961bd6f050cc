// The chunk loops for any x86-64 / other CPU: one lane, plain scalar code.
#include "vec_scalar.h"
#include "chunk_kernels_impl.h"

namespace kdfuse {
const ChunkKernels& chunk_kernels_generic() { return make_table<VScalar>(); }
}  // namespace kdfuse
