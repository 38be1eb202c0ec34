#pragma once
// The lease keeper: the coordinator's blocking Kafka calls, on a thread of
// its own (a detached actor), each bounded and answered with a call_result
// (protocol.hpp, lease_keeper_actor):
//   claim          take the leader lease — the transactional id
//                  <application.id>.cluster.leader, with init_transactions
//                  (fencing every earlier holder); answers the cluster log's
//                  end offset, which the new leader reads up to first
//   drop_lease     let the lease producer go
//   fence(node)    take <application.id>-<node>, aborting its open
//                  transaction: that node can never commit again
//   publish(a)     write an assignment in a transaction of the lease; a
//                  fenced lease answers errc::kafka_fatal (another leads)
//   announce(m)    write this node's announcement (not transactional)
//
// Internal to weft.

#include <caf/fwd.hpp>

#include <string>

namespace weft::detail {
struct node_context;
}
namespace weft::cluster {

class cluster_log_reader;

/// `timeout_ms` is cluster.timeout.ms: claims and publishes are bounded by
/// ten of it, fences by thirty (a fenced node's open transaction is aborted
/// first, which the broker answers with CONCURRENT_TRANSACTIONS for a while).
/// `reader` (for the log end) must outlive the actor.
caf::actor spawn_lease_keeper(caf::actor_system& sys, detail::node_context* ctx,
                              const cluster_log_reader* reader, std::string topic,
                              int timeout_ms);

} // namespace weft::cluster
