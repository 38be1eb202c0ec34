// Benchmark (not a test) of exactly-once against at-least-once, in one
// process against one broker, on the count pipeline (count per key in a
// RocksDB store with a changelog, emitting every new count):
//
//   (1) throughput: the same 1,000,000 records counted under at_least_once and
//       under exactly_once, alternating, best of two rounds each; prints the
//       ratio exactly_once / at_least_once (target >= 0.7).
//   (2) end-to-end latency at commit.interval.ms=100: records produced at a
//       steady rate, stamped with the wall clock; a read_committed reader of
//       the output measures now - stamp (exactly-once results become visible
//       only when their epoch commits). p50/p99 for both guarantees.
//
//   weft-bench-eos [--bootstrap=127.0.0.1:9092] [--records=1000000]
//                  [--rate=5000] [--seconds=10] [--only=at_least_once|exactly_once]
// --only runs section (1) under one guarantee and skips (2): for profiling
// one path (`perf record` around it).
// bench/run.sh starts the local broker and runs the benchmarks.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "committed_offsets.hpp"
#include "config_overrides.hpp"
#include "count_workload.hpp"
#include "cpu_time.hpp"
#include "weft/kafka/admin.hpp"
#include "weft/kafka/consumer.hpp"
#include "weft/kafka/producer.hpp"
#include "weft/node.hpp"
#include "weft/services/service.hpp"

using namespace std::chrono;
using clock_type = steady_clock;

namespace {

std::string bootstrap = "127.0.0.1:9092";
size_t records = 1000000;
int rate = 5000;
int run_seconds = 10;
std::string only; ///< --only: one guarantee, section (1) only
constexpr int parts = 6;

void die(const std::string& what) {
  std::fprintf(stderr, "bench: %s\n", what.c_str());
  std::exit(1);
}

int64_t wall_ms() {
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::unique_ptr<weft::kafka::admin> admin;

void create(const std::string& topic) {
  if (auto s = admin->ensure_topics({{topic, parts, 1, {}}}, 30000); !s) die(s.message());
}

std::unique_ptr<weft::kafka::producer> make_producer() {
  auto p = weft::kafka::producer::create({{"bootstrap.servers", bootstrap},
                                          {"linger.ms", "5"},
                                          {"partitioner", "murmur2_random"}});
  if (!p) die(p.error().message());
  return std::move(*p);
}

void produce(const std::string& topic, size_t n, size_t keys) {
  weft::bench::produce_keys(bootstrap, topic, n, keys);
}

int64_t committed(const std::string& group, const std::string& topic) {
  return weft::bench::committed_sum(bootstrap, group, topic, parts);
}

/// The node's configuration; WEFT_BENCH_CONFIG="key=value,key=value" adds
/// or overrides keys (to try a setting without a rebuild).
weft::config make_config(const std::string& app, const std::string& guarantee) {
  std::map<std::string, std::string> values{
      {"application.id", app},
      {"bootstrap.servers", bootstrap},
      {"state.dir", "/tmp/" + app},
      {"processing.guarantee", guarantee},
      {"commit.interval.ms", "100"},
      {"log.level",
       std::getenv("WEFT_BENCH_LOG") ? std::getenv("WEFT_BENCH_LOG") : "warn"}};
  weft::bench::apply_config_overrides(values);
  auto cfg = weft::config::from_map(values);
  if (!cfg) die(cfg.error().message());
  return *cfg;
}

/// Seconds until the group committed every input record. Under exactly_once
/// committed offsets include commit markers of upstream transactions; the
/// input here is not transactional, so the count is exact.
double count_all(const std::string& app, const std::string& guarantee,
                 const std::string& in, const std::string& out, weft::node_metrics* m) {
  std::filesystem::remove_all("/tmp/" + app);
  weft::node node{make_config(app, guarantee)};
  node.add<weft::bench::key_counter>(in, out, true);
  auto start = clock_type::now();
  if (auto s = node.start(); !s) die(s.message());
  while (committed(app, in) < int64_t(records)) {
    if (clock_type::now() - start > minutes(10)) die("timed out: " + app);
    std::this_thread::sleep_for(milliseconds(50));
  }
  auto secs = duration<double>(clock_type::now() - start).count();
  *m = node.metrics();
  node.request_stop();
  (void)node.wait();
  std::filesystem::remove_all("/tmp/" + app);
  return secs;
}

struct latency {
  double p50 = 0, p99 = 0, max = 0;
  size_t n = 0;
};

/// Produces `rate` records/s for `seconds` while a read_committed reader of
/// the output records each result's age.
latency measure_latency(const std::string& app, const std::string& guarantee,
                        const std::string& in, const std::string& out) {
  std::filesystem::remove_all("/tmp/" + app);
  weft::node node{make_config(app, guarantee)};
  node.add<weft::bench::key_counter>(in, out, true);
  if (auto s = node.start(); !s) die(s.message());
  auto reader = weft::kafka::consumer::create({{"bootstrap.servers", bootstrap},
                                               {"group.id", app + "-reader"},
                                               {"isolation.level", "read_committed"},
                                               {"fetch.wait.max.ms", "10"}});
  if (!reader) die(reader.error().message());
  std::vector<std::unique_ptr<weft::kafka::partition_queue>> queues;
  std::vector<std::pair<weft::topic_partition, weft::offset>> starts;
  for (int p = 0; p < parts; ++p) {
    weft::topic_partition tp{out, weft::partition_id{p}};
    queues.push_back((*reader)->take_queue(tp));
    starts.emplace_back(tp, weft::offset{-1} /* RD_KAFKA_OFFSET_END */);
  }
  if (auto s = (*reader)->assign_at(starts); !s) die(s.message());
  std::this_thread::sleep_for(std::chrono::seconds(1)); // let the reader reach the end
  std::vector<int64_t> ages;
  std::atomic<bool> done{false};
  // The first two seconds warm up (the node's first fetches, the first
  // epochs); only records stamped after them count.
  const int64_t warm_ms = 2000;
  const int64_t measure_from = wall_ms() + warm_ms;
  std::thread consumer{[&] {
    while (!done) {
      bool any = false;
      for (auto& q : queues) {
        weft::kafka::message_batch b;
        if (q->drain(b, 10000) == 0) continue;
        any = true;
        auto now = wall_ms();
        for (size_t i = 0; i < b.size(); ++i)
          if (b.view(i).timestamp >= measure_from)
            ages.push_back(now - b.view(i).timestamp);
      }
      if (!any) std::this_thread::sleep_for(microseconds(200));
    }
  }};
  auto p = make_producer();
  std::string value(88, 'v');
  auto start = clock_type::now();
  size_t total = size_t(rate) * size_t(run_seconds + warm_ms / 1000);
  for (size_t i = 0; i < total; ++i) {
    // Paced: record i leaves at start + i / rate.
    std::this_thread::sleep_until(start + microseconds(int64_t(i) * 1000000 / rate));
    char key[24];
    int len = std::snprintf(key, sizeof key, "key%09zu", (i * 7919) % 10000);
    (void)p->send(in, -1, std::string_view{key, size_t(len)}, value, wall_ms());
  }
  (void)p->flush(30000);
  auto deadline = clock_type::now() + std::chrono::seconds(30);
  while (clock_type::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(100));
    if (ages.size() >= size_t(rate) * size_t(run_seconds)) break;
  }
  done = true;
  consumer.join();
  node.request_stop();
  (void)node.wait();
  std::filesystem::remove_all("/tmp/" + app);
  latency l;
  l.n = ages.size();
  if (ages.empty()) return l;
  std::sort(ages.begin(), ages.end());
  l.p50 = double(ages[ages.size() / 2]);
  l.p99 = double(ages[std::min(ages.size() - 1, ages.size() * 99 / 100)]);
  l.max = double(ages.back());
  return l;
}

} // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--bootstrap=", 0) == 0)
      bootstrap = a.substr(12);
    else if (a.rfind("--records=", 0) == 0)
      records = std::stoul(a.substr(10));
    else if (a.rfind("--rate=", 0) == 0)
      rate = std::stoi(a.substr(7));
    else if (a.rfind("--seconds=", 0) == 0)
      run_seconds = std::stoi(a.substr(10));
    else if (a.rfind("--only=", 0) == 0 &&
             (a.substr(7) == "at_least_once" || a.substr(7) == "exactly_once"))
      only = a.substr(7);
    else
      die("unknown argument " + a);
  }
  auto tag = std::to_string(::time(nullptr));
  auto a = weft::kafka::admin::create({{"bootstrap.servers", bootstrap}});
  if (!a) die(a.error().message());
  admin = std::move(*a);

  auto in = "eos-bench-in-" + tag;
  auto out = "eos-bench-out-" + tag;
  create(in);
  create(out);
  std::printf("producing %zu records over 100,000 keys to %s...\n", records, in.c_str());
  produce(in, records, 100000);
  if (!only.empty()) {
    weft::node_metrics m;
    const double cpu0 = weft::bench::cpu_seconds();
    auto secs = count_all("bench-" + tag, only, in, out, &m);
    const double cpu = weft::bench::cpu_seconds() - cpu0;
    std::printf("(1) count-by-key %s: %10.0f records/s, %.2f us CPU per record (this "
                "process, start-up included)\n",
                only.c_str(), records / secs, cpu * 1e6 / double(records));
    (void)admin->delete_topics({in, out}, 30000);
    return 0;
  }
  double best_alo = 1e9, best_eos = 1e9;
  weft::node_metrics m_eos;
  for (int round = 0; round < 2; ++round) {
    weft::node_metrics m;
    auto alo = count_all("bench-alo-" + tag + "-" + std::to_string(round),
                         "at_least_once", in, out, &m);
    auto eos = count_all("bench-eos-" + tag + "-" + std::to_string(round), "exactly_once",
                         in, out, &m);
    if (eos < best_eos) m_eos = m;
    best_alo = std::min(best_alo, alo);
    best_eos = std::min(best_eos, eos);
    std::printf("  round %d: at_least_once %.0f records/s, exactly_once %.0f records/s\n",
                round + 1, records / alo, records / eos);
  }
  std::printf("(1) count-by-key at_least_once: %10.0f records/s\n", records / best_alo);
  std::printf("    count-by-key exactly_once : %10.0f records/s  ratio %.2f (target >= "
              "0.70)\n",
              records / best_eos, best_alo / best_eos);
  if (m_eos.epochs_committed > 0)
    std::printf(
        "    exactly_once: %llu epochs committed, %llu aborted, mean marker->commit "
        "%.1f ms (max %.1f ms) of which %.1f ms in the transaction calls, tasks held "
        "input %.1f ms per epoch on average (summed over tasks)\n",
        static_cast<unsigned long long>(m_eos.epochs_committed),
        static_cast<unsigned long long>(m_eos.epochs_aborted),
        m_eos.commit_latency_us_total / 1000.0 / m_eos.epochs_committed,
        m_eos.commit_latency_us_max / 1000.0,
        m_eos.transaction_us_total / 1000.0 / m_eos.epochs_committed,
        m_eos.aligned_us_total / 1000.0 / m_eos.epochs_committed);

  std::vector<std::string> topics{in, out};
  for (auto g : {"at_least_once", "exactly_once"}) {
    auto in2 = "eos-bench-lat-in-" + std::string{g} + "-" + tag;
    auto out2 = "eos-bench-lat-out-" + std::string{g} + "-" + tag;
    create(in2);
    create(out2);
    topics.push_back(in2);
    topics.push_back(out2);
    auto l = measure_latency("bench-lat-" + std::string{g} + "-" + tag, g, in2, out2);
    std::printf("(2) end-to-end latency %-13s at %d records/s, commit.interval.ms=100: "
                "p50 %.0f ms, p99 %.0f ms, max %.0f ms (%zu results read)\n",
                g, rate, l.p50, l.p99, l.max, l.n);
  }
  (void)admin->delete_topics(topics, 30000);
  return 0;
}
