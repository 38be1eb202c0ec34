#include "weft/services/dsl.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "weft/services/test_driver.hpp"

using str = weft::string_serde;
using i64 = weft::int64_serde;
using dbl = weft::double_serde;
using weft::windowed;

namespace {

struct order {
  std::string customer;
  std::string region;
  double amount = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(order, customer, region, amount)

using order_serde = weft::json_serde<order>;

template <class K, class V>
using recs = std::vector<weft::test_record<K, V>>;

/// Every service of `b`, made once, by name.
std::vector<std::string> service_names(const std::vector<weft::service_factory>& fs) {
  std::vector<std::string> out;
  for (auto& f : fs)
    out.push_back(f()->name());
  return out;
}

} // namespace

TEST_CASE("consecutive stateless steps fuse into one service that writes only its sinks",
          "[dsl]") {
  weft::streams_builder b{"shop"};
  auto orders = b.stream<str, order_serde>("orders");
  int peeked = 0;
  orders.filter([](auto&, auto& o) { return o.amount > 0; })
      .filter_not([](auto& o) { return o.region == "test"; }) // value-only function
      .peek([&peeked](auto&, auto&) { ++peeked; })
      .map_values([](auto&, auto& o) { return o.amount; }) // double: double_serde
      .to("amounts");
  // Key changes without a stateful operator after them need no repartition.
  orders.select_key([](auto&, auto& o) { return o.customer; })
      .map([](auto& customer, auto& o) {
        return std::pair{customer, o.region};
      })
      .flat_map([](auto& customer, auto& region) {
        return std::vector<std::pair<std::string, std::string>>{{customer, region},
                                                                {region, customer}};
      })
      .to("links");

  auto services = b.build();
  REQUIRE(services.size() == 1);
  weft::test_driver d{services[0]};
  auto& svc = d.service();
  CHECK(svc.name() == "shop-orders");
  REQUIRE(svc.inputs().size() == 1);
  CHECK(svc.inputs()[0].name == "orders");
  REQUIRE(svc.outputs().size() == 2);
  CHECK(svc.outputs()[0].name == "amounts");
  CHECK(svc.outputs()[1].name == "links");
  CHECK(svc.stores().empty());

  d.pipe<str, order_serde>("orders", "o1", {"c1", "eu", 10.5}, 1);
  d.pipe<str, order_serde>("orders", "o2", {"c2", "us", 0}, 2);   // filtered
  d.pipe<str, order_serde>("orders", "o3", {"c3", "test", 7}, 3); // filtered out
  d.pipe("orders", std::nullopt, order_serde::serialize({"c4", "eu", 1}), 4); // no key

  CHECK(d.read_output<str, dbl>("amounts") == recs<std::string, double>{{"o1", 10.5, 1}});
  CHECK(peeked == 1);
  CHECK(d.read_output<str, str>("links") == recs<std::string, std::string>{
                                                {"c1", "eu", 1},
                                                {"eu", "c1", 1},
                                                {"c2", "us", 2},
                                                {"us", "c2", 2},
                                                {"c3", "test", 3},
                                                {"test", "c3", 3},
                                            });
  CHECK(d.output_topics().empty()); // no topic between the steps
  CHECK(weft::streams_drops(svc).null_key == 1);
}

TEST_CASE("a group-by count reads the repartition topic its first service writes",
          "[dsl]") {
  weft::streams_builder b{"shop"};
  b.stream<str, order_serde>("orders")
      .filter([](auto&, auto& o) { return o.amount > 0; })
      .group_by<str>([](auto&, auto& o) { return o.region; })
      .count("orders-per-region")
      .to_stream()
      .to("region-counts");
  auto services = b.build();
  REQUIRE(services.size() == 2);

  // Service 1: filter and re-key, fused, then the repartition topic.
  weft::test_driver by_region{services[0], 2, "app"};
  CHECK(by_region.service().name() == "shop-orders");
  by_region.pipe<str, order_serde>("orders", "o1", {"c1", "eu", 5}, 1);
  by_region.pipe<str, order_serde>("orders", "o2", {"c2", "us", 5}, 2);
  by_region.pipe<str, order_serde>("orders", "o3", {"c3", "eu", 5}, 3);
  by_region.pipe<str, order_serde>("orders", "o4", {"c4", "eu", 0}, 4); // filtered
  CHECK(by_region.output_topics() == std::vector<std::string>{weft::repartition_topic(
                                         "app", "shop-orders-per-region")});
  auto repartitioned =
      by_region.read_output(weft::repartition_topic("app", "shop-orders-per-region"));
  REQUIRE(repartitioned.size() == 3);

  // Service 2: the count, reading the repartition topic.
  weft::test_driver counter{services[1], 2, "app"};
  CHECK(counter.service().name() == "shop-orders-per-region");
  REQUIRE(counter.service().inputs().size() == 1);
  CHECK(counter.service().inputs()[0].internal);
  counter.pipe_records(repartitioned);
  CHECK(counter.kv_get<str, i64>("shop-orders-per-region-store", "eu") == 2);
  CHECK(counter.kv_get<str, i64>("shop-orders-per-region-store", "us") == 1);
  CHECK(counter.read_output<str, i64>("region-counts") ==
        recs<std::string, int64_t>{{"eu", 1, 1}, {"us", 1, 2}, {"eu", 2, 3}});
}

TEST_CASE("a windowed count emits each window once when it closes, with steps fused "
          "around it",
          "[dsl]") {
  weft::streams_builder b{"web"};
  auto per_10 = b.stream<str, str>("clicks")
                    .filter([](auto& page, auto&) { return page != "robots.txt"; })
                    .group_by_key()
                    .windowed_by(weft::tumbling_window{10, 0})
                    .count("clicks-per-10", weft::emit::on_window_close)
                    .to_stream();
  per_10.to("clicks-per-10");
  // Windowed keys downstream carry both ends of the window.
  per_10
      .map([](const windowed<std::string>& w, int64_t n) {
        return std::pair{
            w.key + "@" + std::to_string(w.start) + "-" + std::to_string(w.end), n};
      })
      .to("labelled");
  auto services = b.build();
  REQUIRE(services.size() == 1);

  weft::test_driver d{services[0]};
  d.pipe<str, str>("clicks", "home", "u1", 1);
  d.pipe<str, str>("clicks", "home", "u2", 5);
  d.pipe<str, str>("clicks", "robots.txt", "bot", 6);
  CHECK(d.output_size("clicks-per-10") == 0);   // on close only
  d.pipe<str, str>("clicks", "home", "u3", 12); // closes [0,10)
  d.pipe<str, str>("clicks", "home", "u4", 3);  // late: dropped
  CHECK(d.read_output<weft::time_windowed_serde<str, 10>, i64>("clicks-per-10") ==
        recs<windowed<std::string>, int64_t>{{{"home", 0, 10}, 2, 9}});
  CHECK(d.read_output<str, i64>("labelled") ==
        recs<std::string, int64_t>{{"home@0-10", 2, 9}});
  CHECK(weft::streams_drops(d.service()).late == 1);
  CHECK(d.window("web-clicks-per-10-store").fetch("home", 10).value().has_value());
}

TEST_CASE("a stream-global table join looks up the row each record names", "[dsl]") {
  weft::streams_builder b{"shop"};
  auto customers = b.global_table<str, str>("customers");
  b.stream<str, order_serde>("orders")
      .join(
          customers, [](auto&, auto& o) { return o.customer; },
          [](const order& o, const std::string& name) { return name + "/" + o.region; })
      .to("enriched");
  auto services = b.build();
  REQUIRE(services.size() == 1);

  weft::test_driver d{services[0], 3};
  d.pipe<str, str>("customers", "c1", "Ann", 1);
  d.pipe<str, order_serde>("orders", "o1", {"c1", "eu", 5}, 10);
  d.pipe<str, order_serde>("orders", "o2", {"c9", "us", 5}, 11); // unknown customer
  d.pipe<str, order_serde>("orders", "o3", {"c1", "us", 5}, 12);
  CHECK(d.read_output<str, str>("enriched") ==
        recs<std::string, std::string>{{"o1", "Ann/eu", 10}, {"o3", "Ann/us", 12}});
}

TEST_CASE("a stream-table left join re-keys the stream through a repartition first",
          "[dsl]") {
  weft::streams_builder b{"shop"};
  auto tiers = b.table<str, str>("customer-tiers");
  b.stream<str, order_serde>("orders")
      .select_key([](auto&, auto& o) { return o.customer; })
      .left_join(
          tiers,
          [](const order& o, const std::optional<std::string>& tier) {
            return o.amount * (tier == std::optional<std::string>{"gold"} ? 0.9 : 1.0);
          },
          "priced")
      .to("priced");
  auto services = b.build();
  REQUIRE(services.size() == 2);
  CHECK(service_names(services) ==
        std::vector<std::string>{"shop-orders", "shop-priced"});

  weft::test_driver rekey{services[0]};
  rekey.pipe<str, order_serde>("orders", "o1", {"c1", "eu", 100}, 10);
  rekey.pipe<str, order_serde>("orders", "o2", {"c2", "eu", 100}, 11);
  auto repartitioned =
      rekey.read_output(weft::repartition_topic("test-app", "shop-priced"));
  REQUIRE(repartitioned.size() == 2);

  weft::test_driver join{services[1]};
  join.pipe<str, str>("customer-tiers", "c1", "gold", 1);
  join.pipe_records(repartitioned);
  CHECK(join.read_output<str, dbl>("priced") ==
        recs<std::string, double>{{"c1", 90.0, 10}, {"c2", 100.0, 11}});
  CHECK(join.kv_get<str, str>("shop-priced-table", "c1") == "gold");
}

TEST_CASE("a stream-stream join reads both topics in one service and pairs records "
          "within the window",
          "[dsl]") {
  weft::streams_builder b{"web"};
  auto clicks = b.stream<str, str>("clicks");
  auto views = b.stream<str, str>("views").map_values([](auto& v) { return "v:" + v; });
  clicks
      .join(
          views, [](auto& c, auto& v) { return c + "+" + v; }, weft::join_window::of(10),
          "click-view")
      .to("pairs");
  auto services = b.build();
  REQUIRE(services.size() == 1);

  weft::test_driver d{services[0]};
  auto& svc = d.service();
  CHECK(svc.name() == "web-clicks");
  CHECK(svc.inputs().size() == 2);
  d.pipe<str, str>("clicks", "k", "a", 100);
  d.pipe<str, str>("views", "k", "x", 105);  // a+x
  d.pipe<str, str>("views", "k", "y", 115);  // 15 after a: outside
  d.pipe<str, str>("clicks", "k", "b", 112); // b+x, b+y
  d.pipe<str, str>("views", "j", "z", 113);  // no click for j
  CHECK(d.read_output<str, str>("pairs") == recs<std::string, std::string>{
                                                {"k", "a+v:x", 105},
                                                {"k", "b+v:x", 112},
                                                {"k", "b+v:y", 115},
                                            });
}

TEST_CASE("a stream-stream join repartitions only the side whose key changed", "[dsl]") {
  weft::streams_builder b{"web"};
  auto clicks = b.stream<str, str>("clicks");
  auto by_user =
      b.stream<str, str>("views").select_key([](auto&, auto& user) { return user; });
  clicks
      .left_join(
          by_user,
          [](auto& c, const std::optional<std::string>& v) {
            return c + "+" + v.value_or("-");
          },
          weft::join_window::of(10), "visits")
      .to("visits");
  auto services = b.build();
  REQUIRE(services.size() == 2);
  // The join runs with the clicks (whose key is as read); the views are
  // re-keyed in a service of their own.
  CHECK(service_names(services) == std::vector<std::string>{"web-clicks", "web-views"});

  weft::test_driver views{services[1]};
  views.pipe<str, str>("views", "page-1", "u1", 100);
  auto repartitioned =
      views.read_output(weft::repartition_topic("test-app", "web-visits-right"));
  REQUIRE(repartitioned.size() == 1);

  weft::test_driver join{services[0]};
  join.pipe_records(repartitioned);
  join.pipe<str, str>("clicks", "u1", "c1", 104);
  join.pipe<str, str>("clicks", "u2", "c2", 105);
  join.pipe<str, str>("clicks", "u3", "c3", 200); // closes u2's window
  CHECK(join.read_output<str, str>("visits") ==
        recs<std::string, std::string>{{"u1", "c1+u1", 104}, {"u2", "c2+-", 105}});
}

TEST_CASE("branch sends each record to the first branch whose predicate holds", "[dsl]") {
  weft::streams_builder b{"pay"};
  auto parts = b.stream<str, i64>("amounts").branch({
      [](auto&, auto& n) { return n >= 100; },
      [](auto&, auto& n) { return n >= 0; },
  });
  REQUIRE(parts.size() == 2);
  parts[0].to("big");
  parts[1].map_values([](auto& n) { return std::to_string(n); }).to("small");
  parts[0].merge(parts[1]).to("non-negative");
  auto services = b.build();
  REQUIRE(services.size() == 1);

  weft::test_driver d{services[0]};
  d.pipe<str, i64>("amounts", "a", 150, 1);
  d.pipe<str, i64>("amounts", "b", 5, 2);
  d.pipe<str, i64>("amounts", "c", -3, 3); // no branch
  CHECK(d.read_output<str, i64>("big") == recs<std::string, int64_t>{{"a", 150, 1}});
  CHECK(d.read_output<str, str>("small") ==
        recs<std::string, std::string>{{"b", "5", 2}});
  CHECK(d.read_output<str, i64>("non-negative") ==
        recs<std::string, int64_t>{{"a", 150, 1}, {"b", 5, 2}});
}

TEST_CASE("reduce and aggregate keep one value per key of a grouped stream", "[dsl]") {
  weft::streams_builder b{"shop"};
  auto amounts = b.stream<str, i64>("amounts");
  amounts.group_by_key()
      .reduce([](int64_t a, int64_t v) { return std::max(a, v); }, "max")
      .to_stream()
      .to("max");
  amounts.group_by_key()
      .aggregate([] { return std::string{}; },
                 [](auto&, int64_t v, const std::string& agg) {
                   return agg + std::to_string(v) + ";";
                 },
                 "history")
      .to_stream()
      .to("history");
  auto services = b.build();
  REQUIRE(services.size() == 1);

  weft::test_driver d{services[0]};
  d.pipe<str, i64>("amounts", "k", 3, 1);
  d.pipe<str, i64>("amounts", "k", 9, 2);
  d.pipe<str, i64>("amounts", "k", 4, 3);
  CHECK(d.read_output<str, i64>("max") ==
        recs<std::string, int64_t>{{"k", 3, 1}, {"k", 9, 2}, {"k", 9, 3}});
  CHECK(d.kv_get<str, str>("shop-history-store", "k") == "3;9;4;");
}

TEST_CASE("a table-table join of two source tables runs as its own service", "[dsl]") {
  weft::streams_builder b{"crm"};
  auto names = b.table<str, str>("names");
  auto emails = b.table<str, str>("emails");
  names
      .left_join(emails,
                 [](auto& n, const std::optional<std::string>& e) {
                   return n + " <" + e.value_or("?") + ">";
                 })
      .to_stream()
      .to("contacts");
  auto services = b.build();
  REQUIRE(services.size() == 1);

  weft::test_driver d{services[0]};
  CHECK(d.service().name() == "crm-left-join-1");
  d.pipe<str, str>("names", "c1", "Ann", 1);
  d.pipe<str, str>("emails", "c1", "ann@x", 2);
  d.pipe_tombstone<str>("names", "c1", 3);
  CHECK(d.read_output<str, weft::optional_serde<str>>("contacts") ==
        recs<std::string, std::optional<std::string>>{
            {"c1", "Ann <?>", 1}, {"c1", "Ann <ann@x>", 2}, {"c1", std::nullopt, 3}});
}

TEST_CASE("a session-windowed count writes a tombstone for each session a record merges",
          "[dsl]") {
  using session_key = weft::session_windowed_serde<str>;
  weft::streams_builder b{"web"};
  b.stream<str, str>("clicks")
      .group_by_key()
      .windowed_by(weft::session_window_spec{10, 0})
      .count("visits")
      .to_stream()
      .to("visits");
  auto services = b.build();
  REQUIRE(services.size() == 1);

  weft::test_driver d{services[0]};
  d.pipe<str, str>("clicks", "k", "a", 100);
  d.pipe<str, str>("clicks", "k", "b", 120);
  d.pipe<str, str>("clicks", "k", "c", 110); // bridges both sessions
  auto out = d.read_output<session_key, weft::optional_serde<i64>>("visits");
  REQUIRE(out.size() == 5);
  CHECK(out[0].key == windowed<std::string>{"k", 100, 100});
  CHECK(out[1].key == windowed<std::string>{"k", 120, 120});
  auto tombstones = std::count_if(out.begin() + 2, out.begin() + 4,
                                  [](auto& r) { return !r.value.has_value(); });
  CHECK(tombstones == 2);
  CHECK(out[4].key == windowed<std::string>{"k", 100, 120});
  CHECK(out[4].value == std::optional<int64_t>{3});
}

TEST_CASE("every DSL operator builds into services the test driver runs", "[dsl]") {
  weft::streams_builder b{"all"};
  auto numbers = b.stream<str, i64>("numbers");
  auto others = b.stream<str, i64>("others");
  auto names = b.table<str, str>("names");
  auto emails = b.table<str, str>("emails");
  auto globals = b.global_table<str, str>("globals");
  auto sum = [](int64_t a, int64_t v) { return a + v; };
  auto zero = [] { return int64_t{0}; };
  auto add = [](auto&, int64_t v, int64_t agg) { return agg + v; };
  auto merge = [](auto&, int64_t a, int64_t c) { return a + c; };

  auto hopping = numbers.group_by_key().windowed_by(weft::hopping_window{10, 5, 0});
  hopping.reduce(sum, "w-sum").to_stream().to("w-sum");
  hopping.aggregate(zero, add, "w-agg", weft::emit::on_window_close)
      .to_stream()
      .to("w-agg");
  auto sessions = numbers.group_by_key().windowed_by(weft::session_window_spec{10, 0});
  sessions.reduce(sum, "s-sum").to_stream().to("s-sum");
  sessions.aggregate(zero, add, merge, "s-agg").to_stream().to("s-agg");
  numbers
      .outer_join(
          others,
          [](const std::optional<int64_t>& a, const std::optional<int64_t>& c) {
            return a.value_or(0) + c.value_or(0);
          },
          weft::join_window::of(5))
      .to("outer");
  numbers
      .left_join(
          globals, [](auto& k, auto&) { return k; },
          [](int64_t v, const std::optional<std::string>& n) {
            return n.value_or("?") + std::to_string(v);
          })
      .to("global-left");
  numbers.flat_map_values([](int64_t v) {
           return std::vector<int64_t>{v, -v};
         })
      .join(names, [](int64_t v, const std::string& n) { return n + std::to_string(v); })
      .to("named");
  names.join(emails, [](auto& n, auto& e) { return n + e; }).to_stream().to("tt-inner");
  names
      .outer_join(
          emails,
          [](const std::optional<std::string>& n, const std::optional<std::string>& e) {
            return n.value_or("?") + e.value_or("?");
          })
      .to_stream()
      .to("tt-outer");

  auto services = b.build();
  CHECK(service_names(services) ==
        std::vector<std::string>{"all-numbers", "all-join-4", "all-outer-join-5"});
  weft::test_driver d{services[0]};
  CHECK(d.service().inputs().size() == 2); // numbers and others, one service
  d.pipe<str, str>("names", "k", "Ann", 1);
  d.pipe<str, i64>("numbers", "k", 4, 2);
  CHECK(d.read_output<weft::time_windowed_serde<str, 10>, i64>("w-sum") ==
        recs<windowed<std::string>, int64_t>{{{"k", 0, 10}, 4, 2}});
  CHECK(d.read_output<str, str>("global-left") ==
        recs<std::string, std::string>{{"k", "?4", 2}});
  CHECK(d.read_output<str, str>("named") ==
        recs<std::string, std::string>{{"k", "Ann4", 2}, {"k", "Ann-4", 2}});
  for (size_t i = 1; i < services.size(); ++i)
    CHECK_NOTHROW(weft::test_driver{services[i]});
}

TEST_CASE("describe names each service with its inputs, fused steps, stores and outputs",
          "[dsl]") {
  // The example at the top of dsl.hpp.
  weft::streams_builder b{"shop"};
  auto orders = b.stream<str, order_serde>("orders");
  orders.filter([](auto& id, auto& o) { return o.amount > 0; })
      .map_values<weft::double_serde>([](auto& id, auto& o) { return o.amount; })
      .to("amounts");
  orders.group_by<str>([](auto& id, auto& o) { return o.region; })
      .count("orders-per-region")
      .to_stream()
      .to("region-counts");
  CHECK(b.describe() == "service shop-orders\n"
                        "  reads    orders\n"
                        "  steps    filter, map_values, to(amounts), group_by, "
                        "repartition(shop-orders-per-region)\n"
                        "  writes   amounts, shop-orders-per-region (repartition)\n"
                        "service shop-orders-per-region\n"
                        "  reads    shop-orders-per-region (repartition)\n"
                        "  steps    count(shop-orders-per-region), to(region-counts)\n"
                        "  stores   shop-orders-per-region-store (kv)\n"
                        "  writes   region-counts\n");

  // An explicit repartition splits a chain whose key did not even change.
  weft::streams_builder r{"shop"};
  r.stream<str, i64>("amounts").repartition("by-id").to("copied");
  CHECK(r.describe() == "service shop-amounts\n"
                        "  reads    amounts\n"
                        "  steps    repartition(shop-by-id)\n"
                        "  writes   shop-by-id (repartition)\n"
                        "service shop-by-id\n"
                        "  reads    shop-by-id (repartition)\n"
                        "  steps    to(copied)\n"
                        "  writes   copied\n");
}

TEST_CASE("the DSL refuses clashing names, computed join tables, bad windows and changes "
          "after build",
          "[dsl]") {
  weft::streams_builder b{"shop"};
  auto s = b.stream<str, i64>("amounts");
  auto counts = s.group_by_key().count("n");
  CHECK_THROWS_AS(s.group_by_key().count("n"), weft::weft_error);
  CHECK_THROWS_AS((b.stream<str, str>("amounts")), weft::weft_error); // other serdes
  CHECK_THROWS_AS(s.join(counts, [](int64_t a, int64_t b) { return a + b; }),
                  weft::weft_error);
  CHECK_THROWS_AS(s.group_by_key().windowed_by(weft::hopping_window{10, 20}).count(),
                  weft::weft_error);
  CHECK_THROWS_AS((b.table<str, i64>("t").to_stream()), weft::weft_error);
  b.build();
  CHECK_THROWS_AS(s.to("late"), weft::weft_error);
  CHECK_THROWS_AS(s.filter([](auto&, auto&) { return true; }), weft::weft_error);

  // Two joins with one table in one service would share its store.
  weft::streams_builder twice{"x"};
  auto t = twice.table<str, str>("t");
  auto in = twice.stream<str, str>("in");
  auto joiner = [](auto& a, auto& c) { return a + c; };
  in.join(t, joiner).to("a");
  in.join(t, joiner).to("b");
  CHECK_THROWS_AS(twice.build(), weft::weft_error);
}
