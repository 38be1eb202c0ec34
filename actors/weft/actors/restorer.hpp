#pragma once
// The restore thread of a node: opens task shards and brings them up to the
// end of their changelogs off CAF's scheduler (opening a RocksDB shard and
// restoring it both block on disk and Kafka).
//
// A task submits a job (how to open its shard) and owns no shard until its
// `done` callback hands it one (on the restore thread; the task's callback
// only parks the shard where the task finds it and sends the task a message).
// Jobs waiting together form one batch: their shards open in parallel (up to
// `max_parallel_opens` at once), then restore together with one consumer of
// the node's own that fetches every changelog partition of the batch at once
// and never commits.
//
// A restore that fails on Kafka (a broker restarting answers "unknown
// partition" for a while, and a client may keep stale metadata) is retried on
// the same open shards with new Kafka clients, backing off, for up to
// `retry_window` before the jobs fail (the task then fails and its supervisor
// recovers as for any task failure). Each retry is logged.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
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
  using shard_ptr = std::unique_ptr<state::shard>;
  /// Opens the shard (runs on the restore thread, or a helper thread of it).
  using open_fn = std::function<result<shard_ptr>()>;
  /// The opened and restored shard with the number of changes restored, or
  /// why it failed (errc::shutting_down when the node stops first).
  using done_fn = std::function<void(result<shard_ptr>, uint64_t restored)>;

  /// `props`: librdkafka consumer properties (bootstrap.servers, ...).
  /// `progress` (optional, must outlive the restorer) is kept up to date.
  restorer(std::map<std::string, std::string> props, size_t batch, int timeout_ms,
           state::restore_progress* progress = nullptr);
  ~restorer(); ///< stops after the running batch; pending jobs get shutting_down

  /// Queues a job; returns its ticket for cancel().
  uint64_t submit(open_fn open, done_fn done);

  /// Forgets job `ticket`: drops it if pending (its callback is not called)
  /// and, if it is running, waits until its batch ends — at once when every
  /// job of the batch is cancelled (the restore stops where it is, keeping
  /// what it applied). When this returns, `done` of the job has run or never
  /// will.
  void cancel(uint64_t ticket);

  /// How many times a failed restore was tried again, since the start.
  uint64_t retries() const { return retries_.load(std::memory_order_relaxed); }

  static constexpr size_t max_parallel_opens = 4;
  /// How long a batch's restore is retried after Kafka errors.
  static constexpr std::chrono::milliseconds retry_window{60000};

 private:
  void run();
  /// Waits `backoff`, or less if the node stops or the batch is cancelled;
  /// false then.
  bool pause(std::chrono::milliseconds backoff);
  struct job {
    uint64_t ticket;
    open_fn open;
    done_fn done;
  };
  std::map<std::string, std::string> props_;
  size_t batch_;
  int timeout_ms_;
  state::restore_progress* progress_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<job> jobs_;
  std::vector<uint64_t> running_; ///< tickets of the batch in progress
  size_t cancelled_running_ = 0;  ///< how many of them were cancelled
  /// Set when every job of the running batch is cancelled (or the node stops):
  /// the restore stops where it is.
  std::atomic<bool> interrupt_{false};
  std::atomic<uint64_t> retries_{0};
  uint64_t next_ticket_ = 0;
  bool stop_ = false;
  std::thread thread_;
};

} // namespace weft::detail
