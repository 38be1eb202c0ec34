#pragma once
// Pull subscriptions: the application reads records as a server-sent-events
// stream (GET /v1/subscriptions/<name>/events) and commits what it handled
// (POST /v1/subscriptions/<name>/commit). Nothing is committed otherwise:
// when the stream closes (the application or the sidecar gone), the next
// stream starts again after the last commit, so a record is delivered at
// least once. Each record carries topic, partition and offset.
//
// One stream per subscription per node at a time (a second is refused:
// commits must name the stream's records). The stream's consumer is a member
// of the subscription's group (subscription_source.hpp): on a cluster, each
// node's stream gets a share of the partitions.
//
// Threads: open/next/close from the thread serving the stream; commit from
// any thread (a mutex serialises them; next() holds it at most ~100 ms).

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <weft/config.hpp>
#include <weft/status.hpp>

#include "sidecar_config.hpp"

namespace sidecar {

class subscription_source;

class pull_subscription {
 public:
  pull_subscription(subscription_spec s, topic_spec t, const weft::config& cfg,
                    std::string static_member_id);
  ~pull_subscription();

  /// Opens the stream: errc::invalid_argument when one is open already.
  weft::status open();

  /// Up to `max` records (each as record_to_api's JSON; a record the serdes
  /// cannot render comes as {"topic","partition","offset","error"}), waiting
  /// up to ~100 ms for the first. Empty: nothing yet.
  weft::result<std::vector<nlohmann::json>> next(size_t max);

  /// Commits through `offsets` ({"partition": p, "offset": o}: o and every
  /// record before it in p are handled), and waits for Kafka (bounded).
  /// errc::invalid_argument naming the field when an offset was not
  /// delivered on the open stream; errc::not_found without a stream.
  weft::status commit(const nlohmann::json& offsets);

  /// Closes the stream (leaves the group; what was committed stays).
  void close();

  const subscription_spec& spec() const { return spec_; }
  uint64_t delivered() const;

 private:
  subscription_spec spec_;
  topic_spec topic_;
  std::map<std::string, std::string> consumer_props_;
  std::string application_id_, member_;
  mutable std::mutex mu_;
  std::unique_ptr<subscription_source> source_;
  std::map<int32_t, int64_t> delivered_upto_; ///< partition -> last offset sent
  uint64_t delivered_ = 0;
};

} // namespace sidecar
