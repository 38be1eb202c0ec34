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
#include "model.hpp"
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
    if (r.timestamp >= from && r.timestamp <= to)
      times[r.partition].push_back(r.timestamp);
  int64_t worst = 0;
  for (auto& [p, ts] : times) {
    std::sort(ts.begin(), ts.end());
    for (size_t i = 1; i < ts.size(); ++i)
      worst = std::max(worst, ts[i] - ts[i - 1]);
  }
  return worst;
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
  chaos::cluster c{app,
                   built("tests/weft-test-node"),
                   {"--test.service=pipeline", "--test.in=" + t.in, "--test.out=" + t.out,
                    "--application.id=" + app, "--bootstrap.servers=" + bootstrap(),
                    "--processing.guarantee=exactly_once", "--cluster.enabled=true",
                    "--cluster.timeout.ms=1000", "--cluster.heartbeat.ms=250"},
                   [&](const std::string& id, int port) {
                     return std::vector<std::string>{
                         "--node.id=" + id, "--state.dir=/tmp/" + app + "-" + id,
                         "--http.port=" + std::to_string(port)};
                   },
                   3,
                   base};
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
  // (Not an INFO: it would stay in scope and name an early, passing wait in
  // every later failure.)
  if (!c.wait_settled(90s, &why))
    FAIL("the cluster did not settle at start: " << why << "\n" << c.log_tails());

  // Steady input, every 20 ms, for the storm and ten seconds past it; one
  // producer that rides out broker restarts (it retries for 5 minutes).
  std::atomic<size_t> sent{0};
  std::atomic<bool> feeding{true};
  std::atomic<size_t> failed_sends{0};
  std::thread feeder{[&] {
    auto p = kafka::producer::create({{"bootstrap.servers", bootstrap()},
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
    auto m1 = c.get(f.target, "/metrics.json", 1);
    std::this_thread::sleep_for(400ms);
    auto m2 = c.get(f.target, "/metrics.json", 1);
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
    last_fault = std::max(
        last_fault, storm_start + std::chrono::milliseconds(
                                      f.at_ms + std::max<int64_t>(f.duration_ms, 0)));

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
  auto settle = chaos::check_liveness(c, sum, o, app, last_fault);
  sum.check("the leader was hit in a third of the node faults",
            leader * 3 >= static_cast<int>(faults.size()) - kinds["broker"],
            std::to_string(leader) + " of " +
                std::to_string(faults.size() - static_cast<size_t>(kinds["broker"])));
  sum.check("input was flowing at every fault",
            flowing == static_cast<int>(faults.size()),
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
  std::string first_bad = disagreements.empty() ? ""
                                                : disagreements.begin()->first + ": " +
                                                      disagreements.begin()->second;
  sum.check("the final state of every key, through every node, equals the reference",
            settle && disagreements.empty() && checked == ref.counts.size() * 3,
            std::to_string(checked) + " answers, " +
                std::to_string(disagreements.size()) + " wrong" +
                (first_bad.empty() ? "" : "; first: " + first_bad));
  auto aborted = aborted_records(t, total + total_counts + ref.gated.size());
  sum.row("records in aborted epochs (upper bound)", std::to_string(aborted));
  auto counts = consume_all(t.counts(), total_counts, 60s, 2s);
  sum.row("longest gap in committed output, any partition, during the storm",
          chaos::fmt_ms(longest_gap(counts, storm_from, storm_to)));
  if (settle) sum.row("settle time after the last fault", chaos::fmt_ms(*settle));

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

namespace {

/// An HTTP answer; status 0: none (refused, reset or timed out).
struct answer {
  int status = 0;
  std::string body;
};

answer call(int port, const std::string& method, const std::string& path,
            const std::string& body = {}) {
  httplib::Client h{"127.0.0.1", port};
  h.set_connection_timeout(1);
  h.set_read_timeout(25);
  httplib::Result r = method == "GET"   ? h.Get(path.c_str())
                      : method == "PUT" ? h.Put(path.c_str(), body, "application/json")
                                        : h.Post(path.c_str(), body, "application/json");
  if (!r) return {};
  return {r->status, r->body};
}

/// What the order clients saw.
struct order_stats {
  std::atomic<uint64_t> calls{0};
  std::atomic<uint64_t> answered{0};      ///< any HTTP answer but 503
  std::atomic<uint64_t> posted{0};        ///< orders accepted (201/200)
  std::atomic<uint64_t> post_failures{0}; ///< POST attempts that failed
  std::atomic<uint64_t> max_in_a_row{0};  ///< most consecutive failures of one POST
  std::atomic<uint64_t> given_up{0};      ///< orders never accepted
};

struct tracked_order {
  orders::order o;
  bool accepted = false;
  std::string validated; ///< as /validated answered (or "" if never)
  std::string reason;
  bool paid = false;
};

} // namespace

TEST_CASE("chaos: the order system on three nodes rides out a fault storm with every "
          "order final once, stock consistent and clients served by another node",
          "[broker][chaos][slow]") {
  auto o = chaos::options::from_env();
  const int parts = 4;
  const std::string prefix = unique_name("oc") + "-";
  const auto t = orders::topic_names::with_prefix(prefix);
  create_topics(t.all(), parts);
  const auto app = unique_name("ochaos");
  const int base = 25000 + static_cast<int>(::getpid() % 400) * 5;
  auto rest_port = [](int node_port) { return node_port + 2500; };
  chaos::cluster c{
      app,
      built("examples/orders/weft-orders"),
      {"--application.id=" + app, "--bootstrap.servers=" + bootstrap(),
       "--processing.guarantee=exactly_once", "--cluster.enabled=true",
       "--cluster.timeout.ms=1000", "--cluster.heartbeat.ms=250",
       "--orders.topic.prefix=" + prefix, "--orders.partitions=" + std::to_string(parts),
       "--shipping.delay.ms=100"},
      [&](const std::string& id, int port) {
        return std::vector<std::string>{"--node.id=" + id,
                                        "--state.dir=/tmp/" + app + "-" + id,
                                        "--node.http.port=" + std::to_string(port),
                                        "--http.port=" + std::to_string(rest_port(port))};
      },
      3,
      base};
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
  if (!c.wait_settled(120s, &why))
    FAIL("the cluster did not settle at start: " << why << "\n" << c.log_tails());
  std::vector<int> rest;
  for (auto& [id, n] : c.nodes())
    rest.push_back(rest_port(n.http_port));

  // Asks node `k` and, on no answer, a 503 or a 5xx, the next ones in turn;
  // returns the answer and how many attempts failed before it.
  order_stats stats;
  auto ask = [&](size_t k, const std::string& method, const std::string& path,
                 const std::string& body, int attempts) {
    answer a;
    int failed = 0;
    for (int i = 0; i < attempts; ++i) {
      a = call(rest[(k + static_cast<size_t>(i)) % rest.size()], method, path, body);
      ++stats.calls;
      if (a.status != 0 && a.status != 503) ++stats.answered;
      if (a.status != 0 && a.status < 500) return std::make_pair(a, failed);
      ++failed;
      std::this_thread::sleep_for(std::chrono::milliseconds(100 * std::min(i + 1, 5)));
    }
    return std::make_pair(a, failed);
  };

  // Reference data: customers and plentiful stock (orders never fail on
  // stock, so every order's end is known from its validation).
  const size_t n_customers = 200;
  const char* levels[] = {"bronze", "silver", "gold", "platinum"};
  for (size_t id = 1; id <= n_customers; ++id) {
    auto [a, f] = ask(id, "PUT", "/v1/customers/" + std::to_string(id),
                      json{{"id", id},
                           {"firstName", "C"},
                           {"lastName", std::to_string(id)},
                           {"email", std::to_string(id) + "@example.com"},
                           {"address", "-"},
                           {"level", levels[id % 4]}}
                          .dump(),
                      30);
    REQUIRE(a.status == 202);
  }
  std::map<std::string, int64_t> seeded;
  for (int p = 0; p < 8; ++p) {
    auto product = "item-" + std::to_string(p);
    seeded[product] = 1000000;
    auto [a, f] = ask(p, "POST", "/v1/stock",
                      json{{"product", product}, {"delta", seeded[product]}}.dump(), 30);
    REQUIRE(a.status == 202);
  }
  REQUIRE(wait_until(
      [&] {
        for (auto port : rest)
          for (auto& [product, units] : seeded) {
            auto a = call(port, "GET", "/v1/stock/" + product);
            if (a.status != 200 || json::parse(a.body)["onHand"] != units) return false;
          }
        return true;
      },
      60s));

  // Clients place orders through the storm: POST, long-poll /validated, pay.
  std::mutex placed_mu;
  std::vector<tracked_order> placed;
  std::atomic<bool> storming{true};
  std::atomic<size_t> next{0};
  auto client = [&](size_t me) {
    while (storming) {
      auto i = next++;
      tracked_order tr;
      tr.o.id = "oc-" + std::to_string(i);
      tr.o.customer_id = 1 + static_cast<int64_t>(i % n_customers);
      tr.o.product = "item-" + std::to_string(i % 8);
      tr.o.quantity = 1 + static_cast<int64_t>(i % 3);
      tr.o.price = 1 + static_cast<double>(i % 20);
      tr.o.currency = "EUR";
      auto [created, failed] = ask(me + i, "POST", "/v1/orders", json(tr.o).dump(), 60);
      stats.post_failures += static_cast<uint64_t>(failed);
      auto was = stats.max_in_a_row.load();
      while (
          static_cast<uint64_t>(failed) > was &&
          !stats.max_in_a_row.compare_exchange_weak(was, static_cast<uint64_t>(failed)))
        ;
      tr.accepted =
          created.status == 201 || created.status == 200 || created.status == 202;
      if (!tr.accepted) {
        ++stats.given_up;
      } else {
        ++stats.posted;
        auto [v, vf] = ask(me + i + 1, "GET",
                           "/v1/orders/" + tr.o.id + "/validated?timeout=20000", {}, 60);
        if (v.status == 200) {
          auto j = json::parse(v.body);
          tr.validated = j["state"];
          tr.reason = j.value("reason", "");
        }
        if (tr.validated == orders::validated) {
          auto [pay, pf] =
              ask(me + i + 2, "POST", "/v1/payments",
                  json(orders::payment{"pay-" + tr.o.id, tr.o.id, "EUR", tr.o.total()})
                      .dump(),
                  60);
          tr.paid = pay.status == 202;
        }
      }
      std::lock_guard<std::mutex> lock{placed_mu};
      placed.push_back(std::move(tr));
    }
  };
  std::vector<std::thread> clients;
  for (size_t k = 0; k < 8; ++k)
    clients.emplace_back(client, k);
  struct joiner {
    std::vector<std::thread>& ts;
    std::atomic<bool>& on;
    ~joiner() {
      on = false;
      for (auto& th : ts)
        if (th.joinable()) th.join();
    }
  } join_all{clients, storming};

  auto note = [&](chaos::fault& f) {
    f.detail["orders_posted"] = stats.posted.load();
    if (f.target.empty()) return;
    if (auto v = c.get(f.target, "/cluster", 1))
      for (auto& m : (*v)["members"])
        if (m["id"] == f.target && m.contains("holding"))
          f.detail["held_units"] = m["holding"].size();
  };
  const auto fault_log = o.log_dir + "/" + app + "-faults.jsonl";
  chaos::nemesis nemesis{c, o, fault_log, note};
  const auto storm_start = std::chrono::steady_clock::now();
  auto faults = nemesis.run();
  storming = false;
  auto last_fault = storm_start;
  for (auto& f : faults)
    last_fault = std::max(
        last_fault, storm_start + std::chrono::milliseconds(
                                      f.at_ms + std::max<int64_t>(f.duration_ms, 0)));
  chaos::summary sum;
  sum.row("workload", "order system, 3 nodes, " + std::to_string(parts) +
                          " partitions, 8 REST clients");
  sum.row("seed / fault log", std::to_string(nemesis.seed()) + " / " + fault_log);
  int leader = 0, kills = 0, kills_with_work = 0;
  std::map<std::string, int> kinds;
  for (auto& f : faults) {
    ++kinds[f.kind];
    leader += f.was_leader;
    if (f.kind.find("kill") != std::string::npos) {
      ++kills;
      kills_with_work += f.detail.value("held_units", 0) > 0 || f.was_leader;
    }
  }
  std::string kind_list;
  for (auto& [k, n] : kinds)
    kind_list += (kind_list.empty() ? "" : ", ") + k + " " + std::to_string(n);
  sum.row("faults", std::to_string(faults.size()) + " (" + kind_list + "), " +
                        std::to_string(leader) + " on the leader");

  auto settle = chaos::check_liveness(c, sum, o, app, last_fault, [&] {
    for (auto& th : clients)
      th.join();
  });
  sum.check("the leader was hit in a third of the node faults",
            leader * 3 >= static_cast<int>(faults.size()) - kinds["broker"],
            std::to_string(leader));
  sum.check("every kill interrupted work (tasks running or starting, or the leader)",
            kills_with_work == kills,
            std::to_string(kills_with_work) + " of " + std::to_string(kills));

  // Availability during the storm.
  size_t timed_out = 0, validated = 0, failed_other = 0, unknown = 0;
  for (auto& p : placed) {
    if (!p.accepted) continue;
    if (p.validated == orders::validated)
      ++validated;
    else if (p.validated == orders::failed && p.reason == "validation timeout")
      ++timed_out;
    else if (p.validated == orders::failed)
      ++failed_other;
    else
      ++unknown;
  }
  auto accepted = stats.posted.load();
  double timeout_share =
      accepted ? 100.0 * static_cast<double>(timed_out) / static_cast<double>(accepted)
               : 0;
  char share[64];
  std::snprintf(share, sizeof share, "%.2f %%", timeout_share);
  sum.row("orders accepted / validated / failed by the validation timeout / other",
          std::to_string(accepted) + " / " + std::to_string(validated) + " / " +
              std::to_string(timed_out) + " (" + share + ") / " +
              std::to_string(failed_other + unknown));
  char answered[64];
  std::snprintf(answered, sizeof answered, "%.2f %% of %llu",
                stats.calls ? 100.0 * static_cast<double>(stats.answered.load()) /
                                  static_cast<double>(stats.calls.load())
                            : 0.0,
                static_cast<unsigned long long>(stats.calls.load()));
  sum.row("REST calls answered (not 503, not refused)", answered);
  sum.check("no POST failed 3 times in a row (the client retries another node)",
            stats.max_in_a_row < 3,
            "most in a row: " + std::to_string(stats.max_in_a_row));
  sum.check("every order was accepted", stats.given_up == 0,
            std::to_string(stats.given_up.load()) + " given up");
  if (o.every_ms >= 10000)
    sum.check("at most 1 % of orders failed by the validation timeout",
              timeout_share <= 1.0, share);

  // Safety: every accepted order reaches one final state, once.
  std::map<std::string, std::string> expect;
  for (auto& p : placed)
    if (p.accepted)
      expect[p.o.id] = p.validated == orders::validated
                           ? (p.paid ? orders::shipped : orders::validated)
                           : orders::failed;
  std::map<std::string, std::vector<std::string>> states;
  size_t repeats = 0;
  bool all_final = wait_until(
      [&] {
        states.clear();
        repeats = 0;
        for (auto& r : consume_all(t.orders, 0, 30s, 2s)) {
          if (!r.key || !r.value) continue;
          auto& seq = states[*r.key];
          std::string st = json::parse(*r.value)["state"];
          if (seq.empty() || seq.back() != st)
            seq.push_back(st);
          else
            ++repeats;
        }
        for (auto& [id, want] : expect)
          if (states[id].empty() || (states[id].back() != orders::shipped &&
                                     states[id].back() != orders::failed &&
                                     states[id].back() != orders::cancelled))
            return false;
        return true;
      },
      180s);
  size_t illegal = 0, wrong_end = 0;
  std::string example;
  for (auto& [id, want] : expect) {
    auto& seq = states[id];
    bool ok = !seq.empty() && seq.front() == orders::created;
    for (size_t i = 1; ok && i < seq.size(); ++i)
      ok = orders::legal_transition(seq[i - 1], seq[i]);
    if (!ok) ++illegal;
    // An order validated but never paid (its payment call failed) has no
    // final state to wait for; every other one ends as its validation said.
    if (want != orders::validated && (seq.empty() || seq.back() != want)) {
      ++wrong_end;
      if (example.empty()) example = id + ": " + json(seq).dump() + ", want " + want;
    }
  }
  sum.check("every accepted order reached its final state", all_final && wrong_end == 0,
            std::to_string(expect.size()) + " orders; " + std::to_string(wrong_end) +
                " wrong" + (example.empty() ? "" : "; first: " + example));
  sum.check("no order state written twice, every transition legal",
            repeats == 0 && illegal == 0,
            std::to_string(repeats) + " repeated, " + std::to_string(illegal) +
                " illegal");
  // Stock: nothing reserved, on hand = seeded - shipped, alike on every node.
  std::map<std::string, int64_t> shipped;
  for (auto& p : placed)
    if (p.accepted && !states[p.o.id].empty() && states[p.o.id].back() == orders::shipped)
      shipped[p.o.product] += p.o.quantity;
  bool stock_ok = wait_until(
      [&] {
        for (auto& [product, units] : seeded)
          for (auto port : rest) {
            auto a = call(port, "GET", "/v1/stock/" + product);
            if (a.status != 200) return false;
            auto j = json::parse(a.body);
            if (j["reserved"] != 0 || j["onHand"] != units - shipped[product])
              return false;
          }
        return true;
      },
      60s);
  sum.check("stock matches the shipped orders on every node", stock_ok);
  std::map<std::string, int> notified;
  for (auto& r : consume_all(t.notifications, 0, 30s, 2s))
    if (r.key) ++notified[*r.key];
  size_t twice = 0;
  for (auto& [id, n] : notified)
    twice += n > 1;
  sum.check("one notification per shipped order, none twice", twice == 0,
            std::to_string(notified.size()) + " notified, " + std::to_string(twice) +
                " twice");
  if (settle) sum.row("settle time after the last fault", chaos::fmt_ms(*settle));
  for (auto& [id, n] : c.nodes())
    if (n.running()) CHECK(n.proc->stop(SIGTERM, 60s) == 0);
  std::cout << "\nchaos summary (order system)\n" << sum.text() << std::flush;
  std::ofstream{o.log_dir + "/" + app + "-summary.txt"} << sum.text();
  if (sum.failed()) FAIL_CHECK("chaos checks failed; node logs:\n" << c.log_tails(40));
  CHECK(sum.failed() == 0);
}
