// The chunk loops with AVX2 + FMA. This file alone is compiled with -mavx2 -mfma; the dispatcher
// calls into it only after cpu_has_avx2_fma() said yes.
#include "vec_avx2.h"
#include "chunk_kernels_impl.h"

namespace kdfuse {
bool distill_small_rows_avx2(const SmallRows& a);          // small_rows_avx2.cpp
bool softmax_small_rows_avx2(const SmallSoftmaxRows& a);   // small_rows_avx2.cpp
void log_f64_avx2(const double* x, double* y, int64_t n);  // small_rows_avx2.cpp
const ChunkKernels& chunk_kernels_avx2() { return make_table<VAvx2>(&distill_small_rows_avx2, &softmax_small_rows_avx2, &log_f64_avx2); }
}  // namespace kdfuse
