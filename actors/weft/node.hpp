#pragma once
// A weft node: one process's actor system running any number of services.
//
//   int main(int argc, char** argv) {
//     return weft::run_main(argc, argv, [](weft::node& n) { n.add<my_service>(); });
//   }
//
// Lifecycle: construct with a config, add() services, start() (validates the
// services against the brokers, creates internal topics, assigns partitions
// and spawns the actors), then wait() until request_stop() or a fatal error.
// run() does start + SIGINT/SIGTERM handling + wait: the first signal stops
// gracefully (stop fetching, drain, commit, close), a second one exits at once.
//
// Thread safety: add/start/wait/run from one thread; request_stop(),
// metrics() and describe() from any thread.
//
// Observability: the node's HTTP endpoint (http.port) serves GET /metrics
// (Prometheus' text format; README, *Metrics*, lists the names; JSON at
// /metrics.json) and GET /topology (describe() as JSON, or
// ?format=dot|mermaid|text). `--describe=FORMAT` on the command line makes
// run() print describe() and return without starting.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "weft/config.hpp"
#include "weft/metrics/exposition.hpp"
#include "weft/services/describe.hpp"
#include "weft/services/service.hpp"
#include "weft/status.hpp"

namespace weft {

/// A snapshot of the node's counters.
struct node_metrics {
  uint64_t processed = 0;   ///< records handled by tasks
  uint64_t produced = 0;    ///< records handed to the producer (outputs,
                            ///< changelogs and dead letters)
  uint64_t bad_records = 0; ///< records skipped, dead-lettered or parked
  uint64_t commits = 0;     ///< offset commits issued
  uint64_t pauses = 0;      ///< times a partition was paused for flow control
  // processing.guarantee=exactly_once
  uint64_t epochs_committed = 0;        ///< transactions committed
  uint64_t epochs_aborted = 0;          ///< epochs rolled back
  uint64_t commit_latency_us_total = 0; ///< marker sent -> committed, summed
  uint64_t commit_latency_us_max = 0;
  uint64_t aligned_us_total = 0;     ///< time tasks held input at markers, summed
  uint64_t records_ahead = 0;        ///< handled while the epoch before committed
  uint64_t work_ahead_pauses = 0;    ///< epochs a task paused at its bound, summed
  uint64_t transaction_us_total = 0; ///< in the commit calls (offsets, commit, begin)
  // bad.record.policy=park, on this node now
  uint64_t parked_keys = 0;    ///< keys parked
  uint64_t parked_records = 0; ///< records held behind them
};

/// A page of a range scan (node::scan).
struct scan_page {
  /// Keys and values in key order (bytewise).
  std::vector<std::pair<std::string, std::string>> rows;
  /// Keys after the last row exist in the range: ask again from just after
  /// it (the last key is the position; see node::scan).
  bool more = false;
  /// The store's partitions, every one of which answered (0: a global
  /// table, whole on this node).
  int32_t partition_count = 0;
  /// Which node answered for which partitions (without a cluster: this
  /// node's id, or "" when it has none).
  std::map<std::string, std::vector<int32_t>> partitions;
};

class node {
 public:
  explicit node(config cfg);
  node(const node&) = delete;
  node& operator=(const node&) = delete;
  /// Stops the node if it runs (as request_stop + wait).
  ~node();

  /// Registers a service; one instance is made per task. Before start().
  void add(service_factory factory);

  /// Registers service type S, constructed with copies of `args` per task.
  template <class S, class... Args>
  void add(Args... args) {
    add(service_factory{[=] { return std::make_unique<S>(args...); }});
  }

  /// Brings the node up. Blocks up to startup.timeout.ms for the brokers.
  /// Fails with errc::invalid_config naming the service and topic when an
  /// input or output topic is missing, and with errc::kafka when the brokers
  /// cannot be reached.
  status start();

  /// Asks for a graceful stop; returns at once.
  void request_stop();

  /// Blocks until the node has stopped: after request_stop() or a fatal
  /// error. Returns ok, or the fatal error.
  status wait();

  /// start() + signal handling + wait(); returns a process exit code and logs
  /// the reason of a failure.
  int run();

  node_metrics metrics() const;

  /// Adds `fn` to the node's Prometheus page: it is called on each scrape
  /// (on the HTTP endpoint's thread) to write the application's own
  /// families (e.g. its REST API's requests). Before start().
  void add_metrics(std::function<void(metrics::exposition&)> fn);

  /// The application's topology, from its services' declarations (no broker
  /// needed): services with their patterns, topics by kind, stores, clients
  /// and edges, rendered as text, Graphviz dot, Mermaid or JSON. Errors: a
  /// service factory that throws.
  result<std::string> describe(describe_format f = describe_format::text) const;
  /// describe() draws `topic` (a user topic) as intermediate, apart from the
  /// facts the application shares. Before start().
  void mark_intermediate(std::string topic);
  /// describe() draws a client of the application beside its services.
  void add_client(client_decl c);

  /// Interactive queries over this node's state stores, callable from any
  /// thread while the node runs. Keys and values are serialized bytes (use
  /// the typed overload for serdes). A key is looked up in the shard of the
  /// partition Kafka's partitioner gives it. Errors: errc::not_found for a
  /// store no service of this node declared, errc::state_not_ready while the
  /// shard restores. Global tables are queried by their store name too.
  result<std::optional<std::string>> get(std::string_view store,
                                         std::string_view key) const;

  /// Clustered nodes: the key is answered by the node that owns its
  /// partition (forwarded over the cluster connection when that is another
  /// node), or by a standby copy at most `max_standby_lag` changelog records
  /// behind (-1: never a standby). While the partition moves between nodes
  /// the answer is errc::state_not_ready (retry), never another node's stale
  /// copy.
  result<std::optional<std::string>> get(std::string_view store, std::string_view key,
                                         int64_t max_standby_lag) const;

  template <class KS, class VS>
  result<std::optional<typename VS::value_type>>
  get(std::string_view store, const typename KS::value_type& key) const {
    auto k = encode<KS>(key);
    auto raw = get(store, k ? std::string_view{*k} : std::string_view{});
    if (!raw) return raw.error();
    if (!*raw) return std::optional<typename VS::value_type>{};
    auto v = VS::deserialize(**raw);
    if (!v) return v.error();
    return std::optional<typename VS::value_type>{std::move(*v)};
  }

  /// Whether every local shard of `store` has restored and serves queries
  /// (cheap: no data is read). False for an unknown store.
  bool store_ready(std::string_view store) const;

  /// Visits the entries with keys in [from, to) (empty `to`: to the end) of
  /// every local shard of a kv store, shard by shard (ordered within one).
  /// Clustered nodes: only the shards active on this node.
  status range(std::string_view store, std::string_view from, std::string_view to,
               const state::visitor& fn) const;
  status all(std::string_view store, const state::visitor& fn) const {
    return range(store, {}, {}, fn);
  }

  /// The first `limit` rows (1 to 100,000; and at most 4 MiB of keys and
  /// values, though always one row) of a kv store or global table with keys
  /// in [from, to) (empty `to`: to the end), merged in key order across
  /// every partition. Clustered nodes ask the owner of each partition (one
  /// request per node, in parallel, bounded as node::get's); a partition
  /// with no owner yet, or moving, or restoring makes the page
  /// errc::state_not_ready (retry), never a page with keys missing. The next
  /// page starts just after the last key (from = last key + '\0'): keys do
  /// not move between partitions, so paging stays exact while partitions
  /// move between nodes.
  result<scan_page> scan(std::string_view store, std::string_view from,
                         std::string_view to, size_t limit) const;

  /// Visits the windows of `key` in a window store with start in [from, to].
  status
  fetch(std::string_view store, std::string_view key, timestamp_ms from, timestamp_ms to,
        const std::function<bool(timestamp_ms start, std::string_view value)>& fn) const;

  /// The effective configuration.
  const config& cfg() const;

  /// The port of the node's HTTP endpoint (http.port; the one picked for
  /// 0), or -1 when it has none or is not running.
  int http_port() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// Blocks SIGINT and SIGTERM in the calling thread, so that threads created
/// afterwards inherit the mask and node::run()'s watcher is the only thread
/// that receives them. run() does this itself; call it first thing in main()
/// when the program starts threads of its own (an HTTP server, say) before
/// run(), or a stop signal may land in one of them and kill the process.
void block_stop_signals();

/// Parses the command line into a config (printing --help or the config
/// error), builds a node, lets `setup` add services, and runs it.
int run_main(int argc, char** argv, const std::function<void(node&)>& setup);

} // namespace weft
