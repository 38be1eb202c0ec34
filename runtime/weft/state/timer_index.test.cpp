// The timer index over real RocksDB stores (the production stack: metered,
// caching, changelogging): due order, replace, cancel, taking and removing,
// a rebuild from the changelog it wrote, and an aborted exactly-once epoch.

#include <catch2/catch.hpp>

#include <filesystem>
#include <map>
#include <random>
#include <unistd.h>

#include "weft/state/layered_store.hpp"
#include "weft/state/shard.hpp"
#include "weft/state/timer_index.hpp"

using namespace weft;
using namespace weft::state;

namespace {

struct temp_dir {
  std::string path;
  temp_dir() {
    char tmpl[] = "/tmp/weft-timer-test-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~temp_dir() { std::filesystem::remove_all(path); }
};

/// Keeps every change logged, in order, as a changelog would.
struct recording_sink final : changelog_sink {
  std::vector<change> log;
  void log_change(std::string_view, std::string_view key,
                  std::optional<std::string_view> value, timestamp_ms) override {
    log.push_back({std::string{key}, value
                                         ? std::optional<std::string>{std::string{*value}}
                                         : std::nullopt});
  }
};

timer make(std::string key, std::string name, timer_clock clock, timestamp_ms t,
           std::string payload = {}) {
  return timer{std::move(key), std::move(name), clock, t, std::move(payload)};
}

/// "key/name@time" of each timer, in the order given.
std::vector<std::string> names(const std::vector<timer>& ts) {
  std::vector<std::string> out;
  for (auto& t : ts)
    out.push_back(t.key + "/" + t.name + "@" + std::to_string(t.time));
  return out;
}

std::vector<timer> take(timer_index& idx, timer_clock c, timestamp_ms now,
                        size_t max = 1000) {
  auto r = idx.take_due(c, now, max);
  REQUIRE(r.ok());
  return std::move(r).value();
}

/// Takes and removes every due timer, in batches of `batch`.
std::vector<timer> fire(timer_index& idx, timer_clock c, timestamp_ms now,
                        size_t batch = 1000) {
  std::vector<timer> all;
  while (idx.maybe_due(c, now)) {
    auto due = take(idx, c, now, batch);
    if (due.empty()) break;
    for (auto& t : due) {
      REQUIRE(idx.remove_taken(t).ok());
      all.push_back(t);
    }
  }
  return all;
}

std::unique_ptr<kv_store> open_store(store_factory& f, const std::string& dir,
                                     changelog_sink* sink) {
  auto s =
      f.kv(dir, store_spec{"t-timers", store_spec::kind::kv, 0, true}, sink, nullptr);
  REQUIRE(s.ok());
  return std::move(s).value();
}

} // namespace

TEST_CASE("timers come due in time order per clock, never before their time",
          "[state][timers]") {
  temp_dir dir;
  auto f = make_rocksdb_factory(8 << 20, 8 << 20);
  recording_sink sink;
  auto store = open_store(*f, dir.path, &sink);
  timer_index idx{*store};
  using C = timer_clock;
  REQUIRE(idx.set(make("b", "x", C::event_time, 300, "pb")).ok());
  REQUIRE(idx.set(make("a", "x", C::event_time, 300, "pa")).ok());
  REQUIRE(idx.set(make("c", "x", C::event_time, -5)).ok());
  REQUIRE(idx.set(make("a", "y", C::event_time, 100)).ok());
  REQUIRE(idx.set(make("w", "x", C::wall_clock, 50)).ok());

  CHECK(names(take(idx, C::event_time, -6)).empty());
  CHECK(names(fire(idx, C::event_time, 299)) ==
        std::vector<std::string>{"c/x@-5", "a/y@100"});
  // Equal times: by key, then name.
  auto due = fire(idx, C::event_time, 300);
  CHECK(names(due) == std::vector<std::string>{"a/x@300", "b/x@300"});
  CHECK(due[0].payload == "pa");
  CHECK_FALSE(idx.maybe_due(C::event_time, 1'000'000));
  // The other clock is apart.
  CHECK(names(fire(idx, C::wall_clock, 49)).empty());
  CHECK(names(fire(idx, C::wall_clock, 50)) == std::vector<std::string>{"w/x@50"});
  // The wall clock stepping back finds nothing new, and loses nothing.
  REQUIRE(idx.set(make("w", "y", C::wall_clock, 70)).ok());
  CHECK(names(fire(idx, C::wall_clock, 60)).empty());
  CHECK(names(fire(idx, C::wall_clock, 40)).empty());
  CHECK(names(fire(idx, C::wall_clock, 70)) == std::vector<std::string>{"w/y@70"});
  // Fired timers are gone from both key spaces.
  std::vector<std::string> left;
  REQUIRE(store
              ->all([&](std::string_view k, std::string_view) {
                left.emplace_back(k);
                return true;
              })
              .ok());
  CHECK(left.empty());
}

TEST_CASE("setting a timer again replaces it, cancel removes it, get reads it",
          "[state][timers]") {
  temp_dir dir;
  auto f = make_rocksdb_factory(8 << 20, 8 << 20);
  auto store = open_store(*f, dir.path, nullptr);
  timer_index idx{*store};
  using C = timer_clock;
  REQUIRE(idx.set(make("k", "t", C::event_time, 100, "one")).ok());
  REQUIRE(idx.set(make("k", "t", C::event_time, 500, "two")).ok()); // later
  REQUIRE(idx.set(make("k", "u", C::wall_clock, 10, "other")).ok());
  auto got = idx.get("k", "t");
  REQUIRE(got.ok());
  REQUIRE(*got);
  CHECK((*got)->time == 500);
  CHECK((*got)->payload == "two");
  CHECK(names(fire(idx, C::event_time, 499)).empty()); // the old 100 is gone
  // Earlier than the cursor after a scan: still found.
  REQUIRE(idx.set(make("k", "t", C::event_time, 200, "three")).ok());
  auto due = fire(idx, C::event_time, 499);
  REQUIRE(due.size() == 1);
  CHECK(due[0].payload == "three");
  // Moving to the other clock.
  REQUIRE(idx.set(make("k", "t", C::event_time, 900)).ok());
  REQUIRE(idx.set(make("k", "t", C::wall_clock, 900)).ok());
  CHECK(fire(idx, C::event_time, 1000).empty());
  auto cancelled = idx.cancel("k", "u");
  REQUIRE(cancelled.ok());
  CHECK(*cancelled);
  auto again = idx.cancel("k", "u");
  REQUIRE(again.ok());
  CHECK_FALSE(*again);
  CHECK(names(fire(idx, C::wall_clock, 1000)) == std::vector<std::string>{"k/t@900"});
  auto none = idx.get("k", "t");
  REQUIRE(none.ok());
  CHECK_FALSE(*none);
  // Bounds.
  CHECK(idx.set(make("k", std::string(256, 'n'), C::wall_clock, 1)).code() ==
        errc::invalid_argument);
  CHECK(
      idx.set(make("k", "t", C::wall_clock, 1, std::string(64 * 1024 + 1, 'p'))).code() ==
      errc::invalid_argument);
}

TEST_CASE("a taken timer is not handed out twice, and one set or cancelled after it was "
          "taken is left alone by its removal",
          "[state][timers]") {
  temp_dir dir;
  auto f = make_rocksdb_factory(8 << 20, 8 << 20);
  auto store = open_store(*f, dir.path, nullptr);
  timer_index idx{*store};
  using C = timer_clock;
  for (int i = 0; i < 10; ++i)
    REQUIRE(idx.set(make("k" + std::to_string(i), "t", C::wall_clock, i)).ok());
  auto first = take(idx, C::wall_clock, 100, 4);
  CHECK(names(first) == std::vector<std::string>{"k0/t@0", "k1/t@1", "k2/t@2", "k3/t@3"});
  CHECK(idx.taken() == 4);
  auto rest = take(idx, C::wall_clock, 100);
  CHECK(rest.size() == 6);
  CHECK(take(idx, C::wall_clock, 100).empty());
  // Not removed yet (outputs in flight): still pending for get().
  CHECK(idx.get("k0", "t")->has_value());
  // The handler of k1 set it again (a periodic timer): its removal keeps it.
  REQUIRE(idx.set(make("k1", "t", C::wall_clock, 50)).ok());
  // Below the cursor, but k2 was taken: a re-set k2 is due once more.
  REQUIRE(idx.set(make("k2", "t", C::wall_clock, 2)).ok());
  for (auto& t : first)
    REQUIRE(idx.remove_taken(t).ok());
  for (auto& t : rest)
    REQUIRE(idx.remove_taken(t).ok());
  CHECK(idx.taken() == 0);
  CHECK(names(fire(idx, C::wall_clock, 100)) ==
        std::vector<std::string>{"k2/t@2", "k1/t@50"});
}

TEST_CASE("the timer index rebuilt from its changelog fires the same timers in the "
          "same order",
          "[state][timers]") {
  temp_dir dir;
  auto f = make_rocksdb_factory(8 << 20, 8 << 20);
  recording_sink sink;
  std::mt19937 rng{42};
  std::map<std::string, timer> expected; // key/name -> the live timer
  {
    auto store = open_store(*f, dir.path + "/a", &sink);
    timer_index idx{*store};
    for (int i = 0; i < 20'000; ++i) {
      auto key = "key-" + std::to_string(rng() % 5000);
      auto name = (rng() % 2) ? "a" : "b";
      auto clock = (rng() % 3) ? timer_clock::event_time : timer_clock::wall_clock;
      auto t = make(key, name, clock, static_cast<timestamp_ms>(rng() % 100'000),
                    "p" + std::to_string(i));
      if (rng() % 10 == 0) {
        REQUIRE(idx.cancel(key, name).ok());
        expected.erase(key + "/" + name);
      } else {
        REQUIRE(idx.set(t).ok());
        expected[key + "/" + name] = t;
      }
    }
    // Fire the first stretch, as a task would before a crash.
    for (auto& t : fire(idx, timer_clock::event_time, 10'000, 333))
      expected.erase(t.key + "/" + t.name);
    REQUIRE(store->flush().ok()); // the cache logs what it holds
  }
  // A fresh store restored from the changelog alone.
  auto store = open_store(*f, dir.path + "/b", nullptr);
  REQUIRE(store->restore(sink.log, static_cast<int64_t>(sink.log.size())).ok());
  timer_index idx{*store};
  std::vector<timer> fired;
  for (auto c : {timer_clock::event_time, timer_clock::wall_clock})
    for (auto& t : fire(idx, c, 100'000, 777))
      fired.push_back(t);
  REQUIRE(fired.size() == expected.size());
  std::map<std::string, timer> got;
  timestamp_ms last[2] = {INT64_MIN, INT64_MIN};
  for (auto& t : fired) {
    auto& prev = last[t.clock == timer_clock::wall_clock];
    CHECK(t.time >= prev); // time order within each clock
    prev = t.time;
    got[t.key + "/" + t.name] = t;
  }
  for (auto& [k, want] : expected) {
    auto i = got.find(k);
    REQUIRE(i != got.end());
    CHECK(i->second.time == want.time);
    CHECK(i->second.clock == want.clock);
    CHECK(i->second.payload == want.payload);
  }
}

TEST_CASE("an aborted exactly-once epoch undoes the removal of the timers it fired",
          "[state][timers][epoch]") {
  temp_dir dir;
  auto f = make_rocksdb_factory(8 << 20, 8 << 20);
  recording_sink sink;
  std::vector<store_spec> specs{{"svc-timers", store_spec::kind::kv, 0, true}};
  auto sh = shard::open(*f, dir.path, "app", 0, specs, &sink, true);
  REQUIRE(sh.ok());
  auto& s = **sh;
  {
    timer_index idx{*s.kv("svc-timers")};
    for (int i = 0; i < 100; ++i)
      REQUIRE(
          idx.set(make("k" + std::to_string(i), "t", timer_clock::wall_clock, i)).ok());
  }
  REQUIRE(s.flush().ok());
  REQUIRE(s.commit_epoch().ok());
  {
    timer_index idx{*s.kv("svc-timers")};
    CHECK(fire(idx, timer_clock::wall_clock, 49).size() == 50);
  }
  s.abort_epoch();
  timer_index idx{*s.kv("svc-timers")};
  auto due = fire(idx, timer_clock::wall_clock, 1000);
  CHECK(due.size() == 100);
}
