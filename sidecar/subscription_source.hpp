#pragma once
// The Kafka side of a subscription: a consumer in the group
// <application.id>-sub-<name>, subscribed to the subscription's topic, so
// the nodes of a sidecar cluster share its partitions (Kafka's group
// protocol; a partition's records in offset order on one node at a time).
// Offsets are committed only as the caller marks records handled (after the
// application's 2xx, or its explicit commit), so a kill loses nothing: the
// records after the last commit come again.
//
// With node.id set, the consumer is a static member (group.instance.id): a
// restarted sidecar takes its partitions back at once instead of after the
// session timeout.
//
// Threads: one thread drives a source (poll, mark, commit); not thread-safe.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <weft/kafka/consumer.hpp>
#include <weft/status.hpp>

#include "sidecar_config.hpp"

namespace sidecar {

class subscription_source {
 public:
  /// `consumer_props`: weft's consumer properties (bootstrap.servers, …).
  static weft::result<std::unique_ptr<subscription_source>>
  create(const subscription_spec& s, std::map<std::string, std::string> consumer_props,
         const std::string& application_id, const std::string& static_member_id);
  ~subscription_source(); ///< commits what was marked (bounded), leaves the group

  /// Waits up to timeout_ms for records, then takes what is there, up to
  /// `max`, in offset order per partition. Errors are logged.
  void poll(weft::kafka::message_batch& out, size_t max, int timeout_ms);

  /// Marks everything up to and including `offset` of a partition handled.
  void mark(int32_t partition, int64_t offset);

  /// Commits the marked offsets asynchronously if `interval_ms` passed since
  /// the last commit (or `force`); a commit of a partition this member lost
  /// fails harmlessly (its records come again to the new owner).
  void commit(int64_t interval_ms, bool force = false);

  /// Commits the marked offsets and waits for the answer (bounded).
  weft::status commit_sync(int timeout_ms);

  /// The partitions currently assigned to this member.
  std::vector<int32_t> assignment();

  /// Forgets the marks of every partition not in `partitions` (given up in
  /// a rebalance: its next owner commits it), so that no commit moves a
  /// partition another member delivers.
  void retain(const std::vector<int32_t>& partitions);

  const std::string& topic() const { return topic_; }
  const std::string& group() const { return group_; }

 private:
  subscription_source() = default;
  std::unique_ptr<weft::kafka::consumer> consumer_;
  std::string topic_, group_;
  std::map<int32_t, int64_t> marked_;   ///< partition -> next offset to consume
  std::map<int32_t, int64_t> committed_;
  int64_t last_commit_ms_ = 0;
};

} // namespace sidecar
