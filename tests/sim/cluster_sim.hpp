#pragma once
// A deterministic simulation of weft's control plane, in the spirit of
// FoundationDB's simulation testing: the real decision logic of every node
// (weft::cluster::membership_logic and rebalance_logic, with the real
// assignor) runs in one process against a simulated clock, simulated peer
// connections, a simulated cluster log with a leader lease, simulated
// transactional producers that fencing kills, and a simulated data plane
// whose units commit input offsets every epoch. A seeded schedule injects
// faults: kills (the leader in a third of them) with and without restart,
// freezes longer and shorter than the timeout, lost and delayed messages,
// failed and slow Kafka calls, kills during a handoff and around an epoch
// commit, two faults close together.
//
// Checked after every step (safety):
//   - every committed epoch of a unit continues exactly where the unit's
//     committed offset stood (nothing processed twice or skipped);
//   - no unit runs on two nodes whose producers may both still commit;
//   - no generation number is published twice, and generations grow;
//   - a fenced producer never commits.
// Checked once the faults stop (liveness): within `settle_bound_ms` the
// cluster settles — the live node with the smallest id leads, the latest
// generation's members are the live nodes, and every unit runs on exactly
// the node the latest generation names — and stays settled.
//
// Same seed, same options: same run, event for event.

#include <cstdint>
#include <string>
#include <vector>

namespace weft::sim {

struct sim_options {
  uint64_t seed = 1;
  int nodes = 0;                   ///< 0: 2..5 chosen by the seed
  int units = 0;                   ///< 0: 3..16 chosen by the seed
  int64_t fault_ms = 30000;        ///< faults are injected during this long
  int64_t fault_every_ms = 0;      ///< mean gap between faults; 0: chosen by the seed
  int64_t settle_bound_ms = 15000; ///< liveness bound after the last fault
  int64_t observe_ms = 5000;       ///< stays settled this long
  bool exactly_once = true;
  int64_t timeout_ms = 1000; ///< cluster.timeout.ms
  bool trace = false;        ///< keep every log line (else the last 400)
};

struct sim_result {
  bool ok = true;
  std::string failure;            ///< the broken invariant, with the time
  std::string schedule;           ///< the injected faults, one per line
  std::vector<std::string> trace; ///< log lines (the last ones, or all with trace)
  int64_t settle_ms = -1;         ///< after the last fault; -1: never settled
  int64_t events = 0;
  int64_t commits = 0;
  int64_t rejected_commits = 0; ///< commits refused because the producer was fenced
  int64_t generations = 0;
  int faults = 0;
  int leader_faults = 0;
  std::string summary() const;
};

sim_result run_simulation(const sim_options& options);

} // namespace weft::sim
