// Benchmark (not a test) of bad.record.policy=park: what one parked key
// costs the keys that keep flowing. One input (1,000,000 records over
// 100,000 keys, plus a hot key "hot" carrying 1 % of them, its first record
// "poison"), two runs of the same service with park on, alternated:
//   none   : the handler takes "poison" like any value: nothing parks
//   parked : the handler throws on it: "hot" parks at its first record and
//            its 10,000 later records are held in the parked store
// Each run goes from node start until the group committed every input
// record (held ones are committed once they are in the store); prints
// records/s of both (best of --rounds) and parked / none (target >= 0.95).
//
//   weft-bench-park [--bootstrap=127.0.0.1:9092] [--records=1000000]
//                   [--rounds=2] [--guarantee=at_least_once|exactly_once]
// bench/run.sh starts the local broker and runs the benchmarks.

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "committed_offsets.hpp"
#include "weft/kafka/admin.hpp"
#include "weft/kafka/consumer.hpp"
#include "weft/kafka/producer.hpp"
#include "weft/node.hpp"
#include "weft/services/stateless.hpp"

using namespace std::chrono;
using clock_type = steady_clock;
using bytes = weft::bytes_serde;

namespace {

std::string bootstrap = "127.0.0.1:9092";
std::string guarantee = "at_least_once";
size_t records = 1000000;
int rounds = 2;

void die(const std::string& what) {
  std::fprintf(stderr, "bench: %s\n", what.c_str());
  std::exit(1);
}

/// Copies each record; throws on the value "poison" when `strict`.
struct copier : weft::stateless<bytes, bytes> {
  weft::output<bytes, bytes> out;
  bool strict;
  copier(std::string in, std::string o, bool s) : stateless("copier", in), strict(s) {
    out = to<bytes, bytes>(o);
  }
  void process(const std::string& k, const std::string& v, weft::context& ctx) override {
    if (strict && v == "poison") throw std::runtime_error("poison");
    out.emit(ctx, k, v);
  }
};

std::unique_ptr<weft::kafka::admin> admin;

void create(const std::string& topic, int parts) {
  if (auto s = admin->ensure_topics({{topic, parts, 1, {}}}, 30000); !s) die(s.message());
}

void produce(const std::string& topic, size_t n) {
  auto p = weft::kafka::producer::create({{"bootstrap.servers", bootstrap},
                                          {"linger.ms", "20"},
                                          {"partitioner", "murmur2_random"}});
  if (!p) die(p.error().message());
  std::string value(88, 'v');
  bool first_hot = true;
  for (size_t i = 0; i < n; ++i) {
    char key[24];
    int len = i % 100 == 50
                  ? std::snprintf(key, sizeof key, "hot")
                  : std::snprintf(key, sizeof key, "key%09zu", (i * 7919) % 100000);
    std::string_view v = value;
    if (i % 100 == 50 && first_hot) v = "poison", first_hot = false;
    while ((*p)->send(topic, -1, std::string_view{key, size_t(len)}, v).code() ==
           weft::errc::queue_full)
      std::this_thread::sleep_for(milliseconds(1));
  }
  if (auto s = (*p)->flush(120000); !s) die(s.message());
}

int64_t committed(const std::string& group, const std::string& topic, int parts) {
  return weft::bench::committed_sum(bootstrap, group, topic, parts);
}

/// Seconds from start until every input record is committed; checks that
/// the parked run really parked (held records in the metrics).
double run(const std::string& app, const std::string& in, const std::string& out,
           bool strict) {
  auto dir = "/tmp/" + app;
  std::filesystem::remove_all(dir);
  auto cfg = weft::config::from_map({{"application.id", app},
                                     {"bootstrap.servers", bootstrap},
                                     {"state.dir", dir},
                                     {"processing.guarantee", guarantee},
                                     {"bad.record.policy", "park"},
                                     {"log.level", "warn"}});
  if (!cfg) die(cfg.error().message());
  weft::node node{*cfg};
  node.add<copier>(in, out, strict);
  auto start = clock_type::now();
  if (auto s = node.start(); !s) die(s.message());
  while (committed(app, in, 6) < int64_t(records)) {
    if (clock_type::now() - start > minutes(10)) die("timed out: " + app);
    std::this_thread::sleep_for(milliseconds(50));
  }
  auto secs = duration<double>(clock_type::now() - start).count();
  auto m = node.metrics();
  if (strict && (m.parked_keys != 1 || m.parked_records != records / 100))
    die("the parked run did not park one key with " + std::to_string(records / 100) +
        " records: " + std::to_string(m.parked_keys) + " keys, " +
        std::to_string(m.parked_records) + " records");
  if (!strict && m.parked_keys != 0) die("the plain run parked a key");
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
      records = std::stoul(a.substr(10)) / 100 * 100;
    else if (a.rfind("--rounds=", 0) == 0)
      rounds = std::stoi(a.substr(9));
    else if (a.rfind("--guarantee=", 0) == 0)
      guarantee = a.substr(12);
    else
      die("unknown argument " + a);
  }
  auto tag = std::to_string(::time(nullptr));
  auto a = weft::kafka::admin::create({{"bootstrap.servers", bootstrap}});
  if (!a) die(a.error().message());
  admin = std::move(*a);
  auto in = "park-bench-in-" + tag, out = "park-bench-out-" + tag;
  create(in, 6);
  create(out, 6);
  std::printf("producing %zu records over 100,000 keys + a hot key (1 %%) to %s...\n",
              records, in.c_str());
  produce(in, records);
  double best_none = 1e18, best_parked = 1e18;
  for (int r = 0; r < rounds; ++r) {
    auto none = run("bench-park-none-" + tag + "-" + std::to_string(r), in, out, false);
    auto parked = run("bench-park-one-" + tag + "-" + std::to_string(r), in, out, true);
    std::printf("round %d: none %.0f records/s, one parked key %.0f records/s\n", r + 1,
                records / none, records / parked);
    best_none = std::min(best_none, none);
    best_parked = std::min(best_parked, parked);
  }
  std::printf("park (%s), best of %d: none %10.0f records/s\n", guarantee.c_str(), rounds,
              records / best_none);
  std::printf("               one parked key %10.0f records/s (%zu held)  ratio %.2f\n",
              records / best_parked, records / 100, best_none / best_parked);
  return 0;
}
