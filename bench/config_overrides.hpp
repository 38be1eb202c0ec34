#pragma once
// WEFT_BENCH_CONFIG="key=value,key=value": node keys a benchmark run adds or
// overrides, to try a setting without a rebuild. Header-only (benchmarks
// are programs).

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

namespace weft::bench {

/// Applies WEFT_BENCH_CONFIG to `values`; a malformed item ends the program.
inline void apply_config_overrides(std::map<std::string, std::string>& values) {
  const char* extra = std::getenv("WEFT_BENCH_CONFIG");
  if (!extra) return;
  std::string all = extra;
  for (size_t at = 0; at < all.size();) {
    auto end = std::min(all.find(',', at), all.size());
    auto item = all.substr(at, end - at);
    auto eq = item.find('=');
    if (eq == std::string::npos) {
      std::fprintf(stderr, "bench: WEFT_BENCH_CONFIG: '%s' is not key=value\n",
                   item.c_str());
      std::exit(1);
    }
    values[item.substr(0, eq)] = item.substr(eq + 1);
    at = end + 1;
  }
}

} // namespace weft::bench
