#pragma once
// A global table (GlobalKTable): every partition of a topic replicated into a
// local store on every node. A thread of its own reads the topic (blocking
// Kafka calls stay off CAF's scheduler): catch_up() reads to the high
// watermarks seen when it starts and returns, so the node's start-up blocks
// until the table is loaded; then the thread keeps applying updates until
// the table is destroyed. Updates trigger no processing; services read the
// store with context::global_store().
//
// The store is rebuilt from the topic at each start (its folder is wiped), so
// it never needs per-partition checkpoints.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "weft/status.hpp"

namespace weft::kafka {
class consumer;
class partition_queue;
} // namespace weft::kafka
namespace weft::state {
class kv_store;
}

namespace weft::detail {

class global_table {
 public:
  global_table(std::string topic, state::kv_store* store);
  ~global_table(); ///< stops the thread

  /// Creates the reader, reads every partition to its current end, then
  /// starts the tailing thread. Blocks up to timeout_ms without progress.
  status start(std::map<std::string, std::string> consumer_props, int timeout_ms);

  uint64_t applied() const { return applied_.load(std::memory_order_relaxed); }

 private:
  status apply_available(size_t max, size_t& n);
  /// Waits until librdkafka says records arrived, at most `bound`.
  void wait_for_records(std::chrono::milliseconds bound);
  std::string topic_;
  state::kv_store* store_;
  std::unique_ptr<kafka::consumer> consumer_;
  std::vector<std::unique_ptr<kafka::partition_queue>> queues_;
  std::vector<int64_t> ends_; ///< high watermark per partition at start
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  bool ready_ = false;
  std::atomic<uint64_t> applied_{0};
  std::thread thread_;
};

} // namespace weft::detail
