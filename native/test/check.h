// The small check harness of the single-file C++ tests (core_test.cpp, ig_test.cpp): CHECK counts
// a pass or prints the failure with its location and a printf-style message; finish() prints the
// tally and gives the exit code (1 on any failure).
#pragma once
#include <cstdio>

static int passed = 0, failed = 0;
#define CHECK(cond, ...)                                   \
  do {                                                     \
    if (cond) ++passed;                                    \
    else { ++failed; std::printf("FAIL %s:%d: ", __FILE__, __LINE__); std::printf(__VA_ARGS__); std::printf("\n"); } \
  } while (0)

static inline int finish() {
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
