// Host-side helpers shared by the .cu files: CUDA errors as Status, stream-ordered scratch
// memory, and the argument checks and error messages of the CPU core.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "checks.h"
#include "cuda_compat.cuh"
#include "kdfuse_core.h"
#include "kdfuse_cuda.h"

namespace kdfuse {
namespace cuda {
namespace detail {

// Every call runs on the calling thread's default stream and waits for it.
inline cudaStream_t stream() { return cudaStreamPerThread; }

// cudaSuccess -> Ok; out of memory -> Range; anything else -> Internal. `what` says what was being done.
Status cuda_status(cudaError_t e, const char* what);
// Ok when device_info().available, else Internal("no CUDA device (<reason>)").
Status require_device();
// The kernels index columns with 32-bit integers.
Status check_cols_fit(int64_t cols);

// Stream-ordered device scratch memory (cudaMallocAsync / cudaFreeAsync), freed with the object.
class Scratch {
 public:
  Scratch() = default;
  ~Scratch();
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  Status alloc(size_t bytes, const char* what);
  template <class T>
  T* as() const { return static_cast<T*>(p_); }

 private:
  void* p_ = nullptr;
};

// Scratch holding a copy of a host array (nothing when host is null).
Status upload_scratch(Scratch* s, const void* host, size_t bytes, const char* what);
Status download(void* host, const void* dev, size_t bytes, const char* what);
Status sync(const char* what);  // waits for the stream; reports launch and execution errors

// The argument checks themselves are the CPU core's (native/core/checks.h: validate_distill_scalars,
// validate_distill_arrays, label_error, grad_output_row_error), so both backends agree word for word.
std::string all_neg_inf_error(const char* name, int64_t row);

// describe_bad_value(name, whole array) when the first bad value of the array is known to be in
// row `row` (all earlier rows clean): only that row is needed.
std::string describe_bad_in_row(const char* name, const float* host_row, int64_t row, int64_t cols);

// Checks a device buffer input: exists (TypeErr naming it as the CPU core does when null), type
// and size (RangeErr).
Status check_input(const DeviceBuffer* b, const char* name, DType type, int64_t count);
Status prepare_output(DeviceBuffer* b, DType type, int64_t count);

// Device pointers of one distillation call (null: absent).
struct DistillPtrs {
  const float* s = nullptr;
  const float* t = nullptr;
  const int32_t* labels = nullptr;
  const float* gor = nullptr;
  float* gs = nullptr;
  float* gt = nullptr;
  float* loss_rows = nullptr;
};

// The distillation loss on checked arguments whose data is on the device already (the device API,
// the fused head's row blocks): runs the kernels, and turns a failed row into the CPU core's error,
// rows counted from the first row of `d`. Outputs stay on the device.
Status distill_on_device(const DistillLossArgs& a, const DistillPtrs& d, DistillLossResult* result);

// Device pointers of one top-k call (null: absent); tc holds topk_teacher_constants' values.
struct TopkDevicePtrs {
  const float* s = nullptr;
  const int32_t* idx = nullptr;
  const float* val = nullptr;
  const double* tc = nullptr;
  const int32_t* labels = nullptr;
  const float* gor = nullptr;
  float* gs = nullptr;
};
// Each row's teacher constants [rows, 3] of a checked top-k call (lse of t/T, log of an unlisted
// column's probability or -inf, unlisted columns), formed on the host as the CPU core forms them.
std::vector<double> topk_teacher_constants(const TopkLossArgs& a);
// The top-k loss on checked arguments whose student, entries and constants are on the device (the
// fused head's blocks): `a` gives the shape and options; of its host pointers only base.loss_rows
// (written) and base.student (read to describe a bad value, when not null) are used. Errors speak
// of the student, rows counted from `d`'s first.
Status topk_on_device(const TopkLossArgs& a, int64_t valid, const TopkDevicePtrs& d, DistillLossResult* result);

// Copies rows [row, row + 1) of a device [rows, cols] array to the host.
Status download_row(const float* dev, int64_t row, int64_t cols, std::vector<float>* out);

}  // namespace detail
}  // namespace cuda
}  // namespace kdfuse
