#pragma once
// The node supervisor: spawns the task and partition actors of the node's
// assignment, commits processed offsets every commit.interval.ms, watches its
// children, and runs the stop protocol.
//
// Stop protocol: (stop) -> partition actors stop fetching and wait until
// their in-flight batches are acknowledged -> the supervisor answers the stop
// request. The node then asks (final, true): every task flushes its stores;
// flushes the producer; and asks (final, false) for the offsets that are
// now safe to commit, which it commits synchronously. After a
// fatal task error the supervisor answers stop at once: a failed task never
// acknowledges its batch, and its unprocessed input must not be committed.
//
// Exactly-once (processing.guarantee=exactly_once). The supervisor runs on a
// thread of its own (a detached actor: the transactional calls block) and
// owns the node's transaction, which is always open between epochs:
//   1. Every commit.interval.ms it starts epoch N: a snapshot marker to every
//      partition actor, which forwards it in-band to its tasks with the next
//      offset to consume.
//   2. A task holds a source's input after that source's marker; when it has
//      reached every source's marker it flushes its caches (their changelog
//      records join the transaction) and answers (aligned, N, offsets).
//   3. With every task aligned: send_offsets_to_transaction (the markers'
//      offsets), commit_transaction, begin_transaction; then (committed, N) to
//      every task, which writes its epoch-buffered state to RocksDB and goes
//      on with the held input. A crash between the Kafka commit and the state
//      write is safe: the state's checkpoint is still the previous epoch's, so
//      the restore replays the committed changelog records.
//   4. A task that asks for an abort (its handler threw), an epoch not
//      aligned within epoch.timeout.ms, or a failed commit abort the
//      transaction and roll the node back to its last committed epoch: every
//      task and partition actor is replaced (discarding buffered state and
//      held input), the input is re-assigned at the committed offsets, and
//      processing restarts; shards reopen at their committed state with no
//      wipe-and-restore.
//   5. A fenced producer (another process took the transactional.id) is
//      fatal: the node stops without committing anything else. A task that
//      fails (bad.record.policy=fail, a failed flush or delivery) stops a
//      one-node application: as in a roll-back, every task is halted and
//      the producer flushed before the transaction is aborted (an abort
//      racing a task's first records of the epoch failed with a fatal
//      INVALID_TXN_STATE), then the node stops; a restart reads the failed
//      record again. A clustered node rolls back instead (it may be fenced).
// Partition actors are held until every shard has restored, so an epoch
// never waits for a restore. Stopping runs one last epoch over everything in
// flight, then answers the stop request.
//
// Its driver is the task manager (task_manager.hpp), which owns the
// consumer's assignment: the supervisor never re-assigns input itself. It
// reports up — (alarm, why, producer fenced) when the node cannot go on, and
// (replan) after a roll-back, answered with the full plan at the committed
// offsets — and takes commands down: (add, plan, version) adds tasks.
//
// Growing (add): a clustered node that gains units and loses none does not
// restart what it runs. The task manager adds the new units' partitions to
// the consumer's assignment and sends their plan; the supervisor spawns
// their tasks and partition actors, held while their shards restore (from a
// standby's checkpoint, only the tail); the running tasks go on meanwhile.
// New tasks join the epochs between two epochs — their partitions are
// released, and they get ticks and markers, only when no epoch is open — so
// an epoch's transaction holds no output of a task that is not part of it.
// Plans carry the task manager's version: an added plan older than the full
// plan of a roll-back (which holds its units already) is dropped.
//
// Its messages and its children's are typed: data_protocol.hpp
// (supervisor_actor, task_actor, partition_actor).
//
// Exit: the supervisor quits once its children are gone (their shards
// closed), so whoever monitors it may open those shards again at once.

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "weft/data_protocol.hpp"
#include "weft/status.hpp"
#include "weft/types.hpp"

namespace weft::detail {

struct node_context;

/// Which tasks and partitions this node runs.
struct assignment_plan {
  struct task {
    size_t service; ///< index into node_context::services
    int32_t partition;
  };
  struct partition {
    topic_partition tp;
    std::shared_ptr<kafka::partition_queue> queue;
    std::vector<size_t> tasks; ///< indices into `tasks` fed by this partition
  };
  std::vector<task> tasks;
  std::vector<partition> partitions;
};

/// A task by its service and partition.
using task_key = std::pair<size_t, int32_t>;

/// Spawns the supervisor of `plan` (version `version` of the task manager's
/// plans), reporting to the task manager `manager`; detached under
/// exactly_once (the transactional calls block).
supervisor_actor spawn_supervisor(caf::actor_system& sys, node_context* ctx,
                                  std::shared_ptr<assignment_plan> plan, uint64_t version,
                                  task_manager_actor manager);

} // namespace weft::detail
