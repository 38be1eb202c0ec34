#include "weft/actors/task_actor.hpp"

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>

#include <nlohmann/json.hpp>

#include "weft/actors/dead_letter.hpp"
#include "weft/actors/delivery_tracker.hpp"
#include "weft/actors/node_context.hpp"
#include "weft/actors/park_registry.hpp"
#include "weft/actors/parked_keys.hpp"
#include "weft/actors/restorer.hpp"
#include "weft/log.hpp"
#include "weft/state/shard.hpp"
#include "weft/state/timer_index.hpp"
#include "weft/trace/cause.hpp"

namespace weft::detail {

namespace {

/// A batch of input, or (exactly_once) a snapshot marker from `source`.
struct pending_batch {
  batch_ptr batch;
  uint64_t id;
  partition_actor source;
  bool marker = false;
  weft::epoch epoch;
  std::string topic;
  weft::offset next_offset{-1};
};

/// How long a task waits for a partition that has records on the broker it
/// has not fetched yet before it processes ahead of it (Kafka Streams waits
/// without a bound): a liveness bound for a broker that does not answer,
/// never reached by a healthy fetch.
constexpr auto fetch_wait_limit = std::chrono::seconds(30);

/// One input partition of a task that reads several: its records wait here
/// so that the task can take the one with the smallest timestamp next
/// (timestamp order, as Kafka Streams' PartitionGroup).
struct input_source {
  partition_actor actor;           ///< its partition actor
  std::string topic;               ///< known from its first batch or marker
  int rank = 0;                    ///< equal timestamps: the lower rank goes first
  std::deque<pending_batch> items; ///< batches and in-band markers, in arrival order
  size_t position = 0;             ///< next record of items.front()
  int64_t next_offset = -1;        ///< after the last record handled
  input_state state = input_state::unknown;
  bool aligned = false; ///< exactly_once: its marker was reached this epoch
  bool in_slot = false; ///< has records in the open delivery slot
  bool waiting = false; ///< empty, and the task waits for it since waited_from
  bool ahead = false;   ///< processed ahead of it (counted) since its last record
  caf::timestamp waited_from;

  bool has_record() const { return !items.empty() && !items.front().marker; }
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
  /// sent before any further input is handled. Under exactly_once also what
  /// the task produces while `holding`.
  std::deque<std::pair<record, delivery_ref*>> overflow;
  /// exactly_once: the task works on into the next epoch while the
  /// transaction of the one it acked commits; what it produces meanwhile
  /// (outputs, changelog records, dead letters) waits in `overflow`, owned,
  /// until the next transaction has begun (the committed message).
  bool holding = false;
  size_t held_bytes = 0; ///< of the records held, bounded by max_held_bytes
  /// epoch.work.ahead.bytes: how much a task working ahead may hold before
  /// it waits for the commit (0: it does not work ahead). The default, 4
  /// MiB per task, keeps a node's tasks well under its producer queue, and
  /// an epoch's commit (tens of ms) rarely fills it.
  size_t max_held_bytes = 0;
  uint64_t sends = 0; ///< records handed over (or queued) so far
  /// Per output: key bytes the partitioner skips (windowed keys).
  std::vector<uint8_t> key_suffixes;
  task_counters* counters = nullptr; ///< this task's cell (node_context.hpp)
  /// The task's durable timers, once its shard is restored (null: none).
  state::timer_index* timer_idx = nullptr;
  std::string cause_value; ///< the last weft.cause built (its capacity is reused)
  /// store name -> its changelog topic (changelog_topic_of)
  std::vector<std::pair<std::string, std::string>> changelog_topics;

  state::timer_index* timers() override { return timer_idx; }

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
    outgoing r;
    r.topic = service->output_topics.at(output_index);
    r.partition = partition_;
    if (key) r.key = *key;
    if (value) r.value = *value;
    r.timestamp = ts != 0 ? ts : current_view.timestamp;
    r.headers = &headers;
    if (output_index < key_suffixes.size()) r.key_suffix = key_suffixes[output_index];
    if (r.key_suffix > 0 && (!r.key || r.key->size() < r.key_suffix)) r.key_suffix = 0;
    task_counters::add(counters->produced);
    task_counters::add(counters->written[output_index]);
    if (!node->trace_headers) return send(r, &slot->ref);
    // weft.cause (weft/trace/cause.hpp), built in a buffer the task reuses:
    // the producer copies it into the message, nothing is allocated here.
    trace::encode_cause(cause_value, service->name, current_view.topic,
                        current_view.partition.value(), current_view.offset.value());
    const header_ref cause{trace::cause_header, cause_value};
    send(r, &slot->ref, &cause);
  }

  void log_change(std::string_view store, std::string_view key,
                  std::optional<std::string_view> value, timestamp_ms ts) override {
    outgoing r;
    r.topic = changelog_topic_of(store);
    r.partition = partition;
    r.key = key;
    r.value = value;
    r.timestamp =
        ts > 0 ? ts : (current_view.timestamp > 0 ? current_view.timestamp : now_ms());
    task_counters::add(counters->changelog);
    send(r, changelog_ref(store));
  }

  /// The changelog topic of `store`, made once per store.
  const std::string& changelog_topic_of(std::string_view store) {
    for (auto& [name, topic] : changelog_topics)
      if (name == store) return topic;
    changelog_topics.emplace_back(
        std::string{store},
        state::changelog_topic(node->application_id, std::string{store}));
    return changelog_topics.back().second;
  }

  /// The ref that reports deliveries of `store`'s changelog in this slot.
  delivery_ref* changelog_ref(std::string_view store) {
    auto max = shard->delivered_offset(store);
    for (auto& r : slot->changelog_refs)
      if (r.max_offset == max) return &r;
    slot->changelog_refs.push_back({slot, std::move(max)});
    return &slot->changelog_refs.back();
  }

  /// A record to produce, by reference: the producer copies its bytes, so
  /// nothing is copied here unless it has to wait in `overflow`.
  struct outgoing {
    std::string_view topic;
    int32_t partition = -1;
    std::optional<std::string_view> key;
    std::optional<std::string_view> value;
    timestamp_ms timestamp = 0;
    const std::vector<header>* headers = nullptr;
    uint8_t key_suffix = 0;
  };

  /// Produces `r` for the slot of `ref`. The slot is held from here, not from
  /// the hand-over: a record waiting in `overflow` keeps its slot (and so the
  /// offsets after it) from completing.
  /// `extra`: a header the record gets beside its own (weft.cause), owned
  /// by the record only when it has to wait in `overflow`.
  void send(const outgoing& r, delivery_ref* ref, const header_ref* extra = nullptr) {
    ++sends;
    ref->slot->acquire();
    if (overflow.empty() && !holding) {
      auto st = node->producer->send(r.topic, r.partition, r.key, r.value, r.timestamp,
                                     r.headers, ref, r.key_suffix, extra);
      if (st.ok()) return;
      if (st.code() != errc::queue_full) return refused(st, ref);
    }
    record owned;
    owned.topic = std::string{r.topic};
    owned.partition = r.partition;
    if (r.key) owned.key.emplace(*r.key);
    if (r.value) owned.value.emplace(*r.value);
    owned.timestamp = r.timestamp;
    if (r.headers) owned.headers = *r.headers;
    if (extra)
      owned.headers.push_back({std::string{extra->key}, std::string{extra->value}});
    owned.key_suffix = r.key_suffix;
    hold(std::move(owned), ref);
  }

  /// A record the task made and owns (a dead letter): moved into `overflow`
  /// if it has to wait.
  void send(record r, delivery_ref* ref) {
    ++sends;
    ref->slot->acquire();
    if (overflow.empty() && !holding && try_send(r, ref)) return;
    hold(std::move(r), ref);
  }

  /// Queues `r` in `overflow`, counting its bytes while `holding`.
  void hold(record r, delivery_ref* ref) {
    if (holding) {
      held_bytes += sizeof(record) + r.topic.size() + (r.key ? r.key->size() : 0) +
                    (r.value ? r.value->size() : 0);
      for (auto& h : r.headers)
        held_bytes += h.key.size() + h.value.size();
    }
    overflow.emplace_back(std::move(r), ref);
  }

  /// Whether the task must stop working ahead until the next transaction
  /// begins: what it holds reached the bound.
  bool hold_full() const { return holding && held_bytes >= max_held_bytes; }

  /// Drops what the task holds (its epoch will not be committed: the node
  /// stops, or the task leaves): never produced, never reported.
  void drop_held() {
    for (auto& waiting : overflow)
      waiting.second->slot->abandon();
    overflow.clear();
    holding = false;
    held_bytes = 0;
  }

  /// Hands a record whose slot is held to the producer; false if its queue is
  /// full (the slot stays held).
  bool try_send(const record& r, delivery_ref* ref) {
    auto st = node->producer->send(r, ref);
    if (st.ok()) return true;
    if (st.code() == errc::queue_full) return false;
    refused(st, ref);
    return true;
  }

  /// Not retriable (e.g. unknown topic, message too large): treated like a
  /// failed delivery, so the input is never committed.
  static void refused(const status& st, delivery_ref* ref) {
    auto msg = st.message();
    ref->slot->release(&msg);
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
  /// Where the restore thread leaves the shard it opened and restored for
  /// this task (taken on `restored`); shared with the restore job.
  struct shard_slot {
    std::mutex mu;
    std::unique_ptr<state::shard> shard;
  };
  std::shared_ptr<shard_slot> opening;
  uint64_t restore_ticket = 0; ///< the restore job's, while one may run
  int32_t partition = 0;
  size_t service_index = 0;
  size_t task_index = 0;
  supervisor_actor supervisor;
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
  std::map<std::string, weft::offset> next_offsets; ///< after the last finished batch
  std::set<caf::actor_addr> aligned;                ///< sources whose marker was reached
  std::deque<pending_batch> held;                   ///< their input after the marker
  task_offsets marker_offsets;                      ///< next offsets at the markers
  weft::epoch epoch;
  bool ack_pending = false;     ///< aligned; the ack waits for the producer
  bool awaiting_commit = false; ///< acked; waiting for the epoch's commit
  /// When the ack went out. Working ahead (ctx.holding: acked, handling the
  /// next epoch's input meanwhile) input was held only until then; else
  /// until the commit.
  caf::timestamp acked_at;
  bool aborting = false;        ///< asked the supervisor to abort the epoch
  /// The supervisor counts the task in its epochs (restored_atom). Under
  /// exactly_once a task added between epochs fires no timer before: the
  /// output would go into the open transaction (or, between a commit and
  /// the next begin, fail with _STATE) while the timer's removal is only
  /// flushed at the task's first marker, a transaction later — a roll-back
  /// of that one fired the timer again (seen after a failover).
  bool joined = false;
  caf::timestamp aligned_since;
  /// Records a previous incarnation's handler threw on: (topic, offset) ->
  /// error; handled by the bad-record policy without the handler.
  std::map<std::pair<std::string, int64_t>, std::string> poison;
  size_t dead_letter_max = 0; ///< the producer's message.max.bytes

  // Timestamp order (a task with several input partitions; one partition
  // takes the plain queue above, at no cost).
  bool ordered = false;
  std::vector<input_source> inputs; ///< in order of first contact
  std::map<std::string, int> ranks; ///< input topic -> rank (tables first)
  int64_t max_idle_ms = 0;          ///< max.task.idle.ms
  size_t aligned_inputs = 0;        ///< exactly_once, in-band: sources aligned
  std::vector<size_t> slot_inputs;  ///< inputs with records in the open slot
  bool unseen_waiting = false;      ///< waiting for a source not heard from yet
  bool unseen_ahead = false;        ///< processed ahead of it (counted)
  caf::timestamp unseen_from;
  bool idle_timer = false;
  caf::timestamp idle_due;

  // Stream time survives restarts: kept in the service's stream-time store.
  state::kv_store* time_store = nullptr;
  timestamp_ms saved_stream_time = 0;

  // bad.record.policy=park (parked_keys.hpp).
  bool park = false;
  bool park_loaded = false; ///< the index was built after the restore
  parked_keys parked;
  std::string park_id; ///< the current record's key id (hot path, reused)
  /// Operator calls (key id, action) waiting for an open epoch.
  std::deque<std::pair<std::string, std::string>> park_ops;
  /// Keys whose held records are being replayed (a retry or skip), in the
  /// order they were released.
  std::deque<std::string> replaying;
  /// at_least_once: store keys a replay consumed, removed once the replay's
  /// outputs (counted by their own slot) are in Kafka.
  struct pending_removal {
    slot_ptr slot;
    std::vector<std::string> keys;
  };
  std::deque<pending_removal> removals;
  bool park_timer = false; ///< an automatic retry is armed for park_timer_due
  timestamp_ms park_timer_due = 0;
  bool park_nudged = false; ///< a (park) message to go on replaying is queued
  bool retry_due = false;   ///< the park timer fired: automatic retries are due
  caf::actor_addr address;

  // Durable timers (timers.hpp), in the service's timer store.
  std::unique_ptr<state::timer_index> timers;
  bool timer_round_sent = false; ///< a timer message is on its way to itself
  /// at_least_once: timers fired per round, removed once the round's slot
  /// completed (its outputs are in Kafka); a crash before fires them again.
  uint64_t next_timer_round = 1;
  std::map<uint64_t, std::vector<timer>> fired_rounds;

  static inline const char* name = "weft.task";

  ~task_state() {
    // Records still waiting for the producer are never reported: they hold
    // their slots no longer (delivery_tracker.hpp, Lifetime).
    for (auto& waiting : ctx.overflow)
      waiting.second->slot->abandon();
    ctx.overflow.clear();
    if (park && node && node->parked)
      node->parked->detach(service_index, partition, address);
    // The restore thread may still be opening or restoring the shard (a task
    // ended mid-restore when its epoch was rolled back or the node stops).
    if (restore_ticket != 0 && node->restorer) node->restorer->cancel(restore_ticket);
    if (opening) {
      std::lock_guard<std::mutex> guard{opening->mu};
      opening->shard.reset(); // its changelog sink (ctx) goes with this task
    }
    ctx.timer_idx = nullptr;
    timers.reset(); // borrows a store of the shard
    if (shard) {
      node->shards.remove(shard.get());
      shard.reset(); // closed before the node counts this task gone
    }
    if (node) node->live_actors.fetch_sub(1, std::memory_order_acq_rel);
  }
};

using task_self = task_actor::stateful_pointer<task_state>;

void fail(task_self self, const std::string& what) {
  auto& st = self->state;
  if (st.failed) return;
  st.failed = true;
  log::error("task {}[{}] failed: {}", st.service->name, st.partition, what);
  self->send(st.supervisor, failed_atom::value,
             "service '" + st.service->name + "' partition " +
                 std::to_string(st.partition) + ": " + what);
}

bool park_record(task_self self, const record_view& r, const std::string& error,
                 bool retriable);

/// Applies the bad-record policy; returns false if the task must stop.
/// `retriable`: the handler threw (not a decoding failure), so park may
/// retry it.
bool handle_bad_record(task_self self, const record_view& r,
                       const std::string& full_error, bool retriable = true) {
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
    task_counters::add(st.ctx.counters->skipped);
    log::warn("service '{}' skipped bad record {}: {}", st.service->name, where, error);
    return true;
  case bad_record_policy::dead_letter: {
    task_counters::add(st.ctx.counters->dead_lettered);
    auto dl = dead_letter_record(r, error, st.service->name,
                                 st.service->dead_letter_topic, st.dead_letter_max);
    st.ctx.send(std::move(dl), &st.ctx.slot->ref);
    return true;
  }
  case bad_record_policy::park:
    task_counters::add(st.ctx.counters->parked);
    return park_record(self, r, error, retriable);
  }
  return true;
}

void schedule_retry(task_self self) {
  auto& st = self->state;
  if (st.retry_scheduled) return;
  st.retry_scheduled = true;
  self->delayed_send(self, std::chrono::milliseconds(1), retry_atom::value);
}

/// Runs on_punctuate with outputs held by a slot of their own.
void punctuate(task_self self) {
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

/// Timers fired per round: a burst of due timers goes out in rounds of this
/// many, with the input that arrived meanwhile handled between rounds.
constexpr size_t timer_round_size = 1000;

/// at_least_once: fired timers whose outputs Kafka has not acknowledged yet
/// (held in memory until then) beyond which no more fire.
constexpr size_t max_timers_in_flight = 100'000;

/// Whether a timer of the task may be due now.
bool timers_due(task_state& st) {
  return st.timers &&
         (st.timers->maybe_due(timer_clock::event_time, st.ctx.stream_time_) ||
          st.timers->maybe_due(timer_clock::wall_clock, now_ms()));
}

/// Sends itself a timer message if a timer may be due and none is on its way.
void request_timers(task_self self) {
  auto& st = self->state;
  if (st.timer_round_sent || !timers_due(st)) return;
  st.timer_round_sent = true;
  self->send(self, timer_atom::value);
}

/// Fires one round of due timers (at most timer_round_size, event time
/// first) with outputs held by a slot of their own, unless the task cannot
/// run a handler now: then run() or the next tick asks again once it can.
/// Under exactly_once each timer is removed in the epoch of its handler's
/// effects; under at_least_once once the round's outputs are acknowledged
/// (remove_fired_timers).
void fire_timers(task_self self) {
  auto& st = self->state;
  if (!st.timers || st.failed || st.restoring || st.aborting || st.awaiting_commit ||
      st.ack_pending || st.ctx.slot || !st.ctx.overflow.empty())
    return;
  const bool exactly_once = st.node->exactly_once;
  if (exactly_once && !st.joined) return;
  if (!exactly_once && st.timers->taken() >= max_timers_in_flight) return;
  auto saved_view = st.ctx.current_view;
  st.ctx.slot = st.tracker.open_other();
  uint64_t round = 0;
  if (!exactly_once) st.ctx.slot->timer_round = round = st.next_timer_round++;
  std::vector<timer> fired;
  size_t budget = timer_round_size;
  for (auto clock : {timer_clock::event_time, timer_clock::wall_clock}) {
    const auto now = clock == timer_clock::event_time ? st.ctx.stream_time_ : now_ms();
    if (budget == 0 || st.failed || !st.timers->maybe_due(clock, now)) continue;
    auto due = st.timers->take_due(clock, now, budget);
    if (!due) {
      fail(self, "reading timers: " + due.error().message());
      break;
    }
    budget -= due->size();
    for (auto& t : *due) {
      auto& view = st.ctx.current_view;
      view = record_view{};
      view.partition = partition_id{st.partition};
      view.key = std::string_view{t.key};
      view.timestamp = clock == timer_clock::event_time ? t.time : now;
      if (st.shard) st.shard->set_record_timestamp(view.timestamp);
      std::string error;
      try {
        st.impl->on_timer(t, st.ctx);
      } catch (const std::exception& e) {
        error = e.what();
      } catch (...) {
        error = "a non-standard exception";
      }
      if (!error.empty()) {
        fail(self, "on_timer threw for timer '" + t.name + "' due at " +
                       std::to_string(t.time) + ": " + cap_error(error));
        break;
      }
      if (!exactly_once) {
        fired.push_back(std::move(t));
      } else if (auto rs = st.timers->remove_taken(t); !rs) {
        fail(self, "removing a fired timer: " + rs.message());
        break;
      }
    }
  }
  st.tracker.close(st.ctx.slot);
  st.ctx.slot = nullptr;
  st.ctx.current_view = saved_view;
  if (!fired.empty()) st.fired_rounds.emplace(round, std::move(fired));
  if (st.failed) return;
  if (!st.ctx.overflow.empty()) return schedule_retry(self);
  request_timers(self);
}

/// at_least_once: removes the timers of the rounds whose slots completed
/// (found by the last committable()). Called with a flush slot open.
void remove_fired_timers(task_self self) {
  auto& st = self->state;
  for (auto round : st.tracker.take_timer_rounds()) {
    auto i = st.fired_rounds.find(round);
    if (i == st.fired_rounds.end()) continue;
    for (auto& t : i->second)
      if (auto rs = st.timers->remove_taken(t); !rs)
        return fail(self, "removing a fired timer: " + rs.message());
    st.fired_rounds.erase(i);
  }
}

/// Handles one record: a table update or a stream record.
void handle(task_self self, const record_view& view) {
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
void abort_epoch(task_self self, const record_view& view, const std::string& error) {
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

/// Writes the task's stream time into its stream-time store, if it moved
/// since the last write, so that it commits (and is restored) with the rest
/// of the state. Called with a flush slot open, before the stores flush.
void save_stream_time(task_self self) {
  auto& st = self->state;
  if (!st.time_store || st.ctx.stream_time_ == st.saved_stream_time) return;
  auto s = st.time_store->put("task", int64_serde::serialize(st.ctx.stream_time_));
  if (!s) return fail(self, "saving stream time: " + s.message());
  st.saved_stream_time = st.ctx.stream_time_;
}

/// After the restore: the stream time the task had reached when its state
/// was last committed.
void load_stream_time(task_self self) {
  auto& st = self->state;
  if (!st.shard) return;
  st.time_store = st.shard->kv(service_base::stream_time_store(st.service->name));
  if (!st.time_store) return;
  auto v = st.time_store->get("task");
  if (!v) return fail(self, "reading stream time: " + v.error().message());
  if (!*v) return;
  auto t = int64_serde::deserialize(**v);
  if (!t) return fail(self, "reading stream time: " + t.error().message());
  st.saved_stream_time = *t;
  if (*t > st.ctx.stream_time_) st.ctx.stream_time_ = *t;
}

/// exactly_once: every source's marker was reached. Flushes the caches (their
/// changelog records join the epoch's transaction) and acks once the producer
/// holds everything; input stays held until the epoch commits.
void reach_markers(task_self self) {
  auto& st = self->state;
  st.aligned_since = caf::make_timestamp();
  if (st.shard) {
    st.ctx.slot = st.tracker.open_flush();
    save_stream_time(self);
    auto s = st.failed ? status{} : st.shard->flush();
    st.tracker.close(st.ctx.slot);
    st.ctx.slot = nullptr;
    if (st.failed) return;
    if (!s) return fail(self, "flushing state: " + s.message());
  }
  st.ack_pending = true;
}

/// Clears what aligned the task at epoch N's markers, so its input after
/// them (held until now) is handled as epoch N+1's.
void open_next_input(task_self self) {
  auto& st = self->state;
  st.aligned.clear();
  st.marker_offsets.clear();
  for (auto& in : st.inputs)
    in.aligned = false;
  st.aligned_inputs = 0;
  while (!st.held.empty()) {
    st.queue.push_front(std::move(st.held.back()));
    st.held.pop_back();
  }
}

/// exactly_once, once the task acked epoch N: its state writes so far are
/// sealed as epoch N's, and it works on into epoch N+1 while N's transaction
/// commits — state writes into the next epoch's buffer, everything it
/// produces held (task_context::holding) until the committed message says
/// the next transaction has begun. Epoch N+1's markers cannot arrive before
/// that message (the supervisor sends them after it). Not when the node
/// stops (its last epoch is closing) or the task is being halted.
void work_ahead(task_self self) {
  auto& st = self->state;
  if (st.shard)
    if (auto s = st.shard->seal_epoch(); !s)
      return fail(self, "sealing state: " + s.message());
  st.acked_at = caf::make_timestamp();
  if (st.stopping || st.aborting || st.failed || st.ctx.max_held_bytes == 0) return;
  st.ctx.holding = true;
  open_next_input(self);
}

/// Sends the pending ack if the producer took every record; false if not yet.
bool send_ack(task_self self) {
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
  work_ahead(self);
  return true;
}

// -- bad.record.policy=park --------------------------------------------------

/// How many held records one turn of the task replays at most, before it
/// lets its input (and other messages) in again.
constexpr size_t replay_batch = 512;

/// A key for logs: its text when it is UTF-8 (up to 200 bytes), else its
/// size; "(null key)" for the null key.
std::string shown_key(const std::string& id) {
  auto k = parked_keys::key_of(id);
  if (!k) return "(null key)";
  if (k->size() <= 200 && string_serde::deserialize(*k)) return "'" + *k + "'";
  return "(" + std::to_string(k->size()) + " bytes)";
}

parked_info info_of(const task_state& st, const std::string& id, const parked_entry& e) {
  parked_info i;
  i.service = st.service_index;
  i.partition = st.partition;
  i.id = id;
  i.held = e.seqs.size();
  i.error = e.error;
  i.since = e.since;
  i.attempts = e.attempts;
  i.retry_at = e.retry_at;
  i.topic = e.head_topic;
  i.head_partition = e.head_partition;
  i.offset = e.head_offset;
  i.replaying = e.replaying;
  return i;
}

void publish(task_self self, const std::string& id, const parked_entry& e) {
  auto& st = self->state;
  if (st.node->parked) st.node->parked->set(st.address, info_of(st, id, e));
}

void unpublish(task_self self, const std::string& id) {
  auto& st = self->state;
  if (st.node->parked)
    st.node->parked->erase(st.address, st.service_index, st.partition, id);
}

/// Arms the park timer for `due` (wall clock), unless an earlier one is.
void arm_park_timer(task_self self, timestamp_ms due) {
  auto& st = self->state;
  if (st.park_timer && st.park_timer_due <= due) return;
  st.park_timer = true;
  st.park_timer_due = due;
  auto delay = std::max<timestamp_ms>(0, due - now_ms()) + 1;
  self->delayed_send(self, std::chrono::milliseconds(delay), park_atom::value);
}

/// After a failure of its head: the next automatic retry of `e`, if any is
/// left (bad.record.retries, back-off doubling up to its maximum).
void set_retry(task_self self, parked_entry& e) {
  auto& st = self->state;
  e.retry_at = 0;
  if (!e.retriable || e.attempts > st.service->park_retries) return;
  auto wait = st.service->park_backoff_ms;
  for (int i = 1; i < e.attempts && wait < st.service->park_backoff_max_ms; ++i)
    wait *= 2;
  e.retry_at = now_ms() + std::min(wait, st.service->park_backoff_max_ms);
  arm_park_timer(self, e.retry_at);
}

/// Whether `r` fits in a changelog record of the parked store (the
/// producer's message.max.bytes, with room for the store key and framing).
bool holdable(const task_state& st, const record_view& r) {
  return parked_keys::fits(r, st.dead_letter_max);
}

/// A record too large to hold goes to the dead-letter topic (cut to fit, as
/// dead_letter does) rather than stopping the task: it cannot wait in the
/// changelogged store, so its key's order is broken at this one record,
/// which the log and a weft.parked header say.
void dead_letter_unholdable(task_self self, const record_view& r,
                            const std::string& why) {
  auto& st = self->state;
  task_counters::add(st.ctx.counters->dead_lettered);
  auto dl = dead_letter_record(r, why, st.service->name, st.service->dead_letter_topic,
                               st.dead_letter_max);
  dl.headers.push_back({"weft.parked", "too large to hold behind its parked key; sent "
                                       "here instead, out of its key's order"});
  st.ctx.send(std::move(dl), &st.ctx.slot->ref);
  log::error(
      "service '{}': record {}[{}]@{} of key {} is too large to hold in the parked "
      "store (message.max.bytes {}); dead-lettered to {} instead, out of its key's "
      "order",
      st.service->name, r.topic, r.partition.value(), r.offset.value(),
      shown_key(parked_keys::key_id(r.key)), st.dead_letter_max,
      st.service->dead_letter_topic);
}

/// Holds `view` behind its parked key (st.park_id). False: the task failed.
bool hold_record(task_self self, parked_entry& e, const record_view& view) {
  auto& st = self->state;
  if (!holdable(st, view)) {
    dead_letter_unholdable(self, view, "held behind parked key: " + e.error);
    return true;
  }
  if (auto s = st.parked.hold(st.park_id, e, view); !s) {
    fail(self,
         "holding a record of parked key " + shown_key(st.park_id) + ": " + s.message());
    return false;
  }
  publish(self, st.park_id, e);
  return true;
}

/// Parks the key of bad record `r`: it is held with its error, and so is
/// every later record of the key until an operator (or an automatic retry)
/// releases it.
bool park_record(task_self self, const record_view& r, const std::string& error,
                 bool retriable) {
  auto& st = self->state;
  auto id = parked_keys::key_id(r.key);
  if (!holdable(st, r)) {
    dead_letter_unholdable(self, r, error);
    return true;
  }
  if (auto* parked = st.parked.find(id); parked && parked_keys::before_head(*parked, r)) {
    // It ran before the key's bad record once; re-delivered after a crash
    // it failed this time. It cannot go in front of the head: it waits
    // behind the key's held records, out of its order, and says so.
    log::warn("service '{}': {}[{}]@{} of parked key {} ran before the key's bad record "
              "and failed when re-delivered after a crash ({}); it is held behind the "
              "key's other records, out of its order",
              st.service->name, r.topic, r.partition.value(), r.offset.value(),
              shown_key(id), error);
    st.park_id = id;
    return hold_record(self, *parked, r);
  }
  auto e = st.parked.park(id, r, error, retriable, now_ms());
  if (!e) {
    fail(self, "parking key " + shown_key(id) + ": " + e.error().message());
    return false;
  }
  set_retry(self, **e);
  if ((*e)->retry_at > 0)
    if (auto s = st.parked.save(id, **e); !s) {
      fail(self, "parking key " + shown_key(id) + ": " + s.message());
      return false;
    }
  log::warn("service '{}' parked key {} at {}[{}]@{}: {} ({}; its later records are "
            "held; release it with POST /parked/{}/<key>?action=retry|skip|drop)",
            st.service->name, shown_key(id), r.topic, r.partition.value(),
            r.offset.value(), error,
            (*e)->retry_at > 0 ? "retried automatically in " +
                                     std::to_string((*e)->retry_at - now_ms()) + " ms"
                               : std::string{"waiting for an operator"},
            st.service->name);
  publish(self, id, **e);
  return true;
}

/// Whether the task may replay, release or drop held records now: its
/// index is loaded, nothing is half-handled, and (exactly_once) its epoch is
/// open.
bool park_can_work(const task_state& st) {
  return st.park_loaded && !st.failed && !st.restoring && !st.aborting &&
         !st.awaiting_commit && !st.ack_pending && !st.stopping && !st.ctx.slot &&
         st.ctx.overflow.empty();
}

bool park_has_work(const task_state& st) {
  return st.retry_due || !st.park_ops.empty() || !st.replaying.empty() ||
         !st.removals.empty();
}

void start_replay(task_self self, const std::string& id, parked_entry& e) {
  auto& st = self->state;
  e.retry_at = 0;
  if (e.replaying) return;
  e.replaying = true;
  st.replaying.push_back(id);
  publish(self, id, e);
}

enum class replay_step { next, parked, released, stop };

/// Replays the head record of parked key `id`: the handler runs on it as on
/// input; on success it leaves the store (into `removals` when deferred),
/// on failure the key stays parked there with the new error.
replay_step replay_one(task_self self, const std::string& id,
                       std::vector<std::string>* removals) {
  auto& st = self->state;
  auto* e = st.parked.find(id);
  if (!e) return replay_step::released;
  auto rec = st.parked.head(id, *e);
  if (!rec) {
    fail(self, "reading a held record of parked key " + shown_key(id) + ": " +
                   rec.error().message());
    return replay_step::stop;
  }
  held_view held{std::move(*rec)};
  const auto& view = held.view();
  e->head_topic = std::string{view.topic};
  e->head_partition = view.partition.value();
  e->head_offset = view.offset.value();
  st.ctx.current_view = view;
  if (st.shard) st.shard->set_record_timestamp(view.timestamp);
  std::string error;
  bool retriable = true;
  // exactly_once: this record's replay threw after it had effects, and the
  // epoch was rolled back (see the poison entry in replay_failed below).
  poison_registry::key poisoned{st.service_index, "\x01" + id, st.partition,
                                static_cast<int64_t>(e->seqs.front())};
  auto p = st.poison.find({poisoned.topic, poisoned.offset});
  if (p != st.poison.end()) {
    error = p->second;
    st.poison.erase(p);
    st.node->poison.remove(poisoned);
  } else {
    bool watch = st.node->exactly_once;
    uint64_t sends_before = st.ctx.sends;
    uint64_t writes_before = watch && st.shard ? st.shard->writes() : 0;
    try {
      handle(self, view);
    } catch (const weft_error& x) {
      error = x.error().message();
      retriable = x.error().code() != errc::bad_record;
    } catch (const std::exception& x) {
      error = std::string{"handler threw: "} + x.what();
    } catch (...) {
      error = "handler threw a non-standard exception";
    }
    if (!error.empty() && watch &&
        (st.ctx.sends != sends_before ||
         (st.shard && st.shard->writes() != writes_before))) {
      // Its effects die with the epoch; the replay after the roll-back
      // finds this entry and counts the failure without the handler.
      st.aborting = true;
      st.node->poison.add(poisoned, error);
      log::warn("service '{}': held record {}[{}]@{} of parked key {} failed again ({}); "
                "aborting the epoch to roll back its effects",
                st.service->name, view.topic, view.partition.value(), view.offset.value(),
                shown_key(id), error);
      self->send(st.supervisor, abort_atom::value,
                 "service '" + st.service->name + "' replaying parked key " +
                     shown_key(id) + ": " + error);
      return replay_step::stop;
    }
  }
  if (!error.empty()) {
    e->error = cap_error(error);
    e->retriable = retriable;
    e->attempts += 1;
    e->replaying = false;
    set_retry(self, *e);
    if (auto s = st.parked.save(id, *e); !s) {
      fail(self, "parking key " + shown_key(id) + ": " + s.message());
      return replay_step::stop;
    }
    log::warn("service '{}': parked key {} failed again at {}[{}]@{}: {} ({})",
              st.service->name, shown_key(id), view.topic, view.partition.value(),
              view.offset.value(), e->error,
              e->retry_at > 0 ? "retried automatically later"
                              : std::string{"waiting for an operator"});
    publish(self, id, *e);
    return replay_step::parked;
  }
  task_counters::add(st.ctx.counters->processed);
  auto more = st.parked.pop_head(id, removals);
  if (!more) {
    fail(self, "releasing a held record of parked key " + shown_key(id) + ": " +
                   more.error().message());
    return replay_step::stop;
  }
  if (!*more) {
    log::info("service '{}' released key {}: every held record handled", st.service->name,
              shown_key(id));
    unpublish(self, id);
    return replay_step::released;
  }
  // The next record is a new head: its own failures count from zero.
  e->attempts = 0;
  publish(self, id, *e);
  return replay_step::next;
}

/// Carries out an operator's call on a parked key (still parked: checked
/// again, since an automatic retry may have released it meanwhile).
bool apply_park_op(task_self self, const std::string& id, const std::string& action,
                   std::vector<std::string>* removals) {
  auto& st = self->state;
  auto* e = st.parked.find(id);
  if (!e) return true;
  if (action == "retry") {
    log::info("service '{}': retrying parked key {} ({} held records), by request",
              st.service->name, shown_key(id), e->seqs.size());
    start_replay(self, id, *e);
    return true;
  }
  if (action == "drop") {
    auto n = st.parked.drop(id, removals);
    if (!n) {
      fail(self, "dropping parked key " + shown_key(id) + ": " + n.error().message());
      return false;
    }
    log::warn("service '{}': dropped parked key {} and its {} held records, by request",
              st.service->name, shown_key(id), *n);
    for (auto i = st.replaying.begin(); i != st.replaying.end(); ++i)
      if (*i == id) {
        st.replaying.erase(i);
        break;
      }
    unpublish(self, id);
    return true;
  }
  // skip: the head to the dead-letter topic with its error, then the rest.
  auto rec = st.parked.head(id, *e);
  if (!rec) {
    fail(self, "reading a held record of parked key " + shown_key(id) + ": " +
                   rec.error().message());
    return false;
  }
  held_view held{std::move(*rec)};
  auto dl = dead_letter_record(held.view(), e->error, st.service->name,
                               st.service->dead_letter_topic, st.dead_letter_max);
  st.ctx.send(std::move(dl), &st.ctx.slot->ref);
  log::warn("service '{}': skipped the head record {}[{}]@{} of parked key {} to {}, "
            "by request; replaying its other {} held records",
            st.service->name, held.view().topic, held.view().partition.value(),
            held.view().offset.value(), shown_key(id), st.service->dead_letter_topic,
            e->seqs.size() - 1);
  auto more = st.parked.pop_head(id, removals);
  if (!more) {
    fail(self, "skipping the head of parked key " + shown_key(id) + ": " +
                   more.error().message());
    return false;
  }
  if (!*more) {
    unpublish(self, id);
    return true;
  }
  e->attempts = 0;
  e->error = "(skipped the previous head; not run yet)";
  if (auto s = st.parked.save(id, *e); !s) {
    fail(self, "parking key " + shown_key(id) + ": " + s.message());
    return false;
  }
  start_replay(self, id, *e);
  return true;
}

/// Removes what finished replays consumed, once their outputs are in Kafka
/// (at_least_once). Runs with a slot open.
void collect_removals(task_self self) {
  auto& st = self->state;
  while (!st.removals.empty()) {
    auto& r = st.removals.front();
    if (r.slot->failed.load(std::memory_order_acquire))
      return fail(self, "delivery failed: " + r.slot->error);
    if (r.slot->outstanding.load(std::memory_order_acquire) != 0) return;
    if (auto s = st.parked.apply_removals(r.keys); !s)
      return fail(self, "removing released records of parked keys: " + s.message());
    st.removals.pop_front();
  }
}

/// The task's park work, in an open epoch between two records: operators'
/// calls, due automatic retries, and up to replay_batch held records of
/// the keys being replayed. Asks to be called again while work is left.
void park_work(task_self self) {
  auto& st = self->state;
  if (!st.park || !park_can_work(st)) return;
  auto now = now_ms();
  bool due = false;
  st.retry_due = false;
  timestamp_ms next_due = 0;
  for (auto& [id, e] : st.parked.entries()) {
    if (e.retry_at == 0 || e.replaying) continue;
    if (e.retry_at <= now)
      due = true;
    else if (next_due == 0 || e.retry_at < next_due)
      next_due = e.retry_at;
  }
  if (next_due > 0) arm_park_timer(self, next_due);
  if (!due && !park_has_work(st)) return;
  // Outputs of this turn: under exactly_once in the epoch (a slot outside
  // the input's offsets); at_least_once in a slot of their own, so what the
  // replay consumed leaves the store only once they are in Kafka.
  bool defer = !st.node->exactly_once;
  slot_ptr own;
  if (defer) {
    own.reset(new delivery_slot);
    st.ctx.slot = own.get();
  } else {
    st.ctx.slot = st.tracker.open_other();
  }
  std::vector<std::string> removals;
  auto* rm = defer ? &removals : nullptr;
  if (defer) collect_removals(self);
  while (!st.failed && !st.park_ops.empty()) {
    auto [id, action] = std::move(st.park_ops.front());
    st.park_ops.pop_front();
    apply_park_op(self, id, action, rm);
  }
  if (due) {
    std::vector<std::string> ready;
    for (auto& [id, e] : st.parked.entries())
      if (e.retry_at > 0 && e.retry_at <= now && !e.replaying) ready.push_back(id);
    for (auto& id : ready)
      if (auto* e = st.parked.find(id)) {
        log::info("service '{}': retrying parked key {} (attempt {} of {})",
                  st.service->name, shown_key(id), e->attempts + 1,
                  st.service->park_retries + 1);
        start_replay(self, id, *e);
      }
  }
  size_t budget = replay_batch;
  while (!st.failed && !st.aborting && budget > 0 && !st.replaying.empty() &&
         st.ctx.overflow.empty()) {
    auto id = st.replaying.front();
    auto step = replay_one(self, id, rm);
    --budget;
    if (step == replay_step::stop) break;
    if (step != replay_step::next) st.replaying.pop_front();
  }
  st.ctx.current_view = record_view{};
  if (defer) {
    st.ctx.slot = nullptr;
    own->outstanding.fetch_sub(1, std::memory_order_acq_rel); // closed
    if (!removals.empty())
      st.removals.push_back({std::move(own), std::move(removals)});
    else if (own->outstanding.load(std::memory_order_acquire) != 0)
      st.removals.push_back({std::move(own), {}}); // its deliveries still count
  } else {
    st.tracker.close(st.ctx.slot);
    st.ctx.slot = nullptr;
  }
  if (!st.ctx.overflow.empty()) {
    // The producer is full: run() hands the rest over first, then goes on.
    schedule_retry(self);
    return;
  }
  if (!st.failed && !st.aborting && (!st.replaying.empty() || !st.park_ops.empty()) &&
      !st.park_nudged) {
    // More to replay: after the input and messages queued meanwhile.
    st.park_nudged = true;
    self->send(self, park_atom::value);
  }
}

/// After the restore: the parked keys of the shard, published, with their
/// automatic retries armed, and replays cut short by a roll-back resumed.
void load_parked(task_self self) {
  auto& st = self->state;
  if (!st.park || !st.shard) return;
  auto* store = st.shard->kv(parked_store(st.service->name));
  if (!store) return fail(self, "the parked store is missing");
  st.ctx.slot = st.tracker.open_other(); // the writes' changelog records, if any
  auto s = st.parked.load(store);
  st.tracker.close(st.ctx.slot);
  st.ctx.slot = nullptr;
  if (!s) return fail(self, "loading parked keys: " + s.message());
  st.park_loaded = true;
  std::vector<std::string> resume;
  for (auto& [where, error] : st.poison)
    if (!where.first.empty() && where.first[0] == '\x01')
      resume.push_back(where.first.substr(1));
  std::vector<std::string> ids;
  for (auto& [id, e] : st.parked.entries())
    ids.push_back(id);
  for (auto& id : ids) {
    auto* e = st.parked.find(id);
    if (std::find(resume.begin(), resume.end(), id) != resume.end())
      start_replay(self, id, *e);
    else if (e->retry_at > 0)
      arm_park_timer(self, e->retry_at);
    publish(self, id, *e);
  }
  if (!ids.empty())
    log::info("service '{}' partition {}: {} parked keys, {} held records",
              st.service->name, st.partition, st.parked.size(), st.parked.held());
}

/// An operator's call on parked key `id` (retry, skip or drop): checked and
/// queued for the next open epoch; the answer's value is JSON with the HTTP
/// status to give.
cluster::query_answer park_request(task_self self, const std::string& id,
                                   const std::string& action) {
  auto& st = self->state;
  cluster::query_answer a;
  auto key = parked_keys::key_of(id);
  nlohmann::json j{{"service", st.service->name}, {"partition", st.partition}};
  if (key && string_serde::deserialize(*key))
    j["key"] = *key;
  else
    j["key"] = nullptr;
  j["action"] = action;
  auto answer = [&](int http, const std::string& why) {
    j["http"] = http;
    if (!why.empty()) j[http >= 400 ? "error" : "result"] = why;
    a.found = true;
    a.value = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return a;
  };
  if (!st.park)
    return answer(404, "service '" + st.service->name + "' does not park keys");
  if (!st.park_loaded || st.restoring || st.failed || st.aborting || st.stopping) {
    a.code = static_cast<int32_t>(errc::state_not_ready);
    a.error = "service '" + st.service->name + "' partition " +
              std::to_string(st.partition) +
              " is restoring, rolling back or stopping; retry shortly";
    return a;
  }
  if (action != "retry" && action != "skip" && action != "drop")
    return answer(400, "action must be retry, skip or drop, not '" + action + "'");
  auto* e = st.parked.find(id);
  bool queued = false;
  for (auto& op : st.park_ops)
    if (op.first == id) queued = true;
  if (!e)
    return answer(404, "key " + shown_key(id) + " is not parked in service '" +
                           st.service->name + "' partition " +
                           std::to_string(st.partition));
  if ((e->replaying || queued) && action != "drop")
    return answer(409, "key " + shown_key(id) +
                           " is being released already; see GET /parked for how it "
                           "ends");
  j["held"] = e->seqs.size();
  st.park_ops.emplace_back(id, action);
  if (!st.retry_scheduled) park_work(self);
  if (!st.park_ops.empty() && !st.park_nudged) {
    // Not now (mid-epoch commit, producer full): as soon as it can.
    st.park_nudged = true;
    self->send(self, park_atom::value);
  }
  if (action == "drop")
    return st.parked.find(id) ? answer(202, "the drop is queued for the next open epoch")
                              : answer(200, "dropped its held records");
  return answer(202, action == "skip"
                         ? "skipped the head record to the dead-letter topic; the "
                           "others are replayed in order"
                         : "released: its held records are replayed in order");
}

/// After a record was handled (or held): counts it, and runs stream-time
/// punctuation when due.
bool finish_record(task_self self) {
  auto& st = self->state;
  task_counters::add(st.ctx.counters->processed);
  if (st.ctx.holding) task_counters::add(st.ctx.counters->ahead);
  auto interval = st.service->punctuate_ms;
  if (interval > 0 && st.ctx.stream_time_ >= st.next_stream_punctuation) {
    if (st.next_stream_punctuation > 0) punctuate(self);
    st.next_stream_punctuation = (st.ctx.stream_time_ / interval + 1) * interval;
  }
  return true;
}

/// Handles one record: the handler (or, for a record whose epoch was rolled
/// back, the bad-record policy), then stream-time punctuation. Returns false
/// when the task must stop before the next record (it failed, or asks for
/// the epoch to be aborted); the record then counts as not handled.
bool handle_one(task_self self, const record_view& view) {
  auto& st = self->state;
  st.ctx.current_view = view;
  if (view.timestamp > st.ctx.stream_time_) st.ctx.stream_time_ = view.timestamp;
  if (st.shard) st.shard->set_record_timestamp(view.timestamp);
  if (!st.parked.empty()) {
    // A parked key's later records wait behind its bad one, in order.
    parked_keys::key_id_into(st.park_id, view.key);
    if (auto* e = st.parked.find(st.park_id)) {
      if (parked_keys::already_held(*e, view)) {
        // Re-delivered after a crash (at_least_once): held already.
        log::debug("service '{}': {}[{}]@{} of parked key {} is held already; skipped",
                   st.service->name, view.topic, view.partition.value(),
                   view.offset.value(), shown_key(st.park_id));
        return finish_record(self);
      }
      // An earlier record of the head's partition, re-delivered, ran before
      // the bad one: it runs again in its place (an at-least-once repeat).
      if (!parked_keys::before_head(*e, view)) {
        if (!hold_record(self, *e, view)) return false;
        return finish_record(self);
      }
    }
  }
  if (!st.poison.empty()) {
    auto p = st.poison.find({std::string{view.topic}, view.offset.value()});
    if (p != st.poison.end())
      // The epoch this record failed in was rolled back; now the policy
      // decides, and the handler does not run again.
      return handle_bad_record(self, view, p->second);
  }
  std::string error;
  bool retriable = true;
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
    // A record that cannot be decoded fails the same way every time.
    retriable = e.error().code() != errc::bad_record;
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
      abort_epoch(self, view, error);
      return false;
    }
    if (!handle_bad_record(self, view, error, retriable)) return false;
  }
  return finish_record(self);
}

/// Counts a batch of `n` records of `topic` handled (the map's edges): once
/// per batch, a look-up among the service's few input topics.
void count_read(task_self self, std::string_view topic, size_t n) {
  auto& st = self->state;
  auto& topics = st.service->input_topics;
  for (size_t i = 0; i < topics.size() && i < st.ctx.counters->inputs; ++i)
    if (topics[i] == topic) return task_counters::add(st.ctx.counters->read[i], n);
}

/// After a record that left outputs waiting: whether the task must pause.
/// Working ahead, once it holds epoch.work.ahead.bytes (the committed
/// message runs it again); otherwise when the producer is full (it retries
/// shortly).
bool output_blocked(task_self self) {
  auto& st = self->state;
  if (st.ctx.holding) return st.ctx.hold_full();
  if (st.ctx.flush_overflow()) return false;
  schedule_retry(self);
  return true;
}

/// One input: handles queued batches in offset order until done, blocked by
/// a full producer, or failed.
void run_fifo(task_self self) {
  auto& st = self->state;
  while (!st.queue.empty() && (!st.awaiting_commit || st.ctx.holding) && !st.failed) {
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
        if (pb.next_offset.value() >= 0)
          st.marker_offsets.emplace_back(pb.topic, pb.next_offset);
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
      if (!handle_one(self, batch.view(st.position))) return;
      ++st.position;
      if (!st.ctx.overflow.empty() && output_blocked(self)) return;
    }
    st.tracker.close(st.ctx.slot, batch.next_offset().value());
    if (st.node->exactly_once)
      st.next_offsets[std::string{batch.view(0).topic}] = batch.next_offset();
    st.ctx.slot = nullptr;
    count_read(self, batch.view(0).topic, batch.size());
    self->send(pb.source, ack_atom::value, pb.id);
    st.queue.pop_front();
    st.position = 0;
  }
}

/// The input of `source`, registered on first contact.
input_source& input_of(task_self self, const partition_actor& source) {
  auto& st = self->state;
  for (auto& in : st.inputs)
    if (in.actor == source) return in;
  st.inputs.emplace_back();
  st.inputs.back().actor = source;
  return st.inputs.back();
}

void learn_topic(task_self self, input_source& in, std::string_view topic) {
  if (!in.topic.empty()) return;
  in.topic = std::string{topic};
  auto r = self->state.ranks.find(in.topic);
  in.rank = r != self->state.ranks.end() ? r->second : INT32_MAX;
}

/// What the partition actor says of the records it has not handed on: a
/// change restarts the wait for the input (max.task.idle.ms counts from when
/// it is known to be at its end).
void set_input_state(input_source& in, input_state state) {
  if (in.state == state) return;
  in.state = state;
  in.waiting = false;
}

/// Arms the timer that runs the task again at `due`, unless an earlier one
/// is armed.
void wake_at(task_self self, caf::timestamp due, caf::timestamp now) {
  auto& st = self->state;
  if (st.idle_timer && st.idle_due <= due) return;
  st.idle_timer = true;
  st.idle_due = due;
  auto delay = std::chrono::duration_cast<std::chrono::milliseconds>(due - now) +
               std::chrono::milliseconds(1);
  self->delayed_send(self, delay, idle_atom::value);
}

/// Closes the delivery slot of a task taking records of several inputs: it
/// covers, per input, the records up to that input's next offset.
void close_ordered_slot(task_self self) {
  auto& st = self->state;
  if (!st.ctx.slot) return;
  std::vector<std::pair<std::string, int64_t>> offs;
  for (auto i : st.slot_inputs) {
    auto& in = st.inputs[i];
    in.in_slot = false;
    offs.emplace_back(in.topic, in.next_offset);
  }
  st.slot_inputs.clear();
  st.tracker.close(st.ctx.slot, std::move(offs));
  st.ctx.slot = nullptr;
}

/// The input whose next record comes first, or -1 to stop (nothing to do, or
/// the task waits for an empty input). `bound` gets the (timestamp, rank) of
/// the next record of any other input: the chosen one's records before it
/// may go in one run.
int choose_input(task_self self, std::pair<timestamp_ms, int>& bound) {
  auto& st = self->state;
  constexpr std::pair<timestamp_ms, int> none{INT64_MAX, INT32_MAX};
  std::pair<timestamp_ms, int> best = none;
  bound = none;
  int pick = -1;
  bool wait = false;
  caf::timestamp now{};
  caf::timestamp due = caf::timestamp::max();
  const bool may_wait = !st.stopping && st.max_idle_ms >= 0;
  // Whether, and until when, to wait for an input with nothing buffered.
  auto waits_until = [&](bool& flag, caf::timestamp& from, bool idle) {
    if (now == caf::timestamp{}) now = caf::make_timestamp();
    if (!flag) flag = true, from = now;
    auto limit = idle ? std::chrono::milliseconds(st.max_idle_ms)
                      : std::max<std::chrono::milliseconds>(
                            fetch_wait_limit, std::chrono::milliseconds(st.max_idle_ms));
    return from + limit;
  };
  for (size_t i = 0; i < st.inputs.size(); ++i) {
    auto& in = st.inputs[i];
    if (in.aligned) continue; // its next records are the next epoch's
    if (in.has_record()) {
      auto& head_batch = *in.items.front().batch;
      if (in.position >= head_batch.size()) {
        // A finished batch must have been dropped (run_ordered): its head
        // is past its end. Fail rather than read there.
        fail(self, "internal: input " + in.topic + " kept a finished batch at its head");
        return -1;
      }
      std::pair<timestamp_ms, int> head{head_batch.timestamp(in.position), in.rank};
      if (head < best) {
        bound = best;
        best = head;
        pick = static_cast<int>(i);
      } else if (head < bound) {
        bound = head;
      }
      continue;
    }
    if (!may_wait) continue;
    bool idle = in.state == input_state::at_end || in.state == input_state::starved;
    auto until = waits_until(in.waiting, in.waited_from, idle);
    if (now < until) {
      wait = true;
      due = std::min(due, until);
    }
  }
  if (may_wait && st.inputs.size() < st.sources) {
    // A partition that has not said anything yet: its first fetch is out.
    auto until = waits_until(st.unseen_waiting, st.unseen_from, false);
    if (now < until) {
      wait = true;
      due = std::min(due, until);
    }
  }
  if (pick < 0) return -1;
  if (wait) {
    wake_at(self, due, now);
    return -1;
  }
  if (!may_wait) return pick;
  // Processing ahead of every empty input: count each once until it has
  // records again (Kafka Streams' enforced processing).
  if (st.inputs.size() < st.sources && !st.unseen_ahead) {
    st.unseen_ahead = true;
    st.node->counters.enforced_processing.fetch_add(1, std::memory_order_relaxed);
    log::warn(
        "task {}[{}]: an input partition did not answer its first fetch in {} s; "
        "processing ahead of it (results may be out of timestamp order)",
        st.service->name, st.partition,
        std::chrono::duration_cast<std::chrono::seconds>(now - st.unseen_from).count());
  }
  for (auto& in : st.inputs) {
    if (in.aligned || in.has_record() || in.ahead) continue;
    in.ahead = true;
    st.node->counters.enforced_processing.fetch_add(1, std::memory_order_relaxed);
    auto waited =
        std::chrono::duration_cast<std::chrono::milliseconds>(now - in.waited_from)
            .count();
    if (in.state == input_state::at_end || in.state == input_state::starved)
      log::debug("task {}[{}]: processing ahead of {} after {} ms ({}; "
                 "max.task.idle.ms={})",
                 st.service->name, st.partition, in.topic, waited,
                 in.state == input_state::at_end ? "at its end"
                                                 : "its records are held by another "
                                                   "task reading it",
                 st.max_idle_ms);
    else
      log::warn("task {}[{}]: {} has records on the broker that did not arrive in {} "
                "ms; processing ahead of it (results may be out of timestamp order)",
                st.service->name, st.partition, in.topic.empty() ? "an input" : in.topic,
                waited);
  }
  return pick;
}

/// Several inputs: takes the buffered record with the smallest timestamp
/// next (ties: tables first, then the declaration order), waiting for an
/// empty input as max.task.idle.ms says, until nothing is left, the task
/// waits, the producer is full, or the task failed.
void run_ordered(task_self self) {
  auto& st = self->state;
  while ((!st.awaiting_commit || st.ctx.holding) && !st.failed && !st.aborting) {
    if (st.node->exactly_once) {
      // In-band markers at the heads: that input's epoch is complete.
      for (auto& in : st.inputs) {
        if (in.aligned || in.items.empty() || !in.items.front().marker) continue;
        auto& m = in.items.front();
        in.aligned = true;
        ++st.aligned_inputs;
        st.epoch = m.epoch;
        if (m.next_offset.value() >= 0)
          st.marker_offsets.emplace_back(m.topic, m.next_offset);
        in.items.pop_front();
      }
      if (st.sources > 0 && st.aligned_inputs == st.sources) {
        close_ordered_slot(self);
        reach_markers(self);
        if (!send_ack(self)) return schedule_retry(self);
        continue;
      }
    }
    std::pair<timestamp_ms, int> bound;
    auto pick = choose_input(self, bound);
    if (pick < 0) break;
    auto& in = st.inputs[static_cast<size_t>(pick)];
    auto& pb = in.items.front();
    auto& batch = *pb.batch;
    if (!st.ctx.slot) st.ctx.slot = st.tracker.open(std::string{});
    if (!in.in_slot) {
      in.in_slot = true;
      st.slot_inputs.push_back(static_cast<size_t>(pick));
    }
    // A batch handled to its end is acked and dropped at once, also when the
    // task pauses right after its last record: choose_input reads the head
    // record of every input, and a finished batch has none (reading past
    // its end crashed a task that paused at a batch's last record).
    auto finish_batch = [&] {
      if (in.position < batch.size()) return;
      count_read(self, in.topic, batch.size());
      self->send(pb.source, ack_atom::value, pb.id);
      in.items.pop_front();
      in.position = 0;
    };
    // Its records up to the next record of another input, at least one.
    auto first = in.position;
    while (in.position < batch.size()) {
      if (in.position > first &&
          std::make_pair(batch.timestamp(in.position), in.rank) > bound)
        break;
      auto view = batch.view(in.position);
      if (!handle_one(self, view)) return;
      in.next_offset = view.offset.value() + 1;
      ++in.position;
      if (!st.ctx.overflow.empty() && output_blocked(self)) return finish_batch();
    }
    finish_batch();
  }
  if (st.ctx.overflow.empty() || st.ctx.holding) close_ordered_slot(self);
}

/// Handles queued input until done, blocked by a full producer, or failed.
void run(task_self self) {
  auto& st = self->state;
  if (st.failed || st.restoring || st.aborting) return;
  if (st.ctx.holding) {
    if (st.ctx.hold_full()) return; // the committed message runs it again
  } else if (!st.ctx.flush_overflow()) {
    return schedule_retry(self);
  }
  if (st.ack_pending && !send_ack(self)) return schedule_retry(self);
  if (st.ordered)
    run_ordered(self);
  else
    run_fifo(self);
  if (st.park && park_has_work(st)) park_work(self);
  request_timers(self);
}

/// At each commit interval: flush the stores (their caches write changelog
/// records into a flush slot), write checkpoints that are safe, and report
/// what may be committed.
task_offsets commit_point(task_self self, bool flush) {
  auto& st = self->state;
  bool between_batches = !st.ctx.slot && st.ctx.overflow.empty();
  if (flush && st.shard && !st.restoring && !st.failed && between_batches) {
    st.ctx.slot = st.tracker.open_flush();
    if (st.timers) remove_fired_timers(self);
    save_stream_time(self);
    auto s = st.failed ? status{} : st.shard->flush();
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

task_actor::behavior_type task_behavior(task_self self, node_context* node,
                                        size_t service_index, int32_t partition,
                                        size_t task_index, size_t sources,
                                        bool direct_markers,
                                        supervisor_actor supervisor) {
  auto& st = self->state;
  st.node = node;
  node->live_actors.fetch_add(1, std::memory_order_acq_rel);
  st.service_index = service_index;
  st.sources = sources;
  st.direct_markers = direct_markers;
  if (node->exactly_once) st.poison = node->poison.of(service_index, partition);
  st.service = &node->services[service_index];
  if (st.service->policy == bad_record_policy::dead_letter ||
      st.service->policy == bad_record_policy::park)
    st.dead_letter_max = max_message_bytes(node->cfg);
  st.park = st.service->policy == bad_record_policy::park;
  st.address = self->address();
  if (st.park && node->parked) node->parked->attach(service_index, partition, st.address);
  st.partition = partition;
  st.task_index = task_index;
  st.supervisor = std::move(supervisor);
  st.ctx.node = node;
  st.ctx.max_held_bytes =
      static_cast<size_t>(node->cfg.get_int("epoch.work.ahead.bytes"));
  st.ctx.service = st.service;
  st.ctx.partition = partition;
  st.ctx.counters =
      node->counters.tasks.cell(service_index, partition, st.service->input_topics.size(),
                                st.service->output_topics.size());
  st.impl = st.service->factory();
  st.impl->init(partition_id{partition});
  for (auto& out : st.impl->outputs())
    st.ctx.key_suffixes.push_back(out.key_suffix);
  // Under exactly_once the transaction decides what commits; the tracker
  // only reports failed deliveries.
  st.tracker = delivery_tracker{!st.service->stores.empty() && !node->exactly_once};
  if (!st.service->stores.empty()) {
    // Opened and restored on the restore thread: both block on the disk and
    // Kafka. The task takes its shard when `restored` arrives.
    st.restoring = true;
    st.opening = std::make_shared<task_state::shard_slot>();
    caf::actor_addr weak = self->address();
    // A task that starts while the node stops (its supervisor spawned it
    // just before) finds the restore thread gone: it stays restoring and
    // never touches its stores.
    if (auto* r = node->restorer) {
      auto* task_ctx = &st.ctx;
      auto* service = st.service;
      st.restore_ticket = r->submit(
          [node, partition, service, task_ctx] {
            return state::shard::open(*node->stores, node->state_dir,
                                      node->application_id, partition, service->stores,
                                      task_ctx, node->exactly_once);
          },
          [weak, slot = st.opening](result<std::unique_ptr<state::shard>> opened,
                                    uint64_t) {
            // A restore cut short by the node stopping is no failure.
            if (!opened && opened.error().code() == errc::shutting_down) return;
            std::string error;
            if (opened) {
              std::lock_guard<std::mutex> guard{slot->mu};
              slot->shard = std::move(*opened);
            } else {
              error = opened.error().message();
            }
            if (auto a = caf::actor_cast<task_actor>(weak))
              caf::anon_send(a, restored_atom::value, error);
          });
    }
  }
  if (st.service->punctuate_ms > 0)
    st.next_wall_punctuation = now_ms() + st.service->punctuate_ms;
  // Several input partitions: timestamp order. Equal timestamps go to table
  // inputs first (a stream record sees a table update of its own time, as
  // "the table as of the record's time" says), then in declaration order.
  st.ordered = sources > 1;
  st.max_idle_ms = node->cfg.get_int("max.task.idle.ms");
  {
    auto& topics = st.service->input_topics;
    for (size_t i = 0; i < topics.size(); ++i)
      st.ranks[topics[i]] =
          static_cast<int>(i) + (st.service->table_stores.count(topics[i]) ? 0 : 1 << 20);
  }
  return {
      [self](batch_atom, batch_ptr batch, uint64_t id, partition_actor source,
             input_state state) {
        auto& st = self->state;
        if (st.stopping && (st.restoring || st.failed)) {
          self->send(source, ack_atom::value, id);
          return;
        }
        if (!st.ordered) {
          st.queue.push_back({std::move(batch), id, std::move(source)});
          if (st.queue.size() == 1 && !st.retry_scheduled) run(self);
          return;
        }
        auto& in = input_of(self, source);
        learn_topic(self, in, batch->view(0).topic);
        set_input_state(in, state);
        in.waiting = false;
        in.ahead = false;
        in.items.push_back({std::move(batch), id, std::move(source)});
        if (!st.retry_scheduled) run(self);
      },
      [self](input_atom, input_state state) {
        auto& st = self->state;
        if (!st.ordered) return;
        auto& in =
            input_of(self, caf::actor_cast<partition_actor>(self->current_sender()));
        set_input_state(in, state);
        if (!st.retry_scheduled) run(self);
      },
      [self](idle_atom) {
        auto& st = self->state;
        st.idle_timer = false;
        if (!st.retry_scheduled) run(self);
      },
      [self](restored_atom, const std::string& error) {
        auto& st = self->state;
        st.restore_ticket = 0;
        if (!error.empty()) return fail(self, "opening and restoring state: " + error);
        {
          std::lock_guard<std::mutex> guard{st.opening->mu};
          st.shard = std::move(st.opening->shard);
        }
        st.opening.reset();
        st.ctx.shard = st.shard.get();
        for (auto& spec : st.service->stores)
          st.node->shards.add(spec.name, st.partition, st.service->partitions,
                              st.shard.get());
        st.restoring = false;
        load_stream_time(self);
        if (st.failed) return;
        load_parked(self);
        if (st.failed) return;
        if (st.impl->timers_enabled())
          if (auto* store = st.shard->kv(service_base::timer_store(st.service->name))) {
            st.timers = std::make_unique<state::timer_index>(*store);
            st.ctx.timer_idx = st.timers.get();
          }
        st.shard->set_ready(true);
        self->send(st.supervisor, restored_atom::value, st.task_index);
        run(self);
      },
      [self](retry_atom) {
        self->state.retry_scheduled = false;
        run(self);
      },
      [self](restored_atom) {
        auto& st = self->state;
        st.joined = true;
        if (!st.restoring && !st.failed) request_timers(self);
      },
      [self](timer_atom) {
        self->state.timer_round_sent = false;
        fire_timers(self);
      },
      [self](marker_atom, weft::epoch epoch, const std::string& topic,
             weft::offset next) {
        auto& st = self->state;
        pending_batch m;
        m.id = 0;
        m.source = caf::actor_cast<partition_actor>(self->current_sender());
        m.marker = true;
        m.epoch = epoch;
        m.topic = topic;
        m.next_offset = next;
        if (st.ordered) {
          auto& in = input_of(self, m.source);
          learn_topic(self, in, topic);
          in.items.push_back(std::move(m));
          if (!st.retry_scheduled) run(self);
          return;
        }
        st.queue.push_back(std::move(m));
        if (st.queue.size() == 1 && !st.retry_scheduled) run(self);
      },
      [self](marker_atom, weft::epoch epoch) {
        // A direct marker: cut here. The offsets are those after the last
        // record handled from each source (mid-batch when the producer
        // stalled the task inside one).
        auto& st = self->state;
        if (!st.direct_markers || st.failed || st.aborting || st.awaiting_commit ||
            st.ack_pending)
          return;
        st.epoch = epoch;
        if (st.ordered) {
          // Each input is cut after the last record handled from it.
          st.marker_offsets.clear();
          for (auto& in : st.inputs)
            if (in.next_offset >= 0)
              st.marker_offsets.emplace_back(in.topic, weft::offset{in.next_offset});
          reach_markers(self);
          if (!st.failed && !send_ack(self)) schedule_retry(self);
          return;
        }
        st.marker_offsets.assign(st.next_offsets.begin(), st.next_offsets.end());
        if (!st.queue.empty() && st.position > 0 && !st.queue.front().marker) {
          auto& b = *st.queue.front().batch;
          auto topic = std::string{b.view(0).topic};
          auto next = weft::offset{b.view(st.position - 1).offset.value() + 1};
          bool found = false;
          for (auto& [t, o] : st.marker_offsets)
            if (t == topic) o = next, found = true;
          if (!found) st.marker_offsets.emplace_back(topic, next);
        }
        reach_markers(self);
        if (!st.failed && !send_ack(self)) schedule_retry(self);
      },
      [self](committed_atom, weft::epoch epoch, bool next_open) {
        // The epoch's transaction committed: its (sealed) state writes may
        // reach RocksDB. With `next_open` the next transaction has begun:
        // what the task produced working ahead goes to the producer now, and
        // input it held is the next epoch's. Without (the node's last epoch,
        // or the task leaves), nothing more of it is produced.
        auto& st = self->state;
        if (!st.awaiting_commit || epoch != st.epoch) return;
        if (st.shard)
          if (auto s = st.shard->commit_epoch(); !s)
            return fail(self, "committing state: " + s.message());
        // Input was held from the markers until the ack (work_ahead) or, not
        // working ahead, until now.
        auto held_until = st.ctx.holding ? st.acked_at : caf::make_timestamp();
        auto held_us = std::chrono::duration_cast<std::chrono::microseconds>(
                           held_until - st.aligned_since)
                           .count();
        st.node->counters.aligned_us_total.fetch_add(static_cast<uint64_t>(held_us),
                                                     std::memory_order_relaxed);
        task_counters::add(st.ctx.counters->held_us, static_cast<uint64_t>(held_us));
        st.awaiting_commit = false;
        if (!next_open || st.aborting) {
          st.ctx.drop_held();
          st.aborting = true; // produces nothing more: it stops or is replaced
          return;
        }
        if (st.ctx.hold_full()) task_counters::add(st.ctx.counters->ahead_pauses);
        if (!st.ctx.holding) open_next_input(self); // it held its input
        st.ctx.holding = false;
        st.ctx.held_bytes = 0;
        if (!st.retry_scheduled) run(self); // hands the held records over first
      },
      [self](tick_atom) {
        auto& st = self->state;
        auto interval = st.service->punctuate_ms;
        // Under exactly_once, punctuation output belongs to an open epoch.
        bool open_epoch = !st.awaiting_commit && !st.ack_pending && !st.aborting &&
                          (st.joined || !st.node->exactly_once);
        if (interval > 0 && !st.restoring && !st.failed && open_epoch &&
            now_ms() >= st.next_wall_punctuation && !st.ctx.slot) {
          punctuate(self);
          st.next_wall_punctuation = now_ms() + interval;
        }
        if (st.park && !st.removals.empty() && !st.retry_scheduled) park_work(self);
        if (!st.restoring && !st.failed) request_timers(self); // the wall clock moved
        if (st.node->exactly_once) return;
        self->send(st.supervisor, offsets_atom::value, st.task_index,
                   commit_point(self, true));
      },
      [self](park_atom) {
        auto& st = self->state;
        st.park_nudged = false;
        if (st.park_timer && st.park_timer_due <= now_ms()) {
          st.park_timer = false;
          st.retry_due = true;
        }
        if (!st.retry_scheduled) park_work(self);
      },
      [self](park_atom, const std::string& id, const std::string& action)
          -> cluster::query_answer { return park_request(self, id, action); },
      [self](halt_atom) {
        // The supervisor rolls the epoch back: produce nothing more, so the
        // producer can deliver what it holds before the transaction aborts.
        self->state.aborting = true;
        return true;
      },
      [self](final_atom, bool flush) -> task_offsets {
        return commit_point(self, flush);
      },
      [self](settle_atom) -> caf::result<bool, task_offsets> {
        // Leaving the node (at_least_once): its input drained, so once the
        // stores are flushed and every slot delivered, its offsets are final.
        auto& st = self->state;
        auto offs = commit_point(self, true);
        bool settled = !st.failed &&
                       (st.restoring ||
                        (st.tracker.idle() && !st.ctx.slot && st.ctx.overflow.empty()));
        return {settled, std::move(offs)};
      },
      [self](stop_atom) {
        // The node stops. A task that cannot handle its queued input (still
        // restoring, or failed) hands the batches back unprocessed so the
        // partition actors can drain: no slot was opened for them, so none of
        // their offsets is committed, and a restart reads them again.
        auto& st = self->state;
        st.stopping = true;
        if (!st.restoring && !st.failed) {
          // Nothing more comes: no input is waited for any longer.
          if (st.ordered && !st.retry_scheduled) run(self);
          return;
        }
        for (auto& pb : st.queue)
          self->send(pb.source, ack_atom::value, pb.id);
        st.queue.clear();
        st.position = 0;
        for (auto& in : st.inputs) {
          for (auto& pb : in.items)
            if (!pb.marker) self->send(pb.source, ack_atom::value, pb.id);
          in.items.clear();
          in.position = 0;
        }
      },
  };
}

} // namespace

task_actor spawn_task_actor(caf::actor_system& sys, node_context* ctx,
                            size_t service_index, int32_t partition, size_t task_index,
                            size_t sources, bool direct_markers,
                            supervisor_actor supervisor) {
  return sys.spawn(task_behavior, ctx, service_index, partition, task_index, sources,
                   direct_markers, std::move(supervisor));
}

} // namespace weft::detail
