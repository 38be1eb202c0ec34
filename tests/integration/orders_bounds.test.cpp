// The order system's bounds on what a client makes it keep (no broker): the
// REST API's field limits and the customer-orders view's size, which is one
// Kafka record per customer.

#include <catch2/catch.hpp>

#include <string>

#include <nlohmann/json.hpp>

#include "customer_orders.hpp"
#include "request_parsing.hpp"
#include "weft/services/test_driver.hpp"

using json = nlohmann::json;

namespace {

orders::order make_order(const std::string& id, const std::string& state) {
  return orders::order{id, 7, state, "pen", 1, 1.0, "EUR", ""};
}

size_t view_bytes(weft::test_driver& d) {
  auto raw = d.kv(orders::customer_orders_view::store_name).get("7");
  REQUIRE(raw);
  REQUIRE(*raw);
  return (*raw)->size();
}

} // namespace

TEST_CASE("the REST API refuses text fields longer than its bounds, naming the field") {
  json o{{"id", "o1"},    {"customerId", 1}, {"product", std::string(201, 'p')},
         {"quantity", 1}, {"price", 1.0},    {"currency", "EUR"}};
  CHECK_THROWS_AS(orders::rest::parse_order(o.dump()), orders::rest::bad_request);
  try {
    orders::rest::parse_order(o.dump());
  } catch (const orders::rest::bad_request& e) {
    CHECK(e.reason == "field 'product' is longer than 200 bytes");
  }
  o["product"] = std::string(200, 'p');
  CHECK(orders::rest::parse_order(o.dump()).product.size() == 200);
  o["currency"] = std::string(17, 'C');
  CHECK_THROWS_AS(orders::rest::parse_order(o.dump()), orders::rest::bad_request);
  json c{{"id", 1},        {"firstName", "A"}, {"lastName", "L"},
         {"email", "a@x"}, {"level", "gold"},  {"address", std::string(1001, 'a')}};
  CHECK_THROWS_AS(orders::rest::parse_customer(c.dump(), 1), orders::rest::bad_request);
}

TEST_CASE("a customer's orders view stays below a Kafka record's size: closed orders "
          "leave it first, and an order that does not fit is left out") {
  using orders::customer_orders_view;
  // 32 KiB instead of 768 KiB, for speed: the rule is the same.
  const size_t limit = 32 * 1024;
  weft::test_driver d{[=] { return std::make_unique<customer_orders_view>(limit); }};
  const auto topic = weft::repartition_topic(d.application_id(), "orders-by-customer");
  // Each order takes about 130 bytes in the view; 1,000 closed ones would
  // make a 130 KB record.
  for (int i = 0; i < 1000; ++i)
    d.pipe<weft::string_serde, orders::order_serde>(
        topic, "7", make_order("closed-" + std::to_string(100000 + i), "SHIPPED"), i);
  CHECK(view_bytes(d) <= limit);
  auto view = d.kv_get<weft::string_serde, weft::json_serde<orders::customer_orders>>(
      customer_orders_view::store_name, "7");
  REQUIRE(view);
  // The smallest ids left first: the latest (largest) ids are there.
  CHECK(view->by_id.count("closed-100999") == 1);
  CHECK(view->by_id.count("closed-100000") == 0);
  const auto closed_kept = view->by_id.size();
  CHECK(closed_kept > 200);

  // Open orders push closed ones out; once only open ones are left, a new
  // one is not listed, and the view still fits.
  for (int i = 0; i < 400; ++i)
    d.pipe<weft::string_serde, orders::order_serde>(
        topic, "7", make_order("open-" + std::to_string(100000 + i), "VALIDATED"),
        100000 + i);
  CHECK(view_bytes(d) <= limit);
  view = d.kv_get<weft::string_serde, weft::json_serde<orders::customer_orders>>(
      customer_orders_view::store_name, "7");
  REQUIRE(view);
  size_t open = 0;
  for (auto& [id, o] : view->by_id)
    if (o.state == "VALIDATED") ++open;
  CHECK(open == view->by_id.size()); // every closed one made room
  CHECK(open < 400);                 // and not every open one fit
  // An update of a listed order still applies.
  auto first = view->by_id.begin()->first;
  d.pipe<weft::string_serde, orders::order_serde>(topic, "7", make_order(first, "PAID"),
                                                  200000);
  view = d.kv_get<weft::string_serde, weft::json_serde<orders::customer_orders>>(
      customer_orders_view::store_name, "7");
  CHECK(view->by_id.at(first).state == "PAID");
}
