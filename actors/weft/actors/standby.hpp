#pragma once
// Hot standbys: copies of task shards that other nodes own, kept close to
// their changelogs' ends, so that when a task moves to this node it only
// restores the tail written since the last standby round.
//
// A standby shard lives where the task's shard would
// (<state.dir>/<application.id>/<partition>/<store>), opened without a
// changelog sink and not transactional; it only ever restores, so its data
// and checkpoints are exactly what a task's restore writes, and a task that
// opens the same folder later resumes from the standby's checkpoints.
//
// Thread: one background thread owns every standby shard and one Kafka
// consumer of its own (read_committed, never commits). Each round it reads
// the changelogs' watermarks, brings the shards that are behind up to the
// ends seen (state::shard::restore_all), records each one's lag, then sleeps
// poll_ms. set() and release() hand their change to that thread, interrupt a
// round in progress (the restored part is kept) and wait until it is
// applied. Every member may be called from any thread.
//
// Errors (a changelog that does not exist, a store folder that cannot be
// opened, the broker away) stay with the standby they concern: it reports
// lag -1 and the error in errors(), is retried with a back-off, and the other
// standbys go on.
//
// Internal to weft: the node owns it and decides which shards it holds.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "weft/status.hpp"

namespace weft::kafka {
class consumer;
}
namespace weft::state {
class shard;
}

namespace weft::detail {

struct node_context;

/// A standby task shard: (service index into node_context::services, partition).
using task_key = std::pair<size_t, int32_t>;

class standby_manager {
 public:
  /// `ctx` must outlive the manager (stores, state_dir, application_id and
  /// services are read). `props`: librdkafka consumer properties for its own
  /// reader; it reads read_committed and never commits (the node passes the
  /// restorer's). `timeout_ms` bounds each blocking Kafka call and a restore
  /// that makes no progress; `poll_ms` is the pause between rounds.
  standby_manager(node_context* ctx, std::map<std::string, std::string> props,
                  int timeout_ms, int poll_ms = 100);
  standby_manager(const standby_manager&) = delete;
  standby_manager& operator=(const standby_manager&) = delete;
  /// Stops the thread (interrupting a round) and closes every shard.
  ~standby_manager();

  /// Replaces the set of standby shards: opens the new ones, closes the ones
  /// no longer listed. Returns once both are done, so a dropped shard's
  /// folders are free for a task to open. Keys of services without stores
  /// (or out of range) are ignored. A key whose task runs on this node must
  /// not be listed (both would open the same RocksDB folders; the standby's
  /// open fails and is retried).
  void set(const std::vector<task_key>& keys);

  /// Closes the standby of `key` now, blocking until it is closed (a task is
  /// about to open the same folders), and forgets it until a later set()
  /// lists it again. A no-op if it is not held.
  void release(const task_key& key);

  /// How many changelog records each standby is behind, summed over its
  /// stores: the changelog ends read at the start of its last round minus its
  /// checkpoints, published as soon as the ends are read (so a long catch-up
  /// shows its backlog) and again when the round's restore is done (then
  /// usually 0). -1 before its first round and after a failed one (see
  /// errors()).
  std::map<task_key, int64_t> lags() const;

  /// The standbys whose last attempt (open, changelog check or round)
  /// failed, with the error; a standby leaves the map at its next good round.
  std::map<task_key, status> errors() const;

  /// Reads `key` in kv store `store` of the standby of `partition`, for
  /// interactive queries: errc::not_found when this node holds no standby of
  /// it (or no service has such a store), errc::state_not_ready when its lag
  /// is unknown or above `max_lag`, errc::invalid_argument if `store` is not
  /// a kv store.
  result<std::optional<std::string>> get(const std::string& store, int32_t partition,
                                         std::string_view key, int64_t max_lag) const;

 private:
  using clock = std::chrono::steady_clock;
  /// One standby shard; owned by the thread, published under view_mu_.
  struct standby {
    std::unique_ptr<state::shard> shard; ///< null until it could be opened
    bool checked = false;                ///< its changelog partitions exist
    int64_t lag = -1;
    status error;
    int failures = 0; ///< in a row, for the back-off
    clock::time_point retry_at{};
    clock::time_point flushed_at{};
    uint64_t unflushed = 0; ///< changes restored since the last flush
  };
  /// The watermarks of one changelog partition of a standby.
  struct mark {
    int64_t low = 0;
    int64_t high = 0;
  };

  void run();
  /// Closes the standbys no longer wanted (before set() returns: a task may
  /// be about to open their folders) and lists the new ones, unopened.
  void reconcile(const std::set<task_key>& wanted);
  /// Opens the listed standbys that are not open (after set() returned: a
  /// promotion does not wait for other shards to open).
  void open_missing();
  void round();
  /// The changelog partitions of `s` exist and their marks, or the error.
  status read_marks(const task_key& key, standby& s, std::vector<mark>& marks);
  /// Restores `keys` together; on a failure, one by one to find the culprits.
  void restore(const std::vector<task_key>& keys,
               std::map<task_key, std::vector<mark>>& marks);
  int64_t lag_of(const standby& s, const std::vector<mark>& marks) const;
  void fail(const task_key& key, standby& s, status error);
  void succeed(const task_key& key, standby& s, int64_t lag);
  std::string describe(const task_key& key) const;
  /// Hands the current wanted_ to the thread and waits until it is applied.
  void request(std::unique_lock<std::mutex>& lock);

  node_context* ctx_;
  std::map<std::string, std::string> props_;
  int timeout_ms_;
  int poll_ms_;
  std::unique_ptr<kafka::consumer> reader_; ///< the thread's

  // Requests from callers to the thread.
  std::mutex mu_;
  std::condition_variable cv_;
  std::set<task_key> wanted_;
  uint64_t requested_ = 0; ///< changes to wanted_ so far
  uint64_t applied_ = 0;   ///< how many of them the thread applied
  bool stop_ = false;
  std::atomic<bool> interrupt_{false}; ///< stops a round's restore early

  // The shards. The thread changes the map and the standbys' fields under a
  // unique lock and reads them without one; readers take a shared lock.
  mutable std::shared_mutex view_mu_;
  std::map<task_key, standby> standbys_;

  std::thread thread_;
};

} // namespace weft::detail
