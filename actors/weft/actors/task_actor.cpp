#include "weft/actors/task_actor.hpp"

#include <deque>
#include <map>

#include "weft/actors/delivery_tracker.hpp"
#include "weft/actors/messages.hpp"
#include "weft/actors/node_context.hpp"
#include "weft/log.hpp"

namespace weft::detail {

namespace {

struct pending_batch {
  batch_ptr batch;
  uint64_t id;
  caf::actor source;
};

/// The context a handler writes through; one per task.
class task_context final : public context {
 public:
  node_context* node = nullptr;
  const service_info* service = nullptr;
  record_view current_view;
  delivery_slot* slot = nullptr;
  /// Records the producer refused (queue full), in order; sent before any
  /// further input is handled.
  std::deque<record> overflow;

  const record_view& current() const override { return current_view; }
  const std::string& application_id() const override { return node->application_id; }

  void emit_bytes(size_t output_index, std::optional<std::string> key,
                  std::optional<std::string> value, int32_t partition, timestamp_ms ts,
                  std::vector<header> headers) override {
    record r;
    r.topic = service->output_topics.at(output_index);
    r.partition = partition;
    r.key = std::move(key);
    r.value = std::move(value);
    r.timestamp = ts != 0 ? ts : current_view.timestamp;
    r.headers = std::move(headers);
    send(std::move(r));
  }

  void send(record r) {
    if (overflow.empty() && try_send(r)) return;
    overflow.push_back(std::move(r));
  }

  /// Hands a record to the producer; false if its queue is full.
  bool try_send(const record& r) {
    slot->acquire();
    auto st = node->producer->send(r, slot);
    if (st.ok()) {
      node->counters.produced.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
    if (st.code() == errc::queue_full) {
      slot->outstanding.fetch_sub(1, std::memory_order_acq_rel);
      return false;
    }
    // Not retriable (e.g. unknown topic, message too large): treat like a
    // failed delivery, so the input is never committed.
    auto msg = st.message();
    slot->release(&msg);
    return true;
  }

  /// Sends what the producer refused before; true when nothing is left.
  bool flush_overflow() {
    while (!overflow.empty()) {
      if (!try_send(overflow.front())) return false;
      overflow.pop_front();
    }
    return true;
  }
};

struct task_state {
  node_context* node = nullptr;
  const service_info* service = nullptr;
  std::unique_ptr<service_base> impl;
  int32_t partition = 0;
  size_t task_index = 0;
  caf::actor supervisor;
  task_context ctx;
  /// One tracker per input topic: offsets of different topics never mix.
  std::map<std::string, delivery_tracker, std::less<>> trackers;
  std::deque<pending_batch> queue;
  size_t position = 0; ///< next record of queue.front()
  bool retry_scheduled = false;
  bool failed = false;
  static inline const char* name = "weft.task";
};

using task_actor = caf::stateful_actor<task_state>;

delivery_tracker& trackers_for(task_state& st, const kafka::message_batch& batch) {
  auto topic = batch.view(0).topic;
  auto i = st.trackers.find(topic);
  if (i == st.trackers.end())
    i = st.trackers.emplace(std::string{topic}, delivery_tracker{}).first;
  return i->second;
}

/// Committable offsets of every input topic with something new.
task_offsets committable(task_actor* self);

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
bool handle_bad_record(task_actor* self, const record_view& r, const std::string& error) {
  auto& st = self->state;
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
    record dl;
    dl.topic = st.service->dead_letter_topic;
    dl.partition = -1;
    if (r.key) dl.key = std::string{*r.key};
    if (r.value) dl.value = std::string{*r.value};
    dl.timestamp = r.timestamp;
    dl.headers = r.headers();
    dl.headers.push_back({"weft.error", error});
    dl.headers.push_back({"weft.service", st.service->name});
    dl.headers.push_back({"weft.topic", std::string{r.topic}});
    dl.headers.push_back({"weft.partition", std::to_string(r.partition.value())});
    dl.headers.push_back({"weft.offset", std::to_string(r.offset.value())});
    st.ctx.send(std::move(dl));
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

/// Handles queued batches until done, blocked by a full producer, or failed.
void run(task_actor* self) {
  auto& st = self->state;
  if (st.failed) return;
  if (!st.ctx.flush_overflow()) return schedule_retry(self);
  while (!st.queue.empty()) {
    auto& pb = st.queue.front();
    auto& batch = *pb.batch;
    if (!st.ctx.slot) st.ctx.slot = trackers_for(st, batch).open();
    while (st.position < batch.size()) {
      auto view = batch.view(st.position);
      st.ctx.current_view = view;
      try {
        st.impl->on_record(view, st.ctx);
      } catch (const weft_error& e) {
        if (!handle_bad_record(self, view, e.error().message())) return;
      } catch (const std::exception& e) {
        if (!handle_bad_record(self, view, std::string{"handler threw: "} + e.what()))
          return;
      } catch (...) {
        if (!handle_bad_record(self, view, "handler threw a non-standard exception"))
          return;
      }
      ++st.position;
      st.node->counters.processed.fetch_add(1, std::memory_order_relaxed);
      if (!st.ctx.overflow.empty()) {
        // The producer is full: hold the rest of the input until it drains.
        if (!st.ctx.flush_overflow()) return schedule_retry(self);
      }
    }
    trackers_for(st, batch).close(st.ctx.slot, batch.next_offset().value());
    st.ctx.slot = nullptr;
    self->send(pb.source, ack_atom::value, pb.id);
    st.queue.pop_front();
    st.position = 0;
  }
}

task_offsets committable(task_actor* self) {
  auto& st = self->state;
  task_offsets out;
  for (auto& [topic, tracker] : st.trackers) {
    std::string err;
    auto off = tracker.committable(&err);
    if (!err.empty()) fail(self, "delivery failed: " + err);
    if (off >= 0) out.push_back({topic, off});
  }
  return out;
}

caf::behavior task_behavior(task_actor* self, node_context* node, size_t service_index,
                            int32_t partition, size_t task_index, caf::actor supervisor) {
  auto& st = self->state;
  st.node = node;
  st.service = &node->services[service_index];
  st.partition = partition;
  st.task_index = task_index;
  st.supervisor = std::move(supervisor);
  st.ctx.node = node;
  st.ctx.service = st.service;
  st.impl = st.service->factory();
  st.impl->init(partition_id{partition});
  return {
      [self](batch_atom, batch_ptr batch, uint64_t id, caf::actor source) {
        auto& st = self->state;
        st.queue.push_back({std::move(batch), id, std::move(source)});
        if (st.queue.size() == 1 && !st.retry_scheduled) run(self);
      },
      [self](retry_atom) {
        self->state.retry_scheduled = false;
        run(self);
      },
      [self](tick_atom) {
        auto& st = self->state;
        self->send(st.supervisor, offsets_atom::value, st.task_index, committable(self));
      },
      [self](final_atom) -> task_offsets { return committable(self); },
  };
}

} // namespace

caf::actor spawn_task_actor(caf::actor_system& sys, node_context* ctx,
                            size_t service_index, int32_t partition, size_t task_index,
                            caf::actor supervisor) {
  return sys.spawn(task_behavior, ctx, service_index, partition, task_index,
                   std::move(supervisor));
}

} // namespace weft::detail
