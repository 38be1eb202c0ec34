// weft-cluster against the real broker [broker][cluster]: a fake cluster topic
// holds what nodes would write (announcements, a tombstone, assignments in a
// transaction) and a fake node endpoint serves GET /cluster; the tool must name
// nodes and units as the log says, lags as the endpoint says, and report the
// nodes it cannot reach.

#include <catch2/catch.hpp>

#include <httplib.h>

#include <fstream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "test_cluster.hpp"
#include "weft/cluster/assignor.hpp"

using namespace weft;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

struct tool_run {
  int code = -1;
  std::string output; ///< stdout and stderr
};

/// Runs weft-cluster with `args` until it exits by itself.
tool_run run_tool(const std::vector<std::string>& args) {
  auto log = "/tmp/" + test::unique_name("weft-cluster") + ".log";
  tool_run r;
  {
    test::child_process p{test::built("tools/weft-cluster"), args, log};
    // Signal 0 is no signal: stop() only waits, the tool's own waits are bounded.
    r.code = p.stop(0, 60s);
  }
  std::ifstream f{log};
  std::stringstream text;
  text << f.rdbuf();
  r.output = text.str();
  std::remove(log.c_str());
  return r;
}

/// The table row of `unit` in the tool's output, split into its columns
/// (separated by two spaces or more); empty if there is none.
std::vector<std::string> row_of(const std::string& output, size_t unit) {
  std::istringstream lines{output};
  std::string line;
  while (std::getline(lines, line)) {
    std::vector<std::string> cols;
    size_t at = 0;
    while (at < line.size()) {
      auto gap = line.find("  ", at);
      cols.push_back(line.substr(at, gap - at));
      if (gap == std::string::npos) break;
      at = line.find_first_not_of(' ', gap);
    }
    if (cols.size() == 5 && cols[0] == std::to_string(unit)) return cols;
  }
  return {};
}

std::string announcement(const std::string& id, int http_port) {
  return json{{"id", id},         {"host", "127.0.0.1"},
              {"port", 4000},     {"http", "127.0.0.1:" + std::to_string(http_port)},
              {"incarnation", 1}, {"topology", "t"}}
      .dump();
}

/// Generation 5 by leader n1: units 0 and 2 on n1, unit 1 on n2 with n1
/// warming up to take it; unit 2 is stateless (no standby).
cluster::assignment current_assignment() {
  cluster::assignment a;
  a.generation = 5;
  a.leader = "n1";
  a.members = {"n1", "n2"};
  a.active = {"n1", "n2", "n1"};
  a.standbys = {{"n2"}, {"n1"}, {}};
  a.warmup = {"", "n1", ""};
  a.previous = {"", "", ""};
  return a;
}

/// What node n1 would serve on GET /cluster: n2 lost, a few lags known.
std::string n1_view() {
  return json::parse(R"({
    "node": "n1", "generation": 5, "leader": "n1",
    "members": [{"id": "n1", "cluster": "127.0.0.1:4000", "http": "", "connected": true},
                {"id": "n2", "cluster": "127.0.0.1:4000", "http": "", "connected": false}],
    "units": [
      {"unit": 0, "tasks": "counter/0", "active": "n1", "active_lag": 0,
       "standbys": [{"node": "n2", "lag": null}]},
      {"unit": 1, "tasks": "counter/1", "active": "n2", "active_lag": null,
       "standbys": [{"node": "n1", "lag": 42}], "warmup": "n1"},
      {"unit": 2, "tasks": "splitter/0", "active": "n1", "active_lag": -1,
       "standbys": []}]})")
      .dump();
}

} // namespace

TEST_CASE("weft-cluster shows who holds which unit, and the lags a node reports",
          "[broker][cluster]") {
  auto app = test::unique_name("cview");
  auto topic = app + "-cluster";
  test::create_topics({topic}, 1);

  // n1's endpoint: bound but not listening yet, so connections are refused;
  // n2's never listens.
  httplib::Server n1_http, n2_http;
  n1_http.Get("/cluster", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(n1_view(), "application/json");
  });
  int n1_port = n1_http.bind_to_any_port("127.0.0.1");
  int n2_port = n2_http.bind_to_any_port("127.0.0.1");
  REQUIRE(n1_port > 0);
  REQUIRE(n2_port > 0);

  auto p = kafka::producer::create({{"bootstrap.servers", test::bootstrap()}});
  REQUIRE(p.ok());
  REQUIRE((*p)->send(topic, 0, "member/n1", announcement("n1", n1_port)).ok());
  REQUIRE((*p)->send(topic, 0, "member/n2", announcement("n2", n2_port)).ok());
  REQUIRE((*p)->send(topic, 0, "member/n3", announcement("n3", n2_port)).ok());
  REQUIRE((*p)->send(topic, 0, "member/n3", std::nullopt).ok()); // n3 left
  REQUIRE((*p)->flush(10000).ok());
  // As a leader writes them: in transactions, an older generation first.
  auto leader = kafka::producer::create(
      {{"bootstrap.servers", test::bootstrap()}, {"transactional.id", app + ".leader"}});
  REQUIRE(leader.ok());
  REQUIRE((*leader)->init_transactions(30000).ok());
  auto stale = current_assignment();
  stale.generation = 4;
  stale.active = {"n3", "n3", "n3"};
  for (auto& a : {stale, current_assignment()}) {
    auto text = cluster::to_json(a);
    REQUIRE((*leader)->begin_transaction().ok());
    REQUIRE((*leader)->send(topic, 0, "assignment", text).ok());
    REQUIRE((*leader)->commit_transaction(30000).ok());
  }

  std::vector<std::string> args{"--application.id=" + app,
                                "--bootstrap.servers=" + test::bootstrap()};

  // No node answers: the assignment from the log, without lags.
  auto bare = run_tool(args);
  INFO(bare.output);
  CHECK(bare.code == 0);
  CHECK(bare.output.find("application " + app +
                         ": generation 5, leader n1, members "
                         "n1 (unreachable), n2 (unreachable)\n") != std::string::npos);
  CHECK(bare.output.find("no node answered GET /cluster") != std::string::npos);
  CHECK(bare.output.find("n3") == std::string::npos);
  CHECK(row_of(bare.output, 0) == std::vector<std::string>{"0", "?", "n1", "n2", "-"});
  CHECK(row_of(bare.output, 1) == std::vector<std::string>{"1", "?", "n2", "n1", "n1"});
  CHECK(row_of(bare.output, 2) == std::vector<std::string>{"2", "?", "n1", "-", "-"});
  CHECK(bare.output.find("n1: 2 active, 1 standby\nn2: 1 active, 1 standby\n") !=
        std::string::npos);

  // n1 answers: task names and lags from its view, n2 lost as n1 sees it.
  std::thread serving{[&] { n1_http.listen_after_bind(); }};
  REQUIRE(test::wait_until([&] { return n1_http.is_running(); }, 5s));
  auto seen = run_tool(args);
  auto as_json = run_tool({args[0], args[1], "--json"});
  n1_http.stop();
  serving.join();

  INFO(seen.output);
  CHECK(seen.code == 0);
  CHECK(seen.output.find("members n1 (connected), n2 (unreachable)\n") !=
        std::string::npos);
  CHECK(seen.output.find("lags in records, as node n1 sees them") != std::string::npos);
  CHECK(row_of(seen.output, 0) ==
        std::vector<std::string>{"0", "counter/0", "n1 (0)", "n2 (?)", "-"});
  CHECK(row_of(seen.output, 1) ==
        std::vector<std::string>{"1", "counter/1", "n2 (?)", "n1 (42)", "n1"});
  CHECK(row_of(seen.output, 2) ==
        std::vector<std::string>{"2", "splitter/0", "n1 (pending)", "-", "-"});

  INFO(as_json.output);
  REQUIRE(as_json.code == 0);
  auto j = json::parse(as_json.output, nullptr, false);
  REQUIRE(!j.is_discarded());
  CHECK(j["generation"] == 5);
  CHECK(j["lags_from"] == "n1");
  CHECK(j["members"].size() == 2);
  CHECK(j["members"][1]["status"] == "unreachable");
  CHECK(j["units"][1]["standbys"][0] == json{{"node", "n1"}, {"lag", 42}});
  CHECK(j["units"][1]["warmup"] == "n1");
  CHECK(j["load"]["n1"] == json{{"active", 2}, {"standby", 1}});
}

TEST_CASE("weft-cluster says when an application has no cluster topic",
          "[broker][cluster]") {
  auto app = test::unique_name("cview-none");
  auto r =
      run_tool({"--application.id=" + app, "--bootstrap.servers=" + test::bootstrap()});
  INFO(r.output);
  CHECK(r.code == 1);
  CHECK(r.output == "weft-cluster: application " + app +
                        " has no cluster topic (no node ran with "
                        "cluster.enabled=true)\n");
}
