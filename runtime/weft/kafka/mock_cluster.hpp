#pragma once
// librdkafka's in-process mock cluster, for fast tests of the client layer,
// flow control and fault handling. It starts in milliseconds and needs no JVM.
//
// What it cannot do (FACTS.md): transactions are accepted but do nothing
// (no markers, read_committed sees aborted records, no fencing), no
// compaction, retention is ~5 MiB per partition, no admin API from other
// processes. Never use it for claims about those; use the local broker.
//
// Thread safety: every call may come from any thread.

#include <librdkafka/rdkafka.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "weft/status.hpp"

typedef struct rd_kafka_mock_cluster_s rd_kafka_mock_cluster_t;

namespace weft::kafka {

class mock_cluster {
 public:
  /// Starts `brokers` mock brokers (ids 1..brokers) on random local ports.
  static result<std::unique_ptr<mock_cluster>> create(int brokers = 1);
  mock_cluster(const mock_cluster&) = delete;
  mock_cluster& operator=(const mock_cluster&) = delete;
  ~mock_cluster();

  /// The bootstrap.servers string for clients.
  std::string bootstrap_servers() const;

  status create_topic(const std::string& name, int partitions,
                      int replication_factor = 1);

  /// Takes a broker down (connections refused) or brings it back.
  status broker_down(int32_t broker_id);
  status broker_up(int32_t broker_id);
  /// Adds round-trip latency to a broker.
  status broker_rtt(int32_t broker_id, int rtt_ms);

  /// Makes the next requests of type `api_key` (Produce 0, Fetch 1, ...)
  /// fail with the given errors, one per request, in order, cluster-wide.
  void push_request_errors(int16_t api_key, const std::vector<rd_kafka_resp_err_t>& errs);

 private:
  mock_cluster() = default;
  rd_kafka_t* rk_ = nullptr;
  rd_kafka_mock_cluster_t* mc_ = nullptr;
};

} // namespace weft::kafka
