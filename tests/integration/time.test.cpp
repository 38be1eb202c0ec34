// Time semantics on the real broker [broker]: tasks with several input
// partitions take their records in timestamp order, so joins and gates give
// the results a reference replaying the input in timestamp order predicts —
// over a backlog, in repeated runs and through kill -9 and a restart;
// max.task.idle.ms; windowed results on the partition of their plain key;
// stream time restored after a crash. Nodes are weft-time-node processes
// (time_node.cpp); references come from time_scenarios.hpp.

#include <catch2/catch.hpp>

#include <signal.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "test_cluster.hpp"
#include "time_scenarios.hpp"
#include "weft/kafka/consumer.hpp"
#include "weft/kafka/producer.hpp"
#include "weft/node.hpp"
#include "weft/serde.hpp"
#include "weft/services/aggregate.hpp"
#include "weft/services/partitioner.hpp"

using namespace weft;
using namespace std::chrono_literals;
namespace tt = weft::test::time;

namespace {

using str = string_serde;

/// Produces `records` in order, with their timestamps (one producer: each
/// partition gets them in this order).
void produce_in_order(const std::vector<tt::input>& records) {
  std::atomic<size_t> failed{0};
  auto p = kafka::producer::create({{"bootstrap.servers", test::bootstrap()},
                                    {"partitioner", "murmur2_random"},
                                    {"linger.ms", "20"},
                                    {"batch.num.messages", "10000"},
                                    {"queue.buffering.max.messages", "500000"}},
                                   [&](void*, const status& st, int64_t) {
                                     if (!st.ok()) ++failed;
                                   });
  REQUIRE(p.ok());
  for (auto& r : records) {
    std::optional<std::string_view> v;
    if (r.value) v = *r.value;
    while (true) {
      auto st = (*p)->send(r.topic, -1, std::string_view{r.key}, v, r.ts);
      if (st.ok()) break;
      REQUIRE(st.code() == errc::queue_full);
      std::this_thread::sleep_for(1ms);
    }
  }
  REQUIRE((*p)->flush(120000).ok());
  REQUIRE(failed == 0);
}

/// The outputs of `topic` per key, in partition order (read_committed).
tt::per_key read_results(const std::string& topic, size_t expected) {
  auto recs = test::consume_all(topic, expected, 120s, 1s);
  std::sort(recs.begin(), recs.end(), [](auto& a, auto& b) {
    return std::tie(a.partition, a.offset) < std::tie(b.partition, b.offset);
  });
  tt::per_key out;
  for (auto& r : recs)
    out[r.key.value_or("<null>")].push_back(r.value);
  return out;
}

/// Waits until `pred` holds, asking every half second (each question costs
/// the broker a few requests), up to `limit`.
bool poll_until(const std::function<bool()>& pred, std::chrono::seconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(500ms);
  }
  return pred();
}

/// Whether the group `app` committed every record of `topics`.
bool caught_up(const std::string& app, const std::vector<std::string>& topics) {
  auto c = kafka::consumer::create(
      {{"bootstrap.servers", test::bootstrap()}, {"group.id", app}});
  REQUIRE(c.ok());
  std::vector<topic_partition> tps;
  for (auto& t : topics) {
    auto n = (*c)->partition_count(t, 10000);
    if (!n) return false;
    for (int p = 0; p < *n; ++p)
      tps.push_back({t, partition_id{p}});
  }
  auto committed = (*c)->committed(tps, 10000);
  if (!committed) return false;
  for (size_t i = 0; i < tps.size(); ++i) {
    auto w = (*c)->watermarks(tps[i], 10000);
    if (!w) return false;
    if (w->second > 0 && (*committed)[i] < w->second) return false;
  }
  return true;
}

/// Differences between results and the reference, for the failure message
/// (the first few keys).
std::string diff(const tt::per_key& got, const tt::per_key& want) {
  std::ostringstream os;
  int shown = 0;
  auto show = [](const std::vector<std::optional<std::string>>& v) {
    std::string s;
    for (auto& x : v)
      s += (x ? *x : "<tombstone>") + " ";
    return s;
  };
  std::set<std::string> keys;
  for (auto& [k, v] : got)
    keys.insert(k);
  for (auto& [k, v] : want)
    keys.insert(k);
  size_t differing = 0;
  for (auto& k : keys) {
    auto g = got.count(k) ? got.at(k) : std::vector<std::optional<std::string>>{};
    auto w = want.count(k) ? want.at(k) : std::vector<std::optional<std::string>>{};
    if (g == w) continue;
    ++differing;
    if (shown++ < 5)
      os << "key " << k << ": got [" << show(g) << "] want [" << show(w) << "]\n";
  }
  os << differing << " of " << keys.size() << " keys differ";
  return os.str();
}

struct node_run {
  std::string app;
  std::string prefix;
  std::string services;
  std::string guarantee = "exactly_once";
  std::vector<std::string> extra; ///< more --key=value arguments
  /// Kill the node with SIGKILL once this share of the results is written,
  /// then start it again (0: never).
  double kill_at = 0;
  /// Appended to the output topics' names (run_and_check: one set per run).
  std::string out_suffix;
};

std::vector<std::string> node_args(const node_run& r) {
  std::vector<std::string> args{"--application.id=" + r.app,
                                "--bootstrap.servers=" + test::bootstrap(),
                                "--state.dir=/tmp/" + r.app + "-state",
                                "--processing.guarantee=" + r.guarantee,
                                "--time.prefix=" + r.prefix,
                                "--time.services=" + r.services,
                                "--time.out.suffix=" + r.out_suffix};
  args.insert(args.end(), r.extra.begin(), r.extra.end());
  return args;
}

/// Runs weft-time-node over the inputs of `s` (produced before) until the
/// group committed all of them, and checks every output topic against the
/// reference.
void run_and_check(const tt::scenario& s, node_run r) {
  // Outputs of their own (the inputs are shared by the runs).
  r.out_suffix = "-" + r.app;
  std::vector<std::string> inputs, outputs;
  for (auto& t : s.topics)
    if (!s.expected.count(t)) inputs.push_back(t);
  size_t total = 0;
  for (auto& [t, per] : s.expected) {
    outputs.push_back(t + r.out_suffix);
    total += s.expected_count(t);
  }
  test::create_topics(outputs, tt::partitions);
  test::removed_at_exit state{{"/tmp/" + r.app + "-state"}};
  auto log = "/tmp/" + r.app + ".log";
  INFO("node log: " << log);
  auto args = node_args(r);
  auto bin = test::built("tests/weft-time-node");
  {
    test::child_process node{bin, args, log};
    if (r.kill_at > 0) {
      // Mid-way: results written (committed or not) pass the share.
      auto probe = kafka::consumer::create(
          {{"bootstrap.servers", test::bootstrap()}, {"group.id", r.app + "-probe"}});
      REQUIRE(probe.ok());
      auto written = [&] {
        int64_t n = 0;
        for (auto& t : outputs)
          for (int i = 0; i < tt::partitions; ++i) {
            auto w = (*probe)->watermarks({t, partition_id{i}}, 5000);
            if (!w) return int64_t{-1}; // a busy broker: ask again
            n += w->second;
          }
        return n;
      };
      REQUIRE(test::wait_until(
          [&] {
            return !node.running() ||
                   written() >= static_cast<int64_t>(r.kill_at * total);
          },
          600s));
      REQUIRE(node.running());
      node.kill_hard();
      test::child_process again{bin, args, log};
      REQUIRE(
          poll_until([&] { return !again.running() || caught_up(r.app, inputs); }, 600s));
      REQUIRE(again.running());
      CHECK(again.stop(SIGTERM, 60s) == 0);
    } else {
      REQUIRE(
          poll_until([&] { return !node.running() || caught_up(r.app, inputs); }, 600s));
      REQUIRE(node.running());
      CHECK(node.stop(SIGTERM, 60s) == 0);
    }
  }
  for (auto& [t, want] : s.expected) {
    auto got = read_results(t + r.out_suffix, s.expected_count(t));
    INFO("output " << t + r.out_suffix);
    INFO(diff(got, want));
    CHECK(got == want);
  }
}

/// The input topics of `s` (run_and_check makes the outputs of each run).
void create_scenario_topics(const tt::scenario& s) {
  std::vector<std::string> inputs;
  for (auto& t : s.topics)
    if (!s.expected.count(t)) inputs.push_back(t);
  test::create_topics(inputs, tt::partitions);
}

size_t count_lines(const std::string& file, const std::string& needle) {
  std::ifstream in{file};
  size_t n = 0;
  for (std::string line; std::getline(in, line);)
    if (line.find(needle) != std::string::npos) ++n;
  return n;
}

} // namespace

TEST_CASE("a stream-table join over a backlog joins every order with its customer as "
          "of the order's time",
          "[broker]") {
  // The case at a small scale: customers written first, then orders
  // keyed by customer id, then the application starts. Taking batches in
  // the order they came (before issue 18), the orders of 8,507 of these
  // 18,987 customers joined nothing: each partition's
  // customers span several credit windows, with orders' batches between.
  auto p = test::unique_name("st");
  auto s = tt::stream_table(p, 30000, 30000, tt::layout::preloaded, 1);
  create_scenario_topics(s);
  produce_in_order(s.records);
  REQUIRE(s.expected_count(p + "-joined") == 30000);
  run_and_check(s, {test::unique_name("st-app"), p, "join", "at_least_once"});
}

TEST_CASE("max.task.idle.ms: a task waits that long for an input at its end before it "
          "processes ahead of it, and counts it",
          "[broker]") {
  auto idle = GENERATE(as<int64_t>{}, 6000, 0, -1);
  auto p = test::unique_name("idle");
  test::create_topics({p + "-customers", p + "-orders", p + "-joined"}, 1);
  auto app = test::unique_name("idle-app");
  node_run r{app,
             p,
             "join",
             "at_least_once",
             {"--max.task.idle.ms=" + std::to_string(idle), "--log.level=debug"}};
  auto log = "/tmp/" + app + ".log";
  INFO("max.task.idle.ms=" << idle << ", node log: " << log);
  test::removed_at_exit state{{"/tmp/" + app + "-state"}};
  test::child_process node{test::built("tests/weft-time-node"), node_args(r), log};
  using clock = std::chrono::steady_clock;
  auto produce_and_wait = [&](const std::string& topic, tt::input in) {
    produce_in_order({in});
    auto from = clock::now();
    REQUIRE(test::wait_until([&] { return caught_up(app, {topic}); }, 60s));
    return std::chrono::duration<double>(clock::now() - from).count();
  };
  // The customer waits for the (empty, at its end) orders input, then the
  // order for the customers input, now at its end too.
  auto customer_s =
      produce_and_wait(p + "-customers", {p + "-customers", 0, "c1", "c1v0", tt::t0 + 1});
  auto order_s =
      produce_and_wait(p + "-orders", {p + "-orders", 1, "c1", "o1", tt::t0 + 2});
  auto out = test::consume_all(p + "-joined", 1, 30s, 500ms);
  REQUIRE(out.size() == 1);
  CHECK(*out[0].value == "o1|c1v0");
  CHECK(node.stop(SIGTERM, 30s) == 0);
  auto counted = count_lines(log, "processing ahead of");
  if (idle > 0) {
    // Waits start when an input is first seen empty: the order came a moment
    // after the customers input emptied, so it waited most of the 6 s.
    CHECK(customer_s > 4.0);
    CHECK(order_s > 4.0);
    CHECK(counted == 2);
  } else {
    CHECK(customer_s < 4.0);
    CHECK(order_s < 4.0);
    CHECK(counted == (idle == 0 ? 2u : 0u)); // -1: no waiting, nothing counted
  }
}

TEST_CASE("windowed results go to the partition of their plain key, as Kafka Streams' "
          "WindowedStreamPartitioner puts them",
          "[broker]") {
  auto clicks = test::unique_name("clicks"), tw = test::unique_name("tw"),
       sw = test::unique_name("sw");
  test::create_topics({clicks, tw, sw}, tt::partitions);
  auto app = test::unique_name("windowed-partitions");
  auto cfg = config::from_map({{"application.id", app},
                               {"bootstrap.servers", test::bootstrap()},
                               {"state.dir", "/tmp/" + app}});
  REQUIRE(cfg.ok());
  node n{*cfg};
  n.add(count<str, str>("tw-count", clicks, tw, tumbling_window{1000, 0}));
  n.add(count<str, str>("sw-count", clicks, sw, session_window_spec{500, 0}));
  REQUIRE(n.start().ok());
  std::vector<tt::input> in;
  for (int i = 0; i < 600; ++i)
    in.push_back({clicks, 0, "user-" + std::to_string(i % 60), "x", tt::t0 + i * 10});
  produce_in_order(in);
  for (auto& [topic, suffix] : {std::pair{tw, 8}, std::pair{sw, 16}}) {
    auto out = test::consume_all(topic, in.size(), 60s, 1s);
    INFO("topic " << topic);
    REQUIRE(out.size() >= in.size()); // one result per update (sessions: more)
    size_t whole_key_elsewhere = 0;
    for (auto& r : out) {
      REQUIRE(r.key);
      REQUIRE(r.key->size() > static_cast<size_t>(suffix));
      auto plain = r.key->substr(0, r.key->size() - static_cast<size_t>(suffix));
      CHECK(r.partition == partition_for(plain, tt::partitions));
      if (partition_for(*r.key, tt::partitions) != r.partition) ++whole_key_elsewhere;
    }
    // Hashing the whole windowed key would have put most elsewhere.
    CHECK(whole_key_elsewhere > out.size() / 2);
  }
  n.request_stop();
  CHECK(n.wait().ok());
}

TEST_CASE("stream time survives kill -9 and a failover: after it a late record is "
          "still late and stream-time timeouts keep their deadlines",
          "[broker]") {
  // 0, 1: kill -9 and a restart of the one node; 2: a second node joins,
  // the first is killed, the second goes on with both units (one moved to
  // it while both ran, one failed over).
  auto mode = GENERATE(0, 1, 2);
  const std::string guarantee = mode == 1 ? "at_least_once" : "exactly_once";
  auto p = test::unique_name("survive");
  const std::string clicks = p + "-clicks", win = p + "-win-out", a = p + "-gate-a",
                    b = p + "-gate-b", gated = p + "-gate-out";
  test::create_topics({clicks, win, a, b, gated}, 1);
  auto app = test::unique_name("survive-app");
  node_run r{app,
             p,
             "window,gate",
             guarantee,
             {"--time.window.ms=1000", "--time.window.grace.ms=500",
              "--time.gate.timeout.ms=1000"}};
  auto args = [&](const std::string& id) {
    auto v = node_args(r);
    if (mode == 2) {
      v.push_back("--cluster.enabled=true");
      v.push_back("--node.id=" + id);
      v.push_back("--state.dir=/tmp/" + app + "-" + id);
    }
    return v;
  };
  auto log1 = "/tmp/" + app + "-n1.log", log2 = "/tmp/" + app + "-n2.log";
  INFO(guarantee << (mode == 2 ? " failover" : " restart") << ", node logs: " << log1
                 << " " << log2);
  test::removed_at_exit state{
      {"/tmp/" + app + "-state", "/tmp/" + app + "-n1", "/tmp/" + app + "-n2"}};
  auto bin = test::built("tests/weft-time-node");
  const auto T = tt::t0;
  std::unique_ptr<test::child_process> last;
  {
    test::child_process first{bin, args("n1"), log1};
    // The count's stream time reaches T+1600: window [T, T+1000) (two
    // clicks) closes at T+1500 and is written; the gate's reaches T+5000:
    // g1 (deadline T+1100) times out, g2 opens with deadline T+6000.
    produce_in_order({{clicks, 0, "w", "x", T + 100},
                      {clicks, 0, "w", "x", T + 200},
                      {a, 0, "g1", "a1", T + 100},
                      {clicks, 0, "w", "x", T + 1600},
                      {a, 0, "g2", "a2", T + 5000}});
    REQUIRE(test::consume_all(win, 1, 60s).size() == 1);
    REQUIRE(test::consume_all(gated, 1, 60s).size() == 1);
    // Everything handled is committed with the state (and its stream time).
    REQUIRE(test::wait_until([&] { return caught_up(app, {clicks, a}); }, 60s));
    if (mode == 2) {
      last = std::make_unique<test::child_process>(bin, args("n2"), log2);
      // The leader (n1) made n2 a member: then n1 dies.
      REQUIRE(
          poll_until([&] { return count_lines(log1, "for members [n1, n2]") > 0; }, 60s));
    }
    REQUIRE(first.running());
    first.kill_hard();
  }
  if (!last) last = std::make_unique<test::child_process>(bin, args("n1"), log1);
  // Restored at T+1600, the click at T+300 is late for the closed window
  // (the window store still keeps windows that young: only the grace period
  // decides). Restored at T+5000, g3 opens at stream time (deadline T+6000,
  // not T+1200), so neither it nor g2 times out at T+5500 and both
  // complete. Forgotten stream time would re-open window T with one click
  // and time g3 out.
  produce_in_order({{clicks, 0, "w", "x", T + 300},
                    {a, 0, "g3", "a3", T + 200},
                    {b, 1, "g2", "b2", T + 5500},
                    {b, 1, "g3", "b3", T + 5600},
                    {clicks, 0, "w", "x", T + 3000}});
  REQUIRE(poll_until([&] { return caught_up(app, {clicks, a, b}); }, 120s));
  CHECK(last->stop(SIGTERM, 30s) == 0);
  auto windows = test::consume_all(win, 2, 30s, 2s);
  std::map<int64_t, std::vector<int64_t>> per_start;
  for (auto& w : windows) {
    REQUIRE(w.key->size() == 1 + 8);
    per_start[*int64_serde::deserialize(w.key->substr(1)) - T].push_back(
        *int64_serde::deserialize(*w.value));
  }
  std::string seen;
  for (auto& [start, counts] : per_start)
    for (auto c : counts)
      seen += std::to_string(start) + ":" + std::to_string(c) + " ";
  INFO("windows written (start:count): " << seen);
  CHECK(per_start == std::map<int64_t, std::vector<int64_t>>{{0, {2}}, {1000, {1}}});
  auto gate_out = read_results(gated, 3);
  CHECK(gate_out == tt::per_key{{"g1", {"timeout:a1+-"}},
                                {"g2", {"ready:a2+b2"}},
                                {"g3", {"ready:a3+b3"}}});
}

TEST_CASE("the issue's stream-table join: 100,000 customers, then 1,000,000 orders, "
          "joined in full in each run and through kill -9 and a restart",
          "[broker][slow]") {
  auto p = test::unique_name("issue");
  auto s = tt::stream_table(p, 100000, 1000000, tt::layout::preloaded, 18);
  create_scenario_topics(s);
  produce_in_order(s.records);
  REQUIRE(s.expected_count(p + "-joined") == 1000000);
  run_and_check(s, {test::unique_name("issue-a"), p, "join"});
  run_and_check(s, {test::unique_name("issue-b"), p, "join", "at_least_once"});
  run_and_check(s, {test::unique_name("issue-c"), p, "join", "exactly_once", {}, 0.4});
}

TEST_CASE("a stream-table join, a table-table join, a windowed stream-stream join and a "
          "gate over 1,000,000 records give the reference's results in repeated runs and "
          "through kill -9 and a restart",
          "[broker][slow]") {
  auto l = GENERATE(tt::layout::preloaded, tt::layout::interleaved);
  auto p = test::unique_name(l == tt::layout::preloaded ? "four-pre" : "four-mix");
  const unsigned seed = l == tt::layout::preloaded ? 7 : 11;
  auto s = tt::stream_table(p, 50000, 300000, l, seed);
  s.merge(tt::table_table(p, 50000, 250000, l, seed));
  s.merge(tt::stream_stream(p, 20000, 250000, 1000, l, seed));
  s.merge(tt::gate(p, 100000, 1000, l, seed));
  INFO(s.records.size() << " records");
  REQUIRE(s.records.size() >= 1000000);
  create_scenario_topics(s);
  produce_in_order(s.records);
  const std::string all = "join,table-join,stream-join,gate";
  run_and_check(s, {test::unique_name(p + "-a"), p, all});
  run_and_check(s, {test::unique_name(p + "-b"), p, all});
  run_and_check(s, {test::unique_name(p + "-c"), p, all, "exactly_once", {}, 0.4});
}
