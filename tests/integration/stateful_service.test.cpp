// A stateful count-by-key service against the real broker [broker]: its
// RocksDB shard survives kill -9 (at-least-once: counts never lose a record,
// duplicates are reported), and a wiped state folder is rebuilt from the
// changelog to the identical state.

#include <catch2/catch.hpp>

#include <httplib.h>
#include <signal.h>

#include <filesystem>
#include <map>
#include <sstream>

#include "test_cluster.hpp"
#include "weft/node.hpp"
#include "weft/services/service.hpp"

using namespace weft;
using namespace std::chrono_literals;

namespace {

/// GET /counts of a test node: the "counts" store, or nullopt while the node
/// is not ready (no answer, or 503 while restoring).
std::optional<std::map<std::string, int64_t>> fetch_counts(int port) {
  httplib::Client c{"127.0.0.1", port};
  c.set_connection_timeout(1);
  c.set_read_timeout(30);
  auto res = c.Get("/counts");
  if (!res || res->status != 200) return std::nullopt;
  std::map<std::string, int64_t> out;
  std::istringstream in{res->body};
  std::string key;
  int64_t n;
  while (in >> key >> n)
    out[key] = n;
  return out;
}

} // namespace

TEST_CASE("a count-by-key service over 1,000,000 records and 100,000 keys loses no count "
          "across a kill -9, and a wiped state folder is rebuilt identically from its "
          "changelog",
          "[broker][slow]") {
  auto in = test::unique_name("count-in"), out = test::unique_name("count-out");
  test::create_topics({in, out}, 6);
  const size_t total = 1000000, keys = 100000;
  test::produce(in, total, [&](size_t i) {
    return std::make_pair("key-" + std::to_string((i * 7919) % keys), std::string{"x"});
  });
  auto app = test::unique_name("count");
  auto state_dir = "/tmp/" + app + "-state";
  const int port = 18000 + (::getpid() % 1000);
  std::vector<std::string> args{"--test.service=count",
                                "--test.in=" + in,
                                "--test.out=" + out,
                                "--application.id=" + app,
                                "--bootstrap.servers=" + test::bootstrap(),
                                "--state.dir=" + state_dir,
                                "--test.http.port=" + std::to_string(port)};
  auto log = "/tmp/" + app + ".log";
  {
    test::child_process first{test::built("tests/weft-test-node"), args, log};
    REQUIRE(test::wait_until([&] { return test::end_offsets(out) >= 300000; }, 180s));
    first.kill_hard();
  }
  std::map<std::string, int64_t> counts;
  {
    test::child_process second{test::built("tests/weft-test-node"), args, log};
    REQUIRE(test::wait_until(
        [&] { return test::committed_total(app, in, 6) >= int64_t(total); }, 300s));
    auto c = fetch_counts(port);
    REQUIRE(c);
    counts = *c;
    CHECK(second.stop(SIGTERM, 60s) == 0);
  }
  REQUIRE(counts.size() == keys);
  int64_t sum = 0;
  for (auto& [k, n] : counts) {
    CHECK(n >= 10); // every key appears 10 times in the input: none lost
    sum += n;
  }
  WARN("at-least-once over-count after kill -9: "
       << sum - int64_t(total) << " duplicate increments of " << total);

  std::filesystem::remove_all(state_dir);
  test::child_process third{test::built("tests/weft-test-node"), args, log};
  std::optional<std::map<std::string, int64_t>> restored;
  REQUIRE(test::wait_until([&] { return (restored = fetch_counts(port)).has_value(); },
                           300s));
  CHECK(restored->size() == counts.size());
  CHECK(*restored == counts);
  CHECK(third.stop(SIGTERM, 60s) == 0);
}

TEST_CASE("two node processes each load a global table before processing and serve "
          "lookups for every key",
          "[broker]") {
  auto table = test::unique_name("customers"), in = test::unique_name("orders"),
       out = test::unique_name("enriched");
  test::create_topics({table}, 3);
  test::create_topics({in, out}, 2);
  const size_t keys = 5000;
  test::produce(table, keys, [](size_t i) {
    return std::make_pair("c" + std::to_string(i), "customer-" + std::to_string(i));
  });
  // Stream records exist before the nodes start: if start-up did not wait
  // for the table, the first ones would find nothing.
  test::produce(in, 1000, [&](size_t i) {
    return std::make_pair("c" + std::to_string(i * 5 % keys),
                          "order-" + std::to_string(i));
  });
  std::vector<std::unique_ptr<test::child_process>> nodes;
  std::vector<int> ports;
  for (int n = 0; n < 2; ++n) {
    auto app = test::unique_name("global");
    ports.push_back(19000 + (::getpid() % 500) * 2 + n);
    nodes.push_back(std::make_unique<test::child_process>(
        test::built("tests/weft-test-node"),
        std::vector<std::string>{
            "--test.service=enrich", "--test.in=" + in, "--test.table=" + table,
            "--test.out=" + out, "--application.id=" + app,
            "--bootstrap.servers=" + test::bootstrap(), "--state.dir=/tmp/" + app,
            "--test.http.port=" + std::to_string(ports.back())},
        "/tmp/" + app + ".log"));
  }
  // Each node processes the 1000 orders once (they are separate applications).
  auto enriched = test::consume_all(out, 2000, 120s, 1s);
  REQUIRE(enriched.size() == 2000);
  for (auto& r : enriched)
    CHECK_THAT(*r.value, !Catch::EndsWith("|MISSING"));
  for (int n = 0; n < 2; ++n) {
    httplib::Client c{"127.0.0.1", ports[n]};
    c.set_connection_timeout(1);
    REQUIRE(test::wait_until([&] { return static_cast<bool>(c.Get("/global?key=c0")); },
                             30s));
    size_t found = 0;
    for (size_t i = 0; i < keys; ++i) {
      auto res = c.Get(("/global?key=c" + std::to_string(i)).c_str());
      if (res && res->status == 200 && res->body == "customer-" + std::to_string(i))
        ++found;
    }
    CHECK(found == keys);
    auto missing = c.Get("/global?key=nobody");
    REQUIRE(missing);
    CHECK(missing->status == 404);
    CHECK(nodes[n]->stop(SIGTERM, 60s) == 0);
  }
}

namespace {

/// Joins a stream with a table (KTable) of the same key: emits
/// "<value>|<table value or NONE>".
struct stream_table_join : weft::service_base {
  weft::output<weft::string_serde, weft::string_serde> out;
  stream_table_join(std::string stream, std::string table, std::string out_topic)
    : service_base("joiner") {
    add_input(stream);
    add_table(table, "table");
    out = weft::output<weft::string_serde, weft::string_serde>{
        add_output(out_topic, weft::output_kind::external)};
  }
  void on_record(const weft::record_view& r, weft::context& ctx) override {
    auto hit = ctx.kv_store("table").get(*r.key);
    out.emit(ctx, std::string{*r.key},
             std::string{*r.value} + "|" +
                 (hit.ok() && *hit ? **hit : std::string{"NONE"}));
  }
};

} // namespace

TEST_CASE(
    "joining a stream and a table with different partition counts fails at start-up "
    "naming both topics and their counts",
    "[broker]") {
  auto stream = test::unique_name("stream"), table = test::unique_name("table"),
       out = test::unique_name("joined");
  test::create_topics({stream, out}, 4);
  test::create_topics({table}, 3);
  auto app = test::unique_name("copart");
  auto cfg = weft::config::from_map({{"application.id", app},
                                     {"bootstrap.servers", test::bootstrap()},
                                     {"state.dir", "/tmp/" + app}});
  REQUIRE(cfg.ok());
  weft::node n{*cfg};
  n.add<stream_table_join>(stream, table, out);
  auto st = n.start();
  REQUIRE_FALSE(st.ok());
  CHECK(st.code() == errc::invalid_config);
  CHECK_THAT(st.message(), Catch::Contains("'" + stream + "' has 4 partitions") &&
                               Catch::Contains("'" + table + "' has 3 partitions") &&
                               Catch::Contains("repartition"));
}

TEST_CASE(
    "a table input materialises the latest value per key, tombstones delete it, and a "
    "co-partitioned stream joins against it",
    "[broker]") {
  auto stream = test::unique_name("stream"), table = test::unique_name("table"),
       out = test::unique_name("joined");
  test::create_topics({stream, table, out}, 3);
  test::produce(table, 300, [](size_t i) {
    // k0..k99 three times each; the last value wins
    return std::make_pair("k" + std::to_string(i % 100), "v" + std::to_string(i));
  });
  {
    // Tombstones for k0..k9.
    auto p = kafka::producer::create(
        {{"bootstrap.servers", test::bootstrap()}, {"partitioner", "murmur2_random"}});
    REQUIRE(p.ok());
    for (int i = 0; i < 10; ++i)
      REQUIRE((*p)->send(table, -1, "k" + std::to_string(i), std::nullopt).ok());
    REQUIRE((*p)->flush(10000).ok());
  }
  auto app = test::unique_name("ktable");
  auto cfg = weft::config::from_map({{"application.id", app},
                                     {"bootstrap.servers", test::bootstrap()},
                                     {"state.dir", "/tmp/" + app}});
  REQUIRE(cfg.ok());
  weft::node n{*cfg};
  n.add<stream_table_join>(stream, table, out);
  REQUIRE(n.start().ok());
  // The table is read as an input like any other: wait until its records are in.
  REQUIRE(test::wait_until([&] { return n.metrics().processed >= 310; }, 60s));
  for (int i = 0; i < 100; ++i) {
    auto v =
        n.get<weft::string_serde, weft::string_serde>("table", "k" + std::to_string(i));
    REQUIRE(v.ok());
    if (i < 10)
      CHECK_FALSE(v->has_value());
    else
      CHECK(**v == "v" + std::to_string(200 + i));
  }
  test::produce(stream, 100, [](size_t i) {
    return std::make_pair("k" + std::to_string(i), "order" + std::to_string(i));
  });
  auto joined = test::consume_all(out, 100, 60s, 500ms);
  REQUIRE(joined.size() == 100);
  for (auto& r : joined) {
    auto i = std::stoi(r.key->substr(1));
    CHECK(*r.value == "order" + std::to_string(i) + "|" +
                          (i < 10 ? std::string{"NONE"} : "v" + std::to_string(200 + i)));
  }
  n.request_stop();
  CHECK(n.wait().ok());
}

namespace {

/// Looks each record's key up in the global table "shared" (declared by
/// every instance): emits "<service>|<table value or MISSING>".
struct global_reader : weft::service_base {
  weft::output<weft::string_serde, weft::string_serde> out;
  global_reader(std::string name, std::string in, std::string table,
                std::string out_topic)
    : service_base(std::move(name)) {
    add_input(in);
    add_global_table(table, "shared");
    out = weft::output<weft::string_serde, weft::string_serde>{
        add_output(out_topic, weft::output_kind::external)};
  }
  void on_record(const weft::record_view& r, weft::context& ctx) override {
    auto hit = ctx.global_store("shared").get(*r.key);
    out.emit(ctx, std::string{*r.key},
             this->name() + "|" + (hit.ok() && *hit ? **hit : std::string{"MISSING"}));
  }
};

} // namespace

TEST_CASE("two services declaring the same global table share one copy of it, and the "
          "same store over another topic fails at start-up naming both topics",
          "[broker]") {
  auto table = test::unique_name("shared-table"),
       other = test::unique_name("other-table");
  auto in1 = test::unique_name("g-in1"), in2 = test::unique_name("g-in2"),
       out = test::unique_name("g-out");
  test::create_topics({table, other, in1, in2, out}, 2);
  test::produce(table, 20, [](size_t i) {
    return std::make_pair("k" + std::to_string(i), "v" + std::to_string(i));
  });
  auto app = test::unique_name("global2");
  auto cfg = weft::config::from_map({{"application.id", app},
                                     {"bootstrap.servers", test::bootstrap()},
                                     {"state.dir", "/tmp/" + app}});
  REQUIRE(cfg.ok());
  {
    weft::node n{*cfg};
    n.add<global_reader>("first", in1, table, out);
    n.add<global_reader>("second", in2, table, out);
    auto st = n.start();
    INFO(st.message());
    REQUIRE(st.ok());
    for (auto* in : {&in1, &in2})
      test::produce(*in, 20, [](size_t i) {
        return std::make_pair("k" + std::to_string(i), std::string{"x"});
      });
    auto got = test::consume_all(out, 40, 60s, 500ms);
    REQUIRE(got.size() == 40);
    size_t first = 0, second = 0;
    for (auto& r : got) {
      auto i = r.key->substr(1);
      if (*r.value == "first|v" + i) ++first;
      if (*r.value == "second|v" + i) ++second;
    }
    CHECK(first == 20);
    CHECK(second == 20);
    n.request_stop();
    CHECK(n.wait().ok());
  }
  weft::node bad{*cfg};
  bad.add<global_reader>("first", in1, table, out);
  bad.add<global_reader>("second", in2, other, out);
  auto st = bad.start();
  REQUIRE_FALSE(st.ok());
  CHECK(st.code() == errc::invalid_config);
  CHECK_THAT(st.message(), Catch::Contains(table) && Catch::Contains(other));
}
