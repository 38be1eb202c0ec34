#include "weft/allocator.hpp"

#include <dlfcn.h>

namespace weft {

std::string allocator_name() {
  // jemalloc exports mallctl() beside malloc(); looked up at run time, so
  // weft's libraries do not depend on it.
  using mallctl_fn = int (*)(const char*, void*, size_t*, void*, size_t);
  auto* mallctl = reinterpret_cast<mallctl_fn>(::dlsym(RTLD_DEFAULT, "mallctl"));
  if (!mallctl) return "system";
  const char* version = nullptr;
  size_t size = sizeof version;
  if (mallctl("version", &version, &size, nullptr, 0) != 0 || !version) return "jemalloc";
  return std::string{"jemalloc "} + version;
}

} // namespace weft
