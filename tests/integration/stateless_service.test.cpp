// A stateless service end to end against the real local broker [broker]:
// clean run, kill -9 and restart, bad records, flow control, bad topics.

#include <catch2/catch.hpp>

#include <signal.h>

#include <chrono>
#include <map>
#include <set>
#include <thread>

#include "test_cluster.hpp"
#include "weft/node.hpp"
#include "weft/services/stateless.hpp"

using namespace weft;
using namespace std::chrono_literals;
using str = string_serde;

namespace {

struct tag_mapper : stateless<str, str> {
  output<str, str> out;
  tag_mapper(std::string in, std::string out_topic) : stateless("tagger", in) {
    out = to<str, str>(out_topic);
  }
  void process(const std::string& k, const std::string& v, context& ctx) override {
    out.emit(ctx, k, v + ":mapped");
  }
};

config test_config(const std::string& app,
                   std::map<std::string, std::string> extra = {}) {
  extra["application.id"] = app;
  extra["bootstrap.servers"] = test::bootstrap();
  extra["state.dir"] = "/tmp/" + app;
  auto c = config::from_map(extra);
  REQUIRE(c.ok());
  return std::move(*c);
}

std::pair<std::string, std::string> keyed(size_t i) {
  return {"k" + std::to_string(i % 1000), std::to_string(i)};
}

/// Emits a 16 KiB value per record (its input value first): with
/// epoch.work.ahead.bytes=32768, two records fill what a task may hold while
/// it works ahead of its epoch's commit.
struct bulky_mapper : stateless<str, str> {
  static constexpr size_t bulk = 16 * 1024;
  output<str, str> out;
  bulky_mapper(std::vector<input_ref> ins, std::string out_topic)
    : stateless("bulky", std::move(ins)) {
    out = to<str, str>(out_topic);
  }
  void process(const std::string& k, const std::string& v, context& ctx) override {
    // 0.5 ms of work a record, so the input keeps the tasks busy across
    // epochs (without it a fast machine handled each burst between two
    // epochs and, in one CI run, never worked ahead).
    auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(500);
    while (std::chrono::steady_clock::now() < until) {
    }
    out.emit(ctx, k, v + ":" + std::string(bulk, 'x'));
  }
};

} // namespace

TEST_CASE("a stateless service maps 100,000 keyed records over 6 partitions exactly once "
          "in a clean run, keeping per-key order",
          "[broker]") {
  auto in = test::unique_name("words"), out = test::unique_name("mapped");
  test::create_topics({in, out}, 6);
  const size_t total = 100000;
  test::produce(in, total, keyed);

  node n{test_config(test::unique_name("clean"))};
  n.add<tag_mapper>(in, out);
  auto st = n.start();
  INFO(st.to_string());
  REQUIRE(st.ok());
  REQUIRE(
      test::wait_until([&] { return test::end_offsets(out) >= int64_t(total); }, 120s));
  n.request_stop();
  REQUIRE(n.wait().ok());

  auto records = test::consume_all(out, total, 60s, 1s);
  REQUIRE(records.size() == total);
  std::set<std::string> seen;
  std::map<std::string, long> last_per_key;
  for (auto& r : records) {
    REQUIRE(r.value);
    CHECK(seen.insert(*r.value).second);
    auto seq = std::stol(r.value->substr(0, r.value->find(':')));
    auto& last = last_per_key.try_emplace(*r.key, -1).first->second;
    CHECK(seq > last); // per-key order survives (records come per partition in order)
    last = seq;
  }
  CHECK(seen.size() == total);
  CHECK(n.metrics().processed == total);
  // The graceful stop committed everything: a restart would start at the end.
  auto reader =
      kafka::consumer::create({{"bootstrap.servers", test::bootstrap()},
                               {"group.id", n.cfg().get_string("application.id")}});
  REQUIRE(reader.ok());
  std::vector<topic_partition> tps;
  for (int p = 0; p < 6; ++p)
    tps.push_back({in, partition_id{p}});
  auto committed = (*reader)->committed(tps, 10000);
  REQUIRE(committed.ok());
  int64_t sum = 0;
  for (auto o : *committed)
    sum += o;
  CHECK(sum == int64_t(total));
}

TEST_CASE("exactly-once: a task working ahead of its epoch's commit pauses once it holds "
          "its bound, goes on after the commit, and every output is produced once",
          "[broker]") {
  auto in = test::unique_name("bulk-in"), out = test::unique_name("bulk-out");
  test::create_topics({in, out}, 2);
  const size_t total = 2000, bursts = 200; // 31 MiB of output, 16 KiB a record

  // Short epochs and a small bound: each commit has megabytes to flush while
  // the tasks work ahead, and two records fill what a task may hold.
  node n{
      test_config(test::unique_name("bulky"), {{"processing.guarantee", "exactly_once"},
                                               {"commit.interval.ms", "20"},
                                               {"epoch.work.ahead.bytes", "32768"}})};
  n.add<bulky_mapper>(std::vector<input_ref>{in}, out);
  auto st = n.start();
  INFO(st.to_string());
  REQUIRE(st.ok());
  // The input comes in bursts (the load's schedule), so that records arrive
  // while epochs commit, whenever the node's first epoch happens to start.
  // Small bursts every 10 ms: records keep arriving while epochs commit.
  constexpr size_t per_burst = total / bursts;
  for (size_t b = 0; b < bursts; ++b) {
    test::produce(in, per_burst, [b](size_t i) { return keyed(b * per_burst + i); });
    std::this_thread::sleep_for(10ms);
  }
  REQUIRE(test::wait_until([&] { return n.metrics().processed >= total; }, 120s));
  n.request_stop(); // the last epoch commits the rest
  REQUIRE(n.wait().ok());
  auto m = n.metrics();
  INFO("records handled ahead " << m.records_ahead << ", pauses at the bound "
                                << m.work_ahead_pauses);
  // The fault hit: the tasks worked ahead, and reached their bound.
  CHECK(m.records_ahead > 0);
  CHECK(m.work_ahead_pauses > 0);

  auto records = test::consume_all(out, total, 60s, 1s);
  CHECK(records.size() == total);
  std::set<std::string> seen;
  for (auto& r : records) {
    REQUIRE(r.value);
    CHECK(r.value->size() > bulky_mapper::bulk);
    CHECK(seen.insert(r.value->substr(0, r.value->find(':'))).second); // once each
  }
  for (size_t i = 0; i < total; ++i)
    CHECK(seen.count(keyed(i).second) == 1);
}

TEST_CASE("after a kill -9 mid-run and a restart no record is lost (at-least-once)",
          "[broker][slow]") {
  auto in = test::unique_name("words"), out = test::unique_name("mapped");
  test::create_topics({in, out}, 6);
  const size_t total = 100000;
  test::produce(in, total, keyed);
  auto app = test::unique_name("crash");
  // 30 us per record: about 3 s of work, so the kill lands mid-run.
  std::vector<std::string> args{
      "--test.service=slow",     "--test.delay.us=30",
      "--test.in=" + in,         "--test.out=" + out,
      "--application.id=" + app, "--bootstrap.servers=" + test::bootstrap(),
      "--commit.interval.ms=100"};
  auto log = "/tmp/" + app + ".log";
  {
    test::child_process first{test::built("tests/weft-test-node"), args, log};
    REQUIRE(test::wait_until([&] { return test::end_offsets(out) >= 30000; }, 120s));
    first.kill_hard();
  }
  auto before_restart = test::end_offsets(out);
  CHECK(before_restart < int64_t(total)); // the kill really interrupted the run
  test::child_process second{test::built("tests/weft-test-node"), args, log};
  REQUIRE(
      test::wait_until([&] { return test::end_offsets(out) >= int64_t(total); }, 120s));
  // Let the restarted node finish; it stops gracefully on SIGTERM.
  auto records = test::consume_all(out, total, 60s, 2s);
  CHECK(second.stop(SIGTERM, 30s) == 0);
  std::set<std::string> distinct;
  for (auto& r : records)
    distinct.insert(*r.value);
  for (size_t i = 0; i < total; ++i)
    if (!distinct.count(std::to_string(i) + ":mapped")) FAIL("lost record " << i);
  CHECK(distinct.size() == total);
  // Commits every 100 ms bound the replay to what was processed since the
  // last commit before the kill, far less than the whole input.
  CHECK(records.size() - distinct.size() < total / 2);
  WARN("killed after " << before_restart << " outputs; duplicates after restart: "
                       << records.size() - distinct.size() << " of " << total);
}

TEST_CASE("malformed records go to the dead-letter topic with the error in headers while "
          "good records keep flowing",
          "[broker]") {
  auto in = test::unique_name("json-in"), out = test::unique_name("json-out");
  test::create_topics({in, out}, 3);
  test::produce(in, 1000, [](size_t i) {
    return std::make_pair("k" + std::to_string(i),
                          i % 10 == 0 ? std::string{"not json {"} + std::to_string(i)
                                      : "{\"n\":" + std::to_string(i) + "}");
  });
  auto app = test::unique_name("dlq");
  std::vector<std::string> args{"--test.service=json",
                                "--test.in=" + in,
                                "--test.out=" + out,
                                "--application.id=" + app,
                                "--bootstrap.servers=" + test::bootstrap(),
                                "--bad.record.policy=dead_letter"};
  test::child_process node{test::built("tests/weft-test-node"), args,
                           "/tmp/" + app + ".log"};
  auto dlq = app + "-doubler-dlq";
  REQUIRE(test::wait_until([&] { return test::end_offsets(out) >= 900; }, 120s));
  auto good = test::consume_all(out, 900, 30s, 500ms);
  auto bad = test::consume_all(dlq, 100, 30s, 500ms);
  CHECK(node.stop(SIGTERM, 30s) == 0);
  CHECK(good.size() == 900);
  REQUIRE(bad.size() == 100);
  for (auto& r : bad) {
    REQUIRE(r.value);
    CHECK_THAT(*r.value, Catch::StartsWith("not json {"));
    std::map<std::string, std::string> h;
    for (auto& x : r.headers)
      h[x.key] = x.value;
    CHECK_THAT(h["weft.error"], Catch::Contains("value:"));
    CHECK(h["weft.topic"] == in);
    CHECK(h["weft.service"] == "doubler");
    CHECK_FALSE(h["weft.offset"].empty());
    CHECK_FALSE(h["weft.partition"].empty());
  }
}

TEST_CASE("a slow service with 1,000,000 pending records keeps the node under 300 MB",
          "[broker][slow]") {
  auto in = test::unique_name("pending"), out = test::unique_name("slow-out");
  test::create_topics({in, out}, 6);
  const std::string filler(90, 'x');
  test::produce(in, 1000000, [&](size_t i) {
    return std::make_pair("k" + std::to_string(i % 5000), filler + std::to_string(i));
  });
  auto app = test::unique_name("slow");
  std::vector<std::string> args{
      "--test.service=slow",     "--test.delay.us=200",
      "--test.in=" + in,         "--test.out=" + out,
      "--application.id=" + app, "--bootstrap.servers=" + test::bootstrap()};
  test::child_process node{test::built("tests/weft-test-node"), args,
                           "/tmp/" + app + ".log"};
  int64_t max_rss = 0;
  auto until = std::chrono::steady_clock::now() + 15s;
  while (std::chrono::steady_clock::now() < until && node.running()) {
    max_rss = std::max(max_rss, node.rss_bytes());
    std::this_thread::sleep_for(100ms);
  }
  REQUIRE(node.running());
  auto produced = test::end_offsets(out);
  CHECK(node.stop(SIGTERM, 60s) == 0);
  WARN("max resident memory " << max_rss / (1024 * 1024) << " MB; processed about "
                              << produced << " of 1,000,000 in 15 s");
  CHECK(produced > 1000);    // it made progress
  CHECK(produced < 1000000); // and really was behind its input
  CHECK(max_rss < 300ll * 1024 * 1024);
}

TEST_CASE("a missing input topic fails start-up naming the service and the topic",
          "[broker]") {
  auto out = test::unique_name("exists");
  test::create_topics({out}, 1);
  node n{test_config(test::unique_name("missing"))};
  auto missing = test::unique_name("no-such-topic");
  n.add<tag_mapper>(missing, out);
  auto st = n.start();
  REQUIRE_FALSE(st.ok());
  CHECK(st.code() == errc::invalid_config);
  CHECK_THAT(st.message(), Catch::Contains("service 'tagger'") &&
                               Catch::Contains("input topic '" + missing + "'"));
}
