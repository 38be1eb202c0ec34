// Transactional stores: the epoch buffer over RocksDB (and the memory twin),
// alone and under window/session stores.

#include <catch2/catch.hpp>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>
#include <unistd.h>

#include "weft/state/epoch_group.hpp"
#include "weft/state/key_encoding.hpp"
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

/// Committed state a, b, c, e (checkpoint 10), then an epoch that replaces
/// b, deletes c and a key never written, adds d and f: reads show the epoch.
void check_own_writes(kv_store& s, epoch_group& g) {
  using namespace std::string_literals;
  for (auto k : {"a", "b", "c", "e"})
    REQUIRE(s.put(k, "old-"s + k).ok());
  REQUIRE(g.commit("kv", 10).ok());
  CHECK(s.checkpoint() == 10);
  CHECK(g.pending("kv") == 0);

  REQUIRE(s.put("b", "new-b").ok());
  REQUIRE(s.remove("c").ok());
  REQUIRE(s.remove("never").ok());
  REQUIRE(s.put("d", "new-d").ok());
  REQUIRE(s.put("f", "new-f").ok());
  REQUIRE(s.put("f", "newer-f").ok()); // a second write replaces the first
  CHECK(g.pending("kv") == 5);

  CHECK(get(s, "a") == "old-a");      // only on disk
  CHECK(get(s, "b") == "new-b");      // replaced
  CHECK(get(s, "c") == std::nullopt); // deleted: hides the key on disk
  CHECK(get(s, "d") == "new-d");      // only in the overlay
  CHECK(get(s, "f") == "newer-f");
  CHECK(get(s, "never") == std::nullopt);

  CHECK(scan(s) == entries{{"a", "old-a"},
                           {"b", "new-b"},
                           {"d", "new-d"},
                           {"e", "old-e"},
                           {"f", "newer-f"}});
  // [from, to) applies to the overlay as to the disk.
  CHECK(scan(s, "b", "e") == entries{{"b", "new-b"}, {"d", "new-d"}});
  CHECK(scan(s, "c", "d").empty());
  CHECK(scan(s, "c", "d\0"s) == entries{{"d", "new-d"}});
  CHECK(scan(s, "e", "") == entries{{"e", "old-e"}, {"f", "newer-f"}});
  CHECK(scan(s, "a\0"s, "b").empty());
  // Stopping early stops on overlay entries and disk entries alike.
  for (size_t stop_at : {1, 2, 3, 4, 5}) {
    size_t seen = 0;
    REQUIRE(
        s.all([&](std::string_view, std::string_view) { return ++seen < stop_at; }).ok());
    CHECK(seen == stop_at);
  }
  CHECK(s.approximate_size() >= 5);

  // flush() writes nothing down: the epoch is still pending.
  REQUIRE(s.flush().ok());
  CHECK(g.pending("kv") == 5);
  CHECK(s.checkpoint() == 10);

  // A checkpoint outside commit would claim the overlay: refused.
  CHECK(s.write_checkpoint(11).code() == errc::internal);
  // So is a restore while an epoch is pending.
  CHECK(s.restore({{"z", "1"}}, 11).code() == errc::internal);

  REQUIRE(g.commit("kv", 20).ok());
  CHECK(g.pending("kv") == 0);
  CHECK(s.checkpoint() == 20);
  CHECK(scan(s) == entries{{"a", "old-a"},
                           {"b", "new-b"},
                           {"d", "new-d"},
                           {"e", "old-e"},
                           {"f", "newer-f"}});
}

/// Writes to the store from inside its own scan (allowed: see byte_store.hpp).
void check_write_inside_scan(kv_store& s, epoch_group& g) {
  for (int i = 0; i < 150; ++i)
    REQUIRE(s.put("k" + std::to_string(1000 + i), "v").ok());
  REQUIRE(g.commit("kv", std::nullopt).ok());
  for (int i = 150; i < 300; ++i)
    REQUIRE(s.put("k" + std::to_string(1000 + i), "v").ok());
  auto before = scan(s).size();
  size_t visited = 0;
  REQUIRE(s.all([&](std::string_view k, std::string_view) {
             ++visited;
             return s.remove(k).ok() && s.put(std::string{k} + "x", "w").ok();
           }).ok());
  CHECK(visited == before); // the scan shows what was there when it started
  auto after = scan(s);
  CHECK(after.size() == before);
  for (auto& [k, v] : after)
    CHECK(v == "w");
}

} // namespace

TEST_CASE("a transactional store reads its own writes before they are committed",
          "[state][epoch]") {
  SECTION("rocksdb") {
    temp_dir dir;
    rocksdb_env env;
    epoch_group g;
    auto s = open_rocksdb_kv(env, dir.sub("kv"), "kv", &g);
    REQUIRE(s.ok());
    CHECK(g.contains("kv"));
    check_own_writes(**s, g);
    check_write_inside_scan(**s, g);
  }
  SECTION("memory") {
    epoch_group g;
    auto s = make_memory_kv("kv", &g);
    check_own_writes(*s, g);
    check_write_inside_scan(*s, g);
  }
}

TEST_CASE("an aborted epoch leaves the committed data and checkpoint as they were",
          "[state][epoch]") {
  temp_dir dir;
  rocksdb_env env;
  epoch_group g;
  auto s = open_rocksdb_kv(env, dir.sub("kv"), "kv", &g);
  REQUIRE(s.ok());
  REQUIRE((*s)->put("a", "1").ok());
  REQUIRE(g.commit("kv", 3).ok());

  REQUIRE((*s)->put("a", "2").ok());
  REQUIRE((*s)->put("b", "2").ok());
  REQUIRE((*s)->remove("a").ok());
  g.abort();
  CHECK(g.pending("kv") == 0);
  CHECK(get(**s, "a") == "1");
  CHECK(get(**s, "b") == std::nullopt);
  CHECK(scan(**s) == entries{{"a", "1"}});
  CHECK((*s)->checkpoint() == 3);

  // An epoch without writes may still move the checkpoint; one without a new
  // checkpoint keeps the old one.
  REQUIRE(g.commit("kv", std::nullopt).ok());
  CHECK((*s)->checkpoint() == 3);
  REQUIRE(g.commit("kv", 7).ok());
  CHECK((*s)->checkpoint() == 7);
  REQUIRE((*s)->put("c", "3").ok());
  REQUIRE(g.commit("kv", std::nullopt).ok());
  CHECK((*s)->checkpoint() == 7);
  CHECK(get(**s, "c") == "3");

  CHECK(g.commit("other", 1).code() == errc::not_found);

  // With the epoch empty, a restore goes through to RocksDB.
  REQUIRE((*s)->restore({{"d", "4"}}, 9).ok());
  CHECK((*s)->checkpoint() == 9);
  CHECK(get(**s, "d") == "4");
}

TEST_CASE("a sealed epoch commits alone while the next one is written above it",
          "[state][epoch]") {
  using namespace std::string_literals;
  temp_dir dir;
  rocksdb_env env;
  epoch_group g;
  auto s = open_rocksdb_kv(env, dir.sub("kv"), "kv", &g);
  REQUIRE(s.ok());
  auto& kv = **s;
  REQUIRE(kv.put("a", "a0").ok());
  REQUIRE(kv.put("c", "c0").ok());
  REQUIRE(g.commit("kv", 5).ok());

  // Epoch 1: replaces a, deletes c, adds b and d; sealed.
  REQUIRE(kv.put("a", "a1").ok());
  REQUIRE(kv.remove("c").ok());
  REQUIRE(kv.put("b", "b1").ok());
  REQUIRE(kv.put("d", "d1").ok());
  REQUIRE(g.seal().ok());
  CHECK(g.seal().code() == errc::internal); // one sealed epoch at a time
  CHECK(g.pending("kv") == 4);

  // Epoch 2, while epoch 1 commits: replaces b, brings c back, deletes d.
  REQUIRE(kv.put("b", "b2").ok());
  REQUIRE(kv.put("c", "c2").ok());
  REQUIRE(kv.remove("d").ok());
  REQUIRE(kv.put("e", "e2").ok());
  CHECK(get(kv, "a") == "a1"); // sealed over disk
  CHECK(get(kv, "b") == "b2"); // open over sealed
  CHECK(get(kv, "c") == "c2"); // open over a sealed delete
  CHECK(get(kv, "d") == std::nullopt);
  CHECK(scan(kv) == entries{{"a", "a1"}, {"b", "b2"}, {"c", "c2"}, {"e", "e2"}});
  CHECK(scan(kv, "b", "d") == entries{{"b", "b2"}, {"c", "c2"}});
  CHECK(kv.restore({{"z", "1"}}, 11).code() == errc::internal);

  // Committing writes epoch 1 only; epoch 2 stays open above it.
  REQUIRE(g.commit("kv", 9).ok());
  CHECK(kv.checkpoint() == 9);
  CHECK(g.pending("kv") == 4);
  CHECK(scan(kv) == entries{{"a", "a1"}, {"b", "b2"}, {"c", "c2"}, {"e", "e2"}});

  // Aborting epoch 2 leaves exactly epoch 1 on disk.
  g.abort();
  CHECK(g.pending("kv") == 0);
  CHECK(scan(kv) == entries{{"a", "a1"}, {"b", "b1"}, {"d", "d1"}});
  CHECK(kv.checkpoint() == 9);

  // Sealed and open epochs are both dropped by an abort.
  REQUIRE(kv.put("a", "a3").ok());
  REQUIRE(g.seal().ok());
  REQUIRE(kv.put("f", "f4").ok());
  g.abort();
  CHECK(scan(kv) == entries{{"a", "a1"}, {"b", "b1"}, {"d", "d1"}});
  // After the abort nothing is sealed: the next seal is taken.
  REQUIRE(g.seal().ok());
  REQUIRE(g.commit("kv", std::nullopt).ok());
  CHECK(kv.checkpoint() == 9);
}

TEST_CASE("a transactional store closed without a commit reopens at its last commit",
          "[state][epoch]") {
  temp_dir dir;
  rocksdb_env env;
  auto path = dir.sub("kv");
  {
    epoch_group g;
    auto s = open_rocksdb_kv(env, path, "kv", &g);
    REQUIRE(s.ok());
    REQUIRE((*s)->put("a", "1").ok());
    REQUIRE((*s)->put("b", "1").ok());
    REQUIRE(g.commit("kv", 5).ok());
    REQUIRE((*s)->put("a", "2").ok());
    REQUIRE((*s)->remove("b").ok());
    REQUIRE((*s)->put("c", "2").ok());
    REQUIRE((*s)->flush().ok());
  } // the group dies first here: the store detaches and still closes cleanly
  {
    epoch_group g;
    auto s = open_rocksdb_kv(env, path, "kv", &g);
    REQUIRE(s.ok());
    CHECK((*s)->checkpoint() == 5);
    CHECK(scan(**s) == entries{{"a", "1"}, {"b", "1"}});
    REQUIRE((*s)->put("a", "3").ok());
    s->reset(); // the store dies first: it leaves the group
    CHECK_FALSE(g.contains("kv"));
  }
  auto s = open_rocksdb_kv(env, path, "kv"); // plain, no epochs
  REQUIRE(s.ok());
  CHECK((*s)->checkpoint() == 5);
  CHECK(scan(**s) == entries{{"a", "1"}, {"b", "1"}});
}

// The child half of the crash test below: commits one epoch, buffers the
// next, then dies without closing anything.
TEST_CASE("epoch crash child: commit, write, die", "[.][state-epoch-crash-child]") {
  const char* dir = std::getenv("WEFT_STATE_CRASH_DIR");
  const char* mode = std::getenv("WEFT_STATE_CRASH_MODE");
  REQUIRE(dir);
  REQUIRE(mode);
  rocksdb_env env;
  epoch_group g;
  auto s = open_rocksdb_kv(env, dir, "kv", &g);
  REQUIRE(s.ok());
  // A restore first (WAL-less), so the commit also has to make it durable.
  std::vector<change> restored;
  for (int i = 0; i < 1000; ++i)
    restored.push_back({"r" + std::to_string(i), "restored"});
  REQUIRE((*s)->restore(restored, 1000).ok());
  for (int i = 0; i < 1000; ++i)
    REQUIRE((*s)->put("e" + std::to_string(i), "epoch-1").ok());
  REQUIRE(g.commit("kv", 2000).ok());
  for (int i = 0; i < 1000; ++i)
    REQUIRE((*s)->put("e" + std::to_string(i), "epoch-2").ok());
  REQUIRE((*s)->remove("r0").ok());
  REQUIRE((*s)->flush().ok());
  if (std::string{mode} == "commit-then-die") REQUIRE(g.commit("kv", 3000).ok());
  std::_Exit(0);
}

TEST_CASE("after a crash a transactional store is exactly at its last committed epoch",
          "[state][epoch]") {
  auto self = std::filesystem::read_symlink("/proc/self/exe").string();
  auto run_child = [&](const std::string& dir, const std::string& mode) {
    auto cmd = "WEFT_STATE_CRASH_DIR='" + dir + "' WEFT_STATE_CRASH_MODE=" + mode + " '" +
               self + "' '[state-epoch-crash-child]' > /dev/null 2>&1";
    return std::system(cmd.c_str());
  };
  temp_dir dir;
  rocksdb_env env;
  auto count = [](const kv_store& s, const std::string& prefix, const std::string& v) {
    size_t n = 0;
    auto st = s.all([&](std::string_view k, std::string_view value) {
      n += k.substr(0, 1) == prefix && value == v;
      return true;
    });
    REQUIRE(st.ok());
    return n;
  };
  SECTION("the uncommitted epoch is gone, the committed one is complete") {
    REQUIRE(run_child(dir.sub("kv"), "die-uncommitted") == 0);
    auto s = open_rocksdb_kv(env, dir.sub("kv"), "kv");
    REQUIRE(s.ok());
    CHECK((*s)->checkpoint() == 2000);
    CHECK(count(**s, "r", "restored") == 1000);
    CHECK(count(**s, "e", "epoch-1") == 1000);
    CHECK(count(**s, "e", "epoch-2") == 0);
  }
  SECTION("a committed epoch survives the crash with its checkpoint") {
    REQUIRE(run_child(dir.sub("kv"), "commit-then-die") == 0);
    auto s = open_rocksdb_kv(env, dir.sub("kv"), "kv");
    REQUIRE(s.ok());
    CHECK((*s)->checkpoint() == 3000);
    CHECK(count(**s, "r", "restored") == 999);
    CHECK(count(**s, "e", "epoch-2") == 1000);
  }
}

namespace {

/// One writer commits epochs that set every key to the epoch's number; the
/// readers check that no key ever goes missing or goes back, by get and by
/// scan, even while an epoch is being written to RocksDB.
void check_readers_during_commits(std::unique_ptr<kv_store> s, epoch_group& g) {
  constexpr int keys = 64;
  auto key = [](int i) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "k%03d", i);
    return std::string{buf};
  };
  auto value = [](int epoch) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "%06d", epoch);
    return std::string{buf};
  };
  for (int i = 0; i < keys; ++i)
    REQUIRE(s->put(key(i), value(0)).ok());
  REQUIRE(g.commit(s->name(), 0).ok());

  std::atomic<bool> done{false};
  std::atomic<int> regressions{0}, missing{0}, errors{0}, reads{0};
  auto reader = [&](int seed) {
    std::vector<std::string> last(keys, value(0));
    int i = seed;
    while (!done.load()) {
      i = (i * 7 + 3) % keys;
      auto v = s->get(key(i));
      if (!v.ok())
        ++errors;
      else if (!*v)
        ++missing;
      else {
        if (**v < last[i]) ++regressions;
        last[i] = **v;
      }
      int n = 0;
      auto st = s->all([&](std::string_view k, std::string_view seen) {
        auto j = std::stoi(std::string{k.substr(1)});
        if (seen < std::string_view{last[j]}) ++regressions;
        last[j] = std::string{seen};
        ++n;
        return true;
      });
      if (!st.ok()) ++errors;
      if (n != keys) ++missing;
      ++reads;
    }
  };
  std::thread r1{reader, 1}, r2{reader, 2};
  for (int epoch = 1; epoch <= 1000; ++epoch) {
    for (int i = 0; i < keys; ++i)
      REQUIRE(s->put(key(i), value(epoch)).ok());
    REQUIRE(g.commit(s->name(), epoch).ok());
  }
  done = true;
  r1.join();
  r2.join();
  CHECK(reads.load() > 0);
  CHECK(errors.load() == 0);
  CHECK(missing.load() == 0);
  CHECK(regressions.load() == 0);
  CHECK(s->checkpoint() == 1000);
}

} // namespace

TEST_CASE(
    "readers of a transactional store see no gap and no regression while it commits",
    "[state][epoch]") {
  SECTION("rocksdb") {
    temp_dir dir;
    rocksdb_env env;
    epoch_group g;
    auto s = open_rocksdb_kv(env, dir.sub("kv"), "kv", &g);
    REQUIRE(s.ok());
    check_readers_during_commits(std::move(*s), g);
  }
  SECTION("memory") {
    epoch_group g;
    check_readers_during_commits(make_memory_kv("kv", &g), g);
  }
}

TEST_CASE("a transactional window store buffers its windows, purges and stream time",
          "[state][epoch]") {
  temp_dir dir;
  rocksdb_env env;
  auto path = dir.sub("w");
  {
    epoch_group g;
    auto w = open_rocksdb_window(env, path, "w", 100, &g);
    REQUIRE(w.ok());
    for (timestamp_ms t : {0, 50, 100})
      REQUIRE((*w)->put("k", t, "v" + std::to_string(t)).ok());
    CHECK((*w)->fetch("k", 50).value() == "v50");
    REQUIRE((*w)->flush().ok()); // saves the stream time (100) in the epoch
    REQUIRE(g.commit("w", 4).ok());

    // Stream time 300: windows before 200 expire and are purged — all in the
    // epoch, which then aborts.
    REQUIRE((*w)->put("k", 300, "v300").ok());
    CHECK((*w)->fetch("k", 50).value() == std::nullopt);
    REQUIRE((*w)->put("k", 60, "late").ok()); // dropped: expired
    CHECK((*w)->fetch("k", 60).value() == std::nullopt);
    REQUIRE((*w)->flush().ok());
    g.abort();

    // Back at stream time 100: the purged windows are there again, and a
    // write to window 60 (what the replayed epoch may do) is not late.
    std::vector<timestamp_ms> starts;
    REQUIRE((*w)->fetch("k", 0, 1000,
                        [&](timestamp_ms t, std::string_view) {
                          starts.push_back(t);
                          return true;
                        })
                .ok());
    CHECK(starts == std::vector<timestamp_ms>{0, 50, 100});
    REQUIRE((*w)->put("k", 60, "v60").ok());
    CHECK((*w)->fetch("k", 60).value() == "v60");
    REQUIRE((*w)->put("k", 250, "v250").ok()); // stream time 250: < 150 expire
    REQUIRE((*w)->flush().ok());
    REQUIRE(g.commit("w", 9).ok());
    REQUIRE((*w)->put("k", 260, "uncommitted").ok());
  }
  // Reopened: the second committed epoch, with its purge and stream time.
  auto w = open_rocksdb_window(env, path, "w", 100);
  REQUIRE(w.ok());
  CHECK((*w)->checkpoint() == 9);
  std::vector<std::pair<timestamp_ms, std::string>> got;
  REQUIRE((*w)->fetch("k", 0, 1000,
                      [&](timestamp_ms t, std::string_view v) {
                        got.emplace_back(t, v);
                        return true;
                      })
              .ok());
  CHECK(got == std::vector<std::pair<timestamp_ms, std::string>>{{250, "v250"}});
  REQUIRE((*w)->put("k", 140, "late").ok()); // stream time 250 was saved
  CHECK((*w)->fetch("k", 140).value() == std::nullopt);
  {
    // On disk the purge happened too (not just hidden).
    w->reset();
    auto raw = open_rocksdb_kv(env, path, "w");
    REQUIRE(raw.ok());
    std::vector<timestamp_ms> starts;
    for (auto& [k, v] : scan(**raw))
      starts.push_back(decode_window_key(k)->start);
    CHECK(starts == std::vector<timestamp_ms>{250});
  }
}

TEST_CASE("a transactional session store buffers its sessions", "[state][epoch]") {
  SECTION("rocksdb") {
    temp_dir dir;
    rocksdb_env env;
    auto path = dir.sub("s");
    {
      epoch_group g;
      auto s = open_rocksdb_session(env, path, "s", 1000, &g);
      REQUIRE(s.ok());
      REQUIRE((*s)->put("u", {10, 20}, std::string_view{"a"}).ok());
      REQUIRE(g.commit("s", 1).ok());
      REQUIRE((*s)->put("u", {10, 20}, std::nullopt).ok()); // merged into a new one
      REQUIRE((*s)->put("u", {10, 40}, std::string_view{"ab"}).ok());
      std::vector<std::pair<timestamp_ms, std::string>> found;
      REQUIRE((*s)->find_sessions("u", 0, 100,
                                  [&](session_window w, std::string_view v) {
                                    found.emplace_back(w.end, v);
                                    return true;
                                  })
                  .ok());
      CHECK(found == std::vector<std::pair<timestamp_ms, std::string>>{{40, "ab"}});
      g.abort();
      found.clear();
      REQUIRE((*s)->find_sessions("u", 0, 100,
                                  [&](session_window w, std::string_view v) {
                                    found.emplace_back(w.end, v);
                                    return true;
                                  })
                  .ok());
      CHECK(found == std::vector<std::pair<timestamp_ms, std::string>>{{20, "a"}});
      REQUIRE((*s)->put("u", {10, 30}, std::string_view{"c"}).ok()); // never committed
    }
    auto s = open_rocksdb_session(env, path, "s", 1000);
    REQUIRE(s.ok());
    CHECK((*s)->checkpoint() == 1);
    std::vector<std::pair<timestamp_ms, std::string>> found;
    REQUIRE((*s)->find_sessions("u", 0, 100,
                                [&](session_window w, std::string_view v) {
                                  found.emplace_back(w.end, v);
                                  return true;
                                })
                .ok());
    CHECK(found == std::vector<std::pair<timestamp_ms, std::string>>{{20, "a"}});
  }
  SECTION("memory") {
    epoch_group g;
    auto s = make_memory_session("s", 1000, &g);
    REQUIRE(s.ok());
    REQUIRE((*s)->put("u", {10, 20}, std::string_view{"a"}).ok());
    CHECK(g.pending("s") == 1);
    g.abort();
    size_t n = 0;
    REQUIRE((*s)->find_sessions("u", 0, 100,
                                [&](session_window, std::string_view) {
                                  ++n;
                                  return true;
                                })
                .ok());
    CHECK(n == 0);
  }
}
