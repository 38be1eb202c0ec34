// Benchmark (not a test) of durable per-key timers (weft/services/timers.hpp)
// on one node, in one process against one broker:
//
//   1. a node whose service sets one event-time timer per request record
//      takes --timers (1,000,000) requests, each for its own key: the
//      set rate (records/s until the group committed them all) is the
//      baseline of this run;
//   2. with every timer pending: the process's resident memory against the
//      same node idle before the requests, and the bytes of the timer store
//      on disk (its RocksDB folders under state.dir);
//   3. one record per partition moves stream time past every timer: the
//      firing rate (timers/s until every firing's output is in Kafka) and
//      its ratio to the set rate.
//
//   weft-bench-timers [--bootstrap=127.0.0.1:9092] [--timers=1000000]
//                     [--guarantee=exactly_once|at_least_once] [--partitions=4]
// bench/run.sh starts the local broker and runs the benchmarks.

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <malloc.h>
#include <unistd.h>

#include "args.hpp"
#include "committed_offsets.hpp"
#include "rss.hpp"
#include "weft/kafka/admin.hpp"
#include "weft/kafka/consumer.hpp"
#include "weft/kafka/producer.hpp"
#include "weft/node.hpp"
#include "weft/services/operator_base.hpp"

using namespace std::chrono;
using clock_type = steady_clock;
using str = weft::string_serde;

namespace {

std::string bootstrap = "127.0.0.1:9092";
size_t timers = 1'000'000;
std::string guarantee = "exactly_once";
int partitions = 4;
constexpr int64_t e0 = 1'000'000'000'000;

void die(const std::string& what) {
  std::fprintf(stderr, "bench: %s\n", what.c_str());
  std::exit(1);
}

/// Resident memory, after glibc returned its free pages (malloc_trim): what
/// is live, not what freed buffers (the producer's, say) left behind.
int64_t rss_mb() {
  malloc_trim(0);
  return weft::bench::rss_mb();
}

/// Bytes of the files under every folder named `*-timers` below `dir`.
uint64_t timer_store_bytes(const std::string& dir) {
  uint64_t n = 0;
  std::error_code ec;
  for (auto& e : std::filesystem::recursive_directory_iterator(dir, ec)) {
    if (!e.is_regular_file(ec)) continue;
    if (e.path().string().find("-timers/") != std::string::npos) n += e.file_size(ec);
  }
  return n;
}

/// Sets a timer per request ("<time>"), emits "fired" for each one.
struct timer_service : weft::operator_base {
  weft::timer_handle<str> t = add_timer<str>("t", weft::timer_clock::event_time);
  weft::output<str, str> out;
  timer_service(const std::string& in, const std::string& o) : operator_base("timers") {
    add_input_ref(in);
    out = to<str, str>(o);
  }
  void on_record(const weft::record_view& r, weft::context& ctx) override {
    if (!r.key || !r.value || *r.value == "tick" || *r.value == "noop") return;
    t.set(ctx, std::string{*r.key}, std::stoll(std::string{*r.value}));
  }
  void on_timer(const weft::timer& tm, weft::context& ctx) override {
    out.emit(ctx, tm.key, "fired");
  }
};

std::unique_ptr<weft::kafka::admin> admin;
std::unique_ptr<weft::kafka::consumer> probe;

int64_t committed(const std::string& group, const std::string& topic) {
  return weft::bench::committed_sum(bootstrap, group, topic, partitions);
}

int64_t written(const std::string& topic) {
  int64_t n = 0;
  for (int p = 0; p < partitions; ++p) {
    auto w = probe->watermarks({topic, weft::partition_id{p}}, 10000);
    if (!w) return -1;
    n += w->second;
  }
  return n;
}

} // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&](const char* name) { return weft::bench::flag_value(argv[i], name); };
    if (auto v = val("--bootstrap="))
      bootstrap = v;
    else if (auto v = val("--timers="))
      timers = std::stoull(v);
    else if (auto v = val("--guarantee="))
      guarantee = v;
    else if (auto v = val("--partitions="))
      partitions = std::stoi(v);
    else
      die("unknown argument " + a);
  }
  auto a = weft::kafka::admin::create({{"bootstrap.servers", bootstrap}});
  if (!a) die(a.error().message());
  admin = std::move(*a);
  auto pr = weft::kafka::consumer::create(
      {{"bootstrap.servers", bootstrap}, {"group.id", "timer-bench-probe"}});
  if (!pr) die(pr.error().message());
  probe = std::move(*pr);

  const auto tag =
      std::to_string(getpid()) + "-" +
      std::to_string(system_clock::now().time_since_epoch().count() % 100000);
  const auto in = "timer-bench-in-" + tag, out = "timer-bench-out-" + tag;
  const auto app = "timer-bench-" + tag;
  for (auto& t : {in, out})
    if (auto s = admin->ensure_topics({{t, partitions, 1, {}}}, 30000); !s)
      die(s.message());
  const auto dir = "/tmp/" + app;
  auto cfg = weft::config::from_map({{"application.id", app},
                                     {"bootstrap.servers", bootstrap},
                                     {"state.dir", dir},
                                     {"processing.guarantee", guarantee},
                                     {"log.level", "warn"}});
  if (!cfg) die(cfg.error().message());
  weft::node node{*cfg};
  node.add<timer_service>(in, out);
  if (auto s = node.start(); !s) die(s.message());
  std::this_thread::sleep_for(seconds(3)); // restored, idle
  const auto rss_idle = rss_mb();

  auto p = weft::kafka::producer::create({{"bootstrap.servers", bootstrap},
                                          {"linger.ms", "20"},
                                          {"batch.num.messages", "10000"}});
  if (!p) die(p.error().message());
  int64_t sent = 0;
  // Sends `timers` records (value `noop`, or each key's timer time) and
  // waits until the group committed them; returns the seconds it took.
  auto feed = [&](bool noop) {
    auto start = clock_type::now();
    for (size_t i = 0; i < timers; ++i) {
      char key[24], value[24];
      int kl = std::snprintf(key, sizeof key, "key%09zu", i);
      int vl =
          noop ? std::snprintf(value, sizeof value, "noop")
               : std::snprintf(value, sizeof value, "%lld",
                               static_cast<long long>(e0 + 1 + static_cast<int64_t>(i)));
      while (
          (*p)->send(in, -1, std::string_view{key, size_t(kl)},
                     std::optional<std::string_view>{std::string_view{value, size_t(vl)}},
                     e0)
              .code() == weft::errc::queue_full)
        std::this_thread::sleep_for(milliseconds(1));
    }
    if (auto s = (*p)->flush(120000); !s) die(s.message());
    sent += static_cast<int64_t>(timers);
    while (committed(app, in) < sent) {
      if (clock_type::now() - start > minutes(20)) die("timed out feeding");
      std::this_thread::sleep_for(milliseconds(100));
    }
    return duration<double>(clock_type::now() - start).count();
  };
  // 0. The baseline: as many records that set nothing.
  const auto noop_s = feed(true);
  std::this_thread::sleep_for(seconds(2));
  const auto rss_noop = rss_mb();
  // 1. Set one timer per key.
  auto start = clock_type::now();
  (void)start;
  const auto set_s = feed(false);
  std::this_thread::sleep_for(seconds(2)); // the last epoch's state is written
  const auto rss_pending = rss_mb();
  const auto store_bytes = timer_store_bytes(dir);

  // 3. Every timer due at once.
  const auto fired_before = written(out);
  start = clock_type::now();
  for (int part = 0; part < partitions; ++part)
    if (auto s = (*p)->send(in, part, std::string_view{"tick"},
                            std::optional<std::string_view>{"tick"},
                            e0 + 10 + static_cast<int64_t>(timers));
        !s)
      die(s.message());
  if (auto s = (*p)->flush(30000); !s) die(s.message());
  while (written(out) - fired_before < static_cast<int64_t>(timers)) {
    if (clock_type::now() - start > minutes(20)) die("timed out firing timers");
    std::this_thread::sleep_for(milliseconds(50));
  }
  const auto fire_s = duration<double>(clock_type::now() - start).count();
  const auto rss_after = rss_mb();
  node.request_stop();
  (void)node.wait();
  std::filesystem::remove_all(dir);

  const double noop_rate = timers / noop_s, set_rate = timers / set_s,
               fire_rate = timers / fire_s;
  std::printf("durable timers, %zu keys, one node, %d partitions, %s\n", timers,
              partitions, guarantee.c_str());
  std::printf(
      "  baseline: %zu records that set nothing: %.0f records/s; resident %lld MB "
      "(idle node %lld MB)\n",
      timers, noop_rate, static_cast<long long>(rss_noop),
      static_cast<long long>(rss_idle));
  std::printf("  set:   %zu timers, one per record: %.0f timers/s, %.2f x the baseline\n",
              timers, set_rate, set_rate / noop_rate);
  std::printf("  pending: resident %lld MB (+%lld MB over the baseline, %.0f B per "
              "timer); timer store on disk %.1f MB (%.0f B per timer)\n",
              static_cast<long long>(rss_pending),
              static_cast<long long>(rss_pending - rss_noop),
              (rss_pending - rss_noop) * 1048576.0 / timers, store_bytes / 1048576.0,
              static_cast<double>(store_bytes) / timers);
  std::printf("  fire:  %zu timers due at once: %.1f s, %.0f timers/s, %.2f x the "
              "baseline; resident after %lld MB\n",
              timers, fire_s, fire_rate, fire_rate / noop_rate,
              static_cast<long long>(rss_after));
  return 0;
}
