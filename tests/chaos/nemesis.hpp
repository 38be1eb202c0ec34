#pragma once
// The nemesis: injects faults into a cluster of weft node processes while a
// workload runs, and measures how the cluster comes back (tests/chaos).
//
// A schedule, drawn from a seed, mixes: kill -9 and restart at once (the
// current leader in at least a third of the node faults), SIGSTOP longer and
// shorter than cluster.timeout.ms, a kill shortly after an earlier fault
// (while units are handed off), two faults close together, and broker
// restarts (tools/weft-broker stop/start on the same data). Every fault is
// written to a fault log (one JSON object per line: time, kind, target,
// whether it was the leader) so a failing run can be read and replayed.
//
// The nemesis only drives processes; the workload's own test checks safety.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "test_cluster.hpp"

namespace weft::test::chaos {

/// Run options, from the environment (WEFT_CHAOS_*), with the defaults of
/// the short storm CI runs on every submission.
struct options {
  int64_t storm_ms = 60000;        ///< WEFT_CHAOS_SECONDS (x1000)
  int64_t every_ms = 5000;         ///< WEFT_CHAOS_EVERY_MS: mean gap between faults
  uint64_t seed = 0;               ///< WEFT_CHAOS_SEED (0: from the clock)
  bool broker_restarts = true;     ///< WEFT_CHAOS_BROKER=0 turns them off
  int64_t settle_bound_ms = 30000; ///< WEFT_CHAOS_SETTLE_MS: liveness bound
  std::string log_dir = "/tmp";    ///< WEFT_CHAOS_LOG_DIR: fault logs and node logs
  static options from_env();
};

/// One node process of the cluster under test.
struct node_proc {
  std::string id;
  std::vector<std::string> args; ///< to restart it the same way
  std::string log;
  int http_port = 0; ///< the node's HTTP endpoint (http.port or node.http.port)
  std::unique_ptr<child_process> proc;
  bool frozen = false;
  int restarts = 0;
  bool running() { return proc && proc->running(); }
};

/// A fault as injected.
struct fault {
  int64_t at_ms = 0; ///< since the storm began
  std::string
      kind; ///< kill, leader-kill, handoff-kill, freeze-long, freeze-short, broker
  std::string target;
  bool was_leader = false;
  int64_t duration_ms = 0; ///< freezes and broker outages
  nlohmann::json detail;   ///< what the workload noted at the fault
};

class cluster {
 public:
  /// `program` with `common_args`; node i gets `node_args(id)` on top.
  cluster(
      std::string name, std::string program, std::vector<std::string> common_args,
      std::function<std::vector<std::string>(const std::string& id, int port)> node_args,
      int nodes, int base_port);
  ~cluster(); ///< kills every node

  std::map<std::string, node_proc>& nodes() { return nodes_; }
  void start(const std::string& id);
  void kill(const std::string& id);
  void restart(const std::string& id);
  void freeze(const std::string& id);
  void thaw(const std::string& id);
  std::set<std::string> live(); ///< running and not frozen

  /// GET `path` on node `id`'s HTTP endpoint (nullopt unless 200 + JSON).
  std::optional<nlohmann::json> get(const std::string& id, const std::string& path,
                                    int timeout_s = 2);
  /// The node that says it leads ("leads": true in its /cluster), if any.
  std::optional<std::string> leader();
  /// Whether every live node sees exactly the live nodes connected, one
  /// generation, and every unit running on a live node (its owner reports
  /// its lag); else why not.
  bool settled(std::string* why = nullptr);
  /// Waits up to `bound` for settled(); the time it took, or nullopt (then
  /// `why` says what was missing last).
  std::optional<int64_t> wait_settled(std::chrono::milliseconds bound,
                                      std::string* why = nullptr);
  /// Writes every live node's GET /cluster (one JSON line each, with its id)
  /// to `path`: what each node saw when the cluster did not settle.
  void dump_views(const std::string& path);
  /// The last lines of every node's log, for a failure message.
  std::string log_tails(size_t lines = 30);

 private:
  std::string name_;
  std::string program_;
  std::vector<std::string> common_;
  std::map<std::string, node_proc> nodes_;
};

/// Restarts the test run's broker on the same data: stop, then start.
/// WEFT_TEST_BROKER_TOOL, WEFT_TEST_BROKER_DATA and the port of the bootstrap
/// say which. Returns how long the broker was away (ms), or -1.
int64_t restart_broker(int64_t down_ms);

/// Injects a seeded fault storm into `c` on the calling thread.
class nemesis {
 public:
  /// `note(fault&)` runs right before each fault (the workload records what
  /// was in flight: input flowing, the victim's progress).
  nemesis(cluster& c, options o, std::string fault_log,
          std::function<void(fault&)> note = {});

  /// Runs the storm: faults for up to options::storm_ms, and it ends at the
  /// last one that fits (the checks time the settle from it). Returns the
  /// faults injected.
  std::vector<fault> run();

  uint64_t seed() const { return seed_; }

 private:
  void inject(fault& f);
  cluster& c_;
  options o_;
  std::string log_path_;
  std::function<void(fault&)> note_;
  uint64_t seed_;
  std::mt19937_64 rng_;
};

/// Prints the summary table of a run: one row per measure, then the line
/// "N passed, N failed" for the checks recorded with check().
class summary {
 public:
  void row(const std::string& what, const std::string& value);
  void check(const std::string& what, bool ok, const std::string& detail = "");
  std::string text() const;
  int failed() const { return failed_; }

 private:
  std::vector<std::pair<std::string, std::string>> rows_;
  int passed_ = 0;
  int failed_ = 0;
};

/// "N ms".
std::string fmt_ms(int64_t ms);

/// The liveness checks every workload ends its storm with: waits up to
/// o.settle_bound_ms for `c` to settle and checks "settled after the last
/// fault" (on failure writing every node's view to
/// <log_dir>/<app>-views.jsonl and naming it); runs `then` (e.g. joining the
/// workload's clients); checks "no node died on its own". Returns the time
/// from `last_fault` to settled, or nullopt.
std::optional<int64_t> check_liveness(cluster& c, summary& sum, const options& o,
                                      const std::string& app,
                                      std::chrono::steady_clock::time_point last_fault,
                                      const std::function<void()>& then = {});

} // namespace weft::test::chaos
