#pragma once
// The rebalancer: runs this node's rebalance_logic (rebalance_logic.hpp: what
// this node runs, given the assignments and the other nodes' statuses) as an
// actor. It feeds the logic every generation from the cluster log, the
// peers' statuses, alarms (a fenced producer, a freeze) and the task
// manager's answers, and carries out the logic's commands on the task
// manager (bounded requests). After every event it sends this node's status
// — the logic's, with the lags of its tasks and standby copies — to the peer
// links, which gossip it. After a drop it gives the node a new incarnation
// and tells the coordinator and the peer links.
//
// Internal to weft.

#include <caf/fwd.hpp>

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "weft/cluster/cluster_types.hpp"

namespace weft::cluster {

struct rebalancer_settings {
  std::string self;
  int64_t incarnation = 0;
  std::vector<bool> stateful; ///< per unit
  /// Lags per unit held here: (standby copies, running units); -1 unknown.
  /// Called on the rebalancer's thread: must not block.
  std::function<std::pair<std::map<unit_id, int64_t>, std::map<unit_id, int64_t>>()> lags;
  int task_timeout_ms = 120000; ///< bound on one task-manager command
};

/// `task_manager`, `peer_links` and `coordinator` are the node's
/// task_manager_actor, peer_links_actor and coordinator_actor. Returns a
/// rebalancer_actor.
caf::actor spawn_rebalancer(caf::actor_system& sys, rebalancer_settings settings,
                            caf::actor task_manager, caf::actor peer_links,
                            caf::actor coordinator);

} // namespace weft::cluster
