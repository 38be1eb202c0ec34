#pragma once
// The cluster log: the compacted one-partition topic <application.id>-cluster
// that holds the cluster's narrative, its codec, and its reader. Shared by
// the nodes and tools/weft-cluster. No CAF.
//
// Records:
//   member/<node id>  -> the node's announcement (JSON: host, port, http,
//                        incarnation, topology); a tombstone when the node
//                        leaves cleanly
//   assignment        -> an assignment generation (JSON, assignor.hpp),
//                        written in the leader's transactions
// Readers read it from its start, read_committed.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "weft/cluster/assignor.hpp"
#include "weft/cluster/cluster_types.hpp"
#include "weft/status.hpp"

namespace weft::kafka {
class consumer;
class partition_queue;
class message_batch;
} // namespace weft::kafka

namespace weft::cluster {

/// The topic of an application's cluster log.
std::string cluster_log_topic(const std::string& application_id);

inline constexpr std::string_view assignment_key = "assignment";
inline constexpr std::string_view member_key_prefix = "member/";
std::string member_key(const std::string& node_id);

/// A member record as JSON.
std::string encode_member(const member_record& m);
/// Parses encode_member()'s output; errc::invalid_argument naming what is
/// wrong (not JSON, a field missing or of the wrong type, an empty id or
/// host, port 0).
result<member_record> decode_member(std::string_view text);

/// The cluster log as read so far.
struct log_state {
  std::map<std::string, member_record> announced; ///< announced and not left
  std::optional<assignment> latest;               ///< the highest generation
  std::vector<std::string> warnings;              ///< unreadable records
};

/// Applies one record of the log to `state`; an assignment newer than the
/// latest is also appended to `fresh` (when given).
void apply_record(log_state& state, std::string_view key,
                  std::optional<std::string_view> value, int64_t offset,
                  std::vector<assignment>* fresh = nullptr);

/// Reads a cluster log from its start on a thread of its own and hands each
/// batch of changes to `on_update` (on that thread: keep it short, e.g. post
/// to an actor). It waits for records on a condition variable that
/// librdkafka signals; no polling loop.
class cluster_log_reader {
 public:
  /// (announced members, assignments read since the last call in log order,
  /// position = next offset to read).
  using update_fn = std::function<void(const std::map<std::string, member_record>&,
                                       const std::vector<assignment>&, int64_t)>;

  /// `props`: librdkafka consumer properties (bootstrap, group.id for the
  /// client only — it never commits); read_committed is set here.
  ///
  /// `stall_ms` (> 0) bounds how long the reader may stay behind the log's
  /// end without reading anything: past it, it logs a warning naming its
  /// position and the end, and fetches again from its position (a fetcher
  /// left stuck by a broker restart cannot keep a node on a stale
  /// generation for good).
  static result<std::unique_ptr<cluster_log_reader>>
  start(std::map<std::string, std::string> props, std::string topic, update_fn on_update,
        int stall_ms = 5000);

  /// How often the reader found itself stalled and fetched again.
  uint64_t refetches() const { return refetches_.load(std::memory_order_relaxed); }
  ~cluster_log_reader(); ///< stops the thread

  /// Waits until everything committed to the log so far is read: the
  /// position reaches the high watermark seen now. Bounded by timeout_ms
  /// (errc::timed_out naming the offsets).
  status sync(int timeout_ms);

  /// The high watermark (blocking, bounded): a position to wait for.
  result<int64_t> end_offset(int timeout_ms);

  /// The position reached (next offset to read).
  int64_t position() const { return position_.load(std::memory_order_acquire); }

  /// The latest assignment read (null before the first); any thread.
  std::shared_ptr<const assignment> latest() const;

 private:
  cluster_log_reader() = default;
  void run();

  std::string topic_;
  update_fn on_update_;
  std::unique_ptr<kafka::consumer> consumer_;
  std::unique_ptr<kafka::partition_queue> queue_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool ready_ = false; ///< the queue has records (set by librdkafka)
  bool stop_ = false;
  std::condition_variable position_cv_;
  std::atomic<int64_t> position_{0};
  int stall_ms_ = 5000;
  std::atomic<uint64_t> refetches_{0};
  log_state state_; ///< reader thread only
  mutable std::mutex latest_mu_;
  std::shared_ptr<const assignment> latest_;
};

/// Reads a cluster log once from its start to its end (for tools): at most
/// timeout_ms per wait. errc::not_found when the topic does not exist.
result<log_state> read_cluster_log(std::map<std::string, std::string> props,
                                   const std::string& topic, int timeout_ms);

} // namespace weft::cluster
