#pragma once
// This process's resident memory, for the benchmarks that report it.
// Header-only (benchmarks are programs).

#include <cstdint>
#include <fstream>
#include <string>

namespace weft::bench {

/// VmRSS of this process, MB.
inline int64_t rss_mb() {
  std::ifstream f{"/proc/self/status"};
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6)) / 1024;
  return 0;
}

} // namespace weft::bench
