// Store layers: caching, changelogging, metering, and whole stacks.

#include <catch2/catch.hpp>

#include <atomic>
#include <filesystem>
#include <thread>
#include <unistd.h>

#include "weft/state/epoch_group.hpp"
#include "weft/state/key_encoding.hpp"
#include "weft/state/layered_store.hpp"
#include "weft/state/memory_store.hpp"
#include "weft/state/rocksdb_env.hpp"
#include "weft/state/rocksdb_store.hpp"
#include "weft/state/value_cache.hpp"

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
void check_readers_during_flushes(std::unique_ptr<kv_store> base,
                                  std::shared_ptr<value_cache_budget> values = nullptr) {
  recording_sink sink;
  auto s = make_kv_stack(std::move(base), &sink, {true, 64, std::move(values)});
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
  SECTION("rocksdb, keeping clean values") {
    temp_dir dir;
    rocksdb_env env;
    auto base = open_rocksdb_kv(env, dir.sub("kv"), "kv");
    REQUIRE(base.ok());
    check_readers_during_flushes(std::move(*base),
                                 std::make_shared<value_cache_budget>(1 << 20));
  }
  SECTION("memory") {
    check_readers_during_flushes(make_memory_kv("kv"));
  }
}

namespace {

/// A kv store that counts the gets it answers (over a memory store).
class counting_kv final : public kv_store {
 public:
  explicit counting_kv(std::unique_ptr<kv_store> inner, std::atomic<int>& gets)
    : inner_(std::move(inner)), gets_(gets) {}
  const std::string& name() const override { return inner_->name(); }
  weft::result<std::optional<std::string>> get(std::string_view key) const override {
    ++gets_;
    return inner_->get(key);
  }
  weft::status put(std::string_view key, std::string_view value) override {
    return inner_->put(key, value);
  }
  weft::status remove(std::string_view key) override { return inner_->remove(key); }
  weft::status range(std::string_view from, std::string_view to,
                     const visitor& fn) const override {
    return inner_->range(from, to, fn);
  }
  uint64_t approximate_size() const override { return inner_->approximate_size(); }
  weft::status flush() override { return inner_->flush(); }
  weft::status restore(const std::vector<change>& batch, int64_t next_offset) override {
    return inner_->restore(batch, next_offset);
  }
  int64_t checkpoint() const override { return inner_->checkpoint(); }
  weft::status write_checkpoint(int64_t next_offset) override {
    return inner_->write_checkpoint(next_offset);
  }

 private:
  std::unique_ptr<kv_store> inner_;
  std::atomic<int>& gets_;
};

/// A caching layer keeping clean values within `budget`, over a memory store
/// that counts in `gets` the reads reaching it.
std::unique_ptr<kv_store> counted_cache(const std::string& name, std::atomic<int>& gets,
                                        size_t max_dirty,
                                        std::shared_ptr<value_cache_budget> budget) {
  return make_caching_kv(std::make_unique<counting_kv>(make_memory_kv(name), gets),
                         max_dirty, std::move(budget));
}

} // namespace

TEST_CASE("a caching layer keeps a value it read twice, known absences too, and its "
          "flushes update what it keeps",
          "[state]") {
  auto budget = std::make_shared<value_cache_budget>(1 << 20);
  std::atomic<int> gets{0};
  auto s = counted_cache("s", gets, 16, budget);
  REQUIRE(s->put("a", "1").ok());
  REQUIRE(s->remove("gone").ok());
  REQUIRE(s->flush().ok());
  CHECK(budget->used_bytes() == 0); // a flush adds nothing: admission is by reads
  CHECK(get(*s, "a") == "1");
  CHECK(get(*s, "a") == "1"); // the second miss keeps it
  CHECK(get(*s, "a") == "1");
  CHECK(gets.load() == 2);
  for (int i = 0; i < 3; ++i)
    CHECK(get(*s, "gone") == std::nullopt);
  CHECK(gets.load() == 4); // read below twice, then known absent
  REQUIRE(s->put("gone", "2").ok());
  CHECK(get(*s, "gone") == "2"); // the dirty entry wins over the kept absence
  REQUIRE(s->put("a", "3").ok());
  REQUIRE(s->flush().ok()); // updates both kept values
  CHECK(get(*s, "gone") == "2");
  CHECK(get(*s, "a") == "3");
  CHECK(gets.load() == 4);
  CHECK(budget->used_bytes() > 0);
  // A restore writes below the layer: it forgets what it kept.
  REQUIRE(s->restore({{"a", std::string{"9"}}}, 5).ok());
  CHECK(budget->used_bytes() == 0);
  CHECK(get(*s, "a") == "9"); // kept at once: its misses before count
  CHECK(gets.load() == 5);
  // Two layers under one budget never see each other's values, and a layer
  // that goes gives its bytes back.
  {
    auto other = make_caching_kv(make_memory_kv("s"), 16, budget);
    CHECK(get(*other, "a") == std::nullopt);
    CHECK(get(*s, "a") == "9");
  }
  CHECK(gets.load() == 5);
  auto used = budget->used_bytes();
  s.reset();
  CHECK(used > 0);
  CHECK(budget->used_bytes() == 0);
}

TEST_CASE("a caching layer keeps no value of a key space that churns through its "
          "budget, and keeps the keys read again soon",
          "[state]") {
  // 1 MiB holds about 8,000 small entries: 100,000 keys read round after
  // round come back only after they would have been evicted.
  auto budget = std::make_shared<value_cache_budget>(1 << 20);
  std::atomic<int> gets{0};
  auto s = counted_cache("s", gets, 16, budget);
  for (int i = 0; i < 100'000; ++i)
    REQUIRE(s->get("k" + std::to_string(i)).ok());
  // Only the filter's false admissions (about 1 in 40) got in; keeping every
  // value read filled the budget.
  CHECK(budget->used_bytes() < budget->max_bytes() / 4);
  for (int i = 0; i < 100'000; ++i)
    REQUIRE(s->get("k" + std::to_string(i)).ok());
  // Read again: only what the false admissions kept, at most 1 in 20.
  CHECK(gets.load() > 200'000 - 5'000);
  // A hot set read again and again amid the churn is kept from its second read.
  for (int round = 0; round < 10; ++round) {
    for (int i = 0; i < 100; ++i)
      REQUIRE(s->get("hot" + std::to_string(i)).ok());
    for (int i = 0; i < 1'000; ++i)
      REQUIRE(s->get("k" + std::to_string(round * 1'000 + i)).ok());
  }
  gets = 0;
  for (int i = 0; i < 100; ++i)
    REQUIRE(s->get("hot" + std::to_string(i)).ok());
  CHECK(gets.load() == 0);
}

TEST_CASE("an aborted epoch leaves none of its flushed values among the clean ones",
          "[state]") {
  epoch_group epochs;
  auto s = make_kv_stack(make_memory_kv("kv", &epochs), nullptr,
                         {true, 16, std::make_shared<value_cache_budget>(1 << 20)});
  REQUIRE(s->put("k", "committed").ok());
  REQUIRE(s->flush().ok());
  REQUIRE(epochs.commit("kv", 1).ok());
  CHECK(get(*s, "k") == "committed");
  CHECK(get(*s, "k") == "committed"); // kept clean from here
  REQUIRE(s->put("k", "aborted").ok());
  REQUIRE(s->put("new", "aborted").ok());
  REQUIRE(s->flush().ok()); // into the epoch buffer; the kept value updated
  CHECK(get(*s, "k") == "aborted");
  discard_unflushed(*s); // what shard::abort_epoch does, caches first
  epochs.abort();
  CHECK(get(*s, "k") == "committed");
  CHECK(get(*s, "new") == std::nullopt);
}

TEST_CASE("clean values stay within the node's budget, the oldest going first",
          "[state]") {
  auto budget = std::make_shared<value_cache_budget>(1 << 20);
  std::atomic<int> gets{0};
  auto a = counted_cache("a", gets, 1000, budget);
  auto b = make_caching_kv(make_memory_kv("b"), 1000, budget);
  const std::string value(1000, 'v');
  for (int i = 0; i < 5'000; ++i) {
    REQUIRE(a->put("key-" + std::to_string(i), value).ok());
    REQUIRE(b->put("key-" + std::to_string(i), value).ok());
  }
  REQUIRE(a->flush().ok());
  REQUIRE(b->flush().ok());
  for (int i = 0; i < 5'000; ++i) { // 5 MB of values through a 1 MiB budget
    for (int twice = 0; twice < 2; ++twice) {
      REQUIRE(get(*a, "key-" + std::to_string(i)) == value);
      REQUIRE(get(*b, "key-" + std::to_string(i)) == value);
    }
    CHECK(budget->used_bytes() <= budget->max_bytes() + 2 * 2048);
  }
  CHECK(budget->used_bytes() > budget->max_bytes() / 2); // it was used
  gets = 0;
  CHECK(get(*a, "key-4999") == value); // recent: kept
  CHECK(gets.load() == 0);
  CHECK(get(*a, "key-0") == value); // evicted: read below
  CHECK(gets.load() == 1);
}
