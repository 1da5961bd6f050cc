#!/usr/bin/env bash
# The C++ tests built once more with AddressSanitizer (LeakSanitizer included) and UBSan, and run
# with ctest: any report fails (UBSan does not recover; LeakSanitizer runs at each test's exit).
# Run by .ci/run; usable by hand: bash scripts/sanitize.sh [BUILD_DIR] (default build-asan).
# gcc's sanitizers: no extra install. The CUDA tests are not built here (KDFUSE_CUDA=OFF): nvcc
# takes no -fsanitize, and the emulator test (cuda_emu) switches fibers on every barrier, which runs
# about 20 times slower under ASan (18 minutes on the 2-core CI machine, beyond CI's budget);
# docs/reliability.md says how it was checked for leaks instead.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-build-asan}"
cmake -S . -B "$dir" -DKDFUSE_SANITIZE=ON -DKDFUSE_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$dir" -j"$(nproc)" --target kdfuse_core_test kdfuse_core_suite kdfuse_ig_test
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
ctest --test-dir "$dir" --output-on-failure
