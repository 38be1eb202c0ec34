#pragma once
// What the actors of one node share: the clients, the configuration and the
// counters. Owned by the node (node.cpp), outlives every actor it spawns.
// Internal to weft.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "weft/config.hpp"
#include "weft/kafka/consumer.hpp"
#include "weft/kafka/producer.hpp"
#include "weft/services/service.hpp"

namespace weft::detail {

/// A bad-record policy (bad.record.policy).
enum class bad_record_policy { fail, skip, dead_letter };

/// What the node knows about one registered service.
struct service_info {
  std::string name;
  service_factory factory;
  std::vector<std::string> input_topics;  ///< resolved topic names
  std::vector<std::string> output_topics; ///< resolved, by output index
  bad_record_policy policy = bad_record_policy::fail;
  std::string dead_letter_topic;
};

/// Counters, updated with relaxed atomics from the actors.
struct node_counters {
  std::atomic<uint64_t> processed{0};
  std::atomic<uint64_t> produced{0};
  std::atomic<uint64_t> bad_records{0};
  std::atomic<uint64_t> commits{0};
  std::atomic<uint64_t> pauses{0};
};

struct node_context {
  config cfg;
  std::string application_id;
  std::unique_ptr<kafka::consumer> consumer;
  std::unique_ptr<kafka::producer> producer;
  std::vector<service_info> services;
  node_counters counters;
};

} // namespace weft::detail
