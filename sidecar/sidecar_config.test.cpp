#include "sidecar_config.hpp"

#include <catch2/catch.hpp>

using sidecar::from_map;

TEST_CASE("sidecar keys: tables, topics and subscriptions are read with their defaults") {
  auto c = from_map({{"table.customers.topic", "customers"},
                     {"table.products.v1.topic", "products.v1"},
                     {"table.products.v1.global", "true"},
                     {"topic.loyalty.writable", "true"},
                     {"topic.loyalty.value.serde", "string"},
                     {"subscription.shipped.topic", "orders"},
                     {"subscription.shipped.url", "http://127.0.0.1:8090/events"},
                     {"subscription.feed.topic", "orders"},
                     {"subscription.feed.mode", "pull"},
                     {"sidecar.http.port", "0"}});
  REQUIRE(c);
  CHECK(c->tables.at("customers").topic == "customers");
  CHECK_FALSE(c->tables.at("customers").global);
  // Names may hold dots: the known field at the end decides.
  CHECK(c->tables.at("products.v1").topic == "products.v1");
  CHECK(c->tables.at("products.v1").global);
  CHECK(c->topic("loyalty").writable);
  CHECK(c->topic("loyalty").value == sidecar::serde_kind::string);
  CHECK(c->topic("customers").key == sidecar::serde_kind::string);
  CHECK(c->topic("customers").value == sidecar::serde_kind::json);
  auto& s = c->subscriptions.at("shipped");
  CHECK(s.mode == sidecar::delivery_mode::push);
  CHECK(s.batch_max == 1);
  CHECK(s.max_attempts == 10);
  CHECK(c->subscriptions.at("feed").mode == sidecar::delivery_mode::pull);
  CHECK(c->http.port == 0);
}

TEST_CASE(
    "a push subscription parks with its own bad.record.policy=park, or with weft's") {
  auto c = from_map({{"subscription.own.topic", "orders"},
                     {"subscription.own.url", "http://127.0.0.1:8090/a"},
                     {"subscription.own.bad.record.policy", "park"},
                     {"subscription.inherits.topic", "orders"},
                     {"subscription.inherits.url", "http://127.0.0.1:8090/b"},
                     {"subscription.fails.topic", "orders"},
                     {"subscription.fails.url", "http://127.0.0.1:8090/c"},
                     {"subscription.fails.bad.record.policy", "fail"}});
  REQUIRE(c);
  const char* argv[] = {"weft-sidecar", "--application.id=app",
                        "--bad.record.policy=park"};
  auto cfg = weft::config::load(3, argv);
  REQUIRE(cfg);
  REQUIRE(sidecar::apply_defaults(*c, *cfg));
  CHECK(c->subscriptions.at("own").policy == sidecar::record_policy::park);
  CHECK(c->subscriptions.at("inherits").policy == sidecar::record_policy::park);
  CHECK(c->subscriptions.at("fails").policy == sidecar::record_policy::fail);
  // A skipped head record goes to the subscription's dead-letter topic.
  CHECK(c->subscriptions.at("inherits").dead_letter_topic == "app-inherits-dlq");
}

TEST_CASE("bad sidecar keys fail naming the key and the fix") {
  auto err = [](std::map<std::string, std::string> kv) {
    auto c = from_map(kv);
    REQUIRE_FALSE(c);
    return c.error().message();
  };
  CHECK_THAT(err({{"table.customers.topik", "customers"}}),
             Catch::Contains("table.customers.topik") && Catch::Contains("table.<name>.topic"));
  CHECK_THAT(err({{"table.customers.global", "true"}}),
             Catch::Contains("table.customers.topic") && Catch::Contains("required"));
  CHECK_THAT(err({{"topic.t.value.serde", "avro"}}),
             Catch::Contains("topic.t.value.serde") && Catch::Contains("json, string or bytes"));
  CHECK_THAT(err({{"subscription.s.topic", "t"}}),
             Catch::Contains("subscription.s.url") && Catch::Contains("mode=push"));
  CHECK_THAT(err({{"subscription.s.topic", "t"}, {"subscription.s.url", "ftp://x"}}),
             Catch::Contains("subscription.s.url") && Catch::Contains("http://"));
  CHECK_THAT(err({{"subscription.s.topic", "t"},
                  {"subscription.s.mode", "pull"},
                  {"subscription.s.url", "http://127.0.0.1:1/x"}}),
             Catch::Contains("subscription.s.url"));
  CHECK_THAT(err({{"subscription.s.topic", "t"},
                  {"subscription.s.url", "http://127.0.0.1:1/x"},
                  {"subscription.s.bad.record.policy", "hold"}}),
             Catch::Contains("subscription.s.bad.record.policy") &&
                 Catch::Contains("fail, skip, dead_letter or park"));
  CHECK_THAT(err({{"sidecar.http.port", "70000"}}),
             Catch::Contains("sidecar.http.port") && Catch::Contains("0 to 65535"));
  CHECK_THAT(err({{"sidecar.htp.port", "1"}}), Catch::Contains("sidecar.htp.port"));
  CHECK_THAT(err({{"table.a b.topic", "t"}}), Catch::Contains("letters, digits"));
}

TEST_CASE("the command line and the --config file split into the sidecar's keys and weft's") {
  const std::string path = "sidecar-config-test.properties";
  {
    FILE* f = std::fopen(path.c_str(), "w");
    REQUIRE(f);
    std::fputs("application.id=from-file\n"
               "table.customers.topic=customers\n"
               "sidecar.http.port=7001\n",
               f);
    std::fclose(f);
  }
  const char* argv[] = {"weft-sidecar", "--config", path.c_str(), "--sidecar.http.port=7002",
                        "--log.level=warn"};
  auto p = sidecar::parse(5, argv);
  std::remove(path.c_str());
  REQUIRE(p);
  CHECK(p->sidecar.http.port == 7002); // the command line over the file
  CHECK(p->sidecar.tables.count("customers") == 1);
  REQUIRE(p->weft_args.size() == 3);
  CHECK(p->weft_args[1] == "--application.id=from-file");
  CHECK(p->weft_args[2] == "--log.level=warn");
}
