#pragma once
// The state shard of one task: the stores a service declared, opened for one
// partition, with their changelogs and checkpoints.
//
// Lifecycle: open() creates (or reopens) every store under
// <state.dir>/<application.id>/<partition>/<store>; restore() brings each one
// up to the end of its changelog, starting from its local checkpoint (so a
// restart reads only what is not on disk yet, and a wiped folder rebuilds
// everything); then the task uses the stores and calls flush() and
// write_checkpoints() at each commit.
//
// Exactly-once (open(..., transactional=true)): every store gets an epoch
// buffer right above its base store (epoch_group.hpp), so its writes reach
// RocksDB only at commit_epoch(), which the task calls once the Kafka
// transaction of the epoch committed; abort_epoch() drops them (and the
// caches' unflushed writes). Per epoch the task does: process records ->
// flush() (caches log their changes into the transaction) -> seal_epoch() ->
// (the next epoch's records, in the next epoch's buffer) -> the transaction
// committed -> commit_epoch() (the sealed epoch only); or, when the
// transaction aborts, abort_epoch() (both epochs). write_checkpoints() is not used then
// (commit_epoch() writes each checkpoint together with its data).
//
// Threads: restore() blocks on Kafka and RocksDB and runs on the node's
// restore thread while the task waits; everything else runs on the task's
// actor. Reads through the stores are safe from other threads at any time.

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "weft/state/rocksdb_env.hpp"
#include "weft/state/store.hpp"
#include "weft/status.hpp"
#include "weft/types.hpp"

namespace weft::kafka {
class consumer;
}

namespace weft::state {

class timestamp_hook;
class discard_hook;
class write_counter;
class epoch_group;

/// What kind of store a service asked for.
struct store_spec {
  enum class kind { kv, window, session };
  std::string name;
  kind type = kind::kv;
  timestamp_ms retention_ms = 0;
  /// Write-back caching above the changelog (kv stores): hot keys are logged
  /// once per flush instead of once per update.
  bool caching = true;
};

/// Makes the stores of a shard: RocksDB in production, memory in tests.
/// How far the node's restores are, for the metrics page: written by the
/// restore thread (restore_all), read from any thread.
struct restore_progress {
  std::atomic<uint64_t> records{0};      ///< changelog records read by restores
  std::atomic<int64_t> remaining{0};     ///< records left in the running restore
  std::atomic<int64_t> shards_active{0}; ///< shards being restored now
  std::atomic<uint64_t> shards_done{0};  ///< shards restored
};

/// What a node's stores take, for the metrics page.
struct factory_stats {
  uint64_t cache_capacity_bytes = 0; ///< the shared block cache
  uint64_t cache_usage_bytes = 0;    ///< blocks and memtable reservations in it
  uint64_t cache_pinned_bytes = 0;
  uint64_t write_buffer_bytes = 0; ///< memtables of every store
  uint64_t value_cache_bytes = 0;  ///< clean values the kv caches keep
  std::map<std::string, store_sizes> stores;
};

class store_factory {
 public:
  virtual ~store_factory();
  /// Sizes now, read from any thread (the memory twin: none).
  virtual factory_stats stats() const { return {}; }
  /// The full stack (metered, caching, changelogging into `sink`, base).
  /// With `epochs`, an epoch buffer registered with it sits directly above
  /// the base store (below the window/session encoding and every layer):
  /// the store is transactional. Null: the at-least-once stacks.
  virtual result<std::unique_ptr<kv_store>> kv(const std::string& dir,
                                               const store_spec& s, changelog_sink* sink,
                                               epoch_group* epochs) = 0;
  virtual result<std::unique_ptr<window_store>> window(const std::string& dir,
                                                       const store_spec& s,
                                                       changelog_sink* sink,
                                                       epoch_group* epochs) = 0;
  virtual result<std::unique_ptr<session_store>> session(const std::string& dir,
                                                         const store_spec& s,
                                                         changelog_sink* sink,
                                                         epoch_group* epochs) = 0;
};

/// The production factory: RocksDB stores sharing one block cache, one
/// write-buffer budget and one budget for the caches' clean values per node
/// (so memory is bounded by these three numbers, not by the number of
/// shards; value_cache.hpp), layered metered -> caching -> changelogging ->
/// RocksDB. With a null sink the changelogging layer is left out (global
/// tables); specs with caching=false leave out the cache. value_cache_bytes
/// 0 keeps no clean values.
std::unique_ptr<store_factory>
make_rocksdb_factory(size_t cache_bytes, size_t write_buffer_bytes,
                     size_t value_cache_bytes = size_t{16} << 20);

/// The in-memory twin (same layers over std::map), for tests.
std::unique_ptr<store_factory> make_memory_factory();

/// Name of the changelog topic of `store` in application `app`.
std::string changelog_topic(const std::string& app, const std::string& store);

class shard {
 public:
  /// Opens every store of `specs` for `partition`. `transactional`: the
  /// stores buffer each epoch's writes until commit_epoch() (exactly-once).
  static result<std::unique_ptr<shard>>
  open(store_factory& factory, const std::string& dir, const std::string& app,
       int32_t partition, const std::vector<store_spec>& specs, changelog_sink* sink,
       bool transactional = false);
  shard(const shard&) = delete;
  shard& operator=(const shard&) = delete;
  ~shard();

  kv_store* kv(std::string_view name);
  window_store* window(std::string_view name);
  session_store* session(std::string_view name);
  bool empty() const { return specs_.empty(); }
  const std::vector<store_spec>& specs() const { return specs_; }
  int32_t partition() const { return partition_; }

  /// Reads each store's changelog partition from the store's checkpoint to
  /// the high watermark seen when it starts, applying batches of up to
  /// `batch` changes. Blocks; bounded by `timeout_ms` per changelog read that
  /// makes no progress. Returns the number of changes applied.
  ///
  /// Transactional changelogs (exactly-once) end in commit/abort markers and
  /// may hold aborted records: `reader` must be read_committed (librdkafka's
  /// default; then its high watermark is the last stable offset, so an open
  /// transaction on the changelog is neither waited for nor read), and a
  /// partition counts as restored once the reader's position reached the
  /// watermark even though no record at high - 1 was returned (librdkafka
  /// moves the position past markers and aborted records without returning
  /// them).
  result<uint64_t> restore(kafka::consumer& reader, size_t batch, int timeout_ms);

  /// restore() for several shards at once: every changelog partition is
  /// assigned together, so librdkafka fetches them in parallel. Returns the
  /// changes applied per shard.
  ///
  /// `interrupt` (optional, set from any thread) stops it early: the changes
  /// read so far are applied with their checkpoints, so the next restore
  /// resumes there, and it returns errc::shutting_down. A standby uses it to
  /// give its shards up without waiting for a long catch-up to end.
  /// `progress` (optional) is kept up to date as records are read.
  static result<std::vector<uint64_t>>
  restore_all(const std::vector<shard*>& shards, kafka::consumer& reader, size_t batch,
              int timeout_ms, const std::atomic<bool>* interrupt = nullptr,
              kafka::consumer* uncommitted = nullptr,
              restore_progress* progress = nullptr);

  /// Tells every store the timestamp of the record being handled, so the
  /// changelog records its writes cause carry it. Writer (task) only.
  void set_record_timestamp(timestamp_ms ts);

  /// Writes (puts and removes) through the metered outer layers so far: the
  /// task compares it around a handler call to learn whether a record that
  /// failed had changed state (0 when the stores are not metered).
  uint64_t writes() const;

  /// Flushes every store (caches emit their changelog records).
  status flush();

  /// The highest delivered changelog offset per store, written by the
  /// producer's delivery thread (see delivery_tracker.hpp); shared, because a
  /// delivery report may come after the shard closed. Null for no such store.
  std::shared_ptr<std::atomic<int64_t>> delivered_offset(std::string_view store);

  /// Persists, per store, the checkpoint after the highest delivered changelog
  /// offset (only once the commit that covers it is safe). At-least-once
  /// only: a transactional shard answers errc::internal (its checkpoints are
  /// written by commit_epoch()).
  status write_checkpoints();

  /// Whether the stores buffer their writes per epoch (open(...,true)).
  bool transactional() const { return epochs_ != nullptr; }

  /// Transactional shards: closes every store's open epoch (call it after
  /// flush(), once everything of the epoch went into the stores): writes
  /// from here on belong to the next epoch, and commit_epoch() writes only
  /// the sealed one. errc::internal if the sealed epoch was not committed, or
  /// on a non-transactional shard.
  status seal_epoch();

  /// Transactional shards: writes every store's sealed epoch (the open one
  /// when nothing is sealed) to RocksDB, each in
  /// one atomic WAL-logged batch with its checkpoint = delivered_offset + 1
  /// when that is past the last checkpoint (else the checkpoint stays). A
  /// store without writes this epoch writes nothing, or only a newer
  /// checkpoint (past records of an aborted epoch, say). Call it after
  /// flush(), once the epoch's transaction committed and the delivery
  /// reports of all its changelog records were handled (delivered_offset
  /// covers the epoch), before the next epoch writes anything. Stores commit
  /// one by one: after a crash half-way, each store is still at a committed
  /// epoch with a matching checkpoint and catches up from its changelog. On
  /// an error the remaining stores keep their epoch: fail the task (a
  /// restart restores from the changelogs). errc::internal on a
  /// non-transactional shard.
  status commit_epoch();

  /// Transactional shards: forgets every write since the last commit_epoch()
  /// — the caches' unflushed entries, then each store's epoch buffer (and
  /// the window/session event-time clocks go back to their committed marks).
  /// Call it when the epoch's transaction aborted, before the input is
  /// processed again. On a non-transactional shard only the caches can be
  /// dropped (the rest is in RocksDB already), so don't.
  void abort_epoch();

  /// Ready for queries (restore finished).
  bool ready() const { return ready_.load(std::memory_order_acquire); }
  void set_ready(bool r) { ready_.store(r, std::memory_order_release); }

 private:
  shard() = default;
  struct entry {
    store_spec spec;
    std::unique_ptr<kv_store> kv;
    std::unique_ptr<window_store> window;
    std::unique_ptr<session_store> session;
    std::shared_ptr<std::atomic<int64_t>> delivered;
    timestamp_hook* hook = nullptr;         ///< the outer layer, when it has one
    discard_hook* cache = nullptr;          ///< the outer layer, when it has a cache
    const write_counter* counter = nullptr; ///< the outer layer, when metered
    int64_t checkpointed = -1;
  };
  struct cursor;
  static status apply(cursor& c);
  static status finish(cursor& c);
  /// Declared before entries_ so that it outlives the stores registered
  /// with it. Null: not transactional.
  std::unique_ptr<epoch_group> epochs_;
  std::string app_;
  int32_t partition_ = 0;
  std::vector<store_spec> specs_;
  std::vector<entry> entries_;
  std::atomic<bool> ready_{false};
};

} // namespace weft::state
