// Benchmark (not a test): how the cost of count-by-key grows. One
// measurement per process (peak memory must not inherit an earlier run's
// heap); bench/scaling.sh runs the whole table.
//
//   weft-bench-scaling --mode=count --keys=K --partitions=P [--records=N]
//       N records (default max(1,000,000, 2K)) over K keys "key%09d" into a
//       P-partition topic, then a node (default configuration, at_least_once)
//       counting per key in RocksDB with a changelog and emitting every
//       count, timed from start until the group committed all N input
//       offsets. Peak VmRSS sampled every 100 ms.
//   weft-bench-scaling --mode=restore --records=N [--partitions=6]
//       N records with N distinct keys written straight into the store's
//       changelog (P partitions), then a node with an empty state folder,
//       timed from start until the store is ready (restored).
//
// Prints one line of key=value pairs starting "scaling".

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>

#include <unistd.h>

#include "args.hpp"
#include "committed_offsets.hpp"
#include "config_overrides.hpp"
#include "count_workload.hpp"
#include "cpu_time.hpp"
#include "rss.hpp"
#include "weft/kafka/admin.hpp"
#include "weft/node.hpp"
#include "weft/state/shard.hpp"

using namespace std::chrono;
using clock_type = steady_clock;

namespace {

std::string bootstrap = "127.0.0.1:9092";
std::string mode = "count";
size_t keys = 1000000;
size_t records = 0; // 0: the mode's default
int partitions = 6;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "bench: %s\n", what.c_str());
  std::exit(1);
}

weft::config make_config(const std::string& app, const std::string& state_dir) {
  std::map<std::string, std::string> values{{"application.id", app},
                                            {"bootstrap.servers", bootstrap},
                                            {"state.dir", state_dir},
                                            {"log.level", "warn"}};
  weft::bench::apply_config_overrides(values); // WEFT_BENCH_CONFIG
  auto cfg = weft::config::from_map(values);
  if (!cfg) die(cfg.error().message());
  return *cfg;
}

} // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&](const char* name) { return weft::bench::flag_value(argv[i], name); };
    if (auto v = val("--bootstrap="))
      bootstrap = v;
    else if (auto v = val("--mode="))
      mode = v;
    else if (auto v = val("--keys="))
      keys = std::stoul(v);
    else if (auto v = val("--records="))
      records = std::stoul(v);
    else if (auto v = val("--partitions="))
      partitions = std::stoi(v);
    else
      die("unknown argument " + a);
  }
  if (mode != "count" && mode != "restore")
    die("--mode is count or restore, not " + mode);
  if (keys == 0 || partitions <= 0) die("--keys and --partitions must be positive");
  if (records == 0)
    records = mode == "count" ? std::max<size_t>(1000000, 2 * keys) : keys;

  auto tag = std::to_string(::time(nullptr)) + "-" + std::to_string(::getpid());
  auto admin_or = weft::kafka::admin::create({{"bootstrap.servers", bootstrap}});
  if (!admin_or) die(admin_or.error().message());
  auto& admin = **admin_or;
  auto create = [&](const std::string& topic,
                    std::map<std::string, std::string> cfg = {}) {
    if (auto s = admin.ensure_topics({{topic, partitions, 1, cfg}}, 30000); !s)
      die(s.message());
  };
  auto app = "bench-scaling-" + tag;
  auto in = "scaling-in-" + tag, out = "scaling-out-" + tag;
  auto changelog = weft::state::changelog_topic(app, "counts");
  auto dir = "/tmp/" + app;
  std::filesystem::remove_all(dir);
  create(in);
  create(out);

  if (mode == "count") {
    weft::bench::produce_keys(bootstrap, in, records, keys);
  } else {
    create(changelog, {{"cleanup.policy", "compact"}});
    weft::bench::produce_keys(bootstrap, changelog, records, records, partitions);
  }
  int64_t before = weft::bench::rss_mb(), peak = before;
  double secs = 0, cpu = 0;
  {
    weft::node node{make_config(app, dir)};
    node.add<weft::bench::key_counter>(in, out, true);
    auto cpu0 = weft::bench::cpu_seconds();
    auto start = clock_type::now();
    if (auto s = node.start(); !s) die(s.message());
    auto done = [&] {
      return mode == "count"
                 ? weft::bench::committed_sum(bootstrap, app, in, partitions) >=
                       static_cast<int64_t>(records)
                 : node.store_ready("counts");
    };
    while (!done()) {
      peak = std::max(peak, weft::bench::rss_mb());
      if (clock_type::now() - start > minutes(30)) die("timed out after 30 minutes");
      std::this_thread::sleep_for(milliseconds(100));
    }
    secs = duration<double>(clock_type::now() - start).count();
    cpu = weft::bench::cpu_seconds() - cpu0;
    peak = std::max(peak, weft::bench::rss_mb());
    node.request_stop();
    (void)node.wait();
  }
  std::filesystem::remove_all(dir);
  (void)admin.delete_topics({in, out, changelog}, 30000);
  std::printf("scaling mode=%s keys=%zu partitions=%d records=%zu seconds=%.2f "
              "records_per_s=%.0f cpu_us_per_record=%.2f peak_rss_mb=%lld "
              "rss_before_mb=%lld\n",
              mode.c_str(), mode == "count" ? keys : records, partitions, records, secs,
              records / secs, cpu * 1e6 / static_cast<double>(records),
              static_cast<long long>(peak), static_cast<long long>(before));
  return 0;
}
