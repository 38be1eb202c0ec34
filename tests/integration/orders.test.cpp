// The order system (examples/orders) end to end [broker]: every service on
// a real node and broker, driven through its REST API and its topics, one
// system per test (topics under a unique prefix, a unique application id).
//
// processing.guarantee comes from WEFT_PROCESSING_GUARANTEE, else from the
// build: weft_orders_tests runs them exactly_once (as the demo runs),
// weft_orders_tests_alos at_least_once; CI runs both.
//
// The [cluster] test runs the system as three weft-orders processes of one
// cluster (exactly_once), places orders through every node's REST API,
// kills one node with -9 half-way and checks that every effect happened
// once and every survivor answers alike.
//
// Conditions are awaited with bounds (long-polling REST calls, wait_until),
// never with sleeps. Where a test shows that something did NOT happen, it
// waits for a later record that the same task handles after it (same key,
// or a key on the same partition), so "not yet" cannot pass for "never".

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <tuple>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "model.hpp"
#include "rest_api.hpp"
#include "settings.hpp"
#include "system.hpp"
#include "test_cluster.hpp"
#include "weft/node.hpp"
#include "weft/services/partitioner.hpp"

using namespace std::chrono;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

const int partitions = 2;

#ifndef WEFT_DEFAULT_GUARANTEE
#define WEFT_DEFAULT_GUARANTEE "exactly_once"
#endif

/// WEFT_PROCESSING_GUARANTEE, else the build's default (CI builds these
/// tests twice: exactly_once and at_least_once).
std::string guarantee() {
  auto* g = std::getenv("WEFT_PROCESSING_GUARANTEE");
  return g && *g ? g : WEFT_DEFAULT_GUARANTEE;
}

/// One order system: topics, a node running its services, the REST API on
/// a free port, and an HTTP client.
struct order_system {
  orders::settings s;
  orders::topic_names t;
  std::string app;
  std::unique_ptr<weft::node> node;
  std::unique_ptr<orders::local_state_reader> reader;
  std::unique_ptr<orders::rest_api> api;
  std::unique_ptr<httplib::Client> http;

  explicit order_system(int64_t validation_timeout_ms = 30000,
                        int64_t shipping_delay_ms = 200,
                        std::vector<std::string> skip = {},
                        weft::http::limits rest_bounds = {}) {
    s.topic_prefix = weft::test::unique_name("o") + "-";
    s.partitions = partitions;
    s.validation_timeout_ms = validation_timeout_ms;
    s.shipping_delay_ms = shipping_delay_ms;
    s.skip = std::move(skip);
    t = orders::topic_names::with_prefix(s.topic_prefix);
    app = weft::test::unique_name("orders");
    weft::test::create_topics(t.all(), partitions);
    auto cfg = weft::config::from_map({{"application.id", app},
                                       {"bootstrap.servers", weft::test::bootstrap()},
                                       {"processing.guarantee", guarantee()},
                                       {"state.dir", "/tmp/" + app}});
    REQUIRE(cfg.ok());
    // The order system's own policies, as weft-orders runs it.
    cfg = orders::with_bad_record_policies(*cfg, s);
    REQUIRE(cfg.ok());
    node = std::make_unique<weft::node>(*cfg);
    orders::add_services(*node, s);
    auto st = node->start();
    INFO(st.message());
    REQUIRE(st.ok());
    reader = std::make_unique<orders::local_state_reader>(*node);
    const auto token = rest_bounds.bearer_token;
    api = std::make_unique<orders::rest_api>(
        *reader, t, cfg->kafka_properties(weft::client_kind::producer), 16,
        std::move(rest_bounds));
    REQUIRE(api->start("127.0.0.1", 0).ok());
    http = std::make_unique<httplib::Client>("127.0.0.1", api->port());
    if (!token.empty()) http->set_default_headers({{"Authorization", "Bearer " + token}});
    http->set_read_timeout(60, 0);
    http->set_tcp_nodelay(true);
    REQUIRE(weft::test::wait_until(
        [&] {
          return node->store_ready(orders::store_names::orders) &&
                 node->store_ready(orders::store_names::stock);
        },
        60s));
  }

  ~order_system() {
    api->stop();
    node->request_stop();
    (void)node->wait();
    std::error_code ec;
    std::filesystem::remove_all("/tmp/" + app, ec); // its state folder
  }

  httplib::Result post(const std::string& path, const json& body) {
    return http->Post(path.c_str(), body.dump(), "application/json");
  }

  /// Puts a customer and waits until the GlobalKTable has it.
  void customer(int64_t id, const std::string& level) {
    auto r = http->Put(("/v1/customers/" + std::to_string(id)).c_str(),
                       json{{"id", id},
                            {"firstName", "Ada"},
                            {"lastName", "L" + std::to_string(id)},
                            {"email", "c" + std::to_string(id) + "@example.com"},
                            {"address", "1 Road"},
                            {"level", level}}
                           .dump(),
                       "application/json");
    REQUIRE(r);
    REQUIRE(r->status == 202);
    REQUIRE(weft::test::wait_until(
        [&] {
          auto v = node->get(t.customers, std::to_string(id));
          return v && *v && v->value().find(level) != std::string::npos;
        },
        30s));
  }

  /// Adjusts stock and waits until the inventory shows `expect_on_hand`.
  void stock(const std::string& product, int64_t delta, int64_t expect_on_hand) {
    auto r = post("/v1/stock", {{"product", product}, {"delta", delta}});
    REQUIRE(r);
    REQUIRE(r->status == 202);
    REQUIRE(
        weft::test::wait_until([&] { return on_hand(product) == expect_on_hand; }, 30s));
  }

  json stock_of(const std::string& product) {
    auto r = http->Get(("/v1/stock/" + product).c_str());
    if (!r || r->status != 200) return json{};
    return json::parse(r->body);
  }
  int64_t on_hand(const std::string& product) {
    auto j = stock_of(product);
    return j.is_object() ? j["onHand"].get<int64_t>() : INT64_MIN;
  }
  int64_t reserved(const std::string& product) {
    auto j = stock_of(product);
    return j.is_object() ? j["reserved"].get<int64_t>() : INT64_MIN;
  }

  json order_body(const std::string& id, int64_t customer, const std::string& product,
                  int64_t quantity, double price) {
    return {{"id", id},           {"customerId", customer},
            {"product", product}, {"quantity", quantity},
            {"price", price},     {"currency", "EUR"}};
  }

  /// POSTs an order (201 expected) and returns its state after validation.
  json place(const json& body) {
    auto r = post("/v1/orders", body);
    REQUIRE(r);
    INFO(r->body);
    REQUIRE(r->status == 201);
    return validated(body["id"]);
  }

  json validated(const std::string& id, int timeout_ms = 30000) {
    auto v = http->Get(
        ("/v1/orders/" + id + "/validated?timeout=" + std::to_string(timeout_ms))
            .c_str());
    REQUIRE(v);
    INFO(v->body);
    REQUIRE(v->status == 200);
    return json::parse(v->body);
  }

  std::string state_of(const std::string& id) {
    auto r = http->Get(("/v1/orders/" + id).c_str());
    if (!r || r->status != 200) return "";
    return json::parse(r->body)["state"];
  }

  bool wait_state(const std::string& id, const std::string& state,
                  milliseconds limit = 30s) {
    return weft::test::wait_until([&] { return state_of(id) == state; }, limit);
  }

  void pay(const std::string& payment_id, const std::string& order_id, double amount,
           const std::string& currency = "EUR") {
    auto r = post("/v1/payments", {{"id", payment_id},
                                   {"orderId", order_id},
                                   {"currency", currency},
                                   {"amount", amount}});
    REQUIRE(r);
    REQUIRE(r->status == 202);
  }

  /// Writes a validation straight to `order-validations`, as a check would.
  void validation(const std::string& order_id, const char* check, const char* result,
                  const std::string& reason = "") {
    weft::test::produce(t.validations, 1, [&](size_t) {
      return std::pair{order_id,
                       json(orders::validation{order_id, check, result, reason}).dump()};
    });
  }

  /// The records of a topic so far, as JSON values by key, in offset order
  /// per partition. Waits until `pred` holds on them (bounded).
  std::vector<std::pair<std::string, json>> records(
      const std::string& topic,
      const std::function<bool(const std::vector<std::pair<std::string, json>>&)>& pred) {
    std::vector<std::pair<std::string, json>> out;
    weft::test::wait_until(
        [&] {
          out.clear();
          auto n = static_cast<size_t>(weft::test::end_offsets(topic));
          for (auto& r : weft::test::consume_all(topic, n, 10s))
            if (r.key && r.value) out.emplace_back(*r.key, json::parse(*r.value));
          return pred(out);
        },
        30s);
    return out;
  }
};

/// An order id that lands on the same partition as `other`: what the tests
/// use as a marker that a task has handled everything before it.
std::string same_partition_id(const std::string& other, const std::string& prefix) {
  const auto want = weft::partition_for(other, partitions);
  for (int i = 0;; ++i) {
    auto id = prefix + std::to_string(i);
    if (weft::partition_for(id, partitions) == want) return id;
  }
}

} // namespace

TEST_CASE("an order that passes every check is validated, paid, shipped, notified and "
          "listed for its customer",
          "[broker][orders]") {
  order_system sys;
  sys.customer(1, "gold");
  sys.stock("pen", 10, 10);

  auto r = sys.post("/v1/orders", sys.order_body("o-1", 1, "pen", 3, 2.5));
  REQUIRE(r);
  REQUIRE(r->status == 201);
  CHECK(r->get_header_value("Location") == "/v1/orders/o-1");
  CHECK(json::parse(r->body)["state"] == "CREATED");

  auto v = sys.validated("o-1");
  CHECK(v["state"] == "VALIDATED");
  CHECK(sys.reserved("pen") == 3);
  CHECK(sys.stock_of("pen")["available"] == 7);

  sys.pay("pay-1", "o-1", 7.5);
  REQUIRE(sys.wait_state("o-1", "SHIPPED"));
  // Shipping takes the reservation out of on-hand stock.
  REQUIRE(weft::test::wait_until([&] { return sys.on_hand("pen") == 7; }, 30s));
  CHECK(sys.reserved("pen") == 0);

  auto notes = sys.records(sys.t.notifications, [](auto& v) { return !v.empty(); });
  REQUIRE(notes.size() == 1);
  CHECK(notes[0].first == "o-1");
  CHECK(notes[0].second["orderId"] == "o-1");
  CHECK(notes[0].second["email"] == "c1@example.com");
  CHECK(notes[0].second["text"].get<std::string>().find("pay-1") != std::string::npos);

  // Every state the orders topic shows is a legal step from the one before.
  auto seen = sys.records(sys.t.orders, [](auto& v) {
    return !v.empty() && v.back().second["state"] == "SHIPPED";
  });
  std::vector<std::string> states;
  for (auto& [k, o] : seen)
    if (states.empty() || states.back() != o["state"]) states.push_back(o["state"]);
  CHECK(states == std::vector<std::string>{"CREATED", "VALIDATED", "PAID", "SHIPPED"});

  REQUIRE(weft::test::wait_until(
      [&] {
        auto c = sys.http->Get("/v1/customers/1/orders");
        if (!c || c->status != 200) return false;
        auto list = json::parse(c->body);
        return list.size() == 1 && list[0]["id"] == "o-1" &&
               list[0]["state"] == "SHIPPED";
      },
      30s));
  auto none = sys.http->Get("/v1/customers/2/orders");
  REQUIRE(none);
  CHECK(none->status == 200);
  CHECK(json::parse(none->body) == json::array());
}

TEST_CASE("the order details check fails quantity 0, a negative price, an empty product "
          "and an unknown customer, naming the reason",
          "[broker][orders]") {
  order_system sys;
  sys.customer(1, "platinum");
  sys.stock("pen", 100, 100);

  auto zero = sys.place(sys.order_body("q0", 1, "pen", 0, 1));
  CHECK(zero["state"] == "FAILED");
  CHECK(zero["reason"] == "quantity must be at least 1");

  auto negative = sys.place(sys.order_body("p-neg", 1, "pen", 1, -0.01));
  CHECK(negative["state"] == "FAILED");
  CHECK(negative["reason"] == "price must not be negative");

  auto empty = sys.place(sys.order_body("no-product", 1, "", 1, 1));
  CHECK(empty["state"] == "FAILED");
  CHECK(empty["reason"] == "product must not be empty");

  auto stranger = sys.place(sys.order_body("stranger", 424242, "pen", 1, 1));
  CHECK(stranger["state"] == "FAILED");
  CHECK(stranger["reason"] == "unknown customer 424242");

  // A price of 0 and a quantity of 1 are the boundaries that pass.
  auto free = sys.place(sys.order_body("free", 1, "pen", 1, 0));
  CHECK(free["state"] == "VALIDATED");
  // Failed orders hold no stock.
  REQUIRE(weft::test::wait_until([&] { return sys.reserved("pen") == 1; }, 30s));
}

TEST_CASE("inventory: stock exactly equal to the quantity passes, one more fails, a "
          "product without stock fails, and failed or cancelled orders release stock",
          "[broker][orders]") {
  order_system sys;
  sys.customer(7, "platinum");
  sys.stock("ink", 5, 5);

  auto exact = sys.place(sys.order_body("exact", 7, "ink", 5, 1));
  CHECK(exact["state"] == "VALIDATED");
  auto s = sys.stock_of("ink");
  CHECK(s["onHand"] == 5);
  CHECK(s["reserved"] == 5);
  CHECK(s["available"] == 0);

  auto more = sys.place(sys.order_body("one-more", 7, "ink", 1, 1));
  CHECK(more["state"] == "FAILED");
  CHECK(more["reason"] == "insufficient stock");

  auto none = sys.place(sys.order_body("no-stock", 7, "paper", 1, 1));
  CHECK(none["state"] == "FAILED");
  CHECK(none["reason"] == "no stock record for product paper");
  auto missing = sys.http->Get("/v1/stock/paper");
  REQUIRE(missing);
  CHECK(missing->status == 404);

  // Cancelling the validated order releases its reservation.
  auto c = sys.post("/v1/orders/exact/cancel", json::object());
  REQUIRE(c);
  INFO(c->body);
  CHECK(c->status == 200);
  CHECK(json::parse(c->body)["state"] == "CANCELLED");
  REQUIRE(weft::test::wait_until([&] { return sys.reserved("ink") == 0; }, 30s));
  CHECK(sys.on_hand("ink") == 5);
  // The released stock is available again, exactly.
  auto again = sys.place(sys.order_body("again", 7, "ink", 5, 1));
  CHECK(again["state"] == "VALIDATED");

  // A cancel of a cancelled order is 200 again; of an unknown order 404.
  auto twice = sys.post("/v1/orders/exact/cancel", json::object());
  REQUIRE(twice);
  CHECK(twice->status == 200);
  auto unknown = sys.post("/v1/orders/nope/cancel", json::object());
  REQUIRE(unknown);
  CHECK(unknown->status == 404);
}

TEST_CASE("fraud: a customer's session total exactly at the level's limit fails, just "
          "below passes",
          "[broker][orders]") {
  order_system sys;
  sys.customer(1, "bronze");
  sys.customer(2, "silver");
  sys.customer(3, "gold");
  sys.customer(4, "platinum");
  sys.customer(5, "silver");
  sys.customer(6, "platinum");
  sys.stock("gem", 1000, 1000);

  // bronze 2000: 1999.99 passes, then 0.01 more reaches the limit.
  CHECK(sys.place(sys.order_body("b1", 1, "gem", 1, 1999.99))["state"] == "VALIDATED");
  auto b2 = sys.place(sys.order_body("b2", 1, "gem", 1, 0.01));
  CHECK(b2["state"] == "FAILED");
  CHECK(b2["reason"].get<std::string>().find("fraud limit") != std::string::npos);
  // silver 5000, gold 10000, platinum 20000: exactly the limit fails (one
  // order, or a session of several), a cent below passes.
  CHECK(sys.place(sys.order_body("s1", 2, "gem", 2, 2500))["state"] == "FAILED");
  CHECK(sys.place(sys.order_body("s2", 5, "gem", 2, 2499.995))["state"] == "VALIDATED");
  CHECK(sys.place(sys.order_body("g1", 3, "gem", 4, 2499.99))["state"] == "VALIDATED");
  CHECK(sys.place(sys.order_body("g2", 3, "gem", 1, 0.04))["state"] == "FAILED");
  CHECK(sys.place(sys.order_body("pl1", 4, "gem", 1, 20000))["state"] == "FAILED");
  CHECK(sys.place(sys.order_body("pl2", 6, "gem", 1, 19999.99))["state"] == "VALIDATED");
}

TEST_CASE("fraud: orders more than an hour apart fall in separate sessions",
          "[broker][orders]") {
  order_system sys;
  sys.customer(1, "bronze");
  sys.stock("gem", 1000, 1000);
  // Orders with chosen timestamps: CREATE commands written as the REST API
  // writes them, with record times an hour and more apart.
  auto producer =
      weft::kafka::producer::create({{"bootstrap.servers", weft::test::bootstrap()},
                                     {"partitioner", "murmur2_random"}});
  REQUIRE(producer.ok());
  // Three hours ago: records older than the topics' retention (7 days)
  // would be deleted by the broker's retention check (every 5 s here)
  // before the services read them.
  const weft::timestamp_ms t0 = std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                    .count() -
                                3 * 3600 * 1000;
  auto create = [&](const std::string& id, double price, weft::timestamp_ms ts) {
    orders::order_command c;
    c.type = orders::cmd_create;
    c.placed = orders::order{id, 1, "CREATED", "gem", 1, price, "EUR", ""};
    REQUIRE((*producer)->send(sys.t.commands, -1, id, json(c).dump(), ts).ok());
    REQUIRE((*producer)->flush(10000).ok());
    return sys.validated(id);
  };
  const weft::timestamp_ms hour = 3600 * 1000;
  const auto early = create("early", 1500, t0);
  INFO("early: " << early.dump());
  CHECK(early["state"] == "VALIDATED");
  // One hour and a millisecond later: a new session.
  const auto later = create("later", 1500, t0 + hour + 1);
  INFO("later: " << later.dump());
  CHECK(later["state"] == "VALIDATED");
  // Within an hour of "later": joins its session, 1500 + 600 >= 2000.
  auto joined = create("joined", 600, t0 + hour + 1 + hour - 1);
  CHECK(joined["state"] == "FAILED");
  CHECK(joined["reason"].get<std::string>().find("fraud limit") != std::string::npos);
}

TEST_CASE("the same order posted again: an identical body is 200, a different body 409",
          "[broker][orders]") {
  order_system sys;
  sys.customer(1, "gold");
  sys.stock("pen", 10, 10);
  auto body = sys.order_body("dup", 1, "pen", 1, 3);
  auto first = sys.post("/v1/orders", body);
  // At once, before the orders service has applied the first one.
  auto second = sys.post("/v1/orders", body);
  auto body_b = body;
  body_b["quantity"] = 2;
  auto different = sys.post("/v1/orders", body_b);
  REQUIRE((first && second && different));
  CHECK(first->status == 201);
  CHECK(second->status == 200);
  CHECK(second->get_header_value("Location") == "/v1/orders/dup");
  CHECK(different->status == 409);

  CHECK(sys.validated("dup")["state"] == "VALIDATED");
  // And after it: the same answers, and only one reservation.
  auto later = sys.post("/v1/orders", body);
  REQUIRE(later);
  CHECK(later->status == 200);
  CHECK(json::parse(later->body)["state"] == "VALIDATED");
  auto later_b = sys.post("/v1/orders", body_b);
  REQUIRE(later_b);
  CHECK(later_b->status == 409);
  // state CREATED in the body is allowed, anything else is not.
  auto with_state = body;
  with_state["id"] = "dup2";
  with_state["state"] = "CREATED";
  auto ok = sys.post("/v1/orders", with_state);
  REQUIRE(ok);
  CHECK(ok->status == 201);
  CHECK(sys.validated("dup2")["state"] == "VALIDATED");
  REQUIRE(weft::test::wait_until([&] { return sys.reserved("pen") == 2; }, 30s));
}

TEST_CASE("bad requests get 400 naming the field", "[broker][orders]") {
  order_system sys;
  auto expect_400 = [&](httplib::Result r, const std::string& names) {
    REQUIRE(r);
    INFO(r->body);
    CHECK(r->status == 400);
    CHECK(json::parse(r->body)["error"].get<std::string>().find(names) !=
          std::string::npos);
  };
  auto order = sys.order_body("bad", 1, "pen", 1, 1);
  for (auto* f : {"id", "customerId", "product", "quantity", "price", "currency"}) {
    auto b = order;
    b.erase(f);
    expect_400(sys.post("/v1/orders", b), std::string{"'"} + f + "'");
  }
  auto b = order;
  b["quantity"] = "two";
  expect_400(sys.post("/v1/orders", b), "'quantity'");
  b = order;
  b["price"] = "cheap";
  expect_400(sys.post("/v1/orders", b), "'price'");
  b = order;
  b["customerId"] = 1.5;
  expect_400(sys.post("/v1/orders", b), "'customerId'");
  b = order;
  b["state"] = "PAID";
  expect_400(sys.post("/v1/orders", b), "'state'");
  expect_400(sys.http->Post("/v1/orders", "{\"id\": ", "application/json"),
             "malformed JSON");
  expect_400(
      sys.post("/v1/payments", {{"id", "p"}, {"orderId", "o"}, {"currency", "EUR"}}),
      "'amount'");
  expect_400(sys.post("/v1/stock", {{"product", "pen"}}), "'delta'");
  expect_400(sys.http->Put("/v1/customers/5",
                           json{{"id", 5},
                                {"firstName", "A"},
                                {"lastName", "B"},
                                {"email", "e@x"},
                                {"address", "a"},
                                {"level", "diamond"}}
                               .dump(),
                           "application/json"),
             "'level'");
  expect_400(sys.http->Put("/v1/customers/5",
                           json{{"id", 6},
                                {"firstName", "A"},
                                {"lastName", "B"},
                                {"email", "e@x"},
                                {"address", "a"},
                                {"level", "gold"}}
                               .dump(),
                           "application/json"),
             "'id'");
  expect_400(sys.http->Get("/v1/orders/x?timeout=soon"), "'timeout'");
}

TEST_CASE("GET of an unknown order is 404 after its timeout, /validated 504",
          "[broker][orders]") {
  order_system sys;
  auto t0 = steady_clock::now();
  auto r = sys.http->Get("/v1/orders/ghost?timeout=300");
  REQUIRE(r);
  CHECK(r->status == 404);
  CHECK(steady_clock::now() - t0 >= 300ms);
  t0 = steady_clock::now();
  auto v = sys.http->Get("/v1/orders/ghost/validated?timeout=300");
  REQUIRE(v);
  CHECK(v->status == 504);
  CHECK(steady_clock::now() - t0 >= 300ms);

  // A GET with a timeout waits for an order that is on its way.
  sys.customer(1, "gold");
  sys.stock("pen", 1, 1);
  REQUIRE(sys.post("/v1/orders", sys.order_body("soon", 1, "pen", 1, 1))->status == 201);
  auto got = sys.http->Get("/v1/orders/soon?timeout=30000");
  REQUIRE(got);
  CHECK(got->status == 200);
  CHECK(json::parse(got->body)["id"] == "soon");
}

TEST_CASE("an order whose checks are not all in fails with a validation timeout and "
          "releases its stock",
          "[broker][orders]") {
  // No fraud check runs, so the gate never hears all three.
  order_system sys{1500, 200, {"fraud"}};
  sys.customer(1, "gold");
  sys.stock("pen", 10, 10);
  auto t0 = steady_clock::now();
  REQUIRE(sys.post("/v1/orders", sys.order_body("slow", 1, "pen", 4, 1))->status == 201);
  // Meanwhile inventory holds the stock.
  REQUIRE(weft::test::wait_until([&] { return sys.reserved("pen") == 4; }, 30s));
  auto v = sys.validated("slow");
  CHECK(v["state"] == "FAILED");
  CHECK(v["reason"] == "validation timeout");
  CHECK(steady_clock::now() - t0 >= 1400ms);
  REQUIRE(weft::test::wait_until([&] { return sys.reserved("pen") == 0; }, 30s));
  // A PASS arriving after the timeout changes nothing.
  sys.validation("slow", orders::fraud_check, orders::pass);
  auto marker = same_partition_id("slow", "marker-");
  REQUIRE(sys.post("/v1/orders", sys.order_body(marker, 1, "pen", 1, 1))->status == 201);
  sys.validation(marker, orders::fraud_check, orders::pass);
  CHECK(sys.validated(marker)["state"] == "VALIDATED");
  CHECK(sys.state_of("slow") == "FAILED");
}

TEST_CASE("duplicate validations change nothing: the first FAIL decides, and nothing "
          "after a decision counts",
          "[broker][orders]") {
  // Without the fraud check the test plays it, answering when it chooses.
  order_system sys{30000, 200, {"fraud"}};
  sys.customer(1, "gold");
  sys.stock("pen", 10, 10);

  REQUIRE(sys.post("/v1/orders", sys.order_body("a", 1, "pen", 1, 1))->status == 201);
  // Wait for the two real checks' PASSes: inventory reserves, details is quick.
  REQUIRE(weft::test::wait_until([&] { return sys.reserved("pen") == 1; }, 30s));
  // A repeated PASS does not make three.
  sys.validation("a", orders::inventory_check, orders::pass);
  sys.validation("a", orders::inventory_check, orders::pass);
  auto pending = sys.http->Get("/v1/orders/a/validated?timeout=200");
  REQUIRE(pending);
  CHECK(pending->status == 504);
  sys.validation("a", orders::fraud_check, orders::pass);
  CHECK(sys.validated("a")["state"] == "VALIDATED");
  // A FAIL after the decision changes nothing (the marker, on the same
  // partition, is decided after it).
  sys.validation("a", orders::fraud_check, orders::fail, "too late");
  auto marker = same_partition_id("a", "m-");
  REQUIRE(sys.post("/v1/orders", sys.order_body(marker, 1, "pen", 1, 1))->status == 201);
  sys.validation(marker, orders::fraud_check, orders::pass);
  CHECK(sys.validated(marker)["state"] == "VALIDATED");
  CHECK(sys.state_of("a") == "VALIDATED");

  // The first FAIL's reason wins over a later one.
  REQUIRE(sys.post("/v1/orders", sys.order_body("b", 1, "pen", 1, 1))->status == 201);
  sys.validation("b", orders::fraud_check, orders::fail, "first reason");
  sys.validation("b", orders::fraud_check, orders::fail, "second reason");
  auto b = sys.validated("b");
  CHECK(b["state"] == "FAILED");
  CHECK(b["reason"] == "first reason");
}

TEST_CASE("payments: a short payment is reported and leaves the order VALIDATED, a "
          "duplicate payment id is ignored, a full one pays",
          "[broker][orders]") {
  order_system sys;
  sys.customer(1, "gold");
  sys.stock("pen", 10, 10);
  CHECK(sys.place(sys.order_body("o", 1, "pen", 2, 10))["state"] == "VALIDATED");

  sys.pay("p-short", "o", 19.99);
  auto reports =
      sys.records(sys.t.payment_reports, [](auto& v) { return v.size() >= 1; });
  REQUIRE(reports.size() == 1);
  CHECK(reports[0].second["paymentId"] == "p-short");
  CHECK(reports[0].second["reason"].get<std::string>().find("short payment") !=
        std::string::npos);
  CHECK(sys.state_of("o") == "VALIDATED");

  // The same payment id again, now with enough: ignored. The wrong-currency
  // payment after it is reported, so the gate has seen the duplicate.
  sys.pay("p-short", "o", 20);
  sys.pay("p-usd", "o", 20, "USD");
  reports = sys.records(sys.t.payment_reports, [](auto& v) { return v.size() >= 2; });
  REQUIRE(reports.size() == 2);
  CHECK(reports[1].second["paymentId"] == "p-usd");
  CHECK(sys.state_of("o") == "VALIDATED");

  sys.pay("p-full", "o", 20);
  REQUIRE(sys.wait_state("o", "SHIPPED"));
  // A payment after the order was paid is reported too.
  sys.pay("p-extra", "o", 20);
  reports = sys.records(sys.t.payment_reports, [](auto& v) { return v.size() >= 3; });
  REQUIRE(reports.size() == 3);
  CHECK(reports[2].second["paymentId"] == "p-extra");
  auto notes = sys.records(sys.t.notifications, [](auto& v) { return !v.empty(); });
  REQUIRE(notes.size() == 1);
  CHECK(notes[0].second["text"].get<std::string>().find("p-full") != std::string::npos);
}

TEST_CASE("a payment that arrives before validation waits for it", "[broker][orders]") {
  order_system sys{30000, 200, {"fraud"}};
  sys.customer(1, "gold");
  sys.stock("pen", 10, 10);
  REQUIRE(sys.post("/v1/orders", sys.order_body("early", 1, "pen", 1, 5))->status == 201);
  sys.pay("pay-early", "early", 5);
  // The order cannot be validated yet (no fraud answer); the payment waits.
  REQUIRE(weft::test::wait_until([&] { return sys.reserved("pen") == 1; }, 30s));
  CHECK(sys.state_of("early") == "CREATED");
  sys.validation("early", orders::fraud_check, orders::pass);
  REQUIRE(sys.wait_state("early", "SHIPPED"));
  REQUIRE(weft::test::wait_until([&] { return sys.on_hand("pen") == 9; }, 30s));
}

TEST_CASE(
    "a shipped order cannot be cancelled (409), and cancelling a paid order releases "
    "its stock",
    "[broker][orders]") {
  order_system sys{30000, 2000};
  sys.customer(1, "gold");
  sys.stock("pen", 10, 10);
  CHECK(sys.place(sys.order_body("ship-me", 1, "pen", 2, 1))["state"] == "VALIDATED");
  sys.pay("p1", "ship-me", 2);
  REQUIRE(sys.wait_state("ship-me", "SHIPPED"));
  auto c = sys.post("/v1/orders/ship-me/cancel", json::object());
  REQUIRE(c);
  CHECK(c->status == 409);
  CHECK(sys.state_of("ship-me") == "SHIPPED");

  // Paid, then cancelled within the shipping delay: never shipped.
  CHECK(sys.place(sys.order_body("keep", 1, "pen", 3, 1))["state"] == "VALIDATED");
  sys.pay("p2", "keep", 3);
  REQUIRE(sys.wait_state("keep", "PAID"));
  auto k = sys.post("/v1/orders/keep/cancel", json::object());
  REQUIRE(k);
  INFO(k->body);
  CHECK(k->status == 200);
  REQUIRE(weft::test::wait_until([&] { return sys.reserved("pen") == 0; }, 30s));
  CHECK(sys.on_hand("pen") == 8);
  // Past the shipping delay the order is still CANCELLED (the SHIPPED
  // command shipping sent was not a legal step): wait for another order
  // paid later on the same partition to ship.
  auto marker = same_partition_id("keep", "mk-");
  CHECK(sys.place(sys.order_body(marker, 1, "pen", 1, 1))["state"] == "VALIDATED");
  sys.pay("p3", marker, 1);
  REQUIRE(sys.wait_state(marker, "SHIPPED"));
  CHECK(sys.state_of("keep") == "CANCELLED");
}

TEST_CASE(
    "a node killed with -9 in the middle of thousands of orders restarts and leaves "
    "every order in exactly one final state, with stock matching the orders",
    "[broker][slow][orders]") {
  const size_t n = 10000;
  const std::string prefix = weft::test::unique_name("k") + "-";
  const auto t = orders::topic_names::with_prefix(prefix);
  const auto app = weft::test::unique_name("orders-kill");
  weft::test::create_topics(t.all(), partitions);
  const int port = 20000 + static_cast<int>(::getpid() % 20000);
  const std::vector<std::string> args{"--application.id=" + app,
                                      "--bootstrap.servers=" + weft::test::bootstrap(),
                                      "--processing.guarantee=" + guarantee(),
                                      "--state.dir=/tmp/" + app,
                                      "--orders.topic.prefix=" + prefix,
                                      "--orders.partitions=" + std::to_string(partitions),
                                      "--shipping.delay.ms=100",
                                      "--http.port=" + std::to_string(port)};
  const auto program = weft::test::built("examples/orders/weft-orders");
  weft::test::removed_at_exit state{{"/tmp/" + app}};
  auto node = std::make_unique<weft::test::child_process>(program, args,
                                                          "/tmp/" + app + "-1.log");
  httplib::Client http{"127.0.0.1", port};
  http.set_read_timeout(60, 0);
  auto up = [&] {
    auto r = http.Get("/v1/orders/none");
    return r && r->status == 404;
  };
  REQUIRE(weft::test::wait_until(up, 60s));

  // 200 customers of every level, nine plentiful products and a scarce one.
  const char* levels[] = {"bronze", "silver", "gold", "platinum"};
  for (int c = 1; c <= 200; ++c) {
    auto r = http.Put(("/v1/customers/" + std::to_string(c)).c_str(),
                      json{{"id", c},
                           {"firstName", "C"},
                           {"lastName", std::to_string(c)},
                           {"email", std::to_string(c) + "@example.com"},
                           {"address", "-"},
                           {"level", levels[c % 4]}}
                          .dump(),
                      "application/json");
    REQUIRE(r);
    REQUIRE(r->status == 202);
  }
  std::map<std::string, int64_t> seeded;
  for (int p = 0; p < 10; ++p) {
    auto product = "item-" + std::to_string(p);
    seeded[product] = p == 0 ? 50 : 100000;
    auto r = http.Post("/v1/stock",
                       json{{"product", product}, {"delta", seeded[product]}}.dump(),
                       "application/json");
    REQUIRE(r);
    REQUIRE(r->status == 202);
  }
  // The last customer is in the global table once a probe order finds it.
  REQUIRE(weft::test::wait_until(
      [&] {
        static int probe = 0;
        auto id = "probe-" + std::to_string(probe++);
        auto body = json{{"id", id},      {"customerId", 200}, {"product", "item-1"},
                         {"quantity", 1}, {"price", 1},        {"currency", "EUR"}};
        auto r = http.Post("/v1/orders", body.dump(), "application/json");
        if (!r || r->status != 201) return false;
        auto v = http.Get(("/v1/orders/" + id + "/validated?timeout=30000").c_str());
        return v && v->status == 200 && json::parse(v->body)["state"] == "VALIDATED";
      },
      60s));
  const int64_t probes_reserved = [&] {
    auto r = http.Get("/v1/stock/item-1");
    return json::parse(r->body)["reserved"].get<int64_t>();
  }();

  // The orders and their payments, straight onto the topics (as the REST
  // API writes them), so the node has a backlog when it is killed.
  std::map<std::string, std::pair<std::string, int64_t>> placed; // id -> product, qty
  auto order_of = [&](size_t i) {
    orders::order o;
    o.id = "k-" + std::to_string(i);
    o.customer_id = 1 + static_cast<int64_t>(i % 200);
    o.product = "item-" + std::to_string(i % 10);
    o.quantity = 1 + static_cast<int64_t>(i % 3);
    o.price = 1 + static_cast<double>(i % 50);
    o.currency = "EUR";
    return o;
  };
  for (size_t i = 0; i < n; ++i) {
    auto o = order_of(i);
    placed[o.id] = {o.product, o.quantity};
  }
  weft::test::produce(t.commands, n, [&](size_t i) {
    orders::order_command c;
    c.type = orders::cmd_create;
    c.placed = order_of(i);
    return std::pair{c.placed->id, json(c).dump()};
  });
  weft::test::produce(t.payments, n, [&](size_t i) {
    auto o = order_of(i);
    return std::pair{"pay-" + o.id,
                     json(orders::payment{"pay-" + o.id, o.id, "EUR", o.total()}).dump()};
  });

  // Kill -9 with a backlog: once `orders` holds n * 2 / 3 records (an order
  // writes about four), so the node dies about a sixth of the way through.
  REQUIRE(weft::test::wait_until(
      [&] { return weft::test::end_offsets(t.orders) > static_cast<int64_t>(n * 2 / 3); },
      300s));
  node->kill_hard();
  node = std::make_unique<weft::test::child_process>(program, args,
                                                     "/tmp/" + app + "-2.log");
  REQUIRE(weft::test::wait_until(up, 120s));

  // Every order ends FAILED or SHIPPED (each is paid in full up front).
  std::map<std::string, std::vector<std::string>> states;
  size_t repeats = 0;
  auto all_final = [&] {
    states.clear();
    repeats = 0;
    auto total = static_cast<size_t>(weft::test::end_offsets(t.orders));
    for (auto& r : weft::test::consume_all(t.orders, total, 60s)) {
      if (!r.key || !r.value || r.key->rfind("k-", 0) != 0) continue;
      auto& seq = states[*r.key];
      std::string s = json::parse(*r.value)["state"];
      if (seq.empty() || seq.back() != s)
        seq.push_back(s);
      else
        ++repeats; // at-least-once may repeat a state: no change
    }
    if (states.size() < n) return false;
    for (auto& [id, seq] : states)
      if (seq.back() != "FAILED" && seq.back() != "SHIPPED") return false;
    return true;
  };
  REQUIRE(weft::test::wait_until(all_final, 600s));

  // Exactly one final state each, reached by legal steps.
  std::map<std::string, int64_t> shipped_units;
  size_t shipped = 0, failed = 0;
  for (auto& [id, seq] : states) {
    INFO(id);
    REQUIRE(seq.front() == "CREATED");
    for (size_t i = 1; i < seq.size(); ++i)
      REQUIRE(orders::legal_transition(seq[i - 1], seq[i]));
    if (seq.back() == "SHIPPED") {
      ++shipped;
      shipped_units[placed[id].first] += placed[id].second;
    } else {
      ++failed;
    }
  }
  CHECK(shipped + failed == n);
  // Exactly-once: the crash left no trace in what read_committed readers see.
  if (guarantee() == "exactly_once") CHECK(repeats == 0);
  CHECK(shipped > n / 2);
  // Stock: nothing reserved but the probes, on hand = seeded - shipped.
  // Inventory hears of the last shipments a hop after `orders` shows them.
  auto stock_of = [&](const std::string& product) {
    auto r = http.Get(("/v1/stock/" + product).c_str());
    return r && r->status == 200 ? json::parse(r->body) : json{};
  };
  auto matches = [&](const std::string& product) {
    auto s = stock_of(product);
    return s.is_object() &&
           s["reserved"].get<int64_t>() == (product == "item-1" ? probes_reserved : 0) &&
           s["onHand"].get<int64_t>() == seeded[product] - shipped_units[product];
  };
  weft::test::wait_until(
      [&] {
        for (auto& [product, units] : seeded)
          if (!matches(product)) return false;
        return true;
      },
      60s);
  for (auto& [product, units] : seeded) {
    INFO(product << ": " << stock_of(product).dump() << ", shipped "
                 << shipped_units[product]);
    CHECK(matches(product));
  }
  CHECK(node->stop(SIGTERM, 60s) == 0);
}

namespace {

/// An HTTP answer as the cluster test keeps it; status 0: no answer
/// (connection refused or reset, as from a killed node).
struct answer {
  int status = 0;
  std::string body;
  bool retry_after = false;
};

/// One weft-orders process of a clustered order system.
struct order_node {
  std::string id;
  int rest_port = 0; ///< the REST API (the order system's http.port)
  int node_port = 0; ///< the node's own endpoint (node.http.port): /cluster, /state
  std::string state_dir;
  std::string log;
  std::unique_ptr<weft::test::child_process> proc;
};

std::optional<json> get_json(int port, const std::string& path) {
  httplib::Client c{"127.0.0.1", port};
  c.set_connection_timeout(1);
  c.set_read_timeout(10);
  auto r = c.Get(path.c_str());
  if (!r || r->status != 200) return std::nullopt;
  auto j = json::parse(r->body, nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

/// Whether `n`'s cluster view shows exactly `members` connected, every unit
/// active on one of them and running there, and no unit warming up.
bool settled(const order_node& n, const std::set<std::string>& members) {
  auto v = get_json(n.node_port, "/cluster");
  if (!v || !v->contains("units") || !v->contains("members")) return false;
  std::set<std::string> connected;
  for (auto& m : (*v)["members"])
    if (m["connected"].get<bool>()) connected.insert(m["id"].get<std::string>());
  if (connected != members) return false;
  for (auto& u : (*v)["units"])
    if (!members.count(u["active"].get<std::string>()) || u.contains("warmup") ||
        u["active_lag"].is_null())
      return false;
  return true;
}

/// What the cluster test placed, and what each order must end as.
struct placed_order {
  orders::order o;
  bool cancel = false;          ///< cancel once validated instead of paying
  std::string validated;        ///< state /validated answered
  std::string validated_reason; ///< its reason when FAILED
  std::string expected_final;   ///< derived from `validated` and `cancel`
};

/// Counters of the cluster test's clients (any thread).
struct client_stats {
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> unanswered{0};     ///< no HTTP answer: node killed
  std::atomic<uint64_t> unavailable{0};    ///< 503
  std::atomic<uint64_t> no_retry_after{0}; ///< 503 without Retry-After
  std::atomic<uint64_t> late{0};           ///< 504 of a long poll
};

} // namespace

TEST_CASE("three clustered nodes serve every REST read for any key, and a node killed "
          "with -9 while orders flow loses no order and counts none twice",
          "[broker][cluster][slow]") {
  const size_t n_orders = 450, n_clients = 12, n_customers = 100;
  const int parts = 4;
  const std::string prefix = weft::test::unique_name("c") + "-";
  const auto t = orders::topic_names::with_prefix(prefix);
  const auto app = weft::test::unique_name("orders-cluster");
  weft::test::create_topics(t.all(), parts);
  const auto program = weft::test::built("examples/orders/weft-orders");
  // Below Linux's ephemeral ports (32768+), apart from the kill test's.
  const int base = 21000 + static_cast<int>(::getpid() % 1000) * 8;
  std::vector<order_node> nodes(3);
  std::atomic<bool> alive[3];
  for (size_t i = 0; i < nodes.size(); ++i) {
    auto& n = nodes[i];
    n.id = "n" + std::to_string(i + 1);
    n.rest_port = base + static_cast<int>(i);
    n.node_port = base + 4 + static_cast<int>(i);
    n.state_dir = "/tmp/" + app + "-" + n.id;
    n.log = "/tmp/" + app + "-" + n.id + ".log";
    // Exactly-once, whatever WEFT_PROCESSING_GUARANTEE says: the checks
    // below count every effect once.
    n.proc = std::make_unique<weft::test::child_process>(
        program,
        std::vector<std::string>{
            "--application.id=" + app, "--bootstrap.servers=" + weft::test::bootstrap(),
            "--processing.guarantee=exactly_once", "--cluster.enabled=true",
            "--node.id=" + n.id, "--state.dir=" + n.state_dir,
            "--http.port=" + std::to_string(n.rest_port),
            "--node.http.port=" + std::to_string(n.node_port),
            "--orders.topic.prefix=" + prefix,
            "--orders.partitions=" + std::to_string(parts), "--shipping.delay.ms=100"},
        n.log);
    n.proc->note_end_in_log();
    alive[i] = true;
  }
  INFO("node logs: /tmp/" << app << "-n{1,2,3}.log");
  const auto t0 = steady_clock::now();
  auto since = [](steady_clock::time_point from) {
    return duration_cast<milliseconds>(steady_clock::now() - from).count();
  };
  const std::set<std::string> all3{"n1", "n2", "n3"};
  REQUIRE(weft::test::wait_until(
      [&] {
        for (auto& n : nodes)
          if (!settled(n, all3)) return false;
        return true;
      },
      120s));
  const auto settled_ms = since(t0);

  client_stats stats;
  // Sends one request to node `k`, through the calling thread's clients.
  struct clients {
    std::vector<std::unique_ptr<httplib::Client>> to;
    explicit clients(const std::vector<order_node>& nodes) {
      for (auto& n : nodes) {
        to.push_back(std::make_unique<httplib::Client>("127.0.0.1", n.rest_port));
        to.back()->set_connection_timeout(2);
        to.back()->set_read_timeout(60);
        to.back()->set_tcp_nodelay(true);
      }
    }
  };
  // Asks node `first` (or the next live one); an answer `done` does not
  // accept — none, 503, a long poll's 504 — is asked again of the next live
  // node, for two minutes at most. Returns the last answer.
  auto ask = [&](clients& c, size_t first, const std::string& method,
                 const std::string& path, const json& body,
                 const std::function<bool(const answer&)>& done) {
    answer last;
    size_t k = first;
    weft::test::wait_until(
        [&] {
          for (size_t skip = 0; skip < nodes.size() && !alive[k % nodes.size()]; ++skip)
            ++k;
          auto& http = *c.to[k++ % nodes.size()];
          auto r = method == "GET" ? http.Get(path.c_str())
                   : method == "PUT"
                       ? http.Put(path.c_str(), body.dump(), "application/json")
                       : http.Post(path.c_str(), body.dump(), "application/json");
          ++stats.requests;
          last = r ? answer{r->status, r->body, r->has_header("Retry-After")} : answer{};
          if (last.status == 0) ++stats.unanswered;
          if (last.status == 503) {
            ++stats.unavailable;
            if (!last.retry_after) ++stats.no_retry_after;
          }
          if (last.status == 504) ++stats.late;
          return done(last);
        },
        120s);
    return last;
  };
  auto status_is = [](std::initializer_list<int> codes) {
    std::set<int> accept{codes};
    return [accept](const answer& a) {
      return a.status != 0 && a.status != 503 && a.status != 504 &&
             (accept.count(a.status) || a.status / 100 == 4);
    };
  };

  // Reference data through the nodes in turn: customers of every level,
  // one scarce product and seven plentiful ones.
  const char* levels[] = {"bronze", "silver", "gold", "platinum"};
  std::map<std::string, int64_t> seeded;
  {
    clients c{nodes};
    for (size_t id = 1; id <= n_customers; ++id) {
      auto a = ask(c, id, "PUT", "/v1/customers/" + std::to_string(id),
                   json{{"id", id},
                        {"firstName", "C"},
                        {"lastName", std::to_string(id)},
                        {"email", std::to_string(id) + "@example.com"},
                        {"address", "-"},
                        {"level", levels[id % 4]}},
                   status_is({202}));
      REQUIRE(a.status == 202);
    }
    for (int p = 0; p < 8; ++p) {
      auto product = "item-" + std::to_string(p);
      seeded[product] = p == 0 ? 40 : 100000;
      auto a =
          ask(c, p, "POST", "/v1/stock",
              json{{"product", product}, {"delta", seeded[product]}}, status_is({202}));
      REQUIRE(a.status == 202);
    }
  }
  // Every node has every customer in its global table, and every node
  // answers for every product's stock (read from the owning node).
  REQUIRE(weft::test::wait_until(
      [&] {
        for (auto& n : nodes) {
          for (size_t id = 1; id <= n_customers; ++id)
            if (!get_json(n.node_port,
                          "/state/" + t.customers + "/" + std::to_string(id)))
              return false;
          for (auto& [product, units] : seeded) {
            auto s = get_json(n.rest_port, "/v1/stock/" + product);
            if (!s || (*s)["onHand"] != units) return false;
          }
        }
        return true;
      },
      60s));

  // The orders: some for an unknown customer (FAILED), a ninth for the
  // scarce product (VALIDATED while stock lasts), a tenth cancelled once
  // validated, the rest paid in full (SHIPPED). A customer's orders stay far
  // below every fraud limit.
  std::vector<placed_order> placed(n_orders);
  for (size_t i = 0; i < n_orders; ++i) {
    auto& p = placed[i];
    p.o.id = "c-" + std::to_string(i);
    p.o.customer_id = i % 15 == 7 ? 900000 : 1 + static_cast<int64_t>(i % n_customers);
    p.o.product = i % 9 == 0 ? "item-0" : "item-" + std::to_string(1 + i % 7);
    p.o.quantity = 1 + static_cast<int64_t>(i % 3);
    p.o.price = 1 + static_cast<double>(i % 20);
    p.o.currency = "EUR";
    p.o.state = orders::created;
    p.cancel = i % 10 == 4;
  }
  std::atomic<size_t> next{0}, posted{0};
  std::mutex errors_mu;
  std::vector<std::string> errors;
  auto error = [&](const std::string& what) {
    std::lock_guard<std::mutex> lock{errors_mu};
    errors.push_back(what);
  };
  // Each order: POST through one node, long-poll /validated through the
  // next, pay or cancel through the third.
  auto client = [&] {
    clients c{nodes};
    for (size_t i; (i = next++) < n_orders;) {
      auto& p = placed[i];
      const auto& id = p.o.id;
      auto created = ask(c, i, "POST", "/v1/orders", json(p.o), status_is({200, 201}));
      if (created.status != 201 && created.status != 200) {
        error(id + ": POST answered " + std::to_string(created.status) + " " +
              created.body);
        continue;
      }
      ++posted;
      auto v = ask(c, i + 1, "GET", "/v1/orders/" + id + "/validated?timeout=20000",
                   json{}, status_is({200}));
      if (v.status != 200) {
        error(id + ": /validated answered " + std::to_string(v.status) + " " + v.body);
        continue;
      }
      auto o = json::parse(v.body);
      p.validated = o["state"];
      if (o.contains("reason")) p.validated_reason = o["reason"];
      if (p.validated != orders::validated) {
        p.expected_final = p.validated;
        continue;
      }
      if (p.cancel) {
        auto k = ask(c, i + 2, "POST", "/v1/orders/" + id + "/cancel?timeout=20000",
                     json::object(), status_is({200}));
        if (k.status != 200 || json::parse(k.body)["state"] != orders::cancelled)
          error(id + ": cancel answered " + std::to_string(k.status) + " " + k.body);
        p.expected_final = orders::cancelled;
      } else {
        auto pay = ask(c, i + 2, "POST", "/v1/payments",
                       json(orders::payment{"pay-" + id, id, "EUR", p.o.total()}),
                       status_is({202}));
        if (pay.status != 202)
          error(id + ": payment answered " + std::to_string(pay.status) + " " + pay.body);
        p.expected_final = orders::shipped;
      }
    }
  };
  const auto load_start = steady_clock::now();
  std::vector<std::thread> threads;
  for (size_t k = 0; k < n_clients; ++k)
    threads.emplace_back(client);
  // A failed REQUIRE below lets the clients finish the order in hand only.
  struct joiner {
    std::vector<std::thread>& ts;
    std::atomic<size_t>& next;
    ~joiner() {
      next = SIZE_MAX / 2;
      for (auto& th : ts)
        if (th.joinable()) th.join();
    }
  } join_all{threads, next};

  // Half-way, kill -9 the node running the orders service's first partition
  // (the owner of order state; possibly the leader).
  REQUIRE(weft::test::wait_until([&] { return posted >= n_orders / 2; }, 300s));
  std::string victim, leader;
  {
    auto v = get_json(nodes[0].node_port, "/cluster");
    REQUIRE(v);
    leader = (*v)["leader"];
    for (auto& u : (*v)["units"]) {
      auto tasks = u["tasks"].get<std::string>();
      if (tasks.rfind("orders/0", 0) == 0 || tasks.find("+orders/0") != std::string::npos)
        victim = u["active"];
    }
  }
  REQUIRE(!victim.empty());
  const auto v = static_cast<size_t>(victim[1] - '1');
  const auto killed_at = steady_clock::now();
  const auto kill_ms = since(t0);
  alive[v] = false;
  nodes[v].proc->kill_hard();
  const size_t posted_at_kill = posted;
  std::set<std::string> survivors;
  std::vector<size_t> live;
  for (size_t i = 0; i < nodes.size(); ++i)
    if (i != v) {
      survivors.insert(nodes[i].id);
      live.push_back(i);
    }
  const bool moved = weft::test::wait_until(
      [&] {
        for (auto i : live)
          if (!settled(nodes[i], survivors)) return false;
        return true;
      },
      120s);
  const auto failover_ms = since(killed_at);
  CHECK(moved);

  for (auto& th : threads)
    th.join();
  const auto load_ms = since(load_start);
  {
    std::lock_guard<std::mutex> lock{errors_mu};
    for (auto& e : errors)
      FAIL_CHECK(e);
  }
  REQUIRE(posted == n_orders);

  // What each order must end as, by what validation said.
  std::map<std::string, const placed_order*> by_id;
  for (auto& p : placed) {
    INFO(p.o.id << " validated " << p.validated << " " << p.validated_reason);
    by_id[p.o.id] = &p;
    if (p.o.customer_id == 900000) {
      CHECK(p.validated == orders::failed);
      CHECK(p.validated_reason == "unknown customer 900000");
    } else if (p.o.product == "item-0") {
      CHECK((
          p.validated == orders::validated ||
          (p.validated == orders::failed && p.validated_reason == "insufficient stock")));
    } else {
      CHECK(p.validated == orders::validated);
    }
  }

  // Every order reaches its final state, and every survivor says so.
  std::set<std::string> pending;
  for (auto& p : placed)
    pending.insert(p.o.id);
  const bool all_final = weft::test::wait_until(
      [&] {
        for (auto it = pending.begin(); it != pending.end();) {
          bool done = true;
          for (auto i : live) {
            auto o = get_json(nodes[i].rest_port, "/v1/orders/" + *it);
            if (!o || (*o)["state"] != by_id[*it]->expected_final) done = false;
          }
          it = done ? pending.erase(it) : std::next(it);
        }
        return pending.empty();
      },
      180s);
  const auto final_ms = since(t0);
  {
    std::string stuck;
    for (auto& id : pending) {
      auto o = get_json(nodes[live[0]].rest_port, "/v1/orders/" + id);
      stuck += " " + id + "=" + (o ? (*o)["state"].get<std::string>() : "?") + "/" +
               by_id[id]->expected_final;
    }
    INFO("orders not in their final state (now/expected):" << stuck);
    CHECK(all_final);
  }

  // The orders topic (committed records only): each order once CREATED,
  // then legal steps to its final state, no state written twice.
  std::map<std::string, std::vector<std::string>> states;
  size_t repeats = 0;
  weft::test::wait_until(
      [&] {
        states.clear();
        repeats = 0;
        for (auto& r : weft::test::consume_all(t.orders, 0, 30s, 2s)) {
          if (!r.key || !r.value) continue;
          auto& seq = states[*r.key];
          std::string s = json::parse(*r.value)["state"];
          if (seq.empty() || seq.back() != s)
            seq.push_back(s);
          else
            ++repeats;
        }
        for (auto& p : placed)
          if (states[p.o.id].empty() || states[p.o.id].back() != p.expected_final)
            return false;
        return true;
      },
      60s);
  CHECK(states.size() == n_orders);
  CHECK(repeats == 0);
  std::map<std::string, int64_t> shipped_units;
  std::map<std::string, size_t> finals;
  for (auto& p : placed) {
    auto& seq = states[p.o.id];
    INFO(p.o.id << ": " << json(seq).dump());
    REQUIRE(!seq.empty());
    CHECK(seq.front() == orders::created);
    for (size_t i = 1; i < seq.size(); ++i)
      CHECK(orders::legal_transition(seq[i - 1], seq[i]));
    CHECK(seq.back() == p.expected_final);
    ++finals[seq.back()];
    if (seq.back() == orders::shipped) shipped_units[p.o.product] += p.o.quantity;
  }

  // Stock: nothing reserved, on hand = seeded - shipped; the same on every
  // survivor. Inventory hears of the last shipments a hop after `orders`.
  auto stock_matches = [&](const std::string& product) {
    std::optional<json> first;
    for (auto i : live) {
      auto s = get_json(nodes[i].rest_port, "/v1/stock/" + product);
      if (!s || (*s)["reserved"] != 0 ||
          (*s)["onHand"] != seeded[product] - shipped_units[product])
        return false;
      if (first && *first != *s) return false;
      first = s;
    }
    return true;
  };
  weft::test::wait_until(
      [&] {
        for (auto& [product, units] : seeded)
          if (!stock_matches(product)) return false;
        return true;
      },
      60s);
  for (auto& [product, units] : seeded) {
    std::string seen;
    for (auto i : live)
      seen +=
          " " + nodes[i].id + ": " +
          get_json(nodes[i].rest_port, "/v1/stock/" + product).value_or(json{}).dump();
    INFO(product << " seeded " << units << ", shipped " << shipped_units[product] << ";"
                 << seen);
    CHECK(stock_matches(product));
  }
  CHECK(shipped_units["item-0"] <= 40);

  // Each customer's orders, as every survivor lists them: exactly the
  // orders placed for that customer, in their final states.
  std::map<int64_t, std::map<std::string, std::string>> by_customer;
  for (auto& p : placed)
    by_customer[p.o.customer_id][p.o.id] = p.expected_final;
  auto listed = [&](size_t node, int64_t customer) {
    std::map<std::string, std::string> out;
    auto l = get_json(nodes[node].rest_port,
                      "/v1/customers/" + std::to_string(customer) + "/orders");
    if (!l) return std::optional<std::map<std::string, std::string>>{};
    for (auto& o : *l)
      out[o["id"]] = o["state"];
    return std::optional<std::map<std::string, std::string>>{out};
  };
  weft::test::wait_until(
      [&] {
        for (auto& [customer, expect] : by_customer)
          for (auto i : live)
            if (listed(i, customer) != expect) return false;
        return true;
      },
      60s);
  for (auto& [customer, expect] : by_customer)
    for (auto i : live) {
      INFO("customer " << customer << " through " << nodes[i].id);
      CHECK(listed(i, customer) == expect);
    }

  // One notification per shipped order, none twice; no payment reported
  // (each was paid once, in full; a retried payment id counts once).
  std::map<std::string, int> notified;
  for (auto& r :
       weft::test::consume_all(t.notifications, finals[orders::shipped], 60s, 2s))
    if (r.key) ++notified[*r.key];
  size_t notified_twice = 0, notified_wrongly = 0;
  for (auto& [id, count] : notified) {
    notified_twice += count > 1;
    notified_wrongly += !by_id.count(id) || by_id[id]->expected_final != orders::shipped;
  }
  CHECK(notified.size() == finals[orders::shipped]);
  CHECK(notified_twice == 0);
  CHECK(notified_wrongly == 0);
  CHECK(weft::test::consume_all(t.payment_reports, 0, 5s, 1s).empty());
  CHECK(stats.no_retry_after == 0);

  WARN("cluster of 3 settled "
       << settled_ms << " ms after start; " << victim
       << (victim == leader ? " (the leader)" : "") << " killed at " << kill_ms
       << " ms with " << posted_at_kill << " of " << n_orders
       << " orders posted; survivors settled " << failover_ms << " ms after the kill; "
       << n_orders << " orders from " << n_clients << " clients in " << load_ms
       << " ms; all final " << final_ms << " ms after start (SHIPPED "
       << finals[orders::shipped] << ", CANCELLED " << finals[orders::cancelled]
       << ", FAILED " << finals[orders::failed] << "); " << stats.requests
       << " requests, " << stats.unanswered << " unanswered, " << stats.unavailable
       << " 503, " << stats.late << " 504");
  for (auto i : live) {
    INFO(nodes[i].id << " did not stop cleanly, see " << nodes[i].log);
    CHECK(nodes[i].proc->stop(SIGTERM, 60s) == 0);
  }
  for (auto& n : nodes)
    std::filesystem::remove_all(n.state_dir);
}

// -- bad input: clients and strangers ------------------------------------------

namespace {

/// A raw TCP connection to 127.0.0.1:port, for requests an HTTP client
/// library would not send.
struct raw_connection {
  int fd = -1;
  explicit raw_connection(int port) {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  }
  ~raw_connection() { ::close(fd); }
  void send_all(const std::string& s) {
    size_t done = 0;
    while (done < s.size()) {
      auto n = ::send(fd, s.data() + done, s.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return; // the server may close before it read everything
      done += static_cast<size_t>(n);
    }
  }
  /// What the server sent until it closed the connection or `limit` passed.
  std::string receive(milliseconds limit) {
    std::string out;
    auto until = steady_clock::now() + limit;
    char buf[4096];
    while (steady_clock::now() < until) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      auto n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }
  /// What the server has sent so far, without waiting.
  std::string available() {
    std::string out;
    char buf[4096];
    for (;;) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 0) <= 0) break;
      auto n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }
};

std::string with_headers(const std::string& request_line, size_t count, size_t size) {
  std::string req = request_line + "\r\nHost: x\r\n";
  for (size_t i = 0; i < count; ++i)
    req += "X-Pad-" + std::to_string(i) + ": " + std::string(size, 'p') + "\r\n";
  return req + "\r\n";
}

} // namespace

TEST_CASE("the REST API refuses a request without its bearer token (401), an oversized "
          "body (413) or headers (431), a request sent too slowly (408) and a flood of "
          "connections (503), writes nothing for them, and goes on serving orders",
          "[broker][orders]") {
  weft::http::limits bounds;
  bounds.bearer_token = "rest-token-1";
  bounds.max_body_bytes = 65536;
  bounds.request_timeout = 1000ms;
  order_system sys{30000, 200, {}, bounds};
  sys.customer(1, "gold");
  sys.stock("pen", 100, 100);
  const int port = sys.api->port();

  // No token, another token: 401, and the order is never written.
  httplib::Client anonymous{"127.0.0.1", port};
  auto none = anonymous.Post("/v1/orders", sys.order_body("anon", 1, "pen", 1, 1).dump(),
                             "application/json");
  REQUIRE(none);
  CHECK(none->status == 401);
  CHECK(none->get_header_value("WWW-Authenticate") == "Bearer realm=\"weft\"");
  auto wrong =
      anonymous.Post("/v1/orders", {{"Authorization", "Bearer rest-token-2"}},
                     sys.order_body("anon", 1, "pen", 1, 1).dump(), "application/json");
  REQUIRE(wrong);
  CHECK(wrong->status == 401);

  // A body over the limit: 413, with the limit in the reason.
  auto big = sys.order_body("big", 1, "pen", 1, 1);
  big["product"] = std::string(70000, 'p');
  auto too_big = sys.post("/v1/orders", big);
  REQUIRE(too_big);
  CHECK(too_big->status == 413);
  CHECK_THAT(too_big->body, Catch::Contains("larger than 65536 bytes"));

  // Headers over 64 KiB in 8 KiB lines: 431.
  {
    raw_connection raw{port};
    raw.send_all(with_headers("GET /v1/stock/pen HTTP/1.1", 20, 8000));
    auto got = raw.receive(3s);
    CHECK_THAT(got, Catch::StartsWith("HTTP/1.1 431"));
  }
  // Half a request, then silence: 408 after request.timeout (1 s).
  {
    raw_connection raw{port};
    raw.send_all(
        "POST /v1/orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer rest-token-1\r\n"
        "Content-Length: 100\r\n\r\n{\"id\"");
    auto start = steady_clock::now();
    auto got = raw.receive(5s);
    CHECK_THAT(got, Catch::StartsWith("HTTP/1.1 408"));
    CHECK(steady_clock::now() - start < 3s);
  }
  // A flood of idle connections: the surplus is refused at once.
  size_t refused = 0, client_refused = 0, client_unanswered = 0;
  {
    std::vector<std::unique_ptr<raw_connection>> flood;
    for (int i = 0; i < 200; ++i)
      flood.push_back(std::make_unique<raw_connection>(port));
    std::vector<std::string> answers(flood.size());
    auto read_refusals = [&] {
      size_t n = 0;
      for (size_t i = 0; i < flood.size(); ++i) {
        answers[i] += flood[i]->available();
        if (answers[i].rfind("HTTP/1.1 503", 0) == 0) ++n;
      }
      return n;
    };
    // The server refuses as it accepts; on a loaded machine that may lag the
    // connects: read until every refusal it counted has reached its client.
    CHECK(weft::test::wait_until(
        [&] {
          refused = read_refusals();
          return refused > 0 && refused == sys.api->refused().busy.load();
        },
        10s));
    // While the flood's connections stay open, a client that retries on 503
    // (as Retry-After says) places an order.
    int placed = 0;
    REQUIRE(weft::test::wait_until(
        [&] {
          httplib::Client c{"127.0.0.1", port};
          c.set_default_headers({{"Authorization", "Bearer rest-token-1"}});
          auto r =
              c.Post("/v1/orders", sys.order_body("during-flood", 1, "pen", 1, 1).dump(),
                     "application/json");
          placed = r ? r->status : 0;
          if (placed == 503) ++client_refused;
          // Refused before its request was read, the client may see the
          // reset before the 503: maybe refused.
          if (placed == 0) ++client_unanswered;
          return placed != 0 && placed != 503;
        },
        30s));
    CHECK(placed == 201);
    refused = read_refusals(); // any the server refused since
  }
  CHECK(refused >= 100);
  CHECK(sys.validated("during-flood")["state"] == "VALIDATED");

  // What was refused wrote nothing. "anon" and "big" would have landed on
  // their own partitions: an order placed after them on each of those is
  // validated, so their records would have been handled first.
  for (auto* id : {"anon", "big"}) {
    auto marker = same_partition_id(id, std::string{"after-"} + id + "-");
    CHECK(sys.place(sys.order_body(marker, 1, "pen", 1, 1))["state"] == "VALIDATED");
    auto r = sys.http->Get((std::string{"/v1/orders/"} + id).c_str());
    REQUIRE(r);
    CHECK(r->status == 404);
  }
  auto& n = sys.api->refused();
  CHECK(n.unauthorized >= 2);
  CHECK(n.body_too_large == 1);
  CHECK(n.headers_too_large == 1);
  CHECK(n.timed_out == 1);
  // Every refusal a client saw was counted, and none beyond the attempts
  // that may have been refused.
  CHECK(n.busy >= refused + client_refused);
  CHECK(n.busy <= refused + client_refused + client_unanswered);
  WARN("REST API under a flood of 200 idle connections: " << refused
                                                          << " refused at once with 503");
}

TEST_CASE("weft-orders with tokens: the REST API and the node's HTTP endpoint answer "
          "401 without their bearer token, 431 to oversized headers, and serve with it",
          "[broker][orders]") {
  const std::string prefix = weft::test::unique_name("tok") + "-";
  const auto t = orders::topic_names::with_prefix(prefix);
  const auto app = weft::test::unique_name("orders-tok");
  weft::test::create_topics(t.all(), partitions);
  const int rest_port = 23000 + static_cast<int>(::getpid() % 1000) * 4;
  const int node_port = rest_port + 1;
  const auto state_dir = "/tmp/" + app;
  const auto log = "/tmp/" + app + ".log";
  // Tokens through the environment, as README advises (not on the command line).
  ::setenv("WEFT_HTTP_AUTH_TOKEN", "rest-secret", 1);
  ::setenv("WEFT_NODE_HTTP_AUTH_TOKEN", "node-secret", 1);
  weft::test::child_process node{
      weft::test::built("examples/orders/weft-orders"),
      {"--application.id=" + app, "--bootstrap.servers=" + weft::test::bootstrap(),
       "--cluster.enabled=true", "--node.id=n1", "--state.dir=" + state_dir,
       "--http.port=" + std::to_string(rest_port),
       "--node.http.port=" + std::to_string(node_port), "--orders.topic.prefix=" + prefix,
       "--orders.partitions=" + std::to_string(partitions)},
      log};
  ::unsetenv("WEFT_HTTP_AUTH_TOKEN");
  ::unsetenv("WEFT_NODE_HTTP_AUTH_TOKEN");
  INFO("node log: " << log);
  httplib::Client rest{"127.0.0.1", rest_port}, weft_http{"127.0.0.1", node_port};
  rest.set_connection_timeout(1);
  weft_http.set_connection_timeout(1);
  const httplib::Headers rest_auth{{"Authorization", "Bearer rest-secret"}};
  const httplib::Headers node_auth{{"Authorization", "Bearer node-secret"}};
  REQUIRE(weft::test::wait_until(
      [&] {
        auto r = weft_http.Get("/metrics", node_auth);
        return r && r->status == 200;
      },
      90s));
  auto m = weft_http.Get("/metrics");
  REQUIRE(m);
  CHECK(m->status == 401);
  auto crossed = weft_http.Get("/cluster", rest_auth); // the other token
  REQUIRE(crossed);
  CHECK(crossed->status == 401);
  auto cluster = weft_http.Get("/cluster", node_auth);
  REQUIRE(cluster);
  CHECK(cluster->status == 200);

  auto anon = rest.Get("/v1/stock/pen");
  REQUIRE(anon);
  CHECK(anon->status == 401);
  REQUIRE(weft::test::wait_until(
      [&] {
        auto r = rest.Post("/v1/stock", rest_auth, R"({"product":"pen","delta":5})",
                           "application/json");
        return r && r->status == 202;
      },
      30s));
  REQUIRE(weft::test::wait_until(
      [&] {
        auto r = rest.Get("/v1/stock/pen", rest_auth);
        return r && r->status == 200 && json::parse(r->body)["onHand"] == 5;
      },
      30s));

  for (int port : {rest_port, node_port}) {
    raw_connection raw{port};
    raw.send_all(with_headers("GET /metrics HTTP/1.1", 20, 8000));
    CHECK_THAT(raw.receive(3s), Catch::StartsWith("HTTP/1.1 431"));
  }
  auto again = weft_http.Get("/metrics", node_auth);
  REQUIRE(again);
  CHECK(again->status == 200);
  CHECK(node.stop(SIGTERM, 60s) == 0);
  std::filesystem::remove_all(state_dir);
}

// -- bad input: the topics -----------------------------------------------------

namespace {

/// A record the topic fuzz writes, and where it landed.
struct fuzz_record {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = -1;
  std::string kind;
};

/// Every topic a service of `s` reads as a stream or a (non-global) table,
/// by service name: where a bad record of that topic must be dead-lettered.
std::map<std::string, std::set<std::string>> readers_of(const orders::settings& s,
                                                        const std::string& app) {
  std::map<std::string, std::set<std::string>> out;
  for (auto& f : orders::services(s, false, orders::make_outbox(s))) {
    auto svc = f();
    for (auto& in : svc->inputs())
      out[in.internal ? weft::repartition_topic(app, in.name) : in.name].insert(
          svc->name());
    for (auto& tb : svc->tables())
      if (!tb.global) out[tb.topic].insert(svc->name());
  }
  return out;
}

} // namespace

TEST_CASE("topic fuzz: random bytes, truncated, oversized and mistyped JSON, null keys "
          "and values and huge headers in every input topic of a running order system "
          "all end in its dead-letter topics, while REST keeps serving and every good "
          "order settles",
          "[broker][orders]") {
  const size_t good_orders = 120, clients = 6;
  order_system sys{15000, 100};
  for (int c = 1; c <= 5; ++c)
    sys.customer(c, "platinum");
  for (int p = 0; p < 3; ++p)
    sys.stock("item" + std::to_string(p), 100000, 100000);
  const auto readers = readers_of(sys.s, sys.app);
  std::vector<std::string> topics;
  for (auto& [topic, services] : readers)
    topics.push_back(topic);
  REQUIRE(topics.size() >= 10); // 7 of the contract's, 3 repartitions
  REQUIRE(readers.count(sys.t.customers));

  // Good orders over REST, placed, paid and followed until they settle,
  // while the fuzz writes.
  std::atomic<size_t> next{0}, settled{0}, rest_errors{0};
  std::mutex failures_mu;
  std::vector<std::string> failures;
  auto client = [&] {
    httplib::Client c{"127.0.0.1", sys.api->port()};
    c.set_read_timeout(60, 0);
    for (size_t i = next++; i < good_orders; i = next++) {
      auto id = "good-" + std::to_string(i);
      auto body = sys.order_body(id, 1 + static_cast<int64_t>(i % 5),
                                 "item" + std::to_string(i % 3), 1, 2.0);
      auto r = c.Post("/v1/orders", body.dump(), "application/json");
      auto v = c.Get(("/v1/orders/" + id + "/validated?timeout=60000").c_str());
      auto p = c.Post(
          "/v1/payments",
          json{{"id", "pay-" + id}, {"orderId", id}, {"currency", "EUR"}, {"amount", 2.0}}
              .dump(),
          "application/json");
      if (!r || r->status != 201 || !v || v->status != 200 || !p || p->status != 202) {
        ++rest_errors;
        std::lock_guard<std::mutex> lock{failures_mu};
        failures.push_back(id + ": " + (r ? std::to_string(r->status) : "no answer") +
                           (v ? " " + v->body : " no validation"));
        continue;
      }
      std::string state;
      auto deadline = steady_clock::now() + 60s;
      while (steady_clock::now() < deadline) {
        auto o = c.Get(("/v1/orders/" + id + "?timeout=1000").c_str());
        if (!o || o->status != 200) {
          ++rest_errors;
          break;
        }
        state = json::parse(o->body)["state"];
        if (orders::final_state(state)) break;
        std::this_thread::sleep_for(20ms);
      }
      if (state == "SHIPPED") {
        ++settled;
      } else {
        std::lock_guard<std::mutex> lock{failures_mu};
        failures.push_back(id + " ended " + state);
      }
    }
  };
  std::vector<std::thread> threads;
  for (size_t i = 0; i < clients; ++i)
    threads.emplace_back(client);

  // The fuzz: every kind of bad record into every input topic, each to a
  // known partition, so that its offset says where it landed.
  std::vector<fuzz_record> written;
  std::mutex written_mu;
  auto producer = weft::kafka::producer::create(
      {{"bootstrap.servers", weft::test::bootstrap()},
       {"message.max.bytes", "1100000"},
       {"linger.ms", "5"}},
      [&](void* opaque, const weft::status& st, int64_t offset) {
        auto* r = static_cast<fuzz_record*>(opaque);
        std::lock_guard<std::mutex> lock{written_mu};
        if (st.ok()) {
          r->offset = offset;
          written.push_back(*r);
        }
        delete r;
      });
  REQUIRE(producer);
  std::mt19937 rng{static_cast<unsigned>(::getpid())};
  auto random_bytes = [&](size_t n) {
    std::string s(n, '\0');
    for (auto& ch : s)
      ch = static_cast<char>(rng() & 0xFF);
    s[0] = '\xFF'; // never JSON, never UTF-8
    return s;
  };
  const std::string valid_order =
      json(orders::order{"o-x", 1, "CREATED", "item0", 1, 2.0, "EUR", ""}).dump();
  size_t tried = 0, refused_by_broker = 0;
  auto write = [&](const std::string& topic, const std::string& kind,
                   std::optional<std::string> key, std::optional<std::string> value,
                   std::vector<weft::header> headers = {}) {
    auto* r = new fuzz_record{topic, static_cast<int32_t>(tried % partitions), -1, kind};
    ++tried;
    auto st = (*producer)->send(topic, r->partition, key, value, 0,
                                headers.empty() ? nullptr : &headers, r);
    if (!st.ok()) {
      ++refused_by_broker;
      delete r;
    }
  };
  for (int round = 0; round < 2; ++round) {
    for (auto& topic : topics) {
      const bool table = topic == sys.t.customers; // compacted: keys required
      for (int i = 0; i < 3; ++i)
        write(topic, "random bytes", random_bytes(1 + rng() % 16),
              random_bytes(1 + rng() % 300));
      write(topic, "random value", std::string{"k-random"}, random_bytes(64));
      write(topic, "truncated JSON", std::string{"o-t"},
            valid_order.substr(0, 1 + rng() % (valid_order.size() - 1)));
      write(topic, "oversized JSON", std::string{"o-big"},
            "{\"pad\":\"" + std::string(1040000, 'x') + "\"}");
      write(
          topic, "wrong types", std::string{"o-w"},
          R"({"id":1,"orderId":2,"type":3,"customerId":"x","product":[],"quantity":"1",)"
          R"("price":"2","currency":null,"amount":"3","delta":"4","email":5,"level":6})");
      write(topic, "not an object", std::string{"o-a"}, std::string{R"([{"id":"o-a"}])"});
      write(topic, "empty object", std::string{"o-e"}, std::string{"{}"});
      write(topic, "invalid UTF-8 key", std::string{"o-\xC3\x28"}, valid_order);
      if (!table) {
        write(topic, "null key", std::nullopt, valid_order);
        write(topic, "null value", std::string{"o-n"}, std::nullopt);
      }
      write(topic, "huge headers", std::string{"o-h"}, std::string{"not json"},
            {{"h1", std::string(400000, 'h')}, {"h2", std::string(400000, 'i')}});
    }
  }
  // Legal on a table, so no bad record: a tombstone for a customer nobody has.
  write(sys.t.customers, "tombstone", std::string{"999999"}, std::nullopt);
  REQUIRE((*producer)->flush(60000));
  for (auto& th : threads)
    th.join();
  std::vector<fuzz_record> bad;
  {
    std::lock_guard<std::mutex> lock{written_mu};
    for (auto& r : written)
      if (r.kind != "tombstone") bad.push_back(r);
  }
  CHECK(refused_by_broker == 0);
  REQUIRE(bad.size() + 1 == tried);

  // Where each must be: one dead-letter record per (bad record, reader).
  using where =
      std::tuple<std::string, std::string, int32_t, int64_t>; // service, topic, p, o
  std::map<where, std::string> expected;
  // A service that parks keeps its bad records in its parked store instead
  // (the first of a key parks it, the next of that key wait behind it),
  // except those too large to hold there: those are dead-lettered.
  std::set<std::string> parking;
  for (auto& p : orders::bad_record_policies())
    if (p.policy == "park") parking.insert(p.service);
  uint64_t parked_expected = 0;
  for (auto& r : bad)
    for (auto& svc : readers.at(r.topic)) {
      if (parking.count(svc) && r.kind != "oversized JSON") {
        ++parked_expected;
        continue;
      }
      expected[{svc, r.topic, r.partition, r.offset}] = r.kind;
    }
  CHECK(parked_expected > 0);
  CHECK(weft::test::wait_until(
      [&] { return sys.node->metrics().parked_records == parked_expected; }, 60s));
  CHECK(sys.node->metrics().parked_records == parked_expected);
  std::set<std::string> services;
  for (auto& [w, kind] : expected)
    services.insert(std::get<0>(w));
  std::map<where, int> found;
  size_t dead_lettered = 0, truncated = 0, stray = 0;
  REQUIRE(weft::test::wait_until(
      [&] {
        found.clear();
        dead_lettered = truncated = stray = 0;
        for (auto& svc : services) {
          auto dlq = sys.app + "-" + svc + "-dlq";
          for (auto& rec : weft::test::consume_all(dlq, 0, 20s, 1s)) {
            std::map<std::string, std::string> h;
            for (auto& hd : rec.headers)
              h[hd.key] = hd.value;
            ++dead_lettered;
            if (h.count("weft.truncated")) ++truncated;
            where w{h["weft.service"], h["weft.topic"],
                    static_cast<int32_t>(std::atoi(h["weft.partition"].c_str())),
                    std::atoll(h["weft.offset"].c_str())};
            if (!expected.count(w) || std::get<0>(w) != svc) ++stray;
            ++found[w];
          }
        }
        for (auto& [w, kind] : expected)
          if (!found.count(w)) return false;
        return true;
      },
      180s));
  size_t missing = 0, repeated = 0;
  std::string example;
  for (auto& [w, kind] : expected) {
    auto n = found.count(w) ? found[w] : 0;
    if (n == 0) {
      ++missing;
      if (example.empty())
        example = std::get<0>(w) + " " + std::get<1>(w) + "@" +
                  std::to_string(std::get<3>(w)) + " (" + kind + ")";
    }
    if (n > 1) ++repeated;
  }
  INFO("first bad record missing from its dead-letter topic: " << example);
  CHECK(missing == 0);
  CHECK(stray == 0); // no good record, and nothing twice under another name
  if (guarantee() == "exactly_once") CHECK(repeated == 0);
  // The oversized records (1,040,000 bytes) could not be dead-lettered whole
  // (nor held by a service that parks).
  CHECK(truncated >= 2 * topics.size());

  INFO("REST failures: " << failures.size()
                         << (failures.empty() ? "" : ", first: " + failures[0]));
  CHECK(rest_errors == 0);
  CHECK(settled == good_orders);
  // REST still answers every kind of read afterwards.
  CHECK(sys.state_of("good-0") == "SHIPPED");
  CHECK(sys.stock_of("item0").is_object());
  WARN("topic fuzz (" << guarantee() << "): " << tried << " records written to "
                      << topics.size() << " input topics (" << bad.size()
                      << " bad, 1 tombstone), " << dead_lettered
                      << " dead-letter records in " << services.size()
                      << " dead-letter topics (" << expected.size() << " expected, "
                      << truncated << " truncated to fit), " << settled << " of "
                      << good_orders << " good orders settled (SHIPPED), " << rest_errors
                      << " REST errors");
}
