// Exactly-once against the real broker [broker]: a three-stage pipeline
// (stateless split + re-key, stateful count per key over two inputs, gate)
// run by weft-test-node processes with processing.guarantee=exactly_once.
// Outputs are read with read_committed and must hold every result exactly
// once: through ten SIGKILLs, through a handler that throws mid-epoch, and
// when a second process with the same transactional identity fences the
// first.

#include <catch2/catch.hpp>

#include <httplib.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "test_cluster.hpp"
#include "weft/serde.hpp"

using namespace weft;
using namespace std::chrono_literals;

namespace {

constexpr int partitions = 4;

/// The pipeline's topics, named after one prefix.
struct pipeline_topics {
  std::string in, out;
  std::string a() const { return out + "-a"; }
  std::string b() const { return out + "-b"; }
  std::string counts() const { return out + "-counts"; }
  std::string gated() const { return out + "-gated"; }
};

pipeline_topics make_topics(const std::string& name) {
  pipeline_topics t{test::unique_name(name + "-in"), test::unique_name(name)};
  test::create_topics({t.in, t.a(), t.b(), t.counts(), t.gated()}, partitions);
  return t;
}

/// Event i: id "e<i>", key "k<i % keys>"; keys divisible by 5 only ever get
/// A events, the others alternate A and B.
std::pair<std::string, std::string> event(size_t i, size_t keys) {
  auto k = i % keys;
  auto round = i / keys;
  const char* type = (k % 5 == 0 || round % 2 == 0) ? "A" : "B";
  return {"e" + std::to_string(i), "k" + std::to_string(k) + ":" + type};
}

/// What the pipeline must produce for events [0, n).
struct reference {
  std::map<std::string, int64_t> counts; ///< per key
  std::set<std::string> gated;           ///< keys with an A and a B
  size_t events = 0;
};

reference expected(size_t n, size_t keys, const std::set<std::string>& skipped = {}) {
  reference r;
  std::map<std::string, std::set<char>> types;
  for (size_t i = 0; i < n; ++i) {
    auto [id, v] = event(i, keys);
    auto key = v.substr(0, v.find(':'));
    types[key].insert(v.back());
    if (skipped.count(id)) continue;
    ++r.counts[key];
  }
  for (auto& [k, t] : types)
    if (t.size() == 2) r.gated.insert(k);
  r.events = n;
  return r;
}

/// Checks the committed outputs against `ref`: every event re-keyed once,
/// every key's counts exactly 1, 2, ..., n in order, each gated key once.
void check_outputs(const pipeline_topics& t, const reference& ref,
                   const std::set<std::string>& skipped = {}) {
  size_t total_counts = 0;
  for (auto& [k, n] : ref.counts)
    total_counts += static_cast<size_t>(n);

  auto a = test::consume_all(t.a(), 0, 60s, 2s);
  auto b = test::consume_all(t.b(), 0, 60s, 2s);
  std::map<std::string, int> seen;
  for (auto* part : {&a, &b})
    for (auto& r : *part)
      ++seen[*r.value];
  CHECK(a.size() + b.size() == ref.events);
  size_t dup = 0;
  for (auto& [id, n] : seen)
    if (n != 1) ++dup;
  CHECK(dup == 0);

  auto counts = test::consume_all(t.counts(), total_counts, 120s, 2s);
  CHECK(counts.size() == total_counts);
  std::map<std::string, std::vector<int64_t>> per_key;
  for (auto& r : counts) // in offset order per partition; a key has one partition
    per_key[*r.key].push_back(*int64_serde::deserialize(*r.value));
  size_t bad_keys = 0;
  std::string example;
  for (auto& [k, n] : ref.counts) {
    std::vector<int64_t> want(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i)
      want[static_cast<size_t>(i)] = i + 1;
    if (per_key[k] != want) {
      if (example.empty()) {
        example = k + ":";
        for (auto v : per_key[k])
          example += " " + std::to_string(v);
      }
      ++bad_keys;
    }
  }
  INFO("first key whose counts are not exactly 1..n: " << example);
  CHECK(bad_keys == 0);
  CHECK(per_key.size() == ref.counts.size());

  auto gated = test::consume_all(t.gated(), ref.gated.size(), 60s, 2s);
  std::map<std::string, int> fired;
  for (auto& r : gated)
    ++fired[*r.key];
  CHECK(gated.size() == ref.gated.size());
  size_t wrong = 0;
  for (auto& [k, n] : fired)
    if (n != 1 || !ref.gated.count(k)) ++wrong;
  CHECK(wrong == 0);
}

/// Records in the outputs that only a read_uncommitted reader sees: written
/// by epochs that were aborted (by a kill, a throw or fencing).
int64_t aborted_records(const pipeline_topics& t, size_t committed) {
  int64_t all = 0;
  for (auto& topic : {t.a(), t.b(), t.counts(), t.gated()})
    all += test::end_offsets(topic);
  // Every committed transaction also leaves one marker per partition it
  // wrote to, so this is an upper bound on aborted records.
  return all - static_cast<int64_t>(committed);
}

std::optional<nlohmann::json> metrics(int port) {
  httplib::Client c{"127.0.0.1", port};
  c.set_connection_timeout(1);
  c.set_read_timeout(10);
  auto res = c.Get("/metrics");
  if (!res || res->status != 200) return std::nullopt;
  return nlohmann::json::parse(res->body);
}

std::optional<std::map<std::string, int64_t>> fetch_counts(int port) {
  httplib::Client c{"127.0.0.1", port};
  c.set_connection_timeout(1);
  c.set_read_timeout(30);
  auto res = c.Get("/counts");
  if (!res || res->status != 200) return std::nullopt;
  std::map<std::string, int64_t> out;
  std::istringstream in{res->body};
  std::string key;
  int64_t n;
  while (in >> key >> n)
    out[key] = n;
  return out;
}

std::string slurp(const std::string& path) {
  std::ifstream f{path};
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<std::string> node_args(const pipeline_topics& t, const std::string& app,
                                   const std::string& state_dir, int port) {
  return {"--test.service=pipeline",  "--test.in=" + t.in,
          "--test.out=" + t.out,      "--test.http.port=" + std::to_string(port),
          "--application.id=" + app,  "--bootstrap.servers=" + test::bootstrap(),
          "--state.dir=" + state_dir, "--processing.guarantee=exactly_once"};
}

int test_port(int offset) {
  return 20000 + (::getpid() % 500) * 10 + offset;
}

} // namespace

TEST_CASE("exactly-once: a three-stage pipeline killed with SIGKILL ten times while "
          "200,000 events flow commits every result exactly once",
          "[broker][slow]") {
  const size_t total = 200000, keys = 20000;
  auto t = make_topics("chaos");
  auto app = test::unique_name("chaos");
  auto state_dir = "/tmp/" + app + "-state";
  const int port = test_port(0);
  auto args = node_args(t, app, state_dir, port);
  auto log = "/tmp/" + app + ".log";

  // Input flows while the node is killed: about 8,000 events/s.
  std::atomic<size_t> produced{0};
  std::thread producer{[&] {
    const size_t chunk = 4000;
    for (size_t from = 0; from < total; from += chunk) {
      auto start = std::chrono::steady_clock::now();
      test::produce(t.in, chunk, [&](size_t i) { return event(from + i, keys); });
      produced = from + chunk;
      std::this_thread::sleep_until(start + 500ms);
    }
  }};
  struct join_guard {
    std::thread& t;
    ~join_guard() {
      if (t.joinable()) t.join();
    }
  } guard{producer};

  std::mt19937 rng{static_cast<unsigned>(::getpid())};
  std::uniform_int_distribution<int> pause_ms{700, 2500};
  for (int kill = 0; kill < 10; ++kill) {
    test::child_process node{test::built("tests/weft-test-node"), args, log};
    std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms(rng)));
    REQUIRE(node.running());
    node.kill_hard();
  }
  producer.join();
  auto ref = expected(total, keys);
  test::child_process last{test::built("tests/weft-test-node"), args, log};
  size_t total_counts = total;
  // Done when every count is committed (duplicates would only add more).
  REQUIRE(test::wait_until(
      [&] {
        return test::consume_all(t.counts(), total_counts, 5s).size() >= total_counts;
      },
      240s));
  auto m = metrics(port);
  REQUIRE(m);
  CHECK(last.stop(SIGTERM, 60s) == 0);
  check_outputs(t, ref);
  auto final_counts = total_counts + total + ref.gated.size();
  WARN("exactly-once chaos: 10 SIGKILLs, each aborting the epoch it interrupted; the "
       "last node aborted "
       << (*m)["epochs_aborted"].get<int64_t>() << " epochs itself and committed "
       << (*m)["epochs_committed"].get<int64_t>() << "; records and transaction markers "
       << "beyond the committed results in the output topics: "
       << aborted_records(t, final_counts));
  std::filesystem::remove_all(state_dir);
}

TEST_CASE("exactly-once: a handler that throws mid-epoch aborts the epoch, its state "
          "and outputs vanish, and with bad.record.policy=skip processing continues "
          "past the record exactly once; records that fail before any effect are "
          "skipped without a roll-back",
          "[broker]") {
  const size_t total = 20000, keys = 2000;
  auto t = make_topics("abort");
  test::produce(t.in, total, [&](size_t i) { return event(i, keys); });
  // Five malformed events: the splitter throws before it has any effect, so
  // the policy handles them without a roll-back.
  test::produce(t.in, 5, [](size_t i) {
    return std::make_pair("bad" + std::to_string(i), std::string{"no type"});
  });
  // The counter throws on event e7777 after it counted and emitted it.
  const std::string poison = "e7777";
  auto app = test::unique_name("abort");
  auto state_dir = "/tmp/" + app + "-state";
  const int port = test_port(1);
  auto args = node_args(t, app, state_dir, port);
  args.push_back("--test.poison=" + poison);
  args.push_back("--service.pair-counter.bad.record.policy=skip");
  args.push_back("--service.splitter.bad.record.policy=skip");
  auto log = "/tmp/" + app + ".log";
  test::child_process node{test::built("tests/weft-test-node"), args, log};

  auto ref = expected(total, keys, {poison});
  size_t total_counts = total - 1;
  REQUIRE(test::wait_until(
      [&] {
        return test::consume_all(t.counts(), total_counts, 5s).size() >= total_counts;
      },
      120s));
  auto m = metrics(port);
  REQUIRE(m);
  // Only the record that had effects rolled an epoch back.
  CHECK((*m)["epochs_aborted"].get<int64_t>() == 1);
  CHECK((*m)["bad_records"].get<int64_t>() == 6);
  // The state: the poisoned event's key counts one less than its events.
  auto counts = fetch_counts(port);
  REQUIRE(counts);
  CHECK(*counts == ref.counts);
  CHECK(node.stop(SIGTERM, 60s) == 0);
  check_outputs(t, ref, {poison});
  CHECK_THAT(slurp(log), Catch::Contains("aborting the epoch"));
  std::filesystem::remove_all(state_dir);
}

TEST_CASE("exactly-once: a second process with the same transactional identity fences "
          "the first, which stops without committing, and every result is in the "
          "output once",
          "[broker]") {
  const size_t total = 40000, keys = 4000;
  auto t = make_topics("fence");
  test::produce(t.in, total / 2, [&](size_t i) { return event(i, keys); });
  auto app = test::unique_name("fence");
  auto dir_a = "/tmp/" + app + "-a", dir_b = "/tmp/" + app + "-b";
  auto args_a = node_args(t, app, dir_a, test_port(2));
  auto args_b = node_args(t, app, dir_b, test_port(3));
  args_a.push_back("--node.id=twin");
  args_b.push_back("--node.id=twin");
  auto log_a = "/tmp/" + app + "-a.log", log_b = "/tmp/" + app + "-b.log";

  test::child_process first{test::built("tests/weft-test-node"), args_a, log_a};
  REQUIRE(test::wait_until([&] { return test::end_offsets(t.counts()) > 1000; }, 60s));
  test::child_process second{test::built("tests/weft-test-node"), args_b, log_b};
  // The first learns at its next transactional call that it is fenced.
  REQUIRE(test::wait_until([&] { return !first.running(); }, 60s));
  CHECK(first.stop(SIGKILL, 1s) != 0);
  CHECK_THAT(slurp(log_a), Catch::Contains("fenced"));
  test::produce(t.in, total / 2, [&](size_t i) { return event(total / 2 + i, keys); });
  auto ref = expected(total, keys);
  REQUIRE(test::wait_until(
      [&] { return test::consume_all(t.counts(), total, 5s).size() >= total; }, 120s));
  CHECK(second.stop(SIGTERM, 60s) == 0);
  check_outputs(t, ref);
  std::filesystem::remove_all(dir_a);
  std::filesystem::remove_all(dir_b);
}
