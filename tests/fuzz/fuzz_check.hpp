#pragma once
// What a fuzz target asserts. A property that does not hold is a crash: the
// fuzzer keeps the input (crash-<hash>) and the replay driver fails on it.
// Not assert(): it must hold in release builds too.

#include <cstdio>
#include <cstdlib>

#define WEFT_FUZZ_CHECK(cond, ...)                                                       \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "%s:%d: property failed: %s: ", __FILE__, __LINE__, #cond);   \
      std::fprintf(stderr, __VA_ARGS__);                                                 \
      std::fputc('\n', stderr);                                                          \
      std::abort();                                                                      \
    }                                                                                    \
  } while (false)
