#pragma once
// Cluster membership: how the nodes of one application.id find each other,
// choose a leader, share the work out and watch each other.
//
// Kafka holds the cluster's narrative, in the compacted one-partition topic
// <application.id>-cluster:
//   member/<node id>  -> the node's announcement (JSON: CAF and HTTP endpoints,
//                        incarnation, topology fingerprint); a tombstone when
//                        the node leaves cleanly
//   assignment        -> the latest assignment (JSON, assignor.hpp), with its
//                        generation and the leader that published it
// Every node reads the topic from the start (read_committed) on a thread of
// its own and connects to every announced node over CAF's io middleman. The
// coordinators monitor each other; heartbeats and a connection timeout make
// a frozen node look dead in about cluster.timeout.ms, a killed one at once.
// A node that loses a peer tries once to reconnect (bounded by
// cluster.timeout.ms) before it counts the peer as gone.
//
// Leadership is a Kafka lease: the leader is the node with the smallest id
// among those a node can reach, and it must hold the transactional.id
// <application.id>.cluster.leader, taken with init_transactions (which
// fences every earlier holder). Assignments are written in transactions of
// that producer, so a deposed or frozen leader can never publish again:
// generations in the log only ever come from the current lease holder, who
// read the log to its end after taking the lease. (A Kafka consumer group
// would also elect a leader, but it learns of a dead member only after
// session.timeout.ms — at least 6 s on a default broker — and a dead leader
// would then stall every failover.)
//
// The leader recomputes the assignment when members join, leave or die and
// when standby lags change (warm-ups), and publishes it when it differs.
// Before it publishes an assignment that takes tasks from a node that is not
// a member any more, it fences that node's transactional.id (exactly_once),
// so the node — dead, frozen or cut off — can never commit again, and the
// new owners may start at once. A task moving between live nodes is handed
// off: the old owner commits and releases it, then tells the others
// (released, with the generation it had applied), and the new owner only
// then starts it. A node that was to take a unit over but saw it move on
// before its old owner released it is not clear of the unit either: it
// passes the release on only once it got it itself, so a chain of quick
// reassignments never lets two nodes run one unit.

#include <caf/fwd.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "weft/cluster/assignor.hpp"
#include "weft/status.hpp"

namespace weft::detail {

struct node_context;

/// A node's announcement.
struct member_info {
  std::string id;
  std::string host; ///< CAF endpoint
  uint16_t port = 0;
  std::string http;        ///< host:port of its HTTP endpoint, or empty
  int64_t incarnation = 0; ///< changes at every start and rejoin
  std::string topology;    ///< fingerprint of the node's units
};

/// The answer to a state query, as it crosses the wire.
struct query_answer {
  int32_t code = 0; ///< 0: ok, else a weft::errc
  bool found = false;
  std::string value;
  std::string error;
};

/// What the membership needs from its node (called on the coordinator's
/// thread: keep them short and non-blocking, except local_query).
struct cluster_hooks {
  /// A new assignment generation was read from the log.
  std::function<void(std::shared_ptr<const cluster::assignment>)> on_assignment;
  /// `from` does not run `unit` and will not without a new handoff, as of
  /// its generation `generation`.
  std::function<void(size_t unit, const std::string& from, int64_t generation)>
      on_released;
  /// This process was frozen longer than cluster.timeout.ms: drop every
  /// unit (they were moved and this node fenced) and call rejoin().
  std::function<void()> on_frozen;
  /// A member left or died (this node may wait for its release).
  std::function<void(const std::string& node)> on_member_lost;
  /// This node's status for the cluster view: JSON object with "active" and
  /// "standby" maps of unit -> lag.
  std::function<std::string()> status_json;
  /// Standby lag per unit held here (for the leader's warm-up decisions).
  std::function<std::map<size_t, int64_t>()> standby_lags;
  /// Answers a query from this node's own state.
  std::function<query_answer(const std::string& store, const std::string& key,
                             int64_t max_lag)>
      local_query;
};

class cluster_member {
 public:
  /// `stateful` and `unit_names` (for the cluster view) per unit.
  cluster_member(node_context* ctx, member_info self, std::vector<bool> stateful,
                 std::vector<std::string> unit_names, cluster_hooks hooks);
  ~cluster_member();

  /// Creates the cluster topic, reads it to its end, publishes this node's
  /// coordinator on cluster.port, announces the node and starts watching.
  /// `sys` must have the io middleman loaded and outlive this object.
  status start(caf::actor_system& sys, int timeout_ms);

  /// Leaves cleanly: tells the peers, removes the announcement, stops.
  void leave(int timeout_ms);

  /// The latest assignment read from the log (null before the first).
  std::shared_ptr<const cluster::assignment> current() const;

  const member_info& self() const;

  /// Whether `node` is connected (a live member in this node's view).
  bool connected(const std::string& node) const;

  /// Asks `node` for a key (blocking, at most timeout_ms).
  query_answer remote_get(const std::string& node, const std::string& store,
                          const std::string& key, int64_t max_lag, int timeout_ms);

  /// Tells every peer that this node is clear of `units` (does not run them,
  /// everything it did with them committed) as of `generation`.
  void released(const std::vector<size_t>& units, int64_t generation);

  /// After this node was fenced: announce a new incarnation and rejoin.
  void rejoin();

  /// The cluster view (JSON): members, assignment, per-unit lags.
  std::string view_json() const;

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

} // namespace weft::detail
