#pragma once
// Which malloc this process runs on, for the start-up line and benchmarks'
// reports: weft's own programs link jemalloc (cmake/WeftAllocator.cmake), an
// application that links weft chooses its own, and figures mean little
// without knowing which one ran.
//
// Thread safety: a free function without shared state.

#include <string>

namespace weft {

/// "jemalloc <version>" when jemalloc's malloc serves this process (linked
/// or preloaded), else "system".
std::string allocator_name();

} // namespace weft
