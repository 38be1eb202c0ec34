// bad.record.policy=park against the real broker, node processes started
// by the tests ([broker]): a bad record parks its key while 10,000 other
// keys flow and commit; the parked keys are listed (GET /parked, metrics),
// bad calls are refused with a reason, and retry, skip and drop release
// them in order; a kill -9 while a key is parked loses nothing and a new
// owner (a node with an empty state folder) still holds the key and
// releases it. Every test runs under exactly_once and at_least_once, and
// checks every key's outputs against a reference computed here. One more,
// at_least_once only: a kill -9 after the parked records reached the
// changelog and before the input offsets committed holds nothing twice and
// keeps an earlier record of the key in front of its bad one.

#include <catch2/catch.hpp>

#include <httplib.h>
#include <signal.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "test_cluster.hpp"

using namespace weft;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

using kv = std::pair<std::string, std::string>;

std::string value(int64_t n, const std::string& tag = "") {
  return json{{"n", n}, {"tag", tag}}.dump();
}

/// A node process running the sequencer (--test.service=sequence) with
/// bad.record.policy=park set for it, its endpoint on `port`.
struct park_node {
  std::string app, in, out, fail_file, state_dir, guarantee;
  int port;
  std::unique_ptr<test::child_process> proc;

  void start(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args{"--test.service=sequence",
                                  "--test.in=" + in,
                                  "--test.out=" + out,
                                  "--test.fail.file=" + fail_file,
                                  "--application.id=" + app,
                                  "--bootstrap.servers=" + test::bootstrap(),
                                  "--state.dir=" + state_dir,
                                  "--processing.guarantee=" + guarantee,
                                  "--service.sequencer.bad.record.policy=park",
                                  "--bad.record.retries=1",
                                  "--bad.record.retry.backoff.ms=200",
                                  "--http.port=" + std::to_string(port)};
    args.insert(args.end(), extra.begin(), extra.end());
    proc = std::make_unique<test::child_process>(test::built("tests/weft-test-node"),
                                                 args, "/tmp/" + app + ".log");
    proc->note_end_in_log();
  }

  httplib::Client client() const {
    httplib::Client c{"127.0.0.1", port};
    c.set_connection_timeout(1);
    c.set_read_timeout(10);
    return c;
  }

  /// GET /parked, or null while the endpoint does not answer.
  json parked() const {
    auto res = client().Get("/parked");
    if (!res || res->status != 200) return nullptr;
    return json::parse(res->body, nullptr, false);
  }

  json metrics() const {
    auto res = client().Get("/metrics.json");
    if (!res || res->status != 200) return nullptr;
    return json::parse(res->body, nullptr, false);
  }

  /// POST /parked/sequencer/<key>?<query>: (status, body); -1 if no answer.
  std::pair<int, std::string> release(const std::string& key, const std::string& query,
                                      const std::string& service = "sequencer") const {
    auto path = "/parked/" + service + (key.empty() ? "" : "/" + key) + query;
    auto res = client().Post(path.c_str());
    if (!res) return {-1, ""};
    return {res->status, res->body};
  }

  /// Releases a key, retrying while the partition is not ready (503).
  int release_ready(const std::string& key, const std::string& action) const {
    int code = -1;
    test::wait_until(
        [&] {
          code = release(key, "?action=" + action).first;
          return code != 503 && code != -1;
        },
        30s);
    return code;
  }
};

/// A parked key as GET /parked lists it, by key; empty when not parked.
std::map<std::string, json> parked_by_key(const json& listing) {
  std::map<std::string, json> out;
  if (!listing.is_object()) return out;
  for (auto& k : listing["parked"])
    out[k["key"].is_string() ? k["key"].get<std::string>() : "(null)"] = k;
  return out;
}

/// Every output value per key, in offset order (read_committed).
std::map<std::string, std::vector<std::string>>
outputs(const std::string& topic, size_t expected, std::chrono::milliseconds quiet) {
  std::map<std::string, std::vector<std::string>> by_key;
  auto recs = test::consume_all(topic, expected, 120s, quiet);
  std::sort(recs.begin(), recs.end(), [](auto& a, auto& b) {
    return std::tie(a.partition, a.offset) < std::tie(b.partition, b.offset);
  });
  for (auto& r : recs)
    by_key[r.key.value_or("(null)")].push_back(r.value.value_or(""));
  return by_key;
}

/// The n of each output "<count>:<n>".
std::vector<int64_t> ns(const std::vector<std::string>& outs) {
  std::vector<int64_t> out;
  for (auto& o : outs)
    out.push_back(std::stoll(o.substr(o.find(':') + 1)));
  return out;
}

/// The sequencer's exactly-once outputs for a key whose inputs had these n.
std::vector<std::string> numbered(const std::vector<int64_t>& n) {
  std::vector<std::string> out;
  for (size_t i = 0; i < n.size(); ++i)
    out.push_back(std::to_string(i + 1) + ":" + std::to_string(n[i]));
  return out;
}

std::vector<int64_t> range(int64_t from, int64_t to) {
  std::vector<int64_t> out;
  for (auto i = from; i < to; ++i)
    out.push_back(i);
  return out;
}

/// At least once: the n values in order, each at least once; a repeat
/// (a replay after a failure or a crash) only right after itself.
bool in_order_at_least_once(const std::vector<int64_t>& got,
                            const std::vector<int64_t>& want) {
  std::vector<int64_t> once;
  for (auto n : got)
    if (once.empty() || once.back() != n) once.push_back(n);
  return once == want;
}

park_node make_node(const std::string& guarantee, int port_offset) {
  park_node n;
  n.guarantee = guarantee;
  n.app = test::unique_name("park");
  n.in = test::unique_name("park-in");
  n.out = test::unique_name("park-out");
  n.fail_file = "/tmp/" + n.app + ".failing";
  n.state_dir = "/tmp/" + n.app + "-state";
  n.port = 16000 + (::getpid() % 900) * 2 + port_offset;
  std::ofstream{n.fail_file} << "the downstream is away\n";
  return n;
}

} // namespace

TEST_CASE("a poison record parks its key while 10,000 other keys flow and commit, and "
          "retry, skip and drop release parked keys in order",
          "[broker]") {
  auto guarantee = GENERATE(as<std::string>{}, "exactly_once", "at_least_once");
  bool eos = guarantee == "exactly_once";
  INFO(guarantee);
  auto node = make_node(guarantee, 0);
  test::create_topics({node.in, node.out}, 6);

  // Rounds: round r writes record r of every key that has one, so each
  // bad record sits in the middle of its key's stream and of everyone's.
  const int others = 10000;
  struct parked_key {
    std::string key;
    int records;
    int bad;
    std::string bad_value;
  };
  const std::vector<parked_key> bad_keys{
      {"poisoned-early", 10, 4, value(4, "poison")},     // throws before effects
      {"undecodable", 6, 2, "{not json"},                // cannot be decoded
      {"dropped", 5, 0, value(0, "poison")},             // parked at its first record
      {"poisoned-late", 8, 3, value(3, "poison-late")}}; // throws after effects
  std::vector<kv> input;
  for (int r = 0; r < 10; ++r) {
    if (r < 3)
      for (int k = 0; k < others; ++k)
        input.emplace_back("k" + std::to_string(k), value(r));
    for (auto& b : bad_keys)
      if (r < b.records) input.emplace_back(b.key, r == b.bad ? b.bad_value : value(r));
  }
  test::produce(node.in, input.size(), [&](size_t i) { return input[i]; });
  node.start();

  // Parked: the four keys, every later record held; the early poison was
  // retried once automatically (bad.record.retries=1) and failed again.
  std::map<std::string, json> parked;
  REQUIRE(test::wait_until(
      [&] {
        parked = parked_by_key(node.parked());
        return parked.size() == 4 && parked["poisoned-early"].value("attempts", 0) == 2 &&
               parked["poisoned-late"].value("attempts", 0) == 2;
      },
      120s));
  CHECK(parked["poisoned-early"]["held"] == 6);
  CHECK(parked["poisoned-early"]["head"]["offset"].get<int64_t>() >= 0);
  CHECK(parked["poisoned-early"]["error"].get<std::string>().find(
            "downstream unavailable") != std::string::npos);
  CHECK(parked["poisoned-early"]["retry_at_ms"] ==
        0); // retries used up: an operator's turn
  CHECK(parked["undecodable"]["held"] == 4);
  CHECK(parked["undecodable"]["attempts"] == 1); // never retried: it cannot be decoded
  CHECK(parked["undecodable"]["retry_at_ms"] == 0);
  CHECK(parked["dropped"]["held"] == 5);
  CHECK(parked["poisoned-late"]["held"] == 5);
  auto m = node.metrics();
  REQUIRE(m.is_object());
  CHECK(m["parked_keys"] == 4);
  CHECK(m["parked_records"] == 20);

  // Every other key's results are committed, and so are the input offsets.
  // poisoned-late emits before it throws: under at_least_once each of its
  // two failed runs (the first and the automatic retry) left an output.
  const size_t before = others * 3 + 4 + 2 + 0 + 3 + (eos ? 0 : 2);
  auto outs = outputs(node.out, before, 3s);
  for (int k = 0; k < others; ++k) {
    auto key = "k" + std::to_string(k);
    INFO(key);
    REQUIRE(outs[key] == numbered({0, 1, 2}));
  }
  CHECK(outs["poisoned-early"] == numbered(range(0, 4)));
  CHECK(outs["undecodable"] == numbered({0, 1}));
  CHECK(outs["dropped"].empty());
  // Its effects before the throw: rolled back under exactly_once, kept
  // (once per failed run) under at_least_once.
  if (eos)
    CHECK(outs["poisoned-late"] == numbered(range(0, 3)));
  else
    CHECK(outs["poisoned-late"] == numbered({0, 1, 2, 3, 3}));
  CHECK(test::wait_until(
      [&] {
        return test::committed_total(node.app, node.in, 6) == test::end_offsets(node.in);
      },
      30s));

  // Bad calls get a 4xx with a reason.
  auto refused = [&](const std::string& key, const std::string& query, int code,
                     const std::string& service = "sequencer") {
    auto [status, body] = node.release(key, query, service);
    INFO(key << query << " -> " << status << " " << body);
    CHECK(status == code);
    auto j = json::parse(body, nullptr, false);
    CHECK(
        (j.is_object() && j.contains("error") && !j["error"].get<std::string>().empty()));
  };
  refused("poisoned-early", "?action=retry", 404, "no-such-service");
  refused("k1", "?action=retry", 404);               // not parked
  refused("poisoned-early", "?action=explode", 400); // no such action
  refused("poisoned-early", "", 400);                // no action
  refused("poisoned-early", "?action=retry&partition=99", 400);
  refused("", "?action=retry", 400);               // no key, no null_key
  refused("", "?action=retry&null_key=true", 400); // the null key needs a partition

  // The downstream is back: release all four.
  std::filesystem::remove(node.fail_file);
  CHECK(node.release_ready("poisoned-early", "retry") == 202);
  CHECK(node.release_ready("undecodable", "skip") == 202);
  auto dropped = node.release_ready("dropped", "drop");
  CHECK((dropped == 200 || dropped == 202));
  CHECK(node.release_ready("poisoned-late", "retry") == 202);
  REQUIRE(test::wait_until([&] { return parked_by_key(node.parked()).empty(); }, 60s));
  m = node.metrics();
  CHECK(m["parked_keys"] == 0);
  CHECK(m["parked_records"] == 0);

  // Released keys take new records as any other.
  std::vector<kv> after;
  for (auto& b : bad_keys)
    after.emplace_back(b.key, value(b.records));
  test::produce(node.in, after.size(), [&](size_t i) { return after[i]; });

  const size_t total = others * 3 + 11 + 6 + 1 + 9 + (eos ? 0 : 2);
  outs = outputs(node.out, total, 3s);
  for (int k = 0; k < others; ++k)
    REQUIRE(outs["k" + std::to_string(k)] == numbered({0, 1, 2}));
  CHECK(outs["poisoned-early"] == numbered(range(0, 11)));
  CHECK(outs["undecodable"] == numbered({0, 1, 3, 4, 5, 6})); // its bad record skipped
  CHECK(outs["dropped"] == numbered({5}));                    // its records dropped
  if (eos)
    CHECK(outs["poisoned-late"] == numbered(range(0, 9)));
  else
    CHECK(in_order_at_least_once(ns(outs["poisoned-late"]), range(0, 9)));

  // The skipped record is in the dead-letter topic, with where it came from.
  auto dlq = test::consume_all(node.app + "-sequencer-dlq", 1, 30s, 2s);
  REQUIRE(dlq.size() == 1);
  CHECK(dlq[0].key == std::optional<std::string>{"undecodable"});
  CHECK(dlq[0].value == std::optional<std::string>{"{not json"});
  std::map<std::string, std::string> headers;
  for (auto& h : dlq[0].headers)
    headers[h.key] = h.value;
  CHECK(headers["weft.topic"] == node.in);
  CHECK(!headers["weft.error"].empty());
  CHECK(headers["weft.service"] == "sequencer");
  CHECK(node.proc->stop(SIGTERM, 60s) == 0);
  std::filesystem::remove_all(node.state_dir);
}

TEST_CASE("a key parked before a kill -9 is still parked on a new owner that restored "
          "from the changelog, with nothing lost, and its release works there",
          "[broker][slow]") {
  auto guarantee = GENERATE(as<std::string>{}, "exactly_once", "at_least_once");
  bool eos = guarantee == "exactly_once";
  INFO(guarantee);
  auto node = make_node(guarantee, 1);
  test::create_topics({node.in, node.out}, 6);
  const int others = 2000;
  std::vector<kv> input;
  for (int r = 0; r < 6; ++r) {
    if (r < 2)
      for (int k = 0; k < others; ++k)
        input.emplace_back("k" + std::to_string(k), value(r));
    input.emplace_back("held", r == 2 ? value(2, "poison") : value(r));
  }
  test::produce(node.in, input.size(), [&](size_t i) { return input[i]; });
  node.start();
  REQUIRE(test::wait_until(
      [&] {
        auto p = parked_by_key(node.parked());
        return p.count("held") && p["held"]["held"] == 4 &&
               p["held"]["retry_at_ms"] == 0 &&
               test::committed_total(node.app, node.in, 6) == test::end_offsets(node.in);
      },
      120s));
  node.proc->kill_hard();

  // While it is down: more for everyone, the parked key included.
  std::vector<kv> more;
  for (int k = 0; k < others; ++k)
    more.emplace_back("k" + std::to_string(k), value(2));
  for (int r = 6; r < 10; ++r)
    more.emplace_back("held", value(r));
  test::produce(node.in, more.size(), [&](size_t i) { return more[i]; });

  // A new owner: nothing on disk, everything from the changelogs.
  std::filesystem::remove_all(node.state_dir);
  node.state_dir += "-new-owner";
  node.start();
  std::map<std::string, json> parked;
  REQUIRE(test::wait_until(
      [&] {
        parked = parked_by_key(node.parked());
        return parked.count("held") && parked["held"]["held"] == 8;
      },
      120s));
  CHECK(parked.size() == 1);
  CHECK(parked["held"]["error"].get<std::string>().find("downstream unavailable") !=
        std::string::npos);
  CHECK(parked["held"]["attempts"] == 2);

  std::filesystem::remove(node.fail_file);
  CHECK(node.release_ready("held", "retry") == 202);
  REQUIRE(test::wait_until([&] { return parked_by_key(node.parked()).empty(); }, 60s));

  auto outs = outputs(node.out, others * 3 + 10, 3s);
  for (int k = 0; k < others; ++k) {
    auto key = "k" + std::to_string(k);
    INFO(key);
    if (eos)
      REQUIRE(outs[key] == numbered({0, 1, 2}));
    else
      REQUIRE(in_order_at_least_once(ns(outs[key]), {0, 1, 2}));
  }
  if (eos)
    CHECK(outs["held"] == numbered(range(0, 10)));
  else
    CHECK(in_order_at_least_once(ns(outs["held"]), range(0, 10)));
  CHECK(node.proc->stop(SIGTERM, 60s) == 0);
  std::filesystem::remove_all(node.state_dir);
}

TEST_CASE("at_least_once: a kill -9 after the parked store reached its changelog and "
          "before the input offsets committed holds nothing twice, and the key's "
          "earlier record still runs before its bad one",
          "[broker][slow]") {
  auto node = make_node("at_least_once", 3);
  test::create_topics({node.in, node.out}, 1);
  // One partition: others, then the key's good record (offset `others`), its
  // bad one (the head), two more of it, then others again.
  const int others = 200;
  std::vector<kv> input;
  for (int k = 0; k < others; ++k)
    input.emplace_back("k" + std::to_string(k), value(0));
  for (int r = 0; r < 4; ++r)
    input.emplace_back("held", r == 1 ? value(1, "poison") : value(r));
  for (int k = 0; k < others; ++k)
    input.emplace_back("k" + std::to_string(k), value(1));
  const int64_t head_offset = others + 1;
  test::produce(node.in, input.size(), [&](size_t i) { return input[i]; });

  // A commit interval of 10 s: the first tick flushes the stores (the
  // parked store's records reach its changelog), and the input offsets that
  // flush covers commit only at the next tick, 10 s later. The kill lands
  // in between.
  node.start({"--commit.interval.ms=10000"});
  auto changelog = node.app + "-sequencer-parked-changelog";
  auto held_in_changelog = [&] {
    size_t n = 0;
    for (auto& r : test::consume_all(changelog, 4, 5s, 300ms))
      if (r.key && r.key->front() == 'r' && r.key->find("held") != std::string::npos) ++n;
    return n;
  };
  REQUIRE(test::wait_until(
      [&] {
        auto p = parked_by_key(node.parked());
        return p.count("held") && p["held"]["held"] == 3 && held_in_changelog() == 3;
      },
      60s));
  node.proc->kill_hard();
  // The fault hit the window: the head and what it holds are in the
  // changelog, and the offsets committed do not cover the head.
  auto committed = test::committed_total(node.app, node.in, 1);
  INFO("committed " << committed);
  REQUIRE(committed >= 0);
  REQUIRE(committed <= head_offset);

  // Restart on a new owner (everything from the changelogs), default
  // commit interval: the records from the committed offset on come again.
  std::filesystem::remove_all(node.state_dir);
  node.state_dir += "-new-owner";
  node.start();
  REQUIRE(test::wait_until(
      [&] {
        return test::committed_total(node.app, node.in, 1) ==
               static_cast<int64_t>(input.size());
      },
      120s));
  auto parked = parked_by_key(node.parked());
  REQUIRE(parked.count("held"));
  // Before the fix: the re-delivered head and its two followers were held
  // again (6), and the key's earlier record behind them (7).
  CHECK(parked["held"]["held"] == 3);
  CHECK(parked.size() == 1);

  std::filesystem::remove(node.fail_file);
  CHECK(node.release_ready("held", "retry") == 202);
  REQUIRE(test::wait_until([&] { return parked_by_key(node.parked()).empty(); }, 60s));
  auto outs = outputs(node.out, others * 2 + 4, 3s);
  // Nothing committed before the kill: every key ran (some of) its input,
  // then all of it again from the start.
  for (int k = 0; k < others; ++k) {
    auto key = "k" + std::to_string(k);
    auto got = ns(outs[key]);
    INFO(key << ": " << json(got).dump());
    REQUIRE(got.size() >= 2);
    REQUIRE(std::vector<int64_t>(got.end() - 2, got.end()) == std::vector<int64_t>{0, 1});
    auto first_run = std::vector<int64_t>(got.begin(), got.end() - 2);
    REQUIRE(first_run.size() <= 2);
    for (size_t i = 0; i < first_run.size(); ++i)
      CHECK(first_run[i] == static_cast<int64_t>(i));
  }
  INFO("held outputs: " << json(outs["held"]).dump());
  CHECK(in_order_at_least_once(ns(outs["held"]), range(0, 4)));
  CHECK(node.proc->stop(SIGTERM, 60s) == 0);
  std::filesystem::remove_all(node.state_dir);
}
