#pragma once
// The data plane's actors and the messages between them: one typed interface
// per role (the control plane's are in protocol.hpp). Internal to weft;
// include only from actor .cpp files and the headers that spawn these actors.
//
// Who sends what (each message is documented at its receiver below):
//
//   partition actor ◄── wake (librdkafka's thread), ack (tasks),
//                       restored, marker, stop (supervisor), check (itself)
//   task actor      ◄── batch, input, marker (partition actors),
//                       restored (the restore thread), marker, committed,
//                       tick, halt, final, stop (supervisor), idle, retry (itself)
//   supervisor      ◄── aligned, offsets, abort, failed, restored (tasks),
//                       drained (partition actors), add, stop, final (task
//                       manager), tick, timeout (itself)
//   task manager    ◄── alarm, replan (supervisor; protocol.hpp)
//
// Timers and wake-ups are self-sends and part of the interface like the rest:
// the type system rejects any message sent to an actor that does not take it.
// Records travel as a batch_ptr shared by every task a partition feeds, never
// copied; the in-band markers rely on CAF keeping the order of the messages
// from one sender.

#include <caf/all.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "weft/kafka/consumer.hpp"
#include "weft/protocol.hpp"
#include "weft/types.hpp"

namespace weft {

/// topic_partition as a message element (drained, partition_offsets).
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, topic_partition& x) {
  return f(x.topic, x.partition);
}

} // namespace weft

namespace weft::detail {

// -- payloads ------------------------------------------------------------------

/// Records a partition actor hands to its tasks: one batch, read-only, shared
/// by every task the partition feeds.
using batch_ptr = std::shared_ptr<const kafka::message_batch>;

/// Next offsets to consume that a task may commit, per input topic (the task's
/// partition number is the same for every topic it reads).
using task_offsets = std::vector<std::pair<std::string, weft::offset>>;

/// Next offsets to consume per partition.
using partition_offsets = std::vector<std::pair<topic_partition, weft::offset>>;

/// What a partition actor knows of its partition's records that it has not
/// handed to a task yet: sent with each batch and, when it changes between
/// batches, as (input, state). A task reading several partitions decides
/// from it whether to wait for an empty one (max.task.idle.ms).
enum class input_state : uint8_t {
  unknown = 0, ///< nothing known yet
  behind = 1,  ///< records may be on the broker, not fetched yet
  at_end = 2,  ///< everything on the broker was handed on
  /// Out of credit while this task took all it was sent: other tasks reading
  /// the partition hold its buffer, so nothing comes until they move on.
  starved = 3,
};

// -- atoms -------------------------------------------------------------------

using wake_atom = caf::atom_constant<caf::atom("wake")>;
using batch_atom = caf::atom_constant<caf::atom("batch")>;
using ack_atom = caf::atom_constant<caf::atom("ack")>;
using check_atom = caf::atom_constant<caf::atom("check")>;
using retry_atom = caf::atom_constant<caf::atom("retry")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using offsets_atom = caf::atom_constant<caf::atom("offsets")>;
using stop_atom = caf::atom_constant<caf::atom("stop")>;
using drained_atom = caf::atom_constant<caf::atom("drained")>;
using failed_atom = caf::atom_constant<caf::atom("failed")>;
using final_atom = caf::atom_constant<caf::atom("final")>;
using restored_atom = caf::atom_constant<caf::atom("restored")>;
using input_atom = caf::atom_constant<caf::atom("input")>;
using idle_atom = caf::atom_constant<caf::atom("idle")>;
using timer_atom = caf::atom_constant<caf::atom("timer")>;
// Exactly-once epochs (supervisor.hpp explains the protocol).
using marker_atom = caf::atom_constant<caf::atom("marker")>;
using aligned_atom = caf::atom_constant<caf::atom("aligned")>;
using committed_atom = caf::atom_constant<caf::atom("committed")>;
using abort_atom = caf::atom_constant<caf::atom("abort")>;
using timeout_atom = caf::atom_constant<caf::atom("timeout")>;
using halt_atom = caf::atom_constant<caf::atom("halt")>;
using release_atom = caf::atom_constant<caf::atom("release")>;
using settle_atom = caf::atom_constant<caf::atom("settle")>;
using park_atom = cluster::park_atom;

// -- interfaces ----------------------------------------------------------------

/// The partition actor (partition_actor.hpp): feeds one input partition's
/// records to the tasks that read it, by credit.
using partition_actor = caf::typed_actor<
    // wake: the partition's fetch queue became non-empty — from librdkafka's
    // thread (anon_send through a weak handle), and from the actor itself
    // once at start. Drains the queue into batches while credit lasts.
    caf::reacts_to<wake_atom>,
    // (ack, batch id): from a task the partition feeds, once it handled the
    // batch (or, stopping, hands it back unhandled). The last ack of a batch
    // returns its credit: resumes a paused partition at half the credit,
    // drains again; stopping, reports drained once nothing is in flight.
    caf::reacts_to<ack_atom, uint64_t>,
    // check: its own timer, 100 ms after the credit ran out. Pauses the
    // partition if no task acked since (the tasks are slower than the input).
    caf::reacts_to<check_atom>,
    // restored: from the supervisor under exactly_once, once no shard
    // restores, between two epochs. An actor spawned held starts feeding.
    caf::reacts_to<restored_atom>,
    // (marker, epoch): from the supervisor under exactly_once as an epoch
    // starts, unless the partition feeds a single task that takes its
    // markers directly. Forwarded in-band to every task as (marker, epoch,
    // topic, next offset).
    caf::reacts_to<marker_atom, weft::epoch>,
    // stop: from the supervisor as the node stops. Fetches nothing more;
    // (drained, partition) to the supervisor once nothing is in flight.
    caf::reacts_to<stop_atom>>;

/// The task actor (task_actor.hpp): runs one (service, partition)'s handler.
using task_actor = caf::typed_actor<
    // (batch, records, batch id, partition actor, input_state): from a
    // partition actor. Queued and handled in offset order (several inputs:
    // in timestamp order); (ack, batch id) to that partition actor once done.
    caf::reacts_to<batch_atom, batch_ptr, uint64_t, partition_actor, input_state>,
    // (input, input_state): from a partition actor (the sender) when what it
    // knows of its records changes between batches. A task with several
    // inputs decides again whether to wait for that one.
    caf::reacts_to<input_atom, input_state>,
    // idle: its own timer, when the wait for an empty input ends
    // (max.task.idle.ms, or the fetch bound). Runs the queued input again.
    caf::reacts_to<idle_atom>,
    // retry: its own timer, 1 ms after the producer's queue was full. Hands
    // over what the producer refused, then goes on with the input.
    caf::reacts_to<retry_atom>,
    // timer: to itself when durable timers are due (timers.hpp). Fires a
    // bounded round of them and, if more are due, sends itself another, so
    // input batches queued meanwhile go in between.
    caf::reacts_to<timer_atom>,
    // (restored, error): from the restore thread (anon_send through a weak
    // handle) once the task's shard is restored — error empty — or failed.
    // Tells the supervisor (restored, task index) and starts on its input.
    caf::reacts_to<restored_atom, std::string>,
    // restored: from the supervisor when the task takes part in epochs (it
    // was fed, between two epochs). exactly_once: until then it fires no
    // timer and punctuates nothing — effects outside the epochs' alignment
    // would land in a transaction that does not hold the state changes
    // that go with them.
    caf::reacts_to<restored_atom>,
    // (marker, epoch, topic, next offset): exactly_once, in-band from a
    // partition actor (the sender), after the batches before the cut. The
    // source's later input is held; once every source's marker is reached,
    // (aligned, ...) to the supervisor.
    caf::reacts_to<marker_atom, weft::epoch, std::string, weft::offset>,
    // (marker, epoch): exactly_once, urgent from the supervisor to a task
    // with direct markers. Cuts where the task is and answers (aligned, ...).
    caf::reacts_to<marker_atom, weft::epoch>,
    // (committed, epoch, next open): exactly_once, urgent from the supervisor
    // once the epoch's transaction committed. Writes the shard's sealed epoch
    // to RocksDB; with `next open` (the next transaction has begun) hands
    // what the task produced working ahead to the producer and goes on with
    // its input. Without (the node's final epoch, a task handed off) drops
    // what it holds and produces nothing more. The final epoch's and a hand
    // off's are requests (answered once the state is written).
    caf::reacts_to<committed_atom, weft::epoch, bool>,
    // tick: from the supervisor every commit.interval.ms to the tasks taking
    // part. Wall-clock punctuation; at_least_once, also answers (offsets,
    // task index, offsets) after flushing the stores.
    caf::reacts_to<tick_atom>,
    // halt: request from the supervisor before it aborts the transaction
    // (roll-back, failure). The task produces nothing more; answers true
    // once outside its handler.
    caf::replies_to<halt_atom>::with<bool>,
    // (final, flush): request from the supervisor while the node stops
    // (at_least_once). Flushes the stores if `flush`; answers the offsets
    // that are safe to commit.
    caf::replies_to<final_atom, bool>::with<task_offsets>,
    // settle: request from the supervisor while the task leaves the node
    // (at_least_once release, after its input drained). Flushes the stores
    // and answers whether everything it handled is in Kafka (nothing in
    // flight: its offsets are final), with the offsets safe to commit.
    caf::replies_to<settle_atom>::with<bool, task_offsets>,
    // park: bad.record.policy=park, its own timer (an automatic retry is
    // due) or a nudge to go on replaying a released key's held records.
    caf::reacts_to<park_atom>,
    // (park, key id, action): an operator's retry, skip or drop of a parked
    // key (parked_keys.hpp), from the node endpoint or the query server.
    // Answers at once (JSON with the HTTP status in the value); the release
    // runs in the task's next open epoch.
    caf::replies_to<park_atom, std::string, std::string>::with<cluster::query_answer>,
    // stop: from the supervisor as the node stops. Waits for no input any
    // longer; a task that cannot handle its input (restoring, failed) acks
    // it back unhandled, so the partition actors drain.
    caf::reacts_to<stop_atom>>;

/// The supervisor (supervisor.hpp): runs the node's tasks and partition
/// actors, commits, rolls back, stops.
using supervisor_actor = caf::typed_actor<
    // tick: its own timer, every commit.interval.ms. Commits what the tasks
    // reported (at_least_once) or starts an epoch (exactly_once), ticks the
    // tasks taking part.
    caf::reacts_to<tick_atom>,
    // (aligned, task index, epoch, offsets): exactly_once, from a task (the
    // sender, checked against the index) that reached every source's marker
    // of the epoch; the offsets are those at the markers. With every task
    // aligned it commits the transaction.
    caf::reacts_to<aligned_atom, size_t, weft::epoch, task_offsets>,
    // (timeout, epoch): its own timer, epoch.timeout.ms after the epoch
    // started. Rolls back if the epoch is still open.
    caf::reacts_to<timeout_atom, weft::epoch>,
    // (abort, why): exactly_once, from a task whose handler threw after it
    // had effects. Rolls the node back to the last committed epoch.
    caf::reacts_to<abort_atom, std::string>,
    // (restored, task index): from a task whose shard is restored. With no
    // shard restoring, releases the held partition actors (between epochs).
    caf::reacts_to<restored_atom, size_t>,
    // (add, plan, version): request from the task manager (protocol.hpp).
    // Spawns the added units' tasks and partition actors; answers true.
    caf::replies_to<add_atom, plan_ptr, uint64_t>::with<bool>,
    // (release, plan): request from the task manager: the plan's tasks (and
    // the partitions feeding only them) leave while the others run on.
    // exactly_once: a leaving task that took part in epochs goes once an
    // epoch it was cut in committed (its last state and offsets are in that
    // transaction); one that never did goes at once. at_least_once: the
    // leaving partitions stop and drain, the leaving tasks settle (stores
    // flushed, everything produced acknowledged), then go; the answer carries
    // their final offsets, which the task manager commits synchronously
    // before it reports the units released. Answers (true, offsets) once
    // every leaving actor is down (its shard closed), false if it cannot (a
    // roll-back, a failure or a stop in progress; at_least_once, a partition
    // shared with a staying task or no settling within the bound): the task
    // manager then restarts the supervisor instead.
    caf::replies_to<release_atom, plan_ptr>::with<bool, partition_offsets>,
    // settle: its own timer during an at_least_once release: asks the
    // leaving tasks again whether they settled, or gives up at the bound.
    caf::reacts_to<settle_atom>,
    // (offsets, task index, offsets): at_least_once, a task's answer to a
    // tick. Recorded for the next commit.
    caf::reacts_to<offsets_atom, size_t, task_offsets>,
    // (failed, why): a task's fatal error. Alarms the task manager; under
    // exactly_once rolls back (clustered) or aborts and stops first.
    caf::reacts_to<failed_atom, std::string>,
    // stop: request from the task manager. Stops the partition actors and
    // tasks; answers once in-flight input is handled (at_least_once) or the
    // final epoch committed (exactly_once), at once after a failure.
    caf::reacts_to<stop_atom>,
    // (drained, partition): from a stopping partition actor with nothing
    // in flight. at_least_once: the last one answers the stop request.
    caf::reacts_to<drained_atom, topic_partition>,
    // (final, flush): request from the task manager after the stop
    // (at_least_once). Asks every task (final, flush); answers the offsets
    // every task of a partition agrees to commit.
    caf::replies_to<final_atom, bool>::with<partition_offsets>>;

} // namespace weft::detail

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(weft::detail::batch_ptr)
