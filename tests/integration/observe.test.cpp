// Seeing the order system run [broker]: the node's Prometheus page checked
// by promtool and its figures moving as orders flow, the REST API's request
// metrics on it, the topology on the node endpoint and from --describe,
// and the demo's console (progress, summary, URLs; the log in its file).
//
// Every wait has a bound; values are compared before and after real traffic.

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include <unistd.h>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "model.hpp"
#include "test_cluster.hpp"

using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

/// Runs `cmd` (a shell command line), returns its exit code and output.
std::pair<int, std::string> run(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  REQUIRE(p);
  char buf[4096];
  while (auto n = std::fread(buf, 1, sizeof buf, p))
    out.append(buf, n);
  int rc = ::pclose(p);
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, out};
}

std::string read_file(const std::string& path) {
  std::ifstream in{path};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// A Prometheus text page, parsed: sample lines (name with labels) -> value.
struct page {
  std::string text;
  std::map<std::string, double> samples;

  explicit page(std::string t) : text(std::move(t)) {
    std::istringstream in{text};
    for (std::string line; std::getline(in, line);) {
      if (line.empty() || line[0] == '#') continue;
      auto sp = line.rfind(' ');
      REQUIRE(sp != std::string::npos);
      samples[line.substr(0, sp)] = std::stod(line.substr(sp + 1));
    }
  }
  /// Sum of the samples of `name` whose label text contains every one of
  /// `with` (e.g. "service=\"orders\"").
  double sum(const std::string& name, const std::vector<std::string>& with = {}) const {
    double total = 0;
    for (auto& [k, v] : samples) {
      auto brace = k.find('{');
      if (k.substr(0, brace) != name) continue;
      bool all = true;
      for (auto& w : with)
        all &= k.find(w) != std::string::npos;
      if (all) total += v;
    }
    return total;
  }
  bool has(const std::string& name) const {
    return text.find("\n# TYPE " + name + " ") != std::string::npos ||
           text.rfind("# TYPE " + name + " ", 0) == 0;
  }
};

/// promtool check metrics on `text`: exit code and what it said.
std::pair<int, std::string> promtool(const std::string& text) {
  auto path = "/tmp/" + weft::test::unique_name("weft-metrics") + ".prom";
  {
    std::ofstream out{path};
    out << text;
  }
  auto r = run("promtool check metrics < " + path);
  std::filesystem::remove(path);
  return r;
}

/// The metric names README's table lists (`weft_a`, `_b` continuing a's stem).
std::vector<std::string> readme_metrics() {
  std::vector<std::string> out;
  std::istringstream in{read_file(std::string{WEFT_SOURCE_DIR} + "/README.md")};
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("| `weft_", 0) != 0) continue;
    auto cell = line.substr(2, line.find(" |", 2) - 2);
    std::string base;
    for (size_t at = cell.find('`'); at != std::string::npos;
         at = cell.find('`', cell.find('`', at + 1) + 1)) {
      auto name = cell.substr(at + 1, cell.find('`', at + 1) - at - 1);
      if (name.rfind("weft_", 0) == 0) {
        base = name;
        out.push_back(name);
      } else if (!base.empty() && name.rfind('_', 0) == 0) {
        auto stem = base.substr(0, base.rfind('_', base.rfind('_') - 1));
        out.push_back(stem + name);
      }
    }
  }
  return out;
}

int free_port_base() {
  // Ports of this test, away from orders.test.cpp's 23000 + pid range.
  return 26000 + static_cast<int>(::getpid() % 1000) * 4;
}

} // namespace

TEST_CASE("a running order system's /metrics passes promtool and its figures move as "
          "orders flow",
          "[broker][orders][metrics]") {
  REQUIRE(run("command -v promtool").first == 0); // tools/setup.sh installs prometheus
  const std::string prefix = weft::test::unique_name("obs") + "-";
  const auto t = orders::topic_names::with_prefix(prefix);
  const auto app = weft::test::unique_name("orders-obs");
  const int partitions = 2;
  weft::test::create_topics(t.all(), partitions);
  const int rest_port = free_port_base();
  const int node_port = rest_port + 1;
  const auto state_dir = "/tmp/" + app;
  const auto log = "/tmp/" + app + ".log";
  weft::test::child_process node{
      weft::test::built("examples/orders/weft-orders"),
      {"--application.id=" + app, "--bootstrap.servers=" + weft::test::bootstrap(),
       "--processing.guarantee=exactly_once", "--state.dir=" + state_dir,
       "--http.port=" + std::to_string(rest_port),
       "--node.http.port=" + std::to_string(node_port), "--orders.topic.prefix=" + prefix,
       "--orders.partitions=" + std::to_string(partitions)},
      log};
  INFO("node log: " << log);
  httplib::Client rest{"127.0.0.1", rest_port}, weft_http{"127.0.0.1", node_port};
  rest.set_read_timeout(60, 0);
  weft_http.set_read_timeout(30, 0);
  auto scrape = [&] {
    auto r = weft_http.Get("/metrics");
    REQUIRE(r);
    REQUIRE(r->status == 200);
    CHECK(r->get_header_value("Content-Type").rfind("text/plain; version=0.0.4", 0) == 0);
    return page{r->body};
  };
  REQUIRE(weft::test::wait_until(
      [&] {
        auto r = weft_http.Get("/metrics");
        return r && r->status == 200 && !r->body.empty();
      },
      90s));
  auto before = scrape();
  {
    auto [rc, out] = promtool(before.text);
    INFO(out);
    CHECK(rc == 0);
  }
  // Every family the README lists is on the page from the start.
  for (auto* family : {"weft_node_info",
                       "weft_records_processed_total",
                       "weft_records_produced_total",
                       "weft_changelog_records_produced_total",
                       "weft_bad_records_total",
                       "weft_task_input_held_seconds_total",
                       "weft_task_records_ahead_total",
                       "weft_task_work_ahead_pauses_total",
                       "weft_consumer_lag_records",
                       "weft_offset_commits_total",
                       "weft_epochs_committed_total",
                       "weft_epochs_aborted_total",
                       "weft_epoch_commit_duration_seconds",
                       "weft_transaction_seconds_total",
                       "weft_enforced_processing_total",
                       "weft_partition_pauses_total",
                       "weft_partitions_paused",
                       "weft_restore_records_total",
                       "weft_restore_remaining_records",
                       "weft_restoring_shards",
                       "weft_restored_shards_total",
                       "weft_restore_retries_total",
                       "weft_rebalances_total",
                       "weft_generation",
                       "weft_rebalance_duration_seconds",
                       "weft_units_active",
                       "weft_units",
                       "weft_standby_lag_records",
                       "weft_store_shards",
                       "weft_store_sst_bytes",
                       "weft_store_memtable_bytes",
                       "weft_store_keys",
                       "weft_rocksdb_block_cache_capacity_bytes",
                       "weft_rocksdb_block_cache_usage_bytes",
                       "weft_rocksdb_block_cache_pinned_bytes",
                       "weft_rocksdb_write_buffer_bytes",
                       "weft_http_requests_total",
                       "weft_http_request_duration_seconds",
                       "weft_http_refused_total",
                       "weft_parked_keys",
                       "weft_parked_records",
                       "weft_peer_messages_dropped_total"}) {
    INFO(family);
    CHECK(before.has(family));
  }
  // And every name README's table lists (the Grafana dashboard uses only those).
  auto listed = readme_metrics();
  CHECK(listed.size() >= 35);
  for (auto& family : listed) {
    INFO(family);
    CHECK(before.has(family));
  }
  CHECK(before.sum("weft_node_info",
                   {"application=\"" + app + "\"", "guarantee=\"exactly_once\""}) == 1);
  CHECK(before.sum("weft_rocksdb_block_cache_capacity_bytes") == 67108864);
  CHECK(before.sum("weft_rebalances_total") >= 1);
  CHECK(before.sum("weft_units_active") == before.sum("weft_units"));
  // One lag sample per input partition the node owns, order-commands' included.
  CHECK(before.text.find("weft_consumer_lag_records{topic=\"" + t.commands +
                         "\",partition=\"1\"}") != std::string::npos);

  // Traffic: a customer, stock and 20 orders, each validated, half paid.
  REQUIRE(weft::test::wait_until(
      [&] {
        auto r =
            rest.Put("/v1/customers/1",
                     R"({"id":1,"firstName":"Ada","lastName":"L",)"
                     R"("email":"ada@example.com","address":"1 Road","level":"gold"})",
                     "application/json");
        return r && r->status == 202;
      },
      30s));
  auto stock =
      rest.Post("/v1/stock", R"({"product":"pen","delta":1000})", "application/json");
  REQUIRE(stock);
  CHECK(stock->status == 202);
  REQUIRE(weft::test::wait_until(
      [&] {
        auto r = rest.Get("/v1/stock/pen");
        return r && r->status == 200 && json::parse(r->body)["onHand"] == 1000;
      },
      30s));
  const int n = 20;
  for (int i = 0; i < n; ++i) {
    auto id = "o" + std::to_string(i);
    auto r = rest.Post("/v1/orders",
                       json{{"id", id},
                            {"customerId", 1},
                            {"product", "pen"},
                            {"quantity", 1},
                            {"price", 2.5},
                            {"currency", "EUR"}}
                           .dump(),
                       "application/json");
    REQUIRE(r);
    REQUIRE(r->status == 201);
    auto v = rest.Get(("/v1/orders/" + id + "/validated?timeout=30000").c_str());
    REQUIRE(v);
    REQUIRE(v->status == 200);
    if (i % 2 == 0) {
      auto p = rest.Post(
          "/v1/payments",
          json{{"id", "p" + id}, {"orderId", id}, {"currency", "EUR"}, {"amount", 2.5}}
              .dump(),
          "application/json");
      REQUIRE(p);
      CHECK(p->status == 202);
    }
  }
  auto missing = rest.Get("/v1/orders/no-such-order?timeout=1");
  REQUIRE(missing);
  CHECK(missing->status == 404);
  // The paid orders ship; their effects reach the stores and changelogs.
  REQUIRE(weft::test::wait_until(
      [&] {
        auto r = rest.Get(("/v1/orders/o" + std::to_string(n - 2)).c_str());
        return r && r->status == 200 &&
               json::parse(r->body)["state"] == std::string{orders::shipped};
      },
      60s));

  page after = scrape();
  {
    auto [rc, out] = promtool(after.text);
    INFO(out);
    CHECK(rc == 0);
  }
  INFO(after.text.substr(0, 20000));
  // Records: every order passed through the orders service (commands) and the
  // validation gate; more in total than before.
  CHECK(after.sum("weft_records_processed_total", {"service=\"orders\""}) -
            before.sum("weft_records_processed_total", {"service=\"orders\""}) >=
        2 * n); // CREATE and VALIDATED commands at least
  CHECK(after.sum("weft_records_processed_total", {"service=\"validation-gate\""}) >=
        2 * n);
  CHECK(after.sum("weft_records_produced_total", {"service=\"orders\""}) >= 2 * n);
  CHECK(after.sum("weft_changelog_records_produced_total") >
        before.sum("weft_changelog_records_produced_total"));
  CHECK(after.sum("weft_bad_records_total") == 0);
  // Exactly-once epochs committed, with their latencies in the histogram.
  CHECK(after.sum("weft_epochs_committed_total") >
        before.sum("weft_epochs_committed_total"));
  CHECK(after.sum("weft_epoch_commit_duration_seconds_count") >
        before.sum("weft_epoch_commit_duration_seconds_count"));
  CHECK(after.sum("weft_epoch_commit_duration_seconds_sum") > 0);
  CHECK(after.sum("weft_task_input_held_seconds_total") >
        before.sum("weft_task_input_held_seconds_total"));
  CHECK(after.sum("weft_epochs_aborted_total") == 0);
  // The stores hold the orders.
  CHECK(after.sum("weft_store_keys", {"store=\"orders-store\""}) >= 1);
  CHECK(after.sum("weft_store_shards", {"store=\"orders-store\""}) == partitions);
  CHECK(after.sum("weft_rocksdb_block_cache_usage_bytes") > 0);
  // The REST API's requests, per route and status, and their latencies.
  auto api = [](const std::string& route, const std::string& method,
                const std::string& code) {
    return std::vector<std::string>{"server=\"orders-rest\"", "route=\"" + route + "\"",
                                    "method=\"" + method + "\"", "code=\"" + code + "\""};
  };
  CHECK(after.sum("weft_http_requests_total", api("/v1/orders", "POST", "201")) == n);
  CHECK(after.sum("weft_http_requests_total",
                  api("/v1/orders/{id}/validated", "GET", "200")) == n);
  CHECK(after.sum("weft_http_requests_total", api("/v1/payments", "POST", "202")) ==
        n / 2);
  CHECK(after.sum("weft_http_requests_total", api("/v1/orders/{id}", "GET", "404")) == 1);
  CHECK(after.sum("weft_http_request_duration_seconds_count",
                  {"route=\"/v1/orders\"", "method=\"POST\""}) == n);
  CHECK(after.sum("weft_http_request_duration_seconds_bucket",
                  {"route=\"/v1/orders\"", "le=\"+Inf\""}) == n);

  // The orders service parks (bad.record.policy=park): a sample per task of
  // it, nothing parked yet, no peer message dropped (no cluster).
  CHECK(after.text.find("weft_parked_keys{service=\"orders\",partition=\"1\"} 0") !=
        std::string::npos);
  CHECK(after.sum("weft_parked_keys") == 0);
  CHECK(after.sum("weft_peer_messages_dropped_total") == 0);
  // An order command nobody can read parks its order (orders) and is
  // dead-lettered by notification-join, which reads the commands too: the
  // page shows the key parked, the record it holds, and the bad record
  // counted once per service by what its policy did.
  weft::test::produce(t.commands, 1, [](size_t) {
    return std::pair{std::string{"o-bad"}, "{not json"};
  });
  page parked{""};
  REQUIRE(weft::test::wait_until(
      [&] {
        parked = scrape();
        return parked.sum("weft_parked_keys", {"service=\"orders\""}) == 1 &&
               parked.sum("weft_bad_records_total") == 2;
      },
      60s));
  CHECK(parked.sum("weft_parked_records", {"service=\"orders\""}) == 1);
  CHECK(parked.sum("weft_bad_records_total", {"service=\"orders\"", "action=\"park\""}) ==
        1);
  CHECK(parked.sum("weft_bad_records_total",
                   {"service=\"notification-join\"", "action=\"dead_letter\""}) == 1);
  {
    auto [rc, out] = promtool(parked.text);
    INFO(out);
    CHECK(rc == 0);
  }

  // The JSON counters stay available, at /metrics.json and by content type.
  auto j = weft_http.Get("/metrics.json");
  REQUIRE(j);
  CHECK(j->status == 200);
  CHECK(json::parse(j->body)["processed"].get<uint64_t>() > 0);
  CHECK(json::parse(j->body)["parked_keys"].get<uint64_t>() == 1);
  CHECK(json::parse(j->body)["bad_records"].get<uint64_t>() == 2);
  auto negotiated = weft_http.Get("/metrics", {{"Accept", "application/json"}});
  REQUIRE(negotiated);
  CHECK(json::parse(negotiated->body)["epochs_committed"].get<uint64_t>() > 0);

  // The topology, for tools and a map page.
  auto topo = weft_http.Get("/topology");
  REQUIRE(topo);
  REQUIRE(topo->status == 200);
  auto tj = json::parse(topo->body);
  CHECK(tj["application"] == app);
  CHECK(tj["services"].size() == 14);
  CHECK(tj["clients"][0]["name"] == "rest-api");
  auto dot = weft_http.Get("/topology?format=dot");
  REQUIRE(dot);
  CHECK(dot->body.rfind("digraph", 0) == 0);
  auto bad = weft_http.Get("/topology?format=svg");
  REQUIRE(bad);
  CHECK(bad->status == 400);

  CHECK(node.stop(SIGTERM, 60s) == 0);
  std::filesystem::remove_all(state_dir);
}

TEST_CASE(
    "the describe option prints the order system's topology without a broker and exits",
    "[orders][describe]") {
  for (auto* program :
       {"examples/orders/weft-orders", "examples/orders/weft-orders-demo"}) {
    auto [rc, out] =
        run(weft::test::built(program) + " --describe=text --application.id=orders "
                                         "--bootstrap.servers=127.0.0.1:1");
    INFO(program << ": " << out);
    CHECK(rc == 0);
    CHECK(out.rfind("application orders: 14 services", 0) == 0);
    CHECK(out.find("service validation-gate [gate: ") != std::string::npos);
    CHECK(out.find("service order-details [enricher]") != std::string::npos);
    CHECK(out.find("service notification-sender [stream-aside") != std::string::npos);
    CHECK(out.find("service orders [stateful: processor]") != std::string::npos);
    CHECK(out.find("  writes   order-commands (intermediate)") != std::string::npos);
    CHECK(out.find("orders-orders-dlq") != std::string::npos);
  }
  auto [rc, out] = run(weft::test::built("examples/orders/weft-orders") +
                       " --describe=svg --application.id=orders");
  CHECK(rc == 2);
  CHECK(out.find("text, dot, mermaid or json") != std::string::npos);
}

TEST_CASE("the demo shows progress and a summary ending with the URLs, and keeps its "
          "log in a file",
          "[broker][orders][demo]") {
  const auto app = weft::test::unique_name("demo");
  const auto state_dir = "/tmp/" + app;
  const auto console = "/tmp/" + app + ".console";
  const auto log_file = state_dir + "/logs/demo.log";
  weft::test::child_process demo{
      weft::test::built("examples/orders/weft-orders-demo"),
      {"--orders=60", "--clients=4", "--application.id=" + app,
       "--bootstrap.servers=" + weft::test::bootstrap(), "--state.dir=" + state_dir,
       "--orders.topic.prefix=" + app + "-", "--orders.partitions=2", "--http.port=0",
       "--log.file=" + log_file},
      console};
  INFO("console: " << console);
  REQUIRE(weft::test::wait_until([&] { return !demo.running(); }, 240s));
  CHECK(demo.stop(SIGTERM, 10s) == 0);
  auto out = read_file(console);
  INFO(out);
  CHECK(out.find("orders/s settled") != std::string::npos); // the progress line
  CHECK(out.find("== summary ==") != std::string::npos);
  CHECK(out.find("log:         " + log_file) != std::string::npos);
  // The summary ends with the REST API's and the node's URLs.
  auto rest_at = out.rfind("REST API:    http://127.0.0.1:");
  auto node_at = out.rfind("node:        http://127.0.0.1:");
  CHECK(rest_at != std::string::npos);
  CHECK(node_at != std::string::npos);
  CHECK(node_at > rest_at);
  CHECK(out.find("/metrics", node_at) != std::string::npos);
  // Info lines went to the file, not the console.
  CHECK(out.find(" info  [") == std::string::npos);
  auto logged = read_file(log_file);
  CHECK(logged.find(" info  [") != std::string::npos);
  CHECK(logged.find("node ") != std::string::npos);

  // A log file that cannot be written stops it at start-up, naming the key.
  auto [rc, why] =
      run(weft::test::built("examples/orders/weft-orders-demo") +
          " --application.id=" + app + " --log.file=/proc/weft-no-such/x.log --orders=1");
  CHECK(rc != 0);
  CHECK(why.find("log.file") != std::string::npos);
  std::filesystem::remove_all(state_dir);
}
