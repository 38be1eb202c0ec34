#pragma once
// membership_logic: what a node's coordinator decides — who leads, when to
// take the leader lease, which dead nodes to fence, which assignment to
// publish — as a deterministic state machine with no clock, thread, actor or
// Kafka client of its own.
//
// Its shell (coordinator.cpp) feeds it events (the cluster log read, peers up
// and down, statuses, ticks, the results of the lease keeper's Kafka calls)
// and carries out the commands it returns (take or drop the lease, fence a
// node, publish an assignment). The deterministic simulation
// (tests/sim/cluster_sim.cpp) drives the very same class against a simulated
// clock, network and log.
//
// The rules:
// - The leader is the node with the smallest id among the live members this
//   node sees (itself and the connected peers running the same topology),
//   once it holds the lease: the transactional id <application.id>.cluster.
//   leader, taken with init_transactions, which fences every earlier holder.
//   It acts only after reading the log to the end the lease call saw, so it
//   knows every generation earlier leaders published.
// - No decision in a quiet period after start and after a freeze: nodes
//   starting together first see each other.
// - The leader publishes assign() of the live members whenever it differs
//   from the latest generation in the log. Under exactly_once it first fences
//   (takes the transactional.id of) every node that the latest generation
//   names as a member and the new one leaves out, so such a node — dead,
//   frozen or cut off — can never commit again. Nodes rely on that: a node
//   starts a unit once every *member* of its assignment is clear of it.
// - Generation numbers only grow: max(latest in the log, last published) + 1,
//   so no number is published twice. A publish is followed by a bounded wait
//   for the generation to come back from the log before the next decision.
// - Every call to Kafka has a result event; a failure is logged and retried
//   after a back-off (growing to retry_max_ms), never waited on silently.
//   A lost lease (a publish that finds the lease fenced) steps down.

#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "weft/cluster/assignor.hpp"
#include "weft/cluster/cluster_types.hpp"

namespace weft::cluster {

struct membership_settings {
  member_record self;
  std::vector<bool> stateful; ///< per unit
  int num_standbys = 1;
  int64_t acceptable_lag = 10000;
  bool exactly_once = false;
  time_ms quiet_ms = 1000;     ///< no decision this long after start or a freeze
  time_ms readback_ms = 5000;  ///< bound on a published generation's way back
  time_ms retry_min_ms = 50;   ///< first back-off after a failed Kafka call
  time_ms retry_max_ms = 2000; ///< back-offs double up to this
  log_sink log;                ///< where decisions are logged (may be empty)
};

/// A command for the shell. Each one is answered by the matching result
/// event (lease_taken/lease_failed, fence_done/fence_failed,
/// publish_done/publish_failed); drop_lease has none.
struct membership_command {
  enum class kind { claim_lease, drop_lease, fence, publish };
  kind what;
  std::string node;       ///< fence: the node whose transactional.id to take
  assignment assignment_; ///< publish: generation and leader filled in
};

class membership_logic {
 public:
  explicit membership_logic(membership_settings s);

  // -- events -----------------------------------------------------------------

  /// The node has read the log to its end and announced itself.
  void start(time_ms now);
  /// The log reader applied records: the announced members, the assignment
  /// generations read since the last call (in log order), and the reader's
  /// position (next offset).
  void log_read(const std::map<std::string, member_record>& announced,
                const std::vector<assignment>& fresh, int64_t position, time_ms now);
  void peer_up(const member_record& peer, time_ms now);
  void peer_down(const std::string& id, time_ms now);
  /// A status of a peer, or this node's own.
  void status(const node_status& s, time_ms now);
  void tick(time_ms now);
  /// The lease is ours; the log ended at `log_end` when it was taken.
  void lease_taken(int64_t log_end, time_ms now);
  void lease_failed(const std::string& why, time_ms now);
  void fence_done(const std::string& node, time_ms now);
  void fence_failed(const std::string& node, const std::string& why, time_ms now);
  void publish_done(int64_t generation, time_ms now);
  /// `lease_lost`: the lease producer is fenced (another node leads now).
  void publish_failed(int64_t generation, const std::string& why, bool lease_lost,
                      time_ms now);
  /// This process was stalled longer than cluster.timeout.ms: the others
  /// may have moved on; step down and decide nothing for a quiet period.
  void frozen(time_ms now);
  /// The node dropped its tasks and came back as a new incarnation (its
  /// producer taken anew): assignments must name the new one. It decides
  /// nothing for a quiet period while its peers reconnect to it.
  void rejoined(int64_t incarnation, time_ms now);

  /// The commands decided since the last call.
  std::vector<membership_command> take_commands();

  // -- state, for the shell's view and the simulation's checks ----------------

  enum class role { follower, claiming, syncing, leader };
  role current_role() const { return role_; }
  bool leads() const { return role_ == role::leader; }
  /// The live members as this node sees them (itself included), sorted.
  std::vector<std::string> live_members() const;
  const std::optional<assignment>& latest() const { return latest_; }
  const std::map<std::string, node_status>& statuses() const { return statuses_; }
  const std::map<std::string, member_record>& peers() const { return connected_; }
  const std::map<std::string, member_record>& announced() const { return announced_; }
  const member_record& self() const { return s_.self; }

 private:
  void evaluate(time_ms now);
  void step_down(const std::string& why, time_ms now);
  time_ms backoff(int failures);
  void say(log_level level, const std::string& line);

  membership_settings s_;
  std::minstd_rand rng_;
  bool started_ = false;
  time_ms quiet_until_ = 0;
  std::map<std::string, member_record> announced_;
  std::map<std::string, member_record> connected_;
  std::map<std::string, node_status> statuses_;
  std::optional<assignment> latest_;
  int64_t log_position_ = 0;

  role role_ = role::follower;
  int64_t sync_to_ = 0; ///< syncing: the log end the lease call saw
  time_ms claim_at_ = 0;
  int claim_failures_ = 0;
  /// (node, incarnation) fenced: a fence takes the transactional.id from every
  /// producer created before it, so it covers the incarnation the latest
  /// generation names if that one started before the fence was asked for.
  std::set<std::pair<std::string, int64_t>> fenced_;
  std::map<std::string, int64_t> fencing_; ///< fence commands in flight
  std::map<std::string, std::pair<int, time_ms>> fence_retry_; ///< failures, next try
  int64_t last_published_ = 0;
  std::optional<int64_t> publishing_;                   ///< a publish in flight
  std::optional<std::pair<int64_t, time_ms>> awaiting_; ///< generation, deadline
  int publish_failures_ = 0;
  time_ms publish_at_ = 0;
  std::vector<membership_command> commands_;
};

} // namespace weft::cluster
