# The fuzz targets (cmake/WeftFuzzing.cmake explains weft_add_fuzzer). Each
# has a seed corpus in corpus/<name>/ and may have crash inputs that were
# fixed in regressions/<name>/; both run on every unit test run.

# Serdes (runtime/weft/serde.hpp, services/weft/services/windows.hpp).
weft_add_fuzzer(string_serde SOURCES string_serde.fuzz.cpp)
weft_add_fuzzer(int_serde SOURCES int_serde.fuzz.cpp)
weft_add_fuzzer(double_serde SOURCES double_serde.fuzz.cpp)
weft_add_fuzzer(json_serde SOURCES json_serde.fuzz.cpp)
weft_add_fuzzer(cereal_serde SOURCES cereal_serde.fuzz.cpp)
weft_add_fuzzer(windowed_serde SOURCES windowed_serde.fuzz.cpp
  INCLUDES ${WEFT_ROOT}/services)

# The causal header weft stamps on its outputs (runtime/weft/trace/cause.hpp),
# read back from Kafka by weft-trace.
weft_add_fuzzer(trace_cause SOURCES trace_cause.fuzz.cpp
  ${WEFT_ROOT}/runtime/weft/trace/cause.cpp)

# The configuration (runtime/weft/config.hpp): command lines, properties
# files, key/value maps.
weft_add_fuzzer(config SOURCES config.fuzz.cpp)

# The order system's REST request parsing (examples/orders/request_parsing.hpp).
weft_add_fuzzer(rest_request
  SOURCES rest_request.fuzz.cpp ${WEFT_ROOT}/examples/orders/request_parsing.cpp
          ${WEFT_ROOT}/examples/orders/model.cpp
  INCLUDES ${WEFT_ROOT}/examples/orders)

# The cluster's assignment codec (actors/weft/cluster/assignor.hpp), read from
# the cluster topic.
weft_add_fuzzer(assignment
  SOURCES assignment.fuzz.cpp ${WEFT_ROOT}/actors/weft/cluster/assignor.cpp
  INCLUDES ${WEFT_ROOT}/actors)

# The cluster log's records (actors/weft/cluster/cluster_log.hpp): member
# announcements and assignments as every node applies them.
weft_add_fuzzer(cluster_record
  SOURCES cluster_record.fuzz.cpp ${WEFT_ROOT}/actors/weft/cluster/cluster_log.cpp
          ${WEFT_ROOT}/actors/weft/cluster/assignor.cpp
  INCLUDES ${WEFT_ROOT}/actors LIBS weft_fuzz_kafka)

# What a node decodes from another node over the cluster connection (CAF's
# BASP payloads; actors/weft/cluster/wire_types.hpp and peer_bounds.hpp):
# whole messages with their type names, and each type on its own. The seeds
# are checked against today's encodings by fuzz/peer_seeds.test.cpp.
weft_add_fuzzer(peer_message SOURCES peer_message.fuzz.cpp LIBS weft_fuzz_peer)
weft_add_fuzzer(peer_types SOURCES peer_types.fuzz.cpp LIBS weft_fuzz_peer)
