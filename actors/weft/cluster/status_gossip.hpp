#pragma once
// The statuses of the nodes as this node has heard them, and what it passes
// on: gossip, so that a node's status reaches every other node through any
// path that works, not only through its own connection to each.
//
// Why: a node's status is how the others learn that it is clear of a unit
// (rebalance_logic waits for it before starting the unit elsewhere). It
// used to travel only on the direct connection from that node. In a chaos
// run (issue 11) one direction of one connection went dead after a freeze
// while CAF kept the link up on both sides: n3 went on sending its status
// to n2 and none arrived, n2 kept n3's status from before the freeze, and a
// unit waited on it for good. Now every node passes on the freshest status
// it has of every other node, each stamped by its origin with a beat that
// only grows, so the newest wins whichever way it came.
//
// - A status is newer than another of the same node when its (incarnation,
//   beat) is greater; only newer ones go on to the coordinator and the
//   rebalancer, so a late copy never undoes a newer one.
// - What is passed on: each node's status that advanced within
//   relay_fresh_ms (a live node's does every status interval), never a
//   peer's own status back to it. A status that stopped advancing (its node
//   is gone, or reaches no one) stops being passed on.
// - Silence: a linked peer from which nothing has arrived directly for
//   silence_ms. If its status still advances through others, its link is
//   broken one way (warned, nothing else: this node's view stays current);
//   if not, nothing of it arrives at all and the peer is gone for this node
//   (a decision within the bound, where it used to be a silent wait).
//
// Pure: no CAF, no Kafka; the peer links feed it and carry out its answers.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "weft/cluster/cluster_types.hpp"

namespace weft::cluster {

struct gossip_settings {
  std::string self;
  /// Nothing direct from a linked peer for this long: silent.
  time_ms silence_ms = 3000;
  /// A status passed on only while it advanced within this long.
  time_ms relay_fresh_ms = 3000;
};

/// A status as it crosses between nodes: its origin's beat orders it.
struct stamped_status {
  node_status status;
  uint64_t beat = 0;
};

/// A linked peer from which nothing arrived directly for `for_ms`.
struct peer_silence {
  std::string peer;
  time_ms for_ms = 0;
  /// Whether its status still advanced through other nodes within the bound.
  bool heard_through_others = false;
};

class status_gossip {
 public:
  explicit status_gossip(gossip_settings s);

  /// The beat for this node's own status: one more at every send.
  uint64_t next_beat() { return ++beat_; }

  /// A status arrived from the peer links of node `sender` (empty when not
  /// a linked peer). Anything from a linked sender proves its direction to
  /// this node works. Returns whether the status is newer than every one
  /// known of its node (then it goes on); this node's own is never taken.
  bool take(const stamped_status& s, const std::string& sender, time_ms now);

  /// A peer connected (its silence is counted from now) or went away.
  void linked(const std::string& peer, time_ms now);
  void unlinked(const std::string& peer);
  /// A node no longer in the cluster: its status is dropped too.
  void forget(const std::string& node);
  /// This node could not listen until `now` (it was frozen, or starved):
  /// what its peers sent meanwhile waits in its mailbox, so every linked
  /// peer's silence counts from now, not from before the stall.
  void stalled(time_ms now);

  /// The statuses to pass on to `peer`: every other node's that advanced
  /// within relay_fresh_ms.
  std::vector<stamped_status> relay_to(const std::string& peer, time_ms now) const;

  /// The linked peers silent at `now`.
  std::vector<peer_silence> silent(time_ms now) const;

 private:
  struct heard {
    stamped_status latest;
    time_ms advanced_at = 0;
  };

  gossip_settings s_;
  uint64_t beat_ = 0;
  std::map<std::string, heard> heard_;
  std::map<std::string, time_ms> direct_; ///< linked peer -> last arrival from it
};

} // namespace weft::cluster
