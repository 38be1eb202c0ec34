#include "weft/allocator.hpp"

#include <catch2/catch.hpp>

#include <dlfcn.h>

#include <cstdlib>

TEST_CASE("the allocator is named as the build chose it: jemalloc with its version and "
          "weft's settings, or system") {
  auto name = weft::allocator_name();
  INFO(name);
#if defined(WEFT_EXPECT_JEMALLOC)
  CHECK(name.rfind("jemalloc 5.", 0) == 0);
  // cmake/weft_malloc_conf.c took effect (unless MALLOC_CONF overrides it).
  if (!std::getenv("MALLOC_CONF")) {
    using mallctl_fn = int (*)(const char*, void*, size_t*, void*, size_t);
    auto* mallctl = reinterpret_cast<mallctl_fn>(::dlsym(RTLD_DEFAULT, "mallctl"));
    REQUIRE(mallctl);
    ssize_t decay = 0;
    size_t size = sizeof decay;
    REQUIRE(mallctl("opt.dirty_decay_ms", &decay, &size, nullptr, 0) == 0);
    CHECK(decay == 1000);
  }
#else
  CHECK(name == "system");
#endif
}
