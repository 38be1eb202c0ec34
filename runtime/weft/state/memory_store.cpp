#include "weft/state/memory_store.hpp"

#include <atomic>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <utility>
#include <vector>

#include "weft/state/detail/byte_store.hpp"
#include "weft/state/detail/encoded_stores.hpp"
#include "weft/state/detail/epoch_buffer.hpp"

namespace weft::state {

namespace {

constexpr size_t scan_chunk = 128;

class memory_byte_store final : public detail::byte_store {
 public:
  explicit memory_byte_store(std::string name) : name_(std::move(name)) {}

  const std::string& name() const override { return name_; }

  result<std::optional<std::string>> get(std::string_view key) const override {
    std::shared_lock lock{mtx_};
    auto i = data_.find(key);
    if (i == data_.end()) return std::optional<std::string>{};
    return std::optional<std::string>{i->second};
  }

  status put(std::string_view key, std::string_view value) override {
    std::unique_lock lock{mtx_};
    assign(key, value);
    return {};
  }

  status remove(std::string_view key) override {
    std::unique_lock lock{mtx_};
    erase(key);
    return {};
  }

  status range(std::string_view from, std::string_view to,
               const visitor& fn) const override {
    std::vector<std::pair<std::string, std::string>> chunk;
    chunk.reserve(scan_chunk);
    std::string cursor{from};
    bool first = true;
    for (;;) {
      chunk.clear();
      {
        std::shared_lock lock{mtx_};
        auto i = first ? data_.lower_bound(cursor) : data_.upper_bound(cursor);
        for (; i != data_.end() && chunk.size() < scan_chunk; ++i) {
          if (!to.empty() && std::string_view{i->first} >= to) break;
          chunk.emplace_back(i->first, i->second);
        }
      }
      first = false;
      for (auto& [k, v] : chunk)
        if (!fn(k, v)) return {};
      if (chunk.size() < scan_chunk) return {};
      cursor = std::move(chunk.back().first);
    }
  }

  uint64_t approximate_size() const override {
    std::shared_lock lock{mtx_};
    return data_.size();
  }

  status flush() override { return {}; }

  status write(const std::vector<change>& batch,
               const std::vector<detail::meta_entry>& meta) override {
    std::unique_lock lock{mtx_};
    apply(batch, meta);
    return {};
  }

  status write_with_checkpoint(const std::vector<change>& batch,
                               const std::vector<detail::meta_entry>& meta,
                               int64_t next_offset) override {
    std::unique_lock lock{mtx_};
    apply(batch, meta);
    checkpoint_.store(next_offset, std::memory_order_release);
    return {};
  }

  status restore(const std::vector<change>& batch, int64_t next_offset,
                 const std::vector<detail::meta_entry>& meta) override {
    std::unique_lock lock{mtx_};
    apply(batch, meta);
    checkpoint_.store(next_offset, std::memory_order_release);
    return {};
  }

  result<std::optional<std::string>> read_meta(std::string_view key) const override {
    std::shared_lock lock{mtx_};
    auto i = meta_.find(key);
    if (i == meta_.end()) return std::optional<std::string>{};
    return std::optional<std::string>{i->second};
  }

  int64_t checkpoint() const override {
    return checkpoint_.load(std::memory_order_acquire);
  }

  status write_checkpoint(int64_t next_offset) override {
    checkpoint_.store(next_offset, std::memory_order_release);
    return {};
  }

 private:
  void assign(std::string_view key, std::string_view value) {
    auto i = data_.find(key);
    if (i != data_.end())
      i->second.assign(value);
    else
      data_.emplace(std::string{key}, std::string{value});
  }
  void erase(std::string_view key) {
    auto i = data_.find(key);
    if (i != data_.end()) data_.erase(i);
  }
  void apply(const std::vector<change>& batch,
             const std::vector<detail::meta_entry>& meta) {
    for (auto& c : batch) {
      if (c.value)
        assign(c.key, *c.value);
      else
        erase(c.key);
    }
    for (auto& m : meta)
      meta_[m.key] = m.value;
  }

  std::string name_;
  mutable std::shared_mutex mtx_;
  std::map<std::string, std::string, std::less<>> data_;
  std::map<std::string, std::string, std::less<>> meta_;
  std::atomic<int64_t> checkpoint_{-1};
};

} // namespace

std::unique_ptr<kv_store> make_memory_kv(std::string name, epoch_group* epochs) {
  return detail::buffer_epochs(std::make_unique<memory_byte_store>(std::move(name)),
                               epochs);
}

result<std::unique_ptr<window_store>>
make_memory_window(std::string name, timestamp_ms retention_ms, epoch_group* epochs) {
  return detail::make_window_store(
      detail::buffer_epochs(std::make_unique<memory_byte_store>(std::move(name)), epochs),
      retention_ms);
}

result<std::unique_ptr<session_store>>
make_memory_session(std::string name, timestamp_ms retention_ms, epoch_group* epochs) {
  return detail::make_session_store(
      detail::buffer_epochs(std::make_unique<memory_byte_store>(std::move(name)), epochs),
      retention_ms);
}

} // namespace weft::state
