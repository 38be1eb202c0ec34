# Fuzzing with libFuzzer (tests/fuzz, README "Fuzzing").
#
# libFuzzer needs clang, and the main build uses gcc, so every fuzz target is
# built twice from the same sources:
#
#   in the main build (gcc)   weft-fuzz-replay-<name>: the target with a small
#                             driver (tests/fuzz/replay_main.cpp) that runs it
#                             on every file of its seed corpus and regressions;
#                             the CTest test "fuzz-replay: <name>" (label unit)
#                             runs it on every `ctest -L unit`;
#   in a clang tree           fuzz-<name>: the libFuzzer binary, with address
#   (<build>/fuzz, project    and undefined-behaviour sanitizers. The CTest
#   tests/fuzz)               fixture test "fuzz: build" configures and builds
#                             that tree (tools/fuzz.sh build); each
#                             "fuzz: <name>" test (label fuzz) then fuzzes its
#                             target for WEFT_FUZZ_SECONDS (default 30) on its
#                             committed seed corpus (tools/fuzz.sh run).
#
# Add a target in three lines of tests/fuzz/targets.cmake, plus a seed corpus
# folder tests/fuzz/corpus/<name>/ (one input per file):
#
#   weft_add_fuzzer(member_codec
#     SOURCES member_codec.fuzz.cpp ${WEFT_ROOT}/actors/weft/cluster/member_codec.cpp
#     INCLUDES ${WEFT_ROOT}/actors)
#
# SOURCES are relative to tests/fuzz or absolute (${WEFT_ROOT} is the
# repository); every target links weft_fuzz_runtime (serdes, config, status)
# and may name more LIBS: weft_fuzz_kafka for code that also uses weft's
# Kafka wrappers (as cluster_record does), weft_fuzz_peer for the messages
# between nodes (CAF, wire_types.hpp, peer_bounds.hpp; as peer_message does). The target defines LLVMFuzzerTestOneInput and checks
# its properties with WEFT_FUZZ_CHECK (tests/fuzz/fuzz_check.hpp).

get_filename_component(WEFT_ROOT ${CMAKE_CURRENT_LIST_DIR}/.. ABSOLUTE)
set(WEFT_FUZZ_DIR ${WEFT_ROOT}/tests/fuzz)

function(weft_add_fuzzer name)
  cmake_parse_arguments(F "" "" "SOURCES;INCLUDES;LIBS" ${ARGN})
  set(_sources)
  foreach(s IN LISTS F_SOURCES)
    if(IS_ABSOLUTE ${s})
      list(APPEND _sources ${s})
    else()
      list(APPEND _sources ${WEFT_FUZZ_DIR}/${s})
    endif()
  endforeach()
  if(NOT EXISTS ${WEFT_FUZZ_DIR}/corpus/${name})
    message(FATAL_ERROR "weft_add_fuzzer(${name}): no seed corpus; add files to "
                        "tests/fuzz/corpus/${name}/")
  endif()
  if(WEFT_FUZZ_BUILD)
    set(_target fuzz-${name})
    add_executable(${_target} ${_sources})
    target_compile_options(${_target} PRIVATE ${WEFT_FUZZ_FLAGS})
    target_link_options(${_target} PRIVATE -fsanitize=fuzzer,${WEFT_FUZZ_SANITIZERS})
    add_dependencies(weft_fuzzers ${_target})
  else()
    set(_target weft-fuzz-replay-${name})
    add_executable(${_target} ${_sources} ${WEFT_FUZZ_DIR}/replay_main.cpp)
    target_link_libraries(${_target} PRIVATE weft::warnings)
    add_test(NAME "fuzz-replay: ${name}"
             COMMAND ${_target} ${WEFT_FUZZ_DIR}/corpus/${name}
                     ${WEFT_FUZZ_DIR}/regressions/${name})
    set_tests_properties("fuzz-replay: ${name}" PROPERTIES LABELS unit TIMEOUT 120)
    add_test(NAME "fuzz: ${name}"
             COMMAND ${WEFT_BASH} ${WEFT_ROOT}/tools/fuzz.sh run ${PROJECT_BINARY_DIR}/fuzz
                     ${name})
    set_tests_properties("fuzz: ${name}" PROPERTIES
      LABELS fuzz TIMEOUT 300 FIXTURES_REQUIRED weft_fuzz_build)
  endif()
  target_include_directories(${_target} PRIVATE ${WEFT_FUZZ_DIR} ${F_INCLUDES})
  target_link_libraries(${_target} PRIVATE weft_fuzz_runtime ${F_LIBS})
endfunction()

if(NOT WEFT_FUZZ_BUILD)
  # The main build: the replay drivers link the runtime as every test does,
  # and one fixture builds the clang tree before any "fuzz: <name>" test runs.
  add_library(weft_fuzz_runtime INTERFACE)
  target_link_libraries(weft_fuzz_runtime INTERFACE weft::runtime)
  add_library(weft_fuzz_kafka INTERFACE) # the Kafka wrappers: in weft::runtime here
  target_link_libraries(weft_fuzz_kafka INTERFACE weft::runtime)
  add_library(weft_fuzz_peer INTERFACE) # wire types, peer bounds: in weft::weft here
  target_link_libraries(weft_fuzz_peer INTERFACE weft::weft CAF::core)
  find_program(WEFT_BASH bash REQUIRED)
  add_test(NAME "fuzz: build"
           COMMAND ${WEFT_BASH} ${WEFT_ROOT}/tools/fuzz.sh build ${PROJECT_BINARY_DIR}/fuzz
                   "${CMAKE_CXX_COMPILER_LAUNCHER}")
  set_tests_properties("fuzz: build" PROPERTIES
    LABELS fuzz TIMEOUT 1200 FIXTURES_SETUP weft_fuzz_build)
endif()
