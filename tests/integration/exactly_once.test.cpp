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

#include "pipeline.hpp"
#include "test_cluster.hpp"
#include "weft/serde.hpp"

using namespace weft;
using namespace std::chrono_literals;

using namespace weft::test::pipeline;

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
          "past the record exactly once, and records that fail before any effect are "
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
  // Six records were bad; one skipped in the aborted epoch is read and
  // skipped again after the roll-back (the outputs below show each once).
  CHECK((*m)["bad_records"].get<int64_t>() >= 6);
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
