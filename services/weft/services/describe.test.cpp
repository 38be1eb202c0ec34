#include "weft/services/describe.hpp"

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <set>

#include "weft/services/gate.hpp"
#include "weft/services/stateless.hpp"

using str = weft::string_serde;
using weft::describe_format;
using weft::service_pattern;
using weft::topic_kind;

namespace {

/// A gate over orders and payments, as in gate.hpp's example.
struct release : weft::gate<str> {
  part<str> ordered = when<str>("orders");
  part<str> paid = when<str>("payments");
  weft::output<str, str> ship = to<str, str>("shipments");
  release() : gate("release", 60000) {}
  void on_ready(const std::string&, const correlation&, weft::context&) override {}
};

/// A stream-aside service: reads notifications, acts outside Kafka.
struct mailer : weft::stateless<str, str> {
  mailer() : stateless("mailer", "notifications") {
    describe_as(service_pattern::stream_aside, "sends e-mails");
  }
  void process(const std::string&, const std::string&, weft::context&) override {}
};

/// Declares its parts by hand: a table, a global table and a store.
struct by_hand : weft::service_base {
  by_hand() : service_base("by-hand") {
    add_internal_input("orders-by-customer");
    add_table("customers-table", "customer-rows");
    add_global_table("products", "product-rows");
    add_store({"totals", weft::store_decl::kind::window, 3600000, 60000});
    add_output("customer-totals", weft::output_kind::external);
  }
  void on_record(const weft::record_view&, weft::context&) override {}
};

std::vector<weft::service_factory> factories() {
  return {weft::rekey<str, str, str>("by-customer", "orders", "orders-by-customer",
                                     [](auto&, auto& v) { return v; }),
          [] { return std::make_unique<release>(); },
          [] { return std::make_unique<mailer>(); },
          [] { return std::make_unique<by_hand>(); }};
}

weft::config cfg_with(std::map<std::string, std::string> extra = {}) {
  extra["application.id"] = "shop";
  auto c = weft::config::from_map(extra);
  REQUIRE(c.ok());
  return *c;
}

weft::topology_description described(const weft::config& c,
                                     const weft::describe_extras& extras = {}) {
  auto d = weft::describe_topology(factories(), c, extras);
  REQUIRE(d.ok());
  return *d;
}

topic_kind kind_of(const weft::topology_description& d, const std::string& t) {
  auto* x = d.find_topic(t);
  REQUIRE(x);
  return x->kind;
}

} // namespace

TEST_CASE("describe names each service's pattern from its declarations") {
  auto d = described(cfg_with());
  REQUIRE(d.services.size() == 4);
  CHECK(d.services[0].name == "by-customer");
  CHECK(d.services[0].pattern == service_pattern::stateless);
  CHECK(d.services[0].detail == "re-key");
  CHECK(d.services[1].pattern == service_pattern::gate);
  CHECK(d.services[2].pattern == service_pattern::stream_aside);
  CHECK(d.services[2].detail == "sends e-mails");
  // Nothing declared: stores make it stateful (a global table alone would
  // make an enricher).
  CHECK(d.services[3].pattern == service_pattern::stateful);
}

TEST_CASE("describe sorts topics into facts, intermediate and weft's internal kinds") {
  auto d = described(cfg_with({{"bad.record.policy", "dead_letter"},
                               {"service.mailer.bad.record.policy", "skip"}}),
                     {{"notifications"}, {}});
  CHECK(kind_of(d, "orders") == topic_kind::fact);
  CHECK(kind_of(d, "payments") == topic_kind::fact);
  CHECK(kind_of(d, "shipments") == topic_kind::fact);
  CHECK(kind_of(d, "notifications") == topic_kind::intermediate);
  CHECK(kind_of(d, "shop-orders-by-customer-repartition") == topic_kind::repartition);
  CHECK(kind_of(d, "shop-totals-changelog") == topic_kind::changelog);
  CHECK(kind_of(d, "shop-release-dlq") == topic_kind::dead_letter);
  CHECK(d.find_topic("shop-mailer-dlq") == nullptr); // skip: no dead-letter topic
  // Topics come grouped by kind, facts first.
  for (size_t i = 1; i < d.topics.size(); ++i)
    CHECK(static_cast<int>(d.topics[i - 1].kind) <= static_cast<int>(d.topics[i].kind));
}

TEST_CASE("describe lists every store with its service and changelog, global tables "
          "have none") {
  auto d = described(cfg_with());
  std::map<std::string, weft::topology_description::store> by_name;
  for (auto& s : d.stores)
    by_name[s.name] = s;
  REQUIRE(by_name.count("totals"));
  CHECK(by_name["totals"].type == "window");
  CHECK(by_name["totals"].service == "by-hand");
  CHECK(by_name["totals"].changelog == "shop-totals-changelog");
  CHECK(by_name["customer-rows"].type == "kv");
  CHECK(by_name["product-rows"].type == "global");
  CHECK(by_name["product-rows"].changelog.empty());
  CHECK(by_name["product-rows"].topic == "products");
  REQUIRE(by_name.count("by-hand-stream-time"));
  CHECK(by_name["by-hand-stream-time"].internal);
}

TEST_CASE("describe draws the stores weft adds: a gate's timers and a parking service's "
          "parked store, with their changelogs and park's dead-letter topic") {
  auto d = described(cfg_with({{"service.mailer.bad.record.policy", "park"}}));
  std::map<std::string, weft::topology_description::store> by_name;
  for (auto& s : d.stores)
    by_name[s.name] = s;
  // The gate's deadlines are durable timers in "<name>-timers".
  REQUIRE(by_name.count("release-timers"));
  CHECK(by_name["release-timers"].service == "release");
  CHECK(kind_of(d, "shop-release-timers-changelog") == topic_kind::changelog);
  // park: the parked store in the (otherwise stateless) mailer's shard, and
  // the dead-letter topic a record too large to hold goes to.
  REQUIRE(by_name.count("mailer-parked"));
  CHECK(by_name["mailer-parked"].service == "mailer");
  CHECK(by_name["mailer-parked"].type == "kv");
  CHECK_FALSE(by_name["mailer-parked"].internal);
  CHECK(by_name["mailer-parked"].changelog == "shop-mailer-parked-changelog");
  CHECK(kind_of(d, "shop-mailer-parked-changelog") == topic_kind::changelog);
  CHECK(kind_of(d, "shop-mailer-dlq") == topic_kind::dead_letter);
  REQUIRE(d.services.size() == 4);
  CHECK(d.services[2].dead_letter_topic == "shop-mailer-dlq");
  CHECK(std::count(d.services[2].stores.begin(), d.services[2].stores.end(),
                   "mailer-parked") == 1);
  auto text = weft::render(d, describe_format::text);
  INFO(text);
  CHECK(text.find("  store    mailer-parked (kv) -> shop-mailer-parked-changelog\n"
                  "  bad records: park -> shop-mailer-dlq\n") != std::string::npos);
  // The node takes its dead-letter topic from the same function (topology.cpp).
  CHECK(
      weft::dead_letter_topic_of(cfg_with({{"service.mailer.bad.record.policy", "park"}}),
                                 "shop", "mailer") == "shop-mailer-dlq");
  CHECK(weft::dead_letter_topic_of(cfg_with(), "shop", "mailer").empty()); // fail
}

TEST_CASE("describe as text reads like Kafka Streams' describe(), service by service") {
  auto text = weft::render(described(cfg_with()), describe_format::text);
  INFO(text);
  CHECK(text.find("application shop: 4 services") == 0);
  CHECK(text.find("service release [gate]\n"
                  "  reads    orders (fact)\n"
                  "  reads    payments (fact)\n") != std::string::npos);
  CHECK(text.find("  writes   shop-orders-by-customer-repartition (repartition)") !=
        std::string::npos);
  CHECK(text.find("  table    customers-table (fact)") != std::string::npos);
  CHECK(text.find("  global   products (fact)") != std::string::npos);
  CHECK(text.find("  store    totals (window) -> shop-totals-changelog") !=
        std::string::npos);
  CHECK(text.find("  bad records: fail\n") != std::string::npos);
}

TEST_CASE("describe as dot draws facts, intermediate and internal topics in clusters "
          "of their own, with every edge") {
  weft::describe_extras extras{{"notifications"},
                               {{"api", "REST API", {"orders"}, {"totals"}}}};
  auto dot =
      weft::render(described(cfg_with({{"bad.record.policy", "dead_letter"}}), extras),
                   describe_format::dot);
  INFO(dot);
  CHECK(dot.rfind("digraph \"shop\" {", 0) == 0);
  for (auto* cluster : {"cluster_facts", "cluster_intermediate", "cluster_repartition",
                        "cluster_changelog", "cluster_dead_letter"})
    CHECK(dot.find(std::string{"subgraph "} + cluster + " {") != std::string::npos);
  // The facts cluster holds orders, not the repartition topic.
  auto facts = dot.substr(dot.find("subgraph cluster_facts"));
  facts = facts.substr(0, facts.find("  }\n"));
  CHECK(facts.find("\"topic:orders\"") != std::string::npos);
  CHECK(facts.find("repartition") == std::string::npos);
  CHECK(dot.find("\"topic:orders\" -> \"service:release\";") != std::string::npos);
  CHECK(dot.find("\"service:release\" -> \"topic:shipments\";") != std::string::npos);
  CHECK(dot.find("\"service:by-hand\" -> \"store:totals\" [style=dashed, "
                 "arrowhead=none];") != std::string::npos);
  CHECK(dot.find("\"store:totals\" -> \"topic:shop-totals-changelog\"") !=
        std::string::npos);
  CHECK(dot.find("\"topic:products\" -> \"store:product-rows\"") != std::string::npos);
  CHECK(dot.find("\"store:product-rows\" -> \"service:by-hand\"") != std::string::npos);
  CHECK(dot.find("\"service:release\" -> \"topic:shop-release-dlq\"") !=
        std::string::npos);
  CHECK(dot.find("\"client:api\" -> \"topic:orders\";") != std::string::npos);
  CHECK(dot.find("\"client:api\" -> \"store:totals\"") != std::string::npos);
  CHECK(dot.find("«gate»") != std::string::npos);
  // weft's stream-time stores stay out of the picture.
  CHECK(dot.find("stream-time") == std::string::npos);
  CHECK(dot.back() == '\n');
}

TEST_CASE("describe as mermaid is a flowchart with one subgraph per topic kind") {
  auto m = weft::render(described(cfg_with({{"bad.record.policy", "dead_letter"}})),
                        describe_format::mermaid);
  INFO(m);
  CHECK(m.rfind("flowchart LR\n", 0) == 0);
  CHECK(m.find("subgraph g0[\"facts: the shared narrative\"]") != std::string::npos);
  CHECK(m.find("[\"internal: dead letters\"]") != std::string::npos);
  CHECK(m.find("classDef gate") != std::string::npos);
  CHECK(m.find("stream-time") == std::string::npos);
}

TEST_CASE("describe as JSON carries services, topics, stores and edges for a map page") {
  auto j =
      nlohmann::json::parse(weft::render(described(cfg_with()), describe_format::json));
  CHECK(j["application"] == "shop");
  CHECK(j["services"].size() == 4);
  CHECK(j["services"][1]["pattern"] == "gate");
  std::set<std::string> kinds;
  for (auto& e : j["edges"])
    kinds.insert(e["kind"].get<std::string>());
  CHECK(kinds == std::set<std::string>{"reads", "writes", "table", "global", "lookup",
                                       "owns", "changelog"});
}

TEST_CASE("describe is deterministic: the same code gives the same picture") {
  auto c = cfg_with({{"bad.record.policy", "dead_letter"}});
  for (auto f : {describe_format::text, describe_format::dot, describe_format::mermaid,
                 describe_format::json})
    CHECK(weft::render(described(c), f) == weft::render(described(c), f));
}

TEST_CASE("describe formats are parsed by name and a wrong one is refused") {
  CHECK(*weft::parse_describe_format("dot") == describe_format::dot);
  auto bad = weft::parse_describe_format("svg");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message().find("text, dot, mermaid or json") != std::string::npos);
}

TEST_CASE("a service factory that throws is an error naming why, not a crash") {
  std::vector<weft::service_factory> f{
      []() -> std::unique_ptr<weft::service_base> { throw std::runtime_error{"boom"}; }};
  auto d = weft::describe_topology(f, cfg_with());
  REQUIRE_FALSE(d.ok());
  CHECK(d.error().message().find("boom") != std::string::npos);
}
