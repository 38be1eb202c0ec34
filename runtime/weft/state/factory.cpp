// The store factories behind state::shard: RocksDB for nodes, memory for tests.

#include <algorithm>

#include "weft/state/layered_store.hpp"
#include "weft/state/memory_store.hpp"
#include "weft/state/rocksdb_env.hpp"
#include "weft/state/rocksdb_store.hpp"
#include "weft/state/shard.hpp"
#include "weft/state/value_cache.hpp"

namespace weft::state {

namespace {

class rocksdb_factory final : public store_factory {
 public:
  rocksdb_factory(size_t cache, size_t write_buffers, size_t value_cache)
    : env_(make_config(cache, write_buffers)),
      values_(value_cache > 0 ? std::make_shared<value_cache_budget>(value_cache)
                              : nullptr) {}

  static rocksdb_env_config make_config(size_t cache, size_t write_buffers) {
    rocksdb_env_config c;
    c.block_cache_bytes = cache;
    c.write_buffer_bytes = write_buffers;
    // A node has many shards: a memtable of 1/8 of the budget lets several
    // fill at once without the budget forcing constant flushes.
    c.store_write_buffer_bytes =
        std::clamp<size_t>(write_buffers / 8, size_t{1} << 20, size_t{8} << 20);
    return c;
  }

  factory_stats stats() const override {
    factory_stats f;
    f.cache_capacity_bytes = env_.cache_capacity();
    f.cache_usage_bytes = env_.cache_usage();
    f.cache_pinned_bytes = env_.cache_pinned_usage();
    f.write_buffer_bytes = env_.write_buffer_usage();
    f.value_cache_bytes = values_ ? values_->used_bytes() : 0;
    f.stores = env_.sizes_by_store();
    return f;
  }

  // With `epochs` the epoch buffer goes right above the RocksDB store
  // (open_rocksdb_*), under the window/session encoding and every layer.
  result<std::unique_ptr<kv_store>> kv(const std::string& dir, const store_spec& s,
                                       changelog_sink* sink,
                                       epoch_group* epochs) override {
    auto base = open_rocksdb_kv(env_, dir, s.name, epochs);
    if (!base) return base.error();
    kv_stack_options opts;
    opts.caching = s.caching;
    opts.values = values_;
    return std::unique_ptr<kv_store>{make_kv_stack(std::move(*base), sink, opts)};
  }

  result<std::unique_ptr<window_store>> window(const std::string& dir,
                                               const store_spec& s, changelog_sink* sink,
                                               epoch_group* epochs) override {
    auto base = open_rocksdb_window(env_, dir, s.name, s.retention_ms, epochs);
    if (!base) return base.error();
    return std::unique_ptr<window_store>{make_window_stack(std::move(*base), sink)};
  }

  result<std::unique_ptr<session_store>> session(const std::string& dir,
                                                 const store_spec& s,
                                                 changelog_sink* sink,
                                                 epoch_group* epochs) override {
    auto base = open_rocksdb_session(env_, dir, s.name, s.retention_ms, epochs);
    if (!base) return base.error();
    return std::unique_ptr<session_store>{make_session_stack(std::move(*base), sink)};
  }

 private:
  rocksdb_env env_;
  std::shared_ptr<value_cache_budget> values_; ///< shared by the kv caches
};

class memory_factory final : public store_factory {
 public:
  result<std::unique_ptr<kv_store>> kv(const std::string&, const store_spec& s,
                                       changelog_sink* sink,
                                       epoch_group* epochs) override {
    kv_stack_options opts;
    opts.caching = s.caching;
    return std::unique_ptr<kv_store>{
        make_kv_stack(make_memory_kv(s.name, epochs), sink, opts)};
  }
  result<std::unique_ptr<window_store>> window(const std::string&, const store_spec& s,
                                               changelog_sink* sink,
                                               epoch_group* epochs) override {
    auto base = make_memory_window(s.name, s.retention_ms, epochs);
    if (!base) return base.error();
    return std::unique_ptr<window_store>{make_window_stack(std::move(*base), sink)};
  }
  result<std::unique_ptr<session_store>> session(const std::string&, const store_spec& s,
                                                 changelog_sink* sink,
                                                 epoch_group* epochs) override {
    auto base = make_memory_session(s.name, s.retention_ms, epochs);
    if (!base) return base.error();
    return std::unique_ptr<session_store>{make_session_stack(std::move(*base), sink)};
  }
};

} // namespace

std::unique_ptr<store_factory> make_rocksdb_factory(size_t cache_bytes,
                                                    size_t write_buffer_bytes,
                                                    size_t value_cache_bytes) {
  return std::make_unique<rocksdb_factory>(cache_bytes, write_buffer_bytes,
                                           value_cache_bytes);
}

std::unique_ptr<store_factory> make_memory_factory() {
  return std::make_unique<memory_factory>();
}

} // namespace weft::state
