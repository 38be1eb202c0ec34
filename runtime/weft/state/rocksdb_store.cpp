#include "weft/state/rocksdb_store.hpp"

#include <rocksdb/db.h>
#include <rocksdb/iterator.h>
#include <rocksdb/perf_level.h>
#include <rocksdb/write_batch.h>

#include <atomic>
#include <filesystem>
#include <system_error>

#include "weft/state/detail/byte_store.hpp"
#include "weft/state/detail/encoded_stores.hpp"
#include "weft/state/detail/epoch_buffer.hpp"
#include "weft/state/detail/rocksdb_env_impl.hpp"
#include "weft/state/key_encoding.hpp"

namespace weft::state {

namespace {

constexpr const char* meta_cf_name = "weft.meta";
constexpr const char* checkpoint_key = "checkpoint";

rocksdb::Slice slice(std::string_view s) {
  return {s.data(), s.size()};
}
std::string_view view(const rocksdb::Slice& s) {
  return {s.data(), s.size()};
}

class rocksdb_byte_store final : public detail::byte_store, public detail::flushable {
 public:
  static result<std::unique_ptr<rocksdb_byte_store>>
  open(std::shared_ptr<detail::rocksdb_env_impl> env, const std::string& dir,
       const std::string& name) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec)
      return make_error(errc::io,
                        "cannot create store folder '" + dir + "': " + ec.message());
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs{
        {rocksdb::kDefaultColumnFamilyName,
         rocksdb::ColumnFamilyOptions{env->store_options()}},
        {meta_cf_name, env->meta_options()}};
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    auto s = rocksdb::DB::Open(rocksdb::DBOptions{env->store_options()}, dir, cfs,
                               &handles, &raw);
    if (!s.ok()) return detail::from_rocksdb(s, "open", dir);
    std::unique_ptr<rocksdb_byte_store> store{
        new rocksdb_byte_store(std::move(env), name, dir, raw, handles[0], handles[1])};
    auto cp = store->read_meta(checkpoint_key);
    if (!cp) return cp.error();
    if (*cp && (*cp)->size() == 8) store->checkpoint_.store(read_be64(**cp));
    store->env_->add(store.get());
    return store;
  }

  ~rocksdb_byte_store() override {
    env_->remove(this);
    // Close() would flush unpersisted (WAL-less) data too; be explicit.
    (void)persist_restored();
    db_->DestroyColumnFamilyHandle(data_cf_);
    db_->DestroyColumnFamilyHandle(meta_cf_);
    (void)db_->Close();
  }

  const std::string& name() const override { return name_; }

  result<std::optional<std::string>> get(std::string_view key) const override {
    rocksdb::PinnableSlice v;
    auto s = db_->Get(rocksdb::ReadOptions{}, data_cf_, slice(key), &v);
    if (s.IsNotFound()) return std::optional<std::string>{};
    if (!s.ok()) return detail::from_rocksdb(s, "get", dir_);
    return std::optional<std::string>{v.ToString()};
  }

  status put(std::string_view key, std::string_view value) override {
    if (auto st = persist_restored(); !st.ok()) return st;
    return check(db_->Put(wal_, data_cf_, slice(key), slice(value)), "put");
  }

  status remove(std::string_view key) override {
    if (auto st = persist_restored(); !st.ok()) return st;
    return check(db_->Delete(wal_, data_cf_, slice(key)), "delete");
  }

  status range(std::string_view from, std::string_view to,
               const visitor& fn) const override {
    rocksdb::ReadOptions ro;
    rocksdb::Slice upper = slice(to);
    if (!to.empty()) ro.iterate_upper_bound = &upper;
    std::unique_ptr<rocksdb::Iterator> it{db_->NewIterator(ro, data_cf_)};
    if (from.empty())
      it->SeekToFirst();
    else
      it->Seek(slice(from));
    for (; it->Valid(); it->Next())
      if (!fn(view(it->key()), view(it->value()))) break;
    return check(it->status(), "iterate");
  }

  uint64_t approximate_size() const override {
    uint64_t n = 0;
    db_->GetIntProperty(data_cf_, "rocksdb.estimate-num-keys", &n);
    return n;
  }

  status flush() override {
    auto st = persist_restored();
    env_->balance_memory();
    return st;
  }

  status write(const std::vector<change>& batch,
               const std::vector<detail::meta_entry>& meta) override {
    if (batch.empty() && meta.empty()) return {};
    if (auto st = persist_restored(); !st.ok()) return st;
    rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable); // see restore()
    rocksdb::WriteBatch wb;
    if (auto st = fill(wb, batch, meta); !st.ok()) return st;
    return check(db_->Write(wal_, &wb), "write");
  }

  status write_with_checkpoint(const std::vector<change>& batch,
                               const std::vector<detail::meta_entry>& meta,
                               int64_t next_offset) override {
    if (auto st = persist_restored(); !st.ok()) return st;
    rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable); // see restore()
    rocksdb::WriteBatch wb;
    if (auto st = fill(wb, batch, meta); !st.ok()) return st;
    std::string cp;
    append_be64(cp, next_offset);
    if (auto s = wb.Put(meta_cf_, checkpoint_key, cp); !s.ok())
      return detail::from_rocksdb(s, "write with checkpoint", dir_);
    // Through the WAL like put(): a process crash after this returns loses
    // neither the data nor its checkpoint, and recovery never replays one
    // without the other (one WriteBatch is one WAL record).
    if (auto st = check(db_->Write(wal_, &wb), "write with checkpoint"); !st.ok())
      return st;
    checkpoint_.store(next_offset, std::memory_order_release);
    return {};
  }

  status restore(const std::vector<change>& batch, int64_t next_offset,
                 const std::vector<detail::meta_entry>& meta) override {
    // RocksDB's per-operation perf counters live in thread-locals of a shared
    // library (a __tls_get_addr call each); restoring writes millions of
    // entries and needs none of them. The level is per thread.
    rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);
    rocksdb::WriteBatch wb;
    if (auto st = fill(wb, batch, meta); !st.ok()) return st;
    std::string cp;
    append_be64(cp, next_offset);
    if (auto s = wb.Put(meta_cf_, checkpoint_key, cp); !s.ok())
      return detail::from_rocksdb(s, "restore", dir_);
    rocksdb::WriteOptions wo;
    wo.disableWAL = true;
    wo.sync = false;
    if (auto st = check(db_->Write(wo, &wb), "restore"); !st.ok()) return st;
    restored_unflushed_ = true;
    checkpoint_.store(next_offset, std::memory_order_release);
    return {};
  }

  result<std::optional<std::string>> read_meta(std::string_view key) const override {
    rocksdb::PinnableSlice v;
    auto s = db_->Get(rocksdb::ReadOptions{}, meta_cf_, slice(key), &v);
    if (s.IsNotFound()) return std::optional<std::string>{};
    if (!s.ok()) return detail::from_rocksdb(s, "read metadata", dir_);
    return std::optional<std::string>{v.ToString()};
  }

  int64_t checkpoint() const override {
    return checkpoint_.load(std::memory_order_acquire);
  }

  status write_checkpoint(int64_t next_offset) override {
    if (auto st = persist_restored(); !st.ok()) return st;
    std::string cp;
    append_be64(cp, next_offset);
    auto st = check(db_->Put(wal_, meta_cf_, checkpoint_key, cp), "write checkpoint");
    if (st.ok()) checkpoint_.store(next_offset, std::memory_order_release);
    return st;
  }

  uint64_t active_memtable_bytes() const override {
    uint64_t n = 0;
    db_->GetIntProperty(data_cf_, "rocksdb.cur-size-active-mem-table", &n);
    return n;
  }

  const std::string& store_name() const override { return name_; }

  store_sizes sizes() const override {
    store_sizes z;
    z.shards = 1;
    db_->GetIntProperty(data_cf_, "rocksdb.total-sst-files-size", &z.sst_bytes);
    db_->GetIntProperty(data_cf_, "rocksdb.cur-size-all-mem-tables", &z.memtable_bytes);
    db_->GetIntProperty(data_cf_, "rocksdb.estimate-num-keys", &z.keys);
    return z;
  }

  void request_flush() override {
    rocksdb::FlushOptions fo;
    fo.wait = false;
    fo.allow_write_stall = true;
    (void)db_->Flush(fo, {data_cf_, meta_cf_});
  }

 private:
  rocksdb_byte_store(std::shared_ptr<detail::rocksdb_env_impl> env, std::string name,
                     std::string dir, rocksdb::DB* db, rocksdb::ColumnFamilyHandle* data,
                     rocksdb::ColumnFamilyHandle* meta)
    : env_(std::move(env)), name_(std::move(name)), dir_(std::move(dir)), db_(db),
      data_cf_(data), meta_cf_(meta) {}

  status check(const rocksdb::Status& s, const char* what) const {
    return s.ok() ? status{} : detail::from_rocksdb(s, what, dir_);
  }

  status fill(rocksdb::WriteBatch& wb, const std::vector<change>& batch,
              const std::vector<detail::meta_entry>& meta) const {
    rocksdb::Status s;
    for (auto& c : batch) {
      s = c.value ? wb.Put(data_cf_, c.key, *c.value) : wb.Delete(data_cf_, c.key);
      if (!s.ok()) return detail::from_rocksdb(s, "batch", dir_);
    }
    for (auto& m : meta) {
      s = wb.Put(meta_cf_, m.key, m.value);
      if (!s.ok()) return detail::from_rocksdb(s, "batch", dir_);
    }
    return {};
  }

  /// Flushes both column families (atomically, waiting) if a restore wrote
  /// around the WAL since the last time: see the header's guarantee.
  status persist_restored() {
    if (!restored_unflushed_) return {};
    rocksdb::FlushOptions fo;
    fo.wait = true;
    auto st = check(db_->Flush(fo, {data_cf_, meta_cf_}), "flush restored data");
    if (st.ok()) restored_unflushed_ = false;
    return st;
  }

  std::shared_ptr<detail::rocksdb_env_impl> env_;
  std::string name_;
  std::string dir_;
  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::ColumnFamilyHandle* data_cf_;
  rocksdb::ColumnFamilyHandle* meta_cf_;
  rocksdb::WriteOptions wal_; ///< WAL on, sync off: see the header
  std::atomic<int64_t> checkpoint_{-1};
  bool restored_unflushed_ = false; ///< the writer's only
};

} // namespace

result<std::unique_ptr<kv_store>> open_rocksdb_kv(const rocksdb_env& env,
                                                  const std::string& dir,
                                                  const std::string& name,
                                                  epoch_group* epochs) {
  auto s = rocksdb_byte_store::open(env.impl(), dir, name);
  if (!s) return s.error();
  return std::unique_ptr<kv_store>{detail::buffer_epochs(std::move(*s), epochs)};
}

result<std::unique_ptr<window_store>> open_rocksdb_window(const rocksdb_env& env,
                                                          const std::string& dir,
                                                          const std::string& name,
                                                          timestamp_ms retention_ms,
                                                          epoch_group* epochs) {
  if (retention_ms <= 0)
    return make_error(errc::invalid_argument,
                      "retention_ms must be > 0, got " + std::to_string(retention_ms));
  auto s = rocksdb_byte_store::open(env.impl(), dir, name);
  if (!s) return s.error();
  return detail::make_window_store(detail::buffer_epochs(std::move(*s), epochs),
                                   retention_ms);
}

result<std::unique_ptr<session_store>> open_rocksdb_session(const rocksdb_env& env,
                                                            const std::string& dir,
                                                            const std::string& name,
                                                            timestamp_ms retention_ms,
                                                            epoch_group* epochs) {
  if (retention_ms <= 0)
    return make_error(errc::invalid_argument,
                      "retention_ms must be > 0, got " + std::to_string(retention_ms));
  auto s = rocksdb_byte_store::open(env.impl(), dir, name);
  if (!s) return s.error();
  return detail::make_session_store(detail::buffer_epochs(std::move(*s), epochs),
                                    retention_ms);
}

status destroy_rocksdb_store(const rocksdb_env& env, const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) return {};
  auto s = rocksdb::DestroyDB(dir, env.impl()->store_options(),
                              {{meta_cf_name, env.impl()->meta_options()}});
  if (!s.ok()) return detail::from_rocksdb(s, "destroy", dir);
  std::filesystem::remove_all(dir, ec);
  if (ec)
    return make_error(errc::io,
                      "cannot remove store folder '" + dir + "': " + ec.message());
  return {};
}

} // namespace weft::state
