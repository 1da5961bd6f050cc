#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: build the CUDA kernels and their tests with CMake alone (no Node
# needed) and run the GPU tests (dense and top-k against the CPU core) and the CUDA bench.
# Usage: bash scripts/cuda-device-check.sh [BUILD_DIR]   (default build-gpu)
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-build-gpu}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
arch="${KDFUSE_CUDA_ARCHITECTURES:-90}"
cmake -S . -B "$dir" -DKDFUSE_CUDA=ON -DKDFUSE_CUDA_REQUIRED=ON -DKDFUSE_TESTS=ON -DKDFUSE_CUDA_ARCHITECTURES="$arch" >/dev/null
cmake --build "$dir" -j"$(nproc)" --target kdfuse_cuda_test kdfuse_cuda_bench
"$dir/native/cuda/kdfuse_cuda_test"
"$dir/native/cuda/kdfuse_cuda_bench"
