#pragma once
// The peer links: this node's connections to the other nodes of its cluster,
// published at cluster.port (CAF's io middleman).
//
// - Connects to every node announced in the cluster log (at once when one
//   appears or comes back as a new incarnation; again every few seconds while
//   it cannot be reached). Each connection is a bounded middleman connect and
//   a bounded handshake (hello: both records and query servers).
// - Monitors every connected peer: a killed peer is gone at once (the link
//   drops), a frozen one once heartbeats stop for cluster.timeout.ms.
// - Gossips this node's status to every peer on every change and every
//   500 ms, passes on every other node's fresh status (status_gossip.hpp:
//   a status reaches every node by any working path, the newest by its
//   origin's beat wins), and hands the newer ones to this node's roles.
// - A linked peer from which nothing arrives for max(3 x cluster.timeout.ms,
//   1.5 s): warned if its status still comes through others (the link is
//   broken one way), else gone for this node — a decision within a bound.
// Events go up to the coordinator (peer up, peer down, statuses — this
// node's own included) and the rebalancer (peers' statuses); nothing here
// decides anything, and no connection attempt holds up a decision.
// What a peer sends is bounded before it goes on (peer_bounds.hpp): a status
// naming more units than the application has, or an id, host or fingerprint
// longer than max_peer_text, is dropped, counted and logged (CAF 0.17.6
// itself bounds no message size; TLS keeps strangers from sending any).
//
// Internal to weft.

#include <caf/fwd.hpp>

#include <atomic>
#include <cstdint>

#include "weft/cluster/cluster_types.hpp"
#include "weft/cluster/peer_bounds.hpp"

namespace weft::cluster {

class peer_directory;

struct peer_links_settings {
  member_record self; ///< port filled later (announce): known once published
  int timeout_ms = 1000;
  peer_directory* directory = nullptr; ///< kept up to date; must outlive the actor
  bool tls = false; ///< connect through CAF's openssl module (cluster.tls.enabled)
  /// Units of this application: a peer's status naming more is refused.
  size_t max_units = 0;
  /// Counts the peers' messages dropped for their bounds (read from any
  /// thread); may be null. Must outlive the actor.
  std::atomic<uint64_t>* dropped = nullptr;
};

/// `query` is the node's query_server_actor. Returns a peer_links_actor,
/// which waits for (announce, this node, coordinator, rebalancer) before it
/// connects to anyone.
caf::actor spawn_peer_links(caf::actor_system& sys, peer_links_settings settings,
                            caf::actor query);

} // namespace weft::cluster
