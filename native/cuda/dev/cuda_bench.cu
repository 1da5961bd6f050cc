// Benchmark of the CUDA kernels through the device API (data stays on the device, as in a training
// loop): time per call and effective bandwidth against the 12 bytes per element floor of the fused
// forward + backward (read s and t, write the student gradient), beside a device-to-device
// cudaMemcpy measured in the same run. Prints a skip line and exits 0 without a device.
//
//   kdfuse_cuda_bench [iterations]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "kdfuse_core.h"
#include "kdfuse_cuda.h"

namespace kc = kdfuse::cuda;

namespace {

// Hash-based pseudo-normal-ish logits, filled on the device (no host copy of gigabytes).
__global__ void fill_kernel(float* p, int64_t n, uint32_t seed, float scale) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    uint32_t h = uint32_t(i) * 0x9E3779B1u ^ uint32_t(i >> 32) * 0x85EBCA77u ^ seed;
    h ^= h >> 16;
    h *= 0x7FEB352Du;
    h ^= h >> 15;
    h *= 0x846CA68Bu;
    h ^= h >> 16;
    const float u = float(h >> 8) * (1.0f / 16777216.0f);  // [0, 1)
    uint32_t g = h * 0x2C1B3C6Du + 0x297A2D39u;
    g ^= g >> 15;
    const float v = float(g >> 8) * (1.0f / 16777216.0f);
    p[i] = scale * (u + v - 1.0f) * 2.449f;  // triangular, variance ~ scale^2
  }
}

bool fill(kc::DeviceBuffer& b, int64_t n, uint32_t seed) {
  kdfuse::Status st = b.allocate(kc::DType::Float32, n);
  if (!st.ok()) {
    std::printf("  allocation failed: %s\n", st.message.c_str());
    return false;
  }
  fill_kernel<<<4096, 256, 0, cudaStreamPerThread>>>(static_cast<float*>(b.device_ptr()), n, seed, 2.0f);
  return cudaStreamSynchronize(cudaStreamPerThread) == cudaSuccess;
}

double copy_bandwidth_gbs(size_t bytes, int iters) {
  void *a = nullptr, *b = nullptr;
  if (cudaMalloc(&a, bytes) != cudaSuccess || cudaMalloc(&b, bytes) != cudaSuccess) {
    cudaFree(a);
    cudaGetLastError();
    return 0.0;
  }
  cudaMemset(a, 0, bytes);
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, cudaStreamPerThread);
  cudaEventRecord(e0, cudaStreamPerThread);
  for (int i = 0; i < iters; ++i) cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, cudaStreamPerThread);
  cudaEventRecord(e1, cudaStreamPerThread);
  cudaEventSynchronize(e1);
  float ms = 0;
  cudaEventElapsedTime(&ms, e0, e1);
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cudaFree(a);
  cudaFree(b);
  return 2.0 * double(bytes) * iters / (ms * 1e-3) / 1e9;  // read + write
}

template <class F>
double time_ms(int iters, F&& f) {
  for (int i = 0; i < 3; ++i) f();  // warm-up
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) f();
  const auto t1 = std::chrono::steady_clock::now();
  return std::chrono::duration<double, std::milli>(t1 - t0).count() / iters;
}

}  // namespace

int main(int argc, char** argv) {
  const int iters = argc > 1 ? std::max(1, std::atoi(argv[1])) : 20;
  const kc::DeviceInfo& info = kc::device_info();
  if (!info.available) {
    std::printf("skipped: no CUDA device (%s)\n", info.reason.c_str());
    return 0;
  }
  std::printf("device: %s\n", info.name.c_str());
  const double copy = copy_bandwidth_gbs(size_t(1) << 30, iters);
  std::printf("device-to-device cudaMemcpy (1 GiB, read + write): %.0f GB/s\n\n", copy);
  std::printf("%-13s %-44s %10s %10s %8s\n", "shape", "call", "ms/call", "GB/s", "of copy");

  const int64_t shapes[][2] = {{4096, 32000}, {4096, 128000}};
  for (const auto& sh : shapes) {
    const int64_t rows = sh[0], cols = sh[1], n = rows * cols;
    kc::DeviceBuffer s, t, gs, gt, y, labels;
    if (!fill(s, n, 1) || !fill(t, n, 2)) continue;
    std::vector<int32_t> hy(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) hy[size_t(r)] = int32_t((r * 7919) % cols);
    if (!labels.upload(hy.data(), rows).ok()) continue;
    char shape[32];
    std::snprintf(shape, sizeof shape, "%lldx%lld", (long long)rows, (long long)cols);

    struct Variant {
      const char* name;
      bool labels, teacher_grad;
      kdfuse::Divergence div;
      double bytes_per_elem;  // the floor for this call
    };
    const Variant variants[] = {
        {"KL T=2, grad s (fwd+bwd)", false, false, kdfuse::Divergence::KL, 12.0},
        {"KL T=2 + hard labels (alpha .5), grad s", true, false, kdfuse::Divergence::KL, 12.0},
        {"JSD T=2, grad s", false, false, kdfuse::Divergence::JSD, 12.0},
        {"KL T=2, grad s + grad t", false, true, kdfuse::Divergence::KL, 16.0},
    };
    for (const Variant& v : variants) {
      kdfuse::DistillLossArgs a;
      a.rows = rows;
      a.cols = cols;
      a.temperature = 2.0;
      a.alpha = 0.5;
      a.divergence = v.div;
      kc::DistillDeviceBuffers b;
      b.student = &s;
      b.teacher = &t;
      b.labels = v.labels ? &labels : nullptr;
      b.grad_student = &gs;
      b.grad_teacher = v.teacher_grad ? &gt : nullptr;
      kdfuse::DistillLossResult res;
      kdfuse::Status st;
      const double ms = time_ms(iters, [&] { st = kc::distill_loss_device(a, b, &res); });
      if (!st.ok()) {
        std::printf("%-13s %-44s failed: %s\n", shape, v.name, st.message.c_str());
        continue;
      }
      const double gbs = v.bytes_per_elem * double(n) / (ms * 1e-3) / 1e9;
      std::printf("%-13s %-44s %10.3f %10.0f %7.0f%%\n", shape, v.name, ms, gbs, 100.0 * gbs / copy);
    }
    {
      kdfuse::SoftmaxArgs a;
      a.rows = rows;
      a.cols = cols;
      a.temperature = 2.0;
      kdfuse::Status st;
      const double ms = time_ms(iters, [&] { st = kc::softmax_forward_device(a, s, &y); });
      const double gbs = 8.0 * double(n) / (ms * 1e-3) / 1e9;
      if (st.ok()) std::printf("%-13s %-44s %10.3f %10.0f %7.0f%%\n", shape, "softmax T=2 forward (8 B/elem)", ms, gbs,
                               100.0 * gbs / copy);
      kdfuse::SoftmaxBackwardArgs bw;
      bw.rows = rows;
      bw.cols = cols;
      bw.temperature = 2.0;
      const double ms2 = time_ms(iters, [&] { st = kc::softmax_backward_device(bw, y, t, &gs); });
      const double gbs2 = 12.0 * double(n) / (ms2 * 1e-3) / 1e9;
      if (st.ok()) std::printf("%-13s %-44s %10.3f %10.0f %7.0f%%\n", shape, "softmax T=2 backward (12 B/elem)", ms2,
                               gbs2, 100.0 * gbs2 / copy);
    }
  }
  std::printf("\nGB/s = bytes floor per element x elements / time (12 B: read s, t; write grad s).\n");
  return 0;
}
