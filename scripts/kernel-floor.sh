#!/usr/bin/env bash
# The loss kernel's floor on this CPU, for the performance notes (docs/benchmarks.md, "Kernel floor"):
#   - time per element of the core alone, one thread (build/kdfuse_core_bench);
#   - instructions per element of each pass, counted by valgrind's callgrind (these VMs expose no
#     hardware counters, so perf cannot count them);
#   - the core clock, from a chain of dependent integer adds (one per cycle);
#   - the time per element if every instruction were dispatched at the core's widest rate (6 per
#     cycle on AMD Zen 3 to 5 and recent Intel cores), a bound no floating-point loop reaches.
# Needs the C++ tests built (npx cmake-js rebuild -O build --CDKDFUSE_TESTS=ON), valgrind and cc.
# Usage: bash scripts/kernel-floor.sh [ROWS COLS]   (default 2048 32000; callgrind runs 64 rows of it)
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-2048}
cols=${2:-32000}
bench=build/kdfuse_core_bench
[ -x "$bench" ] || { echo "build $bench first: npx cmake-js rebuild -O build --CDKDFUSE_TESTS=ON" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

grep -m1 'model name' /proc/cpuinfo || true
grep -m1 'cpu family' /proc/cpuinfo || true

# the clock: 4 dependent adds per iteration, one cycle each
cat > "$tmp/clock.c" <<'C'
#include <stdio.h>
#include <time.h>
int main(void) {
  long n = 2000000000L, x = 0;
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  __asm__ volatile("1: add $1, %0\n add $1, %0\n add $1, %0\n add $1, %0\n sub $4, %1\n jnz 1b" : "+r"(x), "+r"(n));
  clock_gettime(CLOCK_MONOTONIC, &b);
  printf("%.3f\n", 2.0 / ((b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) * 1e-9));
  return 0;
}
C
cc -O1 "$tmp/clock.c" -o "$tmp/clock"
ghz=$("$tmp/clock")
echo "clock: $ghz GHz (dependent adds)"

line=$("$bench" "$rows" "$cols" 1 10)
echo "$line"
us=$(echo "$line" | sed -E 's/.*median ([0-9.]+) us.*/\1/')

# callgrind runs 50x slower: 64 rows of a large shape, the whole of a small one
if [ $((rows * cols)) -le 1048576 ]; then crow=$rows calls=200; else crow=64 calls=4; fi  # plus one warm-up call
valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out" "$bench" "$crow" "$cols" 1 "$calls" >/dev/null 2>&1
elements=$((crow * cols * (calls + 1)))
callgrind_annotate "$tmp/cg.out" 2>/dev/null | grep -E 'distill_pass[123]|distill_small_rows|::group\(|validate_distill|distill_loss\(' | awk -v n="$elements" '
  { gsub(",", "", $1); ir = $1 + 0; name = $0; sub(/^[^?]*\?\?\?:/, "", name); gsub(/\(anonymous namespace\)::/, "", name); sub(/\(.*/, "", name); sub(/.*::/, "", name);
    printf "  %-40s %6.2f instructions/element\n", name, ir / n; total += ir }
  END { printf "  %-40s %6.2f instructions/element\n", "all passes", total / n; print total / n > "/dev/stderr" }' 2> "$tmp/ipe"
ipe=$(cat "$tmp/ipe")
awk -v us="$us" -v r="$rows" -v c="$cols" -v ipe="$ipe" -v ghz="$ghz" -v cr="$crow" 'BEGIN {
  ns = us * 1000 / (r * c);
  if (cr == r) printf "per call: %.0f instructions in the passes; at 6 instructions/cycle %.2f us, measured %.2f us\n", ipe * r * c, ipe * r * c / (6 * ghz * 1000), us;
  printf "measured: %.2f ns/element, one thread = %.1f cycles/element = %.2f instructions/cycle\n", ns, ns * ghz, ipe / (ns * ghz);
  printf "floor at 6 instructions/cycle: %.2f ns/element; at 4 (the FP pipes): %.2f ns/element\n", ipe / (6 * ghz), ipe / (4 * ghz);
}'
