// bad.record.policy=park on a cluster ([broker][cluster]): two clustered
// node processes (weft-test-node, the sequencer) park three keys in the
// middle of 3,000 other keys' streams. Each key is listed by the node whose
// task parked it (GET /parked is per node) and by weft-cluster --parked
// (every node, in text and JSON); an operator's retry, skip and drop sent
// to the node that does NOT own the key are forwarded to the owner
// (query_router::park) and carried out there — the answer names the owner,
// the owner's log has the release and the other node's has not — and every
// key's outputs then equal a reference computed here, each once
// (exactly_once).

#include <catch2/catch.hpp>

#include <httplib.h>
#include <signal.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "test_cluster.hpp"

using namespace weft;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

using kv = std::pair<std::string, std::string>;

std::string value(int64_t n, const std::string& tag = "") {
  return json{{"n", n}, {"tag", tag}}.dump();
}

std::string slurp(const std::string& path) {
  std::ifstream f{path};
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

/// Lines of `text` containing every one of `parts`.
size_t lines_with(const std::string& text, const std::vector<std::string>& parts) {
  std::istringstream in{text};
  size_t n = 0;
  for (std::string line; std::getline(in, line);) {
    bool all = true;
    for (auto& p : parts)
      all = all && line.find(p) != std::string::npos;
    n += all;
  }
  return n;
}

/// A clustered sequencer node (--test.service=sequence) parking its bad
/// records, with one automatic retry after 200 ms.
struct park_cluster_node {
  std::string id, state_dir, log;
  int http_port = 0;
  std::unique_ptr<test::child_process> proc;

  httplib::Client client() const {
    httplib::Client c{"127.0.0.1", http_port};
    c.set_connection_timeout(1);
    c.set_read_timeout(30);
    return c;
  }
  /// GET `path` as JSON, or null unless it answered 200 with JSON.
  json get(const std::string& path) const {
    auto res = client().Get(path.c_str());
    if (!res || res->status != 200) return nullptr;
    return json::parse(res->body, nullptr, false);
  }
  /// POST /parked/sequencer/<key>?action=<action>, again while it answers
  /// 503 (the partition moves or restores): (status, JSON body).
  std::pair<int, json> release(const std::string& key, const std::string& action) const {
    std::pair<int, json> out{-1, nullptr};
    test::wait_until(
        [&] {
          auto res =
              client().Post(("/parked/sequencer/" + key + "?action=" + action).c_str());
          if (!res) return false;
          out = {res->status, json::parse(res->body, nullptr, false)};
          return res->status != 503;
        },
        60s);
    return out;
  }
};

struct park_cluster {
  std::string app = test::unique_name("park-cluster");
  std::string in = test::unique_name("park-cluster-in");
  std::string out = test::unique_name("park-cluster-out");
  std::string fail_file = "/tmp/" + app + ".failing";
  std::map<std::string, park_cluster_node> nodes;

  park_cluster() { std::ofstream{fail_file} << "the downstream is away\n"; }
  ~park_cluster() {
    for (auto& [id, n] : nodes) {
      if (n.proc && n.proc->running()) n.proc->kill_hard();
      std::filesystem::remove_all(n.state_dir);
    }
    std::filesystem::remove(fail_file);
  }

  void start(const std::string& id) {
    auto& n = nodes[id];
    n.id = id;
    n.http_port = test::free_port();
    n.state_dir = "/tmp/" + app + "-" + id;
    n.log = "/tmp/" + app + "-" + id + ".log";
    std::vector<std::string> args{"--test.service=sequence",
                                  "--test.in=" + in,
                                  "--test.out=" + out,
                                  "--test.fail.file=" + fail_file,
                                  "--application.id=" + app,
                                  "--bootstrap.servers=" + test::bootstrap(),
                                  "--state.dir=" + n.state_dir,
                                  "--processing.guarantee=exactly_once",
                                  "--cluster.enabled=true",
                                  "--node.id=" + id,
                                  "--http.port=" + std::to_string(n.http_port),
                                  "--service.sequencer.bad.record.policy=park",
                                  "--bad.record.retries=1",
                                  "--bad.record.retry.backoff.ms=200"};
    n.proc = std::make_unique<test::child_process>(test::built("tests/weft-test-node"),
                                                   args, n.log);
    n.proc->note_end_in_log();
  }

  /// Whether node `id` sees every node connected and every unit active on
  /// one of them and running, with no warm-up (no unit about to move).
  bool settled(const std::string& id) const {
    auto v = nodes.at(id).get("/cluster");
    if (!v.is_object() || !v.contains("units") || !v.contains("members")) return false;
    std::set<std::string> connected;
    for (auto& m : v["members"])
      if (m.value("connected", false)) connected.insert(m["id"].get<std::string>());
    if (connected.size() != nodes.size()) return false;
    std::set<std::string> owners;
    for (auto& u : v["units"]) {
      if (u.contains("warmup") || u["active_lag"].is_null()) return false;
      owners.insert(u["active"].get<std::string>());
    }
    return owners.size() == nodes.size(); // the work is shared
  }

  /// Every node's parked keys by key, with the node that listed it (a key
  /// listed twice is kept twice: the test checks it is not); nullopt unless
  /// every node answered.
  std::optional<std::multimap<std::string, std::pair<std::string, json>>> parked() const {
    std::multimap<std::string, std::pair<std::string, json>> all;
    for (auto& [id, n] : nodes) {
      auto p = n.get("/parked");
      if (!p.is_object()) return std::nullopt;
      for (auto& k : p["parked"])
        all.emplace(k["key"].get<std::string>(), std::make_pair(id, k));
    }
    return all;
  }
};

/// Every output value per key, in offset order (read_committed).
std::map<std::string, std::vector<std::string>> outputs(const std::string& topic,
                                                        size_t expected) {
  std::map<std::string, std::vector<std::string>> by_key;
  auto recs = test::consume_all(topic, expected, 120s, 3s);
  std::sort(recs.begin(), recs.end(), [](auto& a, auto& b) {
    return std::tie(a.partition, a.offset) < std::tie(b.partition, b.offset);
  });
  for (auto& r : recs)
    by_key[r.key.value_or("(null)")].push_back(r.value.value_or(""));
  return by_key;
}

/// The sequencer's outputs ("<count>:<n>") for a key whose handled inputs
/// had these n, in order.
std::vector<std::string> numbered(const std::vector<int64_t>& n) {
  std::vector<std::string> out;
  for (size_t i = 0; i < n.size(); ++i)
    out.push_back(std::to_string(i + 1) + ":" + std::to_string(n[i]));
  return out;
}

struct tool_run {
  int code = -1;
  std::string output; ///< stdout and stderr
};

/// Runs the built weft-cluster with `args` until it exits by itself.
tool_run run_weft_cluster(const std::vector<std::string>& args) {
  auto log = "/tmp/" + test::unique_name("weft-cluster-parked") + ".log";
  tool_run r;
  {
    test::child_process p{test::built("tools/weft-cluster"), args, log};
    r.code = p.stop(0, 60s); // signal 0: only waits; the tool's waits are bounded
  }
  r.output = slurp(log);
  std::remove(log.c_str());
  return r;
}

/// The row of the parked-keys table whose key column is `key`, split into
/// its columns (two spaces or more apart); empty if there is none.
std::vector<std::string> parked_row(const std::string& output, const std::string& key) {
  std::istringstream lines{output.substr(output.find("parked keys:"))};
  for (std::string line; std::getline(lines, line);) {
    std::vector<std::string> cols;
    size_t at = 0;
    while (at < line.size()) {
      auto gap = line.find("  ", at);
      cols.push_back(line.substr(at, gap - at));
      if (gap == std::string::npos) break;
      at = line.find_first_not_of(' ', gap);
    }
    if (cols.size() == 7 && cols[2] == key) return cols;
  }
  return {};
}

} // namespace

TEST_CASE("park on a cluster: each node lists the keys its tasks parked, weft-cluster "
          "--parked lists every node's, and retry, skip and drop sent to a node that "
          "does not own the key are carried out by its owner",
          "[broker][cluster]") {
  park_cluster c;
  test::create_topics({c.in, c.out}, 6);

  // Round r writes record r of every key that has one: each bad record sits
  // in the middle of its key's stream and of everyone else's.
  const int others = 3000;
  struct bad_key {
    std::string key, action;
    int records, bad;
    std::string bad_value;
    int attempts; ///< runs of its head before it waits for an operator
  };
  const std::vector<bad_key> bad{
      {"to-retry", "retry", 10, 4, value(4, "poison"), 2},
      {"to-skip", "skip", 6, 2, "{not json", 1}, // cannot be decoded: never retried
      {"to-drop", "drop", 5, 1, value(1, "poison"), 2}};
  std::vector<kv> input;
  for (int r = 0; r < 10; ++r) {
    if (r < 3)
      for (int k = 0; k < others; ++k)
        input.emplace_back("k" + std::to_string(k), value(r));
    for (auto& b : bad)
      if (r < b.records) input.emplace_back(b.key, r == b.bad ? b.bad_value : value(r));
  }
  c.start("n1");
  c.start("n2");
  REQUIRE(test::wait_until([&] { return c.settled("n1") && c.settled("n2"); }, 120s));
  test::produce(c.in, input.size(), [&](size_t i) { return input[i]; });

  // Each key parked once, on one node, with every later record held and its
  // automatic retry used up.
  std::multimap<std::string, std::pair<std::string, json>> parked;
  REQUIRE(test::wait_until(
      [&] {
        auto now = c.parked();
        if (!now || now->size() != bad.size()) return false;
        parked = std::move(*now);
        for (auto& b : bad) {
          auto i = parked.find(b.key);
          if (i == parked.end() || parked.count(b.key) != 1 ||
              i->second.second.value("attempts", 0) != b.attempts ||
              i->second.second.value("held", 0) != b.records - b.bad)
            return false;
        }
        return true;
      },
      120s));
  std::map<std::string, std::string> owner;
  for (auto& b : bad) {
    INFO(b.key);
    auto& [node, k] = parked.find(b.key)->second;
    owner[b.key] = node;
    CHECK(k["service"] == "sequencer");
    CHECK(k["retry_at_ms"] == 0);
    CHECK(k["head"]["topic"] == c.in);
    CHECK(k["head"]["partition"] == k["partition"]);
  }
  CHECK(parked.find("to-retry")
            ->second.second["error"]
            .get<std::string>()
            .find("downstream unavailable for to-retry") != std::string::npos);
  int64_t keys = 0, held = 0;
  for (auto& [id, n] : c.nodes) {
    auto m = n.get("/metrics.json");
    REQUIRE(m.is_object());
    keys += m["parked_keys"].get<int64_t>();
    held += m["parked_records"].get<int64_t>();
  }
  CHECK(keys == 3);
  CHECK(held == 6 + 4 + 4);

  // weft-cluster --parked: every node's keys, with their node, service and
  // partition, held records, attempts, error and head record.
  auto text = run_weft_cluster({"--application.id=" + c.app,
                                "--bootstrap.servers=" + test::bootstrap(), "--parked"});
  INFO(text.output);
  REQUIRE(text.code == 0);
  CHECK(text.output.find("parked keys: 3") != std::string::npos);
  CHECK(text.output.find("did not answer GET /parked") == std::string::npos);
  for (auto& b : bad) {
    INFO(b.key);
    auto& k = parked.find(b.key)->second.second;
    auto row = parked_row(text.output, b.key);
    REQUIRE(row.size() == 7);
    CHECK(row[0] == owner[b.key]);
    CHECK(row[1] == "sequencer/" + std::to_string(k["partition"].get<int>()));
    CHECK(row[3] == std::to_string(b.records - b.bad));
    CHECK(row[4] == std::to_string(b.attempts));
    auto error = k["error"].get<std::string>();
    CHECK(error.rfind(row[5].substr(0, std::min<size_t>(row[5].size(), 57)), 0) == 0);
    CHECK(row[6] == c.in + "[" + std::to_string(k["partition"].get<int>()) + "]@" +
                        std::to_string(k["head"]["offset"].get<int64_t>()));
  }
  auto as_json = run_weft_cluster({"--application.id=" + c.app,
                                   "--bootstrap.servers=" + test::bootstrap(), "--parked",
                                   "--json"});
  REQUIRE(as_json.code == 0);
  auto view = json::parse(as_json.output, nullptr, false);
  REQUIRE(view.is_object());
  REQUIRE(view["parked"].size() == 3);
  CHECK(view["parked_unanswered"].empty());
  for (auto& k : view["parked"]) {
    auto key = k["key"].get<std::string>();
    INFO(key);
    auto& listed = parked.find(key)->second.second;
    CHECK(k["node"] == owner[key]);
    CHECK(k["service"] == "sequencer");
    CHECK(k["partition"] == listed["partition"]);
    CHECK(k["held"] == listed["held"]);
    CHECK(k["error"] == listed["error"]); // whole, as the node said it
  }

  // The downstream is back. Each release goes to the node that does not own
  // the key: that node forwards it, the owner carries it out.
  std::filesystem::remove(c.fail_file);
  for (auto& b : bad) {
    INFO(b.key);
    auto other = owner[b.key] == "n1" ? "n2" : "n1";
    // GET /parked lists a node's own keys only.
    auto listing = c.nodes[other].get("/parked");
    REQUIRE(listing.is_object());
    for (auto& k : listing["parked"])
      CHECK(k["key"] != b.key);
    auto [status, answer] = c.nodes[other].release(b.key, b.action);
    INFO(answer.dump());
    if (b.action == "drop")
      CHECK((status == 200 || status == 202));
    else
      CHECK(status == 202);
    CHECK(answer["node"] == owner[b.key]); // carried out by the owner
    CHECK(answer["service"] == "sequencer");
    CHECK(answer["key"] == b.key);
    CHECK(answer["action"] == b.action);
    CHECK(answer["held"] == b.records - b.bad);
  }
  REQUIRE(test::wait_until(
      [&] {
        auto now = c.parked();
        return now && now->empty();
      },
      60s));
  for (auto& [id, n] : c.nodes) {
    auto m = n.get("/metrics.json");
    CHECK(m["parked_keys"] == 0);
    CHECK(m["parked_records"] == 0);
  }
  // Carried out where the key was parked, nowhere else.
  for (auto& b : bad) {
    INFO(b.key);
    auto other = owner[b.key] == "n1" ? "n2" : "n1";
    const std::vector<std::string> release_line{"by request", "'" + b.key + "'"};
    CHECK(lines_with(slurp(c.nodes[owner[b.key]].log), release_line) >= 1);
    CHECK(lines_with(slurp(c.nodes[other].log), release_line) == 0);
  }

  // Released keys take new records as any other.
  std::vector<kv> after;
  for (auto& b : bad)
    after.emplace_back(b.key, value(b.records));
  test::produce(c.in, after.size(), [&](size_t i) { return after[i]; });

  // The reference: every other key once per record; to-retry all of its 10
  // and the new one; to-skip all but its bad record; to-drop its first.
  const size_t total = others * 3 + 11 + 6 + 2;
  auto outs = outputs(c.out, total);
  size_t got = 0;
  for (auto& [k, v] : outs)
    got += v.size();
  CHECK(got == total);
  for (int k = 0; k < others; ++k) {
    auto key = "k" + std::to_string(k);
    INFO(key);
    REQUIRE(outs[key] == numbered({0, 1, 2}));
  }
  CHECK(outs["to-retry"] == numbered({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
  CHECK(outs["to-skip"] == numbered({0, 1, 3, 4, 5, 6}));
  CHECK(outs["to-drop"] == numbered({0, 5}));
  CHECK(test::wait_until(
      [&] { return test::committed_total(c.app, c.in, 6) == test::end_offsets(c.in); },
      30s));

  // The skipped record is in the dead-letter topic, with where it came from.
  auto dlq = test::consume_all(c.app + "-sequencer-dlq", 1, 30s, 2s);
  REQUIRE(dlq.size() == 1);
  CHECK(dlq[0].key == std::optional<std::string>{"to-skip"});
  CHECK(dlq[0].value == std::optional<std::string>{"{not json"});
  for (auto& [id, n] : c.nodes)
    CHECK(n.proc->stop(SIGTERM, 60s) == 0);
}
