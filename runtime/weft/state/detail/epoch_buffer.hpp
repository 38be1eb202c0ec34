#pragma once
// Internal: the epoch buffer of a transactional store (see epoch_group.hpp for
// why it exists and where it sits in a stack).
//
// A byte_store decorator. Writes (put, remove, write, write_batch, including
// metadata entries) go to an ordered in-memory overlay: key -> value, or
// nullopt for a delete that must hide the key in the store below; metadata
// keys go to a second overlay. get() and read_meta() read the overlay first,
// then the store below; range() copies the overlay entries of its range under
// the lock, then merges them with the scan below (the overlay wins on equal
// keys, its deletes hide keys below) and calls the visitor without holding
// any lock, so a visitor may write to the store it scans.
//
// seal() closes the open epoch: its overlays become the sealed ones, and the
// writes after it go to fresh open overlays (the next epoch, processed while
// the sealed one's transaction commits). Reads see open, then sealed, then
// the store below. commit() writes the sealed overlays (the open ones when
// nothing is sealed) and the checkpoint in one batch of the store below
// (write_with_checkpoint: atomic, through the WAL) while holding the
// overlay's lock exclusively, then clears them before letting go: a reader
// sees either the overlay or the committed data, never neither. abort()
// clears both epochs. flush() writes nothing down (it only lets the
// store below balance its memory); restore() passes through and needs an
// empty overlay (errc::internal otherwise: restores happen before any epoch).
// write_checkpoint() is refused with errc::internal: a checkpoint written
// outside commit() would claim writes still in the overlay.
//
// Threads: one writer (the task: writes, commit, abort, restore, flush) and
// any number of concurrent readers; the overlay is guarded by a
// std::shared_mutex. The writer reads the overlay without the lock (only it
// changes it).
//
// Memory: the overlay holds one epoch of writes to this store (after the
// cache above has deduplicated them); commit() copies it once into the batch.

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>

#include "weft/state/detail/byte_store.hpp"
#include "weft/state/epoch_group.hpp"

namespace weft::state::detail {

class epoch_buffer final : public byte_store {
 public:
  /// Wraps `inner`, registering with `group` when it is not null (the group
  /// must outlive the buffer or detach it first, which ~epoch_group does).
  epoch_buffer(std::unique_ptr<byte_store> inner, epoch_group* group);
  ~epoch_buffer() override;
  epoch_buffer(const epoch_buffer&) = delete;
  epoch_buffer& operator=(const epoch_buffer&) = delete;

  /// See the header comment and epoch_group::seal(), commit().
  /// errc::internal when an epoch is sealed already (commit it first).
  status seal();
  status commit(std::optional<int64_t> next_offset);
  void abort();
  /// Entries in the overlays (data and metadata), both epochs.
  size_t pending() const;

  /// Called after each abort(), on the writer: the window and session stores
  /// above reload their event-time clock from the metadata then (what it was
  /// at the last commit). One hook; {} removes it.
  void on_abort(std::function<void()> hook) { on_abort_ = std::move(hook); }

  /// By ~epoch_group: forget the group without calling it again.
  void detach() { group_ = nullptr; }

  // byte_store
  const std::string& name() const override { return inner_->name(); }
  result<std::optional<std::string>> get(std::string_view key) const override;
  status put(std::string_view key, std::string_view value) override;
  status remove(std::string_view key) override;
  status range(std::string_view from, std::string_view to,
               const visitor& fn) const override;
  uint64_t approximate_size() const override;
  status flush() override;
  using byte_store::restore;
  status restore(const std::vector<change>& batch, int64_t next_offset,
                 const std::vector<meta_entry>& meta) override;
  int64_t checkpoint() const override { return inner_->checkpoint(); }
  status write_checkpoint(int64_t next_offset) override;
  status write(const std::vector<change>& batch,
               const std::vector<meta_entry>& meta) override;
  status write_with_checkpoint(const std::vector<change>& batch,
                               const std::vector<meta_entry>& meta,
                               int64_t next_offset) override;
  result<std::optional<std::string>> read_meta(std::string_view key) const override;

 private:
  std::unique_ptr<byte_store> inner_;
  epoch_group* group_;
  std::function<void()> on_abort_;
  mutable std::shared_mutex mtx_;
  using data_overlay = std::map<std::string, std::optional<std::string>, std::less<>>;
  using meta_overlay = std::map<std::string, std::string, std::less<>>;
  data_overlay data_; ///< the open epoch
  meta_overlay meta_;
  bool sealed_ = false; ///< an epoch is sealed (its overlays may still be empty)
  data_overlay sealed_data_;
  meta_overlay sealed_meta_;
};

/// `inner` wrapped in an epoch buffer registered with `group`, or `inner`
/// itself when `group` is null (a non-transactional store).
std::unique_ptr<byte_store> buffer_epochs(std::unique_ptr<byte_store> inner,
                                          epoch_group* group);

} // namespace weft::state::detail
