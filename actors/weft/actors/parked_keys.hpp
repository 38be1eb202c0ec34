#pragma once
// The parked keys of one task (bad.record.policy=park): which keys are held,
// why, and their held records, kept in the service's parked store
// (`<service>-parked`, a kv store of the task's shard: changelogged,
// restored, replicated to standbys and, under exactly_once, written in the
// same epochs as the rest of the task's state).
//
// Store layout (keys in byte order, so a key's records sort by sequence):
//   'm' + id            -> the key's error, attempts, since, next retry (JSON)
//   'r' + id + be64(seq) -> one held record (topic, partition, offset,
//                           timestamp, key, value, headers)
// where id = key_id(key): a null flag and a length prefix before the key's
// bytes, so ids never prefix one another and a null key is a key of its own.
// Sequences are per task and only grow; a key's records are its held input
// in the order it came.
//
// An in-memory index (id -> entry with the sequences of its records) answers
// the hot path's question, "is this key parked?", with one hash lookup, and
// only when some key is parked. load() rebuilds it from the store after the
// shard restored.
//
// Deferred removals (at_least_once): a replayed record's outputs must be in
// Kafka before the record leaves the store, or a crash in between would lose
// it. Callers pass a `removals` list that collects store keys to remove once
// those outputs are delivered (apply_removals); null removes at once (under
// exactly_once the epoch makes the removal and the outputs commit together).
//
// Owned and used by one task actor; no CAF, no locks.

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "weft/record.hpp"
#include "weft/state/store.hpp"
#include "weft/status.hpp"

namespace weft::detail {

/// A record held behind its parked key, as stored.
struct held_record {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = -1;
  timestamp_ms timestamp = 0;
  std::optional<std::string> key;
  std::optional<std::string> value;
  std::vector<header> headers;
};

/// The stored bytes of `r`, and back. decode_held fails (errc::internal) on
/// bytes it did not write.
std::string encode_held(const record_view& r);
result<held_record> decode_held(std::string_view bytes);

/// A held record as a record_view for a handler (headers included, as
/// librdkafka headers). Owns what the view borrows; not copyable.
class held_view {
 public:
  explicit held_view(held_record r);
  ~held_view();
  held_view(const held_view&) = delete;
  held_view& operator=(const held_view&) = delete;
  const record_view& view() const { return view_; }
  const held_record& record() const { return rec_; }

 private:
  held_record rec_;
  void* headers_ = nullptr; // rd_kafka_headers_t*
  record_view view_;
};

/// What is known of one parked key.
struct parked_entry {
  std::deque<uint64_t> seqs; ///< its held records, oldest (the head) first
  std::string error;         ///< why the head failed, last time it ran
  timestamp_ms since = 0;    ///< wall clock when the key was parked
  int attempts = 0;          ///< handler runs of the head that failed
  bool retriable = true;     ///< the handler threw (a decoding failure is not)
  timestamp_ms retry_at = 0; ///< next automatic retry; 0: waits for an operator
  std::string head_topic;    ///< where the head record came from
  int32_t head_partition = 0;
  int64_t head_offset = -1;
  bool replaying = false; ///< a retry or skip is going through its records
  /// Per input partition, the highest offset it holds a record of (head
  /// included): see parked_keys::already_held. Grows while the key is
  /// parked; rebuilt by load() from the records still held.
  struct held_mark {
    std::string topic;
    int32_t partition = 0;
    int64_t offset = -1;
  };
  std::vector<held_mark> held_upto;
};

class parked_keys {
 public:
  /// The id of a record key: a null flag, a 4-byte length and the bytes.
  static std::string key_id(std::optional<std::string_view> key);
  /// key_id into `out`, reusing its capacity (the hot path).
  static void key_id_into(std::string& out, std::optional<std::string_view> key);
  /// The key an id stands for (nullopt: the null key). Ids come from key_id.
  static std::optional<std::string> key_of(std::string_view id);

  /// Rebuilds the index from `store` (after the shard restored). Keys with
  /// records and no error entry (a crash between two removals) are parked
  /// with an unknown error; error entries without records are removed.
  status load(state::kv_store* store);

  bool empty() const { return index_.empty(); }
  size_t size() const { return index_.size(); }
  uint64_t held() const { return held_; }
  const std::unordered_map<std::string, parked_entry>& entries() const { return index_; }

  /// The entry of a parked key, or null. The hot path: call it only when
  /// !empty().
  parked_entry* find(const std::string& id) {
    auto i = index_.find(id);
    return i == index_.end() ? nullptr : &i->second;
  }

  /// Parks `id` at record `r`, which failed with `error` (a new key), or
  /// records the failure of its head (a parked key whose retry failed).
  /// Returns the entry.
  result<parked_entry*> park(const std::string& id, const record_view& r,
                             const std::string& error, bool retriable, timestamp_ms now);

  /// Appends `r` to the held records of the parked key `e`.
  status hold(const std::string& id, parked_entry& e, const record_view& r);

  /// Whether input record `r` of parked key `e` is one the key holds
  /// already, met again: it comes from a partition the key holds records
  /// of, at or below the highest offset held from there, and is not an
  /// earlier record of the head's partition (those ran before the bad
  /// record did). Under at_least_once a crash after the parked store reached
  /// its changelog and before the input offsets committed re-delivers such
  /// records; holding them again would hold them twice, and putting an
  /// earlier record behind the head would run it after the bad one. The
  /// caller skips a record this answers true for, and handles an earlier
  /// record of the head's partition as if the key were not parked (an
  /// at-least-once repeat, in its order).
  static bool already_held(const parked_entry& e, const record_view& r);
  /// Whether `r` is an earlier record of the head's partition than the head.
  static bool before_head(const parked_entry& e, const record_view& r);

  /// Reads the head record of `e`.
  result<held_record> head(const std::string& id, const parked_entry& e) const;
  /// Reads the last held record of `e` (the latest of its key).
  result<held_record> tail(const std::string& id, const parked_entry& e) const;

  /// Whether `r` fits in a changelog record of a parked store whose
  /// producer takes records up to `max_bytes` (message.max.bytes), with room
  /// for the store key and the framing. A record that does not cannot wait
  /// behind its key.
  static bool fits(const record_view& r, size_t max_bytes);

  /// Removes the head record of `e` (into `removals` when given). When no
  /// record is left the key is released: gone from the index, its error
  /// entry removed too. Returns whether the key is still parked.
  result<bool> pop_head(const std::string& id, std::vector<std::string>* removals);

  /// Drops every held record of `id` and releases it. Returns how many.
  result<uint64_t> drop(const std::string& id, std::vector<std::string>* removals);

  /// Writes the error entry of `e` (after its error, attempts or retry
  /// changed).
  status save(const std::string& id, const parked_entry& e);

  /// Applies deferred removals; an error entry is kept if its key was
  /// parked again since.
  status apply_removals(const std::vector<std::string>& removals);

 private:
  state::kv_store* store_ = nullptr;
  std::unordered_map<std::string, parked_entry> index_;
  uint64_t next_seq_ = 0;
  uint64_t held_ = 0;
};

} // namespace weft::detail
