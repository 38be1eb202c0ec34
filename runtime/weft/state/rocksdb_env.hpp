#pragma once
// The RocksDB resources one node shares between all its stores, so that the
// node's memory is bounded by configuration and not by how many stores and
// tasks it runs:
//
//   - one LRU block cache (data, index and filter blocks of every store);
//   - one WriteBufferManager: the memtables of all stores together stay near
//     `write_buffer_bytes`, and that memory is charged to the block cache, so
//     cache + memtables together stay near `block_cache_bytes`;
//   - the same small-machine Options for every store (a node-wide pool of
//     `background_jobs` flush/compaction threads, bounded open files, LZ4,
//     no statistics).
//
// Lifecycle: make one per node at start-up, before opening stores; open stores
// with open_rocksdb_* (rocksdb_store.hpp). Stores keep the shared parts alive,
// so the env may be destroyed before or after its stores.
//
// Threads: every call is safe from any thread.
//
// RocksDB's headers stay out of this file (pimpl): many files include store
// headers. detail/rocksdb_env_impl.hpp is the RocksDB side.

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

namespace weft::state {

namespace detail {
class rocksdb_env_impl;
}

/// What the stores of one name take, summed over the shards open on a node.
struct store_sizes {
  uint64_t shards = 0;         ///< open RocksDB instances
  uint64_t sst_bytes = 0;      ///< table files on disk (rocksdb.total-sst-files-size)
  uint64_t memtable_bytes = 0; ///< rocksdb.cur-size-all-mem-tables
  uint64_t keys = 0;           ///< rocksdb.estimate-num-keys
};

struct rocksdb_env_config {
  /// Block cache capacity; memtable memory is charged to it too.
  size_t block_cache_bytes = size_t{64} << 20;
  /// Budget for the memtables of all stores together (charged to the cache).
  size_t write_buffer_bytes = size_t{32} << 20;
  /// Memtable size at which one store flushes on its own.
  size_t store_write_buffer_bytes = size_t{8} << 20;
  /// Table files each store keeps open (index/filter blocks live in the cache).
  int max_open_files = 64;
  /// Flush and compaction threads for the whole node (RocksDB's default Env
  /// pools are process-wide; each store asks for this many, not more).
  int background_jobs = 2;
};

class rocksdb_env {
 public:
  explicit rocksdb_env(rocksdb_env_config cfg = {});
  ~rocksdb_env();
  rocksdb_env(const rocksdb_env&) = delete;
  rocksdb_env& operator=(const rocksdb_env&) = delete;

  const rocksdb_env_config& config() const;

  /// Capacity of the shared block cache in bytes.
  size_t cache_capacity() const;
  /// Bytes held by the cache now: blocks plus memtable reservations.
  size_t cache_usage() const;
  /// Bytes of cache entries in use (pinned) right now.
  size_t cache_pinned_usage() const;
  /// Bytes of memtables of all stores (active and being flushed).
  size_t write_buffer_usage() const;
  /// Stores open with this env right now.
  size_t open_stores() const;
  /// Their sizes by store name (each shard's RocksDB properties, read now).
  std::map<std::string, store_sizes> sizes_by_store() const;

  /// The RocksDB side, for rocksdb_store.cpp.
  const std::shared_ptr<detail::rocksdb_env_impl>& impl() const { return impl_; }

 private:
  std::shared_ptr<detail::rocksdb_env_impl> impl_;
};

} // namespace weft::state
