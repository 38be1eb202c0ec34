// Benchmark (not a test) of weft's state, in one process against one broker:
//
//   (1) count-by-key throughput: the stateless transform of
//       weft-bench-stateless (the baseline, measured again here) vs a service
//       that counts per key in a RocksDB store with a changelog; prints the
//       ratio.
//   (2) restore throughput: 1,000,000 records written straight into a
//       changelog topic, then a node with an empty state folder restores them
//       before its tasks start; prints records/s.
//   (3) resident memory of a node with 24 shards (24 partitions) under a
//       64 MiB block cache + 32 MiB write buffer budget, after counting
//       2,000,000 records over 1,000,000 keys.
//
//   weft-bench-state [--bootstrap=127.0.0.1:9092] [--records=1000000]
// bench/run.sh starts the local broker and runs the benchmarks.

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "committed_offsets.hpp"
#include "config_overrides.hpp"
#include "count_workload.hpp"
#include "rss.hpp"
#include "weft/kafka/admin.hpp"
#include "weft/kafka/consumer.hpp"
#include "weft/kafka/producer.hpp"
#include "weft/node.hpp"
#include "weft/services/stateless.hpp"
#include "weft/state/shard.hpp"

using namespace std::chrono;
using clock_type = steady_clock;
using str = weft::string_serde;

namespace {

std::string bootstrap = "127.0.0.1:9092";
size_t records = 1000000;
int phase = 0; // 0: all; 1, 2 or 3: only that one (a fresh process for memory)

void die(const std::string& what) {
  std::fprintf(stderr, "bench: %s\n", what.c_str());
  std::exit(1);
}

struct copier : weft::stateless<weft::bytes_serde, weft::bytes_serde> {
  weft::output<weft::bytes_serde, weft::bytes_serde> out;
  copier(std::string in, std::string o) : stateless("copier", in) {
    out = to<weft::bytes_serde, weft::bytes_serde>(o);
  }
  void process(const std::string& k, const std::string& v, weft::context& ctx) override {
    out.emit(ctx, k, v);
  }
};

std::unique_ptr<weft::kafka::admin> admin;
std::unique_ptr<weft::kafka::consumer> probe;

void create(const std::string& topic, int parts,
            std::map<std::string, std::string> cfg = {}) {
  if (auto s = admin->ensure_topics({{topic, parts, 1, cfg}}, 30000); !s)
    die(s.message());
}

void produce(const std::string& topic, size_t n, size_t keys,
             int32_t partitions_for_key = -1) {
  weft::bench::produce_keys(bootstrap, topic, n, keys, partitions_for_key);
}

int64_t committed(const std::string& group, const std::string& topic, int parts) {
  return weft::bench::committed_sum(bootstrap, group, topic, parts);
}

weft::config make_config(const std::string& app, const std::string& state_dir) {
  std::map<std::string, std::string> values{{"application.id", app},
                                            {"bootstrap.servers", bootstrap},
                                            {"state.dir", state_dir},
                                            {"log.level", phase == 0 ? "warn" : "info"}};
  weft::bench::apply_config_overrides(values); // WEFT_BENCH_CONFIG
  auto cfg = weft::config::from_map(values);
  if (!cfg) die(cfg.error().message());
  return *cfg;
}

/// Seconds until the group committed every input record.
template <class Setup>
double run_until_committed(const std::string& app, const std::string& in, int parts,
                           int64_t n, Setup&& setup) {
  auto dir = "/tmp/" + app;
  std::filesystem::remove_all(dir);
  weft::node node{make_config(app, dir)};
  setup(node);
  auto start = clock_type::now();
  if (auto s = node.start(); !s) die(s.message());
  while (committed(app, in, parts) < n) {
    if (clock_type::now() - start > minutes(10)) die("timed out: " + app);
    std::this_thread::sleep_for(milliseconds(50));
  }
  auto secs = duration<double>(clock_type::now() - start).count();
  node.request_stop();
  (void)node.wait();
  std::filesystem::remove_all(dir);
  return secs;
}

} // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--bootstrap=", 0) == 0)
      bootstrap = a.substr(12);
    else if (a.rfind("--records=", 0) == 0)
      records = std::stoul(a.substr(10));
    else if (a.rfind("--phase=", 0) == 0)
      phase = std::stoi(a.substr(8));
    else
      die("unknown argument " + a);
  }
  auto tag = std::to_string(::time(nullptr));
  auto a = weft::kafka::admin::create({{"bootstrap.servers", bootstrap}});
  if (!a) die(a.error().message());
  admin = std::move(*a);
  auto pr = weft::kafka::consumer::create(
      {{"bootstrap.servers", bootstrap}, {"group.id", "probe"}});
  if (!pr) die(pr.error().message());
  probe = std::move(*pr);

  // (1) count-by-key vs the stateless baseline, same input.
  auto in = "state-bench-in-" + tag;
  auto out1 = "state-bench-copy-" + tag, out2 = "state-bench-count-" + tag;
  create(out2, 6);
  if (phase == 0 || phase == 1) {
    create(in, 6);
    std::printf("producing %zu records over 100,000 keys to %s...\n", records,
                in.c_str());
    produce(in, records, 100000);
    create(out1, 6);
    auto secs_copy = run_until_committed("bench-copy-" + tag, in, 6, records,
                                         [&](weft::node& n) { n.add<copier>(in, out1); });
    auto secs_count =
        run_until_committed("bench-count-" + tag, in, 6, records, [&](weft::node& n) {
          n.add<weft::bench::key_counter>(in, out2, true);
        });
    std::printf("(1) stateless copy        : %10.0f records/s\n", records / secs_copy);
    std::printf("    count-by-key (RocksDB): %10.0f records/s  ratio %.2f\n",
                records / secs_count, secs_copy / secs_count);
  }

  // (2) restore 1,000,000 changelog records.
  auto app2 = "bench-restore-" + tag;
  auto in2 = "state-bench-empty-" + tag;
  auto changelog = weft::state::changelog_topic(app2, "counts");
  if (phase == 0 || phase == 2) {
    create(changelog, 6, {{"cleanup.policy", "compact"}});
    create(in2, 6);
    produce(changelog, records, records, 6);
    {
      auto dir = "/tmp/" + app2;
      std::filesystem::remove_all(dir);
      weft::node node{make_config(app2, dir)};
      node.add<weft::bench::key_counter>(in2, out2, false);
      auto start = clock_type::now();
      if (auto s = node.start(); !s) die(s.message());
      // store_ready() reads no data: polling it does not slow the restore.
      while (!node.store_ready("counts")) {
        if (clock_type::now() - start > minutes(10)) die("restore timed out");
        std::this_thread::sleep_for(milliseconds(5));
      }
      auto secs = duration<double>(clock_type::now() - start).count();
      uint64_t n = 0;
      auto st = node.all("counts",
                         [&](std::string_view, std::string_view) { return ++n, true; });
      if (!st) die(st.message());
      std::printf("(2) restore               : %10.0f records/s (%zu records, %llu keys, "
                  "%.2f s incl. start-up)\n",
                  records / secs, records, static_cast<unsigned long long>(n), secs);
      node.request_stop();
      (void)node.wait();
      std::filesystem::remove_all(dir);
    }
  }

  // (3) memory with 24 shards under the default budget (64 MiB cache, 32 MiB
  //     write buffers).
  auto in3 = "state-bench-24-" + tag;
  if (phase == 0 || phase == 3) {
    create(in3, 24);
    produce(in3, 2 * records, records);
    int64_t before = weft::bench::rss_mb(), peak = 0;
    {
      auto app3 = "bench-24-" + tag;
      auto dir = "/tmp/" + app3;
      std::filesystem::remove_all(dir);
      weft::node node{make_config(app3, dir)};
      node.add<weft::bench::key_counter>(in3, out2, false);
      if (auto s = node.start(); !s) die(s.message());
      auto start = clock_type::now();
      while (committed(app3, in3, 24) < int64_t(2 * records)) {
        peak = std::max(peak, weft::bench::rss_mb());
        if (clock_type::now() - start > minutes(10)) die("24 shards timed out");
        std::this_thread::sleep_for(milliseconds(100));
      }
      peak = std::max(peak, weft::bench::rss_mb());
      node.request_stop();
      (void)node.wait();
      std::filesystem::remove_all(dir);
    }
    std::printf(
        "(3) 24 shards, %zu records over %zu keys: peak resident %lld MB (process "
        "held %lld MB before the node started)\n",
        2 * records, records, static_cast<long long>(peak),
        static_cast<long long>(before));
  }
  (void)admin->delete_topics({in, out1, out2, changelog, in2, in3}, 30000);
  return 0;
}
