// weft-sidecar end to end: the sidecar and the application (Python, standard
// library) as separate processes against the test run's broker.
//
// Tables (reads, scans, restarts), writes (answered after Kafka, once per
// id, across a kill -9), bad requests, push delivery through a kill -9 of
// the sidecar and of the application (every record at least once, none
// skipped), bad.record.policy=dead_letter and park (keys held, released in
// order, through a kill -9), pull streams with explicit commits, and reads
// and scans through every node of a three-node sidecar cluster.
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "test_cluster.hpp"

using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

using weft::test::free_port;

/// One weft-sidecar process with its API on a port of its own.
struct sidecar_process {
  std::vector<std::string> args;
  std::string log;
  std::string state_dir;
  int port = 0;
  std::unique_ptr<weft::test::child_process> proc;
  std::unique_ptr<httplib::Client> http;

  sidecar_process(const std::string& app, const std::string& node_id,
                  std::vector<std::string> extra) {
    port = free_port();
    log = "/tmp/" + app + "-" + node_id + ".log";
    state_dir = "/tmp/" + app + "-" + node_id;
    args = {"--application.id=" + app,
            "--bootstrap.servers=" + weft::test::bootstrap(),
            "--state.dir=" + state_dir,
            "--node.id=" + node_id,
            "--sidecar.http.port=" + std::to_string(port)};
    for (auto& e : extra)
      args.push_back(e);
    http = std::make_unique<httplib::Client>("127.0.0.1", port);
    http->set_read_timeout(30, 0);
    http->set_connection_timeout(2, 0);
    start();
  }

  /// The process ends first, then its state folder goes (~100 MB of
  /// RocksDB files each: left behind, every suite run filled /tmp by ~1 GB).
  /// The log stays for a look after a failure.
  ~sidecar_process() {
    proc.reset();
    std::error_code ec;
    std::filesystem::remove_all(state_dir, ec);
  }
  sidecar_process(const sidecar_process&) = delete;
  sidecar_process& operator=(const sidecar_process&) = delete;

  void start() {
    proc = std::make_unique<weft::test::child_process>(
        weft::test::built("sidecar/weft-sidecar"), args, log);
    proc->note_end_in_log();
  }

  /// Waits until /v1/ready answers 200 (tables restored).
  void wait_ready() {
    INFO("sidecar log: " << log);
    REQUIRE(weft::test::wait_until(
        [&] {
          REQUIRE(proc->running());
          auto r = http->Get("/v1/ready");
          return r && r->status == 200;
        },
        90s));
  }

  json metrics() {
    auto r = http->Get("/v1/metrics");
    REQUIRE(r);
    REQUIRE(r->status == 200);
    return json::parse(r->body);
  }

  httplib::Result post(const std::string& path, const std::string& body) {
    return http->Post(path.c_str(), body, "application/json");
  }
};

/// The Python receiver (sidecar_receiver.py) of push subscriptions.
struct receiver_process {
  int port;
  std::string out;
  std::vector<std::string> extra;
  std::unique_ptr<weft::test::child_process> proc;

  explicit receiver_process(const std::string& name, std::vector<std::string> more = {})
    : port(free_port()), out("/tmp/" + name + ".jsonl"), extra(std::move(more)) {
    std::remove(out.c_str());
    start();
  }
  void start() {
    std::vector<std::string> a{WEFT_SIDECAR_RECEIVER, "--port", std::to_string(port),
                               "--out", out};
    for (auto& e : extra)
      a.push_back(e);
    proc = std::make_unique<weft::test::child_process>("/usr/bin/python3", a, out + ".log");
    // Listening once a connection is accepted (bounded wait).
    REQUIRE(weft::test::wait_until(
        [&] {
          httplib::Client c{"127.0.0.1", port};
          c.set_connection_timeout(0, 200000);
          return bool(c.Get("/"));
        },
        20s));
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port) + "/in"; }

  struct line {
    int32_t p;
    int64_t o;
    std::string k;
  };
  /// Every record the application took, in the order it took them.
  std::vector<line> lines() const {
    std::vector<line> v;
    std::ifstream f{out};
    std::string s;
    while (std::getline(f, s)) {
      auto j = json::parse(s, nullptr, false);
      if (j.is_discarded()) continue; // a line cut by a kill
      v.push_back({j["p"].get<int32_t>(), j["o"].get<int64_t>(),
                   j["k"].is_string() ? j["k"].get<std::string>() : ""});
    }
    return v;
  }
};

/// Distinct (partition, offset) pairs taken.
size_t distinct(const std::vector<receiver_process::line>& ls) {
  std::set<std::pair<int32_t, int64_t>> s;
  for (auto& l : ls)
    s.insert({l.p, l.o});
  return s.size();
}

/// Every offset of every partition of `topic` below its end is in `ls`, and
/// nothing else: at least once, none skipped. Returns the duplicates.
size_t check_every_record_once_or_more(const std::string& topic,
                                       const std::vector<receiver_process::line>& ls,
                                       int partitions) {
  auto c = weft::kafka::consumer::create(
      {{"bootstrap.servers", weft::test::bootstrap()}, {"group.id", "check"}});
  REQUIRE(c);
  std::map<int32_t, std::set<int64_t>> seen;
  for (auto& l : ls)
    seen[l.p].insert(l.o);
  for (int p = 0; p < partitions; ++p) {
    auto w = (*c)->watermarks({topic, weft::partition_id{p}}, 10000);
    REQUIRE(w);
    INFO("partition " << p);
    CHECK(static_cast<int64_t>(seen[p].size()) == w->second - w->first);
    if (!seen[p].empty()) {
      CHECK(*seen[p].begin() == w->first);
      CHECK(*seen[p].rbegin() == w->second - 1);
    }
  }
  return ls.size() - distinct(ls);
}

} // namespace

TEST_CASE("sidecar tables: every key reads back, a prefix scan pages in key order, a "
          "tombstone deletes, and writes with an id are written once across a kill -9",
          "[broker][sidecar]") {
  const auto app = weft::test::unique_name("sc-tables");
  const auto customers = app + "-customers", points = app + "-points";
  weft::test::create_topics({customers, points}, 4);
  auto key = [](size_t i) {
    char b[16];
    std::snprintf(b, sizeof b, "c%03zu", i);
    return std::string{b};
  };
  std::map<std::string, json> reference;
  weft::test::produce(customers, 250, [&](size_t i) {
    json v{{"id", i}, {"name", "name " + std::to_string(i)}};
    reference[key(i)] = v;
    return std::pair{key(i), v.dump()};
  });
  sidecar_process sc{app,
                     "n1",
                     {"--table.customers.topic=" + customers, "--topic." + points +
                                                                  ".writable=true"}};
  sc.wait_ready();
  REQUIRE(weft::test::wait_until(
      [&] {
        auto r = sc.http->Get("/v1/tables/customers/c249");
        return r && r->status == 200;
      },
      60s));
  for (auto& [k, v] : reference) {
    auto r = sc.http->Get(("/v1/tables/customers/" + k).c_str());
    REQUIRE(r);
    REQUIRE(r->status == 200);
    auto body = json::parse(r->body);
    CHECK(body["key"] == k);
    CHECK(body["value"] == v);
  }
  auto missing = sc.http->Get("/v1/tables/customers/nobody");
  REQUIRE(missing);
  CHECK(missing->status == 404);
  CHECK_THAT(missing->body, Catch::Contains("no key"));

  SECTION("scans") {
    // Paging: pages of 7 through the prefix c1 give c100..c199 in order.
    std::vector<std::string> got;
    std::string after;
    for (int pages = 0; pages < 100; ++pages) {
      auto r = sc.http->Get(("/v1/tables/customers?prefix=c1&limit=7" +
                             (after.empty() ? "" : "&after=" + after))
                                .c_str());
      REQUIRE(r);
      REQUIRE(r->status == 200);
      auto body = json::parse(r->body);
      for (auto& row : body["rows"]) {
        got.push_back(row["key"].get<std::string>());
        CHECK(row["value"] == reference[got.back()]);
      }
      if (body["next"].is_null()) break;
      after = body["next"].get<std::string>();
    }
    std::vector<std::string> want;
    for (size_t i = 100; i < 200; ++i)
      want.push_back(key(i));
    CHECK(got == want);
    auto all = sc.http->Get("/v1/tables/customers?limit=1000");
    REQUIRE(all);
    CHECK(json::parse(all->body)["rows"].size() == 250);
    // A range [from, to): c095..c104.
    auto range = sc.http->Get("/v1/tables/customers?from=c095&to=c105&limit=100");
    REQUIRE(range);
    auto rows = json::parse(range->body)["rows"];
    REQUIRE(rows.size() == 10);
    CHECK(rows[0]["key"] == "c095");
    CHECK(rows[9]["key"] == "c104");
    CHECK(json::parse(range->body)["next"].is_null());
  }

  SECTION("a tombstone deletes its row") {
    auto p = weft::kafka::producer::create({{"bootstrap.servers", weft::test::bootstrap()},
                                            {"partitioner", "murmur2_random"}});
    REQUIRE(p);
    REQUIRE((*p)->send(customers, -1, key(6), std::nullopt).ok());
    REQUIRE((*p)->flush(10000).ok());
    CHECK(weft::test::wait_until(
        [&] {
          auto r = sc.http->Get(("/v1/tables/customers/" + key(6)).c_str());
          return r && r->status == 404;
        },
        30s));
  }

  SECTION("writes") {
    const std::string path = "/v1/topics/" + points;
    const json w1{{"id", "w1"},
                  {"records",
                   {{{"key", "c001"}, {"value", {{"points", 5}}}, {"headers", {{"h", "v"}}}},
                    {{"key", "c002"}, {"value", {{"points", 7}}}}}}};
    auto first = sc.post(path, w1.dump());
    REQUIRE(first);
    REQUIRE(first->status == 201);
    auto offsets = json::parse(first->body)["offsets"];
    REQUIRE(offsets.size() == 2);
    auto again = sc.post(path, w1.dump());
    REQUIRE(again);
    CHECK(again->status == 200);
    CHECK(json::parse(again->body)["offsets"] == offsets);
    CHECK(json::parse(again->body)["replayed"] == true);
    auto other = w1;
    other["records"][0]["value"]["points"] = 6;
    auto conflict = sc.post(path, other.dump());
    REQUIRE(conflict);
    CHECK(conflict->status == 409);
    auto plain = sc.post(path, R"({"key":"c003","value":{"points":1}})");
    REQUIRE(plain);
    CHECK(plain->status == 201);

    // After a kill -9, the retry is answered from the table of ids.
    sc.proc->kill_hard();
    sc.start();
    sc.wait_ready();
    int replay_status = 0;
    std::string replay_body;
    REQUIRE(weft::test::wait_until(
        [&] {
          auto r = sc.post(path, w1.dump());
          if (!r || r->status == 503) return false;
          replay_status = r->status;
          replay_body = r->body;
          return true;
        },
        60s));
    CHECK(replay_status == 200);
    CHECK(json::parse(replay_body)["offsets"] == offsets);

    auto written = weft::test::consume_all(points, 3, 20s, 2s);
    CHECK(written.size() == 3); // w1's two records once, and c003
    std::map<std::string, int> per_key;
    for (auto& r : written)
      per_key[*r.key] += 1;
    CHECK(per_key == std::map<std::string, int>{{"c001", 1}, {"c002", 1}, {"c003", 1}});
  }

  SECTION("bad requests get a 4xx naming the field; unknown tables and topics 404") {
    const std::string path = "/v1/topics/" + points;
    auto expect = [&](const std::string& body, int status, const std::string& names) {
      auto r = sc.post(path, body);
      REQUIRE(r);
      INFO(body << " -> " << r->body);
      CHECK(r->status == status);
      CHECK_THAT(r->body, Catch::Contains(names));
    };
    expect("{oops", 400, "body");
    expect(R"({"records":"x"})", 400, "records");
    expect(R"({"records":[{"key":1,"value":{}}]})", 400, "records[0].key");
    expect(R"({"records":[{"key":"a"}]})", 400, "records[0].value");
    expect(R"({"key":"a","value":1,"colour":2})", 400, "colour");
    expect(R"({"id":"","key":"a","value":1})", 400, "id");
    expect(R"({"key":"a","value":1,"partition":99})", 400, "partition");
    expect(R"({"key":"a","value":1,"headers":{"h":3}})", 400, "headers.h");
    auto nope = sc.post("/v1/topics/" + app + "-nope", R"({"key":"a","value":1})");
    REQUIRE(nope);
    CHECK(nope->status == 404);
    auto table = sc.http->Get("/v1/tables/nope/x");
    REQUIRE(table);
    CHECK(table->status == 404);
    CHECK_THAT(table->body, Catch::Contains("no table 'nope'"));
    auto sub = sc.post("/v1/subscriptions/nope/commit", "{}");
    REQUIRE(sub);
    CHECK(sub->status == 404);
    auto limit = sc.http->Get("/v1/tables/customers?limit=0");
    REQUIRE(limit);
    CHECK(limit->status == 400);
    CHECK_THAT(limit->body, Catch::Contains("limit"));
  }
}

TEST_CASE("push: kill -9 of the sidecar mid-stream delivers every record at least once, "
          "none skipped, in offset order per partition",
          "[broker][sidecar]") {
  const auto app = weft::test::unique_name("sc-push");
  const auto topic = app + "-events";
  constexpr int partitions = 4;
  constexpr size_t n = 20000;
  weft::test::create_topics({topic}, partitions);
  weft::test::produce(topic, n, [](size_t i) {
    return std::pair{"k" + std::to_string(i % 500), json{{"i", i}}.dump()};
  });
  receiver_process app_proc{app};
  sidecar_process sc{app,
                     "n1",
                     {"--subscription.s.topic=" + topic, "--subscription.s.url=" + app_proc.url()}};
  // Mid-stream: a quarter taken, most not yet.
  REQUIRE(weft::test::wait_until([&] { return app_proc.lines().size() >= n / 4; }, 120s));
  sc.proc->kill_hard();
  const auto at_kill = distinct(app_proc.lines());
  INFO("taken at the kill: " << at_kill);
  CHECK(at_kill < n); // the kill hit mid-stream
  sc.start();
  REQUIRE(weft::test::wait_until([&] { return distinct(app_proc.lines()) >= n; }, 180s));
  auto lines = app_proc.lines();
  const auto dups = check_every_record_once_or_more(topic, lines, partitions);
  WARN("records taken twice after the kill -9: " << dups);
  // Offset order per partition: each incarnation goes forward; a partition
  // goes back at most once (to its last commit, at the restart).
  std::map<int32_t, int64_t> last;
  std::map<int32_t, int> rewinds;
  for (auto& l : lines) {
    auto i = last.find(l.p);
    if (i != last.end() && l.o <= i->second) ++rewinds[l.p];
    if (i != last.end() && l.o > i->second) CHECK(l.o == i->second + 1); // none skipped
    last[l.p] = l.o;
  }
  for (auto& [p, r] : rewinds)
    CHECK(r <= 1);
}

TEST_CASE("push: kill -9 of the application makes records wait, then flow", "[broker][sidecar]") {
  const auto app = weft::test::unique_name("sc-app-kill");
  const auto topic = app + "-events";
  constexpr size_t n = 5000;
  weft::test::create_topics({topic}, 2);
  weft::test::produce(topic, n, [](size_t i) {
    return std::pair{"k" + std::to_string(i % 100), json{{"i", i}}.dump()};
  });
  receiver_process app_proc{app};
  sidecar_process sc{app,
                     "n1",
                     {"--subscription.s.topic=" + topic, "--subscription.s.url=" + app_proc.url(),
                      "--subscription.s.retry.backoff.max.ms=500"}};
  REQUIRE(weft::test::wait_until([&] { return app_proc.lines().size() >= n / 5; }, 120s));
  app_proc.proc->kill_hard();
  const auto at_kill = distinct(app_proc.lines());
  CHECK(at_kill < n);
  // The sidecar finds nobody there and keeps the records.
  REQUIRE(weft::test::wait_until(
      [&] { return sc.metrics()["subscriptions"]["s"]["unavailable"].get<uint64_t>() >= 3; },
      30s));
  CHECK(distinct(app_proc.lines()) == at_kill);
  app_proc.start();
  REQUIRE(weft::test::wait_until([&] { return distinct(app_proc.lines()) >= n; }, 120s));
  check_every_record_once_or_more(topic, app_proc.lines(), 2);
}

TEST_CASE("push: a record the application keeps refusing, and one its serde cannot read, "
          "are dead-lettered with their origin, and the rest are delivered",
          "[broker][sidecar]") {
  const auto app = weft::test::unique_name("sc-dlq");
  const auto topic = app + "-events";
  weft::test::create_topics({topic}, 1);
  weft::test::produce(
      topic, 20,
      [](size_t i) -> std::pair<std::string, std::string> {
        if (i == 7) return {"poison", R"({"i":7})"};
        if (i == 12) return {"k12", "{not json"};
        return {"k" + std::to_string(i), json{{"i", i}}.dump()};
      },
      0);
  receiver_process app_proc{app, {"--refuse-key", "poison"}};
  sidecar_process sc{app,
                     "n1",
                     {"--subscription.s.topic=" + topic, "--subscription.s.url=" + app_proc.url(),
                      "--subscription.s.max.attempts=3", "--subscription.s.retry.backoff.ms=10",
                      "--subscription.s.bad.record.policy=dead_letter"}};
  sc.wait_ready(); // the dead-letter topic exists from here on
  const auto dlq = app + "-s-dlq";
  auto dead = weft::test::consume_all(dlq, 2, 60s, 1s);
  REQUIRE(dead.size() == 2);
  std::set<std::string> offsets;
  for (auto& d : dead) {
    std::map<std::string, std::string> h;
    for (auto& x : d.headers)
      h[x.key] = x.value;
    CHECK(h["weft.topic"] == topic);
    CHECK(h["weft.service"] == "sub-s");
    CHECK(h.count("weft.error") == 1);
    offsets.insert(h["weft.offset"]);
  }
  CHECK(offsets == std::set<std::string>{"7", "12"});
  REQUIRE(weft::test::wait_until([&] { return distinct(app_proc.lines()) >= 18; }, 60s));
  std::set<int64_t> taken;
  for (auto& l : app_proc.lines())
    taken.insert(l.o);
  CHECK(taken.size() == 18);
  CHECK(taken.count(7) == 0);
  CHECK(taken.count(12) == 0);
  auto m = sc.metrics()["subscriptions"]["s"];
  CHECK(m["dead_lettered"] == 2);
  CHECK(m["refused"].get<uint64_t>() >= 3);
}

TEST_CASE("push: bad.record.policy=park holds the keys of refused records while 3,000 "
          "other keys are delivered and committed, the parked keys outlive a kill -9 of "
          "the sidecar on another sidecar of the group, and retry, skip and drop release "
          "them there in key order, nothing lost or twice",
          "[broker][sidecar]") {
  const auto app = weft::test::unique_name("sc-park");
  const auto topic = app + "-events";
  constexpr int partitions = 4;
  weft::test::create_topics({topic}, partitions);
  const std::string refusing = "/tmp/" + app + ".refusing";
  std::ofstream{refusing} << "the downstream is away\n";
  auto value = [](int n, const std::string& tag = "") {
    return json{{"n", n}, {"tag", tag}}.dump();
  };

  // Round r writes record r of every key that has one: each bad record sits
  // in the middle of its key's stream and of everyone else's.
  const int others = 3000;
  struct bad_key {
    std::string key, action;
    int records, bad;
    std::string bad_value;
  };
  const std::vector<bad_key> bad{
      {"to-retry", "retry", 10, 4, value(4, "poison")}, // refused while `refusing` exists
      {"to-skip", "skip", 6, 2, "{not json"},           // its serde cannot render it
      {"to-drop", "drop", 5, 1, value(1, "poison")}};
  std::vector<std::pair<std::string, std::string>> input;
  for (int r = 0; r < 10; ++r) {
    if (r < 2)
      for (int k = 0; k < others; ++k)
        input.emplace_back("k" + std::to_string(k), value(r));
    for (auto& b : bad)
      if (r < b.records) input.emplace_back(b.key, r == b.bad ? b.bad_value : value(r));
  }
  weft::test::produce(topic, input.size(), [&](size_t i) { return input[i]; });
  receiver_process app_proc{app, {"--refuse-tag", "poison", "--refuse-while", refusing}};
  const std::vector<std::string> sidecar_args{
      "--subscription.s.topic=" + topic,
      "--subscription.s.url=" + app_proc.url(),
      "--subscription.s.bad.record.policy=park",
      "--subscription.s.batch.max=50",
      "--subscription.s.max.attempts=3",
      "--subscription.s.retry.backoff.ms=20",
      "--subscription.s.retry.backoff.max.ms=100"};
  auto first = std::make_unique<sidecar_process>(app, "n1", sidecar_args);
  sidecar_process* sc = first.get();
  const auto group = app + "-sub-s";
  auto listing = [&] {
    auto r = sc->http->Get("/v1/parked");
    if (!r || r->status != 200) return json{};
    return json::parse(r->body, nullptr, false);
  };
  auto parked_by_key = [&] {
    std::map<std::string, json> out;
    auto l = listing();
    if (l.is_object())
      for (auto& k : l["parked"])
        out[k["key"].get<std::string>()] = k;
    return out;
  };
  // Every key's records in the topic, (partition, offset) in offset order:
  // the reference.
  auto reference = [&](size_t n) {
    std::map<std::string, std::vector<std::pair<int32_t, int64_t>>> out;
    auto recs = weft::test::consume_all(topic, n, 60s);
    REQUIRE(recs.size() == n);
    std::sort(recs.begin(), recs.end(), [](auto& a, auto& b) {
      return std::tie(a.partition, a.offset) < std::tie(b.partition, b.offset);
    });
    for (auto& r : recs)
      out[*r.key].emplace_back(r.partition, r.offset);
    return out;
  };
  // What the application took, per key, in the order it took it.
  auto taken = [&] {
    std::map<std::string, std::vector<std::pair<int32_t, int64_t>>> out;
    for (auto& l : app_proc.lines())
      out[l.k].emplace_back(l.p, l.o);
    return out;
  };
  auto committed_all = [&] {
    return weft::test::committed_total(group, topic, partitions) ==
           weft::test::end_offsets(topic);
  };

  // The three keys parked with their later records held, every other record
  // delivered and every offset committed (held records do not hold the
  // partition back).
  REQUIRE(weft::test::wait_until(
      [&] {
        auto p = parked_by_key();
        if (p.size() != bad.size()) return false;
        for (auto& b : bad)
          if (!p.count(b.key) || p[b.key]["held"] != b.records - b.bad) return false;
        return committed_all();
      },
      180s));
  auto ref = reference(input.size());
  auto l = listing();
  CHECK(l["node"] == "n1");
  CHECK(l["keys"] == 3);
  CHECK(l["held"] == 6 + 4 + 4);
  CHECK(l["partitions"]["s"] == json::array({0, 1, 2, 3}));
  auto p = parked_by_key();
  for (auto& b : bad) {
    INFO(b.key);
    auto& k = p[b.key];
    auto [part, off] = ref[b.key][static_cast<size_t>(b.bad)];
    CHECK(k["service"] == "s");
    CHECK(k["subscription"] == "s");
    CHECK(k["partition"] == part);
    CHECK(k["head"]["topic"] == topic);
    CHECK(k["head"]["offset"] == off);
    CHECK(k["attempts"] == 1);
    CHECK(k["retry_at_ms"] == 0);
    CHECK(k["releasing"] == false);
  }
  CHECK_THAT(p["to-retry"]["error"].get<std::string>(), Catch::Contains("HTTP 400"));
  CHECK_THAT(p["to-skip"]["error"].get<std::string>(), Catch::Contains("value"));
  auto m = sc->metrics();
  CHECK(m["parked_keys"] == 3);
  CHECK(m["parked_records"] == 14);
  CHECK(m["subscriptions"]["s"]["parked"] == 3);
  // Delivered so far: every other key's records, once each, in order; a
  // parked key's records before its bad one.
  auto got = taken();
  for (int k = 0; k < others; ++k) {
    auto key = "k" + std::to_string(k);
    INFO(key);
    REQUIRE(got[key] == ref[key]);
  }
  for (auto& b : bad) {
    INFO(b.key);
    auto& all = ref[b.key];
    CHECK(got[b.key] ==
          std::vector<std::pair<int32_t, int64_t>>(all.begin(), all.begin() + b.bad));
  }

  // Bad calls get a 4xx with a reason.
  auto refused = [&](const std::string& path, int code) {
    auto r = sc->post(path, "");
    REQUIRE(r);
    INFO(path << " -> " << r->status << " " << r->body);
    CHECK(r->status == code);
    auto j = json::parse(r->body, nullptr, false);
    CHECK((j.is_object() && !j.value("error", "").empty()));
  };
  refused("/v1/parked/nope/to-retry?action=retry", 404);
  refused("/v1/parked/s/k1?action=retry", 404); // not parked
  refused("/v1/parked/s/to-retry?action=explode", 400);
  refused("/v1/parked/s/to-retry", 400); // no action
  refused("/v1/parked/s/to-retry?action=retry&partition=x", 400);
  refused("/v1/parked/s?action=retry", 400); // no key, and not the null key

  // kill -9 with keys parked, and nothing of it left on disk; while no
  // sidecar delivers, more for everyone, the parked keys included. Another
  // sidecar of the group, with a state folder of its own, is given the
  // partitions (once n1's static membership timed out, session.timeout.ms
  // 10 s): it reads the parked keys back from their topic and holds the new
  // records behind them.
  sc->proc->kill_hard();
  std::filesystem::remove_all("/tmp/" + app + "-n1");
  std::vector<std::pair<std::string, std::string>> more;
  for (int k = 0; k < others; ++k)
    more.emplace_back("k" + std::to_string(k), value(2));
  for (auto& b : bad)
    for (int r = b.records; r < b.records + 2; ++r)
      more.emplace_back(b.key, value(r));
  weft::test::produce(topic, more.size(), [&](size_t i) { return more[i]; });
  auto second = std::make_unique<sidecar_process>(app, "n2", sidecar_args);
  sc = second.get();
  REQUIRE(weft::test::wait_until(
      [&] {
        auto now = parked_by_key();
        if (now.size() != bad.size()) return false;
        for (auto& b : bad)
          if (!now.count(b.key) || now[b.key]["held"] != b.records - b.bad + 2)
            return false;
        return committed_all();
      },
      180s));
  CHECK(parked_by_key()["to-retry"]["error"] == p["to-retry"]["error"]);

  // The downstream is back: release the three.
  std::filesystem::remove(refusing);
  for (auto& b : bad) {
    INFO(b.key);
    auto r = sc->post("/v1/parked/s/" + b.key + "?action=" + b.action, "");
    REQUIRE(r);
    INFO(r->body);
    if (b.action == "drop")
      CHECK((r->status == 200 || r->status == 202));
    else
      CHECK(r->status == 202);
    auto j = json::parse(r->body, nullptr, false);
    REQUIRE(j.is_object());
    CHECK(j["node"] == "n2");
    CHECK(j["key"] == b.key);
    CHECK(j["action"] == b.action);
    CHECK(j["held"] == b.records - b.bad + 2);
  }
  REQUIRE(weft::test::wait_until([&] { return listing()["keys"] == 0; }, 60s));
  m = sc->metrics();
  CHECK(m["parked_keys"] == 0);
  CHECK(m["parked_records"] == 0);
  CHECK(m["subscriptions"]["s"]["replayed"] == (10 - 4 + 2) + (6 - 2 + 2 - 1));
  CHECK(m["subscriptions"]["s"]["dropped"] == 5 - 1 + 2);

  // Released keys take new records as any other.
  std::vector<std::pair<std::string, std::string>> last;
  for (auto& b : bad)
    last.emplace_back(b.key, value(b.records + 2));
  weft::test::produce(topic, last.size(), [&](size_t i) { return last[i]; });
  const size_t total = input.size() + more.size() + last.size();
  ref = reference(total);
  // What the application must have taken, per key, in order, each once.
  auto want = ref;
  auto& skip = want["to-skip"];
  const auto skipped = skip[2];
  skip.erase(skip.begin() + 2); // in the dead-letter topic instead
  auto& drop = want["to-drop"];
  drop.erase(drop.begin() + 1, drop.end() - 1); // dropped: all but the first and the last
  size_t wanted = 0;
  for (auto& [k, v] : want)
    wanted += v.size();
  REQUIRE(
      weft::test::wait_until([&] { return app_proc.lines().size() >= wanted; }, 120s));
  REQUIRE(weft::test::wait_until(committed_all, 30s));
  got = taken();
  size_t wrong = 0;
  std::string example;
  for (auto& [k, v] : want)
    if (got[k] != v) {
      ++wrong;
      if (example.empty()) example = k;
    }
  INFO("first key whose records were not taken exactly once, in order: " << example);
  CHECK(wrong == 0);
  CHECK(app_proc.lines().size() == wanted); // nothing else, nothing twice

  // The skipped record is in the dead-letter topic, with where it came from.
  auto dead = weft::test::consume_all(app + "-s-dlq", 1, 30s, 2s);
  REQUIRE(dead.size() == 1);
  CHECK(dead[0].key == std::optional<std::string>{"to-skip"});
  CHECK(dead[0].value == std::optional<std::string>{"{not json"});
  std::map<std::string, std::string> h;
  for (auto& x : dead[0].headers)
    h[x.key] = x.value;
  CHECK(h["weft.topic"] == topic);
  CHECK(h["weft.service"] == "sub-s");
  CHECK(h["weft.partition"] == std::to_string(skipped.first));
  CHECK(h["weft.offset"] == std::to_string(skipped.second));
  CHECK(sc->proc->stop(SIGTERM, 60s) == 0);
  std::filesystem::remove_all("/tmp/" + app + "-n2");
}

TEST_CASE("pull: an event stream delivers records with their offsets, a commit marks them "
          "handled, and the next stream starts after the commit",
          "[broker][sidecar]") {
  const auto app = weft::test::unique_name("sc-pull");
  const auto topic = app + "-events";
  weft::test::create_topics({topic}, 1);
  weft::test::produce(
      topic, 30, [](size_t i) { return std::pair{"k" + std::to_string(i), json{{"i", i}}.dump()}; },
      0);
  sidecar_process sc{app, "n1", {"--subscription.f.topic=" + topic, "--subscription.f.mode=pull"}};
  sc.wait_ready();
  // Reads `want` events from a new stream; `during` runs while it is open.
  auto read_stream = [&](size_t want, const std::function<void(const std::vector<json>&)>& during) {
    std::vector<json> events;
    std::string buffer;
    httplib::Client c{"127.0.0.1", sc.port};
    c.set_read_timeout(30, 0);
    auto r = c.Get("/v1/subscriptions/f/events", [&](const char* data, size_t len) {
      buffer.append(data, len);
      for (size_t at; (at = buffer.find("\n\n")) != std::string::npos;) {
        auto event = buffer.substr(0, at);
        buffer.erase(0, at + 2);
        auto d = event.find("data: ");
        if (d != std::string::npos) events.push_back(json::parse(event.substr(d + 6)));
      }
      if (events.size() < want) return true;
      during(events);
      return false; // closes the stream
    });
    return events;
  };
  auto first = read_stream(10, [&](const std::vector<json>& events) {
    CHECK(events[0]["offset"] == 0);
    CHECK(events[9]["offset"] == 9);
    CHECK(events[3]["value"]["i"] == 3);
    // A second stream of the same subscription is refused while this one is open.
    auto second = sc.http->Get("/v1/subscriptions/f/events");
    REQUIRE(second);
    CHECK(second->status == 409);
    auto too_far = sc.post("/v1/subscriptions/f/commit",
                           R"({"offsets":[{"partition":0,"offset":1000}]})");
    REQUIRE(too_far);
    CHECK(too_far->status == 400);
    CHECK_THAT(too_far->body, Catch::Contains("offsets[0].offset"));
    auto ok = sc.post("/v1/subscriptions/f/commit",
                      R"({"offsets":[{"partition":0,"offset":4}]})");
    REQUIRE(ok);
    CHECK(ok->status == 200);
  });
  REQUIRE(first.size() >= 10);
  // The stream's end is seen by the sidecar within a keep-alive (1 s).
  std::vector<json> next;
  REQUIRE(weft::test::wait_until(
      [&] {
        next = read_stream(1, [](const std::vector<json>&) {});
        return !next.empty();
      },
      30s));
  CHECK(next[0]["offset"] == 5); // after the commit of 4, not after the 10 read
}

TEST_CASE("three sidecar nodes: reads of every key, and paged prefix and range scans, "
          "through every node agree with what was written",
          "[broker][sidecar][cluster]") {
  const auto app = weft::test::unique_name("sc-cluster");
  const auto customers = app + "-customers";
  weft::test::create_topics({customers}, 6);
  std::map<std::string, json> reference;
  weft::test::produce(customers, 300, [&](size_t i) {
    json v{{"id", i}};
    reference["c" + std::to_string(i)] = v;
    return std::pair{"c" + std::to_string(i), v.dump()};
  });
  std::vector<std::unique_ptr<sidecar_process>> nodes;
  for (int i = 1; i <= 3; ++i)
    nodes.push_back(std::make_unique<sidecar_process>(
        app, "n" + std::to_string(i),
        std::vector<std::string>{"--table.customers.topic=" + customers,
                                 "--cluster.enabled=true", "--processing.guarantee=exactly_once"}));
  for (auto& n : nodes)
    n->wait_ready();
  for (auto& n : nodes) {
    INFO("node on port " << n->port << ", log " << n->log);
    for (auto& [k, v] : reference) {
      std::string body;
      // 503 while a partition restores or moves between the nodes: retry.
      REQUIRE(weft::test::wait_until(
          [&] {
            auto r = n->http->Get(("/v1/tables/customers/" + k).c_str());
            if (!r || r->status != 200) return false;
            body = r->body;
            return true;
          },
          60s));
      CHECK(json::parse(body)["value"] == v);
    }
  }
  // Scans of the table spread over the nodes: every node fans out to the
  // owners of the six partitions and merges in key order. Every page of
  // every node, put together, is the reference, and every page says that
  // all six partitions answered (over the pages, from more than one node).
  std::set<std::string> answering;
  auto scan_all = [&](sidecar_process& n, const std::string& query, size_t limit) {
    std::vector<std::pair<std::string, json>> got;
    std::string after;
    for (int pages = 0; pages < 1000; ++pages) {
      std::string path = "/v1/tables/customers?limit=" + std::to_string(limit) + query +
                         (after.empty() ? "" : "&after=" + after);
      json body;
      // 503 (with Retry-After) while a partition restores or moves: retry.
      REQUIRE(weft::test::wait_until(
          [&] {
            auto r = n.http->Get(path.c_str());
            if (r && r->status == 503) CHECK(r->has_header("Retry-After"));
            if (!r || r->status != 200) return false;
            body = json::parse(r->body);
            return true;
          },
          60s));
      CHECK(body["partitions"]["count"] == 6);
      std::set<int> covered;
      for (auto& [node_id, parts] : body["partitions"]["by_node"].items()) {
        answering.insert(node_id);
        for (auto& p : parts)
          CHECK(covered.insert(p.get<int>()).second);
      }
      CHECK(covered.size() == 6);
      for (auto& row : body["rows"])
        got.emplace_back(row["key"].get<std::string>(), row["value"]);
      CHECK(body["rows"].size() <= limit);
      if (body["next"].is_null()) break;
      CHECK(body["rows"].size() == limit);
      after = body["next"].get<std::string>();
    }
    return got;
  };
  auto expect = [&](const std::function<bool(const std::string&)>& in) {
    std::vector<std::pair<std::string, json>> want;
    for (auto& [k, v] : reference)
      if (in(k)) want.emplace_back(k, v);
    return want;
  };
  const auto everything = expect([](const std::string&) { return true; });
  const auto prefix_c1 =
      expect([](const std::string& k) { return k.rfind("c1", 0) == 0; });
  const auto c2_to_c3 =
      expect([](const std::string& k) { return k >= "c2" && k < "c3"; });
  for (auto& n : nodes) {
    INFO("node on port " << n->port << ", log " << n->log);
    CHECK(scan_all(*n, "", 13) == everything);
    CHECK(scan_all(*n, "", 1000) == everything);
    CHECK(scan_all(*n, "&prefix=c1", 7) == prefix_c1);
    CHECK(scan_all(*n, "&from=c2&to=c3", 20) == c2_to_c3);
  }
  CHECK(answering.size() > 1);
  // Freeze (SIGSTOP) a node that owns partitions, as n1's page says: a scan
  // through n1 cannot be whole until they move, so it is a retriable 503
  // naming the partitions, never a page with their keys missing.
  auto page = nodes[0]->http->Get("/v1/tables/customers?limit=1");
  REQUIRE(page);
  REQUIRE(page->status == 200);
  auto owners = json::parse(page->body)["partitions"]["by_node"];
  size_t victim = owners.contains("n2") ? 1 : 2;
  REQUIRE(owners.contains("n" + std::to_string(victim + 1)));
  ::kill(nodes[victim]->proc->pid(), SIGSTOP);
  auto frozen = nodes[0]->http->Get("/v1/tables/customers?limit=1000");
  ::kill(nodes[victim]->proc->pid(), SIGCONT);
  REQUIRE(frozen);
  INFO("answer while n" << victim + 1 << " was frozen: " << frozen->body);
  CHECK(frozen->status == 503);
  CHECK(frozen->has_header("Retry-After"));
  CHECK_THAT(frozen->body, Catch::Contains("partitions"));
  // Once it runs again (or its partitions moved), every node scans it all.
  for (auto& n : nodes)
    CHECK(scan_all(*n, "", 100) == everything);
}

TEST_CASE("the Python loyalty service (examples/sidecar) turns every SHIPPED order of a "
          "known customer into one points fact, through a kill -9 of its sidecar",
          "[broker][sidecar][example]") {
  const auto app = weft::test::unique_name("sc-loyalty");
  const auto orders = app + "-orders", customers = app + "-customers",
             points = app + "-loyalty-points";
  weft::test::create_topics({orders, customers}, 4);
  const std::vector<std::string> levels{"bronze", "silver", "gold", "platinum"};
  const std::map<std::string, double> mult{
      {"bronze", 1.0}, {"silver", 1.5}, {"gold", 2.0}, {"platinum", 3.0}};
  weft::test::produce(customers, 20, [&](size_t i) {
    const auto id = std::to_string(i + 1);
    return std::pair{id, json{{"id", i + 1},
                              {"firstName", "F"},
                              {"lastName", "L"},
                              {"email", "c" + id + "@example.com"},
                              {"address", "1 Road"},
                              {"level", levels[i % 4]}}
                             .dump()};
  });
  constexpr size_t n_orders = 300;
  std::map<std::string, json> expected; // order id -> its points fact
  std::vector<std::pair<std::string, std::string>> order_records;
  for (size_t i = 0; i < n_orders; ++i) {
    const std::string id = "o" + std::to_string(i);
    const int64_t customer = static_cast<int64_t>(i % 21) + 1; // 21 is unknown
    const int64_t quantity = static_cast<int64_t>(i % 3) + 1;
    for (const char* state : {"CREATED", "VALIDATED", "PAID", "SHIPPED"})
      order_records.emplace_back(id, json{{"id", id},
                                          {"customerId", customer},
                                          {"state", state},
                                          {"product", "pen"},
                                          {"quantity", quantity},
                                          {"price", 2.5},
                                          {"currency", "EUR"}}
                                         .dump());
    if (customer <= 20) {
      const auto& level = levels[(customer - 1) % 4];
      expected[id] = json{{"customerId", std::to_string(customer)},
                          {"orderId", id},
                          {"points", static_cast<int64_t>(quantity * 2.5 * mult.at(level))},
                          {"level", level}};
    }
  }
  weft::test::produce(orders, order_records.size(),
                      [&](size_t i) { return order_records[i]; });
  const int service_port = free_port();
  sidecar_process sc{app,
                     "n1",
                     {"--config=" WEFT_SIDECAR_EXAMPLE_DIR "/sidecar.properties",
                      "--table.customers.topic=" + customers,
                      "--subscription.shipped.topic=" + orders,
                      "--subscription.shipped.url=http://127.0.0.1:" +
                          std::to_string(service_port) + "/orders",
                      "--topic." + points + ".writable=true",
                      "--topic." + points + ".partitions=4"}};
  sc.wait_ready();
  weft::test::child_process service{
      "/usr/bin/python3",
      {WEFT_SIDECAR_EXAMPLE_DIR "/loyalty.py", "--port", std::to_string(service_port),
       "--sidecar", "http://127.0.0.1:" + std::to_string(sc.port), "--points-topic", points},
      "/tmp/" + app + "-loyalty.log"};
  // Mid-stream: some facts written, not all.
  REQUIRE(weft::test::wait_until(
      [&] { return weft::test::end_offsets(points) >= static_cast<int64_t>(expected.size() / 4); },
      120s));
  sc.proc->kill_hard();
  const auto at_kill = weft::test::end_offsets(points);
  INFO("points records at the kill: " << at_kill);
  sc.start();
  auto facts = weft::test::consume_all(points, expected.size(), 180s, 3s);
  CHECK(at_kill < static_cast<int64_t>(expected.size())); // the kill hit mid-stream
  std::map<std::string, int> seen;
  for (auto& f : facts) {
    auto v = json::parse(*f.value);
    const auto id = v["orderId"].get<std::string>();
    seen[id] += 1;
    REQUIRE(expected.count(id) == 1);
    CHECK(*f.key == expected[id]["customerId"].get<std::string>());
    CHECK(v["points"] == expected[id]["points"]);
    CHECK(v["level"] == expected[id]["level"]);
  }
  CHECK(seen.size() == expected.size()); // every SHIPPED order of a known customer
  for (auto& [id, count] : seen) {
    INFO("order " << id);
    CHECK(count == 1); // once, though deliveries repeat after the kill
  }
}

TEST_CASE("push: bad.record.policy=fail stops the sidecar with exit 1 at the refused "
          "record, commits nothing from it on, and the restart delivers it again",
          "[broker][sidecar]") {
  const auto app = weft::test::unique_name("sc-fail");
  const auto topic = app + "-events";
  weft::test::create_topics({topic}, 1);
  weft::test::produce(
      topic, 20,
      [](size_t i) {
        return std::pair{i == 10 ? std::string{"poison"} : "k" + std::to_string(i),
                         json{{"i", i}}.dump()};
      },
      0);
  receiver_process app_proc{app, {"--refuse-key", "poison"}};
  sidecar_process sc{app,
                     "n1",
                     {"--subscription.s.topic=" + topic, "--subscription.s.url=" + app_proc.url(),
                      "--subscription.s.max.attempts=2", "--subscription.s.retry.backoff.ms=10",
                      "--subscription.s.bad.record.policy=fail"}};
  CHECK(sc.proc->stop(0, 60s) == 1); // stops by itself
  std::set<int64_t> taken;
  for (auto& l : app_proc.lines())
    taken.insert(l.o);
  CHECK(taken.size() == 10);
  CHECK(*taken.rbegin() == 9); // everything before the record, nothing after
  auto c = weft::kafka::consumer::create(
      {{"bootstrap.servers", weft::test::bootstrap()}, {"group.id", app + "-sub-s"}});
  REQUIRE(c);
  auto committed = (*c)->committed({{topic, weft::partition_id{0}}}, 10000);
  REQUIRE(committed);
  CHECK((*committed)[0] == 10);
  // The operator decides: skip it this time.
  sc.args.push_back("--subscription.s.bad.record.policy=skip");
  sc.start();
  REQUIRE(weft::test::wait_until([&] { return distinct(app_proc.lines()) >= 19; }, 60s));
  taken.clear();
  for (auto& l : app_proc.lines())
    taken.insert(l.o);
  CHECK(taken.size() == 19);
  CHECK(taken.count(10) == 0);
  CHECK(sc.metrics()["subscriptions"]["s"]["skipped"] == 1);
}

TEST_CASE("sidecar.http.auth.token: a request without the bearer token is 401, with it "
          "served",
          "[broker][sidecar]") {
  const auto app = weft::test::unique_name("sc-token");
  const auto topic = app + "-out";
  weft::test::create_topics({topic}, 1);
  sidecar_process sc{app,
                     "n1",
                     {"--topic." + topic + ".writable=true", "--sidecar.http.auth.token=s3cret"}};
  REQUIRE(weft::test::wait_until(
      [&] {
        REQUIRE(sc.proc->running());
        auto r = sc.http->Get("/v1/health");
        return bool(r);
      },
      60s));
  auto refused = sc.post("/v1/topics/" + topic, R"({"key":"a","value":1})");
  REQUIRE(refused);
  CHECK(refused->status == 401);
  sc.http->set_default_headers({{"Authorization", "Bearer s3cret"}});
  sc.wait_ready();
  auto ok = sc.post("/v1/topics/" + topic, R"({"key":"a","value":1})");
  REQUIRE(ok);
  CHECK(ok->status == 201);
  CHECK(weft::test::consume_all(topic, 1, 20s, 1s).size() == 1); // the refused one not written
}
