#pragma once
// Query routing on a clustered node: a key's store partition belongs to one
// unit, which runs on one node (the latest assignment names it). A query for
// the key is answered here when this node runs that unit, by a standby copy
// here when the caller accepts a lag, or else asked of the owner over the
// cluster connection (bounded: cluster.timeout.ms x 2, and at most
// `max_in_flight` forwarded queries at once — more are refused as
// retriable). While the unit moves the answer is errc::state_not_ready
// (retry), never a copy that is not the owner's.
//
// A range scan goes to the owners of every partition of the store at once
// (one request per owner node, each bounded like a query and counted
// against `max_in_flight`), each answering the first rows of its
// partitions; the pieces are merged in key order (scan_merge.hpp). A
// partition with no owner, an owner not reachable, or one that is not
// (yet, or any longer) running the partition makes the whole page
// errc::state_not_ready, naming the partition: never a page with a hole.
//
// The query server (an actor per node) answers the other nodes' queries and
// scans from this node's shards. Every member may be called from any thread.
//
// Internal to weft.

#include <caf/fwd.hpp>

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>

#include <vector>

#include "weft/node.hpp"
#include "weft/status.hpp"

namespace weft::detail {
struct node_context;
struct topology;
class standby_manager;
} // namespace weft::detail

namespace weft::cluster {

class peer_directory;
class cluster_log_reader;
struct query_answer;
struct scan_answer;

class query_router {
 public:
  query_router(detail::node_context* ctx, const detail::topology* topo,
               caf::actor_system* sys, const peer_directory* peers,
               const cluster_log_reader* log, detail::standby_manager* standbys,
               std::string node_id, int timeout_ms, int max_in_flight = 64);

  /// The value of `key` in `store` (see above); max_standby_lag -1: never a
  /// standby.
  result<std::optional<std::string>> get(const std::string& store, const std::string& key,
                                         int64_t max_standby_lag);

  /// Answers from this node's own shards (or a standby copy within
  /// max_standby_lag); `remote`: asked by another node.
  query_answer local(const std::string& store, const std::string& key,
                     int64_t max_standby_lag, bool remote);

  /// An operator's call (retry, skip, drop) on parked key `id` of service
  /// `service` (an index of the node's services) in `partition`: carried
  /// out by the task where that unit is active, here or forwarded to its
  /// owner (bounded as queries are). Blocks the calling thread (not an
  /// actor) for at most 2 x the cluster timeout.
  query_answer park(size_t service, int32_t partition, const std::string& id,
                    const std::string& action);

  /// The task of (service name, partition) active on this node, for the
  /// query server; an invalid address with `why` set when there is none.
  caf::actor_addr park_target(const std::string& service, int32_t partition,
                              query_answer& why) const;

  /// The first `limit` rows of kv store `store` in [from, to) (empty `to`:
  /// no end) from the owners of all its partitions (see above). Global
  /// tables are node::scan's (this node's copy).
  result<scan_page> scan(const std::string& store, const std::string& from,
                         const std::string& to, size_t limit);

  /// The first `limit` rows of partitions `parts` of `store` in [from, to),
  /// from this node's shards; each must be active here (else
  /// errc::state_not_ready naming it). `remote`: asked by another node.
  scan_answer local_scan(const std::string& store, const std::vector<int32_t>& parts,
                         const std::string& from, const std::string& to, size_t limit,
                         bool remote);

 private:
  detail::node_context* ctx_;
  const detail::topology* topo_;
  caf::actor_system* sys_;
  const peer_directory* peers_;
  const cluster_log_reader* log_;
  detail::standby_manager* standbys_;
  std::string node_id_;
  int timeout_ms_;
  int max_in_flight_;
  std::atomic<int> in_flight_{0};
};

/// Spawns the node's query server (a query_server_actor) over `router`,
/// which must outlive it.
caf::actor spawn_query_server(caf::actor_system& sys, query_router* router);

/// Asks the task of (service, partition) on this node to carry out an
/// operator's call on parked key `id`, waiting at most `timeout_ms`. From a
/// thread that is not an actor's.
query_answer ask_task_park(caf::actor_system& sys, detail::node_context* ctx,
                           size_t service, int32_t partition, const std::string& id,
                           const std::string& action, int timeout_ms);

} // namespace weft::cluster
