// Durable per-key timers on the real broker [broker]: weft-timer-node
// processes (timer_node.cpp) set a timer per key from P-requests and write
// every firing to P-fired with the clock's time when it fired. A
// read_committed consumer is the independent reference: every key the test
// scheduled must fire exactly once (at_least_once: at least once), none
// before its time, none that was cancelled — through kill -9 of the owner
// and a failover to its standby, and through a full restart.

#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <signal.h>

#include "test_cluster.hpp"
#include "weft/kafka/consumer.hpp"

using namespace weft;
using namespace std::chrono_literals;

namespace {

constexpr int partitions = 4;
/// Record timestamps of the requests: event-time timers are set after it.
constexpr int64_t e0 = 1'000'000'000'000;

int64_t wall_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

size_t count_lines(const std::string& file, const std::string& needle) {
  std::ifstream in{file};
  size_t n = 0;
  for (std::string line; std::getline(in, line);)
    if (line.find(needle) != std::string::npos) ++n;
  return n;
}

/// Whether group `app` committed every record of `topic`.
bool caught_up(const std::string& app, const std::string& topic) {
  auto c = kafka::consumer::create(
      {{"bootstrap.servers", test::bootstrap()}, {"group.id", app}});
  REQUIRE(c.ok());
  std::vector<topic_partition> tps;
  for (int p = 0; p < partitions; ++p)
    tps.push_back({topic, partition_id{p}});
  auto committed = (*c)->committed(tps, 10000);
  if (!committed) return false;
  for (size_t i = 0; i < tps.size(); ++i) {
    auto w = (*c)->watermarks(tps[i], 10000);
    if (!w) return false;
    if (w->second > 0 && (*committed)[i] < w->second) return false;
  }
  return true;
}

/// Waits for `pred`, asking every half second (each question costs the broker
/// a few requests), up to `limit`.
bool poll_until(const std::function<bool()>& pred, std::chrono::seconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(500ms);
  }
  return pred();
}

/// One "tick" per partition at timestamp `ts`: moves every task's stream
/// time there.
void tick_all(const std::string& topic, int64_t ts) {
  auto p = kafka::producer::create({{"bootstrap.servers", test::bootstrap()}});
  REQUIRE(p.ok());
  for (int part = 0; part < partitions; ++part)
    REQUIRE((*p)->send(topic, part, std::string_view{"tick"},
                       std::optional<std::string_view>{"tick"}, ts)
                .ok());
  REQUIRE((*p)->flush(30000).ok());
}

/// The requests: key "k<i>" and its timer's clock and time.
struct request {
  std::string key;
  char clock; // 'e' or 'w'; 'c' cancels
  int64_t time;
};

/// Writes the requests in order, by key with murmur2 (as weft's outputs and
/// Kafka's Java clients), so each key's requests reach one task in order.
void produce_requests(const std::string& topic, const std::vector<request>& rs) {
  auto p = kafka::producer::create({{"bootstrap.servers", test::bootstrap()},
                                    {"partitioner", "murmur2_random"},
                                    {"linger.ms", "20"},
                                    {"batch.num.messages", "10000"},
                                    {"queue.buffering.max.messages", "500000"}});
  REQUIRE(p.ok());
  for (auto& r : rs) {
    auto v = r.clock == 'c' ? std::string{"cancel"}
                            : std::string{r.clock} + ":" + std::to_string(r.time);
    while (true) {
      auto st = (*p)->send(topic, -1, std::string_view{r.key},
                           std::optional<std::string_view>{v}, e0);
      if (st.ok()) break;
      REQUIRE(st.code() == errc::queue_full);
      std::this_thread::sleep_for(1ms);
    }
  }
  REQUIRE((*p)->flush(120000).ok());
}

/// Checks the firings read from `fired` (read_committed) against the
/// requests: each key once (or, `at_least_once`, at least once), on its
/// clock, at its time, never before it; none of a key not asked for.
void check_fired(const std::string& fired, const std::vector<request>& rs,
                 bool at_least_once) {
  auto recs = test::consume_all(fired, rs.size(), 180s, 3s);
  std::map<std::string, std::vector<std::string>> got;
  for (auto& r : recs)
    got[r.key.value_or("<null>")].push_back(r.value.value_or("<null>"));
  size_t missing = 0, twice = 0, early = 0, wrong = 0;
  std::string example;
  auto note = [&](const std::string& what) {
    if (example.size() < 400) example += what + "; ";
  };
  for (auto& r : rs) {
    auto i = got.find(r.key);
    if (i == got.end()) {
      ++missing;
      note(r.key + " never fired");
      continue;
    }
    if (i->second.size() > 1 && !at_least_once) {
      ++twice;
      note(r.key + " fired " + std::to_string(i->second.size()) + " times");
    }
    for (auto& v : i->second) {
      // "<clock>:<time>:<clock's time when fired>"
      auto a = v.find(':'), b = v.rfind(':');
      if (a != 1 || b <= a || v[0] != r.clock ||
          std::stoll(v.substr(2, b - 2)) != r.time) {
        ++wrong;
        note(r.key + " fired as " + v);
        continue;
      }
      if (std::stoll(v.substr(b + 1)) < r.time) {
        ++early;
        note(r.key + " fired early: " + v);
      }
    }
    got.erase(i);
  }
  for (auto& [k, v] : got)
    note("a firing of " + k + ", never asked for (or cancelled): " + v.front());
  INFO(recs.size() << " firings read; " << example);
  CHECK(missing == 0);
  CHECK(twice == 0);
  CHECK(early == 0);
  CHECK(wrong == 0);
  CHECK(got.empty()); // no firing of a key never asked for (or cancelled)
}

std::vector<std::string> node_args(const std::string& app, const std::string& prefix,
                                   const std::string& state_dir,
                                   const std::string& guarantee) {
  return {"--application.id=" + app,   "--bootstrap.servers=" + test::bootstrap(),
          "--state.dir=" + state_dir,  "--processing.guarantee=" + guarantee,
          "--timers.prefix=" + prefix, "--commit.interval.ms=100"};
}

} // namespace

TEST_CASE("100,000 pending timers through kill -9 of their owner and a failover to its "
          "standby: every timer fires exactly once, none early",
          "[broker][slow][timers]") {
  auto p = test::unique_name("timers-fo");
  const auto requests = p + "-requests", fired = p + "-fired";
  test::create_topics({requests, fired}, partitions);
  auto app = test::unique_name("timers-fo-app");
  auto bin = test::built("tests/weft-timer-node");
  auto args = [&](const std::string& id) {
    auto v = node_args(app, p, "/tmp/" + app + "-" + id, "exactly_once");
    v.push_back("--cluster.enabled=true");
    v.push_back("--node.id=" + id);
    return v;
  };
  const auto log1 = "/tmp/" + app + "-n1.log", log2 = "/tmp/" + app + "-n2.log";
  INFO("node logs: " << log1 << " " << log2);
  test::child_process n1{bin, args("n1"), log1};
  n1.note_end_in_log();
  test::child_process n2{bin, args("n2"), log2};
  n2.note_end_in_log();
  // Both members: each owns units, and keeps the standby of the other's.
  REQUIRE(poll_until([&] { return count_lines(log1, "for members [n1, n2]") > 0; }, 90s));

  // 70,000 wall-clock timers spread over 20 s from 25 s on (after the
  // requests are in), 30,000 event-time ones after the requests' time.
  const auto t0 = wall_now() + 25'000;
  std::vector<request> rs;
  for (int i = 0; i < 100'000; ++i) {
    if (i % 10 < 7)
      rs.push_back({"k" + std::to_string(i), 'w', t0 + i / 5});
    else
      rs.push_back({"k" + std::to_string(i), 'e', e0 + 1 + i});
  }
  produce_requests(requests, rs);
  REQUIRE(poll_until([&] { return caught_up(app, requests); }, 120s));
  // Half the event-time timers come due (i < 50,000).
  tick_all(requests, e0 + 50'000);
  // Kill n1 once firing is under way: part of the timers fired, most of the
  // wall-clock ones not yet.
  REQUIRE(poll_until([&] { return !n1.running() || test::end_offsets(fired) >= 25'000; },
                     120s));
  REQUIRE(n1.running());
  const auto at_kill = test::end_offsets(fired);
  n1.kill_hard();
  INFO("records in " << fired << " at the kill: " << at_kill);
  REQUIRE(at_kill < 90'000); // the kill hit while timers were pending
  // n2 takes n1's units over from its standbys; then every event-time timer
  // comes due.
  tick_all(requests, e0 + 200'000);
  check_fired(fired, rs, false);
  CHECK(n2.running());
  CHECK(n2.stop(SIGTERM, 60s) == 0);
  std::filesystem::remove_all("/tmp/" + app + "-n1");
  std::filesystem::remove_all("/tmp/" + app + "-n2");
}

TEST_CASE("timers survive a full restart: killed with -9 while firing, the node fires "
          "the rest after it starts again",
          "[broker][timers]") {
  auto guarantee = GENERATE(std::string{"exactly_once"}, std::string{"at_least_once"});
  auto p = test::unique_name("timers-rs");
  const auto requests = p + "-requests", fired = p + "-fired";
  test::create_topics({requests, fired}, partitions);
  auto app = test::unique_name("timers-rs-app");
  auto bin = test::built("tests/weft-timer-node");
  const auto state_dir = "/tmp/" + app + "-state";
  auto args = node_args(app, p, state_dir, guarantee);
  const auto log = "/tmp/" + app + ".log";
  INFO(guarantee << ", node log: " << log);
  std::vector<request> rs;
  std::vector<request> cancelled;
  const auto t0 = wall_now() + 20'000;
  for (int i = 0; i < 10'000; ++i) {
    if (i % 2)
      rs.push_back({"k" + std::to_string(i), 'w', t0 + i});
    else
      rs.push_back({"k" + std::to_string(i), 'e', e0 + 1 + i});
  }
  {
    test::child_process node{bin, args, log};
    node.note_end_in_log();
    produce_requests(requests, rs);
    // Every 10th key is cancelled, every 7th replaced by a later time.
    std::vector<request> changes;
    for (size_t i = 0; i < rs.size(); ++i) {
      if (i % 10 == 3) {
        cancelled.push_back(rs[i]);
      } else if (i % 7 == 0) {
        rs[i].time += 500;
        changes.push_back(rs[i]);
      }
    }
    for (auto r : cancelled) {
      r.clock = 'c';
      changes.push_back(r);
    }
    produce_requests(requests, changes);
    REQUIRE(poll_until([&] { return caught_up(app, requests); }, 120s));
    tick_all(requests, e0 + 3'000);
    REQUIRE(poll_until(
        [&] { return !node.running() || test::end_offsets(fired) >= 2'000; }, 120s));
    REQUIRE(node.running());
    node.kill_hard();
  }
  const auto at_kill = test::end_offsets(fired);
  INFO("records in " << fired << " at the kill: " << at_kill);
  REQUIRE(at_kill < 8'000);
  std::vector<request> live;
  for (size_t i = 0; i < rs.size(); ++i)
    if (i % 10 != 3) live.push_back(rs[i]);
  test::child_process again{bin, args, log};
  again.note_end_in_log();
  tick_all(requests, e0 + 100'000);
  check_fired(fired, live, guarantee == "at_least_once");
  CHECK(again.stop(SIGTERM, 60s) == 0);
  std::filesystem::remove_all(state_dir);
}
