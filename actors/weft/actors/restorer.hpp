#pragma once
// The restore thread of a node: brings task shards up to the end of their
// changelogs off CAF's scheduler (restoring blocks on Kafka and RocksDB).
//
// A task hands over its shard with submit() and does not touch the stores
// until `done` runs (on the restore thread; the task's callback only sends
// the task a message). Jobs run one at a time, in submission order, with one
// consumer of the node's own that is assigned to one changelog partition at
// a time and never commits.

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "weft/status.hpp"

namespace weft::kafka {
class consumer;
}
namespace weft::state {
class shard;
struct restore_progress;
} // namespace weft::state

namespace weft::detail {

class restorer {
 public:
  using done_fn = std::function<void(const status&, uint64_t restored)>;

  /// `props`: librdkafka consumer properties (bootstrap.servers, ...).
  /// `progress` (optional, must outlive the restorer) is kept up to date.
  restorer(std::map<std::string, std::string> props, size_t batch, int timeout_ms,
           state::restore_progress* progress = nullptr);
  ~restorer(); ///< stops after the running job; pending jobs get shutting_down

  void submit(state::shard* shard, done_fn done);

  /// Forgets `shard`: drops its pending job (its callback is not called) and,
  /// if it is being restored, waits until that restore ends. The shard may be
  /// destroyed when this returns.
  void cancel(state::shard* shard);

 private:
  void run();
  struct job {
    state::shard* shard;
    done_fn done;
  };
  std::map<std::string, std::string> props_;
  size_t batch_;
  int timeout_ms_;
  state::restore_progress* progress_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<job> jobs_;
  std::vector<state::shard*> running_; ///< shards of the restore in progress
  bool stop_ = false;
  std::thread thread_;
};

} // namespace weft::detail
