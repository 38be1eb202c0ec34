#pragma once
// Store layers, stacked as in Kafka Streams but with caching above the
// changelog (its order in Kafka Streams too, despite the comment in
// store.hpp):
//
//   metered -> caching -> changelogging -> base (rocksdb_store | memory_store)
//
// Why caching sits above changelogging: the cache absorbs repeated writes to
// a hot key until flush(), and only the flushed value reaches the changelog.
// A counter updated 1,000 times between two commits costs one changelog
// record, not 1,000. (Below changelogging, every put would be logged and the
// cache would only save RocksDB writes, which are cheap anyway.)
//
// Record timestamps: the changelogging layer stamps each change with the
// timestamp of the record that caused it. The task calls
// set_record_timestamp(store, record.timestamp) on the outermost layer before
// handing a record to the service; every layer forwards it down. The cache
// remembers the timestamp with each dirty entry and passes that one down when
// it flushes, so a value logged at commit time carries the timestamp of the
// record that last wrote it (what changelog retention of windowed stores
// needs), not the commit's. Until set, the timestamp is 0, which the producer
// replaces with the current time.
//
// Threads: the layers keep store.hpp's contract — one writer (the task's
// actor: writes, flush, restore, set_record_timestamp) and any number of
// concurrent readers. The cache guards its dirty entries with a
// std::shared_mutex; the changelogging layer touches its sink only from the
// writer; the meters are atomics.
//
// Ownership: each layer owns the layer below; the changelog sink is borrowed
// and must outlive the store.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "weft/state/store.hpp"

namespace weft::state {

class value_cache_budget;

/// Implemented by every layer: see "Record timestamps" above.
class timestamp_hook {
 public:
  virtual ~timestamp_hook();
  virtual void set_timestamp(timestamp_ms ts) = 0;
};

/// Sets the current record timestamp on `store` if it is a layer (else
/// nothing). Writer thread only.
void set_record_timestamp(kv_store& store, timestamp_ms ts);
void set_record_timestamp(window_store& store, timestamp_ms ts);
void set_record_timestamp(session_store& store, timestamp_ms ts);

/// Implemented by the cache (which holds writes it has not passed down yet)
/// and by the metered layer above it, which forwards the call. discard()
/// forgets those writes as if they never happened: an aborted exactly-once
/// epoch rolls back the whole stack, the cache as well as the epoch buffer
/// below the changelog (epoch_group.hpp). Writer thread only.
class discard_hook {
 public:
  virtual ~discard_hook();
  virtual void discard() = 0;
};

/// Drops the unflushed writes of `store`'s cache, if it has one (else
/// nothing). Writer thread only.
void discard_unflushed(kv_store& store);

// -- layers, one by one --------------------------------------------------------

/// Write-back cache over `inner`. put/remove land in a map of dirty entries
/// (a repeated write to a key replaces the entry); get/range read the dirty
/// entries first, then `inner`. The entries go down to `inner` at flush()
/// (then inner->flush()), or all at once when a write makes them more than
/// `max_dirty_entries`. They go down in key order, in batches of 4096 when
/// the layer below takes batches (changelogging over a base store: one
/// RocksDB WriteBatch per batch, then one log_change per entry), else one by
/// one. restore() goes straight to `inner` and answers
/// errc::internal if dirty entries exist (restores happen before processing).
/// A range() copies the dirty entries in its range once, then merges them
/// with inner's scan. It is a discard_hook: discard() drops the dirty entries
/// unwritten.
/// With a `values` budget (value_cache.hpp) it also keeps clean values: a
/// get that misses the dirty entries looks there before `inner` and keeps
/// what it read below, and every entry written down stays there; the oldest
/// go first when the node's budget is spent; discard() and restore() drop
/// them all. Ranges do not use them.
std::unique_ptr<kv_store>
make_caching_kv(std::unique_ptr<kv_store> inner, size_t max_dirty_entries = 10'000,
                std::shared_ptr<value_cache_budget> values = nullptr);

/// Logs each successful put (value) and remove (tombstone) of `inner` to
/// `sink`, under inner->name() and the current record timestamp. Window and
/// session changes are logged under their encoded keys (key_encoding.hpp).
/// restore() is not logged.
std::unique_ptr<kv_store> make_changelogging_kv(std::unique_ptr<kv_store> inner,
                                                changelog_sink& sink);
std::unique_ptr<window_store>
make_changelogging_window(std::unique_ptr<window_store> inner, changelog_sink& sink);
std::unique_ptr<session_store>
make_changelogging_session(std::unique_ptr<session_store> inner, changelog_sink& sink);

/// Implemented by the metered layers: puts and removes so far, cheap enough
/// to read per record (two relaxed loads). Writer thread or any thread.
class write_counter {
 public:
  virtual ~write_counter() = default;
  virtual uint64_t writes() const = 0;
};

/// What a metered layer counted since it was made. Latencies are totals in
/// nanoseconds, measured around the call to the layer below (a scan's
/// includes the visitor's time).
struct store_metrics {
  uint64_t gets = 0;    ///< get; single-window fetch
  uint64_t puts = 0;    ///< put with a value
  uint64_t removes = 0; ///< remove; put with nullopt
  uint64_t scans = 0;   ///< range, all, ranged fetch, fetch_all, find_sessions
  uint64_t flushes = 0;
  uint64_t restores = 0; ///< restore batches
  uint64_t errors = 0;   ///< calls that returned an error
  uint64_t get_ns = 0;
  uint64_t put_ns = 0;
  uint64_t remove_ns = 0;
  uint64_t scan_ns = 0;
  uint64_t flush_ns = 0;
  uint64_t restore_ns = 0;
};

namespace detail {
/// The counters behind store_metrics.
struct meter {
  std::atomic<uint64_t> gets{0}, puts{0}, removes{0}, scans{0}, flushes{0}, restores{0},
      errors{0};
  std::atomic<uint64_t> get_ns{0}, put_ns{0}, remove_ns{0}, scan_ns{0}, flush_ns{0},
      restore_ns{0};
  store_metrics read() const;
};
} // namespace detail

/// Counts calls and their latency, then forwards to `inner`. metrics() may
/// be read from any thread.
class metered_kv_store final : public kv_store,
                               public timestamp_hook,
                               public discard_hook,
                               public write_counter {
 public:
  explicit metered_kv_store(std::unique_ptr<kv_store> inner);
  store_metrics metrics() const { return meter_.read(); }
  uint64_t writes() const override {
    return meter_.puts.load(std::memory_order_relaxed) +
           meter_.removes.load(std::memory_order_relaxed);
  }
  kv_store& inner() { return *inner_; }

  const std::string& name() const override;
  result<std::optional<std::string>> get(std::string_view key) const override;
  status put(std::string_view key, std::string_view value) override;
  status remove(std::string_view key) override;
  status range(std::string_view from, std::string_view to,
               const visitor& fn) const override;
  uint64_t approximate_size() const override;
  status flush() override;
  status restore(const std::vector<change>& batch, int64_t next_offset) override;
  int64_t checkpoint() const override;
  status write_checkpoint(int64_t next_offset) override;
  void set_timestamp(timestamp_ms ts) override;
  void discard() override; ///< forwarded to the cache below, if any

 private:
  std::unique_ptr<kv_store> inner_;
  timestamp_hook* inner_hook_;
  discard_hook* inner_discard_;
  mutable detail::meter meter_;
};

class metered_window_store final : public window_store,
                                   public timestamp_hook,
                                   public write_counter {
 public:
  explicit metered_window_store(std::unique_ptr<window_store> inner);
  store_metrics metrics() const { return meter_.read(); }
  uint64_t writes() const override {
    return meter_.puts.load(std::memory_order_relaxed) +
           meter_.removes.load(std::memory_order_relaxed);
  }
  window_store& inner() { return *inner_; }

  const std::string& name() const override;
  status put(std::string_view key, timestamp_ms window_start,
             std::optional<std::string_view> value) override;
  result<std::optional<std::string>> fetch(std::string_view key,
                                           timestamp_ms window_start) const override;
  status
  fetch(std::string_view key, timestamp_ms from, timestamp_ms to,
        const std::function<bool(timestamp_ms, std::string_view)>& fn) const override;
  status fetch_all(timestamp_ms from, timestamp_ms to,
                   const std::function<bool(std::string_view, timestamp_ms,
                                            std::string_view)>& fn) const override;
  status flush() override;
  status restore(const std::vector<change>& batch, int64_t next_offset) override;
  int64_t checkpoint() const override;
  status write_checkpoint(int64_t next_offset) override;
  void set_timestamp(timestamp_ms ts) override;

 private:
  std::unique_ptr<window_store> inner_;
  timestamp_hook* inner_hook_;
  mutable detail::meter meter_;
};

class metered_session_store final : public session_store,
                                    public timestamp_hook,
                                    public write_counter {
 public:
  explicit metered_session_store(std::unique_ptr<session_store> inner);
  store_metrics metrics() const { return meter_.read(); }
  uint64_t writes() const override {
    return meter_.puts.load(std::memory_order_relaxed) +
           meter_.removes.load(std::memory_order_relaxed);
  }
  session_store& inner() { return *inner_; }

  const std::string& name() const override;
  status put(std::string_view key, session_window w,
             std::optional<std::string_view> value) override;
  status find_sessions(
      std::string_view key, timestamp_ms earliest_end, timestamp_ms latest_start,
      const std::function<bool(session_window, std::string_view)>& fn) const override;
  status flush() override;
  status restore(const std::vector<change>& batch, int64_t next_offset) override;
  int64_t checkpoint() const override;
  status write_checkpoint(int64_t next_offset) override;
  void set_timestamp(timestamp_ms ts) override;

 private:
  std::unique_ptr<session_store> inner_;
  timestamp_hook* inner_hook_;
  mutable detail::meter meter_;
};

// -- whole stacks ----------------------------------------------------------------

struct kv_stack_options {
  /// Write-back caching above the changelog (dedupes hot keys per flush).
  bool caching = true;
  /// Dirty entries the cache holds before it writes them all down.
  size_t max_dirty_entries = 10'000;
  /// The node's budget for the clean values the cache keeps (null: it keeps
  /// none; value_cache.hpp).
  std::shared_ptr<value_cache_budget> values;
};

/// metered -> caching -> changelogging -> `base`. A null `sink` leaves out
/// changelogging (a store without a changelog); options.caching=false leaves
/// out the cache.
std::unique_ptr<metered_kv_store> make_kv_stack(std::unique_ptr<kv_store> base,
                                                changelog_sink* sink,
                                                kv_stack_options options = {});

/// metered -> changelogging -> `base` (no cache: window aggregations update
/// each window a few times, and retention makes a cache harder to bound).
std::unique_ptr<metered_window_store>
make_window_stack(std::unique_ptr<window_store> base, changelog_sink* sink);

/// metered -> changelogging -> `base`.
std::unique_ptr<metered_session_store>
make_session_stack(std::unique_ptr<session_store> base, changelog_sink* sink);

} // namespace weft::state
