#pragma once
// Command-line flags of the benchmarks ("--name=value"). Header-only
// (benchmarks are programs).

#include <cstring>

namespace weft::bench {

/// The value of `arg` if it is the flag `name` (given with its "=", e.g.
/// "--records="), else nullptr.
inline const char* flag_value(const char* arg, const char* name) {
  auto n = std::strlen(name);
  return std::strncmp(arg, name, n) == 0 ? arg + n : nullptr;
}

} // namespace weft::bench
