# The CTest fixture "kafka_broker": a fresh local Kafka (tools/weft-broker) for
# the tests that need a real broker (transactions, read_committed, fencing,
# compaction). Include it from tests/CMakeLists.txt; tests opt in with
#   set_tests_properties(t PROPERTIES FIXTURES_REQUIRED kafka_broker)
# (weft_add_unit_tests does that for Catch2 tests tagged [broker]).
#
#   kafka_broker_start  wipes the data of the previous run, then starts the
#                       broker on 127.0.0.1:${WEFT_TEST_BROKER_PORT} (controller
#                       port + 1) with its data and logs in
#                       ${PROJECT_BINARY_DIR}/test-broker
#   kafka_broker_stop   stops it; the data and logs stay until the next run
#
# weft_broker_fixture() makes more such fixtures: the nemesis suite restarts
# its broker as a fault, so it gets one of its own (a broker holding every
# other test's partitions took minutes to restart).
#
# CTest only runs these when a selected test requires the fixture, so
# `ctest -L unit` or `ctest -LE broker` start no JVM.

set(WEFT_TEST_BROKER_PORT 19092 CACHE STRING
    "Port of the local Kafka broker the test suite starts (its controller uses port + 1)")

find_program(WEFT_BASH bash REQUIRED)
set(WEFT_BROKER_TOOL ${CMAKE_CURRENT_LIST_DIR}/../tools/weft-broker)
get_filename_component(WEFT_BROKER_TOOL ${WEFT_BROKER_TOOL} ABSOLUTE)

# weft_broker_fixture(<fixture> <port> <data dir>): a broker of its own for the
# tests that require <fixture> (started fresh before the first, stopped after
# the last).
function(weft_broker_fixture fixture port data)
  add_test(NAME ${fixture}_start
    COMMAND ${WEFT_BASH} -c "\"$0\" wipe --port \"$1\" --data \"$2\" && exec \"$0\" start --port \"$1\" --data \"$2\""
            ${WEFT_BROKER_TOOL} ${port} ${data})
  set_tests_properties(${fixture}_start PROPERTIES
    FIXTURES_SETUP ${fixture}
    TIMEOUT 180
    LABELS broker)
  add_test(NAME ${fixture}_stop
    COMMAND ${WEFT_BROKER_TOOL} stop --port ${port} --data ${data})
  set_tests_properties(${fixture}_stop PROPERTIES
    FIXTURES_CLEANUP ${fixture}
    TIMEOUT 180
    LABELS broker)
endfunction()

set(WEFT_TEST_BROKER_DATA ${PROJECT_BINARY_DIR}/test-broker)
weft_broker_fixture(kafka_broker ${WEFT_TEST_BROKER_PORT} ${WEFT_TEST_BROKER_DATA})
