// kdfuse CUDA kernels: the same functions as native/core (same argument structs, same Status
// errors, same math: docs/design.md "The math"), run on an NVIDIA GPU.
//
// Plain C++17 with no CUDA types, so the Node addon includes it with its ordinary C++ compiler;
// the library links the CUDA runtime statically and needs no libcudart.so at load time. No device
// (no driver, an old driver, no GPU, a GPU older than this build's architectures) is a normal
// state: device_info() says so and every call returns a Status saying so; nothing aborts.
//
// Two ways to call:
//  - Host API (distill_loss, softmax_forward, softmax_backward): the pointers in the argument
//    structs are host memory, exactly as for the CPU core; each call copies the inputs to the
//    device, runs the kernels and copies the outputs back.
//  - Device API (*_device): inputs and outputs stay in DeviceBuffers between calls, so repeated
//    calls on the same tensors move only the scalar result (and the per-row results asked for).
//
// All calls are synchronous with respect to the calling thread (they run on the per-thread default
// stream and wait for it), may be called from several threads at once, and give bit-identical
// results for the same inputs on the same device (no floating-point atomics; fixed reduction order).
#pragma once
#include <cstdint>
#include <string>

#include "kdfuse_core.h"

namespace kdfuse {
namespace cuda {

struct DeviceInfo {
  bool available = false;  // a usable device: kernels can run
  std::string name;        // e.g. "NVIDIA H100 80GB HBM3 (compute capability 9.0)"; "" when none
  std::string reason;      // why not available, e.g. "CUDA driver version is insufficient for CUDA runtime version"
};

// Probed once per process (cached). Device 0 is used.
const DeviceInfo& device_info();

// ---------------------------------------------------------------- host API
// Same arguments, validation, messages and results as kdfuse::distill_loss / softmax_forward /
// softmax_backward (ExecConfig does not apply). Additional errors: no device -> Internal;
// out of device memory -> Range; any other CUDA error -> Internal with the CUDA error string.
Status distill_loss(const DistillLossArgs& a, DistillLossResult* result);
Status topk_distill_loss(const TopkLossArgs& a, DistillLossResult* result);
// The fused head (kdfuse::linear_distill_loss), with a dense or a top-k teacher.
Status linear_distill_loss(const LinearDistillArgs& a, DistillLossResult* result);
Status softmax_forward(const SoftmaxArgs& a);
Status softmax_backward(const SoftmaxBackwardArgs& a);

// ---------------------------------------------------------------- device-resident data
enum class DType { Float32 = 0, Int32 };

// A device allocation of `size()` elements of `dtype()`. Move-only; freed by the destructor.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& o) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  // Makes this buffer hold `count` (>= 1) elements of `type`; keeps the allocation when it already
  // does. Contents are unspecified afterwards.
  Status allocate(DType type, int64_t count);
  // allocate(count) and copy `count` elements from host memory.
  Status upload(const float* host, int64_t count);
  Status upload(const int32_t* host, int64_t count);
  // Copies all size() elements to host memory; `count` must equal size() and the type must match.
  Status download(float* host, int64_t count) const;
  Status download(int32_t* host, int64_t count) const;
  void reset();  // frees the allocation

  int64_t size() const { return count_; }
  DType dtype() const { return dtype_; }
  bool empty() const { return ptr_ == nullptr; }
  void* device_ptr() const { return ptr_; }  // raw device address, for callers with CUDA code of their own

 private:
  void* ptr_ = nullptr;
  int64_t count_ = 0;
  DType dtype_ = DType::Float32;
};

// ---------------------------------------------------------------- device API
// Shapes and options come from the DistillLossArgs; its pointer members are ignored (the data is in
// `d`). Inputs must hold exactly rows * cols (student, teacher) or rows (labels: Int32,
// grad_output_rows: Float32) elements. Outputs that are not null are (re)allocated to their size
// when they do not have it and are written entirely.
struct DistillDeviceBuffers {
  const DeviceBuffer* student = nullptr;           // Float32 [rows, cols]
  const DeviceBuffer* teacher = nullptr;           // Float32 [rows, cols]
  const DeviceBuffer* labels = nullptr;            // Int32 [rows], or null: no hard-label term
  const DeviceBuffer* grad_output_rows = nullptr;  // Float32 [rows], reduction none only, or null
  DeviceBuffer* loss_rows = nullptr;               // Float32 [rows] out, or null
  DeviceBuffer* grad_student = nullptr;            // Float32 [rows, cols] out, or null
  DeviceBuffer* grad_teacher = nullptr;            // Float32 [rows, cols] out, or null
};
Status distill_loss_device(const DistillLossArgs& a, const DistillDeviceBuffers& d, DistillLossResult* result);

// a.x / a.y (and a.y / a.dy / a.dx) are ignored: x -> y, or y, dy -> dx on the device.
Status softmax_forward_device(const SoftmaxArgs& a, const DeviceBuffer& x, DeviceBuffer* y);
Status softmax_backward_device(const SoftmaxBackwardArgs& a, const DeviceBuffer& y, const DeviceBuffer& dy,
                               DeviceBuffer* dx);

}  // namespace cuda
}  // namespace kdfuse
