#include "weft/state/detail/epoch_buffer.hpp"
#include "weft/state/detail/overlay_scan.hpp"

#include <algorithm>
#include <mutex>
#include <utility>
#include <vector>

namespace weft::state {

// -- epoch_group ---------------------------------------------------------------

epoch_group::~epoch_group() {
  for (auto* b : buffers_)
    b->detach();
}

detail::epoch_buffer* epoch_group::find(std::string_view store) const {
  for (auto* b : buffers_)
    if (b->name() == store) return b;
  return nullptr;
}

status epoch_group::seal() {
  for (auto* b : buffers_)
    if (auto st = b->seal(); !st) return st;
  return {};
}

status epoch_group::commit(std::string_view store, std::optional<int64_t> next_offset) {
  auto* b = find(store);
  if (!b)
    return make_error(errc::not_found,
                      "no transactional store '" + std::string{store} + "' to commit");
  return b->commit(next_offset);
}

void epoch_group::abort() {
  for (auto* b : buffers_)
    b->abort();
}

size_t epoch_group::pending(std::string_view store) const {
  auto* b = find(store);
  return b ? b->pending() : 0;
}

bool epoch_group::contains(std::string_view store) const {
  return find(store) != nullptr;
}

void epoch_group::add(detail::epoch_buffer* b) {
  buffers_.push_back(b);
}

void epoch_group::remove(detail::epoch_buffer* b) {
  buffers_.erase(std::remove(buffers_.begin(), buffers_.end(), b), buffers_.end());
}

namespace detail {

// -- epoch_buffer ----------------------------------------------------------------

epoch_buffer::epoch_buffer(std::unique_ptr<byte_store> inner, epoch_group* group)
  : inner_(std::move(inner)), group_(group) {
  if (group_) group_->add(this);
}

epoch_buffer::~epoch_buffer() {
  if (group_) group_->remove(this);
}

result<std::optional<std::string>> epoch_buffer::get(std::string_view key) const {
  {
    std::shared_lock lock{mtx_};
    auto i = data_.find(key);
    if (i != data_.end()) return i->second;
    auto j = sealed_data_.find(key);
    if (j != sealed_data_.end()) return j->second;
  }
  // Not in the overlays when we looked: either not written in these epochs,
  // or committed already (commit writes below before it clears the overlay,
  // under the exclusive lock). Either way the store below has the value.
  return inner_->get(key);
}

status epoch_buffer::put(std::string_view key, std::string_view value) {
  std::unique_lock lock{mtx_};
  auto i = data_.find(key);
  if (i == data_.end())
    data_.emplace(std::string{key}, std::string{value});
  else
    i->second.emplace(value);
  return {};
}

status epoch_buffer::remove(std::string_view key) {
  std::unique_lock lock{mtx_};
  auto i = data_.find(key);
  if (i == data_.end())
    data_.emplace(std::string{key}, std::nullopt);
  else
    i->second.reset();
  return {};
}

status epoch_buffer::range(std::string_view from, std::string_view to,
                           const visitor& fn) const {
  detail::overlay_entries o;
  {
    std::shared_lock lock{mtx_};
    auto i = data_.lower_bound(from);
    auto end = to.empty() ? data_.end() : data_.lower_bound(to);
    auto j = sealed_data_.lower_bound(from);
    auto sealed_end = to.empty() ? sealed_data_.end() : sealed_data_.lower_bound(to);
    // Both epochs in key order; the open one wins on equal keys.
    while (i != end || j != sealed_end) {
      if (j == sealed_end || (i != end && i->first <= j->first)) {
        if (j != sealed_end && i->first == j->first) ++j;
        o.emplace_back(i->first, i->second);
        ++i;
      } else {
        o.emplace_back(j->first, j->second);
        ++j;
      }
    }
  }
  // Copied before the scan below starts (RocksDB's snapshot is taken after
  // this): a key committed in between is in the copy or in the snapshot.
  return detail::overlay_scan(o, *inner_, from, to, fn);
}

uint64_t epoch_buffer::approximate_size() const {
  size_t n;
  {
    std::shared_lock lock{mtx_};
    n = data_.size() + sealed_data_.size();
  }
  return inner_->approximate_size() + n; // an estimate: may count a key twice
}

status epoch_buffer::flush() {
  // The overlay stays: only commit() may write it. The store below may still
  // want the call (RocksDB: make restored data durable, balance memtables).
  return inner_->flush();
}

status epoch_buffer::restore(const std::vector<change>& batch, int64_t next_offset,
                             const std::vector<meta_entry>& meta) {
  if (auto n = pending(); n > 0)
    return make_error(errc::internal, "store '" + name() + "': restore while " +
                                          std::to_string(n) +
                                          " writes of an epoch are not committed");
  return inner_->restore(batch, next_offset, meta);
}

status epoch_buffer::write_checkpoint(int64_t) {
  return make_error(errc::internal,
                    "store '" + name() +
                        "' is transactional: its checkpoint is written by its epoch's "
                        "commit, not by write_checkpoint()");
}

status epoch_buffer::write(const std::vector<change>& batch,
                           const std::vector<meta_entry>& meta) {
  if (batch.empty() && meta.empty()) return {};
  std::unique_lock lock{mtx_};
  for (auto& c : batch) {
    auto i = data_.find(c.key);
    if (i == data_.end())
      data_.emplace(c.key, c.value);
    else
      i->second = c.value;
  }
  for (auto& m : meta)
    meta_[m.key] = m.value;
  return {};
}

status epoch_buffer::write_with_checkpoint(const std::vector<change>&,
                                           const std::vector<meta_entry>&, int64_t) {
  // Nothing above a buffer writes checkpoints itself; commit() is the way.
  return make_error(errc::internal, "store '" + name() +
                                        "' is transactional: its checkpoint is "
                                        "written by its epoch's commit only");
}

result<std::optional<std::string>> epoch_buffer::read_meta(std::string_view key) const {
  {
    std::shared_lock lock{mtx_};
    auto i = meta_.find(key);
    if (i != meta_.end()) return std::optional<std::string>{i->second};
    auto j = sealed_meta_.find(key);
    if (j != sealed_meta_.end()) return std::optional<std::string>{j->second};
  }
  return inner_->read_meta(key);
}

status epoch_buffer::seal() {
  if (sealed_)
    return make_error(errc::internal, "store '" + name() +
                                          "': an epoch is sealed already; commit it "
                                          "before sealing the next");
  std::unique_lock lock{mtx_};
  sealed_data_.swap(data_);
  sealed_meta_.swap(meta_);
  sealed_ = true;
  return {};
}

status epoch_buffer::commit(std::optional<int64_t> next_offset) {
  auto& data = sealed_ ? sealed_data_ : data_;
  auto& meta_overlay = sealed_ ? sealed_meta_ : meta_;
  if (data.empty() && meta_overlay.empty() && !next_offset) {
    sealed_ = false;
    return {};
  }
  // Copied outside the lock (only this thread changes the overlays), so
  // readers wait for the write below only.
  std::vector<change> batch;
  batch.reserve(data.size());
  for (auto& [k, v] : data)
    batch.push_back(change{k, v});
  std::vector<meta_entry> meta;
  meta.reserve(meta_overlay.size());
  for (auto& [k, v] : meta_overlay)
    meta.push_back(meta_entry{k, v});
  std::unique_lock lock{mtx_};
  auto st = next_offset ? inner_->write_with_checkpoint(batch, meta, *next_offset)
                        : inner_->write(batch, meta);
  if (!st.ok()) return st; // nothing was written: the overlays stay as they were
  data.clear();
  meta_overlay.clear();
  sealed_ = false;
  return {};
}

void epoch_buffer::abort() {
  {
    std::unique_lock lock{mtx_};
    data_.clear();
    meta_.clear();
    sealed_data_.clear();
    sealed_meta_.clear();
    sealed_ = false;
  }
  if (on_abort_) on_abort_();
}

size_t epoch_buffer::pending() const {
  std::shared_lock lock{mtx_};
  return data_.size() + meta_.size() + sealed_data_.size() + sealed_meta_.size();
}

std::unique_ptr<byte_store> buffer_epochs(std::unique_ptr<byte_store> inner,
                                          epoch_group* group) {
  if (!group) return inner;
  return std::make_unique<epoch_buffer>(std::move(inner), group);
}

} // namespace detail
} // namespace weft::state
