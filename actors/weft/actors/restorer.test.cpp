// The restore thread against librdkafka's mock cluster: a restore that fails
// while the broker is away is retried with new clients and completes once it
// is back; cancelling the only job of a stuck batch returns at once.

#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <future>
#include <thread>
#include <unistd.h>

#include "weft/actors/restorer.hpp"
#include "weft/kafka/mock_cluster.hpp"
#include "weft/kafka/producer.hpp"
#include "weft/state/shard.hpp"

using namespace std::chrono_literals;
using weft::detail::restorer;

namespace {

struct temp_dir {
  std::string path;
  temp_dir() {
    char tmpl[] = "/tmp/weft-restorer-test-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~temp_dir() { std::filesystem::remove_all(path); }
};

const std::vector<weft::state::store_spec> specs{
    {"counts", weft::state::store_spec::kind::kv, 0, false}};

/// A mock cluster whose "counts" changelog of application `app` holds `n`
/// changes k0..k{n-1} = v0..v{n-1} on partition 0.
std::unique_ptr<weft::kafka::mock_cluster> changelog_with(const std::string& app, int n) {
  auto mock = weft::kafka::mock_cluster::create(1);
  REQUIRE(mock.ok());
  auto topic = weft::state::changelog_topic(app, "counts");
  REQUIRE((*mock)->create_topic(topic, 1).ok());
  auto p = weft::kafka::producer::create(
      {{"bootstrap.servers", (*mock)->bootstrap_servers()}});
  REQUIRE(p.ok());
  for (int i = 0; i < n; ++i)
    REQUIRE((*p)->send(topic, 0, "k" + std::to_string(i), "v" + std::to_string(i)).ok());
  REQUIRE((*p)->flush(10'000).ok());
  return std::move(*mock);
}

/// An application whose changelog holds `changes` records on a mock broker
/// that is down, a state folder, and a restore thread whose attempts each
/// give up after a second.
struct restore_setup {
  std::string app;
  std::unique_ptr<weft::kafka::mock_cluster> mock;
  temp_dir dir;
  std::unique_ptr<weft::state::store_factory> factory =
      weft::state::make_rocksdb_factory(8 << 20, 16 << 20);
  std::unique_ptr<restorer> r;
  restore_setup(std::string name, int changes)
    : app(std::move(name)), mock(changelog_with(app, changes)) {
    r = std::make_unique<restorer>(
        std::map<std::string, std::string>{
            {"bootstrap.servers", mock->bootstrap_servers()},
            {"group.id", app + "-restore"},
            {"enable.auto.commit", "false"}},
        1000, 1000);
    REQUIRE(mock->broker_down(1).ok());
  }
  restorer::open_fn open() {
    return [this] {
      return weft::state::shard::open(*factory, dir.path, app, 0, specs, nullptr);
    };
  }
};

struct outcome {
  bool ok = false;
  std::string error;
  uint64_t restored = 0;
  std::string k7;
};

} // namespace

TEST_CASE("the restore thread retries a restore cut off by the broker with new clients "
          "and completes it once the broker is back",
          "[restorer][mock]") {
  restore_setup setup{"restorer-retry", 100};
  auto& r = *setup.r;
  auto& mock = setup.mock;
  std::promise<outcome> done;
  auto started = std::chrono::steady_clock::now();
  r.submit(setup.open(), [&](weft::result<restorer::shard_ptr> sh, uint64_t restored) {
    outcome o;
    o.ok = sh.ok();
    if (!sh) {
      o.error = sh.error().message();
    } else {
      o.restored = restored;
      auto v = (*sh)->kv("counts")->get("k7");
      if (v.ok() && *v) o.k7 = **v;
    }
    done.set_value(o);
  });
  // The broker stays away for a few attempts.
  auto result = done.get_future();
  CHECK(result.wait_for(3s) == std::future_status::timeout);
  REQUIRE(mock->broker_up(1).ok());
  REQUIRE(result.wait_for(restorer::retry_window) == std::future_status::ready);
  auto o = result.get();
  INFO("restore failed: " << o.error);
  REQUIRE(o.ok);
  CHECK(o.restored == 100);
  CHECK(o.k7 == "v7");
  CHECK(r.retries() >= 1); // the fault hit: at least one attempt failed
  CHECK(std::chrono::steady_clock::now() - started >= 3s);
}

TEST_CASE("cancelling the only job of a restore that waits for an absent broker "
          "returns without waiting for the retries to end",
          "[restorer][mock]") {
  restore_setup setup{"restorer-cancel", 10};
  auto& r = *setup.r;
  std::atomic<bool> called{false};
  auto ticket = r.submit(
      setup.open(), [&](weft::result<restorer::shard_ptr>, uint64_t) { called = true; });
  // Let it fail and back off at least once.
  auto until = std::chrono::steady_clock::now() + 20s;
  while (r.retries() == 0 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(50ms);
  REQUIRE(r.retries() >= 1);
  auto t0 = std::chrono::steady_clock::now();
  r.cancel(ticket);
  auto took = std::chrono::steady_clock::now() - t0;
  // One attempt in flight may finish its own bounded wait (the 1 s timeout).
  CHECK(took < 5s);
  CHECK(took < restorer::retry_window / 4);
}
