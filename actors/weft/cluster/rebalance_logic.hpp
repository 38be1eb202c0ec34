#pragma once
// rebalance_logic: what one node runs, given the assignments the leader
// publishes and what the other nodes say they hold — a deterministic state
// machine with no clock, thread, actor or Kafka client of its own.
//
// Its shell (rebalancer.cpp) feeds it every generation read from the cluster
// log (in order), the peers' statuses, the task manager's answers and the
// data plane's alarms (fenced producer, frozen process), and carries out its
// commands on the task manager. The deterministic simulation
// (tests/sim/cluster_sim.cpp) drives the same class.
//
// The rules:
// - A unit the assignment gives this node starts once every other member of
//   that assignment is clear of it: its status says it has taken into account
//   the generation in which the unit became this node's (or a later one) and
//   holds the unit neither running nor in an operation in progress. A member
//   that stopped the unit has committed what it did with it (its final epoch
//   is part of the stop). Nodes that are not members were fenced by the
//   leader before it left them out (exactly_once), so they can never commit
//   the unit again. No chain of releases: a unit moved A -> B -> A before
//   either started it never waits on itself.
// - A running unit the assignment takes away is stopped: when the node only
//   gains units, its running tasks go on and the new ones are added;
//   otherwise every task stops (committing) and the kept and gained ones
//   start again.
// - One task-manager operation at a time. The status reports, while one is in
//   progress, every unit it may start or stop, so no other node can take a
//   unit this node may still run.
// - A node acts only on an assignment that names its current incarnation.
//   A fenced producer or a freeze drops every task without committing and
//   re-initialises the producer (fencing whatever this node left open); the
//   node then comes back as a new incarnation and waits for an assignment
//   naming it: the leader may have fenced it and published a generation
//   without it meanwhile, and its new producer would undo that fence for any
//   older generation it acted on. A failed operation counts as fenced. A
//   failed drop is retried after a back-off; until it succeeds the node keeps
//   holding what it held.

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "weft/cluster/assignor.hpp"
#include "weft/cluster/cluster_types.hpp"

namespace weft::cluster {

struct rebalance_settings {
  std::string self;
  int64_t incarnation = 0;
  std::vector<bool> stateful; ///< per unit: has state (keeps standby copies)
  time_ms retry_min_ms = 100; ///< back-off after a failed drop, doubling
  time_ms retry_max_ms = 5000;
  log_sink log;
};

/// A command for the task manager, answered by task_done(id) (a drop by
/// dropped(id, new incarnation)) or task_failed(id, why).
struct task_command {
  enum class kind {
    run,      ///< run exactly `units` from now on
    drop,     ///< stop every task without committing; fence what is left open
    standbys, ///< keep copies of exactly `standbys`
  };
  kind what;
  uint64_t id = 0;
  std::vector<unit_id> units;
  /// run: only units are added (the running ones go on); otherwise every
  /// running task stops, committing, and `units` start again.
  bool only_add = false;
  std::vector<unit_id> standbys; ///< run and standbys: copies to keep
  int64_t generation = 0;        ///< for the log lines
};

class rebalance_logic {
 public:
  explicit rebalance_logic(rebalance_settings s);

  // -- events -----------------------------------------------------------------

  /// The cluster log was read to the end it had when the node started: act
  /// from now on. Before, a new incarnation would act on generations older
  /// than the ones its previous incarnation told the others it had seen.
  void start(time_ms now);
  /// Assignment generations read from the log (each one, in order).
  void generations(const std::vector<assignment>& fresh, time_ms now);
  /// A peer's status (this node's own is ignored).
  void status(const node_status& s, time_ms now);
  void task_done(uint64_t id, time_ms now);
  void task_failed(uint64_t id, const std::string& why, time_ms now);
  /// The node's producer is fenced or failed, or the process was frozen: no
  /// task of this node may commit any more.
  void fenced(const std::string& why, time_ms now);
  /// A drop is done: the node is a new incarnation (which the shell
  /// announces). It acts again once an assignment names that incarnation —
  /// one naming an earlier one may predate a fence against it.
  void dropped(uint64_t id, int64_t incarnation, time_ms now);
  void tick(time_ms now);

  std::vector<task_command> take_commands();

  // -- state ------------------------------------------------------------------

  /// This node's status (without lags: the shell adds them).
  node_status status() const;
  const std::set<unit_id>& running() const { return running_; }
  std::optional<int64_t> applied() const;
  /// Units assigned here that wait for another member to be clear of them,
  /// with that member (for the view and the logs).
  std::map<unit_id, std::string> waiting() const;
  bool dropping() const {
    return drop_pending_ || (op_ && op_->what == task_command::kind::drop);
  }

 private:
  void evaluate(time_ms now);
  /// Whether every other member of the current assignment is clear of `u`
  /// as of `since`; else the first member that is not.
  std::optional<std::string> blocker(unit_id u, int64_t since) const;
  void say(log_level level, const std::string& line);

  rebalance_settings s_;
  bool started_ = false;
  std::optional<assignment> target_;
  /// Per unit assigned here: the first generation of its current tenure.
  std::map<unit_id, int64_t> since_;
  std::map<std::string, node_status> peers_;
  std::set<unit_id> running_;
  std::set<unit_id> standbys_;
  bool standbys_set_ = false;
  time_ms standbys_at_ = 0; ///< a failed standby change is retried from then
  std::optional<task_command> op_;
  uint64_t next_id_ = 1;
  bool drop_pending_ = false;
  int drop_failures_ = 0;
  time_ms drop_at_ = 0;
  std::map<unit_id, std::string> waiting_; ///< logged once per wait
  std::vector<task_command> commands_;
};

} // namespace weft::cluster
