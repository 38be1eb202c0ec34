#pragma once
// The CPU time of the benchmark's own process, for figures per record that
// a busy machine's wall clock would blur. Header-only (benchmarks are
// programs).

#include <sys/resource.h>

namespace weft::bench {

/// CPU seconds (user + system) this process used so far.
inline double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

} // namespace weft::bench
