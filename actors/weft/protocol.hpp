#pragma once
// The control plane's actors and the messages between them: one typed
// interface per role. Internal to weft; include only from actor .cpp files.
//
//   cluster log reader ──log──► peer links ──peer up/down, status──► coordinator
//          │ (thread)              ▲   │                                 │ claim/fence/
//          │                       │   └──peer up/down, status──┐        │
//          publish/announce ├──log──────────────────┼─────────► coordinator      ▼ ▼
//          └──log──────────────────┼─────────► rebalancer   lease keeper (detached:
//                                  │               │  run/drop/   blocking Kafka calls)
//            local status ─────────┘               ▼  standbys
//                                           task manager (detached) ──► supervisor
//   freeze watchdog (thread) ──frozen──► coordinator, rebalancer
//   data plane alarms (fenced producer, failed task) ──► task manager ──► rebalancer
//
// Events flow up (log, peers, results, alarms), commands flow down; no role
// calls back into the one that drives it. Requests to another node and to
// the detached actors always carry a finite timeout.

#include <caf/all.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "weft/cluster/assignor.hpp"
#include "weft/cluster/cluster_types.hpp"

namespace weft::cluster {

/// What the cluster log reader applied: the announcements as they stand, the
/// assignment generations read since its last update (in log order) and its
/// position (next offset). Shared read-only by every subscriber.
struct log_update {
  std::map<std::string, member_record> announced;
  std::vector<assignment> fresh;
  int64_t position = 0;
};
using log_update_ptr = std::shared_ptr<const log_update>;

/// The answer of a blocking Kafka call made by a detached actor: ok, or an
/// error code (weft::errc) and text; `value` is the call's number (the log
/// end a lease claim saw).
struct call_result {
  int32_t code = 0;
  std::string why;
  int64_t value = 0;
  bool ok() const { return code == 0; }
};

/// The answer to a state query, as it crosses the wire between nodes.
struct query_answer {
  int32_t code = 0; ///< 0: ok, else a weft::errc
  bool found = false;
  std::string value;
  std::string error;
};

/// A node's piece of a range scan (scan_merge.hpp) over its partitions of a
/// store, as it crosses the wire: rows in key order, whether more follow,
/// or an error (code: a weft::errc).
struct scan_answer {
  int32_t code = 0;
  std::string error;
  std::vector<std::string> keys, values;
  bool more = false;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, scan_answer& x) {
  return f(x.code, x.error, x.keys, x.values, x.more);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, assignment& x) {
  return f(x.generation, x.leader, x.members, x.incarnations, x.active, x.standbys,
           x.warmup, x.previous);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, call_result& x) {
  return f(x.code, x.why, x.value);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, query_answer& x) {
  return f(x.code, x.found, x.value, x.error);
}

// -- atoms -------------------------------------------------------------------

using log_atom = caf::atom_constant<caf::atom("log")>;
using peer_up_atom = caf::atom_constant<caf::atom("peerup")>;
using peer_down_atom = caf::atom_constant<caf::atom("peerdown")>;
using status_atom = caf::atom_constant<caf::atom("status")>;
using own_status_atom = caf::atom_constant<caf::atom("ownstatus")>;
using frozen_atom = caf::atom_constant<caf::atom("frozen")>;
using rejoined_atom = caf::atom_constant<caf::atom("rejoined")>;
using tick_atom = caf::atom_constant<caf::atom("ctick")>;
using view_atom = caf::atom_constant<caf::atom("view")>;
using leave_atom = caf::atom_constant<caf::atom("leave")>;
using leaving_atom = caf::atom_constant<caf::atom("leaving")>;
using hello_atom = caf::atom_constant<caf::atom("hello")>;
using claim_atom = caf::atom_constant<caf::atom("claim")>;
using drop_lease_atom = caf::atom_constant<caf::atom("droplease")>;
using fence_atom = caf::atom_constant<caf::atom("fence")>;
using publish_atom = caf::atom_constant<caf::atom("publish")>;
using announce_atom = caf::atom_constant<caf::atom("announce")>;
using fenced_atom = caf::atom_constant<caf::atom("fenced")>;
using query_atom = caf::atom_constant<caf::atom("query")>;
using peers_atom = caf::atom_constant<caf::atom("peers")>;
using park_atom = caf::atom_constant<caf::atom("park")>;
using scan_atom = caf::atom_constant<caf::atom("scan")>;

// -- interfaces ----------------------------------------------------------------

/// Answers state queries from other nodes out of this node's shards, and
/// carries out operators' calls on parked keys of its tasks:
///   query(store, key, max standby lag)        one key
///   scan(store, partitions, from, to, limit)  the first `limit` rows of
///       those partitions in [from, to) (empty `to`: no end), each partition
///       active here, else errc::state_not_ready
///   park(service, partition, key id, action)  answered by the task itself
using query_server_actor = caf::typed_actor<
    caf::replies_to<query_atom, std::string, std::string, int64_t>::with<query_answer>,
    caf::replies_to<scan_atom, std::string, std::vector<int32_t>, std::string,
                    std::string, uint32_t>::with<scan_answer>,
    caf::replies_to<park_atom, std::string, int32_t, std::string,
                    std::string>::with<query_answer>>;

/// The peers' query servers, for query routing from any thread (written by
/// the peer links only).
class peer_directory {
 public:
  void set(const std::string& node, query_server_actor q) {
    std::lock_guard<std::mutex> guard{mu_};
    if (q)
      routes_[node] = std::move(q);
    else
      routes_.erase(node);
  }
  query_server_actor get(const std::string& node) const {
    std::lock_guard<std::mutex> guard{mu_};
    auto i = routes_.find(node);
    return i == routes_.end() ? query_server_actor{} : i->second;
  }
  void clear() {
    std::lock_guard<std::mutex> guard{mu_};
    routes_.clear();
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, query_server_actor> routes_;
};

/// Decides leadership, fencing and publishing (membership_logic).
using coordinator_actor = caf::typed_actor<
    caf::reacts_to<log_atom, log_update_ptr>, caf::reacts_to<peer_up_atom, member_record>,
    caf::reacts_to<peer_down_atom, std::string>, caf::reacts_to<status_atom, node_status>,
    caf::reacts_to<frozen_atom>, caf::reacts_to<rejoined_atom, int64_t>,
    caf::reacts_to<tick_atom>, caf::replies_to<view_atom>::with<std::string>,
    caf::replies_to<leave_atom>::with<bool>>;

/// Blocking Kafka calls of the coordinator, on a thread of their own.
using lease_keeper_actor =
    caf::typed_actor<caf::replies_to<claim_atom>::with<call_result>,
                     caf::reacts_to<drop_lease_atom>,
                     caf::replies_to<fence_atom, std::string>::with<call_result>,
                     caf::replies_to<publish_atom, assignment>::with<call_result>,
                     caf::replies_to<announce_atom, member_record>::with<call_result>>;

/// Decides what this node runs (rebalance_logic).
using rebalancer_actor = caf::typed_actor<
    caf::reacts_to<log_atom, log_update_ptr>, caf::reacts_to<status_atom, node_status>,
    caf::reacts_to<fenced_atom, std::string>, caf::reacts_to<frozen_atom>,
    caf::reacts_to<tick_atom>,
    caf::replies_to<view_atom>::with<std::map<unit_id, std::string>>>; // waiting units

/// A node's contact point for the other nodes (published at cluster.port):
/// handshakes, statuses, clean leaves. It starts with this node's record
/// (its port known once published) and whom to tell about peers
/// (announce); it takes the cluster log (whom to connect to), this node's
/// own status (to gossip), its new incarnation after a rejoin, and the
/// request to say goodbye.
using peer_links_actor = caf::typed_actor<
    caf::reacts_to<announce_atom, member_record, coordinator_actor, rebalancer_actor>,
    caf::reacts_to<log_atom, log_update_ptr>,
    caf::reacts_to<own_status_atom, node_status>, caf::reacts_to<rejoined_atom, int64_t>,
    caf::reacts_to<tick_atom>, caf::replies_to<leave_atom>::with<bool>,
    // From other nodes (the sender is the other node's peer links):
    caf::replies_to<hello_atom, member_record,
                    query_server_actor>::with<member_record, query_server_actor>,
    // A status, its origin's or passed on, with the beat its origin stamped
    // (status_gossip.hpp).
    caf::reacts_to<status_atom, node_status, uint64_t>,
    caf::reacts_to<leaving_atom, std::string>>;

} // namespace weft::cluster

namespace weft::detail {

struct assignment_plan; // supervisor.hpp
/// A plan of tasks and partitions for the supervisor (it holds the
/// partitions' fetch queues, so it never crosses a node boundary).
using plan_ptr = std::shared_ptr<assignment_plan>;

using run_atom = caf::atom_constant<caf::atom("run")>;
using drop_atom = caf::atom_constant<caf::atom("drop")>;
using standbys_atom = caf::atom_constant<caf::atom("standbys")>;
using shutdown_atom = caf::atom_constant<caf::atom("shutdown")>;
using replan_atom = caf::atom_constant<caf::atom("replan")>;
using add_atom = caf::atom_constant<caf::atom("add")>;
using alarm_atom = caf::atom_constant<caf::atom("alarm")>;
using down_timeout_atom = caf::atom_constant<caf::atom("downtmo")>;

/// Runs the node's tasks as told — by the rebalancer, or by the node itself
/// without a cluster — on a thread of its own (consumer assignments,
/// committed offsets and producer transactions block). Owns the supervisor's
/// lifecycle and the consumer's assignment:
///   run(units, only_add, standbys, generation)  run exactly `units` from
///       now on: add the new ones to the running supervisor (only_add); under
///       exactly_once hand the lost ones off (the supervisor releases their
///       tasks once an epoch committed their last state and offsets, their
///       partitions are unassigned) and add the gained ones while the rest
///       run on; otherwise, or if a release cannot be done, stop every task
///       (committing: a final epoch) and start `units` again; the generation
///       (0 without a cluster) is for the logs
///   drop                            stop every task without committing,
///       re-create the producer (taking the transactional.id: whatever this
///       node left open is aborted)
///   standbys(units)                 keep standby copies of exactly `units`
///   shutdown                        the node stops: drain and commit
/// Each is answered once done, in order. From the supervisor: replan (a
/// roll-back re-assigns the input at the committed offsets: the full plan
/// and its version) and alarm(why, producer fenced).
using task_manager_actor = caf::typed_actor<
    caf::replies_to<run_atom, std::vector<cluster::unit_id>, bool,
                    std::vector<cluster::unit_id>, int64_t>::with<cluster::call_result>,
    caf::replies_to<drop_atom>::with<cluster::call_result>,
    caf::replies_to<standbys_atom,
                    std::vector<cluster::unit_id>>::with<cluster::call_result>,
    caf::replies_to<shutdown_atom>::with<cluster::call_result>,
    caf::replies_to<replan_atom>::with<plan_ptr, uint64_t>,
    caf::reacts_to<alarm_atom, std::string, bool>,
    caf::reacts_to<down_timeout_atom, uint64_t>>; // its own timer

} // namespace weft::detail

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(weft::cluster::log_update_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(weft::detail::plan_ptr)
