#pragma once
// State stores: the private state shard of one task.
//
// Stores work on bytes; typed access (serdes) is layered on top by services.
// A store is owned by exactly one task actor, which is its only writer.
// Readers outside the actor (interactive queries from HTTP threads) may call
// the const read functions concurrently with that writer: every
// implementation must make get/range/all/fetch safe against one concurrent
// writer (RocksDB is; the in-memory and caching layers lock).
//
// Layering, outermost first, as in Kafka Streams (layered_store.hpp):
//   metered (counts, latency) -> caching (write-back, dedupes hot keys until
//   flush) -> changelogging (writes each change that reaches it to the
//   changelog sink) -> rocksdb | in-memory (the bytes on disk or in RAM).
// Caching sits above changelogging so that only flushed, deduplicated values
// reach the changelog.
//
// Errors are values: a RocksDB failure comes back as errc::io with RocksDB's
// text. A store that is restoring answers reads with errc::state_not_ready.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "weft/record.hpp"
#include "weft/status.hpp"

namespace weft::state {

/// Visits one entry; return false to stop the iteration.
using visitor = std::function<bool(std::string_view key, std::string_view value)>;

/// A change to replay into a store while restoring: nullopt value = delete.
struct change {
  std::string key;
  std::optional<std::string> value;
};

/// Where changelogging stores send their changes (the task: it produces them
/// to <application.id>-<store>-changelog, partition = task partition).
class changelog_sink {
public:
  virtual ~changelog_sink();
  /// A change of `store`; value nullopt is a delete (a tombstone).
  virtual void log_change(std::string_view store, std::string_view key,
                          std::optional<std::string_view> value, timestamp_ms ts) = 0;
};

/// Ordered key-value store (byte order of keys).
class kv_store {
public:
  virtual ~kv_store();
  virtual const std::string& name() const = 0;

  virtual result<std::optional<std::string>> get(std::string_view key) const = 0;
  virtual status put(std::string_view key, std::string_view value) = 0;
  virtual status remove(std::string_view key) = 0;
  /// Visits keys in [from, to) in order; an empty `to` means to the end.
  virtual status range(std::string_view from, std::string_view to,
                       const visitor& fn) const = 0;
  virtual status all(const visitor& fn) const { return range({}, {}, fn); }
  /// Estimated number of entries.
  virtual uint64_t approximate_size() const = 0;

  /// Makes every write so far durable in the layer below (cache -> RocksDB
  /// memtable/WAL) and emits pending changelog records. Called by the task at
  /// each commit, before offsets are committed.
  virtual status flush() = 0;

  /// Applies changelog records during restore, in large batches, without
  /// going through caching or changelogging, and records `next_offset` (the
  /// changelog offset after the batch) atomically with the data.
  virtual status restore(const std::vector<change>& batch, int64_t next_offset) = 0;
  /// The changelog offset to resume restoring from (-1: restore everything).
  virtual int64_t checkpoint() const = 0;
  /// Writes the checkpoint of data flushed so far: `next_offset` is the
  /// changelog offset after the last change this store logged and flushed.
  virtual status write_checkpoint(int64_t next_offset) = 0;
};

/// Windowed store: values per (key, window start). Entries older than the
/// retention (relative to the newest window start seen) are dropped.
class window_store {
public:
  virtual ~window_store();
  virtual const std::string& name() const = 0;

  virtual status put(std::string_view key, timestamp_ms window_start,
                     std::optional<std::string_view> value) = 0; ///< nullopt deletes
  virtual result<std::optional<std::string>> fetch(std::string_view key,
                                                   timestamp_ms window_start) const = 0;
  /// Visits windows of `key` with start in [from, to], oldest first.
  virtual status fetch(std::string_view key, timestamp_ms from, timestamp_ms to,
                       const std::function<bool(timestamp_ms start, std::string_view value)>&
                         fn) const = 0;
  /// Visits every key's windows with start in [from, to].
  virtual status fetch_all(timestamp_ms from, timestamp_ms to,
                           const std::function<bool(std::string_view key, timestamp_ms start,
                                                    std::string_view value)>& fn) const = 0;
  virtual status flush() = 0;
  virtual status restore(const std::vector<change>& batch, int64_t next_offset) = 0;
  virtual int64_t checkpoint() const = 0;
  virtual status write_checkpoint(int64_t next_offset) = 0;
};

/// A session: [start, end] of one key's activity.
struct session_window {
  timestamp_ms start = 0;
  timestamp_ms end = 0;
};

/// Session store: values per (key, session window).
class session_store {
public:
  virtual ~session_store();
  virtual const std::string& name() const = 0;

  virtual status put(std::string_view key, session_window w,
                     std::optional<std::string_view> value) = 0; ///< nullopt deletes
  /// Visits sessions of `key` that end at or after `earliest_end` and start
  /// at or before `latest_start` (the ones a new record may merge with).
  virtual status find_sessions(
    std::string_view key, timestamp_ms earliest_end, timestamp_ms latest_start,
    const std::function<bool(session_window, std::string_view value)>& fn) const = 0;
  virtual status flush() = 0;
  virtual status restore(const std::vector<change>& batch, int64_t next_offset) = 0;
  virtual int64_t checkpoint() const = 0;
  virtual status write_checkpoint(int64_t next_offset) = 0;
};

} // namespace weft::state
