#include "weft/cluster/freeze_watchdog.hpp"

#include <chrono>

#include "weft/log.hpp"

namespace weft::cluster {

freeze_watchdog::freeze_watchdog(int64_t timeout_ms,
                                 std::function<void(int64_t)> on_frozen)
  : timeout_ms_(timeout_ms), on_frozen_(std::move(on_frozen)) {
  thread_ = std::thread{[this] { run(); }};
}

freeze_watchdog::~freeze_watchdog() {
  {
    std::lock_guard<std::mutex> guard{mu_};
    stop_ = true;
    cv_.notify_all();
  }
  thread_.join();
}

void freeze_watchdog::run() {
  using clock = std::chrono::steady_clock;
  auto last = clock::now();
  std::unique_lock<std::mutex> lock{mu_};
  while (!cv_.wait_for(lock, std::chrono::milliseconds(50), [this] { return stop_; })) {
    auto now = clock::now();
    auto gap = std::chrono::duration_cast<std::chrono::milliseconds>(now - last).count();
    last = now;
    if (gap > timeout_ms_) {
      log::warn("cluster: this process stalled for {} ms (more than cluster.timeout.ms "
                "{} ms): the others have moved its units; it drops them and rejoins",
                gap, timeout_ms_);
      on_frozen_(gap);
    }
  }
}

} // namespace weft::cluster
