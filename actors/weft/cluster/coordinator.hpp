#pragma once
// The coordinator: runs this node's membership_logic (membership_logic.hpp:
// who leads, when to take the lease, whom to fence, what to publish) as an
// actor. It feeds the logic the cluster log, the peer links' events, the
// statuses, a tick every 200 ms and the lease keeper's answers, and carries
// out the logic's commands on the lease keeper (bounded requests). It never
// blocks. It also serves the cluster view (GET /cluster) and, after a
// rejoin, announces the node's new incarnation.
//
// Internal to weft.

#include <caf/fwd.hpp>

#include <string>
#include <vector>

#include "weft/cluster/cluster_types.hpp"

namespace weft::cluster {

struct coordinator_settings {
  member_record self;
  std::vector<bool> stateful;          ///< per unit
  std::vector<std::string> unit_names; ///< per unit, for the view
  int num_standbys = 1;
  int64_t acceptable_lag = 10000;
  bool exactly_once = false;
  int timeout_ms = 1000; ///< cluster.timeout.ms
};

/// `lease_keeper` is a lease_keeper_actor. Returns a coordinator_actor.
/// The decision logic's log sink in a node: each line to spdlog at its level
/// (the coordinator's and the rebalancer's logic both log through it).
void to_spdlog(log_level level, const std::string& line);

caf::actor spawn_coordinator(caf::actor_system& sys, coordinator_settings settings,
                             caf::actor lease_keeper);

} // namespace weft::cluster
