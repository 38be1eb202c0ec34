#pragma once
// bad.record.policy=park for a push subscription (push_delivery.hpp): the
// keys it parked, their held records, and the operator's calls on them.
//
// A record the application keeps refusing (max.attempts answers that are
// not 2xx, with back-off between them), or that the topic's serdes cannot
// render, parks its key: that record and every later record of the key in
// its partition wait here, in order, while every other key is delivered and
// its offsets committed. An operator lists the parked keys and calls retry
// (deliver the held records again, in order), skip (the head record to the
// dead-letter topic, then the rest) or drop (forget them); push_delivery
// carries the calls out between its deliveries.
//
// Storage: weft's parked store (weft/actors/parked_keys.hpp, its layout and
// index) per assigned partition, on a RocksDB store of its own under
// <state.dir>/<application.id>/sidecar-parked/<subscription>/<partition>,
// and every change to it logged to the compacted topic
// <application.id>-sub-<name>-parked (parked_topic(); the partition of the
// input's). Whenever this sidecar is given a partition (start-up, restart
// after a kill -9, a rebalance of the group) the partition's store is
// rebuilt from that topic, so held records follow their partition through
// the group.
//
// Nothing lost: push_delivery commits an input offset only after flush()
// saw the parked-topic writes of the records before it acknowledged, and
// flushes before every poll, so a rebalance (which happens inside a poll)
// never hands a partition on with writes in flight. A record polled again
// after a crash (offsets are committed every commit.interval.ms) whose key
// is parked and whose offset is at or below its key's last held one is held
// already: hold_if_parked() says so instead of holding it twice.
//
// Threads: one delivery thread owns the stores and calls everything under
// "the delivery thread"; list(), totals() and request() are for HTTP
// threads (a snapshot under a mutex, updated by the delivery thread).

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <weft/actors/parked_keys.hpp>
#include <weft/config.hpp>
#include <weft/record.hpp>
#include <weft/status.hpp>

#include "sidecar_config.hpp"

namespace weft::kafka {
class producer;
}
namespace weft::state {
class rocksdb_env;
}

namespace sidecar {

/// A parked key for logs and answers: its text in quotes when it is UTF-8
/// (up to 200 bytes), else its size; "(null key)" for the null key. `id`:
/// parked_keys::key_id.
std::string shown_key(const std::string& id);

/// The compacted topic that logs the parked store of subscription `name`.
std::string parked_topic(const std::string& application_id, const std::string& name);

/// A parked key as listed (the delivery thread's snapshot of its entry).
struct parked_key_info {
  int32_t partition = 0;
  std::string id; ///< parked_keys::key_id of the key
  uint64_t held = 0;
  std::string error;
  int64_t since = 0; ///< wall clock ms when it was parked
  int attempts = 0;
  std::string head_topic;
  int32_t head_partition = 0;
  int64_t head_offset = -1;
  bool releasing = false; ///< a call on it is queued or its records are delivered again
};

class push_parking {
 public:
  /// Creates the parked topic if missing (compacted, `partitions` like the
  /// subscription's topic; an existing one with another count is an error
  /// naming both) and its producer. Loads nothing: assign() does.
  static weft::result<std::unique_ptr<push_parking>>
  create(const subscription_spec& s, const topic_spec& t, const weft::config& cfg,
         int partitions, std::string node_id);
  ~push_parking();
  push_parking(const push_parking&) = delete;
  push_parking& operator=(const push_parking&) = delete;

  // -- the delivery thread ---------------------------------------------------

  /// Loads the partitions of `assigned` not loaded yet (each store rebuilt
  /// from the parked topic, bounded by startup.timeout.ms) and forgets the
  /// ones no longer in it. Call after each poll, before delivering.
  weft::status assign(const std::vector<int32_t>& assigned);
  /// Whether `partition` is loaded (assigned to this sidecar).
  bool owns(int32_t partition) const { return parts_.count(partition) > 0; }

  enum class hold_outcome {
    not_parked, ///< deliver it
    held,       ///< held behind its parked key now
    held_before ///< held already (polled again after a crash)
  };
  /// If the key of `r` is parked in its partition: holds `r` behind it (or
  /// finds it held already). A record that does not fit in the parked
  /// topic (fits() false) is not held: errc::invalid_argument, and the
  /// caller dead-letters it.
  weft::result<hold_outcome> hold_if_parked(const weft::record_view& r);
  /// Parks the key of `r` at `r` with `error` (a key not parked yet), or
  /// records another failure of its head (a key whose release failed
  /// again: its replay stops). `r` must fit().
  weft::status park(const weft::record_view& r, const std::string& error);
  /// Whether `r` fits in a record of the parked topic.
  bool fits(const weft::record_view& r) const;

  /// An operator's call, as the delivery thread carries it out.
  struct call {
    int32_t partition = 0;
    std::string id; ///< parked_keys::key_id
    std::string action;
    uint64_t ticket = 0;
  };
  /// The calls queued since the last take, oldest first.
  std::vector<call> take_calls();
  /// Answers call `ticket` (the HTTP thread waiting for it, if still there).
  void answer(uint64_t ticket, int http_status, const std::string& result);

  /// The entry of a parked key, or null.
  weft::detail::parked_entry* find(int32_t partition, const std::string& id);
  weft::result<weft::detail::held_record> head(int32_t partition, const std::string& id);
  /// Removes the head record; false when that was the last (the key is
  /// released).
  weft::result<bool> pop_head(int32_t partition, const std::string& id);
  /// Drops every held record of the key; how many.
  weft::result<uint64_t> drop(int32_t partition, const std::string& id);
  /// Starts (true) or ends a key's release: while it is on, push_delivery
  /// delivers its held records in order, next_replaying() names it.
  void set_replaying(int32_t partition, const std::string& id, bool on);
  /// A key being released, oldest first, or nullopt.
  std::optional<std::pair<int32_t, std::string>> next_replaying() const;

  /// Waits until every change so far is in the parked topic (acknowledged),
  /// up to `timeout_ms`; errc::timed_out if not yet, errc::kafka if a write
  /// failed for good (the parked store and its topic then differ: the
  /// subscription must stop without committing).
  weft::status flush(int timeout_ms);
  /// Whether writes are waiting for their acknowledgement.
  bool unflushed() const;

  // -- any thread ------------------------------------------------------------

  /// GET /v1/parked's entries for this subscription (service and
  /// subscription: its name), in partition and key order.
  nlohmann::json list() const;
  /// (parked keys, held records) now.
  std::pair<uint64_t, uint64_t> totals() const;
  /// The partitions loaded now.
  std::vector<int32_t> partitions() const;

  /// POST /v1/parked/<subscription>/<key>?action=…[&partition=N]: checks
  /// the call against the listing (404: not parked; 400: a bad action, or a
  /// key parked in several partitions without `partition`; 409: being
  /// released already), queues it for the delivery thread and waits up to
  /// `wait` for it to be carried out. (HTTP status, JSON answer): 202 for
  /// retry and skip, 200 for a drop carried out, 202 for one still queued
  /// (the delivery thread waits for the application, say).
  std::pair<int, nlohmann::json> request(const std::optional<std::string>& key,
                                         int64_t partition, const std::string& action,
                                         std::chrono::milliseconds wait);

  const std::string& name() const { return spec_.name; }

 private:
  push_parking() = default;
  struct partition_store;
  partition_store* store_of(int32_t partition);
  weft::status load(int32_t partition);
  void publish(int32_t partition, const std::string& id);
  void unpublish(int32_t partition, const std::string& id);
  nlohmann::json key_json(const parked_key_info& p) const;

  subscription_spec spec_;
  topic_spec topic_;
  std::string app_, node_id_, topic_name_, state_dir_;
  std::map<std::string, std::string> consumer_props_;
  int restore_timeout_ms_ = 30000;
  size_t max_bytes_ = 1000000;
  std::unique_ptr<weft::state::rocksdb_env> env_;
  std::unique_ptr<weft::kafka::producer> producer_;
  struct write_errors;
  std::shared_ptr<write_errors> errors_;
  std::map<int32_t, std::unique_ptr<partition_store>> parts_;
  std::deque<std::pair<int32_t, std::string>> replaying_;

  // The snapshot and the calls, for HTTP threads.
  mutable std::mutex mu_;
  std::condition_variable answered_;
  std::map<std::pair<int32_t, std::string>, parked_key_info> listed_;
  std::vector<int32_t> listed_parts_;
  std::vector<call> calls_;
  std::map<uint64_t, std::pair<int, std::string>> answers_;
  std::set<uint64_t> waiting_; ///< tickets whose request waits for its answer
  uint64_t next_ticket_ = 1;
};

} // namespace sidecar
