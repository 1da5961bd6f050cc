// The CUDA sources of kdfuse_cuda compiled as plain C++ over the CPU emulator (emu_cuda.h), for
// kdfuse_cuda_emu_test: the same kernels and host code, checked where no GPU is.
#ifndef KDFUSE_CUDA_EMULATE
#error "build this file with KDFUSE_CUDA_EMULATE defined"
#endif
#include "../../device.cu"
#include "../../softmax.cu"
#include "../../distill_loss.cu"
#include "../../topk_loss.cu"
#include "../../linear_distill.cu"
