#pragma once
// Internal: the base stores (RocksDB, memory) are byte_stores — a kv_store
// plus a private metadata area that iteration never shows, and atomic batch
// writes. Window and session stores are built once on top of this interface
// (detail/encoded_stores.hpp), so both backends share their key layout and
// retention logic.

#include <string>
#include <string_view>
#include <vector>

#include "weft/state/store.hpp"

namespace weft::state::detail {

/// One entry of the metadata area (checkpoint, retention high-water marks).
struct meta_entry {
  std::string key;
  std::string value;
};

/// Implemented by layers that can take many writes at once (the cache's
/// flush uses it): `batch` is applied atomically where the layer below allows
/// it; `timestamps[i]` is the record timestamp of `batch[i]`.
class batch_writer {
 public:
  virtual ~batch_writer() = default;
  virtual status write_batch(const std::vector<change>& batch,
                             const std::vector<timestamp_ms>& timestamps) = 0;
};

/// Threads: as kv_store (one writer, concurrent readers). Visitors passed to
/// range() may write to the same store: RocksDB iterates a snapshot and the
/// memory store copies entries out in small chunks, never holding its lock
/// while calling the visitor.
class byte_store : public kv_store, public batch_writer {
 public:
  using kv_store::restore;

  /// One atomic write; byte stores keep no timestamps.
  status write_batch(const std::vector<change>& batch,
                     const std::vector<timestamp_ms>&) override {
    return write(batch, {});
  }

  /// Applies `batch` and `meta` atomically, with the same durability as put().
  virtual status write(const std::vector<change>& batch,
                       const std::vector<meta_entry>& meta) = 0;

  /// write() plus the checkpoint `next_offset`, all in one atomic batch, with
  /// the same durability as put() (through the WAL, unlike restore()); then
  /// checkpoint() reports `next_offset`. How a transactional store commits an
  /// epoch (epoch_buffer.hpp): its data and the checkpoint that claims it can
  /// only reach the disk together.
  virtual status write_with_checkpoint(const std::vector<change>& batch,
                                       const std::vector<meta_entry>& meta,
                                       int64_t next_offset) = 0;

  /// kv_store::restore plus `meta`, all in the one atomic batch.
  virtual status restore(const std::vector<change>& batch, int64_t next_offset,
                         const std::vector<meta_entry>& meta) = 0;

  status restore(const std::vector<change>& batch, int64_t next_offset) override {
    return restore(batch, next_offset, {});
  }

  /// A metadata value, nullopt when never written.
  virtual result<std::optional<std::string>> read_meta(std::string_view key) const = 0;
};

} // namespace weft::state::detail
