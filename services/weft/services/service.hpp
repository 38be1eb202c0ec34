#pragma once
// The base of every weft service, and the context its handlers write through.
//
// A service declares its inputs and outputs when it is constructed and handles
// one record at a time. The runtime creates one instance per task (service x
// input partition), so an instance's members are private to its shard and
// need no locking: each instance is only ever called by its task actor, one
// record at a time, in offset order.
//
// Most users derive from weft::stateless<KeySerde, ValueSerde> (stateless.hpp),
// which decodes records and calls a typed handler; service_base is the untyped
// layer the runtime drives.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "weft/record.hpp"
#include "weft/serde.hpp"
#include "weft/state/store.hpp"
#include "weft/state/timer_index.hpp"
#include "weft/status.hpp"

namespace weft {

/// How a service's output topic comes to exist.
enum class output_kind {
  external,    ///< a topic the user owns; it must exist at start-up
  repartition, ///< an internal topic <application.id>-<name>-repartition that
               ///< weft creates with as many partitions as the service's inputs
};

/// A declared output, untyped. Output handles (output<K,V>) index into these.
struct output_decl {
  std::string name; ///< topic name, or the repartition's short name
  output_kind kind = output_kind::external;
  /// Key bytes at the end the partitioner skips: 8 or 16 for windowed keys
  /// (partition_key_suffix_v of the output's key serde), else 0.
  uint8_t key_suffix = 0;
};

/// A declared input: a topic the user owns, or another service's repartition
/// topic (`internal` = true, `name` its short name).
struct input_decl {
  std::string name;
  bool internal = false;
};

/// A state store a service declares. The runtime creates one per task (the
/// task's shard), backed by RocksDB under state.dir, changelogged to
/// <application.id>-<name>-changelog (partition = task partition) and
/// restored from it before the task handles its first record.
struct store_decl {
  enum class kind { kv, window, session };
  std::string name;
  kind type = kind::kv;
  timestamp_ms retention_ms = 0;   ///< window/session: how long windows are kept
  timestamp_ms window_size_ms = 0; ///< window: size (for fetch bounds), 0 for kv/session
  /// Declared by weft, not by the service: the store that keeps the task's
  /// stream time (service_base::stream_time_store).
  bool internal = false;
};

/// A table input: each record of `topic` upserts (or, as a tombstone,
/// deletes) its key in the kv store `store`, then the service's on_table_update
/// runs. `global`: every node reads every partition of the topic into the
/// store before any task starts (GlobalKTable), updates trigger nothing, and
/// services read it with context::global_store().
struct table_decl {
  std::string topic;
  std::string store;
  bool global = false;
};

/// The talk's service patterns, as node::describe() draws them.
enum class service_pattern {
  stateless,    ///< filter, map, branch, re-key: no state
  enricher,     ///< data-enabled: a stream looked up in a GlobalKTable
  gate,         ///< waits for all parts of a correlation ("when A and B")
  stateful,     ///< state per key: processors, aggregations, joins, windows
  stream_aside, ///< acts on the world beside the stream (sends, calls out)
  sidecar,      ///< a service outside C++ reached through weft-sidecar
};

/// "stateless", "enricher", "gate", "stateful", "stream-aside", "sidecar".
const char* to_string(service_pattern p);

/// Name of the internal topic for a repartition `name` of application `app`.
std::string repartition_topic(std::string_view app, std::string_view name);

/// What a handler sees of the runtime: where the current record came from,
/// and how to emit records. Implemented by the task actor; valid only during
/// a handler call.
class context {
 public:
  virtual ~context();

  /// The record being processed.
  virtual const record_view& current() const = 0;
  /// The partition of the task (= of the current record).
  partition_id partition() const { return current().partition; }
  virtual const std::string& application_id() const = 0;

  /// The task's store named `name`, declared by the service with add_store()
  /// or add_table(). Throws weft_error(errc::not_found) for an undeclared name.
  virtual state::kv_store& kv_store(std::string_view name) = 0;
  virtual state::window_store& window_store(std::string_view name) = 0;
  virtual state::session_store& session_store(std::string_view name) = 0;
  /// A global table's store (read-only: the node's global table actor writes it).
  virtual const state::kv_store& global_store(std::string_view name) = 0;

  /// Stream time: the largest record timestamp this task has seen.
  virtual timestamp_ms stream_time() const = 0;
  /// Wall-clock time in ms (the test driver's is settable).
  virtual timestamp_ms wall_time() const = 0;

  /// Emits raw bytes to declared output `index`. partition < 0: by key hash
  /// (murmur2, as Kafka's Java client; for an output with windowed keys,
  /// output_decl::key_suffix, the hash of the plain key). ts 0: the current
  /// record's timestamp.
  /// Never blocks and never fails from the handler's point of view: if the
  /// producer is full the runtime holds further input until it drains.
  virtual void emit_bytes(size_t output_index, std::optional<std::string> key,
                          std::optional<std::string> value, int32_t partition = -1,
                          timestamp_ms ts = 0, std::vector<header> headers = {}) = 0;

  // -- timers (a service that called enable_timers(); see timers.hpp) --------
  // Each throws weft_error: errc::not_found when the service declared no
  // timers, errc::invalid_argument for a part over its bound (timer_index.hpp),
  // errc::io from the store; inside a handler that fails the record.

  /// Schedules timer `name` of `key` (key bytes) at `time` on `clock`,
  /// replacing the one of the same key and name. The service's on_timer()
  /// gets it once `clock` reached `time`: never earlier.
  void set_timer(std::string_view key, std::string_view name, timer_clock clock,
                 timestamp_ms time, std::string_view payload = {});
  /// Cancels timer `name` of `key`; true if one was pending.
  bool cancel_timer(std::string_view key, std::string_view name);
  /// The pending timer `name` of `key`, or nullopt.
  std::optional<timer> find_timer(std::string_view key, std::string_view name);

 protected:
  /// The task's timers, or null when the service declared none (the default).
  virtual state::timer_index* timers() { return nullptr; }

 private:
  state::timer_index& timers_or_throw();
};

/// An untyped service: a name, inputs, outputs and a record handler.
class service_base {
 public:
  explicit service_base(std::string name) : name_(std::move(name)) {}
  virtual ~service_base();
  service_base(const service_base&) = delete;
  service_base& operator=(const service_base&) = delete;

  const std::string& name() const { return name_; }
  const std::vector<input_decl>& inputs() const { return inputs_; }
  const std::vector<output_decl>& outputs() const { return outputs_; }

  /// Called once per task before the first record.
  virtual void init(partition_id) {}

  /// Handles one record. A decoding failure throws weft_error(bad_record) and
  /// any exception is a bad record: the runtime applies the service's policy.
  virtual void on_record(const record_view& r, context& ctx) = 0;

  /// Called after a record of a table input (add_table, not global) was
  /// applied to its store; `old_value` is what the store held before.
  virtual void on_table_update(const record_view& r,
                               std::optional<std::string_view> old_value, context& ctx) {}

  /// Called every punctuate_interval_ms of wall-clock time and whenever stream
  /// time advanced past the next multiple of it (timeouts, closing windows).
  virtual void on_punctuate(context& ctx) {}

  /// Called once for each timer the service set (context::set_timer) when
  /// its clock reached its time: event-time timers after the record that
  /// moved stream time there, wall-clock ones at the task's next clock tick
  /// (every commit.interval.ms). Runs like a record's handler: its outputs
  /// and state writes commit with the timer's removal (in one epoch under
  /// exactly_once; under at_least_once the timer is removed only once its
  /// outputs are acknowledged, so a crash fires it again). The current
  /// record (context::current()) has the timer's key and, as timestamp, its
  /// time (event time) or the wall time it fired at (wall clock), which
  /// outputs keep. An exception fails the task, as in on_punctuate.
  virtual void on_timer(const timer& t, context& ctx) {}

  /// The stores the service declared, and with the first of them
  /// stream_time_store(name()) (so a stateless service has none).
  const std::vector<store_decl>& stores() const { return stores_; }

  /// The kv store, declared with a service's first store, in which the
  /// runtime keeps each task's stream time (under key "task", an int64):
  /// written with the rest of the state at every commit and restored with
  /// it, so windows, grace periods and stream-time timeouts go on after a
  /// restart or failover where they were.
  static std::string stream_time_store(std::string_view service) {
    return std::string{service} + "-stream-time";
  }
  /// The kv store, declared by enable_timers(), holding a task's timers
  /// (state/timer_index.hpp).
  static std::string timer_store(std::string_view service) {
    return std::string{service} + "-timers";
  }
  bool timers_enabled() const { return timers_; }
  /// The kv store weft adds to a service with bad.record.policy=park: its
  /// parked keys' held records and errors.
  static std::string parked_store(std::string_view service) {
    return std::string{service} + "-parked";
  }
  const std::vector<table_decl>& tables() const { return tables_; }

  /// The pattern node::describe() draws this service as: what the service
  /// (or its base class) declared with describe_as(), else stateful when it
  /// declares stores (tables included), else enricher when it reads a global
  /// table, else stateless.
  service_pattern pattern() const;
  /// Words describe() adds under the pattern (e.g. "session windows"); may
  /// be empty.
  const std::string& pattern_detail() const { return pattern_detail_; }

  /// 0: never punctuated.
  timestamp_ms punctuate_interval_ms() const { return punctuate_ms_; }

 protected:
  void add_store(store_decl d) {
    declare_stream_time();
    stores_.push_back(std::move(d));
  }
  /// A table input (KTable): the topic must be co-partitioned with the
  /// service's other inputs (same partition count), checked at start-up.
  void add_table(std::string topic, std::string store) {
    declare_stream_time();
    stores_.push_back({store, store_decl::kind::kv});
    tables_.push_back({std::move(topic), std::move(store), false});
  }
  /// A global table input (GlobalKTable): replicated whole on every node.
  void add_global_table(std::string topic, std::string store) {
    tables_.push_back({std::move(topic), std::move(store), true});
  }
  void set_punctuate_interval(timestamp_ms ms) { punctuate_ms_ = ms; }
  /// Gives every task durable per-key timers (context::set_timer, on_timer)
  /// in the store timer_store(name()), changelogged and restored with the
  /// rest of its shard. Once per service; later calls do nothing.
  void enable_timers() {
    if (timers_) return;
    timers_ = true;
    add_store({timer_store(name_), store_decl::kind::kv});
  }
  /// Says which pattern this service is, for describe() (and a detail, e.g.
  /// "re-key", "session windows"); the pattern base classes call it, a
  /// service may call it again in its constructor to say more.
  void describe_as(service_pattern p, std::string detail = {}) {
    pattern_ = p;
    has_pattern_ = true;
    pattern_detail_ = std::move(detail);
  }
  void add_input(std::string topic) { inputs_.push_back({std::move(topic), false}); }
  void add_internal_input(std::string name) {
    inputs_.push_back({std::move(name), true});
  }
  /// `key_suffix`: see output_decl (the typed helpers pass
  /// partition_key_suffix_v<KeySerde>).
  size_t add_output(std::string topic, output_kind kind, uint8_t key_suffix = 0) {
    outputs_.push_back({std::move(topic), kind, key_suffix});
    return outputs_.size() - 1;
  }

 private:
  void declare_stream_time() {
    if (stores_.empty())
      stores_.push_back({stream_time_store(name_), store_decl::kind::kv, 0, 0, true});
  }

  std::string name_;
  std::vector<input_decl> inputs_;
  std::vector<output_decl> outputs_;
  std::vector<store_decl> stores_;
  std::vector<table_decl> tables_;
  timestamp_ms punctuate_ms_ = 0;
  bool timers_ = false;
  service_pattern pattern_ = service_pattern::stateless;
  bool has_pattern_ = false;
  std::string pattern_detail_;
};

/// Makes one service instance per task.
using service_factory = std::function<std::unique_ptr<service_base>()>;

/// A typed output of a service: emit(ctx, key, value) serializes with the
/// output's serdes. Declare it as a member, initialised by the service's
/// output()/repartition() helpers (see stateless.hpp).
template <class KeySerde, class ValueSerde>
class output {
 public:
  static_assert(is_serde_v<KeySerde> && is_serde_v<ValueSerde>,
                "output<K, V>: both parameters must be weft serdes (see serde.hpp)");
  using key_type = typename KeySerde::value_type;
  using value_type = typename ValueSerde::value_type;

  output() = default;
  explicit output(size_t index) : index_(index) {}

  void emit(context& ctx, const key_type& key, const value_type& value) const {
    ctx.emit_bytes(index_, KeySerde::serialize(key), ValueSerde::serialize(value));
  }
  /// Emits a tombstone (null value) for `key`.
  void emit_tombstone(context& ctx, const key_type& key) const {
    ctx.emit_bytes(index_, KeySerde::serialize(key), std::nullopt);
  }
  /// Emits to an explicit partition.
  void emit_to(context& ctx, int32_t partition, const key_type& key,
               const value_type& value) const {
    ctx.emit_bytes(index_, KeySerde::serialize(key), ValueSerde::serialize(value),
                   partition);
  }
  size_t index() const { return index_; }

 private:
  size_t index_ = 0;
};

} // namespace weft
