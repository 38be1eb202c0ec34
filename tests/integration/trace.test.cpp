// Follow a key [broker]: the weft.cause header on what services produce (the
// service, and exactly the input record's topic/partition/offset), gone with
// trace.headers=false; GET /trace's gate state; and weft-trace (the built
// tool, run as a process) listing one key's records and what they caused
// under other keys, in causal order, on a small app (a stateless re-key
// feeding a gate) and on the real order system.

#include <catch2/catch.hpp>

#include <cstdio>
#include <map>
#include <set>
#include <string>

#include <sys/wait.h>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "model.hpp"
#include "test_cluster.hpp"
#include "weft/node.hpp"
#include "weft/services/gate.hpp"
#include "weft/services/stateless.hpp"
#include "weft/trace/cause.hpp"

using namespace weft;
using namespace std::chrono_literals;
using str = string_serde;
using json = nlohmann::json;

namespace {

/// Payments (key: payment id, value: order id) re-keyed by their order.
struct by_order : stateless<str, str> {
  output<str, str> out;
  by_order(std::string in, std::string out_topic) : stateless("by-order", in) {
    out = to<str, str>(out_topic);
  }
  void process(const std::string& payment, const std::string& order,
               context& ctx) override {
    out.emit(ctx, order, payment);
  }
};

/// An order and its payment, then "ready"; 10 minutes to wait.
struct pay_gate : gate<str> {
  part<str> ordered, paid;
  output<str, str> ready;
  pay_gate(std::string orders, std::string paid_topic, std::string ready_topic)
    : gate("pay-gate", 600000) {
    ordered = when<str>(orders);
    paid = when<str>(paid_topic);
    ready = to<str, str>(ready_topic);
  }
  void on_ready(const std::string& id, const correlation& c, context& ctx) override {
    ready.emit(ctx, id, *c.get(ordered) + " paid by " + *c.get(paid));
  }
};

std::pair<int, std::string> run(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  REQUIRE(p);
  char buf[4096];
  while (auto n = std::fread(buf, 1, sizeof buf, p))
    out.append(buf, n);
  int rc = ::pclose(p);
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, out};
}

std::optional<std::string> cause_of(const test::owned_record& r) {
  std::optional<std::string> v;
  for (auto& h : r.headers)
    if (h.key == trace::cause_header) v = h.value;
  return v;
}

/// The record of `records` at (partition, offset), or null.
const test::owned_record* at(const std::vector<test::owned_record>& records, int32_t p,
                             int64_t o) {
  for (auto& r : records)
    if (r.partition == p && r.offset == o) return &r;
  return nullptr;
}

struct small_app {
  std::string orders = test::unique_name("t-orders");
  std::string payments = test::unique_name("t-payments");
  std::string paid = test::unique_name("t-paid");
  std::string ready = test::unique_name("t-ready");
  small_app() { test::create_topics({orders, payments, paid, ready}, 2); }

  std::unique_ptr<node> start(const std::string& app, bool headers) {
    auto cfg = config::from_map({{"application.id", app},
                                 {"bootstrap.servers", test::bootstrap()},
                                 {"state.dir", "/tmp/" + app},
                                 {"http.port", "0"},
                                 {"trace.headers", headers ? "true" : "false"}});
    REQUIRE(cfg.ok());
    auto n = std::make_unique<node>(*cfg);
    n->add<by_order>(payments, paid);
    n->add<pay_gate>(orders, paid, ready);
    auto st = n->start();
    INFO(st.to_string());
    REQUIRE(st.ok());
    return n;
  }
};

/// weft-trace's JSON for `key`.
json trace_json(const std::string& app, int port, const std::string& key) {
  auto [rc, out] = run(test::built("tools/weft-trace") + " --application.id=" + app +
                       " --node=127.0.0.1:" + std::to_string(port) +
                       " --bootstrap.servers=" + test::bootstrap() +
                       " --timeout.ms=20000 --json " + key);
  INFO(out);
  REQUIRE(rc == 0);
  auto j = json::parse(out, nullptr, false);
  REQUIRE(j.is_object());
  return j;
}

} // namespace

TEST_CASE("outputs carry weft.cause naming the service and the input record, none with "
          "trace.headers=false, and weft-trace follows a key through a re-key and a gate",
          "[broker][trace]") {
  small_app a;
  const auto app = test::unique_name("trace");
  auto n = a.start(app, true);
  test::produce(a.orders, 2, [](size_t i) {
    return std::pair{i == 0 ? std::string{"o1"} : std::string{"o2"},
                     i == 0 ? std::string{"pen"} : std::string{"ink"}};
  });
  test::produce(a.payments, 1, [](size_t) { return std::pair{"p1", "o1"}; });
  auto ready = test::consume_all(a.ready, 1, 60s);
  REQUIRE(ready.size() == 1);
  auto paid = test::consume_all(a.paid, 1, 30s);
  auto payments = test::consume_all(a.payments, 1, 30s);
  auto orders = test::consume_all(a.orders, 2, 30s);
  REQUIRE(paid.size() == 1);
  REQUIRE(payments.size() == 1);
  REQUIRE(orders.size() == 2);

  // The re-key's output: by-order, caused by the payment, exactly there.
  {
    auto h = cause_of(paid[0]);
    REQUIRE(h);
    auto c = trace::decode_cause(*h);
    REQUIRE(c);
    CHECK(c->service == "by-order");
    CHECK(c->topic == a.payments);
    CHECK(c->partition == payments[0].partition);
    CHECK(c->offset == payments[0].offset);
    CHECK(*paid[0].key == "o1");
  }
  // The gate's output: caused by whichever part came last, order or payment.
  {
    auto h = cause_of(ready[0]);
    REQUIRE(h);
    auto c = trace::decode_cause(*h);
    REQUIRE(c);
    CHECK(c->service == "pay-gate");
    const test::owned_record* cause = nullptr;
    if (c->topic == a.paid) cause = at(paid, c->partition, c->offset);
    if (c->topic == a.orders) cause = at(orders, c->partition, c->offset);
    REQUIRE(cause);
    CHECK(*cause->key == "o1");
    CHECK(*ready[0].value == "pen paid by p1");
  }
  // Records from outside weft have none.
  CHECK_FALSE(cause_of(orders[0]));

  // GET /trace: the topics, and the gate's partial state for o2.
  httplib::Client ep{"127.0.0.1", n->http_port()};
  ep.set_read_timeout(10, 0);
  auto r = ep.Get("/trace?key=o2");
  REQUIRE(r);
  REQUIRE(r->status == 200);
  auto view = json::parse(r->body);
  CHECK(view["application"] == app);
  std::set<std::string> topics;
  for (auto& t : view["topics"])
    topics.insert(t["name"].get<std::string>());
  CHECK(topics == std::set<std::string>{a.orders, a.payments, a.paid, a.ready});
  REQUIRE(view["gates"].size() == 1);
  auto g = view["gates"][0];
  CHECK(g["service"] == "pay-gate");
  CHECK(g["state"] == "open");
  REQUIRE(g["parts"].size() == 1);
  CHECK(g["parts"][0]["part"] == a.orders);
  CHECK(g["parts"][0]["value"] == "ink");
  CHECK(g["waiting_for"] == json::array({a.paid}));
  CHECK(g["deadline_ms"].get<int64_t>() - g["started_ms"].get<int64_t>() == 600000);
  CHECK(g["timeout_at_ms"] == g["deadline_ms"]);
  CHECK(g["timeout_clock"] == "wall_clock");
  auto bad = ep.Get("/trace");
  REQUIRE(bad);
  CHECK(bad->status == 400);

  // A record of o1 with a weft.cause weft did not write: listed, its header
  // ignored with the reason.
  {
    auto p = kafka::producer::create({{"bootstrap.servers", test::bootstrap()}});
    REQUIRE(p.ok());
    std::vector<header> bogus{{std::string{trace::cause_header}, "not a cause"}};
    REQUIRE((*p)->send(a.ready, -1, std::string_view{"o1"}, std::string_view{"forged"}, 0,
                       &bogus)
                .ok());
    REQUIRE((*p)->flush(10000).ok());
  }

  // weft-trace o1: the order, the payment (key p1) it did not cause but
  // was caused by, the re-keyed payment, the gate's output — causes first.
  auto t = trace_json(app, n->http_port(), "o1");
  std::map<std::string, json> by_topic;
  for (auto& rec : t["records"]) {
    if (rec["value"] == "forged") continue;
    by_topic[rec["topic"].get<std::string>()] = rec;
    if (rec.contains("caused_by"))
      CHECK(rec["caused_by"].get<int>() < rec["n"].get<int>());
  }
  REQUIRE(t["records"].size() == 5);
  CHECK(by_topic[a.orders]["key"] == "o1");
  CHECK(by_topic[a.orders]["service"].is_null());
  CHECK(by_topic[a.payments]["key"] == "p1");
  CHECK(by_topic[a.payments]["same_key"] == false);
  CHECK(by_topic[a.paid]["service"] == "by-order");
  CHECK(by_topic[a.paid]["caused_by"] == by_topic[a.payments]["n"]);
  CHECK(by_topic[a.ready]["service"] == "pay-gate");
  CHECK(by_topic[a.payments]["n"] < by_topic[a.paid]["n"]);
  CHECK(by_topic[a.paid]["n"] < by_topic[a.ready]["n"]);
  REQUIRE(t["gates"].size() == 1);
  CHECK(t["gates"][0]["state"] == "decided");
  REQUIRE(t["warnings"].size() == 1);
  CHECK(t["warnings"][0].get<std::string>().rfind(
            "ignored a malformed header at " + a.ready + "/", 0) == 0);
  CHECK(t["warnings"][0].get<std::string>().find("weft.cause: no '@'") !=
        std::string::npos);
  size_t forged = 0;
  for (auto& rec : t["records"])
    if (rec["value"] == "forged") {
      ++forged;
      CHECK(rec["service"].is_null());
      CHECK(rec["cause_error"].get<std::string>().rfind("weft.cause: ", 0) == 0);
    }
  CHECK(forged == 1);

  // A bad application id and an unreachable broker: clear errors, exit 1.
  {
    auto [rc, out] = run(test::built("tools/weft-trace") + " --application.id=nope" +
                         " --node=127.0.0.1:" + std::to_string(n->http_port()) +
                         " --bootstrap.servers=" + test::bootstrap() + " o1");
    CHECK(rc == 1);
    CHECK(out.find("runs application '" + app + "', not 'nope'") != std::string::npos);
  }
  {
    auto [rc, out] = run(test::built("tools/weft-trace") + " --application.id=" + app +
                         " --node=127.0.0.1:" + std::to_string(n->http_port()) +
                         " --bootstrap.servers=127.0.0.1:1 --timeout.ms=2000 o1");
    CHECK(rc == 1);
    CHECK(out.find("Kafka at 127.0.0.1:1") != std::string::npos);
  }
  n->request_stop();
  (void)n->wait();
  n.reset();

  // The same app again with trace.headers=false: a new payment's outputs
  // carry no weft.cause.
  const auto quiet = test::unique_name("trace-off");
  auto off = a.start(quiet, false);
  test::produce(a.orders, 1, [](size_t) { return std::pair{"o3", "cap"}; });
  test::produce(a.payments, 1, [](size_t) { return std::pair{"p3", "o3"}; });
  // The new app reads the topics from the start: o1 again, then o3.
  auto ready2 = test::consume_all(a.ready, 4, 60s); // the forged one too
  REQUIRE(ready2.size() == 4);
  size_t without = 0;
  for (auto& rec : ready2)
    if (!cause_of(rec)) ++without;
  CHECK(without == 2);
  auto paid2 = test::consume_all(a.paid, 3, 30s);
  REQUIRE(paid2.size() == 3);
  without = 0;
  for (auto& rec : paid2)
    if (!cause_of(rec)) ++without;
  CHECK(without == 2);
  off->request_stop();
  (void)off->wait();
}

TEST_CASE("weft-trace follows an order of the real order system: its command, its "
          "events, the payment and stock records it caused, in causal order, and what "
          "the gates hold",
          "[broker][trace][orders]") {
  const std::string prefix = test::unique_name("tr") + "-";
  const auto t = orders::topic_names::with_prefix(prefix);
  const auto app = test::unique_name("orders-trace");
  const int partitions = 2;
  test::create_topics(t.all(), partitions);
  const int rest_port = test::free_port();
  const int node_port = test::free_port();
  const auto log = "/tmp/" + app + ".log";
  test::child_process node{
      test::built("examples/orders/weft-orders"),
      {"--application.id=" + app, "--bootstrap.servers=" + test::bootstrap(),
       "--state.dir=/tmp/" + app, "--http.port=" + std::to_string(rest_port),
       "--node.http.port=" + std::to_string(node_port), "--orders.topic.prefix=" + prefix,
       "--orders.partitions=" + std::to_string(partitions),
       "--validation.timeout.ms=600000", "--shipping.delay.ms=300"},
      log};
  INFO("node log: " << log);
  httplib::Client rest{"127.0.0.1", rest_port};
  rest.set_read_timeout(60, 0);
  REQUIRE(test::wait_until(
      [&] {
        auto r =
            rest.Put("/v1/customers/1",
                     R"({"id":1,"firstName":"Ada","lastName":"L",)"
                     R"("email":"ada@example.com","address":"1 Road","level":"gold"})",
                     "application/json");
        return r && r->status == 202;
      },
      90s));
  auto stock =
      rest.Post("/v1/stock", R"({"product":"pen","delta":100})", "application/json");
  REQUIRE(stock);
  REQUIRE(test::wait_until(
      [&] {
        auto r = rest.Get("/v1/stock/pen");
        return r && r->status == 200 && json::parse(r->body)["onHand"] == 100;
      },
      30s));
  for (auto id : {"o1", "o2"}) {
    auto r = rest.Post("/v1/orders",
                       json{{"id", id},
                            {"customerId", 1},
                            {"product", "pen"},
                            {"quantity", 2},
                            {"price", 3.5},
                            {"currency", "EUR"}}
                           .dump(),
                       "application/json");
    REQUIRE(r);
    REQUIRE(r->status == 201);
    auto v =
        rest.Get((std::string{"/v1/orders/"} + id + "/validated?timeout=30000").c_str());
    REQUIRE(v);
    REQUIRE(v->status == 200);
    REQUIRE(json::parse(v->body)["state"] == std::string{orders::validated});
  }
  auto pay = rest.Post("/v1/payments",
                       R"({"id":"p1","orderId":"o1","currency":"EUR","amount":7})",
                       "application/json");
  REQUIRE(pay);
  REQUIRE(pay->status == 202);
  REQUIRE(test::wait_until(
      [&] {
        auto r = rest.Get("/v1/orders/o1");
        return r && r->status == 200 &&
               json::parse(r->body)["state"] == std::string{orders::shipped};
      },
      60s));

  auto tr = trace_json(app, node_port, "o1");
  INFO(tr.dump(1));
  auto& recs = tr["records"];
  std::vector<std::string> order_states;
  int first_command = 0, payment = 0, rekeyed_payment = 0, by_product = 0;
  std::set<std::string> checks;
  for (auto& r : recs) {
    const auto topic = r["topic"].get<std::string>();
    const int n = r["n"].get<int>();
    if (r.contains("caused_by")) CHECK(r["caused_by"].get<int>() < n);
    auto value = r["value"].is_string()
                     ? json::parse(r["value"].get<std::string>(), nullptr, false)
                     : json{};
    if (topic == t.commands && first_command == 0) {
      first_command = n;
      CHECK(r["service"].is_null()); // the REST API wrote it, outside any service
      CHECK(r["key"] == "o1");
    }
    if (topic == t.orders) {
      CHECK(r["service"] == "orders");
      CHECK(r.contains("caused_by")); // its command, in the trace
      order_states.push_back(value.value("state", "?"));
    }
    if (topic == t.validations) {
      checks.insert(value.value("checkType", "?"));
      CHECK(r.contains("caused_by"));
    }
    if (topic == t.payments) {
      payment = n;
      CHECK(r["key"] == "p1");
      CHECK(r["same_key"] == false);
    }
    if (topic.find("payments-by-order-repartition") != std::string::npos) {
      rekeyed_payment = n;
      CHECK(r["service"] == "payments-by-order");
      CHECK(r["caused_by"] == payment);
    }
    if (topic.find("orders-by-product-repartition") != std::string::npos &&
        r["key"] == "pen")
      by_product = n;
  }
  CHECK(first_command == 1);
  // Every state the order went through, in order (a state may repeat under
  // at_least_once, never go back).
  std::vector<std::string> distinct;
  for (auto& s : order_states)
    if (distinct.empty() || distinct.back() != s) distinct.push_back(s);
  CHECK(distinct == std::vector<std::string>{"CREATED", "VALIDATED", "PAID", "SHIPPED"});
  CHECK(checks ==
        std::set<std::string>{"ORDER_DETAILS_CHECK", "INVENTORY_CHECK", "FRAUD_CHECK"});
  CHECK(payment > 0);
  CHECK(rekeyed_payment > payment);
  CHECK(by_product > 0);         // the stock reservation's input, under the product's key
  for (auto& w : tr["warnings"]) // dead-letter topics may not exist yet; nothing else
    CHECK(w.get<std::string>().rfind("not created yet: ", 0) == 0);

  // The gates: o1's validation decided (kept until its deadline, a timer);
  // o2 validated and not paid: the payment gate holds the order, waiting.
  std::map<std::string, json> gates;
  for (auto& g : tr["gates"])
    gates[g["service"].get<std::string>()] = g;
  REQUIRE(gates.count("validation-gate"));
  CHECK(gates["validation-gate"]["state"] == "open");
  CHECK(gates["validation-gate"]["value"]["decided"] == true);
  CHECK(gates["validation-gate"].contains("timeout_at_ms"));
  auto tr2 = trace_json(app, node_port, "o2");
  std::map<std::string, json> gates2;
  for (auto& g : tr2["gates"])
    gates2[g["service"].get<std::string>()] = g;
  REQUIRE(gates2.count("payment-gate"));
  CHECK(gates2["payment-gate"]["state"] == "open");
  CHECK(gates2["payment-gate"]["value"]["paid"] == false);
  CHECK(gates2["payment-gate"]["value"]["payments"].empty());
  CHECK(gates2["payment-gate"]["value"]["order"]["state"] ==
        std::string{orders::validated});
  CHECK(node.stop(SIGTERM, 30s) == 0);
}
