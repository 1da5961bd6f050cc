// The chunk loops for any x86-64 / other CPU: one lane, plain scalar code.
#include <cmath>

#include "vec_scalar.h"
#include "chunk_kernels_impl.h"

namespace kdfuse {
namespace {
void log_f64(const double* x, double* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::log(x[i]);
}
}  // namespace
// no small-rows kernel: the generic loops take every row through the chunked passes
const ChunkKernels& chunk_kernels_generic() { return make_table<VScalar>(nullptr, nullptr, &log_f64); }
}  // namespace kdfuse
