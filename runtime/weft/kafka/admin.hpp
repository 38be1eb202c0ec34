#pragma once
// Topic administration: create topics with a partition count and configs,
// read partition counts. Every call blocks up to its timeout: call from a
// thread that may block (start-up, a detached actor), never from an actor on
// CAF's scheduler.

#include <librdkafka/rdkafka.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "weft/status.hpp"

namespace weft::kafka {

/// A topic to create.
struct new_topic {
  std::string name;
  int partitions = 1;
  int replication_factor = 1;
  /// Topic configs, e.g. {"cleanup.policy", "compact"}.
  std::map<std::string, std::string> configs;
};

class admin {
 public:
  static result<std::unique_ptr<admin>> create(std::map<std::string, std::string> props);
  admin(const admin&) = delete;
  admin& operator=(const admin&) = delete;
  ~admin();

  /// Creates the topics that do not exist. A topic that exists already is
  /// fine if it has the requested partition count; otherwise the status says
  /// which topic has how many partitions.
  status ensure_topics(const std::vector<new_topic>& topics, int timeout_ms);

  /// Deletes topics; missing ones are ignored.
  status delete_topics(const std::vector<std::string>& names, int timeout_ms);

  /// Partition count of `topic`; errc::not_found when it does not exist.
  result<int> partition_count(const std::string& topic, int timeout_ms);

  /// Waits until the brokers answer a metadata request (start-up check).
  status wait_for_brokers(int timeout_ms);

 private:
  admin() = default;
  rd_kafka_t* rk_ = nullptr;
};

} // namespace weft::kafka
