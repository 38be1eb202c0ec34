// Shards: transactional (exactly-once) stacks committed and aborted per
// epoch on RocksDB, and restore from transactional changelogs [broker].

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>
#include <unistd.h>

#include "weft/kafka/admin.hpp"
#include "weft/kafka/consumer.hpp"
#include "weft/kafka/producer.hpp"
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

// -- restore from transactional changelogs [broker] ---------------------------------

namespace {

std::string bootstrap() {
  auto* b = std::getenv("WEFT_TEST_BOOTSTRAP");
  if (!b)
    FAIL("WEFT_TEST_BOOTSTRAP is not set: run broker tests through ctest, which starts "
         "a broker, or set it to a running one");
  return b;
}

std::unique_ptr<weft::kafka::consumer> restore_reader(const std::string& app) {
  auto c = weft::kafka::consumer::create({{"bootstrap.servers", bootstrap()},
                                          {"group.id", app + "-restore"},
                                          {"isolation.level", "read_committed"}});
  REQUIRE(c.ok());
  return std::move(*c);
}

/// The three stores' changelogs of a fresh application (deleted at the end),
/// and a transactional producer that has run init_transactions.
struct eos_changelogs {
  std::string app, counts_topic, w_topic, idle_topic;
  std::unique_ptr<weft::kafka::producer> producer;
  explicit eos_changelogs(const std::string& prefix)
    : app(prefix + std::to_string(getpid()) + "-" +
          std::to_string(std::chrono::steady_clock::now().time_since_epoch().count())),
      counts_topic(weft::state::changelog_topic(app, "counts")),
      w_topic(weft::state::changelog_topic(app, "w")),
      idle_topic(weft::state::changelog_topic(app, "idle")) {
    auto admin = weft::kafka::admin::create({{"bootstrap.servers", bootstrap()}});
    REQUIRE(admin.ok());
    REQUIRE((*admin)
                ->ensure_topics({{counts_topic, 1, 1, {{"cleanup.policy", "compact"}}},
                                 {w_topic, 1, 1, {}},
                                 {idle_topic, 1, 1, {}}},
                                30'000)
                .ok());
    auto p = weft::kafka::producer::create(
        {{"bootstrap.servers", bootstrap()}, {"transactional.id", app + "-tx"}});
    REQUIRE(p.ok());
    producer = std::move(*p);
    REQUIRE(producer->init_transactions(30'000).ok());
  }
  ~eos_changelogs() {
    producer.reset();
    auto admin = weft::kafka::admin::create({{"bootstrap.servers", bootstrap()}});
    if (admin) (void)(*admin)->delete_topics({counts_topic, w_topic, idle_topic}, 30'000);
  }
};

} // namespace

TEST_CASE("a shard restores a transactional changelog without aborted records and "
          "without waiting at its end markers",
          "[broker][state]") {
  using namespace weft;
  eos_changelogs logs{"weft-state-eos-"};
  auto& [app, counts_topic, w_topic, idle_topic, producer] = logs;
  auto& p = *producer;
  using kv = std::pair<std::string, std::optional<std::string>>;
  auto txn = [&](const std::string& topic, const std::vector<kv>& changes, bool commit) {
    REQUIRE(p.begin_transaction().ok());
    for (auto& [k, v] : changes)
      REQUIRE(p.send(topic, 0, k, v ? std::optional<std::string_view>{*v} : std::nullopt)
                  .ok());
    if (commit)
      REQUIRE(p.commit_transaction(30'000).ok());
    else {
      REQUIRE(p.flush(30'000).ok()); // the aborted records are in the log
      REQUIRE(p.abort_transaction(30'000).ok());
    }
  };
  txn(counts_topic, {{"a", "1"}, {"b", "1"}}, true);
  txn(counts_topic, {{"a", "aborted"}, {"c", "aborted"}}, false);
  txn(counts_topic, {{"b", "2"}, {"d", "1"}, {"a", std::nullopt}}, true);
  txn(counts_topic, {{"e", "aborted"}}, false); // the log ends in an abort marker
  txn(w_topic, {{encode_window_key("k", 100), "w1"}}, true); // ends in a commit marker

  temp_dir dir;
  auto factory = state::make_rocksdb_factory(8 << 20, 16 << 20);
  counting_sink sink;
  auto reader = restore_reader(app);
  auto open = [&] {
    auto sh = shard::open(*factory, dir.path, app, 0, specs, &sink, true);
    REQUIRE(sh.ok());
    return std::move(*sh);
  };
  // The end offset of a partition with no open transaction, markers
  // included. The coordinator writes commit/abort markers just after it
  // answers EndTxn, so until then the read_committed end (the last stable
  // offset) lags the log's end: wait (bounded) until they agree.
  auto any_reader =
      weft::kafka::consumer::create({{"bootstrap.servers", bootstrap()},
                                     {"group.id", app + "-uncommitted"},
                                     {"isolation.level", "read_uncommitted"}});
  REQUIRE(any_reader.ok());
  auto high = [&](const std::string& topic) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (true) {
      auto m = reader->watermarks({topic, partition_id{0}}, 10'000);
      auto all = (*any_reader)->watermarks({topic, partition_id{0}}, 10'000);
      REQUIRE(m.ok());
      REQUIRE(all.ok());
      if (m->second == all->second || std::chrono::steady_clock::now() > deadline)
        return m->second;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  };
  constexpr int timeout_ms = 10'000;
  {
    auto sh = open();
    auto t0 = std::chrono::steady_clock::now();
    auto n = sh->restore(*reader, 1000, timeout_ms);
    auto secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    REQUIRE(n.ok());
    CHECK(*n == 6);    // a, b, b, d, a (tombstone) and the window
    CHECK(secs < 5.0); // not the restore timeout
    auto& counts = *sh->kv("counts");
    CHECK(get(counts, "a") == std::nullopt);
    CHECK(get(counts, "b") == "2");
    CHECK(get(counts, "c") == std::nullopt);
    CHECK(get(counts, "d") == "1");
    CHECK(get(counts, "e") == std::nullopt);
    CHECK(fetch(*sh->window("w"), "k", 100) == "w1");
    // Checkpoints past the end markers, so the next restore reads nothing.
    CHECK(counts.checkpoint() == high(counts_topic));
    CHECK(sh->window("w")->checkpoint() == high(w_topic));
    CHECK(sh->delivered_offset("counts")->load() == high(counts_topic) - 1);
    REQUIRE(sh->commit_epoch().ok()); // nothing written: nothing changes
    CHECK(counts.checkpoint() == high(counts_topic));
  }
  {
    // A transaction is open on the changelog while the shard restores, and
    // another producer committed after it: read_committed ends at the last
    // stable offset (the open transaction's first record), so the restore
    // neither waits for the open transaction nor shows anything after it.
    REQUIRE(p.begin_transaction().ok());
    REQUIRE(
        p.send(counts_topic, 0, std::string_view{"f"}, std::string_view{"open"}).ok());
    REQUIRE(p.flush(30'000).ok());
    auto other = kafka::producer::create(
        {{"bootstrap.servers", bootstrap()}, {"transactional.id", app + "-tx2"}});
    REQUIRE(other.ok());
    REQUIRE((*other)->init_transactions(30'000).ok());
    REQUIRE((*other)->begin_transaction().ok());
    REQUIRE((*other)
                ->send(counts_topic, 0, std::string_view{"g"}, std::string_view{"1"})
                .ok());
    REQUIRE((*other)->commit_transaction(30'000).ok());

    auto sh = open();
    auto t0 = std::chrono::steady_clock::now();
    auto n = sh->restore(*reader, 1000, timeout_ms);
    auto secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    REQUIRE(n.ok());
    CHECK(*n == 0);
    CHECK(secs < 5.0);
    CHECK(get(*sh->kv("counts"), "f") == std::nullopt);
    CHECK(get(*sh->kv("counts"), "g") == std::nullopt);
  }
  {
    // Once it aborts, what was committed behind it is restored.
    REQUIRE(p.abort_transaction(30'000).ok());
    auto sh = open();
    auto n = sh->restore(*reader, 1000, timeout_ms);
    REQUIRE(n.ok());
    CHECK(*n == 1);
    CHECK(get(*sh->kv("counts"), "f") == std::nullopt);
    CHECK(get(*sh->kv("counts"), "g") == "1");
    CHECK(get(*sh->kv("counts"), "b") == "2");
    CHECK(sh->kv("counts")->checkpoint() == high(counts_topic));
  }
  {
    // An exactly-once epoch as the task runs it: the write is logged in a
    // transaction, which commits, then the shard commits the epoch with the
    // checkpoint after the record — the offset of the commit marker. A
    // restart then restores from the marker: nothing to apply, no waiting.
    auto sh = open();
    REQUIRE(sh->restore(*reader, 1000, timeout_ms).ok());
    auto x_offset = high(counts_topic);
    REQUIRE(sh->kv("counts")->put("x", "1").ok());
    REQUIRE(sh->flush().ok());
    txn(counts_topic, {{"x", "1"}}, true);
    sh->delivered_offset("counts")->store(x_offset);
    REQUIRE(sh->commit_epoch().ok());
    CHECK(sh->kv("counts")->checkpoint() == x_offset + 1);
    CHECK(high(counts_topic) == x_offset + 2); // the record and its marker
  }
  {
    auto sh = open();
    auto t0 = std::chrono::steady_clock::now();
    auto n = sh->restore(*reader, 1000, timeout_ms);
    auto secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    REQUIRE(n.ok());
    CHECK(*n == 0);
    CHECK(secs < 5.0);
    CHECK(get(*sh->kv("counts"), "x") == "1");
    CHECK(sh->kv("counts")->checkpoint() == high(counts_topic));
  }
}

TEST_CASE("a shard taken over waits for the transaction open on its changelog and "
          "restores what it commits",
          "[broker][state]") {
  // A task moving between nodes: the old owner's last transaction is
  // committed, but until the coordinator writes its markers the stable end
  // stops before it, while the input offsets it committed are final. Here
  // the transaction commits 300 ms after the restore starts: a restore that
  // ended at the stable end would miss "f".
  using namespace weft;
  eos_changelogs logs{"weft-state-handoff-"};
  auto& [app, counts_topic, w_topic, idle_topic, producer] = logs;
  auto& p = *producer;
  REQUIRE(p.begin_transaction().ok());
  REQUIRE(p.send(counts_topic, 0, std::string_view{"e"}, std::string_view{"1"}).ok());
  REQUIRE(p.commit_transaction(30'000).ok());
  REQUIRE(p.begin_transaction().ok());
  REQUIRE(p.send(counts_topic, 0, std::string_view{"f"}, std::string_view{"2"}).ok());
  REQUIRE(p.flush(30'000).ok()); // in the log, not yet stable

  temp_dir dir;
  auto factory = state::make_rocksdb_factory(8 << 20, 16 << 20);
  counting_sink sink;
  auto sh = shard::open(*factory, dir.path, app, 0, specs, &sink, true);
  REQUIRE(sh.ok());
  auto reader = restore_reader(app);
  auto any_reader = kafka::consumer::create({{"bootstrap.servers", bootstrap()},
                                             {"group.id", app + "-hw"},
                                             {"isolation.level", "read_uncommitted"}});
  REQUIRE(any_reader.ok());
  std::atomic<bool> committed{false};
  std::thread committer{[&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    committed = p.commit_transaction(30'000).ok();
  }};
  auto n =
      shard::restore_all({sh->get()}, *reader, 1000, 10'000, nullptr, any_reader->get());
  committer.join();
  REQUIRE(committed);
  REQUIRE(n.ok());
  CHECK(n->at(0) == 2);
  CHECK(get(*(*sh)->kv("counts"), "e") == "1");
  CHECK(get(*(*sh)->kv("counts"), "f") == "2");
}
