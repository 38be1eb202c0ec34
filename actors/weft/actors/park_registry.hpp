#pragma once
// The node's view of its parked keys (bad.record.policy=park), for the node
// endpoint (GET /parked, POST /parked/...) and its metrics: every task with
// a parked store registers its actor here and keeps a summary of each of its
// parked keys up to date. Tasks write; HTTP threads and the query server
// read. Thread-safe (one mutex; a task touches it only when a key is parked,
// held or released). Internal to weft.

#include <caf/actor_addr.hpp>

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "weft/record.hpp"

namespace weft::detail {

/// A parked key as listed.
struct parked_info {
  size_t service = 0;
  int32_t partition = 0;
  std::string id; ///< parked_keys::key_id of the key
  uint64_t held = 0;
  std::string error;
  timestamp_ms since = 0;
  int attempts = 0;
  timestamp_ms retry_at = 0; ///< 0: waits for an operator
  std::string topic;         ///< where the head record came from
  int32_t head_partition = 0;
  int64_t offset = -1;
  bool replaying = false;
};

class park_registry {
 public:
  /// The task of (service, partition) is `task` (weak: the registry never
  /// keeps a task alive).
  void attach(size_t service, int32_t partition, caf::actor_addr task) {
    std::lock_guard<std::mutex> guard{mu_};
    auto& t = tasks_[{service, partition}];
    t.task = std::move(task);
    t.keys.clear();
  }
  /// Forgets the task of (service, partition) if it is still `task`.
  void detach(size_t service, int32_t partition, const caf::actor_addr& task) {
    std::lock_guard<std::mutex> guard{mu_};
    auto i = tasks_.find({service, partition});
    if (i != tasks_.end() && i->second.task == task) tasks_.erase(i);
  }
  /// The task of (service, partition) on this node, or an invalid address.
  caf::actor_addr task(size_t service, int32_t partition) const {
    std::lock_guard<std::mutex> guard{mu_};
    auto i = tasks_.find({service, partition});
    return i == tasks_.end() ? caf::actor_addr{} : i->second.task;
  }
  void set(const caf::actor_addr& task, parked_info info) {
    std::lock_guard<std::mutex> guard{mu_};
    auto i = tasks_.find({info.service, info.partition});
    if (i == tasks_.end() || i->second.task != task) return;
    auto id = info.id;
    i->second.keys[std::move(id)] = std::move(info);
  }
  void erase(const caf::actor_addr& task, size_t service, int32_t partition,
             const std::string& id) {
    std::lock_guard<std::mutex> guard{mu_};
    auto i = tasks_.find({service, partition});
    if (i == tasks_.end() || i->second.task != task) return;
    i->second.keys.erase(id);
  }
  /// Every parked key of this node, by service, partition and key.
  std::vector<parked_info> list() const {
    std::lock_guard<std::mutex> guard{mu_};
    std::vector<parked_info> out;
    for (auto& [k, t] : tasks_)
      for (auto& [id, info] : t.keys)
        out.push_back(info);
    return out;
  }
  /// (parked keys, held records) on this node.
  std::pair<uint64_t, uint64_t> totals() const {
    std::lock_guard<std::mutex> guard{mu_};
    uint64_t keys = 0, held = 0;
    for (auto& [k, t] : tasks_)
      for (auto& [id, info] : t.keys)
        ++keys, held += info.held;
    return {keys, held};
  }
  /// (parked keys, held records) of every task registered here, by
  /// (service, partition); a task without parked keys counts (0, 0).
  std::map<std::pair<size_t, int32_t>, std::pair<uint64_t, uint64_t>> by_task() const {
    std::lock_guard<std::mutex> guard{mu_};
    std::map<std::pair<size_t, int32_t>, std::pair<uint64_t, uint64_t>> out;
    for (auto& [k, t] : tasks_) {
      auto& [keys, held] = out[k];
      for (auto& [id, info] : t.keys)
        ++keys, held += info.held;
    }
    return out;
  }

 private:
  struct task_entry {
    caf::actor_addr task;
    std::map<std::string, parked_info> keys;
  };
  mutable std::mutex mu_;
  std::map<std::pair<size_t, int32_t>, task_entry> tasks_;
};

} // namespace weft::detail
