#pragma once
// The messages between a node's actors (CAF atoms and payload types).
// Internal to weft; include only from actor implementation files.

#include <caf/all.hpp>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "weft/kafka/consumer.hpp"

namespace weft::detail {

using batch_ptr = std::shared_ptr<const kafka::message_batch>;

/// Next offsets to consume that a task may commit: (topic, offset) pairs.
using task_offsets = std::vector<std::pair<std::string, int64_t>>;

/// Next offsets to consume per partition.
using partition_offsets = std::vector<std::pair<topic_partition, weft::offset>>;

using wake_atom = caf::atom_constant<caf::atom("wake")>;         // data arrived
using batch_atom = caf::atom_constant<caf::atom("batch")>;       // records to a task
using ack_atom = caf::atom_constant<caf::atom("ack")>;           // task done with a batch
using check_atom = caf::atom_constant<caf::atom("check")>;       // stalled?
using retry_atom = caf::atom_constant<caf::atom("retry")>;       // producer had room?
using tick_atom = caf::atom_constant<caf::atom("tick")>;         // commit interval
using offsets_atom = caf::atom_constant<caf::atom("offsets")>;   // committable offsets
using stop_atom = caf::atom_constant<caf::atom("stop")>;         // stop fetching
using drained_atom = caf::atom_constant<caf::atom("drained")>;   // nothing in flight
using failed_atom = caf::atom_constant<caf::atom("failed")>;     // fatal task error
using final_atom = caf::atom_constant<caf::atom("final")>;       // final offsets
using restored_atom = caf::atom_constant<caf::atom("restored")>; // shard ready
using input_atom = caf::atom_constant<caf::atom("input")>;       // partition's state
using idle_atom = caf::atom_constant<caf::atom("idle")>;         // a wait may be over

/// What a partition actor knows of its partition's records that it has not
/// handed to a task yet: sent with each batch and, when it changes between
/// batches, as (input, state). A task reading several partitions decides
/// from it whether to wait for an empty one (max.task.idle.ms).
namespace input_state {
constexpr uint8_t unknown = 0; ///< nothing known yet
constexpr uint8_t behind = 1;  ///< records may be on the broker, not fetched yet
constexpr uint8_t at_end = 2;  ///< everything on the broker was handed on
/// Out of credit while this task took all it was sent: other tasks reading
/// the partition hold its buffer, so nothing comes until they move on.
constexpr uint8_t starved = 3;
} // namespace input_state

// Exactly-once epochs (supervisor.hpp explains the protocol).
using marker_atom = caf::atom_constant<caf::atom("marker")>;       // snapshot marker
using aligned_atom = caf::atom_constant<caf::atom("aligned")>;     // task reached it
using committed_atom = caf::atom_constant<caf::atom("committed")>; // epoch committed
using abort_atom = caf::atom_constant<caf::atom("abort")>;         // abort the epoch
using timeout_atom = caf::atom_constant<caf::atom("timeout")>;     // epoch too slow
using grow_atom = caf::atom_constant<caf::atom("grow")>;           // units were added
using halt_atom = caf::atom_constant<caf::atom("halt")>;           // produce no more

} // namespace weft::detail

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(weft::detail::batch_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(weft::detail::task_offsets)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(weft::detail::partition_offsets)
