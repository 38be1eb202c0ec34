#pragma once
// What the ready-made operators (aggregate.hpp, join.hpp) and the service
// patterns (stateful_processor, enricher, gate) share: input names, typed
// decoding, and counting the records they drop on purpose.
//
// Dropped on purpose, as in Kafka Streams, are records an operator cannot
// place: without a key (aggregations and joins need one), without a value
// where a value is required, or late (for a window that already closed, see
// windows.hpp). They are not bad records: the service goes on (a service
// whose topics never carry null makes null keys and values bad records with
// treat_nulls_as_bad(), so its bad.record.policy sees them). Each drop
// increments a per-task counter, readable through drops(), and logs one
// debug line that names topic, partition, offset and the reason.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "weft/log.hpp"
#include "weft/services/stateless.hpp"
#include "weft/services/timers.hpp"

namespace weft {

/// Records an operator dropped, per task (per service instance).
struct drop_counts {
  uint64_t null_key = 0;   ///< record without a key
  uint64_t null_value = 0; ///< record without a value where one is needed
  /// Late records. A windowed aggregation counts one per (record, closed
  /// window): a hopping-window record late for two windows counts twice.
  uint64_t late = 0;
  uint64_t negative_timestamp = 0; ///< windows need timestamps >= 0, as in Kafka
};

/// Base of weft's operators: a service_base with drop counters and helpers.
class operator_base : public service_base {
 public:
  explicit operator_base(std::string name) : service_base(std::move(name)) {}

  /// What this task's instance dropped so far.
  const drop_counts& drops() const { return drops_; }

 protected:
  /// Declares an input, a user topic or a repartition (input_ref).
  size_t add_input_ref(input_ref in) {
    input_refs_.push_back(in);
    resolved_.clear();
    if (in.internal)
      add_internal_input(std::move(in.name));
    else
      add_input(std::move(in.name));
    return input_refs_.size() - 1;
  }

  /// Index (in declaration order of add_input_ref) of the input `r` came
  /// from, or -1 if it came from none (e.g. a table topic).
  int input_index(const record_view& r, const context& ctx) const {
    if (resolved_.size() != input_refs_.size()) {
      resolved_.clear();
      for (auto& in : input_refs_)
        resolved_.push_back(in.internal ? repartition_topic(ctx.application_id(), in.name)
                                        : in.name);
    }
    for (size_t i = 0; i < resolved_.size(); ++i)
      if (resolved_[i] == r.topic) return static_cast<int>(i);
    return -1;
  }

  /// Decodes a key or value, throwing weft_error(bad_record) that says
  /// which (`what`: "key", "value") on failure.
  template <class S>
  static typename S::value_type decode_or_throw(const std::optional<std::string_view>& b,
                                                const char* what) {
    auto v = decode<S>(b);
    if (!v)
      throw weft_error{
          status{errc::bad_record, std::string{what} + ": " + v.error().message()}};
    return std::move(v).value();
  }

  /// Declares an output topic the user owns.
  template <class KS, class VS>
  output<KS, VS> to(std::string topic) {
    return output<KS, VS>{
        add_output(std::move(topic), output_kind::external, partition_key_suffix_v<KS>)};
  }
  /// Declares an internal repartition topic (see repartition_topic()).
  template <class KS, class VS>
  output<KS, VS> repartition(std::string name) {
    return output<KS, VS>{add_output(std::move(name), output_kind::repartition,
                                     partition_key_suffix_v<KS>)};
  }

  /// Emits with an explicit record timestamp (output::emit keeps the input's).
  /// Works for nullable serdes too: their null is a null key or value.
  template <class KS, class VS>
  static void emit_at(context& ctx, const output<KS, VS>& out,
                      const typename KS::value_type& key,
                      const typename VS::value_type& value, timestamp_ms ts) {
    ctx.emit_bytes(out.index(), encode<KS>(key), encode<VS>(value), -1, ts);
  }
  /// Emits a tombstone for `key` with an explicit timestamp.
  template <class KS, class VS>
  static void emit_tombstone_at(context& ctx, const output<KS, VS>& out,
                                const typename KS::value_type& key, timestamp_ms ts) {
    ctx.emit_bytes(out.index(), encode<KS>(key), std::nullopt, -1, ts);
  }

  /// Declares timer `name` per key (serde KS) on `clock`: enables the
  /// service's timers (service_base::enable_timers) and returns the handle;
  /// on_timer() gets them when due (timers.hpp).
  template <class KS>
  timer_handle<KS> add_timer(std::string name, timer_clock clock) {
    enable_timers();
    return timer_handle<KS>{std::move(name), clock};
  }

  /// Records without a key, or without a value where one is needed, are bad
  /// records (the service's bad.record.policy applies) rather than drops:
  /// for services whose topics never carry null, where a null is somebody's
  /// bug to be seen (e.g. in a dead-letter topic), not counted away.
  void treat_nulls_as_bad() { nulls_are_bad_ = true; }

  void drop_null_key(const record_view& r) {
    if (nulls_are_bad_) throw weft_error{status{errc::bad_record, "key: null"}};
    drop(r, drops_.null_key, "no key");
  }
  void drop_null_value(const record_view& r) {
    if (nulls_are_bad_) throw weft_error{status{errc::bad_record, "value: null"}};
    drop(r, drops_.null_value, "no value");
  }
  void drop_negative_timestamp(const record_view& r) {
    drop(r, drops_.negative_timestamp, "negative timestamp");
  }
  /// A late record; `why` names the closed window.
  void drop_late(const record_view& r, std::string_view why) {
    drop(r, drops_.late, why);
  }

 private:
  void drop(const record_view& r, uint64_t& counter, std::string_view why) {
    ++counter;
    log::debug("{}: dropped record {}/{}@{} (timestamp {}): {}", name(), r.topic,
               r.partition.value(), r.offset.value(), r.timestamp, why);
  }

  std::vector<input_ref> input_refs_;
  mutable std::vector<std::string> resolved_;
  drop_counts drops_;
  bool nulls_are_bad_ = false;
};

/// The drop counts of service `s`: those of an operator_base, zeros for any
/// other service.
inline drop_counts drops_of(const service_base& s) {
  if (auto* op = dynamic_cast<const operator_base*>(&s)) return op->drops();
  return {};
}

namespace detail {

/// An int64 as 8 bytes whose byte order is the numeric order (sign bit
/// flipped, big-endian), for kv-store keys that must sort by time.
inline std::string sortable_time(timestamp_ms t) {
  char buf[8];
  store_big_endian(buf, static_cast<uint64_t>(t) ^ 0x8000000000000000ULL);
  return std::string(buf, 8);
}

inline timestamp_ms from_sortable_time(std::string_view b) {
  return static_cast<timestamp_ms>(load_big_endian<uint64_t>(b.data()) ^
                                   0x8000000000000000ULL);
}

} // namespace detail

} // namespace weft
