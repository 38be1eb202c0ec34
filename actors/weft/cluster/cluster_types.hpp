#pragma once
// The values the control plane's roles pass between them and to the other
// nodes: a node's announcement, its status, and the log sink of the pure
// decision logic. No CAF, no Kafka: the deterministic simulation
// (tests/sim/) uses these as they are.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace weft::cluster {

/// Milliseconds on a monotonic clock: steady_clock in a node, the simulated
/// clock in the simulation. The decision logic never reads a clock itself.
using time_ms = int64_t;

/// time_ms now on steady_clock: what the actors that run the logic (and the
/// peer links) feed it.
inline time_ms steady_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/// A unit of work: tasks that must run on one node (they read a common
/// partition). Numbered 0..n-1 the same way on every node of an application.
using unit_id = uint32_t;

/// A node's announcement in the cluster log (key member/<id>).
struct member_record {
  std::string id;
  std::string host; ///< CAF endpoint
  uint16_t port = 0;
  std::string http;        ///< host:port of its HTTP endpoint, or empty
  int64_t incarnation = 0; ///< different at every process start
  std::string topology;    ///< fingerprint of the node's units

  bool operator==(const member_record& o) const {
    return id == o.id && host == o.host && port == o.port && http == o.http &&
           incarnation == o.incarnation && topology == o.topology;
  }
  bool operator!=(const member_record& o) const { return !(*this == o); }
};

/// What a node tells every peer about itself: sent on every change and again
/// every status interval. It is state, not an event, so a lost or late
/// message is healed by the next one and nothing waits on a one-shot signal.
struct node_status {
  std::string node;
  int64_t incarnation = 0;
  /// The latest assignment generation this node has taken into account.
  int64_t applied = 0;
  /// Units this node runs, is starting, or may still run: running tasks,
  /// tasks an operation in progress starts or stops, and units it waits to
  /// take over (and so owes a release to whoever comes next). Sorted.
  std::vector<unit_id> holding;
  /// Per unit whose copy this node keeps (standby or warm-up): changelog
  /// records behind, -1 while unknown.
  std::map<unit_id, int64_t> standby_lag;
  /// Per unit running here: input records behind, -1 while unknown.
  std::map<unit_id, int64_t> active_lag;

  /// Whether this node is clear of `unit` as of generation `since`: it has
  /// taken generation `since` (or a later one) into account and neither runs
  /// the unit nor may start it. Then everything it did with the unit is
  /// committed and a new owner may start it.
  bool clear_of(unit_id unit, int64_t since) const;

  bool operator==(const node_status& o) const {
    return node == o.node && incarnation == o.incarnation && applied == o.applied &&
           holding == o.holding && standby_lag == o.standby_lag &&
           active_lag == o.active_lag;
  }
  bool operator!=(const node_status& o) const { return !(*this == o); }
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, node_status& x) {
  return f(x.node, x.incarnation, x.applied, x.holding, x.standby_lag, x.active_lag);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, member_record& x) {
  return f(x.id, x.host, x.port, x.http, x.incarnation, x.topology);
}

/// Where the decision logic's log lines go: spdlog in a node, a buffer in the
/// simulation (printed when a seed fails).
enum class log_level { debug, info, warn };
using log_sink = std::function<void(log_level, const std::string&)>;

} // namespace weft::cluster
