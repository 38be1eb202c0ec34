#pragma once
// The node's Prometheus page (GET /metrics on the node's HTTP endpoint):
// every figure the node keeps, read at scrape time. The hot path only bumps
// relaxed atomics (node_context.hpp: node_counters, task_counters); sums,
// lags (librdkafka's cached watermarks) and RocksDB properties are read
// here, on the HTTP thread. README, *Metrics*, lists the names.
//
// Internal to weft; no CAF here.

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "weft/actors/node_context.hpp"
#include "weft/metrics/exposition.hpp"
#include "weft/topology.hpp"

namespace weft::detail {

struct metrics_sources {
  const node_context* ctx = nullptr;
  const topology* topo = nullptr;
  std::string node_id;
  /// Clustered nodes: changelog records each local standby is behind (-1:
  /// unknown). Empty without a cluster.
  std::map<task_key, int64_t> standby_lags;
  /// bad.record.policy=park: (parked keys, held records) of each task here
  /// with a parked store (park_registry::by_task).
  std::map<task_key, std::pair<uint64_t, uint64_t>> parked;
  /// Restores the restore thread tried again after Kafka errors
  /// (restorer::retries).
  uint64_t restore_retries = 0;
  /// What the application adds (node::add_metrics), in order.
  std::vector<std::function<void(metrics::exposition&)>> extra;
};

/// Writes the whole page.
void write_node_metrics(metrics::exposition& page, const metrics_sources& src);

} // namespace weft::detail
