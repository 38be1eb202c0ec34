// Shards: transactional (exactly-once) stacks committed and aborted per
// epoch on RocksDB.

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <unistd.h>

#include "weft/state/key_encoding.hpp"
#include "weft/state/layered_store.hpp"
#include "weft/state/shard.hpp"

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
};

/// Counts the changes it is given, per store.
struct counting_sink : changelog_sink {
  std::map<std::string, int, std::less<>> logged;
  void log_change(std::string_view store, std::string_view,
                  std::optional<std::string_view>, timestamp_ms) override {
    ++logged[std::string{store}];
  }
};

std::optional<std::string> get(const kv_store& s, std::string_view key) {
  auto r = s.get(key);
  REQUIRE(r.ok());
  return *r;
}

std::optional<std::string> fetch(const window_store& w, std::string_view key,
                                 timestamp_ms start) {
  auto r = w.fetch(key, start);
  REQUIRE(r.ok());
  return *r;
}

const std::vector<store_spec> specs{
    {"counts", store_spec::kind::kv, 0, true},
    {"w", store_spec::kind::window, 10'000, true},
    {"idle", store_spec::kind::kv, 0, true},
};

} // namespace

TEST_CASE("a transactional shard commits and aborts whole epochs, caches included",
          "[state][epoch]") {
  temp_dir dir;
  auto factory = make_rocksdb_factory(8 << 20, 16 << 20);
  counting_sink sink;
  {
    auto sh = shard::open(*factory, dir.path, "app", 3, specs, &sink, true);
    REQUIRE(sh.ok());
    auto& s = **sh;
    REQUIRE(s.transactional());
    auto& counts = *s.kv("counts");
    auto& w = *s.window("w");

    // Epoch 1: the cache flushes into the changelog and the epoch buffer.
    REQUIRE(counts.put("a", "1").ok());
    REQUIRE(counts.put("b", "1").ok());
    REQUIRE(w.put("k", 100, std::string_view{"w1"}).ok());
    REQUIRE(s.flush().ok());
    CHECK(sink.logged["counts"] == 2);
    CHECK(sink.logged["w"] == 1);
    // The producer delivered them at these offsets; the transaction committed.
    s.delivered_offset("counts")->store(1);
    s.delivered_offset("w")->store(0);
    REQUIRE(s.commit_epoch().ok());
    CHECK(counts.checkpoint() == 2);
    CHECK(w.checkpoint() == 1);
    CHECK(s.kv("idle")->checkpoint() == -1); // no writes, nothing delivered

    // Epoch 2 aborts: writes in the epoch buffer (flushed) and in the cache
    // (not flushed yet) disappear alike.
    REQUIRE(counts.put("a", "2").ok());
    REQUIRE(counts.remove("b").ok());
    REQUIRE(w.put("k", 100, std::nullopt).ok());
    REQUIRE(s.flush().ok());
    REQUIRE(counts.put("c", "2").ok()); // cache only
    CHECK(get(counts, "a") == "2");
    CHECK(get(counts, "c") == "2");
    s.delivered_offset("counts")->store(3); // aborted records were delivered too
    s.abort_epoch();
    CHECK(get(counts, "a") == "1");
    CHECK(get(counts, "b") == "1");
    CHECK(get(counts, "c") == std::nullopt);
    CHECK(fetch(w, "k", 100) == "w1");
    // A flush after the abort has nothing left to log.
    auto logged = sink.logged["counts"];
    REQUIRE(s.flush().ok());
    CHECK(sink.logged["counts"] == logged);

    // An epoch without writes commits too; a checkpoint past the aborted
    // records is still true (they are not part of the changelog's story).
    REQUIRE(s.commit_epoch().ok());
    CHECK(counts.checkpoint() == 4);
    CHECK(w.checkpoint() == 1);

    // Epoch 3 is left uncommitted when the shard closes.
    REQUIRE(counts.put("d", "3").ok());
    REQUIRE(s.flush().ok());

    CHECK(s.write_checkpoints().code() == errc::internal);
  }
  // Reopened without epochs: exactly epochs 1 (and the empty 2).
  auto sh = shard::open(*factory, dir.path, "app", 3, specs, &sink);
  REQUIRE(sh.ok());
  auto& s = **sh;
  CHECK_FALSE(s.transactional());
  CHECK(s.kv("counts")->checkpoint() == 4);
  CHECK(s.window("w")->checkpoint() == 1);
  CHECK(get(*s.kv("counts"), "a") == "1");
  CHECK(get(*s.kv("counts"), "b") == "1");
  CHECK(get(*s.kv("counts"), "d") == std::nullopt);
  CHECK(fetch(*s.window("w"), "k", 100) == "w1");
  // At-least-once shards keep their API and refuse the epoch one.
  CHECK(s.commit_epoch().code() == errc::internal);
  REQUIRE(s.kv("counts")->put("e", "5").ok());
  REQUIRE(s.flush().ok());
  s.delivered_offset("counts")->store(9);
  REQUIRE(s.write_checkpoints().ok());
  CHECK(s.kv("counts")->checkpoint() == 10);
  CHECK(get(*s.kv("counts"), "e") == "5");
}

TEST_CASE("a transactional memory shard behaves like the rocksdb one", "[state][epoch]") {
  temp_dir dir; // the memory factory ignores it, but shard::open creates folders
  auto factory = make_memory_factory();
  counting_sink sink;
  auto sh = shard::open(*factory, dir.path, "app", 0, specs, &sink, true);
  REQUIRE(sh.ok());
  auto& s = **sh;
  REQUIRE(s.kv("counts")->put("a", "1").ok());
  REQUIRE(s.flush().ok());
  REQUIRE(s.kv("counts")->put("b", "1").ok());
  s.abort_epoch();
  CHECK(get(*s.kv("counts"), "a") == std::nullopt);
  CHECK(get(*s.kv("counts"), "b") == std::nullopt);
  REQUIRE(s.kv("counts")->put("a", "2").ok());
  REQUIRE(s.flush().ok());
  s.delivered_offset("counts")->store(7);
  REQUIRE(s.commit_epoch().ok());
  CHECK(s.kv("counts")->checkpoint() == 8);
  CHECK(get(*s.kv("counts"), "a") == "2");
}
