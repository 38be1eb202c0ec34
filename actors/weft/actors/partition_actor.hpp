#pragma once
// The partition actor: owns the fetch queue of one assigned input partition
// and feeds its records, in offset order, to the task of every service that
// reads the partition.
//
// Flow control is by credit: at most buffered.records.per.partition records
// are in flight to the tasks. When the credit runs out the partition is
// paused, so librdkafka stops fetching and memory stays bounded however slow
// the services are; it resumes once half the credit is back. The actor never
// blocks: librdkafka wakes it when the queue becomes non-empty and it drains
// with a zero timeout.
//
// End of partition: each batch carries an input_state (data_protocol.hpp) —
// at_end when the queue was drained to the partition's known end
// (partition_queue::at_end), else behind — and a change between batches is
// sent as (input, state): the partition reached its end, or (several tasks)
// a task took everything it was sent while others hold the credit, so
// nothing comes to it until they move on (starved). A task reading several
// partitions decides by it whether to wait for an empty one.
//
// Messages (data_protocol.hpp, partition_actor): wake (from librdkafka),
// (ack, batch id) from tasks, stop from the supervisor, answered by (drained,
// partition) once nothing is in flight. Exactly-once: a partition actor
// spawned with feeding=false fetches nothing until (restored) from the
// supervisor; (marker, epoch) is forwarded to every task in-band as (marker,
// epoch, topic, next offset); after stop it stays for the final epoch's
// marker.

#include <memory>
#include <vector>

#include "weft/data_protocol.hpp"

namespace weft::detail {

struct node_context;

/// Spawns the partition actor of `queue`, feeding `tasks` and reporting to
/// `supervisor`; it holds `queue` (and switches its wake-up callback off when
/// it ends).
partition_actor spawn_partition_actor(caf::actor_system& sys, node_context* ctx,
                                      std::shared_ptr<kafka::partition_queue> queue,
                                      std::vector<task_actor> tasks,
                                      supervisor_actor supervisor, bool feeding = true);

} // namespace weft::detail
