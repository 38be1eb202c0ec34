#pragma once
// A Kafka consumer with manual assignment and one fetch queue per partition.
//
// weft never lets librdkafka's group protocol pick partitions: the node
// supervisor decides what a node consumes and calls assign(). Each assigned
// partition's messages are split off the consumer's main queue into a
// partition_queue, which one partition actor owns and drains without blocking
// (consume with a zero timeout) whenever librdkafka signals that data arrived.
// The consumer's main queue then carries only errors and commit results;
// poll_events() serves it from a thread of the caller's choosing.
//
// Thread safety: every member may be called from any thread (librdkafka's
// handle is thread-safe), except that one partition_queue is drained by one
// thread at a time and poll_events() runs on one thread at a time.

#include <algorithm>
#include <librdkafka/rdkafka.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "weft/record.hpp"
#include "weft/status.hpp"
#include "weft/types.hpp"

namespace weft::kafka {

/// Consumed messages, owned: destroys each one when the batch dies. Shared
/// read-only between the tasks one partition feeds, so a record is never copied.
class message_batch {
 public:
  message_batch() = default;
  message_batch(const message_batch&) = delete;
  message_batch& operator=(const message_batch&) = delete;
  ~message_batch();

  std::vector<rd_kafka_message_t*>& messages() { return msgs_; }
  size_t size() const { return msgs_.size(); }
  bool empty() const { return msgs_.empty(); }
  /// A borrowed view of message i, valid while the batch lives.
  record_view view(size_t i) const;
  /// Offset of the last message plus one: where to resume after this batch.
  weft::offset next_offset() const;
  /// The timestamp of message i (cheaper than view(i).timestamp).
  timestamp_ms timestamp(size_t i) const {
    return rd_kafka_message_timestamp(msgs_[i], nullptr);
  }

 private:
  std::vector<rd_kafka_message_t*> msgs_;
};

/// The fetch queue of one assigned partition, split off the consumer's queue.
class partition_queue {
 public:
  partition_queue(rd_kafka_t* rk, rd_kafka_queue_t* q, topic_partition tp);
  partition_queue(const partition_queue&) = delete;
  partition_queue& operator=(const partition_queue&) = delete;
  ~partition_queue();

  const topic_partition& partition() const { return tp_; }

  /// Moves up to `max` consumed messages into `out` without waiting; returns
  /// how many, 0 only when the queue holds no record to hand on now. Error events on the
  /// queue (e.g. an offset out of range) are not messages: they are logged and their
  /// status returned through `error`. Offsets only grow: a message at or below one
  /// already drained (or below the floor) is dropped. librdkafka 2.0.2 delivered a
  /// partition's first 1,000 records twice to one node after an incremental assignment of
  /// it was replaced by a full one; handing them on processed them twice.
  size_t drain(message_batch& out, size_t max, status* error = nullptr);

  /// Drops messages below `offset` from now on: the group's committed offset
  /// of a partition being assigned (a fetch left over from an earlier
  /// assignment of it must not hand committed records on again).
  void set_floor(int64_t offset) { next_ = std::max(next_, offset); }

  /// Messages (and events) waiting in the queue.
  size_t size() const;

  /// Whether every record of the partition that was on the broker when it
  /// last answered a fetch has been drained: the partition is known to be at
  /// its end (Kafka Streams: its fetched lag is 0). False while unknown
  /// (before the first fetch answer) or while records are known to be there
  /// that the queue has not handed out yet.
  ///
  /// Two sources, because neither covers every case: librdkafka's cached high
  /// watermark of the last fetch answer (immediate, but a read_committed
  /// reader of a transactional topic never receives the commit marker at
  /// its end), and the partition-EOF event (enable.partition.eof, which
  /// consumer::create turns on) that librdkafka queues after the last record
  /// once a fetch reaches the end, at the last stable offset under
  /// read_committed (exact, but it comes with the next fetch answer, up to
  /// fetch.wait.max.ms later). Non-blocking: reads librdkafka's cache.
  bool at_end() const;

  /// Calls `wake` (on a librdkafka thread: keep it short and non-blocking)
  /// each time the queue goes from empty to non-empty. Pass {} to stop.
  void on_ready(std::function<void()> wake);

 private:
  static void trampoline(rd_kafka_t*, void* opaque);
  rd_kafka_t* rk_;
  rd_kafka_queue_t* q_;
  topic_partition tp_;
  std::unique_ptr<std::function<void()>> wake_;
  std::vector<std::unique_ptr<std::function<void()>>> retired_;
  int64_t next_ = -1; ///< after the last message drained
  int64_t eof_ = -1;  ///< offset of the last end-of-partition event drained
};

class consumer {
 public:
  using error_handler = std::function<void(const status&)>;

  /// Creates a consumer. `props` are librdkafka properties and must include
  /// group.id. weft sets enable.auto.commit=false (it commits what it has
  /// processed), auto.offset.reset=earliest and enable.partition.eof=true
  /// (partition_queue::at_end; drain() and poll_events() swallow the events)
  /// unless given. `on_error` gets client errors (broker down, fatal errors)
  /// on the poll_events() thread.
  static result<std::unique_ptr<consumer>>
  create(std::map<std::string, std::string> props, error_handler on_error = {});
  consumer(const consumer&) = delete;
  consumer& operator=(const consumer&) = delete;
  /// Closes (leaving the group without committing) and destroys the handle.
  ~consumer();

  /// Replaces the assignment. Partitions start at their committed offset, or
  /// per auto.offset.reset when the group has none.
  status assign(const std::vector<topic_partition>& tps);

  /// Replaces the assignment, starting each partition at the given offset
  /// (RD_KAFKA_OFFSET_BEGINNING / _END allowed). Empty: unassign all.
  status assign_at(const std::vector<std::pair<topic_partition, weft::offset>>& start);

  /// Adds partitions to the assignment, each at its committed offset (or per
  /// auto.offset.reset); the partitions already assigned go on fetching where
  /// they are (assign() restarts every partition at its committed offset).
  /// The start offset that means "at the committed offset" (librdkafka's
  /// RD_KAFKA_OFFSET_INVALID).
  static constexpr int64_t committed_offset = -1001;
  status incremental_assign(const std::vector<topic_partition>& tps);
  /// incremental_assign() starting each partition at the given offset
  /// (consumer::committed_offset: at its committed offset).
  status incremental_assign_at(
      const std::vector<std::pair<topic_partition, weft::offset>>& start);
  /// Removes partitions from the assignment; the others go on fetching where
  /// they are. Partitions not assigned are left alone.
  status incremental_unassign(const std::vector<topic_partition>& tps);

  /// Splits the partition's messages off the main queue. Call it before
  /// assign(): a message fetched in between would land on the main queue.
  std::unique_ptr<partition_queue> take_queue(const topic_partition& tp);

  /// Commits `next offset to consume` per partition; async returns at once.
  status commit(const std::vector<std::pair<topic_partition, weft::offset>>& offsets,
                bool async);

  /// Commits and waits for the broker's answer, at most timeout_ms (a plain
  /// synchronous commit can wait forever for an unreachable coordinator).
  status commit_sync(const std::vector<std::pair<topic_partition, weft::offset>>& offsets,
                     int timeout_ms);

  /// Stops (resumes) fetching a partition. Messages prefetched before a pause
  /// are dropped and fetched again from the application's position on resume.
  status pause(const topic_partition& tp);
  status resume(const topic_partition& tp);

  /// Serves the main queue (errors, commit results) for up to timeout_ms.
  void poll_events(int timeout_ms);

  /// Number of partitions of `topic`; errc::not_found when it does not exist.
  /// Blocks up to timeout_ms: never call it on an actor's scheduler thread.
  result<int> partition_count(const std::string& topic, int timeout_ms);

  /// The application's position in a partition: the offset after the last
  /// message consumed from it, or -1001 (invalid) before the first.
  int64_t position(const topic_partition& tp);

  /// Low and high watermark of a partition (blocking, like partition_count).
  result<std::pair<int64_t, int64_t>> watermarks(const topic_partition& tp,
                                                 int timeout_ms);

  /// The committed offset (next to consume) of each partition, -1001 if none.
  result<std::vector<int64_t>> committed(const std::vector<topic_partition>& tps,
                                         int timeout_ms);

  /// Leaves the group cleanly. Called by the destructor if not before.
  status close();

  rd_kafka_t* handle() { return rk_; }

 private:
  consumer() = default;
  static void error_cb(rd_kafka_t*, int err, const char* reason, void* opaque);
  rd_kafka_t* rk_ = nullptr;
  rd_kafka_queue_t* main_q_ = nullptr;
  error_handler on_error_;
  bool closed_ = false;
};

/// A topic_partition list for librdkafka, owned.
struct tp_list_deleter {
  void operator()(rd_kafka_topic_partition_list_t* l) const {
    rd_kafka_topic_partition_list_destroy(l);
  }
};
using tp_list_ptr = std::unique_ptr<rd_kafka_topic_partition_list_t, tp_list_deleter>;

tp_list_ptr
make_tp_list(const std::vector<std::pair<topic_partition, weft::offset>>& offs);

} // namespace weft::kafka
