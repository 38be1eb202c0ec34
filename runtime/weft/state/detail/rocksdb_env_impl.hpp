#pragma once
// Internal: the RocksDB side of rocksdb_env. Included by .cpp files only.

#include <rocksdb/cache.h>
#include <rocksdb/options.h>
#include <rocksdb/status.h>
#include <rocksdb/write_buffer_manager.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "weft/state/rocksdb_env.hpp"
#include "weft/status.hpp"

namespace weft::state::detail {

/// A store the env may ask to flush its memtable (see balance_memory).
class flushable {
 public:
  virtual ~flushable() = default;
  /// Bytes in the store's active memtables.
  virtual uint64_t active_memtable_bytes() const = 0;
  /// Starts a memtable flush without waiting for it.
  virtual void request_flush() = 0;
  /// The store's name (its store_spec's), for the metrics page.
  virtual const std::string& store_name() const = 0;
  /// Sizes for the metrics page, from RocksDB's properties.
  virtual store_sizes sizes() const = 0;
};

class rocksdb_env_impl {
 public:
  explicit rocksdb_env_impl(rocksdb_env_config cfg);

  const rocksdb_env_config& config() const { return config_; }
  const std::shared_ptr<rocksdb::Cache>& cache() const { return cache_; }
  const std::shared_ptr<rocksdb::WriteBufferManager>& write_buffers() const {
    return wbm_;
  }

  /// Options for a store's DB and its data column family.
  const rocksdb::Options& store_options() const { return options_; }
  /// Options for the small metadata column family.
  const rocksdb::ColumnFamilyOptions& meta_options() const { return meta_options_; }

  void add(flushable* s);
  void remove(flushable* s);
  size_t open_stores() const;
  /// Sizes of every open store, summed by store name.
  std::map<std::string, store_sizes> sizes_by_store() const;

  /// RocksDB's WriteBufferManager only makes the store that is *writing*
  /// flush, so idle stores can sit on full memtables and the node exceed its
  /// budget by (stores × memtable size). Called at each store's flush (the
  /// commit): when all memtables exceed the budget, flush the store holding
  /// the largest one.
  void balance_memory();

 private:
  rocksdb_env_config config_;
  std::shared_ptr<rocksdb::Cache> cache_;
  std::shared_ptr<rocksdb::WriteBufferManager> wbm_;
  rocksdb::Options options_;
  rocksdb::ColumnFamilyOptions meta_options_;
  mutable std::mutex mtx_;
  std::vector<flushable*> stores_;
};

/// A RocksDB failure as errc::io: "rocksdb <what> '<where>': <RocksDB's text>".
status from_rocksdb(const rocksdb::Status& s, const char* what, const std::string& where);

} // namespace weft::state::detail
