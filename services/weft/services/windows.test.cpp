// Windowed keys on topics: where results go and which stores weft adds for
// time [operators].

#include <catch2/catch.hpp>

#include <string>

#include "weft/services/aggregate.hpp"
#include "weft/services/dsl.hpp"
#include "weft/services/test_driver.hpp"

using str = weft::string_serde;

namespace {

/// Every record of `out` is on the partition of its key without the last
/// `suffix` bytes; returns how many would be elsewhere hashed whole.
size_t check_plain_key_partitions(const std::vector<weft::record>& out, size_t suffix,
                                  int32_t partitions) {
  size_t whole_elsewhere = 0;
  for (auto& r : out) {
    REQUIRE(r.key);
    REQUIRE(r.key->size() > suffix);
    auto plain = r.key->substr(0, r.key->size() - suffix);
    CHECK(r.partition == weft::partition_for(plain, partitions));
    CHECK(r.key_suffix == suffix);
    if (weft::partition_for(*r.key, partitions) != r.partition) ++whole_elsewhere;
  }
  return whole_elsewhere;
}

} // namespace

TEST_CASE("the windowed serdes tell the partitioner to skip the window", "[operators]") {
  CHECK(weft::partition_key_suffix_v<weft::time_windowed_serde<str>> == 8);
  CHECK(weft::partition_key_suffix_v<weft::session_windowed_serde<str>> == 16);
  CHECK(weft::partition_key_suffix_v<str> == 0);
  CHECK(weft::partition_key_suffix_v<weft::int64_serde> == 0);
}

TEST_CASE("windowed aggregations write each result to the partition of its plain key",
          "[operators]") {
  const int32_t partitions = 6;
  weft::test_driver tw{
      weft::count<str, str>("tw", "clicks", "tw-out", weft::tumbling_window{1000, 0}),
      partitions};
  weft::test_driver sw{
      weft::count<str, str>("sw", "clicks", "sw-out", weft::session_window_spec{500, 0}),
      partitions};
  for (int i = 0; i < 300; ++i) {
    auto key = "user-" + std::to_string(i % 30);
    tw.pipe<str, str>("clicks", key, "x", 1 + i * 10);
    sw.pipe<str, str>("clicks", key, "x", 1 + i * 10);
  }
  auto t = tw.read_output("tw-out");
  auto s = sw.read_output("sw-out");
  REQUIRE(t.size() == 300);
  REQUIRE(s.size() >= 300);
  CHECK(check_plain_key_partitions(t, 8, partitions) > t.size() / 2);
  CHECK(check_plain_key_partitions(s, 16, partitions) > s.size() / 2);
}

TEST_CASE("a DSL sink of a windowed table partitions by the plain key", "[operators]") {
  weft::streams_builder b{"shop"};
  b.stream<str, str>("clicks")
      .group_by_key()
      .windowed_by(weft::tumbling_window{1000, 0})
      .count("per-second")
      .to_stream()
      .to("counts");
  auto services = b.build();
  REQUIRE(services.size() == 1);
  weft::test_driver d{services[0], 6};
  for (int i = 0; i < 120; ++i)
    d.pipe<str, str>("clicks", "user-" + std::to_string(i % 12), "x", 1 + i * 10);
  auto out = d.read_output("counts");
  REQUIRE(out.size() == 120);
  CHECK(check_plain_key_partitions(out, 8, 6) > out.size() / 2);
}

TEST_CASE("a stateful service gets a stream-time store with its first store and a "
          "stateless one none",
          "[operators]") {
  auto counting = weft::count<str, str>("counter", "in", "out")();
  REQUIRE(counting->stores().size() == 2);
  CHECK(counting->stores()[0].name == weft::service_base::stream_time_store("counter"));
  CHECK(counting->stores()[0].internal);
  CHECK(counting->stores()[1].name == "counter-store");
  CHECK_FALSE(counting->stores()[1].internal);

  weft::streams_builder b{"app"};
  b.stream<str, str>("in").filter([](auto&, auto&) { return true; }).to("out");
  CHECK(b.build()[0]()->stores().empty());

  // A fused service keeps one, its own, not one per embedded operator.
  weft::streams_builder f{"app"};
  auto in = f.stream<str, str>("in");
  in.group_by_key().count("a").to_stream().to("a-out");
  in.group_by_key().count("b").to_stream().to("b-out");
  auto host = f.build()[0]();
  size_t internal = 0;
  for (auto& s : host->stores())
    if (s.internal) {
      ++internal;
      CHECK(s.name == weft::service_base::stream_time_store(host->name()));
    }
  CHECK(internal == 1);
  CHECK(f.describe().find("stream-time") == std::string::npos);
}
