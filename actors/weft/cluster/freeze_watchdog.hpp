#pragma once
// The freeze watchdog: a thread that notes the time every 50 ms. A gap longer
// than cluster.timeout.ms means the whole process stalled (SIGSTOP, a VM
// pause, swapping): the other nodes took it for dead, fenced it and moved its
// units. It must not act on its stale view, so the watchdog tells
// `on_frozen` (the coordinator steps down; the rebalancer drops every task
// and rejoins as a new incarnation).
//
// Internal to weft.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>

namespace weft::cluster {

class freeze_watchdog {
 public:
  /// `on_frozen` runs on the watchdog's thread with the stall's length (ms):
  /// keep it short (post to actors).
  freeze_watchdog(int64_t timeout_ms, std::function<void(int64_t)> on_frozen);
  ~freeze_watchdog(); ///< stops the thread

 private:
  void run();
  int64_t timeout_ms_;
  std::function<void(int64_t)> on_frozen_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

} // namespace weft::cluster
