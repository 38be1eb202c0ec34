# The CTest fixture "kafka_broker": a fresh local Kafka (tools/weft-broker) for
# the tests that need a real broker (transactions, read_committed, fencing,
# compaction). Include it from tests/CMakeLists.txt; tests opt in with
#   set_tests_properties(t PROPERTIES FIXTURES_REQUIRED kafka_broker)
# (weft_add_unit_tests does that for Catch2 tests tagged [broker]).
#
#   broker_start  wipes the data of the previous run, then starts the broker
#                 on 127.0.0.1:${WEFT_TEST_BROKER_PORT} (controller port + 1)
#                 with its data and logs in ${PROJECT_BINARY_DIR}/test-broker
#   broker_stop   stops it; the data and logs stay until the next run
#
# CTest only runs these when a selected test requires the fixture, so
# `ctest -L unit` or `ctest -LE broker` start no JVM.

set(WEFT_TEST_BROKER_PORT 19092 CACHE STRING
    "Port of the local Kafka broker the test suite starts (its controller uses port + 1)")

find_program(WEFT_BASH bash REQUIRED)
set(_weft_broker_tool ${CMAKE_CURRENT_LIST_DIR}/../tools/weft-broker)
get_filename_component(_weft_broker_tool ${_weft_broker_tool} ABSOLUTE)
set(WEFT_TEST_BROKER_DATA ${PROJECT_BINARY_DIR}/test-broker)

add_test(NAME broker_start
  COMMAND ${WEFT_BASH} -c "\"$0\" wipe --port \"$1\" --data \"$2\" && exec \"$0\" start --port \"$1\" --data \"$2\""
          ${_weft_broker_tool} ${WEFT_TEST_BROKER_PORT} ${WEFT_TEST_BROKER_DATA})
set_tests_properties(broker_start PROPERTIES
  FIXTURES_SETUP kafka_broker
  TIMEOUT 180
  LABELS broker)

add_test(NAME broker_stop
  COMMAND ${_weft_broker_tool} stop --port ${WEFT_TEST_BROKER_PORT} --data ${WEFT_TEST_BROKER_DATA})
set_tests_properties(broker_stop PROPERTIES
  FIXTURES_CLEANUP kafka_broker
  TIMEOUT 180
  LABELS broker)

unset(_weft_broker_tool)
