// The nemesis suite [broker][chaos]: three weft node processes under steady
// load while the nemesis (nemesis.hpp) kills, restarts and freezes them —
// the leader in at least a third of the faults — and restarts the broker.
// After the storm every test checks
//   safety:       the read_committed outputs hold every input exactly once,
//                 and the final state of every key, read through every node,
//                 equals an independent reference (all nodes agree exactly);
//   liveness:     the cluster settles (one leader, every unit running on
//                 exactly its owner) within WEFT_CHAOS_SETTLE_MS of the last
//                 fault, and no node died on its own;
//   availability: the longest gap in committed output per partition, the
//                 faults that interrupted work in flight.
// It prints one summary table ending in "N passed, N failed"; the fault log
// (one JSON line per fault, with the seed) goes to WEFT_CHAOS_LOG_DIR.
//
// CI runs the short storm (60 s, a fault every 5 s). bench/chaos.sh runs the
// long ones (WEFT_CHAOS_SECONDS=120, 20 runs) and tabulates them.

#include <catch2/catch.hpp>

#include <httplib.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <iostream>
#include <thread>

#include "../integration/pipeline.hpp"
#include "nemesis.hpp"
#include "weft/kafka/admin.hpp"
#include "weft/kafka/producer.hpp"

using namespace weft;
using namespace weft::test;
using namespace weft::test::pipeline;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// The pipeline's topics; its outputs stamped by the broker (LogAppendTime),
/// so gaps in committed output can be measured.
pipeline_topics chaos_topics(const std::string& name, int parts) {
  pipeline_topics t{unique_name(name + "-in"), unique_name(name)};
  std::vector<kafka::new_topic> ts{{t.in, parts, 1, {}}};
  for (auto& out : {t.a(), t.b(), t.counts(), t.gated()})
    ts.push_back({out, parts, 1, {{"message.timestamp.type", "LogAppendTime"}}});
  auto st = admin()->ensure_topics(ts, 30000);
  INFO(st.to_string());
  REQUIRE(st.ok());
  return t;
}

/// Longest gap (ms) between two committed records of one partition of
/// `records`, counted within [from, to].
int64_t longest_gap(const std::vector<owned_record>& records, int64_t from, int64_t to) {
  std::map<int32_t, std::vector<int64_t>> times;
  for (auto& r : records)
    if (r.timestamp >= from && r.timestamp <= to) times[r.partition].push_back(r.timestamp);
  int64_t worst = 0;
  for (auto& [p, ts] : times) {
    std::sort(ts.begin(), ts.end());
    for (size_t i = 1; i < ts.size(); ++i)
      worst = std::max(worst, ts[i] - ts[i - 1]);
  }
  return worst;
}

std::string fmt_ms(int64_t ms) {
  return std::to_string(ms) + " ms";
}

} // namespace

TEST_CASE("chaos: the counter pipeline on three nodes rides out a fault storm with every "
          "result committed once and the cluster settled after it",
          "[broker][chaos][slow]") {
  auto o = chaos::options::from_env();
  const int parts = 6;
  const size_t keys = 5000;
  const size_t rate = 2000; // events per second
  const size_t total = rate * static_cast<size_t>(o.storm_ms / 1000 + 10);
  auto t = chaos_topics("chaos", parts);
  const auto app = unique_name("chaos");
  const int base = 23000 + static_cast<int>(::getpid() % 400) * 5;
  chaos::cluster c{
      app, built("tests/weft-test-node"),
      {"--test.service=pipeline", "--test.in=" + t.in, "--test.out=" + t.out,
       "--application.id=" + app, "--bootstrap.servers=" + bootstrap(),
       "--processing.guarantee=exactly_once", "--cluster.enabled=true",
       "--cluster.timeout.ms=1000", "--cluster.heartbeat.ms=250"},
      [&](const std::string& id, int port) {
        return std::vector<std::string>{"--node.id=" + id,
                                        "--state.dir=/tmp/" + app + "-" + id,
                                        "--http.port=" + std::to_string(port)};
      },
      3, base};
  struct cleanup {
    chaos::cluster& c;
    std::string app;
    ~cleanup() {
      for (auto& [id, n] : c.nodes())
        std::filesystem::remove_all("/tmp/" + app + "-" + id);
    }
  } wipe{c, app};
  for (auto& [id, n] : c.nodes())
    c.start(id);
  std::string why;
  auto first = c.wait_settled(90s, &why);
  INFO("the cluster did not settle at start: " << why << "\n" << c.log_tails());
  REQUIRE(first);

  // Steady input, every 20 ms, for the storm and ten seconds past it; one
  // producer that rides out broker restarts (it retries for 5 minutes).
  std::atomic<size_t> sent{0};
  std::atomic<bool> feeding{true};
  std::atomic<size_t> failed_sends{0};
  std::thread feeder{[&] {
    auto p = kafka::producer::create(
        {{"bootstrap.servers", bootstrap()},
         {"partitioner", "murmur2_random"},
         {"linger.ms", "5"},
         {"message.timeout.ms", "300000"}},
        [&](void*, const status& st, int64_t) {
          if (!st.ok()) ++failed_sends;
        });
    if (!p) {
      failed_sends = total;
      feeding = false;
      return;
    }
    const size_t chunk = rate / 50;
    auto tick = std::chrono::steady_clock::now();
    for (size_t from = 0; from < total; from += chunk) {
      auto n = std::min(chunk, total - from);
      for (size_t i = 0; i < n; ++i) {
        auto [k, v] = event(from + i, keys);
        while (!(*p)->send(t.in, -1, k, v).ok())
          std::this_thread::sleep_for(1ms); // queue full (broker away): wait
      }
      sent = from + n;
      tick += 20ms;
      std::this_thread::sleep_until(tick);
    }
    if (!(*p)->flush(300000).ok()) ++failed_sends;
    feeding = false;
  }};
  struct join_guard {
    std::thread& th;
    ~join_guard() {
      if (th.joinable()) th.join();
    }
  } guard{feeder};

  // At each fault: was input flowing, and was the victim in the middle of
  // work (its processed count moving)?
  auto note = [&](chaos::fault& f) {
    f.detail["input_flowing"] = feeding.load() && sent.load() < total;
    f.detail["sent"] = sent.load();
    if (f.target.empty()) return;
    // Whether the victim holds units (a node that just restarted may not).
    if (auto v = c.get(f.target, "/cluster", 1))
      for (auto& m : (*v)["members"])
        if (m["id"] == f.target && m.contains("holding"))
          f.detail["held_units"] = m["holding"].size();
    auto m1 = c.get(f.target, "/metrics", 1);
    std::this_thread::sleep_for(400ms);
    auto m2 = c.get(f.target, "/metrics", 1);
    if (m1 && m2) {
      f.detail["processed_moving"] = (*m2)["processed"] != (*m1)["processed"];
      f.detail["epochs"] = (*m2)["epochs_committed"];
    }
  };
  const auto fault_log = o.log_dir + "/" + app + "-faults.jsonl";
  chaos::nemesis nemesis{c, o, fault_log, note};
  const auto storm_from = now_ms();
  const auto storm_start = std::chrono::steady_clock::now();
  auto faults = nemesis.run();
  const auto storm_to = now_ms();
  // Settle time counts from the end of the last fault.
  auto last_fault = storm_start;
  for (auto& f : faults)
    last_fault = std::max(last_fault, storm_start + std::chrono::milliseconds(
                                                        f.at_ms + std::max<int64_t>(
                                                                      f.duration_ms, 0)));

  chaos::summary sum;
  sum.row("workload", "counter pipeline, 3 nodes, " + std::to_string(parts) +
                          " partitions, " + std::to_string(rate) + " events/s");
  sum.row("seed / fault log", std::to_string(nemesis.seed()) + " / " + fault_log);
  int kills = 0, leader = 0, flowing = 0, moving = 0, kills_with_work = 0;
  std::map<std::string, int> kinds;
  for (auto& f : faults) {
    ++kinds[f.kind];
    leader += f.was_leader;
    flowing += f.detail.value("input_flowing", false);
    if (f.kind.find("kill") != std::string::npos) {
      ++kills;
      // Work in flight: the victim ran or was starting units (a restore), or
      // it led the cluster (a publish or fence may be cut short).
      kills_with_work += f.detail.value("held_units", 0) > 0 || f.was_leader;
      moving += f.detail.value("processed_moving", false);
    }
  }
  std::string kind_list;
  for (auto& [k, n] : kinds)
    kind_list += (kind_list.empty() ? "" : ", ") + k + " " + std::to_string(n);
  sum.row("faults", std::to_string(faults.size()) + " (" + kind_list + "), " +
                        std::to_string(leader) + " on the leader");

  // Liveness: settled within the bound after the last fault.
  auto settle = c.wait_settled(std::chrono::milliseconds(o.settle_bound_ms), &why);
  auto settled_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - last_fault)
                        .count();
  sum.check("settled after the last fault", settle.has_value(),
            settle ? fmt_ms(settled_ms) : "not within " + fmt_ms(o.settle_bound_ms) +
                                              ": " + why);
  int crashed = 0;
  for (auto& [id, n] : c.nodes())
    crashed += !n.running();
  sum.check("no node died on its own", crashed == 0, std::to_string(crashed) + " died");
  sum.check("the leader was hit in a third of the node faults",
            leader * 3 >= static_cast<int>(faults.size()) - kinds["broker"],
            std::to_string(leader) + " of " +
                std::to_string(faults.size() - static_cast<size_t>(kinds["broker"])));
  sum.check("input was flowing at every fault", flowing == static_cast<int>(faults.size()),
            std::to_string(flowing) + " of " + std::to_string(faults.size()));
  sum.check("every kill interrupted work (tasks running or starting, or the leader)",
            kills_with_work == kills && kills > 0,
            std::to_string(kills_with_work) + " of " + std::to_string(kills) + "; " +
                std::to_string(moving) + " cut records in flight");

  // Safety: every result committed once; the final state of every key equal
  // through every node.
  feeder.join();
  sum.check("every input record was written", failed_sends == 0,
            std::to_string(failed_sends.load()) + " failed");
  auto ref = expected(total, keys);
  size_t total_counts = total;
  bool all_committed = wait_until(
      [&] { return consume_all(t.counts(), total_counts, 5s).size() >= total_counts; },
      180s);
  sum.check("every count committed", all_committed);
  std::map<std::string, std::string> disagreements;
  size_t checked = 0;
  if (settle)
    for (auto& [key, want] : ref.counts)
      for (auto& id : c.live()) {
        std::string got;
        bool answered = wait_until(
            [&] {
              httplib::Client h{"127.0.0.1", c.nodes().at(id).http_port};
              h.set_connection_timeout(1);
              h.set_read_timeout(5);
              auto res = h.Get(("/state/counts/" + key).c_str());
              if (!res || res->status == 503) return false;
              got = res->status == 200
                        ? std::to_string(*int64_serde::deserialize(res->body))
                        : std::to_string(res->status) + " " + res->body;
              return true;
            },
            10s);
        ++checked;
        if (!answered || got != std::to_string(want))
          disagreements[key + " via " + id] =
              (answered ? got : "no answer") + " (want " + std::to_string(want) + ")";
      }
  std::string first_bad =
      disagreements.empty() ? "" : disagreements.begin()->first + ": " +
                                       disagreements.begin()->second;
  sum.check("the final state of every key, through every node, equals the reference",
            settle && disagreements.empty() && checked == ref.counts.size() * 3,
            std::to_string(checked) + " answers, " + std::to_string(disagreements.size()) +
                " wrong" + (first_bad.empty() ? "" : "; first: " + first_bad));
  auto aborted = aborted_records(t, total + total_counts + ref.gated.size());
  sum.row("records in aborted epochs (upper bound)", std::to_string(aborted));
  auto counts = consume_all(t.counts(), total_counts, 60s, 2s);
  sum.row("longest gap in committed output, any partition, during the storm",
          fmt_ms(longest_gap(counts, storm_from, storm_to)));
  if (settle) sum.row("settle time after the last fault", fmt_ms(settled_ms));

  for (auto& [id, n] : c.nodes())
    if (n.running()) CHECK(n.proc->stop(SIGTERM, 60s) == 0);
  INFO("input records missing from the outputs:" << [&] {
    auto in = consume_all(t.in, total, 30s, 1s);
    std::set<std::string> seen;
    for (auto& topic : {t.a(), t.b()})
      for (auto& r : consume_all(topic, 0, 30s, 1s))
        seen.insert(*r.value);
    size_t missing = 0;
    for (auto& r : in)
      missing += !seen.count(*r.key);
    return " " + std::to_string(missing);
  }());
  check_outputs(t, ref);
  // The summary goes to stdout as it is (a WARN would re-wrap the table)
  // and beside the fault log.
  std::cout << "\nchaos summary (counter pipeline)\n" << sum.text() << std::flush;
  std::ofstream{o.log_dir + "/" + app + "-summary.txt"} << sum.text();
  if (sum.failed()) FAIL_CHECK("chaos checks failed; node logs:\n" << c.log_tails(40));
  CHECK(sum.failed() == 0);
}
