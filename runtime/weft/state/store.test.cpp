// Base stores: RocksDB and the in-memory twins, run through the same bodies.

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <unistd.h>

#include "weft/state/key_encoding.hpp"
#include "weft/state/memory_store.hpp"
#include "weft/state/rocksdb_env.hpp"
#include "weft/state/rocksdb_store.hpp"

using namespace weft::state;
using weft::errc;
using weft::timestamp_ms;

namespace {

/// A fresh folder under /tmp, removed with everything in it at scope exit.
struct temp_dir {
  std::string path;
  temp_dir() {
    char tmpl[] = "/tmp/weft-state-test-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~temp_dir() { std::filesystem::remove_all(path); }
  std::string sub(const std::string& name) const { return path + "/" + name; }
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

void check_kv_basics(kv_store& s) {
  using namespace std::string_literals;
  CHECK(s.checkpoint() == -1);
  CHECK(get(s, "missing") == std::nullopt);
  for (auto k : {"b"s, "a"s, "c"s, "a\0"s, "\xff"s, "ab"s})
    REQUIRE(s.put(k, "v-" + k).ok());
  REQUIRE(s.put("b", "b2").ok()); // overwrite
  CHECK(get(s, "b") == "b2");
  CHECK(get(s, "a\0"s) == "v-a\0"s);

  CHECK(scan(s) == entries{{"a", "v-a"},
                           {"a\0"s, "v-a\0"s},
                           {"ab", "v-ab"},
                           {"b", "b2"},
                           {"c", "v-c"},
                           {"\xff", "v-\xff"}});
  // [from, to): `to` excluded, empty `to` = to the end
  CHECK(scan(s, "a\0"s, "b") == entries{{"a\0"s, "v-a\0"s}, {"ab", "v-ab"}});
  CHECK(scan(s, "b", "") == entries{{"b", "b2"}, {"c", "v-c"}, {"\xff", "v-\xff"}});
  CHECK(scan(s, "c", "c").empty());

  REQUIRE(s.remove("ab").ok());
  REQUIRE(s.remove("never-there").ok());
  CHECK(get(s, "ab") == std::nullopt);

  // A visitor that returns false stops the scan.
  std::vector<std::string> seen;
  REQUIRE(s.all([&](std::string_view k, std::string_view) {
             seen.emplace_back(k);
             return seen.size() < 2;
           }).ok());
  CHECK(seen == std::vector<std::string>{"a", "a\0"s});
  CHECK(s.approximate_size() > 0);
  REQUIRE(s.flush().ok());
}

/// Writes to the store from inside its own scan (allowed: see byte_store.hpp).
void check_write_inside_scan(kv_store& s) {
  for (int i = 0; i < 300; ++i)
    REQUIRE(s.put("k" + std::to_string(1000 + i), "v").ok());
  auto before = scan(s).size();
  size_t visited = 0;
  REQUIRE(s.all([&](std::string_view k, std::string_view) {
             ++visited;
             return s.remove(k).ok();
           }).ok());
  CHECK(visited == before);
  CHECK(scan(s).empty());
}

void check_window_fetch(window_store& w) {
  using namespace std::string_literals;
  for (timestamp_ms t : {300, 100, 200, 0})
    REQUIRE(w.put("a", t, "a@" + std::to_string(t)).ok());
  // "a\0" has windows sorting among a's in byte order; they must not leak.
  REQUIRE(w.put("a\0"s, 150, "x"s).ok());
  REQUIRE(w.put("b", 100, "b@100").ok());

  auto fetched = w.fetch("a", 200);
  REQUIRE(fetched.ok());
  CHECK(*fetched == "a@200");
  CHECK(w.fetch("a", 250).value() == std::nullopt);

  std::vector<std::pair<timestamp_ms, std::string>> got;
  auto collect = [&](timestamp_ms t, std::string_view v) {
    got.emplace_back(t, v);
    return true;
  };
  REQUIRE(w.fetch("a", 100, 300, collect).ok()); // both ends included
  CHECK(got == std::vector<std::pair<timestamp_ms, std::string>>{
                   {100, "a@100"}, {200, "a@200"}, {300, "a@300"}});
  got.clear();
  REQUIRE(w.fetch("a", 101, 299, collect).ok());
  CHECK(got == std::vector<std::pair<timestamp_ms, std::string>>{{200, "a@200"}});
  got.clear();
  REQUIRE(w.fetch("a", 301, 1000, collect).ok());
  CHECK(got.empty());

  std::vector<std::tuple<std::string, timestamp_ms, std::string>> all;
  REQUIRE(
      w.fetch_all(100, 150, [&](std::string_view k, timestamp_ms t, std::string_view v) {
         all.emplace_back(k, t, v);
         return true;
       }).ok());
  std::sort(all.begin(), all.end());
  CHECK(all == std::vector<std::tuple<std::string, timestamp_ms, std::string>>{
                   {"a", 100, "a@100"}, {"a\0"s, 150, "x"}, {"b", 100, "b@100"}});

  REQUIRE(w.put("a", 200, std::nullopt).ok()); // delete
  CHECK(w.fetch("a", 200).value() == std::nullopt);
  CHECK(w.put("a", -1, "neg"s).code() == errc::invalid_argument);
  REQUIRE(w.flush().ok());
}

void check_window_retention(window_store& w) {
  for (timestamp_ms t : {0, 50, 100})
    REQUIRE(w.put("k", t, "v").ok());
  CHECK(w.fetch("k", 0).value() == "v");
  REQUIRE(w.put("k", 200, "v").ok()); // newest 200, retention 100: < 100 expired
  CHECK(w.fetch("k", 0).value() == std::nullopt);
  CHECK(w.fetch("k", 50).value() == std::nullopt);
  CHECK(w.fetch("k", 100).value() == "v"); // exactly at the cutoff: kept
  std::vector<timestamp_ms> starts;
  REQUIRE(w.fetch("k", 0, 1000, [&](timestamp_ms t, std::string_view) {
             starts.push_back(t);
             return true;
           }).ok());
  CHECK(starts == std::vector<timestamp_ms>{100, 200});
  // A late write into an expired window is dropped.
  REQUIRE(w.put("k", 10, "late").ok());
  CHECK(w.fetch("k", 10).value() == std::nullopt);
  REQUIRE(w.flush().ok());
}

void check_sessions(session_store& s) {
  using namespace std::string_literals;
  REQUIRE(s.put("u", {0, 10}, "s1"s).ok());
  REQUIRE(s.put("u", {20, 30}, "s2"s).ok());
  REQUIRE(s.put("u", {50, 60}, "s3"s).ok());
  REQUIRE(s.put("u\0"s, {25, 26}, "other"s).ok());
  REQUIRE(s.put("v", {20, 30}, "v"s).ok());

  auto find = [&](timestamp_ms earliest_end, timestamp_ms latest_start) {
    std::vector<std::string> out;
    auto st = s.find_sessions(
        "u", earliest_end, latest_start, [&](session_window w, std::string_view v) {
          out.push_back(std::string{v} + "[" + std::to_string(w.start) + "," +
                        std::to_string(w.end) + "]");
          return true;
        });
    REQUIRE(st.ok());
    return out;
  };
  CHECK(find(25, 55) == std::vector<std::string>{"s2[20,30]", "s3[50,60]"});
  // Bounds are inclusive: end == earliest_end and start == latest_start match.
  CHECK(find(30, 50) == std::vector<std::string>{"s2[20,30]", "s3[50,60]"});
  CHECK(find(31, 49).empty());
  CHECK(find(0, 1000) == std::vector<std::string>{"s1[0,10]", "s2[20,30]", "s3[50,60]"});
  CHECK(find(61, 1000).empty());

  REQUIRE(s.put("u", {20, 30}, std::nullopt).ok()); // delete
  CHECK(find(0, 1000) == std::vector<std::string>{"s1[0,10]", "s3[50,60]"});
  CHECK(s.put("u", {5, 4}, "bad"s).code() == errc::invalid_argument);

  // Retention counts from session ends: newest end 1060, retention 1000.
  REQUIRE(s.put("w", {1000, 1060}, "late-enough"s).ok());
  CHECK(find(0, 1000) == std::vector<std::string>{"s3[50,60]"});
  REQUIRE(s.flush().ok());
}

std::vector<change> changelog(size_t n, size_t keys, uint32_t seed) {
  std::mt19937 rng{seed};
  std::vector<change> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    auto k = "key-" + std::to_string(rng() % keys);
    if (rng() % 10 == 0)
      out.push_back({k, std::nullopt});
    else
      out.push_back({k, "value-" + std::to_string(i)});
  }
  return out;
}

} // namespace

TEST_CASE("rocksdb and memory kv stores get, put, remove and scan in byte order",
          "[state]") {
  SECTION("rocksdb") {
    temp_dir dir;
    rocksdb_env env;
    auto s = open_rocksdb_kv(env, dir.sub("app/0/counts"), "counts");
    REQUIRE(s.ok());
    CHECK((*s)->name() == "counts");
    check_kv_basics(**s);
    check_write_inside_scan(**s);
  }
  SECTION("memory") {
    auto s = make_memory_kv("counts");
    CHECK(s->name() == "counts");
    check_kv_basics(*s);
    check_write_inside_scan(*s);
  }
}

TEST_CASE("a rocksdb kv store keeps its data and checkpoint across a reopen", "[state]") {
  temp_dir dir;
  rocksdb_env env;
  auto path = dir.sub("app/3/totals");
  {
    auto s = open_rocksdb_kv(env, path, "totals");
    REQUIRE(s.ok());
    CHECK((*s)->checkpoint() == -1);
    REQUIRE((*s)->put("a", "1").ok());
    REQUIRE((*s)->put("b", "2").ok());
    REQUIRE((*s)->flush().ok());
    REQUIRE((*s)->write_checkpoint(42).ok());
    CHECK((*s)->checkpoint() == 42);
    // A second open of the same folder fails while the first is open.
    auto again = open_rocksdb_kv(env, path, "totals");
    REQUIRE_FALSE(again.ok());
    CHECK(again.error().code() == errc::io);
    CHECK_THAT(again.error().message(), Catch::Contains("rocksdb open"));
  }
  auto s = open_rocksdb_kv(env, path, "totals");
  REQUIRE(s.ok());
  CHECK((*s)->checkpoint() == 42);
  CHECK(scan(**s) == entries{{"a", "1"}, {"b", "2"}});
  CHECK(env.open_stores() == 1);
}

TEST_CASE("window keys are the user key then the big-endian window start", "[state]") {
  using namespace std::string_literals;
  CHECK(encode_window_key("k", 0x0102) == "k\0\0\0\0\0\0\x01\x02"s);
  auto encoded = "k\0\0\0\0\0\0\x01\x02"s;
  auto d = decode_window_key(encoded); // views into `encoded`
  REQUIRE(d);
  CHECK(d->key == "k");
  CHECK(d->start == 0x0102);
  CHECK_FALSE(decode_window_key("short"));
  auto s = encode_session_key("u", {1, 2});
  CHECK(s == "u\0\0\0\0\0\0\0\x02\0\0\0\0\0\0\0\x01"s);
  auto ds = decode_session_key(s);
  REQUIRE(ds);
  CHECK(ds->key == "u");
  CHECK(ds->window.start == 1);
  CHECK(ds->window.end == 2);
}

TEST_CASE("a window store fetches a key's windows oldest first within inclusive bounds",
          "[state]") {
  SECTION("rocksdb") {
    temp_dir dir;
    rocksdb_env env;
    auto w = open_rocksdb_window(env, dir.sub("w"), "clicks", 1'000'000);
    REQUIRE(w.ok());
    check_window_fetch(**w);
  }
  SECTION("memory") {
    auto w = make_memory_window("clicks", 1'000'000);
    REQUIRE(w.ok());
    check_window_fetch(**w);
  }
  SECTION("retention must be positive") {
    CHECK(make_memory_window("w", 0).error().code() == errc::invalid_argument);
  }
}

TEST_CASE("a window store hides windows older than its retention at once", "[state]") {
  SECTION("rocksdb") {
    temp_dir dir;
    rocksdb_env env;
    auto w = open_rocksdb_window(env, dir.sub("w"), "w", 100);
    REQUIRE(w.ok());
    check_window_retention(**w);
  }
  SECTION("memory") {
    auto w = make_memory_window("w", 100);
    REQUIRE(w.ok());
    check_window_retention(**w);
  }
}

TEST_CASE("a rocksdb window store deletes expired windows and remembers its stream time",
          "[state]") {
  temp_dir dir;
  rocksdb_env env;
  auto path = dir.sub("w");
  {
    auto w = open_rocksdb_window(env, path, "w", 100);
    REQUIRE(w.ok());
    for (timestamp_ms t : {0, 50, 100, 200})
      REQUIRE((*w)->put("k", t, "v").ok());
    REQUIRE((*w)->flush().ok());
  }
  {
    // Seen as raw bytes: only the windows inside the retention are left.
    auto raw = open_rocksdb_kv(env, path, "w");
    REQUIRE(raw.ok());
    std::vector<timestamp_ms> starts;
    for (auto& [k, v] : scan(**raw))
      starts.push_back(decode_window_key(k)->start);
    CHECK(starts == std::vector<timestamp_ms>{100, 200});
  }
  // Reopened, it still knows the newest start (200): a write at 50 is late.
  auto w = open_rocksdb_window(env, path, "w", 100);
  REQUIRE(w.ok());
  REQUIRE((*w)->put("k", 50, "late").ok());
  CHECK((*w)->fetch("k", 50).value() == std::nullopt);
}

TEST_CASE(
    "a session store finds the sessions that end late enough and start early enough",
    "[state]") {
  SECTION("rocksdb") {
    temp_dir dir;
    rocksdb_env env;
    auto s = open_rocksdb_session(env, dir.sub("s"), "sessions", 1000);
    REQUIRE(s.ok());
    check_sessions(**s);
  }
  SECTION("memory") {
    auto s = make_memory_session("sessions", 1000);
    REQUIRE(s.ok());
    check_sessions(**s);
  }
}

TEST_CASE("a rocksdb store writes its checkpoint atomically with the restored data",
          "[state]") {
  temp_dir dir;
  rocksdb_env env;
  auto path = dir.sub("kv");
  {
    auto s = open_rocksdb_kv(env, path, "kv");
    REQUIRE(s.ok());
    REQUIRE((*s)->restore({{"a", "1"}, {"b", "2"}}, 2).ok());
    CHECK((*s)->checkpoint() == 2);
    REQUIRE((*s)->restore({{"a", std::nullopt}, {"c", "3"}}, 4).ok());
    CHECK((*s)->checkpoint() == 4);
  } // closed without a flush(): close persists the WAL-less data
  auto s = open_rocksdb_kv(env, path, "kv");
  REQUIRE(s.ok());
  CHECK((*s)->checkpoint() == 4);
  CHECK(scan(**s) == entries{{"b", "2"}, {"c", "3"}});
}

// The child half of the crash test below: run in a separate process, it
// restores and then dies without closing its store (no destructor, no flush).
TEST_CASE("crash child: restore then die", "[.][state-crash-child]") {
  const char* dir = std::getenv("WEFT_STATE_CRASH_DIR");
  const char* mode = std::getenv("WEFT_STATE_CRASH_MODE");
  REQUIRE(dir);
  REQUIRE(mode);
  rocksdb_env env;
  auto s = open_rocksdb_kv(env, dir, "kv");
  REQUIRE(s.ok());
  std::vector<change> first, second;
  for (int i = 0; i < 1000; ++i) {
    first.push_back({"a" + std::to_string(i), "first"});
    second.push_back({"b" + std::to_string(i), "second"});
  }
  REQUIRE((*s)->restore(first, 1000).ok());
  REQUIRE((*s)->flush().ok()); // the first batch is durable now
  REQUIRE((*s)->restore(second, 2000).ok());
  if (std::string{mode} == "put-after-restore") REQUIRE((*s)->put("x", "logged").ok());
  std::_Exit(0); // a crash: the memtable of the second restore is lost
}

TEST_CASE("after a crash mid-restore the checkpoint never claims data that is missing",
          "[state]") {
  auto self = std::filesystem::read_symlink("/proc/self/exe").string();
  auto run_child = [&](const std::string& dir, const std::string& mode) {
    auto cmd = "WEFT_STATE_CRASH_DIR='" + dir + "' WEFT_STATE_CRASH_MODE=" + mode + " '" +
               self + "' '[state-crash-child]' > /dev/null 2>&1";
    return std::system(cmd.c_str());
  };
  temp_dir dir;
  rocksdb_env env;
  auto count = [](const kv_store& s, char prefix) {
    size_t n = 0;
    auto st = s.all([&](std::string_view k, std::string_view) {
      n += k[0] == prefix;
      return true;
    });
    REQUIRE(st.ok());
    return n;
  };

  SECTION("a restore batch that was not flushed is lost together with its checkpoint") {
    REQUIRE(run_child(dir.sub("kv"), "restore-only") == 0);
    auto s = open_rocksdb_kv(env, dir.sub("kv"), "kv");
    REQUIRE(s.ok());
    CHECK((*s)->checkpoint() == 1000);
    CHECK(count(**s, 'a') == 1000);
    CHECK(count(**s, 'b') == 0);
  }
  SECTION("a logged write after a restore first makes the restored data durable") {
    REQUIRE(run_child(dir.sub("kv"), "put-after-restore") == 0);
    auto s = open_rocksdb_kv(env, dir.sub("kv"), "kv");
    REQUIRE(s.ok());
    CHECK((*s)->checkpoint() == 2000);
    CHECK(count(**s, 'a') == 1000);
    CHECK(count(**s, 'b') == 1000);
    CHECK(get(**s, "x") == "logged");
  }
}

TEST_CASE("restoring 100k changes gives the same content as writing them one by one",
          "[state]") {
  auto log = changelog(100'000, 20'000, 7);
  auto restore_all = [&](kv_store& s) {
    for (size_t i = 0; i < log.size(); i += 10'000) {
      std::vector<change> batch(log.begin() + static_cast<ptrdiff_t>(i),
                                log.begin() + static_cast<ptrdiff_t>(i + 10'000));
      REQUIRE(s.restore(batch, static_cast<int64_t>(i + 10'000)).ok());
    }
    CHECK(s.checkpoint() == 100'000);
  };
  auto write_all = [&](kv_store& s) {
    for (auto& c : log)
      REQUIRE((c.value ? s.put(c.key, *c.value) : s.remove(c.key)).ok());
  };
  temp_dir dir;
  rocksdb_env env;
  auto restored = open_rocksdb_kv(env, dir.sub("restored"), "s");
  auto written = open_rocksdb_kv(env, dir.sub("written"), "s");
  REQUIRE(restored.ok());
  REQUIRE(written.ok());
  auto memory = make_memory_kv("s");
  restore_all(**restored);
  restore_all(*memory);
  write_all(**written);

  auto expected = scan(**written);
  CHECK(expected.size() > 10'000);
  CHECK(scan(**restored) == expected);
  CHECK(scan(*memory) == expected);
}

TEST_CASE("24 rocksdb stores share one block cache and stay within its capacity",
          "[state]") {
  temp_dir dir;
  rocksdb_env env; // 64 MiB cache, 32 MiB of memtables charged to it
  std::vector<std::unique_ptr<kv_store>> stores;
  for (int i = 0; i < 24; ++i) {
    auto s = open_rocksdb_kv(env, dir.sub("app/" + std::to_string(i) + "/kv"), "kv");
    REQUIRE(s.ok());
    stores.push_back(std::move(*s));
  }
  CHECK(env.open_stores() == 24);
  std::string value(200, 'x');
  // 24 × 12,000 × ~215 bytes ≈ 62 MB in total: more than the memtable budget.
  for (int round = 0; round < 4; ++round) {
    for (auto& s : stores) {
      for (int i = 0; i < 3000; ++i)
        REQUIRE(s->put("key-" + std::to_string(round * 3000 + i), value).ok());
      REQUIRE(s->flush().ok());
    }
  }
  for (auto& s : stores) {
    for (int i = 0; i < 12'000; i += 97)
      REQUIRE(get(*s, "key-" + std::to_string(i)) == value);
  }
  INFO("cache usage " << env.cache_usage() << ", memtables " << env.write_buffer_usage());
  CHECK(env.cache_capacity() == size_t{64} << 20);
  CHECK(env.cache_usage() <= env.cache_capacity());
  CHECK(env.write_buffer_usage() <= (size_t{32} << 20) + (size_t{8} << 20));
}
