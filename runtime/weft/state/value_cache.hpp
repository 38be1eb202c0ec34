#pragma once
// The memory the key-value caches of a node may keep for values they
// already wrote down or read (layered_store.hpp, caching), shared by all of
// them: `statestore.value.cache.max.bytes`.
//
// Why they keep values at all: profiled on the count-by-key bench (README,
// "Tests and benchmarks", where the time goes), a RocksDB Get was a quarter of the task
// threads' CPU. The key had been written a moment before, so it sat in a large memtable
// and each lookup walked a skip list that does not fit the CPU caches; RocksDB's own LRU
// cache as a row cache cost nearly as much (its handle table and two locks per lookup). A
// caching layer's clean values are a hash map under the lock it takes anyway.
//
// A layer keeps a value it read only when the key was missed before, not
// long ago (detail/admission_filter.hpp); a flush updates the values it keeps
// and adds none. Each layer accounts its entries here and, when the node is over budget,
// evicts its own oldest ones before it keeps another or grows one (so the
// total stays within the budget plus one entry per layer); a layer that goes
// away gives its bytes back.
//
// Threads: every call is safe from any thread (one atomic).

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace weft::state {

class value_cache_budget {
 public:
  explicit value_cache_budget(size_t max_bytes) : max_(static_cast<int64_t>(max_bytes)) {}

  size_t max_bytes() const { return static_cast<size_t>(max_); }
  size_t used_bytes() const {
    auto u = used_.load(std::memory_order_relaxed);
    return u > 0 ? static_cast<size_t>(u) : 0;
  }
  /// Whether `more` bytes fit.
  bool fits(size_t more) const {
    return used_.load(std::memory_order_relaxed) + static_cast<int64_t>(more) <= max_;
  }
  void take(size_t n) {
    used_.fetch_add(static_cast<int64_t>(n), std::memory_order_relaxed);
  }
  void give(size_t n) {
    used_.fetch_sub(static_cast<int64_t>(n), std::memory_order_relaxed);
  }
  /// The layers sharing the budget (each joins once, leaves once): each
  /// sizes its admission window to its share.
  void join() { users_.fetch_add(1, std::memory_order_relaxed); }
  void leave() { users_.fetch_sub(1, std::memory_order_relaxed); }
  size_t users() const {
    auto n = users_.load(std::memory_order_relaxed);
    return n > 0 ? static_cast<size_t>(n) : 1;
  }

 private:
  const int64_t max_;
  std::atomic<int64_t> used_{0};
  std::atomic<int64_t> users_{0};
};

} // namespace weft::state
