#pragma once
// The task actor: one per (service, input partition). Runs the service's
// handler on each record in offset order, hands produced records to the
// node's producer without blocking, applies the bad-record policy, and tracks
// which input offsets may be committed (see delivery_tracker.hpp).
//
// Timestamp order. A task with several input partitions (`sources` > 1:
// streams, tables, repartitions) keeps one queue per partition and takes
// next the buffered record with the smallest timestamp (equal timestamps:
// table inputs first, then declaration order), as Kafka Streams does. When a
// partition has nothing buffered it waits, going by the partition actor's
// input_state (data_protocol.hpp): for records still on the broker (behind, or
// not heard from yet) until they come (at most 30 s, a liveness bound),
// for a partition at its end (or starved by another task) up to
// max.task.idle.ms; then it processes ahead of it, once counted in
// node_counters::enforced_processing. max.task.idle.ms=-1 never waits;
// stopping never waits. One partition takes a plain queue: no cost.
//
// Stream time, the largest timestamp handled, is written into the service's
// stream-time store at every commit point and read back after the restore.
//
// Messages (data_protocol.hpp, task_actor): (batch, records, id, partition
// actor, input_state) -> (ack, id) to the partition actor once the batch is
// handled; (input, input_state) from a partition actor; tick from the
// supervisor -> (offsets, task index, next offsets) back; fatal errors ->
// (failed, text).
// If the producer's queue is full the task keeps the records it could not
// hand over, stops taking input, and retries a millisecond later: the
// partition actor runs out of credit and pauses, so nothing piles up.
//
// Under exactly_once the task also takes snapshot markers (marker, epoch,
// topic, next offset) from each of its `sources` partition actors: input of a
// source after its marker is held; when every source's marker is reached the
// task flushes its caches and answers (aligned, task, epoch, offsets); on
// (committed, epoch) it commits its shard's epoch-buffered writes and goes on
// with the held input. With direct_markers (each of its partitions feeds
// only this task) the supervisor sends (marker, epoch) straight to the task,
// urgent, and the task cuts where it is: its offsets are those after the
// records it handled. A handler that throws makes it ask for (abort, why)
// instead of applying the bad-record policy (see supervisor.hpp).

#include <cstddef>

#include "weft/data_protocol.hpp"

namespace weft::detail {

struct node_context;

/// Spawns the task of (service `service_index`, `partition`), number
/// `task_index` of its supervisor, fed by `sources` partition actors.
task_actor spawn_task_actor(caf::actor_system& sys, node_context* ctx,
                            size_t service_index, int32_t partition, size_t task_index,
                            size_t sources, bool direct_markers,
                            supervisor_actor supervisor);

} // namespace weft::detail
