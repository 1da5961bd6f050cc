#!/usr/bin/env bash
# The C++ tests built once more with AddressSanitizer (LeakSanitizer included) and UBSan, and run
# with ctest: any report fails (UBSan does not recover; LeakSanitizer runs at each test's exit).
# Run by .ci/run; usable by hand: bash scripts/sanitize.sh [BUILD_DIR] (default build-asan).
# gcc's sanitizers: no extra install. The CUDA emulator test (cuda_emu) switches fibers at every
# barrier, which ASan slows about twentyfold (18 minutes on the 2-core CI machine, beyond CI's
# budget), so it runs in a second build with LeakSanitizer alone (leaks only, near full speed),
# where CMake finds a CUDA compiler (the emulator target is configured only then; no .cu is built).
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-build-asan}"
cmake -S . -B "$dir" -DKDFUSE_SANITIZE=ON -DKDFUSE_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
# kdfuse_tests (CMakeLists.txt) depends on every executable ctest registers, so none is "Not Run"
cmake --build "$dir" -j"$(nproc)" --target kdfuse_tests
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
ctest --test-dir "$dir" --output-on-failure

lsan="$dir-lsan"
cmake -S . -B "$lsan" -DKDFUSE_CUDA=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS="-fsanitize=leak -g" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=leak" >/dev/null
targets="$(cmake --build "$lsan" --target help)"
if [[ "$targets" == *kdfuse_cuda_emu_test* ]]; then
  cmake --build "$lsan" -j"$(nproc)" --target kdfuse_cuda_emu_test
  ctest --test-dir "$lsan" --output-on-failure -R '^cuda_emu$'
else
  echo "sanitize.sh: no CUDA compiler found, so no cuda_emu test to check for leaks"
fi
