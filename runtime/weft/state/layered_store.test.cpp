// Store layers: caching, changelogging, metering, and whole stacks.

#include <catch2/catch.hpp>

#include <atomic>
#include <filesystem>
#include <thread>
#include <unistd.h>

#include "weft/state/key_encoding.hpp"
#include "weft/state/layered_store.hpp"
#include "weft/state/memory_store.hpp"
#include "weft/state/rocksdb_env.hpp"
#include "weft/state/rocksdb_store.hpp"

using namespace weft::state;
using weft::errc;
using weft::timestamp_ms;

namespace {

struct temp_dir {
  std::string path;
  temp_dir() {
    char tmpl[] = "/tmp/weft-state-test-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~temp_dir() { std::filesystem::remove_all(path); }
  std::string sub(const std::string& name) const { return path + "/" + name; }
};

/// Records every change it is given.
struct recording_sink : changelog_sink {
  struct record {
    std::string store;
    std::string key;
    std::optional<std::string> value;
    timestamp_ms ts;
    bool operator==(const record& o) const {
      return store == o.store && key == o.key && value == o.value && ts == o.ts;
    }
  };
  std::vector<record> records;
  void log_change(std::string_view store, std::string_view key,
                  std::optional<std::string_view> value, timestamp_ms ts) override {
    records.push_back({std::string{store}, std::string{key},
                       value ? std::optional<std::string>{*value} : std::nullopt, ts});
  }
};

using entries = std::vector<std::pair<std::string, std::string>>;

entries scan(const kv_store& s, std::string_view from = {}, std::string_view to = {}) {
  entries out;
  auto st = s.range(from, to, [&](std::string_view k, std::string_view v) {
    out.emplace_back(k, v);
    return true;
  });
  REQUIRE(st.ok());
  return out;
}

std::optional<std::string> get(const kv_store& s, std::string_view key) {
  auto r = s.get(key);
  REQUIRE(r.ok());
  return *r;
}

} // namespace

TEST_CASE(
    "a caching layer logs a hot key once per flush, with its last writer's timestamp",
    "[state]") {
  recording_sink sink;
  auto s = make_kv_stack(make_memory_kv("counts"), &sink);
  for (int i = 1; i <= 100; ++i) {
    set_record_timestamp(*s, 1000 + i);
    REQUIRE(s->put("hot", std::to_string(i)).ok());
  }
  set_record_timestamp(*s, 5000);
  REQUIRE(s->put("cold", "x").ok());
  set_record_timestamp(*s, 6000);
  REQUIRE(s->remove("gone").ok());
  CHECK(sink.records.empty()); // nothing reaches the changelog before flush

  REQUIRE(s->flush().ok());
  using rec = recording_sink::record;
  CHECK(sink.records == std::vector<rec>{{"counts", "cold", "x", 5000},
                                         {"counts", "gone", std::nullopt, 6000},
                                         {"counts", "hot", "100", 1100}});
  REQUIRE(s->flush().ok()); // nothing new: nothing logged
  CHECK(sink.records.size() == 3);
}

TEST_CASE("a caching layer reads its own writes in gets and scans", "[state]") {
  auto base = make_memory_kv("s");
  for (auto k : {"a", "b", "c", "e"})
    REQUIRE(base->put(k, std::string{"base-"} + k).ok());
  auto s = make_caching_kv(std::move(base));
  REQUIRE(s->put("b", "new-b").ok());
  REQUIRE(s->remove("c").ok());
  REQUIRE(s->put("d", "new-d").ok());
  REQUIRE(s->put("f", "new-f").ok());

  CHECK(get(*s, "a") == "base-a");
  CHECK(get(*s, "b") == "new-b");
  CHECK(get(*s, "c") == std::nullopt);
  CHECK(get(*s, "d") == "new-d");
  CHECK(scan(*s) == entries{{"a", "base-a"},
                            {"b", "new-b"},
                            {"d", "new-d"},
                            {"e", "base-e"},
                            {"f", "new-f"}});
  CHECK(scan(*s, "b", "e") == entries{{"b", "new-b"}, {"d", "new-d"}});
  // Stopping early stops on cached entries too.
  size_t seen = 0;
  REQUIRE(s->all([&](std::string_view, std::string_view) { return ++seen < 2; }).ok());
  CHECK(seen == 2);

  REQUIRE(s->flush().ok());
  CHECK(scan(*s) == entries{{"a", "base-a"},
                            {"b", "new-b"},
                            {"d", "new-d"},
                            {"e", "base-e"},
                            {"f", "new-f"}});
}

TEST_CASE("a caching layer writes everything down when it exceeds its dirty bound",
          "[state]") {
  recording_sink sink;
  auto s = make_kv_stack(make_memory_kv("s"), &sink, {true, 10});
  for (int i = 0; i < 10; ++i)
    REQUIRE(s->put("k" + std::to_string(i), "v").ok());
  CHECK(sink.records.empty());
  REQUIRE(s->put("k10", "v").ok()); // the 11th dirty entry
  CHECK(sink.records.size() == 11);
  CHECK(get(*s, "k3") == "v");
}

TEST_CASE("a caching layer refuses a restore while it holds unflushed writes",
          "[state]") {
  auto s = make_caching_kv(make_memory_kv("s"));
  REQUIRE(s->put("a", "1").ok());
  CHECK(s->restore({{"b", "2"}}, 1).code() == errc::internal);
  REQUIRE(s->flush().ok());
  REQUIRE(s->restore({{"b", "2"}}, 1).ok());
  CHECK(s->checkpoint() == 1);
}

namespace {

/// One writer bumps a counter through a caching stack that spills and flushes
/// often; two readers check that they never see it go back or go missing.
void check_readers_during_flushes(std::unique_ptr<kv_store> base) {
  recording_sink sink;
  auto s = make_kv_stack(std::move(base), &sink, {true, 64});
  REQUIRE(s->put("counter", "00000").ok());
  std::atomic<bool> done{false};
  std::atomic<int> regressions{0}, missing{0}, reads{0};
  auto reader = [&] {
    std::string last = "00000";
    while (!done.load()) {
      auto v = s->get("counter");
      if (!v.ok() || !*v) {
        ++missing;
        continue;
      }
      if (**v < last) ++regressions;
      last = **v;
      auto st = s->range("counter", "counter\x01",
                         [&](std::string_view, std::string_view seen) {
                           if (seen < std::string_view{last}) ++regressions;
                           return true;
                         });
      if (!st.ok()) ++missing;
      ++reads;
    }
  };
  std::thread r1{reader}, r2{reader};
  for (int i = 1; i <= 20'000; ++i) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "%05d", i);
    REQUIRE(s->put("counter", buf).ok());
    REQUIRE(s->put("other-" + std::to_string(i % 100), buf).ok()); // spills every ~64
    if (i % 500 == 0) REQUIRE(s->flush().ok());
  }
  done = true;
  r1.join();
  r2.join();
  CHECK(reads.load() > 0);
  CHECK(regressions.load() == 0);
  CHECK(missing.load() == 0);
}

} // namespace

TEST_CASE("readers of a caching stack never see a value go back while it flushes",
          "[state]") {
  SECTION("rocksdb") {
    temp_dir dir;
    rocksdb_env env;
    auto base = open_rocksdb_kv(env, dir.sub("kv"), "kv");
    REQUIRE(base.ok());
    check_readers_during_flushes(std::move(*base));
  }
  SECTION("memory") {
    check_readers_during_flushes(make_memory_kv("kv"));
  }
}

TEST_CASE("a changelogging layer logs tombstones for removes under encoded keys",
          "[state]") {
  using rec = recording_sink::record;
  recording_sink sink;
  SECTION("kv") {
    auto s = make_kv_stack(make_memory_kv("kv"), &sink, {false});
    set_record_timestamp(*s, 7);
    REQUIRE(s->put("a", "1").ok());
    REQUIRE(s->remove("a").ok());
    CHECK(sink.records ==
          std::vector<rec>{{"kv", "a", "1", 7}, {"kv", "a", std::nullopt, 7}});
    // restore is not logged
    REQUIRE(s->restore({{"b", "2"}}, 5).ok());
    CHECK(sink.records.size() == 2);
  }
  SECTION("window") {
    auto s = make_window_stack(make_memory_window("w", 1000).value(), &sink);
    set_record_timestamp(*s, 9);
    REQUIRE(s->put("a", 100, std::string_view{"1"}).ok());
    REQUIRE(s->put("a", 100, std::nullopt).ok());
    auto k = encode_window_key("a", 100);
    CHECK(sink.records == std::vector<rec>{{"w", k, "1", 9}, {"w", k, std::nullopt, 9}});
  }
  SECTION("session") {
    auto s = make_session_stack(make_memory_session("s", 1000).value(), &sink);
    set_record_timestamp(*s, 11);
    REQUIRE(s->put("a", {10, 20}, std::string_view{"1"}).ok());
    REQUIRE(s->put("a", {10, 20}, std::nullopt).ok());
    auto k = encode_session_key("a", {10, 20});
    CHECK(sink.records ==
          std::vector<rec>{{"s", k, "1", 11}, {"s", k, std::nullopt, 11}});
  }
  SECTION("a failed write is not logged") {
    auto s = make_window_stack(make_memory_window("w", 1000).value(), &sink);
    CHECK(s->put("a", -5, std::string_view{"1"}).code() == errc::invalid_argument);
    CHECK(sink.records.empty());
  }
}

TEST_CASE(
    "a window changelog written through a rocksdb stack restores into a memory twin",
    "[state]") {
  temp_dir dir;
  rocksdb_env env;
  recording_sink sink;
  auto w = make_window_stack(open_rocksdb_window(env, dir.sub("w"), "w", 10'000).value(),
                             &sink);
  for (int i = 0; i < 50; ++i)
    REQUIRE(w->put("user-" + std::to_string(i % 7), i * 100, std::to_string(i)).ok());
  std::vector<change> batch;
  for (auto& r : sink.records)
    batch.push_back({r.key, r.value});
  auto twin = make_memory_window("w", 10'000).value();
  REQUIRE(twin->restore(batch, static_cast<int64_t>(batch.size())).ok());

  using row = std::tuple<std::string, timestamp_ms, std::string>;
  auto dump = [](const window_store& s) {
    std::vector<row> out;
    REQUIRE(s.fetch_all(0, 1'000'000,
                        [&](std::string_view k, timestamp_ms t, std::string_view v) {
                          out.emplace_back(k, t, v);
                          return true;
                        })
                .ok());
    return out;
  };
  auto expected = dump(*w);
  CHECK(expected.size() == 50);
  CHECK(dump(*twin) == expected);
}

TEST_CASE("a metered layer counts calls, errors and their latency", "[state]") {
  auto s = make_kv_stack(make_memory_kv("m"), nullptr);
  REQUIRE(s->put("a", "1").ok());
  REQUIRE(s->put("b", "2").ok());
  REQUIRE(s->remove("a").ok());
  CHECK(get(*s, "b") == "2");
  CHECK(scan(*s).size() == 1);
  REQUIRE(s->flush().ok());
  auto m = s->metrics();
  CHECK(m.puts == 2);
  CHECK(m.removes == 1);
  CHECK(m.gets == 1);
  CHECK(m.scans == 1);
  CHECK(m.flushes == 1);
  CHECK(m.errors == 0);
  CHECK(m.put_ns > 0);

  auto w = make_window_stack(make_memory_window("w", 10).value(), nullptr);
  CHECK_FALSE(w->put("k", -1, std::string_view{"x"}).ok());
  REQUIRE(w->put("k", 1, std::nullopt).ok());
  CHECK(w->metrics().errors == 1);
  CHECK(w->metrics().puts == 1);
  CHECK(w->metrics().removes == 1);
}
