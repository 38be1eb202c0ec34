#include "weft/state/rocksdb_env.hpp"

#include <rocksdb/convenience.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/table.h>

#include <algorithm>

#include "weft/state/detail/rocksdb_env_impl.hpp"

namespace weft::state {

namespace detail {

namespace {

rocksdb::CompressionType pick_compression() {
  auto supported = rocksdb::GetSupportedCompressions();
  for (auto c : {rocksdb::kLZ4Compression, rocksdb::kSnappyCompression})
    if (std::find(supported.begin(), supported.end(), c) != supported.end()) return c;
  return rocksdb::kNoCompression;
}

} // namespace

rocksdb_env_impl::rocksdb_env_impl(rocksdb_env_config cfg) : config_(cfg) {
  rocksdb::LRUCacheOptions co;
  co.capacity = config_.block_cache_bytes;
  // Few, larger shards: memtable reservations arrive in 256 KiB dummy entries
  // and a small cache split 64 ways leaves shards too small to hold them.
  co.num_shard_bits = 4;
  co.high_pri_pool_ratio = 0.5; // index and filter blocks outlive data blocks
  cache_ = rocksdb::NewLRUCache(co);
  wbm_ = std::make_shared<rocksdb::WriteBufferManager>(config_.write_buffer_bytes, cache_,
                                                       /*allow_stall=*/false);

  rocksdb::BlockBasedTableOptions t;
  t.block_cache = cache_;
  t.cache_index_and_filter_blocks = true; // bounded by the cache, not per file
  t.cache_index_and_filter_blocks_with_high_priority = true;
  t.pin_l0_filter_and_index_blocks_in_cache = true;
  t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  t.optimize_filters_for_memory = true;
  t.format_version = 5;
  t.block_size = 16 * 1024;
  auto table =
      std::shared_ptr<rocksdb::TableFactory>(rocksdb::NewBlockBasedTableFactory(t));

  auto& o = options_;
  o.create_if_missing = true;
  o.create_missing_column_families = true;
  // Restore writes skip the WAL; data and checkpoint sit in two column
  // families and must reach disk together (see rocksdb_store.hpp).
  o.atomic_flush = true;
  o.write_buffer_manager = wbm_;
  o.write_buffer_size = config_.store_write_buffer_bytes;
  o.max_write_buffer_number = 2;
  o.max_total_wal_size = 4 * config_.store_write_buffer_bytes;
  o.max_open_files = config_.max_open_files;
  o.max_file_opening_threads = 1;
  o.max_background_jobs = config_.background_jobs;
  o.compaction_style = rocksdb::kCompactionStyleLevel;
  o.level_compaction_dynamic_level_bytes = true;
  o.level0_file_num_compaction_trigger = 4;
  o.target_file_size_base = 16 << 20;
  o.max_bytes_for_level_base = 64 << 20;
  o.compression = pick_compression();
  o.table_factory = table;
  o.statistics = nullptr;
  o.stats_dump_period_sec = 0;
  o.stats_persist_period_sec = 0;
  o.enable_thread_tracking = false;
  o.skip_stats_update_on_db_open = true;
  o.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  o.keep_log_file_num = 2;
  o.max_log_file_size = 1 << 20;
  o.max_manifest_file_size = 8 << 20;
  o.avoid_unnecessary_blocking_io = true;

  meta_options_ = rocksdb::ColumnFamilyOptions{o};
  meta_options_.write_buffer_size = 256 << 10;
  meta_options_.compression = rocksdb::kNoCompression;
}

void rocksdb_env_impl::add(flushable* s) {
  std::lock_guard lock{mtx_};
  stores_.push_back(s);
}

void rocksdb_env_impl::remove(flushable* s) {
  std::lock_guard lock{mtx_};
  stores_.erase(std::remove(stores_.begin(), stores_.end(), s), stores_.end());
}

size_t rocksdb_env_impl::open_stores() const {
  std::lock_guard lock{mtx_};
  return stores_.size();
}

std::map<std::string, store_sizes> rocksdb_env_impl::sizes_by_store() const {
  std::map<std::string, store_sizes> out;
  // Under the lock: a store leaves (remove()) before it closes.
  std::lock_guard lock{mtx_};
  for (auto* s : stores_) {
    auto z = s->sizes();
    auto& sum = out[s->store_name()];
    sum.shards += 1;
    sum.sst_bytes += z.sst_bytes;
    sum.memtable_bytes += z.memtable_bytes;
    sum.keys += z.keys;
  }
  return out;
}

void rocksdb_env_impl::balance_memory() {
  if (wbm_->memory_usage() <= wbm_->buffer_size()) return;
  std::lock_guard lock{mtx_};
  flushable* largest = nullptr;
  uint64_t largest_bytes = 0;
  for (auto* s : stores_) {
    auto b = s->active_memtable_bytes();
    if (b > largest_bytes) {
      largest = s;
      largest_bytes = b;
    }
  }
  // Below this, a flush frees too little to be worth an L0 file.
  constexpr uint64_t min_flush = 256 << 10;
  if (largest && largest_bytes >= min_flush) largest->request_flush();
}

status from_rocksdb(const rocksdb::Status& s, const char* what,
                    const std::string& where) {
  return make_error(errc::io,
                    std::string{"rocksdb "} + what + " '" + where + "': " + s.ToString());
}

} // namespace detail

rocksdb_env::rocksdb_env(rocksdb_env_config cfg)
  : impl_(std::make_shared<detail::rocksdb_env_impl>(cfg)) {}

rocksdb_env::~rocksdb_env() = default;

const rocksdb_env_config& rocksdb_env::config() const {
  return impl_->config();
}

size_t rocksdb_env::cache_capacity() const {
  return impl_->cache()->GetCapacity();
}

size_t rocksdb_env::cache_usage() const {
  return impl_->cache()->GetUsage();
}

size_t rocksdb_env::cache_pinned_usage() const {
  return impl_->cache()->GetPinnedUsage();
}

size_t rocksdb_env::write_buffer_usage() const {
  return impl_->write_buffers()->memory_usage();
}

size_t rocksdb_env::open_stores() const {
  return impl_->open_stores();
}

std::map<std::string, store_sizes> rocksdb_env::sizes_by_store() const {
  return impl_->sizes_by_store();
}

} // namespace weft::state
