// Hot standbys against the real broker [broker]: a standby manager tails a
// store's changelog (plain records, a committed and an aborted transaction)
// into a local RocksDB shard, serves reads once caught up, and a task that
// opens the same folder after release() restores only what came after the
// standby's last round. A standby whose changelog does not exist says so
// while the others go on.

#include <catch2/catch.hpp>

#include <filesystem>
#include <thread>

#include "test_cluster.hpp"
#include "weft/actors/node_context.hpp"
#include "weft/actors/standby.hpp"
#include "weft/state/shard.hpp"

using namespace weft;
using namespace std::chrono_literals;

namespace {

/// A task's changelog sink that is never written to here (the task only
/// restores).
struct unused_sink final : state::changelog_sink {
  void log_change(std::string_view, std::string_view, std::optional<std::string_view>,
                  timestamp_ms) override {}
};

/// What the node gives its restorer (node.cpp).
std::map<std::string, std::string> reader_props(const std::string& app) {
  return {{"bootstrap.servers", test::bootstrap()},
          {"group.id", app + "-restore"},
          {"isolation.level", "read_committed"},
          {"fetch.wait.max.ms", "10"}};
}

/// The standby's value of `key` in store "counts" of partition 1, with no lag
/// allowed: the value, "<none>" or "<errc name>".
std::string standby_value(const detail::standby_manager& m, const std::string& key) {
  auto v = m.get("counts", 1, key, 0);
  if (!v) return std::string{"<"} + to_string(v.error().code()) + ">";
  return v->value_or("<none>");
}

int64_t lag_of(const detail::standby_manager& m, detail::task_key key) {
  auto lags = m.lags();
  auto i = lags.find(key);
  return i == lags.end() ? -2 : i->second;
}

} // namespace

TEST_CASE(
    "a standby tails a changelog through transactions, serves reads once caught up, "
    "and a task opening its folder afterwards restores only the newer changes",
    "[broker][standby]") {
  auto app = test::unique_name("standby");
  auto topic = state::changelog_topic(app, "counts");
  auto admin = test::admin();
  REQUIRE(
      admin->ensure_topics({{topic, 2, 1, {{"cleanup.policy", "compact"}}}}, 10000).ok());
  // 2,000 changes to 500 keys: k-j ends at v-(1500 + j).
  test::produce(
      topic, 2000,
      [](size_t i) {
        return std::make_pair("k-" + std::to_string(i % 500), "v-" + std::to_string(i));
      },
      1);

  auto state_dir = std::filesystem::temp_directory_path() / (app + "-state");
  detail::node_context ctx;
  ctx.application_id = app;
  ctx.state_dir = state_dir.string();
  ctx.stores = state::make_rocksdb_factory(16 << 20, 16 << 20);
  ctx.services.resize(3);
  ctx.services[0].name = "stateless";
  ctx.services[1].name = "counter";
  ctx.services[1].stores = {{"counts"}};
  ctx.services[2].name = "ghost"; // its changelog was never created
  ctx.services[2].stores = {{"nowhere"}};

  {
    detail::standby_manager standbys{&ctx, reader_props(app), 5000, 20};
    standbys.set({{0, 1}, {1, 1}, {2, 0}});
    CHECK(standbys.lags().count({0, 1}) == 0); // no stores: ignored

    SECTION("it catches up, follows, and hands over at its checkpoint") {
      REQUIRE(test::wait_until([&] { return lag_of(standbys, {1, 1}) == 0; }, 30s));
      CHECK(standby_value(standbys, "k-0") == "v-1500");
      CHECK(standby_value(standbys, "k-499") == "v-1999");
      CHECK(standby_value(standbys, "k-500") == "<none>");
      CHECK(!standbys.get("counts", 0, "k-0", 1000)); // partition 0 is not held
      CHECK(standbys.get("counts", 0, "k-0", 1000).error().code() == errc::not_found);

      // A committed transaction, an aborted one, then a plain record: once the
      // standby has that one, it is past the abort marker.
      auto producer = kafka::producer::create(
          {{"bootstrap.servers", test::bootstrap()}, {"transactional.id", app + "-txn"}});
      REQUIRE(producer.ok());
      auto& p = **producer;
      REQUIRE(p.init_transactions(10000).ok());
      REQUIRE(p.begin_transaction().ok());
      for (int j = 0; j < 100; ++j)
        REQUIRE(
            p.send(topic, 1, "k-" + std::to_string(j), "w-" + std::to_string(j)).ok());
      REQUIRE(p.commit_transaction(10000).ok());
      REQUIRE(p.begin_transaction().ok());
      for (int j = 0; j < 100; ++j)
        REQUIRE(p.send(topic, 1, "k-" + std::to_string(j), std::string{"aborted"}).ok());
      REQUIRE(p.flush(10000).ok()); // in the log before the abort
      REQUIRE(p.abort_transaction(10000).ok());
      test::produce(
          topic, 1, [](size_t) { return std::make_pair("sentinel", "s"); }, 1);

      REQUIRE(test::wait_until([&] { return standby_value(standbys, "sentinel") == "s"; },
                               30s));
      CHECK(lag_of(standbys, {1, 1}) == 0);
      CHECK(standby_value(standbys, "k-0") == "w-0");
      CHECK(standby_value(standbys, "k-99") == "w-99");
      CHECK(standby_value(standbys, "k-100") == "v-1600");
      for (int j = 0; j < 100; ++j)
        REQUIRE(standby_value(standbys, "k-" + std::to_string(j)) != "aborted");

      standbys.release({1, 1});
      CHECK(standbys.lags().count({1, 1}) == 0);
      CHECK(standbys.get("counts", 1, "k-0", 1000).error().code() == errc::not_found);
      standbys.release({1, 1}); // not held: a no-op

      // Written after the hand-over: all the task has to restore.
      test::produce(
          topic, 7,
          [](size_t i) {
            return std::make_pair("late-" + std::to_string(i), "x-" + std::to_string(i));
          },
          1);
      unused_sink sink;
      auto task =
          state::shard::open(*ctx.stores, ctx.state_dir, app, 1, ctx.services[1].stores,
                             &sink, /*transactional=*/true);
      REQUIRE(task.ok());
      auto reader = kafka::consumer::create(reader_props(app));
      REQUIRE(reader.ok());
      auto restored = (*task)->restore(**reader, 1000, 10000);
      REQUIRE(restored.ok());
      CHECK(*restored == 7);
      auto* kv = (*task)->kv("counts");
      CHECK(kv->get("k-0")->value_or("") == "w-0");
      CHECK(kv->get("k-100")->value_or("") == "v-1600");
      CHECK(kv->get("late-6")->value_or("") == "x-6");
    }

    SECTION(
        "giving a standby up in the middle of its catch-up keeps what it restored, and "
        "the task restores the rest") {
      // k-j ends at v-(299000 + j).
      const size_t total = 300000;
      test::produce(
          topic, total,
          [](size_t i) {
            return std::make_pair("k-" + std::to_string(i % 1000),
                                  "v-" + std::to_string(i));
          },
          0);
      auto slowest = std::chrono::steady_clock::duration::zero();
      for (int i = 0; i < 6; ++i) {
        standbys.set({{1, 0}});
        std::this_thread::sleep_for(std::chrono::milliseconds(10 * (i + 1)));
        auto start = std::chrono::steady_clock::now();
        standbys.release({1, 0});
        slowest = std::max(slowest, std::chrono::steady_clock::now() - start);
      }
      CHECK(slowest < 2s);
      unused_sink sink;
      auto task =
          state::shard::open(*ctx.stores, ctx.state_dir, app, 0, ctx.services[1].stores,
                             &sink, /*transactional=*/true);
      REQUIRE(task.ok());
      auto reader = kafka::consumer::create(reader_props(app));
      REQUIRE(reader.ok());
      auto restored = (*task)->restore(**reader, 1000, 10000);
      REQUIRE(restored.ok());
      INFO("the task restored " << *restored << " of " << total << "; slowest release "
                                << std::chrono::duration<double>(slowest).count()
                                << " s");
      CHECK(*restored < total); // the standby got somewhere
      auto* kv = (*task)->kv("counts");
      for (size_t j = 0; j < 1000; ++j)
        REQUIRE(kv->get("k-" + std::to_string(j))->value_or("") ==
                "v-" + std::to_string(total - 1000 + j));
    }

    SECTION("a standby without a changelog reports it and holds up no other") {
      REQUIRE(test::wait_until(
          [&] {
            return standbys.errors().count({2, 0}) == 1;
          },
          15s));
      auto error = standbys.errors().at({2, 0});
      CHECK(error.code() == errc::not_found);
      CHECK_THAT(error.message(),
                 Catch::Contains(state::changelog_topic(app, "nowhere")) &&
                     Catch::Contains("does not exist"));
      CHECK(lag_of(standbys, {2, 0}) == -1);
      CHECK(standbys.get("nowhere", 0, "k", 1000).error().code() ==
            errc::state_not_ready);
      REQUIRE(test::wait_until([&] { return lag_of(standbys, {1, 1}) == 0; }, 30s));
      CHECK(standby_value(standbys, "k-0") == "v-1500");
      standbys.set({}); // drops both, promptly
      CHECK(standbys.lags().empty());
      CHECK(standbys.errors().empty());
    }

  } // the standbys close before their folders go

  (void)admin->delete_topics({topic}, 10000);
  std::error_code ec;
  std::filesystem::remove_all(state_dir, ec);
}
