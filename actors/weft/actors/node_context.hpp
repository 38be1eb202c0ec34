#pragma once
// What the actors of one node share: the clients, the configuration and the
// counters. Owned by the node (node.cpp), outlives every actor it spawns.
// Internal to weft.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "weft/config.hpp"
#include "weft/kafka/consumer.hpp"
#include "weft/kafka/producer.hpp"
#include "weft/metrics/exposition.hpp"
#include "weft/services/service.hpp"
#include "weft/state/shard.hpp"

#include <mutex>
#include <shared_mutex>

namespace weft::detail {

/// A bad-record policy (bad.record.policy).
enum class bad_record_policy { fail, skip, dead_letter, park };

/// The store of a service's parked keys (bad.record.policy=park).
inline std::string parked_store(const std::string& service) {
  return service_base::parked_store(service);
}

class park_registry;

/// What the node knows about one registered service.
struct service_info {
  std::string name;
  service_factory factory;
  std::vector<std::string> input_topics;  ///< resolved topic names
  std::vector<std::string> output_topics; ///< resolved, by output index
  bad_record_policy policy = bad_record_policy::fail;
  std::string dead_letter_topic;
  /// park: automatic retries of a parked key's handler, and their back-off
  /// (doubling from park_backoff_ms up to park_backoff_max_ms).
  int park_retries = 0;
  int64_t park_backoff_ms = 1000;
  int64_t park_backoff_max_ms = 60000;
  std::vector<state::store_spec> stores;
  /// Table input topics (KTable) -> the kv store they materialise into.
  std::map<std::string, std::string> table_stores;
  timestamp_ms punctuate_ms = 0;
  int partitions = 0; ///< of the service's (co-partitioned) inputs
};

/// The shards of this node's tasks, by (store name, partition), for
/// interactive queries from any thread.
class shard_registry {
 public:
  /// Announces a store before its shards open, so queries meanwhile get
  /// state_not_ready rather than not_found.
  void declare(const std::string& store, int partitions) {
    std::unique_lock<std::shared_mutex> lock{mu_};
    partitions_[store] = partitions;
  }
  void add(const std::string& store, int32_t partition, int partitions, state::shard* s) {
    std::unique_lock<std::shared_mutex> lock{mu_};
    shards_[{store, partition}] = s;
    partitions_[store] = partitions;
  }
  void remove(state::shard* s) {
    std::unique_lock<std::shared_mutex> lock{mu_};
    for (auto i = shards_.begin(); i != shards_.end();)
      i = i->second == s ? shards_.erase(i) : std::next(i);
  }
  /// Calls fn(shard or null, partitions) under a shared lock: the shard stays
  /// open while fn runs.
  template <class Fn>
  auto with(const std::string& store, int32_t partition, Fn&& fn) const {
    std::shared_lock<std::shared_mutex> lock{mu_};
    auto i = shards_.find({store, partition});
    auto p = partitions_.find(store);
    return fn(i == shards_.end() ? nullptr : i->second,
              p == partitions_.end() ? 0 : p->second);
  }
  int partitions(const std::string& store) const {
    std::shared_lock<std::shared_mutex> lock{mu_};
    auto p = partitions_.find(store);
    return p == partitions_.end() ? 0 : p->second;
  }

 private:
  mutable std::shared_mutex mu_;
  std::map<std::pair<std::string, int32_t>, state::shard*> shards_;
  std::map<std::string, int> partitions_;
};

/// The counters of one task (service, partition), for the metrics page. One
/// cell per task for the node's life: a task replaced after a roll-back or
/// a rebalance goes on counting in the same cell, so the counters only rise
/// (Prometheus' counter semantics). Written by the task's actor with relaxed
/// atomics (no other writer contends for the cache line), summed on a scrape.
/// A new per-task figure is a field here, a line in its writer and a family
/// in node_metrics_page.cpp.
struct task_counters {
  std::atomic<uint64_t> processed{0};     ///< records handled
  std::atomic<uint64_t> produced{0};      ///< records emitted to output topics
  std::atomic<uint64_t> changelog{0};     ///< changelog records written
  std::atomic<uint64_t> skipped{0};       ///< bad records skipped
  std::atomic<uint64_t> dead_lettered{0}; ///< bad records dead-lettered
  std::atomic<uint64_t> parked{0};        ///< bad records that parked their key
  /// exactly_once: microseconds the task held its input at epoch markers.
  std::atomic<uint64_t> held_us{0};
  /// exactly_once: records handled while the transaction of the epoch
  /// before was committing (working ahead).
  std::atomic<uint64_t> ahead{0};
  /// exactly_once: epochs in which the task, working ahead, reached its
  /// bound (epoch.work.ahead.bytes) and paused until the commit.
  std::atomic<uint64_t> ahead_pauses{0};
  /// Per input topic (service_info::input_topics order): records the task
  /// took from it, counted per batch. Per output (output_topics order):
  /// records emitted to it. The edges of the live map; sized by cell().
  std::unique_ptr<std::atomic<uint64_t>[]> read;
  std::unique_ptr<std::atomic<uint64_t>[]> written;
  size_t inputs = 0, outputs = 0;

  static void add(std::atomic<uint64_t>& c, uint64_t n = 1) {
    c.fetch_add(n, std::memory_order_relaxed);
  }
};

/// Every task's counters on this node, by (service index, partition). cell()
/// is called when a task starts (a lock and a map lookup), never per record.
class task_counter_registry {
 public:
  /// The cell of task (service, partition), made on first call with room
  /// for `inputs` input and `outputs` output topics (a service's topics
  /// never change while the node runs).
  task_counters* cell(size_t service, int32_t partition, size_t inputs = 0,
                      size_t outputs = 0) {
    std::lock_guard<std::mutex> guard{mu_};
    auto& c = cells_[{service, partition}];
    if (!c) {
      c = std::make_unique<task_counters>();
      c->read = std::make_unique<std::atomic<uint64_t>[]>(inputs);
      c->written = std::make_unique<std::atomic<uint64_t>[]>(outputs);
      c->inputs = inputs;
      c->outputs = outputs;
    }
    return c.get();
  }
  /// Calls fn(service, partition, counters) for every task ever run here.
  template <class Fn>
  void visit(Fn&& fn) const {
    std::lock_guard<std::mutex> guard{mu_};
    for (auto& [k, c] : cells_)
      fn(k.first, k.second, *c);
  }

 private:
  mutable std::mutex mu_;
  std::map<std::pair<size_t, int32_t>, std::unique_ptr<task_counters>> cells_;
};

/// Partitions paused by flow control, counted per partition (rare: a lock).
class pause_counter {
 public:
  void add(const topic_partition& tp) {
    std::lock_guard<std::mutex> guard{mu_};
    ++counts_[tp];
  }
  std::map<topic_partition, uint64_t> read() const {
    std::lock_guard<std::mutex> guard{mu_};
    return counts_;
  }

 private:
  mutable std::mutex mu_;
  std::map<topic_partition, uint64_t> counts_;
};

/// Node-wide counters, updated with relaxed atomics from the actors; the
/// per-task ones are in task_counter_registry.
struct node_counters {
  std::atomic<uint64_t> commits{0};
  std::atomic<uint64_t> pauses{0};
  /// Times a task reading several partitions processed ahead of an empty one
  /// (max.task.idle.ms passed, or no wait asked for): Kafka Streams'
  /// enforced processing. Once per (task, partition) until it has records.
  std::atomic<uint64_t> enforced_processing{0};
  // exactly_once
  std::atomic<uint64_t> epochs_committed{0};
  std::atomic<uint64_t> epochs_aborted{0};
  std::atomic<uint64_t> commit_us_total{0}; ///< marker sent -> transaction committed
  std::atomic<uint64_t> commit_us_max{0};
  std::atomic<uint64_t> aligned_us_total{0}; ///< summed over tasks: time held at markers
  std::atomic<uint64_t> txn_us_total{0};     ///< in send_offsets + commit + begin
  /// Marker sent -> transaction committed, per epoch.
  metrics::histogram epoch_commit{metrics::histogram::latency_bounds()};
  // Rebalancing (the task manager): generations applied, the last one, and
  // how long applying each took.
  std::atomic<uint64_t> rebalances{0};
  std::atomic<int64_t> generation{0};
  metrics::histogram rebalance{metrics::histogram::latency_bounds()};
  /// Restores of this node's tasks (the restore thread).
  state::restore_progress restore;

  task_counter_registry tasks;
  pause_counter paused_partitions;
  /// Clustered: peers' messages the peer links dropped for their bounds
  /// (peer_bounds.hpp).
  std::atomic<uint64_t> peer_messages_dropped{0};

  /// Sums of the per-task counters.
  struct totals {
    uint64_t processed = 0, produced = 0, changelog = 0, bad = 0, ahead = 0,
             ahead_pauses = 0;
  };
  totals sum() const {
    totals t;
    tasks.visit([&](size_t, int32_t, const task_counters& c) {
      t.processed += c.processed.load(std::memory_order_relaxed);
      t.produced += c.produced.load(std::memory_order_relaxed);
      t.changelog += c.changelog.load(std::memory_order_relaxed);
      t.ahead += c.ahead.load(std::memory_order_relaxed);
      t.ahead_pauses += c.ahead_pauses.load(std::memory_order_relaxed);
      t.bad += c.skipped.load(std::memory_order_relaxed) +
               c.dead_lettered.load(std::memory_order_relaxed) +
               c.parked.load(std::memory_order_relaxed);
    });
    return t;
  }
};

/// Records whose handler threw under exactly_once: the epoch was aborted and
/// rolled back, and the replay applies the bad-record policy to the record
/// instead of running the handler again (its partial effects died with the
/// epoch). Written by the supervisor's tasks, read by tasks when they start.
class poison_registry {
 public:
  struct key {
    size_t service;
    std::string topic;
    int32_t partition;
    int64_t offset;
    bool operator<(const key& o) const {
      return std::tie(service, topic, partition, offset) <
             std::tie(o.service, o.topic, o.partition, o.offset);
    }
  };
  void add(key k, std::string error) {
    std::lock_guard<std::mutex> guard{mu_};
    entries_[std::move(k)] = std::move(error);
  }
  void remove(const key& k) {
    std::lock_guard<std::mutex> guard{mu_};
    entries_.erase(k);
  }
  /// The poisoned records of one task: (topic, offset) -> error.
  std::map<std::pair<std::string, int64_t>, std::string> of(size_t service,
                                                            int32_t partition) const {
    std::lock_guard<std::mutex> guard{mu_};
    std::map<std::pair<std::string, int64_t>, std::string> out;
    for (auto& [k, e] : entries_)
      if (k.service == service && k.partition == partition) out[{k.topic, k.offset}] = e;
    return out;
  }

 private:
  mutable std::mutex mu_;
  std::map<key, std::string> entries_;
};

struct node_context {
  config cfg;
  std::string application_id;
  std::string state_dir;
  std::unique_ptr<state::store_factory> stores;
  shard_registry shards;
  /// Global tables' stores by store name (written by their reader threads).
  std::map<std::string, std::unique_ptr<state::kv_store>, std::less<>> global_stores;
  /// Restores shards off the scheduler: the task hands over its shard and is
  /// told when it is done (see restorer.hpp).
  class restorer* restorer = nullptr;
  std::unique_ptr<kafka::consumer> consumer;
  std::unique_ptr<kafka::producer> producer;
  std::vector<service_info> services;
  node_counters counters;
  /// processing.guarantee=exactly_once: the producer is transactional and
  /// the supervisor runs epochs.
  bool exactly_once = false;
  /// trace.headers: tasks stamp their outputs with weft.cause
  /// (weft/trace/cause.hpp).
  bool trace_headers = true;
  poison_registry poison;
  /// bad.record.policy=park: every task's parked keys and actor, for the
  /// node endpoint's /parked (park_registry.hpp; made by the node).
  std::shared_ptr<park_registry> parked;
  /// Partitions paused by flow control: librdkafka keeps a pause across
  /// re-assignments, so the next plan resumes these (and only these).
  std::mutex paused_mu;
  std::set<topic_partition> paused;
  /// Task and partition actors alive (their shards and queues are held).
  std::atomic<int> live_actors{0};
  /// cluster.enabled: a fenced producer (another node took this node's
  /// transactional.id) makes the node drop its tasks and rejoin; without a
  /// cluster it stops the node.
  bool clustered = false;
  /// The units whose tasks run on this node (written by the task manager,
  /// read by queries on any thread).
  mutable std::mutex owned_mu;
  std::set<size_t> owned;
  std::set<size_t> owned_units() const {
    std::lock_guard<std::mutex> guard{owned_mu};
    return owned;
  }
};

} // namespace weft::detail
