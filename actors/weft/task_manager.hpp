#pragma once
// The task manager: runs the node's tasks as it is told (protocol.hpp,
// task_manager_actor) — by the rebalancer on a clustered node, by the node
// itself otherwise. It owns the supervisor's lifecycle, the consumer's
// assignment and the producer's re-creation, on a thread of its own (a
// detached actor: librdkafka's assignment, offset and transaction calls
// block). It never waits for another actor synchronously: a stop is a chain
// of bounded requests, and the supervisor's roll-back asks it for a plan
// meanwhile. Commands run one at a time, in order, each answered once done
// or failed; every step has a bound (shutdown.timeout.ms) and logs its
// outcome.
//
// Alarms from the data plane (a fenced producer, a failed task) go up: to the
// rebalancer on a clustered node (it drops the tasks and rejoins), else to
// the node (it stops).
//
// Internal to weft.

#include <caf/fwd.hpp>

#include <functional>
#include <string>

#include "weft/status.hpp"

namespace weft::detail {

struct node_context;
struct topology;
class standby_manager;

struct task_manager_settings {
  node_context* ctx = nullptr;
  const topology* topo = nullptr;
  standby_manager* standbys = nullptr; ///< null without a cluster
  std::string transactional_id;        ///< exactly_once: the producer's
  /// Where alarms go: `why`, and whether only the producer is fenced (a
  /// clustered node survives that). Called on the task manager's thread.
  std::function<void(const std::string& why, bool producer_fenced)> on_alarm;
};

/// Spawns the task manager (detached). Returns its task_manager_actor handle.
caf::actor spawn_task_manager(caf::actor_system& sys, task_manager_settings settings);

/// Creates the node's producer (transactional under exactly_once): delivery
/// reports go to the tasks; a fatal client error (a fenced producer) goes to
/// `on_fenced` from librdkafka's thread.
status make_producer(node_context& ctx, const std::string& transactional_id,
                     std::function<void(const std::string&)> on_fenced);

/// exactly_once: takes the transactional.id (fencing every earlier producer
/// with it and aborting its open transaction) and begins the first
/// transaction. Retries errors the broker calls retriable within timeout_ms.
status begin_first_transaction(node_context& ctx, const std::string& transactional_id,
                               int timeout_ms);

} // namespace weft::detail
