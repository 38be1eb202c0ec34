# The allocator of weft's own programs, as one interface target that each of
# them links: weft::program. Not the library's: an application that links
# weft chooses its own allocator (README, Use weft in your project).
#
# jemalloc by default: records cross threads (librdkafka allocates on one
# and frees on its own, CAF's messages move between scheduler threads), and
# glibc's malloc pays for frees of another thread's memory. Measured: the
# stateless node +13 %, a raw librdkafka loop +43 %, the causal header
# cheaper, peak memory on par with the settings of weft_malloc_conf.c
# (README). Sanitizer builds keep the system allocator, which the
# sanitizers replace.
set(WEFT_ALLOCATOR "jemalloc" CACHE STRING "Allocator of weft's programs: jemalloc or system")
set_property(CACHE WEFT_ALLOCATOR PROPERTY STRINGS jemalloc system)

set(WEFT_PROGRAMS_USE_JEMALLOC OFF)
add_library(weft_program INTERFACE)
add_library(weft::program ALIAS weft_program)
if(WEFT_SANITIZE AND WEFT_ALLOCATOR STREQUAL "jemalloc")
  message(STATUS "weft: WEFT_SANITIZE=${WEFT_SANITIZE}: programs keep the system allocator")
elseif(WEFT_ALLOCATOR STREQUAL "jemalloc")
  pkg_check_modules(JEMALLOC IMPORTED_TARGET jemalloc>=5)
  if(NOT JEMALLOC_FOUND)
    message(FATAL_ERROR
      "WEFT_ALLOCATOR=jemalloc, but jemalloc >= 5 was not found: install the Debian package "
      "libjemalloc-dev (tools/setup.sh does), or configure with -DWEFT_ALLOCATOR=system")
  endif()
  # Linked even though no symbol of it is named: its malloc replaces glibc's.
  target_link_libraries(weft_program INTERFACE "-Wl,--push-state,--no-as-needed"
                                               PkgConfig::JEMALLOC "-Wl,--pop-state")
  target_sources(weft_program INTERFACE ${CMAKE_CURRENT_LIST_DIR}/weft_malloc_conf.c)
  set(WEFT_PROGRAMS_USE_JEMALLOC ON)
elseif(NOT WEFT_ALLOCATOR STREQUAL "system")
  message(FATAL_ERROR "WEFT_ALLOCATOR='${WEFT_ALLOCATOR}': use 'jemalloc' or 'system'")
endif()
