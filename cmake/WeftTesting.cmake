# weft_add_unit_tests(NAME SOURCES ... LIBS ...)
#   One Catch2 binary; every TEST_CASE becomes a CTest test (catch_discover_tests),
#   labelled by its tags:
#     (no [broker] tag)   label "unit"   — no broker; [mock] ones use librdkafka's mock
#     [broker]            label "broker" — need the local Kafka broker: they require
#                         the kafka_broker fixture and get WEFT_TEST_BOOTSTRAP
#     [broker][slow]      label "slow"   — broker tests that take minutes (ctest -LE slow
#                         skips them)
#   Broker tests share one broker, so they hold a resource lock and run one at a time.
#   PREFIX p    prepended to every test name (a second build of the same tests)
#   EXCLUDE s   a Catch2 tag expression appended to every spec, e.g. "~[cluster]"
#   BROKER_FIXTURE f, BROKER_PORT p   the broker of fixture f on port p instead of
#               kafka_broker (weft_broker_fixture in cmake/WeftBrokerFixture.cmake)
#   SKIP_RETURN_CODE n   a broker test exiting with n is reported Skipped (a
#               test whose tool is genuinely missing on this machine)
function(weft_add_unit_tests name)
  cmake_parse_arguments(T "" "PREFIX;EXCLUDE;BROKER_FIXTURE;BROKER_PORT;SKIP_RETURN_CODE"
                        "SOURCES;LIBS" ${ARGN})
  set(_skip "")
  if(T_SKIP_RETURN_CODE)
    set(_skip SKIP_RETURN_CODE ${T_SKIP_RETURN_CODE})
  endif()
  if(NOT T_BROKER_FIXTURE)
    set(T_BROKER_FIXTURE kafka_broker)
    set(T_BROKER_PORT ${WEFT_TEST_BROKER_PORT})
  endif()
  add_executable(${name} ${T_SOURCES} ${PROJECT_SOURCE_DIR}/tests/support/catch_main.cpp)
  target_link_libraries(${name} PRIVATE ${T_LIBS} Catch2::Catch2 weft::warnings weft::program)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests/support)
  # One variable only: catch_discover_tests splits property lists on ';'.
  # It splits test names on ';' too, and Catch2 passes a filter that matches no
  # test: "-w NoTests" makes such a test fail instead of passing silently.
  set(_env "WEFT_TEST_BOOTSTRAP=127.0.0.1:${T_BROKER_PORT}")
  catch_discover_tests(${name}
    EXTRA_ARGS -w NoTests
    TEST_SPEC "~[broker]~[.]${T_EXCLUDE}"
    TEST_PREFIX "${T_PREFIX}"
    PROPERTIES TIMEOUT 180 LABELS "unit")
  catch_discover_tests(${name}
    EXTRA_ARGS -w NoTests
    TEST_SPEC "[broker]~[slow]~[.]${T_EXCLUDE}"
    TEST_PREFIX "${T_PREFIX}broker: "
    PROPERTIES TIMEOUT 600 LABELS "broker" FIXTURES_REQUIRED ${T_BROKER_FIXTURE}
               ENVIRONMENT "${_env}" RESOURCE_LOCK kafka_broker_load ${_skip})
  catch_discover_tests(${name}
    EXTRA_ARGS -w NoTests
    TEST_SPEC "[broker][slow]${T_EXCLUDE}"
    TEST_PREFIX "${T_PREFIX}slow: "
    PROPERTIES TIMEOUT 900 LABELS "slow" FIXTURES_REQUIRED ${T_BROKER_FIXTURE}
               ENVIRONMENT "${_env}" RESOURCE_LOCK kafka_broker_load)
endfunction()
