// Device probing, DeviceBuffer, and the host helpers of internal.h.
#include <climits>
#include <cstring>
#include <mutex>
#include <utility>

#include "internal.h"

namespace kdfuse {
namespace cuda {

namespace {

constexpr int kMinMajor = 8;  // the oldest architecture this library is built for (CMake: 80;90)

DeviceInfo probe() {
  DeviceInfo info;
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    // No driver, an old driver, no device node...: all mean "no CUDA device" here.
    info.reason = cudaGetErrorString(e);
    cudaGetLastError();
    return info;
  }
  if (n < 1) {
    info.reason = "no CUDA device found";
    return info;
  }
  int major = 0, minor = 0, pools = 0;
  if ((e = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0)) != cudaSuccess ||
      (e = cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, 0)) != cudaSuccess ||
      (e = cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, 0)) != cudaSuccess) {
    info.reason = cudaGetErrorString(e);
    cudaGetLastError();
    return info;
  }
  cudaDeviceProp prop;
  std::memset(&prop, 0, sizeof prop);
  if ((e = cudaGetDeviceProperties(&prop, 0)) != cudaSuccess) {
    info.reason = cudaGetErrorString(e);
    cudaGetLastError();
    return info;
  }
  const std::string cc = std::to_string(major) + "." + std::to_string(minor);
  info.name = std::string(prop.name) + " (compute capability " + cc + ")";
  if (major < kMinMajor) {
    info.reason = info.name + " is older than compute capability 8.0, the oldest this build targets";
    return info;
  }
  if (!pools) {
    info.reason = info.name + " does not support stream-ordered memory allocation";
    return info;
  }
  // Keep up to 64 MiB of freed scratch in the pool between calls instead of returning it to the
  // driver at every synchronisation.
  cudaMemPool_t pool;
  if (cudaDeviceGetDefaultMemPool(&pool, 0) == cudaSuccess) {
    uint64_t keep = uint64_t(64) << 20;
    cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep);
  }
  cudaGetLastError();
  info.available = true;
  return info;
}

}  // namespace

const DeviceInfo& device_info() {
  static const DeviceInfo info = probe();
  return info;
}

namespace detail {

Status cuda_status(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return Status::Ok();
  cudaGetLastError();  // clear it where it is not sticky
  const std::string m = std::string(cudaGetErrorString(e)) + " (" + what + ")";
  if (e == cudaErrorMemoryAllocation) return Status::RangeErr("CUDA out of memory: " + m);
  return Status::Internal("CUDA error: " + m);
}

Status require_device() {
  const DeviceInfo& d = device_info();
  if (!d.available) return Status::Internal("no CUDA device (" + d.reason + ")");
  return Status::Ok();
}

Status check_cols_fit(int64_t cols) {
  if (cols > int64_t(INT_MAX) - 8)
    return Status::RangeErr("cols must be at most " + std::to_string(int64_t(INT_MAX) - 8) +
                            " for the CUDA kernels, got " + std::to_string(cols));
  return Status::Ok();
}

Scratch::~Scratch() {
  if (p_) cudaFreeAsync(p_, stream());
}

Status Scratch::alloc(size_t bytes, const char* what) {
  if (p_) {
    cudaFreeAsync(p_, stream());
    p_ = nullptr;
  }
  if (bytes == 0) bytes = 16;
  void* p = nullptr;
  Status s = cuda_status(cudaMallocAsync(&p, bytes, stream()), what);
  if (s.ok()) p_ = p;
  return s;
}

Status upload_scratch(Scratch* s, const void* host, size_t bytes, const char* what) {
  if (!host) return Status::Ok();
  Status st = s->alloc(bytes, what);
  if (!st.ok()) return st;
  return cuda_status(cudaMemcpyAsync(s->as<void>(), host, bytes, cudaMemcpyHostToDevice, stream()), what);
}

Status download(void* host, const void* dev, size_t bytes, const char* what) {
  Status st = cuda_status(cudaMemcpyAsync(host, dev, bytes, cudaMemcpyDeviceToHost, stream()), what);
  if (!st.ok()) return st;
  return sync(what);
}

Status sync(const char* what) {
  Status st = cuda_status(cudaGetLastError(), what);
  if (!st.ok()) return st;
  return cuda_status(cudaStreamSynchronize(stream()), what);
}




std::string all_neg_inf_error(const char* name, int64_t row) {
  return std::string(name) + " row " + std::to_string(row) + " must have at least one finite logit, got all -Infinity";
}


std::string describe_bad_in_row(const char* name, const float* host_row, int64_t row, int64_t cols) {
  const std::string m = describe_bad_value(name, host_row, 1, cols);
  const size_t at = m.find(" at index ");
  if (m.empty() || at == std::string::npos) return m;
  int64_t c = 0;
  while (c < cols && !is_bad_f(host_row[c])) ++c;
  return m.substr(0, at) + " at index " + std::to_string(row * cols + c) + " (row " + std::to_string(row) +
         ", column " + std::to_string(c) + ")";
}

static const char* dtype_name(DType t) { return t == DType::Int32 ? "Int32" : "Float32"; }

Status check_input(const DeviceBuffer* b, const char* name, DType type, int64_t count) {
  if (!b || b->empty())
    return Status::TypeErr(std::string(name) + " must be a device buffer, got " + (b ? "an empty buffer" : "null"));
  if (b->dtype() != type)
    return Status::TypeErr(std::string(name) + " must hold " + dtype_name(type) + " elements, got " +
                           dtype_name(b->dtype()));
  if (b->size() != count)
    return Status::RangeErr(std::string(name) + " must have " + std::to_string(count) + " elements, got " +
                            std::to_string(b->size()));
  return Status::Ok();
}

Status prepare_output(DeviceBuffer* b, DType type, int64_t count) {
  if (!b) return Status::Ok();
  return b->allocate(type, count);
}

Status download_row(const float* dev, int64_t row, int64_t cols, std::vector<float>* out) {
  out->assign(size_t(cols), 0.0f);
  return download(out->data(), dev + row * cols, size_t(cols) * sizeof(float), "copying a row to the host");
}

}  // namespace detail

// ---------------------------------------------------------------- DeviceBuffer

DeviceBuffer::~DeviceBuffer() { reset(); }

DeviceBuffer::DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), count_(o.count_), dtype_(o.dtype_) {
  o.ptr_ = nullptr;
  o.count_ = 0;
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    reset();
    std::swap(ptr_, o.ptr_);
    std::swap(count_, o.count_);
    dtype_ = o.dtype_;
  }
  return *this;
}

void DeviceBuffer::reset() {
  if (ptr_) {
    // Work queued on this thread's stream may still use the memory: wait for it first.
    cudaStreamSynchronize(detail::stream());
    cudaFree(ptr_);
    cudaGetLastError();
  }
  ptr_ = nullptr;
  count_ = 0;
}

Status DeviceBuffer::allocate(DType type, int64_t count) {
  if (count < 1) return Status::RangeErr("a device buffer must have at least 1 element, got " + std::to_string(count));
  if (ptr_ && count_ == count && dtype_ == type) return Status::Ok();
  Status s = detail::require_device();
  if (!s.ok()) return s;
  reset();
  if (count > int64_t(SIZE_MAX / 8)) return Status::RangeErr("device buffer of " + std::to_string(count) + " elements is too large");
  void* p = nullptr;
  s = detail::cuda_status(cudaMalloc(&p, size_t(count) * 4), "allocating a device buffer");
  if (!s.ok()) return s;
  ptr_ = p;
  count_ = count;
  dtype_ = type;
  return Status::Ok();
}

static Status upload_impl(DeviceBuffer* b, DType type, const void* host, int64_t count) {
  if (!host) return Status::TypeErr("upload source must not be null");
  Status s = b->allocate(type, count);
  if (!s.ok()) return s;
  s = detail::cuda_status(cudaMemcpyAsync(b->device_ptr(), host, size_t(count) * 4, cudaMemcpyHostToDevice,
                                          detail::stream()),
                          "copying to the device");
  if (!s.ok()) return s;
  return detail::sync("copying to the device");
}

static Status download_impl(const DeviceBuffer& b, DType type, void* host, int64_t count) {
  if (!host) return Status::TypeErr("download target must not be null");
  if (b.empty()) return Status::RangeErr("cannot download an empty device buffer");
  if (b.dtype() != type)
    return Status::TypeErr(std::string("the device buffer holds ") + detail::dtype_name(b.dtype()) + " elements, not " +
                           detail::dtype_name(type));
  if (count != b.size())
    return Status::RangeErr("download count must equal the buffer size " + std::to_string(b.size()) + ", got " +
                            std::to_string(count));
  return detail::download(host, b.device_ptr(), size_t(count) * 4, "copying to the host");
}

Status DeviceBuffer::upload(const float* host, int64_t count) { return upload_impl(this, DType::Float32, host, count); }
Status DeviceBuffer::upload(const int32_t* host, int64_t count) { return upload_impl(this, DType::Int32, host, count); }
Status DeviceBuffer::download(float* host, int64_t count) const {
  return download_impl(*this, DType::Float32, host, count);
}
Status DeviceBuffer::download(int32_t* host, int64_t count) const {
  return download_impl(*this, DType::Int32, host, count);
}

}  // namespace cuda
}  // namespace kdfuse
