#include "weft/services/join.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "weft/services/test_driver.hpp"

using str = weft::string_serde;
using opt_str = weft::optional_serde<str>;

namespace {

using out_t = std::vector<weft::test_record<std::string, std::string>>;
using opt_out_t = std::vector<weft::test_record<std::string, std::optional<std::string>>>;

std::string show(const std::optional<std::string>& s) {
  return s ? *s : "null";
}

auto inner_joiner = [](const std::string& l, const std::string& r) {
  return l + "+" + r;
};
auto left_joiner = [](const std::string& l, const std::optional<std::string>& r) {
  return l + "+" + show(r);
};
auto outer_joiner = [](const std::optional<std::string>& l,
                       const std::optional<std::string>& r) {
  return show(l) + "+" + show(r);
};

} // namespace

// -- stream-table -------------------------------------------------------------------

TEST_CASE("a stream-table inner join emits only when the table has the key",
          "[operators]") {
  weft::test_driver d{weft::stream_table_join<str, str, str, str>(
      "orders-customers", "orders", "customers", "out", inner_joiner)};
  d.pipe<str, str>("customers", "c1", "Ann", 1);
  d.pipe<str, str>("orders", "c1", "book", 10);
  d.pipe<str, str>("orders", "c2", "pen", 11);    // no customer c2: nothing
  d.pipe<str, str>("customers", "c2", "Bob", 12); // table updates emit nothing
  d.pipe<str, str>("orders", "c2", "ink", 13);
  d.pipe_tombstone<str>("customers", "c1", 14); // c1 deleted
  d.pipe<str, str>("orders", "c1", "cup", 15);
  CHECK(d.read_output<str, str>("out") ==
        out_t{{"c1", "book+Ann", 10}, {"c2", "ink+Bob", 13}});
  CHECK_FALSE(d.kv_get<str, str>("orders-customers-table", "c1").has_value());
}

TEST_CASE("a stream-table left join emits a null table side for missing or deleted rows",
          "[operators]") {
  weft::test_driver d{weft::stream_table_left_join<str, str, str, str>(
      "orders-customers", "orders", "customers", "out", left_joiner)};
  d.pipe<str, str>("customers", "c1", "Ann", 1);
  d.pipe<str, str>("orders", "c1", "book", 10);
  d.pipe<str, str>("orders", "c2", "pen", 11);
  d.pipe_tombstone<str>("customers", "c1", 12);
  d.pipe<str, str>("orders", "c1", "cup", 13);
  d.pipe("orders", std::nullopt, std::string{"lost"}, 14); // no key: dropped
  d.pipe("orders", std::string{"c1"}, std::nullopt, 15);   // no value: dropped
  CHECK(d.read_output<str, str>("out") ==
        out_t{{"c1", "book+Ann", 10}, {"c2", "pen+null", 11}, {"c1", "cup+null", 13}});
  auto drops = weft::drops_of(d.service());
  CHECK(drops.null_key == 1);
  CHECK(drops.null_value == 1);
}

// -- stream-global table ---------------------------------------------------------------

namespace {

/// Orders keyed by order id, valued "<customer>:<item>".
auto customer_of = [](const std::string&, const std::string& v) {
  return v.substr(0, v.find(':'));
};

} // namespace

TEST_CASE("a stream-global table inner join looks up the extracted key in every task",
          "[operators]") {
  weft::test_driver d{
      weft::global_table_join<str, str, str, str, str>(
          "enrich", "orders", "customers", "out", customer_of,
          [](const std::string& o, const std::string& c) { return o + "@" + c; }),
      3};
  d.pipe<str, str>("customers", "c1", "Ann", 1);
  for (std::string id : {"o1", "o2", "o3", "o4", "o5"})
    d.pipe<str, str>("orders", id, "c1:item-" + id, 10);
  d.pipe<str, str>("orders", "o6", "c9:ghost", 11); // unknown customer
  auto out = d.read_output<str, str>("out");
  REQUIRE(out.size() == 5);
  for (auto& r : out)
    CHECK(r.value == "c1:item-" + r.key + "@Ann");
}

TEST_CASE("a stream-global table left join emits a null side for unknown keys",
          "[operators]") {
  weft::test_driver d{weft::global_table_left_join<str, str, str, str, str>(
      "enrich", "orders", "customers", "out",
      [](const std::string&, const std::string& v) -> std::optional<std::string> {
        if (v.find(':') == std::string::npos) return std::nullopt; // nothing to look up
        return v.substr(0, v.find(':'));
      },
      [](const std::string& o, const std::optional<std::string>& c) {
        return o + "@" + show(c);
      })};
  d.pipe<str, str>("customers", "c1", "Ann", 1);
  d.pipe<str, str>("orders", "o1", "c1:book", 10);
  d.pipe<str, str>("orders", "o2", "c9:ghost", 11);
  d.pipe<str, str>("orders", "o3", "anonymous", 12);
  CHECK(d.read_output<str, str>("out") == out_t{{"o1", "c1:book@Ann", 10},
                                                {"o2", "c9:ghost@null", 11},
                                                {"o3", "anonymous@null", 12}});
}

// -- table-table ------------------------------------------------------------------

TEST_CASE("a table-table inner join emits when both rows exist and a tombstone when one "
          "goes",
          "[operators]") {
  weft::test_driver d{
      weft::table_table_join<str, str, str, str>("tt", "L", "R", "out", inner_joiner)};
  d.pipe<str, str>("L", "a", "1", 1); // no right row: nothing
  d.pipe<str, str>("R", "a", "x", 2); // 1+x
  d.pipe<str, str>("L", "a", "2", 3); // 2+x
  d.pipe_tombstone<str>("R", "a", 4); // tombstone
  d.pipe_tombstone<str>("L", "a", 5); // right gone already: nothing
  d.pipe_tombstone<str>("L", "b", 6); // never existed: nothing
  CHECK(d.read_output<str, opt_str>("out") ==
        opt_out_t{{"a", "1+x", 2}, {"a", "2+x", 3}, {"a", std::nullopt, 4}});
}

TEST_CASE("a table-table left join keeps left rows with a null right side",
          "[operators]") {
  weft::test_driver d{weft::table_table_left_join<str, str, str, str>(
      "tt", "L", "R", "out", left_joiner)};
  d.pipe<str, str>("L", "a", "1", 1); // 1+null
  d.pipe<str, str>("R", "a", "x", 2); // 1+x
  d.pipe_tombstone<str>("R", "a", 3); // 1+null
  d.pipe_tombstone<str>("L", "a", 4); // tombstone
  d.pipe<str, str>("R", "b", "y", 5); // no left row: nothing
  CHECK(d.read_output<str, opt_str>("out") == opt_out_t{{"a", "1+null", 1},
                                                        {"a", "1+x", 2},
                                                        {"a", "1+null", 3},
                                                        {"a", std::nullopt, 4}});
}

TEST_CASE("a table-table outer join emits whichever rows exist", "[operators]") {
  weft::test_driver d{weft::table_table_outer_join<str, str, str, str>(
      "tt", "L", "R", "out", outer_joiner)};
  d.pipe<str, str>("L", "a", "1", 1); // 1+null
  d.pipe<str, str>("R", "b", "y", 2); // null+y
  d.pipe<str, str>("R", "a", "x", 3); // 1+x
  d.pipe_tombstone<str>("L", "a", 4); // null+x
  d.pipe_tombstone<str>("R", "a", 5); // tombstone
  CHECK(d.read_output<str, opt_str>("out") == opt_out_t{{"a", "1+null", 1},
                                                        {"b", "null+y", 2},
                                                        {"a", "1+x", 3},
                                                        {"a", "null+x", 4},
                                                        {"a", std::nullopt, 5}});
}

// -- stream-stream ----------------------------------------------------------------

TEST_CASE("a stream-stream inner join pairs records within the join window",
          "[operators]") {
  weft::test_driver d{weft::stream_stream_join<str, str, str, str>(
      "ss", "clicks", "views", "out", weft::join_window::of(10), inner_joiner)};
  d.pipe<str, str>("clicks", "k", "a", 100);
  d.pipe<str, str>("views", "k", "x", 105);  // a+x at 105
  d.pipe<str, str>("views", "k", "y", 115);  // 15 after a: outside
  d.pipe<str, str>("clicks", "k", "b", 112); // b+x, b+y
  d.pipe<str, str>("views", "j", "z", 113);  // other key
  CHECK(d.read_output<str, str>("out") ==
        out_t{{"k", "a+x", 105}, {"k", "b+x", 112}, {"k", "b+y", 115}});
}

TEST_CASE("an asymmetric join window bounds partners before and after", "[operators]") {
  // Views may come up to 5 before and 20 after a click.
  weft::test_driver d{weft::stream_stream_join<str, str, str, str>(
      "ss", "clicks", "views", "out", weft::join_window{5, 20, 0}, inner_joiner)};
  d.pipe<str, str>("views", "k", "early", 94);  // 6 before the click: outside
  d.pipe<str, str>("views", "k", "before", 96); // 4 before
  d.pipe<str, str>("clicks", "k", "c", 100);
  d.pipe<str, str>("views", "k", "after", 119); // 19 after
  d.pipe<str, str>("views", "k", "late", 121);  // 21 after: outside
  CHECK(d.read_output<str, str>("out") ==
        out_t{{"k", "c+before", 100}, {"k", "c+after", 119}});
}

TEST_CASE("a stream-stream left join emits a null right side once the window closes "
          "unmatched",
          "[operators]") {
  weft::test_driver d{weft::stream_stream_left_join<str, str, str, str>(
      "ss", "clicks", "views", "out", weft::join_window::of(10, 5), left_joiner)};
  d.pipe<str, str>("clicks", "k", "a", 100); // waits
  CHECK(d.output_size("out") == 0);
  d.pipe<str, str>("clicks", "k", "b", 114); // 114 < 100 + 10 + 5: a still waits
  CHECK(d.output_size("out") == 0);
  d.pipe<str, str>("clicks", "k", "c", 200);    // a and b closed unmatched
  d.pipe<str, str>("views", "k", "x", 205);     // c+x: c stops waiting
  d.pipe<str, str>("views", "k", "z", 300);     // right records never get a null left
  d.pipe<str, str>("clicks", "k", "late", 280); // 280 + 10 + 5 < 300: dropped
  d.pipe<str, str>("clicks", "k", "d", 291);    // within grace: d+z
  CHECK(d.read_output<str, str>("out") == out_t{{"k", "a+null", 100},
                                                {"k", "b+null", 114},
                                                {"k", "c+x", 205},
                                                {"k", "d+z", 300}});
  CHECK(weft::drops_of(d.service()).late == 1);
}

TEST_CASE("a stream-stream outer join emits a null side for unmatched records of either "
          "side",
          "[operators]") {
  weft::test_driver d{weft::stream_stream_outer_join<str, str, str, str>(
      "ss", "clicks", "views", "out", weft::join_window::of(10), outer_joiner)};
  d.pipe<str, str>("clicks", "k", "a", 100);
  d.pipe<str, str>("views", "k", "x", 150); // closes a: a+null
  d.pipe<str, str>("views", "k", "y", 155);
  d.pipe<str, str>("clicks", "k", "b", 158); // b+x, b+y: x and y matched
  d.pipe<str, str>("clicks", "k", "c", 400);
  d.pipe<str, str>("views", "k", "q", 500);  // closes c: c+null
  d.pipe<str, str>("clicks", "k", "e", 600); // closes q: null+q
  CHECK(d.read_output<str, str>("out") == out_t{{"k", "a+null", 100},
                                                {"k", "b+x", 158},
                                                {"k", "b+y", 158},
                                                {"k", "c+null", 400},
                                                {"k", "null+q", 500}});
}

TEST_CASE("a stream-stream join keeps records that share a key and a timestamp",
          "[operators]") {
  weft::test_driver d{weft::stream_stream_join<str, str, str, str>(
      "ss", "clicks", "views", "out", weft::join_window::of(0), inner_joiner)};
  d.pipe<str, str>("clicks", "k", "a1", 100);
  d.pipe<str, str>("clicks", "k", "a2", 100);
  d.pipe<str, str>("views", "k", "x", 100);
  CHECK(d.read_output<str, str>("out") == out_t{{"k", "a1+x", 100}, {"k", "a2+x", 100}});
}

TEST_CASE("a stream-stream join refuses a self-join and negative windows",
          "[operators]") {
  auto self = weft::stream_stream_join<str, str, str, str>(
      "ss", "t", "t", "out", weft::join_window::of(10), inner_joiner);
  CHECK_THROWS_AS(weft::test_driver{self}, weft::weft_error);
  auto negative = weft::stream_stream_join<str, str, str, str>(
      "ss", "a", "b", "out", weft::join_window{-1, 0, 0}, inner_joiner);
  CHECK_THROWS_AS(weft::test_driver{negative}, weft::weft_error);
}
