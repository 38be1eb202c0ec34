#include "weft/services/aggregate.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "weft/services/test_driver.hpp"

using str = weft::string_serde;
using i64 = weft::int64_serde;
using weft::emit;
using weft::partition_id;
using weft::windowed;

namespace {

using tw_key = weft::time_windowed_serde<str, 10>;
using sw_key = weft::session_windowed_serde<str>;
using opt_i64 = weft::optional_serde<i64>;

template <class K, class V>
using rec = weft::test_record<K, V>;

std::string be64(int64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i)
    s[static_cast<size_t>(i)] =
        static_cast<char>(static_cast<uint64_t>(v) >> (56 - 8 * i));
  return s;
}

} // namespace

TEST_CASE("windows_for places a timestamp in Kafka's tumbling and hopping windows",
          "[operators]") {
  using w = weft::time_window;
  CHECK(weft::windows_for(0, weft::tumbling_window{10}) == std::vector<w>{{0, 10}});
  CHECK(weft::windows_for(19, weft::tumbling_window{10}) == std::vector<w>{{10, 20}});
  CHECK(weft::windows_for(7, weft::hopping_window{10, 5}) ==
        std::vector<w>{{0, 10}, {5, 15}});
  CHECK(weft::windows_for(3, weft::hopping_window{10, 5}) == std::vector<w>{{0, 10}});
  CHECK(weft::windows_for(25, weft::hopping_window{20, 5}).size() == 4);
}

TEST_CASE("windowed keys have the bytes of Kafka's time- and session-windowed serdes",
          "[operators]") {
  auto t = tw_key::serialize({"ab", 5, 15});
  CHECK(t == "ab" + be64(5));
  auto back = tw_key::deserialize(t);
  REQUIRE(back.ok());
  CHECK(*back == windowed<std::string>{"ab", 5, 15});
  // Without a window size the end is unknown: INT64_MAX, as in Java.
  CHECK(weft::time_windowed_serde<str>::deserialize(t)->end == INT64_MAX);
  CHECK_FALSE(tw_key::deserialize("abc").ok());

  auto s = sw_key::serialize({"ab", 5, 9});
  CHECK(s == "ab" + be64(9) + be64(5)); // end before start, as SessionKeySchema
  CHECK(*sw_key::deserialize(s) == windowed<std::string>{"ab", 5, 9});
}

TEST_CASE("count keeps a running total per key and drops records without a key",
          "[operators]") {
  weft::test_driver d{weft::count<str, str>("counts", "clicks", "click-counts")};
  d.pipe<str, str>("clicks", "a", "x", 1);
  d.pipe<str, str>("clicks", "b", "x", 2);
  d.pipe<str, str>("clicks", "a", "x", 3);
  d.pipe("clicks", std::nullopt, std::string{"x"}, 4);
  auto out = d.read_output<str, i64>("click-counts");
  CHECK(out ==
        std::vector<rec<std::string, int64_t>>{{"a", 1, 1}, {"b", 1, 2}, {"a", 2, 3}});
  CHECK(d.kv_get<str, i64>("counts-store", "a") == 2);
  CHECK(weft::drops_of(d.service()).null_key == 1);
}

TEST_CASE("reduce starts from a key's first value and aggregate from init",
          "[operators]") {
  weft::test_driver r{weft::reduce<str, i64>("sum", "n", "sums",
                                             [](int64_t a, int64_t b) { return a + b; })};
  r.pipe<str, i64>("n", "k", 5, 1);
  r.pipe<str, i64>("n", "k", 7, 2);
  CHECK(r.read_output<str, i64>("sums") ==
        std::vector<rec<std::string, int64_t>>{{"k", 5, 1}, {"k", 12, 2}});

  weft::test_driver a{weft::aggregate<str, str, str>(
      "concat", "letters", "words", [] { return std::string{">"}; },
      [](auto&, const std::string& v, const std::string& agg) { return agg + v; })};
  a.pipe<str, str>("letters", "k", "h", 1);
  a.pipe<str, str>("letters", "k", "i", 2);
  CHECK(a.read_output<str, str>("words") ==
        std::vector<rec<std::string, std::string>>{{"k", ">h", 1}, {"k", ">hi", 2}});
}

TEST_CASE("a tumbling window takes late records within grace and drops the ones after it",
          "[operators]") {
  weft::test_driver d{
      weft::count<str, str>("per-10", "ev", "counts", weft::tumbling_window{10, 5})};
  d.pipe<str, str>("ev", "k", "x", 1);  // [0,10) = 1
  d.pipe<str, str>("ev", "k", "x", 12); // [10,20) = 1, stream time 12
  d.pipe<str, str>("ev", "k", "x", 8);  // late, but 10 > 12 - 5: [0,10) = 2
  d.pipe<str, str>("ev", "k", "x", 16); // [10,20) = 2, stream time 16
  d.pipe<str, str>("ev", "k", "x", 9);  // 10 <= 16 - 5: window closed, dropped
  auto out = d.read_output<tw_key, i64>("counts");
  CHECK(out == std::vector<rec<windowed<std::string>, int64_t>>{
                   {{"k", 0, 10}, 1, 1},
                   {{"k", 10, 20}, 1, 12},
                   {{"k", 0, 10}, 2, 8},
                   {{"k", 10, 20}, 2, 16},
               });
  CHECK(weft::drops_of(d.service()).late == 1);
  // The store holds (key, window start) -> count.
  CHECK(d.window("per-10-store").fetch("k", 0).value() == std::optional{be64(2)});
}

TEST_CASE("a hopping window updates every window a record falls in", "[operators]") {
  using hw_key = weft::time_windowed_serde<str, 10>;
  weft::test_driver d{
      weft::count<str, str>("hop", "ev", "counts", weft::hopping_window{10, 5, 0})};
  d.pipe<str, str>("ev", "k", "x", 7);  // [0,10) [5,15)
  d.pipe<str, str>("ev", "k", "x", 12); // [5,15) [10,20)
  d.pipe<str, str>("ev", "k", "x", 3);  // [0,10): closed at stream time 12
  auto out = d.read_output<hw_key, i64>("counts");
  CHECK(out == std::vector<rec<windowed<std::string>, int64_t>>{
                   {{"k", 0, 10}, 1, 7},
                   {{"k", 5, 15}, 1, 7},
                   {{"k", 5, 15}, 2, 12},
                   {{"k", 10, 20}, 1, 12},
               });
  CHECK(weft::drops_of(d.service()).late == 1);
}

TEST_CASE("emit on window close writes each window once, when stream time passes end "
          "plus grace",
          "[operators]") {
  weft::test_driver d{weft::count<str, str>(
      "final", "ev", "counts", weft::tumbling_window{10, 5}, emit::on_window_close)};
  d.pipe<str, str>("ev", "k", "x", 1);
  d.pipe<str, str>("ev", "k", "x", 4);
  d.pipe<str, str>("ev", "j", "x", 3);
  d.pipe<str, str>("ev", "k", "x", 14); // stream time 14 < 10 + 5: still open
  CHECK(d.output_size("counts") == 0);
  d.pipe<str, str>("ev", "j", "x", 15); // 15 >= 10 + 5: [0,10) closes
  auto first = d.read_output<tw_key, i64>("counts");
  CHECK(first == std::vector<rec<windowed<std::string>, int64_t>>{
                     {{"j", 0, 10}, 1, 9},
                     {{"k", 0, 10}, 2, 9},
                 });
  d.pipe<str, str>("ev", "k", "x", 7); // for the closed window: late
  CHECK(weft::drops_of(d.service()).late == 1);
  CHECK(d.output_size("counts") == 0);
  CHECK_FALSE(d.window("final-store").fetch("k", 0).value().has_value());
  d.pipe<str, str>("ev", "k", "x", 30); // closes [10,20)
  CHECK(d.read_output<tw_key, i64>("counts") ==
        std::vector<rec<windowed<std::string>, int64_t>>{
            {{"j", 10, 20}, 1, 19},
            {{"k", 10, 20}, 1, 19},
        });
}

TEST_CASE("emit on update writes every change of a window", "[operators]") {
  weft::test_driver d{weft::reduce<str, i64>(
      "max", "n", "maxima", weft::tumbling_window{10},
      [](int64_t a, int64_t b) { return std::max(a, b); }, emit::on_update)};
  d.pipe<str, i64>("n", "k", 3, 1);
  d.pipe<str, i64>("n", "k", 9, 2);
  d.pipe<str, i64>("n", "k", 4, 3);
  auto out = d.read_output<tw_key, i64>("maxima");
  REQUIRE(out.size() == 3);
  CHECK(out[0].value == 3);
  CHECK(out[1].value == 9);
  CHECK(out[2].value == 9);
}

TEST_CASE("session windows merge sessions a record bridges and drop records for closed "
          "sessions",
          "[operators]") {
  weft::test_driver d{weft::count<str, str>("sessions", "ev", "counts",
                                            weft::session_window_spec{10, 0})};
  d.pipe<str, str>("ev", "k", "x", 100); // [100,100] = 1
  d.pipe<str, str>("ev", "k", "x", 105); // [100,105] = 2, replaces [100,100]
  d.pipe<str, str>("ev", "k", "x", 120); // 15 > gap: new session [120,120] = 1
  d.pipe<str, str>("ev", "k", "x", 112); // bridges both: [100,120] = 4
  auto out = d.read_output<sw_key, opt_i64>("counts");
  using r = rec<windowed<std::string>, std::optional<int64_t>>;
  CHECK(out == std::vector<r>{
                   {{"k", 100, 100}, 1, 100},
                   {{"k", 100, 100}, std::nullopt, 100}, // merged away
                   {{"k", 100, 105}, 2, 105},
                   {{"k", 120, 120}, 1, 120},
                   {{"k", 100, 105}, std::nullopt, 105},
                   {{"k", 120, 120}, std::nullopt, 120},
                   {{"k", 100, 120}, 4, 120},
               });
  d.pipe<str, str>("ev", "k", "x", 200); // stream time 200: sessions ending < 190 closed
  d.pipe<str, str>("ev", "k", "x", 150); // [150,150] would end before 190: late
  CHECK(weft::drops_of(d.service()).late == 1);
  CHECK(d.read_output<sw_key, opt_i64>("counts").size() == 1); // only the 200 session
}

TEST_CASE("session windows emit on close once stream time passes end plus gap plus grace",
          "[operators]") {
  weft::test_driver d{weft::count<str, str>("sessions", "ev", "counts",
                                            weft::session_window_spec{10, 5},
                                            emit::on_window_close)};
  d.pipe<str, str>("ev", "k", "x", 100);
  d.pipe<str, str>("ev", "k", "x", 105);
  d.pipe<str, str>("ev", "j", "x", 110);
  d.pipe<str, str>("ev", "k", "x", 120); // 120 - 15 = 105: [100,105] not yet closed
  CHECK(d.output_size("counts") == 0);
  d.pipe<str, str>("ev", "k", "x", 121); // 105 < 121 - 15: closed
  CHECK(d.read_output<sw_key, i64>("counts") ==
        std::vector<rec<windowed<std::string>, int64_t>>{{{"k", 100, 105}, 2, 105}});
  d.pipe<str, str>("ev", "j", "x", 200); // closes j [110,110] and k [120,121]
  CHECK(d.read_output<sw_key, i64>("counts") ==
        std::vector<rec<windowed<std::string>, int64_t>>{
            {{"j", 110, 110}, 1, 110},
            {{"k", 120, 121}, 2, 121},
        });
}

TEST_CASE("session aggregate merges sessions with the merger", "[operators]") {
  weft::test_driver d{weft::aggregate<str, i64, i64>(
      "total", "n", "totals", weft::session_window_spec{10, 0}, [] { return int64_t{0}; },
      [](auto&, int64_t v, int64_t agg) { return agg + v; },
      [](auto&, int64_t a, int64_t b) { return a + b; })};
  d.pipe<str, i64>("n", "k", 1, 100);
  d.pipe<str, i64>("n", "k", 2, 120);
  d.pipe<str, i64>("n", "k", 4, 110); // bridges: 1 + 2 + 4
  auto out = d.read_output<sw_key, opt_i64>("totals");
  REQUIRE_FALSE(out.empty());
  CHECK(out.back().key == windowed<std::string>{"k", 100, 120});
  CHECK(out.back().value == 7);
}

TEST_CASE("group-by re-keys through a repartition topic that a downstream count reads",
          "[operators]") {
  // Service 1: orders keyed by order id, value = region; re-key by region.
  weft::test_driver by_region{
      weft::group_by<str, str, str>(
          "orders-by-region", "orders", "by-region",
          [](auto&, const std::string& region) { return region; }),
      2, "shop"};
  by_region.pipe<str, str>("orders", "o1", "eu", 1);
  by_region.pipe<str, str>("orders", "o2", "us", 2);
  by_region.pipe<str, str>("orders", "o3", "eu", 3);
  auto repartitioned =
      by_region.read_output(weft::repartition_topic("shop", "by-region"));
  REQUIRE(repartitioned.size() == 3);

  // Service 2: counts per region, reading the repartition topic.
  weft::test_driver per_region{weft::count<str, str>("orders-per-region",
                                                     weft::repartitioned("by-region"),
                                                     "region-counts"),
                               2, "shop"};
  per_region.pipe_records(repartitioned);
  CHECK(per_region.kv_get<str, i64>("orders-per-region-store", "eu") == 2);
  CHECK(per_region.kv_get<str, i64>("orders-per-region-store", "us") == 1);
  // Both "eu" orders were counted by the task owning "eu".
  auto eu = partition_id{weft::partition_for("eu", 2)};
  CHECK(per_region.kv("orders-per-region-store", eu).get("eu").value().has_value());
  auto counts = per_region.read_output<str, i64>("region-counts");
  CHECK(counts.size() == 3);
}

TEST_CASE("window specs are checked when the service is made", "[operators]") {
  auto bad = weft::count<str, str>("bad", "ev", "out", weft::hopping_window{10, 20});
  CHECK_THROWS_AS(weft::test_driver{bad}, weft::weft_error);
}
