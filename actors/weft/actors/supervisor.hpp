#pragma once
// The node supervisor: spawns the task and partition actors of the node's
// assignment, commits processed offsets every commit.interval.ms, watches its
// children, and runs the stop protocol.
//
// Stop protocol: (stop) -> partition actors stop fetching and wait until
// their in-flight batches are acknowledged -> the supervisor answers the stop
// request. The node then asks (final, true): every task flushes its stores;
// flushes the producer; and asks (final, false) for the offsets that are
// now safe to commit, which it commits synchronously. After a
// fatal task error the supervisor answers stop at once: a failed task never
// acknowledges its batch, and its unprocessed input must not be committed.

#include <caf/fwd.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "weft/types.hpp"

namespace weft::kafka {
class partition_queue;
}

namespace weft::detail {

struct node_context;

/// Which tasks and partitions this node runs.
struct assignment_plan {
  struct task {
    size_t service; ///< index into node_context::services
    int32_t partition;
  };
  struct partition {
    topic_partition tp;
    std::shared_ptr<kafka::partition_queue> queue;
    std::vector<size_t> tasks; ///< indices into `tasks` fed by this partition
  };
  std::vector<task> tasks;
  std::vector<partition> partitions;
};

/// Called (from an actor thread) with the reason when a child fails.
using fatal_handler = std::function<void(const std::string&)>;

caf::actor spawn_supervisor(caf::actor_system& sys, node_context* ctx,
                            assignment_plan plan, fatal_handler on_fatal);

} // namespace weft::detail
