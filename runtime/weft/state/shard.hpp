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
// Threads: restore() blocks on Kafka and RocksDB and runs on the node's
// restore thread while the task waits; everything else runs on the task's
// actor. Reads through the stores are safe from other threads at any time.

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "weft/state/store.hpp"
#include "weft/status.hpp"
#include "weft/types.hpp"

namespace weft::kafka {
class consumer;
}

namespace weft::state {

class timestamp_hook;

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
class store_factory {
 public:
  virtual ~store_factory();
  /// The full stack (metered, caching, changelogging into `sink`, base).
  virtual result<std::unique_ptr<kv_store>>
  kv(const std::string& dir, const store_spec& s, changelog_sink* sink) = 0;
  virtual result<std::unique_ptr<window_store>>
  window(const std::string& dir, const store_spec& s, changelog_sink* sink) = 0;
  virtual result<std::unique_ptr<session_store>>
  session(const std::string& dir, const store_spec& s, changelog_sink* sink) = 0;
};

/// The production factory: RocksDB stores sharing one block cache and one
/// write-buffer budget per node (so memory is bounded by these two numbers,
/// not by the number of shards), layered metered -> caching -> changelogging
/// -> RocksDB. With a null sink the changelogging layer is left out (global
/// tables); specs with caching=false leave out the cache.
std::unique_ptr<store_factory> make_rocksdb_factory(size_t cache_bytes,
                                                    size_t write_buffer_bytes);

/// The in-memory twin (same layers over std::map), for tests.
std::unique_ptr<store_factory> make_memory_factory();

/// Name of the changelog topic of `store` in application `app`.
std::string changelog_topic(const std::string& app, const std::string& store);

class shard {
 public:
  /// Opens every store of `specs` for `partition`.
  static result<std::unique_ptr<shard>>
  open(store_factory& factory, const std::string& dir, const std::string& app,
       int32_t partition, const std::vector<store_spec>& specs, changelog_sink* sink);
  shard(const shard&) = delete;
  shard& operator=(const shard&) = delete;

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
  result<uint64_t> restore(kafka::consumer& reader, size_t batch, int timeout_ms);

  /// restore() for several shards at once: every changelog partition is
  /// assigned together, so librdkafka fetches them in parallel. Returns the
  /// changes applied per shard.
  static result<std::vector<uint64_t>> restore_all(const std::vector<shard*>& shards,
                                                   kafka::consumer& reader, size_t batch,
                                                   int timeout_ms);

  /// Tells every store the timestamp of the record being handled, so the
  /// changelog records its writes cause carry it. Writer (task) only.
  void set_record_timestamp(timestamp_ms ts);

  /// Flushes every store (caches emit their changelog records).
  status flush();

  /// The highest delivered changelog offset per store, written by the
  /// producer's delivery thread (see delivery_tracker.hpp).
  std::atomic<int64_t>* delivered_offset(std::string_view store);

  /// Persists, per store, the checkpoint after the highest delivered changelog
  /// offset (only once the commit that covers it is safe).
  status write_checkpoints();

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
    std::unique_ptr<std::atomic<int64_t>> delivered;
    timestamp_hook* hook = nullptr; ///< the outer layer, when it has one
    int64_t checkpointed = -1;
  };
  struct cursor;
  static status apply(cursor& c);
  std::string app_;
  int32_t partition_ = 0;
  std::vector<store_spec> specs_;
  std::vector<entry> entries_;
  std::atomic<bool> ready_{false};
};

} // namespace weft::state
