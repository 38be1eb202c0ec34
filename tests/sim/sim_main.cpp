// weft-cluster-sim: runs the control plane's deterministic simulation.
//
//   weft-cluster-sim --seed=N [--trace]       one seed; prints its faults and, with
//                                             --trace or on failure, its log
//   weft-cluster-sim --seeds=N [--first=S]    N seeds from S; prints a summary and the
//                                             settle-time distribution
//   options: --nodes=N --units=N --fault-ms=MS --fault-every-ms=MS --at-least-once

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cluster_sim.hpp"

using namespace weft::sim;

int main(int argc, char** argv) {
  sim_options o;
  uint64_t first = 1;
  int seeds = 0;
  bool one = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&](const char* k) -> const char* {
      auto n = std::strlen(k);
      return a.compare(0, n, k) == 0 ? a.c_str() + n : nullptr;
    };
    if (auto v = val("--seed=")) {
      o.seed = std::strtoull(v, nullptr, 10);
      one = true;
    } else if (auto v = val("--seeds=")) {
      seeds = std::atoi(v);
    } else if (auto v = val("--first=")) {
      first = std::strtoull(v, nullptr, 10);
    } else if (auto v = val("--nodes=")) {
      o.nodes = std::atoi(v);
    } else if (auto v = val("--units=")) {
      o.units = std::atoi(v);
    } else if (auto v = val("--fault-ms=")) {
      o.fault_ms = std::atoll(v);
    } else if (auto v = val("--fault-every-ms=")) {
      o.fault_every_ms = std::atoll(v);
    } else if (a == "--trace") {
      o.trace = true;
    } else if (a == "--at-least-once") {
      o.exactly_once = false;
    } else {
      std::fprintf(stderr,
                   "weft-cluster-sim: unknown argument '%s' (see the source's "
                   "header for the options)\n",
                   a.c_str());
      return 2;
    }
  }
  if (one || seeds == 0) {
    auto r = run_simulation(o);
    std::printf("seed %llu: %s\nfaults:\n%s", static_cast<unsigned long long>(o.seed),
                r.summary().c_str(), r.schedule.c_str());
    if (o.trace || !r.ok)
      for (auto& line : r.trace)
        std::printf("%s\n", line.c_str());
    return r.ok ? 0 : 1;
  }
  std::vector<int64_t> settle;
  int failed = 0;
  int64_t faults = 0, leader = 0;
  for (uint64_t s = first; s < first + static_cast<uint64_t>(seeds); ++s) {
    o.seed = s;
    auto r = run_simulation(o);
    faults += r.faults;
    leader += r.leader_faults;
    if (!r.ok) {
      ++failed;
      std::printf("seed %llu: %s\n", static_cast<unsigned long long>(s),
                  r.summary().c_str());
    } else {
      settle.push_back(r.settle_ms);
    }
  }
  std::sort(settle.begin(), settle.end());
  auto q = [&](double p) {
    return settle.empty() ? 0
                          : settle[std::min(settle.size() - 1,
                                            static_cast<size_t>(p * settle.size()))];
  };
  std::printf("%d seeds, %d failed; %lld faults (%lld on the leader); settle after the "
              "last fault: p50 %lld ms, p90 %lld ms, p99 %lld ms, max %lld ms\n",
              seeds, failed, static_cast<long long>(faults),
              static_cast<long long>(leader), static_cast<long long>(q(0.5)),
              static_cast<long long>(q(0.9)), static_cast<long long>(q(0.99)),
              static_cast<long long>(settle.empty() ? 0 : settle.back()));
  return failed ? 1 : 0;
}
