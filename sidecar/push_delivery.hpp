#pragma once
// Push subscriptions: the sidecar POSTs each record of the subscription's
// topic to the application's URL, in offset order per partition, and marks
// it handled only after a 2xx; the group's offset is committed from those
// marks (subscription_source.hpp). So a record is delivered at least once:
// a kill -9 of the sidecar or of the application repeats at most what was
// delivered since the last commit (commit.interval.ms), never skips one.
// Each record carries topic, partition and offset, the application's key
// for doing its effect once.
//
// The body is one record (batch.max=1), or a JSON array of up to batch.max
// records in offset order per partition:
//   {"subscription","topic","partition","offset","timestamp","key","value","headers"}
//
// When the application cannot be reached (connection refused or dropped, no
// answer within timeout.ms) or answers 429, 502, 503 or 504, it is not
// there: the record waits, retried with back-off (retry.backoff.ms doubling
// to retry.backoff.max.ms) for as long as it takes, and flows once the
// application is back. When the application answers with another error
// max.attempts times, the record is bad and bad.record.policy decides: fail
// stops the sidecar (exit 1; nothing after the record is committed, so a
// restart delivers it again), skip logs it and goes on, dead_letter writes
// it with weft.error, weft.service (sub-<name>), weft.topic, weft.partition
// and weft.offset headers to the dead-letter topic, then goes on (every
// record of a refused batch, with batch.max above 1), park holds its key
// (push_parking.hpp: the record and every later one of its key wait, every
// other key flows; a refused batch is first delivered again one record at
// a time, so only the keys the application refuses park). A record
// its topic's serdes cannot render (invalid JSON, invalid UTF-8) goes to the
// policy at once.
//
// Under park, the delivery thread also carries out the operators' calls on
// parked keys between two polls (retry and skip deliver a key's held
// records again, in order, up to 100 a turn) and makes the parked store's
// writes durable before it commits or polls again.
//
// Threads: one delivery thread per subscription; counters() from any thread.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include <weft/config.hpp>
#include <weft/status.hpp>

#include "sidecar_config.hpp"

namespace sidecar {

struct delivery_counters {
  std::atomic<uint64_t> delivered{0};     ///< records the application took (2xx)
  std::atomic<uint64_t> posts{0};         ///< POSTs sent, retries included
  std::atomic<uint64_t> unavailable{0};   ///< POSTs the application was not there for
  std::atomic<uint64_t> refused{0};       ///< POSTs answered with another error
  std::atomic<uint64_t> skipped{0};       ///< bad records skipped
  std::atomic<uint64_t> dead_lettered{0}; ///< bad records written to the DLQ
  std::atomic<uint64_t> parked{
      0}; ///< park: keys parked (a key parked twice counts twice)
  std::atomic<uint64_t> replayed{0}; ///< park: held records delivered by a release
  std::atomic<uint64_t> dropped{0};  ///< park: held records dropped by request
};

class push_parking;

class push_delivery {
 public:
  /// Starts the delivery thread. `on_fail` is called (on that thread, once)
  /// when bad.record.policy=fail stops the subscription, or the parked store
  /// cannot be written, with the reason. `node_id` names this sidecar in
  /// the answers to park calls.
  static weft::result<std::unique_ptr<push_delivery>>
  start(const subscription_spec& s, const topic_spec& t, const weft::config& cfg,
        const std::string& static_member_id, const std::string& node_id,
        std::function<void(const weft::status&)> on_fail);
  ~push_delivery(); ///< stops within timeout.ms + 5 s (a POST in flight ends first)
  push_delivery(const push_delivery&) = delete;
  push_delivery& operator=(const push_delivery&) = delete;

  const delivery_counters& counters() const;
  const subscription_spec& spec() const;
  /// The subscription's parked keys (bad.record.policy=park), else null.
  /// Its list/totals/request calls are for any thread.
  push_parking* parking() const;

  struct impl;

 private:
  push_delivery() = default;
  std::unique_ptr<impl> impl_;
};

} // namespace sidecar
