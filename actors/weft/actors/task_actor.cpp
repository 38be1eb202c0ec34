#include "weft/actors/task_actor.hpp"

#include <chrono>
#include <deque>
#include <map>
#include <set>

#include "weft/actors/dead_letter.hpp"
#include "weft/actors/delivery_tracker.hpp"
#include "weft/actors/messages.hpp"
#include "weft/actors/node_context.hpp"
#include "weft/actors/restorer.hpp"
#include "weft/log.hpp"
#include "weft/state/shard.hpp"

namespace weft::detail {

namespace {

/// A batch of input, or (exactly_once) a snapshot marker from `source`.
struct pending_batch {
  batch_ptr batch;
  uint64_t id;
  caf::actor source;
  bool marker = false;
  uint64_t epoch = 0;
  std::string topic;
  int64_t next_offset = -1;
};

timestamp_ms now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

[[noreturn]] void no_store(std::string_view kind, std::string_view name) {
  throw weft_error{make_error(errc::not_found, "no " + std::string{kind} +
                                                   " store named '" + std::string{name} +
                                                   "': declare it with add_store()")};
}

/// The context a handler writes through, and the changelog sink of the
/// task's stores; one per task.
class task_context final : public context, public state::changelog_sink {
 public:
  node_context* node = nullptr;
  const service_info* service = nullptr;
  state::shard* shard = nullptr;
  int32_t partition = 0;
  record_view current_view;
  delivery_slot* slot = nullptr;
  timestamp_ms stream_time_ = 0;
  /// Records the producer refused (queue full), in order, with their refs;
  /// sent before any further input is handled.
  std::deque<std::pair<record, delivery_ref*>> overflow;
  uint64_t sends = 0; ///< records handed over (or queued) so far

  const record_view& current() const override { return current_view; }
  const std::string& application_id() const override { return node->application_id; }

  state::kv_store& kv_store(std::string_view name) override {
    if (auto* s = shard ? shard->kv(name) : nullptr) return *s;
    no_store("key-value", name);
  }
  state::window_store& window_store(std::string_view name) override {
    if (auto* s = shard ? shard->window(name) : nullptr) return *s;
    no_store("window", name);
  }
  state::session_store& session_store(std::string_view name) override {
    if (auto* s = shard ? shard->session(name) : nullptr) return *s;
    no_store("session", name);
  }
  const state::kv_store& global_store(std::string_view name) override {
    auto i = node->global_stores.find(name);
    if (i == node->global_stores.end()) no_store("global", name);
    return *i->second;
  }
  timestamp_ms stream_time() const override { return stream_time_; }
  timestamp_ms wall_time() const override { return now_ms(); }

  void emit_bytes(size_t output_index, std::optional<std::string> key,
                  std::optional<std::string> value, int32_t partition_, timestamp_ms ts,
                  std::vector<header> headers) override {
    record r;
    r.topic = service->output_topics.at(output_index);
    r.partition = partition_;
    r.key = std::move(key);
    r.value = std::move(value);
    r.timestamp = ts != 0 ? ts : current_view.timestamp;
    r.headers = std::move(headers);
    send(std::move(r), &slot->ref);
  }

  void log_change(std::string_view store, std::string_view key,
                  std::optional<std::string_view> value, timestamp_ms ts) override {
    record r;
    r.topic = state::changelog_topic(node->application_id, std::string{store});
    r.partition = partition;
    r.key = std::string{key};
    if (value) r.value = std::string{*value};
    r.timestamp =
        ts > 0 ? ts : (current_view.timestamp > 0 ? current_view.timestamp : now_ms());
    send(std::move(r), changelog_ref(store));
  }

  /// The ref that reports deliveries of `store`'s changelog in this slot.
  delivery_ref* changelog_ref(std::string_view store) {
    auto* max = shard->delivered_offset(store);
    for (auto& r : slot->changelog_refs)
      if (r.max_offset == max) return &r;
    slot->changelog_refs.push_back({slot, max});
    return &slot->changelog_refs.back();
  }

  /// Produces `r` for the slot of `ref`. The slot is held from here, not from
  /// the hand-over: a record waiting in `overflow` keeps its slot (and so the
  /// offsets after it) from completing.
  void send(record r, delivery_ref* ref) {
    ++sends;
    ref->slot->acquire();
    if (overflow.empty() && try_send(r, ref)) return;
    overflow.emplace_back(std::move(r), ref);
  }

  /// Hands a record whose slot is held to the producer; false if its queue is
  /// full (the slot stays held).
  bool try_send(const record& r, delivery_ref* ref) {
    auto st = node->producer->send(r, ref);
    if (st.ok()) {
      node->counters.produced.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
    if (st.code() == errc::queue_full) return false;
    // Not retriable (e.g. unknown topic, message too large): treat like a
    // failed delivery, so the input is never committed.
    auto msg = st.message();
    ref->slot->release(&msg);
    return true;
  }

  /// Sends what the producer refused before; true when nothing is left.
  bool flush_overflow() {
    while (!overflow.empty()) {
      if (!try_send(overflow.front().first, overflow.front().second)) return false;
      overflow.pop_front();
    }
    return true;
  }
};

struct task_state {
  node_context* node = nullptr;
  const service_info* service = nullptr;
  std::unique_ptr<service_base> impl;
  std::unique_ptr<state::shard> shard;
  int32_t partition = 0;
  size_t service_index = 0;
  size_t task_index = 0;
  caf::actor supervisor;
  task_context ctx;
  delivery_tracker tracker;
  std::deque<pending_batch> queue;
  size_t position = 0; ///< next record of queue.front()
  bool retry_scheduled = false;
  bool failed = false;
  bool restoring = false;
  bool stopping = false; ///< the node stops: unprocessable input goes back at once
  timestamp_ms next_stream_punctuation = 0;
  timestamp_ms next_wall_punctuation = 0;

  // exactly_once: alignment at snapshot markers (supervisor.hpp).
  size_t sources = 0; ///< partition actors feeding this task
  /// Every source feeds only this task: the supervisor's marker comes
  /// straight here (urgent) and cuts at the task's current position, so the
  /// task never works through queued input before it can ack.
  bool direct_markers = false;
  std::map<std::string, int64_t> next_offsets; ///< after the last finished batch
  std::set<caf::actor_addr> aligned;           ///< sources whose marker was reached
  std::deque<pending_batch> held;              ///< their input after the marker
  task_offsets marker_offsets;                 ///< next offsets at the markers
  uint64_t epoch = 0;
  bool ack_pending = false;     ///< aligned; the ack waits for the producer
  bool awaiting_commit = false; ///< acked; input is held until committed
  bool aborting = false;        ///< asked the supervisor to abort the epoch
  caf::timestamp aligned_since;
  /// Records a previous incarnation's handler threw on: (topic, offset) ->
  /// error; handled by the bad-record policy without the handler.
  std::map<std::pair<std::string, int64_t>, std::string> poison;
  size_t dead_letter_max = 0; ///< the producer's message.max.bytes

  static inline const char* name = "weft.task";

  ~task_state() {
    if (shard) {
      node->shards.remove(shard.get());
      // The restore thread may still hold the shard (a task ended mid-restore
      // when its epoch was rolled back or the node stops).
      if (node->restorer) node->restorer->cancel(shard.get());
      shard.reset(); // closed before the node counts this task gone
    }
    if (node) node->live_actors.fetch_sub(1, std::memory_order_acq_rel);
  }
};

using task_actor = caf::stateful_actor<task_state>;

void fail(task_actor* self, const std::string& what) {
  auto& st = self->state;
  if (st.failed) return;
  st.failed = true;
  log::error("task {}[{}] failed: {}", st.service->name, st.partition, what);
  self->send(st.supervisor, failed_atom::value,
             "service '" + st.service->name + "' partition " +
                 std::to_string(st.partition) + ": " + what);
}

/// Applies the bad-record policy; returns false if the task must stop.
bool handle_bad_record(task_actor* self, const record_view& r,
                       const std::string& full_error) {
  auto& st = self->state;
  const std::string error = cap_error(full_error); // a decoder may quote a huge record
  auto where = std::string{r.topic} + "[" + std::to_string(r.partition.value()) + "]@" +
               std::to_string(r.offset.value());
  switch (st.service->policy) {
  case bad_record_policy::fail:
    fail(self, "bad record " + where + ": " + error +
                   " (bad.record.policy=fail; use skip or dead_letter to continue)");
    return false;
  case bad_record_policy::skip:
    st.node->counters.bad_records.fetch_add(1, std::memory_order_relaxed);
    log::warn("service '{}' skipped bad record {}: {}", st.service->name, where, error);
    return true;
  case bad_record_policy::dead_letter: {
    st.node->counters.bad_records.fetch_add(1, std::memory_order_relaxed);
    auto dl = dead_letter_record(r, error, st.service->name,
                                 st.service->dead_letter_topic, st.dead_letter_max);
    st.ctx.send(std::move(dl), &st.ctx.slot->ref);
    return true;
  }
  }
  return true;
}

void schedule_retry(task_actor* self) {
  auto& st = self->state;
  if (st.retry_scheduled) return;
  st.retry_scheduled = true;
  self->delayed_send(self, std::chrono::milliseconds(1), retry_atom::value);
}

/// Runs on_punctuate with outputs held by a slot of their own.
void punctuate(task_actor* self) {
  auto& st = self->state;
  auto* saved = st.ctx.slot;
  auto saved_view = st.ctx.current_view;
  st.ctx.slot = st.tracker.open_other();
  st.ctx.current_view = record_view{};
  st.ctx.current_view.partition = partition_id{st.partition};
  st.ctx.current_view.timestamp = st.ctx.stream_time_;
  try {
    st.impl->on_punctuate(st.ctx);
  } catch (const std::exception& e) {
    fail(self, std::string{"on_punctuate threw: "} + e.what());
  }
  st.tracker.close(st.ctx.slot);
  st.ctx.slot = saved;
  st.ctx.current_view = saved_view;
}

/// Handles one record: a table update or a stream record.
void handle(task_actor* self, const record_view& view) {
  auto& st = self->state;
  auto table = st.service->table_stores.find(std::string{view.topic});
  if (table == st.service->table_stores.end()) {
    st.impl->on_record(view, st.ctx);
    return;
  }
  if (!view.key)
    throw weft_error{make_error(errc::bad_record, "table record without a key")};
  auto& store = st.ctx.kv_store(table->second);
  auto old = store.get(*view.key);
  if (!old) throw weft_error{old.error()};
  auto s = view.value ? store.put(*view.key, *view.value) : store.remove(*view.key);
  if (!s) throw weft_error{s};
  std::optional<std::string_view> old_view;
  if (*old) old_view = **old;
  st.impl->on_table_update(view, old_view, st.ctx);
}

/// exactly_once: asks the supervisor to abort the epoch because the handler
/// threw on `view`; the task then waits to be replaced.
void abort_epoch(task_actor* self, const record_view& view, const std::string& error) {
  auto& st = self->state;
  st.aborting = true;
  auto where = std::string{view.topic} + "[" + std::to_string(view.partition.value()) +
               "]@" + std::to_string(view.offset.value());
  st.node->poison.add(
      {st.service_index, std::string{view.topic}, st.partition, view.offset.value()},
      error);
  log::warn("service '{}': record {} failed ({}); aborting the epoch to roll back its "
            "effects, then bad.record.policy applies to it",
            st.service->name, where, error);
  self->send(st.supervisor, abort_atom::value,
             "service '" + st.service->name + "' record " + where + ": " + error);
}

/// exactly_once: every source's marker was reached. Flushes the caches (their
/// changelog records join the epoch's transaction) and acks once the producer
/// holds everything; input stays held until the epoch commits.
void reach_markers(task_actor* self) {
  auto& st = self->state;
  st.aligned_since = caf::make_timestamp();
  if (st.shard) {
    st.ctx.slot = st.tracker.open_flush();
    auto s = st.shard->flush();
    st.tracker.close(st.ctx.slot);
    st.ctx.slot = nullptr;
    if (!s) return fail(self, "flushing state: " + s.message());
  }
  st.ack_pending = true;
}

/// Sends the pending ack if the producer took every record; false if not yet.
bool send_ack(task_actor* self) {
  auto& st = self->state;
  if (!st.ctx.flush_overflow()) return false;
  std::string err;
  st.tracker.committable(&err); // only frees finished slots
  if (!err.empty()) {
    fail(self, "delivery failed: " + err);
    return true;
  }
  st.ack_pending = false;
  st.awaiting_commit = true;
  self->send(st.supervisor, aligned_atom::value, st.task_index, st.epoch,
             st.marker_offsets);
  return true;
}

/// Handles queued batches until done, blocked by a full producer, or failed.
void run(task_actor* self) {
  auto& st = self->state;
  if (st.failed || st.restoring || st.aborting) return;
  if (!st.ctx.flush_overflow()) return schedule_retry(self);
  if (st.ack_pending && !send_ack(self)) return schedule_retry(self);
  auto interval = st.service->punctuate_ms;
  while (!st.queue.empty() && !st.awaiting_commit && !st.failed) {
    auto& pb = st.queue.front();
    if (st.node->exactly_once && st.position == 0) {
      auto src = caf::actor_cast<caf::actor_addr>(pb.source);
      if (st.aligned.count(src)) {
        // Input after this source's marker belongs to the next epoch.
        st.held.push_back(std::move(pb));
        st.queue.pop_front();
        continue;
      }
      if (pb.marker) {
        st.aligned.insert(src);
        st.epoch = pb.epoch;
        if (pb.next_offset >= 0) st.marker_offsets.emplace_back(pb.topic, pb.next_offset);
        st.queue.pop_front();
        if (st.aligned.size() == st.sources) {
          reach_markers(self);
          if (!send_ack(self)) return schedule_retry(self);
        }
        continue;
      }
    }
    auto& batch = *pb.batch;
    if (!st.ctx.slot) st.ctx.slot = st.tracker.open(std::string{batch.view(0).topic});
    while (st.position < batch.size()) {
      auto view = batch.view(st.position);
      st.ctx.current_view = view;
      if (view.timestamp > st.ctx.stream_time_) st.ctx.stream_time_ = view.timestamp;
      if (st.shard) st.shard->set_record_timestamp(view.timestamp);
      if (!st.poison.empty()) {
        auto p = st.poison.find({std::string{view.topic}, view.offset.value()});
        if (p != st.poison.end()) {
          // The epoch this record failed in was rolled back; now the policy
          // decides, and the handler does not run again.
          if (!handle_bad_record(self, view, p->second)) return;
          ++st.position;
          continue;
        }
      }
      std::string error;
      // Under exactly_once a failed record only needs a roll-back if it had
      // effects: a malformed record that never got past decoding is handled
      // by the policy at once (else a stream of them would roll back per
      // record).
      bool watch = st.node->exactly_once && st.service->policy != bad_record_policy::fail;
      uint64_t sends_before = watch ? st.ctx.sends : 0;
      uint64_t writes_before = watch && st.shard ? st.shard->writes() : 0;
      try {
        handle(self, view);
      } catch (const weft_error& e) {
        error = e.error().message();
      } catch (const std::exception& e) {
        error = std::string{"handler threw: "} + e.what();
      } catch (...) {
        error = "handler threw a non-standard exception";
      }
      if (!error.empty()) {
        bool effects = watch && (st.ctx.sends != sends_before ||
                                 (st.shard && st.shard->writes() != writes_before));
        if (effects) {
          // The handler may have written state or emitted records before it
          // threw: only rolling the epoch back undoes that. The replay
          // applies the policy to this record (see `poison`).
          return abort_epoch(self, view, error);
        }
        if (!handle_bad_record(self, view, error)) return;
      }
      ++st.position;
      st.node->counters.processed.fetch_add(1, std::memory_order_relaxed);
      if (interval > 0 && st.ctx.stream_time_ >= st.next_stream_punctuation) {
        if (st.next_stream_punctuation > 0) punctuate(self);
        st.next_stream_punctuation = (st.ctx.stream_time_ / interval + 1) * interval;
      }
      if (!st.ctx.overflow.empty()) {
        // The producer is full: hold the rest of the input until it drains.
        if (!st.ctx.flush_overflow()) return schedule_retry(self);
      }
    }
    st.tracker.close(st.ctx.slot, batch.next_offset().value());
    if (st.node->exactly_once)
      st.next_offsets[std::string{batch.view(0).topic}] = batch.next_offset().value();
    st.ctx.slot = nullptr;
    self->send(pb.source, ack_atom::value, pb.id);
    st.queue.pop_front();
    st.position = 0;
  }
}

/// At each commit interval: flush the stores (their caches write changelog
/// records into a flush slot), write checkpoints that are safe, and report
/// what may be committed.
task_offsets commit_point(task_actor* self, bool flush) {
  auto& st = self->state;
  bool between_batches = !st.ctx.slot && st.ctx.overflow.empty();
  if (flush && st.shard && !st.restoring && !st.failed && between_batches) {
    st.ctx.slot = st.tracker.open_flush();
    auto s = st.shard->flush();
    st.tracker.close(st.ctx.slot);
    st.ctx.slot = nullptr;
    if (!s) fail(self, "flushing state: " + s.message());
    if (!st.ctx.overflow.empty()) schedule_retry(self);
  }
  std::string err;
  auto offs = st.tracker.committable(&err);
  if (!err.empty()) fail(self, "delivery failed: " + err);
  if (st.shard && st.tracker.take_flushed())
    if (auto s = st.shard->write_checkpoints(); !s)
      log::warn("checkpoint: {}", s.message());
  return task_offsets{offs.begin(), offs.end()};
}

caf::behavior task_behavior(task_actor* self, node_context* node, size_t service_index,
                            int32_t partition, size_t task_index, size_t sources,
                            bool direct_markers, caf::actor supervisor) {
  auto& st = self->state;
  st.node = node;
  node->live_actors.fetch_add(1, std::memory_order_acq_rel);
  st.service_index = service_index;
  st.sources = sources;
  st.direct_markers = direct_markers;
  if (node->exactly_once) st.poison = node->poison.of(service_index, partition);
  st.service = &node->services[service_index];
  if (st.service->policy == bad_record_policy::dead_letter)
    st.dead_letter_max = max_message_bytes(node->cfg);
  st.partition = partition;
  st.task_index = task_index;
  st.supervisor = std::move(supervisor);
  st.ctx.node = node;
  st.ctx.service = st.service;
  st.ctx.partition = partition;
  st.impl = st.service->factory();
  st.impl->init(partition_id{partition});
  // Under exactly_once the transaction decides what commits; the tracker
  // only reports failed deliveries.
  st.tracker = delivery_tracker{!st.service->stores.empty() && !node->exactly_once};
  if (!st.service->stores.empty()) {
    auto sh =
        state::shard::open(*node->stores, node->state_dir, node->application_id,
                           partition, st.service->stores, &st.ctx, node->exactly_once);
    if (!sh) {
      fail(self, "opening state: " + sh.error().message());
    } else {
      st.shard = std::move(*sh);
      st.ctx.shard = st.shard.get();
      for (auto& spec : st.service->stores)
        node->shards.add(spec.name, partition, st.service->partitions, st.shard.get());
      st.restoring = true;
      caf::actor_addr weak = self->address();
      // A task that starts while the node stops (its supervisor spawned it
      // just before) finds the restore thread gone: it stays restoring and
      // never touches its stores.
      if (auto* r = node->restorer)
        r->submit(st.shard.get(), [weak](const status& s, uint64_t) {
          // A restore cut short by the node stopping is no failure.
          if (s.code() == errc::shutting_down) return;
          if (auto a = caf::actor_cast<caf::actor>(weak))
            caf::anon_send(a, restored_atom::value, s.ok() ? std::string{} : s.message());
        });
    }
  }
  if (st.service->punctuate_ms > 0)
    st.next_wall_punctuation = now_ms() + st.service->punctuate_ms;
  return {
      [self](batch_atom, batch_ptr batch, uint64_t id, caf::actor source) {
        auto& st = self->state;
        if (st.stopping && (st.restoring || st.failed)) {
          self->send(source, ack_atom::value, id);
          return;
        }
        st.queue.push_back({std::move(batch), id, std::move(source)});
        if (st.queue.size() == 1 && !st.retry_scheduled) run(self);
      },
      [self](restored_atom, const std::string& error) {
        auto& st = self->state;
        if (!error.empty()) return fail(self, "restoring state: " + error);
        st.restoring = false;
        st.shard->set_ready(true);
        self->send(st.supervisor, restored_atom::value, st.task_index);
        run(self);
      },
      [self](retry_atom) {
        self->state.retry_scheduled = false;
        run(self);
      },
      [self](marker_atom, uint64_t epoch, const std::string& topic, int64_t next) {
        auto& st = self->state;
        pending_batch m;
        m.id = 0;
        m.source = caf::actor_cast<caf::actor>(self->current_sender());
        m.marker = true;
        m.epoch = epoch;
        m.topic = topic;
        m.next_offset = next;
        st.queue.push_back(std::move(m));
        if (st.queue.size() == 1 && !st.retry_scheduled) run(self);
      },
      [self](marker_atom, uint64_t epoch) {
        // A direct marker: cut here. The offsets are those after the last
        // record handled from each source (mid-batch when the producer
        // stalled the task inside one).
        auto& st = self->state;
        if (!st.direct_markers || st.failed || st.aborting || st.awaiting_commit ||
            st.ack_pending)
          return;
        st.epoch = epoch;
        st.marker_offsets.assign(st.next_offsets.begin(), st.next_offsets.end());
        if (!st.queue.empty() && st.position > 0 && !st.queue.front().marker) {
          auto& b = *st.queue.front().batch;
          auto topic = std::string{b.view(0).topic};
          auto next = b.view(st.position - 1).offset.value() + 1;
          bool found = false;
          for (auto& [t, o] : st.marker_offsets)
            if (t == topic) o = next, found = true;
          if (!found) st.marker_offsets.emplace_back(topic, next);
        }
        reach_markers(self);
        if (!st.failed && !send_ack(self)) schedule_retry(self);
      },
      [self](committed_atom, uint64_t epoch) {
        // The epoch's transaction committed: its state writes may reach
        // RocksDB, and the held input is the next epoch's.
        auto& st = self->state;
        if (!st.awaiting_commit || epoch != st.epoch) return;
        if (st.shard)
          if (auto s = st.shard->commit_epoch(); !s)
            return fail(self, "committing state: " + s.message());
        auto held_us = std::chrono::duration_cast<std::chrono::microseconds>(
                           caf::make_timestamp() - st.aligned_since)
                           .count();
        st.node->counters.aligned_us_total.fetch_add(static_cast<uint64_t>(held_us),
                                                     std::memory_order_relaxed);
        st.awaiting_commit = false;
        st.aligned.clear();
        st.marker_offsets.clear();
        while (!st.held.empty()) {
          st.queue.push_front(std::move(st.held.back()));
          st.held.pop_back();
        }
        if (!st.retry_scheduled) run(self);
      },
      [self](tick_atom) {
        auto& st = self->state;
        auto interval = st.service->punctuate_ms;
        // Under exactly_once, punctuation output belongs to an open epoch.
        bool open_epoch = !st.awaiting_commit && !st.ack_pending && !st.aborting;
        if (interval > 0 && !st.restoring && !st.failed && open_epoch &&
            now_ms() >= st.next_wall_punctuation && !st.ctx.slot) {
          punctuate(self);
          st.next_wall_punctuation = now_ms() + interval;
        }
        if (st.node->exactly_once) return;
        self->send(st.supervisor, offsets_atom::value, st.task_index,
                   commit_point(self, true));
      },
      [self](halt_atom) {
        // The supervisor rolls the epoch back: produce nothing more, so the
        // producer can deliver what it holds before the transaction aborts.
        self->state.aborting = true;
        return true;
      },
      [self](final_atom, bool flush) -> task_offsets {
        return commit_point(self, flush);
      },
      [self](stop_atom) {
        // The node stops. A task that cannot handle its queued input (still
        // restoring, or failed) hands the batches back unprocessed so the
        // partition actors can drain: no slot was opened for them, so none of
        // their offsets is committed, and a restart reads them again.
        auto& st = self->state;
        st.stopping = true;
        if (!st.restoring && !st.failed) return;
        for (auto& pb : st.queue)
          self->send(pb.source, ack_atom::value, pb.id);
        st.queue.clear();
        st.position = 0;
      },
  };
}

} // namespace

caf::actor spawn_task_actor(caf::actor_system& sys, node_context* ctx,
                            size_t service_index, int32_t partition, size_t task_index,
                            size_t sources, bool direct_markers, caf::actor supervisor) {
  return sys.spawn(task_behavior, ctx, service_index, partition, task_index, sources,
                   direct_markers, std::move(supervisor));
}

} // namespace weft::detail
