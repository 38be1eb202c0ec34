#include "weft/actors/partition_actor.hpp"

#include <unordered_map>

#include "weft/actors/node_context.hpp"
#include "weft/log.hpp"

namespace weft::detail {

namespace {

constexpr size_t max_batch = 500;
constexpr auto stall_limit = std::chrono::milliseconds(100);

struct inflight_batch {
  size_t records;
  size_t acks_left;
};

struct partition_state {
  node_context* ctx = nullptr;
  std::shared_ptr<kafka::partition_queue> queue;
  std::vector<task_actor> tasks;
  supervisor_actor supervisor;
  size_t max_credits = 0;
  size_t credits = 0;
  bool paused = false;
  bool stopping = false;
  bool check_scheduled = false;
  bool drained_sent = false;
  bool held = false; ///< exactly_once: wait for the supervisor's go
  caf::timestamp last_ack;
  uint64_t next_batch = 0;
  weft::offset next_offset{-1}; ///< after the last record handed to the tasks
  std::unordered_map<uint64_t, inflight_batch> inflight;
  /// The queue was drained to the partition's known end (input_state).
  bool at_end = false;
  /// Per task: the input_state it was last told; batches not acked yet
  /// (kept only with several tasks, where one can starve the others).
  std::vector<input_state> told;
  std::vector<uint32_t> unacked;
  static inline const char* name = "weft.partition";
  ~partition_state() {
    // The queue handle goes first: its destructor switches the partition's
    // wake-up callback off, which must not hit the next owner's handle of
    // the same librdkafka queue.
    queue.reset();
    if (ctx) ctx->live_actors.fetch_sub(1, std::memory_order_acq_rel);
  }
};

using partition_self = partition_actor::stateful_pointer<partition_state>;

void report_if_drained(partition_self self) {
  auto& st = self->state;
  if (st.stopping && st.inflight.empty() && !st.drained_sent) {
    auto& tp = st.queue->partition();
    self->send(st.supervisor, drained_atom::value, tp);
    st.drained_sent = true;
    // Under exactly_once the actor stays for the final epoch's marker; the
    // supervisor ends it.
    if (!st.ctx->exactly_once) self->quit();
  }
}

/// What task `i` should know of the records not handed to it.
input_state input_state_for(const partition_state& st, size_t i) {
  if (!st.unacked.empty() && st.credits == 0 && st.unacked[i] == 0)
    return input_state::starved;
  return st.at_end ? input_state::at_end : input_state::behind;
}

/// Tells each task a change of what it knows of this partition (a task
/// reading several partitions decides from it whether to wait for this one).
void announce(partition_self self) {
  auto& st = self->state;
  if (st.stopping) return;
  for (size_t i = 0; i < st.tasks.size(); ++i) {
    auto state = input_state_for(st, i);
    if (state == st.told[i]) continue;
    st.told[i] = state;
    self->send(st.tasks[i], input_atom::value, state);
  }
}

void drain(partition_self self) {
  auto& st = self->state;
  while (!st.stopping && !st.held && st.credits > 0) {
    auto batch = std::make_shared<kafka::message_batch>();
    status err;
    auto want = std::min(st.credits, max_batch);
    auto n = st.queue->drain(*batch, want, &err);
    // Emptied the queue: is that the partition's end? (A full batch says
    // nothing; the next round asks.)
    st.at_end = n < want && st.queue->at_end();
    if (n == 0) break;
    st.credits -= n;
    st.next_offset = batch->next_offset();
    auto id = st.next_batch++;
    st.inflight.emplace(id, inflight_batch{n, st.tasks.size()});
    batch_ptr shared = std::move(batch);
    auto me = caf::actor_cast<partition_actor>(self);
    for (size_t i = 0; i < st.tasks.size(); ++i) {
      if (!st.unacked.empty()) ++st.unacked[i];
      st.told[i] = st.at_end ? input_state::at_end : input_state::behind;
      self->send(st.tasks[i], batch_atom::value, shared, id, me, st.told[i]);
    }
  }
  announce(self);
  if (st.credits == 0 && !st.paused && !st.stopping && !st.check_scheduled) {
    st.check_scheduled = true;
    self->delayed_send(self, stall_limit, check_atom::value);
  }
}

/// Pauses the partition when its tasks have taken nothing for stall_limit
/// while data waits: they are slower than the input. Pausing makes librdkafka
/// drop what it prefetched and fetch it again on resume, so a brief dip to
/// zero credit (the normal state of a busy pipeline) must not pause.
void check_stall(partition_self self) {
  auto& st = self->state;
  st.check_scheduled = false;
  if (st.credits > 0 || st.paused || st.stopping) return;
  if (caf::make_timestamp() - st.last_ack < stall_limit) {
    st.check_scheduled = true;
    self->delayed_send(self, stall_limit, check_atom::value);
    return;
  }
  if (auto s = st.ctx->consumer->pause(st.queue->partition()); s.ok()) {
    {
      std::lock_guard<std::mutex> guard{st.ctx->paused_mu};
      st.ctx->paused.insert(st.queue->partition());
    }
    st.paused = true;
    log::debug("paused {}: its tasks took nothing for {} ms",
               to_string(st.queue->partition()), stall_limit.count());
    st.ctx->counters.pauses.fetch_add(1, std::memory_order_relaxed);
    st.ctx->counters.paused_partitions.add(st.queue->partition());
  } else {
    log::warn("{}", s.message());
  }
}

partition_actor::behavior_type partition_behavior(
    partition_self self, node_context* ctx, std::shared_ptr<kafka::partition_queue> queue,
    std::vector<task_actor> tasks, supervisor_actor supervisor, bool feeding) {
  auto& st = self->state;
  st.ctx = ctx;
  ctx->live_actors.fetch_add(1, std::memory_order_acq_rel);
  st.held = !feeding;
  st.queue = std::move(queue);
  st.tasks = std::move(tasks);
  st.supervisor = std::move(supervisor);
  st.max_credits =
      static_cast<size_t>(ctx->cfg.get_int("buffered.records.per.partition"));
  st.credits = st.max_credits;
  st.told.assign(st.tasks.size(), input_state::unknown);
  if (st.tasks.size() > 1) st.unacked.assign(st.tasks.size(), 0);
  // librdkafka calls this on one of its threads; hold the actor weakly so the
  // queue's callback does not keep the actor alive.
  caf::actor_addr weak = self->address();
  st.queue->on_ready([weak] {
    if (auto a = caf::actor_cast<partition_actor>(weak))
      caf::anon_send(a, wake_atom::value);
  });
  self->set_exit_handler([self](caf::exit_msg& msg) {
    self->state.queue->on_ready({});
    self->quit(msg.reason);
  });
  // Records may have arrived before the callback was set.
  self->send(self, wake_atom::value);
  return {
      [self](wake_atom) { drain(self); },
      [self](ack_atom, uint64_t id) {
        auto& st = self->state;
        auto i = st.inflight.find(id);
        if (i == st.inflight.end()) return;
        if (!st.unacked.empty()) {
          auto from = self->current_sender();
          for (size_t t = 0; t < st.tasks.size(); ++t)
            if (st.tasks[t].address() == from && st.unacked[t] > 0) --st.unacked[t];
        }
        if (--i->second.acks_left > 0) {
          // Another task still holds the batch: this one may now be starved.
          if (!st.unacked.empty() && st.credits == 0) announce(self);
          return;
        }
        st.last_ack = caf::make_timestamp();
        st.credits += i->second.records;
        st.inflight.erase(i);
        if (st.stopping) return report_if_drained(self);
        if (st.paused && st.credits >= st.max_credits / 2) {
          if (auto s = st.ctx->consumer->resume(st.queue->partition()); s.ok()) {
            st.paused = false;
            std::lock_guard<std::mutex> guard{st.ctx->paused_mu};
            st.ctx->paused.erase(st.queue->partition());
          } else {
            log::warn("{}", s.message());
          }
        }
        drain(self);
      },
      [self](check_atom) { check_stall(self); },
      [self](restored_atom) {
        // Every shard of the node is restored: go.
        self->state.held = false;
        drain(self);
      },
      [self](marker_atom, weft::epoch epoch) {
        // In-band: CAF keeps the order of messages from one sender, so each
        // task sees the marker after every batch sent before it.
        auto& st = self->state;
        auto& topic = st.queue->partition().topic;
        for (auto& t : st.tasks)
          self->send(t, marker_atom::value, epoch, topic, st.next_offset);
      },
      [self](stop_atom) {
        auto& st = self->state;
        st.stopping = true;
        st.queue->on_ready({});
        report_if_drained(self);
      },
  };
}

} // namespace

partition_actor spawn_partition_actor(caf::actor_system& sys, node_context* ctx,
                                      std::shared_ptr<kafka::partition_queue> queue,
                                      std::vector<task_actor> tasks,
                                      supervisor_actor supervisor, bool feeding) {
  return sys.spawn(partition_behavior, ctx, std::move(queue), std::move(tasks),
                   std::move(supervisor), feeding);
}

} // namespace weft::detail
