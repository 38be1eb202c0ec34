#pragma once
// A broker-less driver for testing one service, like Kafka Streams'
// TopologyTestDriver: pipe records in, read what the service wrote, look
// into its state stores. No Kafka, no actors, no threads: every call runs the
// service synchronously on the caller's thread and returns when it is done.
//
//   weft::test_driver d{weft::count<str, str>("views", "clicks", "view-counts")};
//   d.pipe<str, str>("clicks", "home", "u1", 1000);
//   d.pipe<str, str>("clicks", "home", "u2", 2000);
//   auto out = d.read_output<str, weft::int64_serde>("view-counts");
//   // out == {{"home", 1, 1000}, {"home", 2, 2000}}
//
// What it models:
// - Tasks. The driver makes one service instance per partition (calling
//   init(p)), each with its own in-memory stores for every store_decl (the
//   state/memory_store.hpp twins of the RocksDB stores; no changelogs). A
//   keyed record goes to partition partition_for(key, partitions) (Kafka's
//   murmur2, partitioner.hpp); a record without a key to partition 0.
// - Inputs. pipe() looks the topic up among the service's declarations: an
//   input (a repartition input under its full name,
//   repartition_topic(application_id, name)) calls on_record; a table topic
//   (table_decl, not global) upserts the key in the table's store, or deletes
//   it for a null value, then calls on_table_update with the old value
//   (records without a key are ignored, as Kafka Streams does); a global
//   table topic updates one store shared by all tasks and calls nothing. A
//   topic the service does not read is an error (weft_error not_found).
// - Time. Each task's stream time is the largest timestamp of any record
//   piped to it (table records included), updated before the handler runs.
//   With punctuate_interval_ms() = I > 0, a task is punctuated right after a
//   record that moved its stream time into a later multiple of I than the
//   one it was in (once, however many multiples it skipped; the first record
//   only sets the starting point), and advance_wall_clock() punctuates every
//   task each time wall time reaches its next multiple of I (once per call,
//   even if it skipped several). Wall time starts at the constructor's
//   `wall_clock_ms`; context::wall_time() returns it.
// - Timers (timers.hpp). Event-time timers fire right after the record that
//   moved their task's stream time to or past their time (after its
//   punctuation), wall-clock ones in advance_wall_clock() once wall time
//   reached them (before its punctuation); each in (time, key, name) order,
//   with the record timestamp its time (event time) or the wall time
//   (wall clock). All due ones fire, in one call.
// - Outputs. emit_bytes() records go to a queue per resolved topic name (a
//   repartition output under repartition_topic(application_id, name)), with
//   the timestamp resolved (0 = the current record's; during punctuation the
//   punctuation's time: stream time, or wall time for wall-clock punctuation)
//   and the partition resolved (negative: partition_for(key, partitions) for
//   keyed records — of the plain key for an output with windowed keys, see
//   output_decl::key_suffix — and -1 for unkeyed ones). read_output() takes
//   them out in order.
//
// Errors. A record the service cannot handle surfaces at once: pipe() throws
// weft_error — the service's own weft_error (e.g. errc::bad_record for a
// decoding failure, with the service, topic, partition and offset prefixed
// to the message) or errc::bad_record wrapping any other exception. Outputs
// of the failed call are discarded, as an aborted transaction would; state
// store writes made before the failure stay (the driver has no rollback).
// This is the `fail` bad-record policy; the runtime's `skip` and
// `dead_letter` policies are not modelled.
//
// Not thread-safe: one thread drives it. Stores and the service instances
// live as long as the driver.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "weft/services/partitioner.hpp"
#include "weft/services/service.hpp"

namespace weft {

/// One decoded output record.
template <class K, class V>
struct test_record {
  K key;
  V value;
  timestamp_ms timestamp = 0;
  bool operator==(const test_record& o) const {
    return key == o.key && value == o.value && timestamp == o.timestamp;
  }
};

class test_driver {
 public:
  /// Creates `partitions` (> 0) tasks of the service `factory` makes, for
  /// application `application_id`. Throws weft_error(invalid_argument) for a
  /// bad partition count or a store declaration the stores reject.
  explicit test_driver(service_factory factory, int32_t partitions = 1,
                       std::string application_id = "test-app",
                       timestamp_ms wall_clock_ms = 0);
  ~test_driver();
  test_driver(const test_driver&) = delete;
  test_driver& operator=(const test_driver&) = delete;

  // -- input ----------------------------------------------------------------

  /// Pipes one record into `topic` (see the top of this file for routing).
  void pipe(std::string_view topic, std::optional<std::string> key,
            std::optional<std::string> value, timestamp_ms timestamp,
            std::vector<header> headers = {});

  /// Pipes one record into partition `p` of `topic`, whatever its key.
  void pipe_to(std::string_view topic, partition_id p, std::optional<std::string> key,
               std::optional<std::string> value, timestamp_ms timestamp,
               std::vector<header> headers = {});

  /// Pipes one record, encoded with the serdes KS and VS.
  template <class KS, class VS>
  void pipe(std::string_view topic, const typename KS::value_type& key,
            const typename VS::value_type& value, timestamp_ms timestamp,
            std::vector<header> headers = {}) {
    pipe(topic, encode<KS>(key), encode<VS>(value), timestamp, std::move(headers));
  }

  /// Pipes a tombstone (null value) for `key`, encoded with KS.
  template <class KS>
  void pipe_tombstone(std::string_view topic, const typename KS::value_type& key,
                      timestamp_ms timestamp) {
    pipe(topic, encode<KS>(key), std::nullopt, timestamp);
  }

  /// Pipes records another driver produced (read_output()), into their own
  /// topics and partitions: how a test chains two services, e.g. a group-by
  /// and the aggregation reading its repartition topic.
  void pipe_records(const std::vector<record>& records);

  // -- time -----------------------------------------------------------------

  /// Moves wall time forward by `ms` (>= 0) and punctuates the tasks that
  /// are due (see the top of this file).
  void advance_wall_clock(timestamp_ms ms);
  timestamp_ms wall_time() const { return wall_time_; }
  /// Stream time of task `p`: the largest record timestamp it saw, or -1
  /// (Kafka's "no timestamp") before its first record.
  timestamp_ms stream_time(partition_id p = partition_id{0}) const;

  // -- output ---------------------------------------------------------------

  /// Takes every record written to `topic` so far, oldest first.
  std::vector<record> read_output(std::string_view topic);

  /// Takes and decodes every record written to `topic`. A record the serdes
  /// cannot decode (e.g. a tombstone for a non-nullable value serde: read
  /// with optional_serde<VS> where tombstones are expected) throws
  /// weft_error(bad_record).
  template <class KS, class VS>
  std::vector<test_record<typename KS::value_type, typename VS::value_type>>
  read_output(std::string_view topic) {
    std::vector<test_record<typename KS::value_type, typename VS::value_type>> out;
    for (auto& r : read_output(topic)) {
      auto k = decode<KS>(as_view(r.key));
      if (!k) throw weft_error{status{errc::bad_record, "key: " + k.error().message()}};
      auto v = decode<VS>(as_view(r.value));
      if (!v) throw weft_error{status{errc::bad_record, "value: " + v.error().message()}};
      out.push_back({std::move(k).value(), std::move(v).value(), r.timestamp});
    }
    return out;
  }

  /// Number of records waiting in `topic`.
  size_t output_size(std::string_view topic) const;
  /// Topics that have records waiting.
  std::vector<std::string> output_topics() const;

  // -- state ----------------------------------------------------------------

  /// The store `name` of task `p`. Throws weft_error(not_found) if the
  /// service declared no such store of that kind.
  state::kv_store& kv(std::string_view name, partition_id p = partition_id{0});
  state::window_store& window(std::string_view name, partition_id p = partition_id{0});
  state::session_store& session(std::string_view name, partition_id p = partition_id{0});
  /// The shared store of a global table.
  state::kv_store& global(std::string_view name);

  /// The value of `key` in kv store `name`, in the task that owns the key.
  template <class KS, class VS>
  std::optional<typename VS::value_type> kv_get(std::string_view name,
                                                const typename KS::value_type& key) {
    auto k = KS::serialize(key);
    auto& store = kv(name, partition_id{partition_for(k, partitions_)});
    auto v = store.get(k);
    if (!v) throw weft_error{v.error()};
    if (!*v) return std::nullopt;
    auto d = VS::deserialize(**v);
    if (!d) throw weft_error{d.error()};
    return std::move(d).value();
  }

  // -- the service ----------------------------------------------------------

  /// The instance of task `p`, e.g. to read counters of a derived type.
  service_base& service(partition_id p = partition_id{0});
  int32_t partitions() const { return partitions_; }
  const std::string& application_id() const { return app_; }

 private:
  struct task;
  class task_context;

  static std::optional<std::string_view> as_view(const std::optional<std::string>& s) {
    if (!s) return std::nullopt;
    return std::string_view{*s};
  }
  task& task_at(partition_id p);
  const task& task_at(partition_id p) const;
  void deliver(std::string_view topic, int32_t partition, std::optional<std::string> key,
               std::optional<std::string> value, timestamp_ms timestamp,
               std::vector<header> headers);
  void punctuate(task& t, timestamp_ms at);
  /// Fires every timer of `clock` due at `now` in task `t` (timers.hpp).
  void fire_timers(task& t, timer_clock clock, timestamp_ms now);

  std::string app_;
  int32_t partitions_;
  timestamp_ms wall_time_;
  timestamp_ms next_wall_punctuation_ = 0;
  std::vector<std::unique_ptr<task>> tasks_;
  std::map<std::string, std::unique_ptr<state::kv_store>, std::less<>> globals_;
  std::map<std::string, int64_t, std::less<>> offsets_; ///< "topic/partition" -> next
  std::map<std::string, std::vector<record>, std::less<>> outputs_;
};

} // namespace weft
