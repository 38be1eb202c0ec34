#pragma once
// The topology of a node's application: its services resolved against the
// brokers (topics, partition counts, stores, internal topics to create) and
// cut into tasks and units of work. Computed once at start-up, then read only.
//
//   resolve_services()  services -> service_info (node_context.hpp) and the
//                       internal topics to create (repartition, changelog,
//                       dead-letter); every error names the service, the topic
//                       and the fix
//   compute_units()     tasks (service × partition) -> units: tasks that read
//                       a common partition must run on one node (a partition
//                       has one committed offset), so the unit of assignment
//                       is a connected group of tasks; a pure function
//
// Internal to weft.

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "weft/actors/node_context.hpp"
#include "weft/kafka/admin.hpp"
#include "weft/services/service.hpp"
#include "weft/status.hpp"

namespace weft::detail {

/// A task: (service index into node_context::services, partition).
using task_key = std::pair<size_t, int32_t>;

/// A unit of work: tasks that must run on one node.
struct unit_def {
  std::vector<task_key> tasks;
  std::vector<topic_partition> inputs; ///< every partition its tasks read
  bool stateful = false;
  std::string name; ///< e.g. "pair-counter/3+pair-gate/3"
};

/// The units of an application, numbered 0..n-1 the same way on every node.
struct topology {
  std::vector<unit_def> units;
  std::map<task_key, size_t> unit_of;
  std::map<std::string, size_t> service_of_store;
  std::map<std::string, int> input_partitions; ///< topic -> partitions

  /// Nodes of one application must agree on the units: same services, same
  /// partition counts.
  std::string fingerprint() const;
  /// The stateful tasks of `units` (their shards: standbys, restores).
  std::vector<task_key> stateful_tasks(const std::vector<size_t>& units,
                                       const std::vector<service_info>& services) const;
};

/// A global table a service reads (replicated whole on every node).
struct global_table_decl {
  std::string topic;
  std::string store;
};

/// Resolves the services the factories make against the brokers: fills
/// `services` (one per factory, in order), `globals` and `to_create`.
/// Blocks up to timeout_ms per broker call.
status resolve_services(const std::vector<service_factory>& factories,
                        const std::string& application_id, const config& cfg,
                        kafka::admin& admin, int timeout_ms,
                        std::vector<service_info>& services,
                        std::vector<global_table_decl>& globals,
                        std::vector<kafka::new_topic>& to_create);

/// Cuts the services' tasks into units (`partitions`: every input topic's
/// partition count).
topology compute_units(const std::vector<service_info>& services,
                       std::map<std::string, int> partitions);

/// The partition counts of every input topic of `services` (blocking).
result<std::map<std::string, int>>
input_partition_counts(const std::vector<service_info>& services, kafka::admin& admin,
                       int timeout_ms);

} // namespace weft::detail
