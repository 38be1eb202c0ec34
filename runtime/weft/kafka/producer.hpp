#pragma once
// An idempotent (optionally transactional) Kafka producer.
//
// send() never blocks: it hands the record to librdkafka's queue, or returns
// errc::queue_full so the caller can hold its input (that is how backpressure
// reaches the partition actors). A thread owned by the producer serves
// delivery reports and calls the delivery handler with the opaque pointer the
// record was sent with.
//
// The transactional calls (init/begin/send_offsets/commit/abort) block for up
// to their timeout: call them from a thread that may block, never from an
// actor on CAF's scheduler. A fenced producer reports errc::kafka_fatal and
// can never commit again.
//
// Thread safety: send() and flush() from any thread; transactional calls from
// one thread at a time.

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "weft/record.hpp"
#include "weft/status.hpp"
#include "weft/types.hpp"

namespace weft::kafka {

class consumer;

class producer {
 public:
  /// Called once per record: ok and the record's offset, or the error that
  /// made librdkafka give up on it (after its own retries) and -1. Usually on
  /// the producer's delivery thread, but also on any thread inside flush(),
  /// commit_transaction() or abort_transaction() (librdkafka serves delivery
  /// reports there: an abort purges and reports every record in flight) —
  /// so two calls may run at once, and the handler must be thread-safe.
  using delivery_handler =
      std::function<void(void* opaque, const status& st, int64_t offset)>;
  using error_handler = std::function<void(const status&)>;

  /// Creates a producer with enable.idempotence=true (unless the caller sets
  /// it) and starts its delivery thread. With transactional.id in `props` it
  /// is transactional: call init_transactions() before the first send.
  static result<std::unique_ptr<producer>>
  create(std::map<std::string, std::string> props, delivery_handler on_delivery = {},
         error_handler on_error = {});
  producer(const producer&) = delete;
  producer& operator=(const producer&) = delete;
  /// Stops the delivery thread and destroys the handle; records still queued
  /// are purged (flush() first to keep them).
  ~producer();

  /// Enqueues a record (bytes are copied into librdkafka's queue).
  /// partition < 0 lets the partitioner hash the key, without its last
  /// `key_suffix` bytes (0, 8 or 16: see record::key_suffix; windowed keys
  /// always hash with murmur2, as Kafka Streams does, whatever the
  /// `partitioner` property says). `opaque` comes back to the delivery
  /// handler; it must be aligned to 4 bytes (any object pointer is): the
  /// producer carries key_suffix in its two low bits. errc::invalid_argument
  /// for another key_suffix, or one longer than the key. `extra`, if given,
  /// is one more header after `headers` (copied like them; weft's causal
  /// header, which so needs no copy of its own per record).
  status send(std::string_view topic, int32_t partition,
              std::optional<std::string_view> key, std::optional<std::string_view> value,
              timestamp_ms ts = 0, const std::vector<header>* headers = nullptr,
              void* opaque = nullptr, uint8_t key_suffix = 0,
              const header_ref* extra = nullptr);
  status send(const record& r, void* opaque = nullptr, const header_ref* extra = nullptr);

  /// Waits until every queued record is delivered or failed.
  status flush(int timeout_ms);

  /// Stops the delivery thread: no handler call happens after this returns,
  /// unless this producer's flush() or a transaction call runs again. Records
  /// still in flight are then never reported.
  void stop_polling();

  /// Records queued in librdkafka and not yet acknowledged.
  int outstanding() const;

  /// Learns the partitions and leaders of `topics` now, asking the broker
  /// again (every 50 ms, then up to every 500 ms) while it does not know a
  /// topic yet, for up to `timeout_ms` in all. A producer otherwise learns a
  /// topic on its first send, and for a topic created a moment ago librdkafka
  /// asks again only every topic.metadata.refresh.fast.interval.ms: the first
  /// records to it waited 0.8 s. Blocks: call it before sending, from a
  /// thread that may block. errc::timed_out names the topics still unknown
  /// (the producer works anyway: it keeps asking on its own).
  status learn_topics(const std::vector<std::string>& topics, int timeout_ms);

  status init_transactions(int timeout_ms);
  status begin_transaction();
  status send_offsets_to_transaction(
      const std::vector<std::pair<topic_partition, weft::offset>>& offsets,
      consumer& source, int timeout_ms);
  status commit_transaction(int timeout_ms);
  status abort_transaction(int timeout_ms);

  rd_kafka_t* handle() { return rk_; }

 private:
  producer() = default;
  static void dr_cb(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque);
  static int32_t partition_cb(const rd_kafka_topic_t* rkt, const void* key,
                              size_t key_len, int32_t partitions, void* rkt_opaque,
                              void* msg_opaque);
  using partitioner_fn = int32_t (*)(const rd_kafka_topic_t*, const void*, size_t,
                                     int32_t, void*, void*);
  partitioner_fn partitioner_ = nullptr; ///< the configured one, for plain keys
  static void error_cb(rd_kafka_t*, int err, const char* reason, void* opaque);
  rd_kafka_t* rk_ = nullptr;
  delivery_handler on_delivery_;
  error_handler on_error_;
  std::atomic<bool> stop_{false};
  std::thread poller_;
};

} // namespace weft::kafka
