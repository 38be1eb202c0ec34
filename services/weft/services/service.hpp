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
};

/// A declared input: a topic the user owns, or another service's repartition
/// topic (`internal` = true, `name` its short name).
struct input_decl {
  std::string name;
  bool internal = false;
};

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

  /// Emits raw bytes to declared output `index`. partition < 0: by key hash
  /// (murmur2, as Kafka's Java client). ts 0: the current record's timestamp.
  /// Never blocks and never fails from the handler's point of view: if the
  /// producer is full the runtime holds further input until it drains.
  virtual void emit_bytes(size_t output_index, std::optional<std::string> key,
                          std::optional<std::string> value, int32_t partition = -1,
                          timestamp_ms ts = 0, std::vector<header> headers = {}) = 0;
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

 protected:
  void add_input(std::string topic) { inputs_.push_back({std::move(topic), false}); }
  void add_internal_input(std::string name) {
    inputs_.push_back({std::move(name), true});
  }
  size_t add_output(std::string topic, output_kind kind) {
    outputs_.push_back({std::move(topic), kind});
    return outputs_.size() - 1;
  }

 private:
  std::string name_;
  std::vector<input_decl> inputs_;
  std::vector<output_decl> outputs_;
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
