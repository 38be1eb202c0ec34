#include "weft/config.hpp"

#include <catch2/catch.hpp>

#include "weft/kafka/client_config.hpp"
#include "weft/version.hpp"

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <unistd.h>

using weft::config;
using weft::errc;

namespace {

weft::result<config> load(std::vector<const char*> args) {
  args.insert(args.begin(), "prog");
  return config::load(static_cast<int>(args.size()), args.data());
}

} // namespace

TEST_CASE("a config has documented defaults and needs only application.id") {
  auto c = config::from_map({{"application.id", "app"}});
  REQUIRE(c.ok());
  CHECK(c->get_string("application.id") == "app");
  CHECK(c->get_int("commit.interval.ms") == 100);
  CHECK(c->get_string("processing.guarantee") == "at_least_once");
  CHECK(c->get_string("bootstrap.servers") == "127.0.0.1:9092");
}

TEST_CASE("a missing application.id fails naming the key and how to set it") {
  auto c = load({});
  REQUIRE_FALSE(c.ok());
  CHECK(c.error().code() == errc::invalid_config);
  CHECK_THAT(c.error().message(), Catch::Contains("'application.id' is required") &&
                                      Catch::Contains("WEFT_APPLICATION_ID"));
}

TEST_CASE("an unknown key fails and suggests the closest declared key") {
  auto c = load({"--application.id=a", "--comit.interval.ms=5"});
  REQUIRE_FALSE(c.ok());
  CHECK_THAT(c.error().message(),
             Catch::Contains("unknown config key 'comit.interval.ms'") &&
                 Catch::Contains("did you mean 'commit.interval.ms'"));
}

TEST_CASE("a malformed integer fails naming the key and an example value") {
  auto c = load({"--application.id=a", "--commit.interval.ms", "soon"});
  REQUIRE_FALSE(c.ok());
  CHECK_THAT(c.error().message(), Catch::Contains("'commit.interval.ms'") &&
                                      Catch::Contains("'soon' is not an integer") &&
                                      Catch::Contains("commit.interval.ms=100"));
  auto range = load({"--application.id=a", "--num.stream.threads=0"});
  REQUIRE_FALSE(range.ok());
  CHECK_THAT(range.error().message(), Catch::Contains("out of range"));
}

TEST_CASE("a choice key rejects values outside its list and names the allowed ones") {
  auto c = load({"--application.id=a", "--bad.record.policy=ignore"});
  REQUIRE_FALSE(c.ok());
  CHECK_THAT(c.error().message(),
             Catch::Contains("use one of: fail, skip, dead_letter, park"));
}

TEST_CASE("trace.headers is off by default and takes only a boolean, naming the key") {
  auto c = load({"--application.id=a"});
  REQUIRE(c.ok());
  CHECK_FALSE(c->get_bool("trace.headers"));
  auto on = load({"--application.id=a", "--trace.headers=true"});
  REQUIRE(on.ok());
  CHECK(on->get_bool("trace.headers"));
  auto bad = load({"--application.id=a", "--trace.headers=sometimes"});
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(bad.error().message(), Catch::Contains("'trace.headers'") &&
                                        Catch::Contains("'sometimes' is not a boolean"));
}

TEST_CASE("park's retry keys are checked at start-up, globally and per service, naming "
          "the key") {
  auto ok = load({"--application.id=a", "--bad.record.policy=park",
                  "--bad.record.retries=3", "--bad.record.retry.backoff.ms=50",
                  "--service.orders.bad.record.retry.backoff.max.ms=5000"});
  REQUIRE(ok.ok());
  CHECK(ok->get_int("bad.record.retries") == 3);
  CHECK(ok->service_value("orders", "bad.record.retry.backoff.max.ms") == "5000");
  CHECK(ok->service_value("other", "bad.record.retry.backoff.max.ms") == "60000");
  auto negative = load({"--application.id=a", "--bad.record.retries=-1"});
  REQUIRE_FALSE(negative.ok());
  CHECK_THAT(negative.error().message(),
             Catch::Contains("'bad.record.retries'") && Catch::Contains("out of range"));
  auto word =
      load({"--application.id=a", "--service.orders.bad.record.retry.backoff.ms=soon"});
  REQUIRE_FALSE(word.ok());
  CHECK_THAT(word.error().message(),
             Catch::Contains("'service.orders.bad.record.retry.backoff.ms'") &&
                 Catch::Contains("not an integer"));
  auto zero = load({"--application.id=a", "--bad.record.retry.backoff.max.ms=0"});
  REQUIRE_FALSE(zero.ok());
  CHECK_THAT(zero.error().message(),
             Catch::Contains("'bad.record.retry.backoff.max.ms'"));
}

TEST_CASE("the command line beats the environment, which beats the file") {
  auto path =
      std::string{"/tmp/weft-config-test-"} + std::to_string(::getpid()) + ".properties";
  {
    std::ofstream f{path};
    f << "# comment\napplication.id = from-file\ncommit.interval.ms: 250\n"
         "num.stream.threads=3\nkafka.linger.ms=7\n";
  }
  ::setenv("WEFT_COMMIT_INTERVAL_MS", "500", 1);
  ::setenv("WEFT_NUM_STREAM_THREADS", "4", 1);
  auto arg = "--config=" + path;
  auto c = load({arg.c_str(), "--num.stream.threads=5"});
  ::unsetenv("WEFT_COMMIT_INTERVAL_MS");
  ::unsetenv("WEFT_NUM_STREAM_THREADS");
  std::remove(path.c_str());
  REQUIRE(c.ok());
  CHECK(c->get_string("application.id") == "from-file");
  CHECK(c->get_int("commit.interval.ms") == 500);
  CHECK(c->get_int("num.stream.threads") == 5);
  CHECK(c->kafka_properties(weft::client_kind::producer).at("linger.ms") == "7");
}

TEST_CASE(
    "librdkafka properties pass through by prefix, the client's own prefix winning") {
  auto c = config::from_map({{"application.id", "a"},
                             {"kafka.linger.ms", "1"},
                             {"producer.linger.ms", "9"},
                             {"consumer.fetch.wait.max.ms", "10"}});
  REQUIRE(c.ok());
  auto p = c->kafka_properties(weft::client_kind::producer);
  CHECK(p.at("linger.ms") == "9");
  CHECK(p.count("fetch.wait.max.ms") == 0);
  // Producers partition keys as Java does, unless told otherwise.
  CHECK(p.at("partitioner") == "murmur2_random");
  auto own =
      config::from_map({{"application.id", "a"}, {"producer.partitioner", "fnv1a"}});
  REQUIRE(own.ok());
  CHECK(own->kafka_properties(weft::client_kind::producer).at("partitioner") == "fnv1a");
  auto k = c->kafka_properties(weft::client_kind::consumer);
  CHECK(k.at("linger.ms") == "1");
  CHECK(k.at("fetch.wait.max.ms") == "10");
  CHECK(k.at("bootstrap.servers") == "127.0.0.1:9092");
}

TEST_CASE("per-service overrides fall back to the node-wide value") {
  auto c = config::from_map({{"application.id", "a"},
                             {"bad.record.policy", "skip"},
                             {"service.enricher.bad.record.policy", "dead_letter"}});
  REQUIRE(c.ok());
  CHECK(c->service_value("enricher", "bad.record.policy") == "dead_letter");
  CHECK(c->service_value("other", "bad.record.policy") == "skip");
  CHECK(c->mentioned_services() == std::vector<std::string>{"enricher"});
  auto bad = config::from_map(
      {{"application.id", "a"}, {"service.enricher.bad.record.policy", "maybe"}});
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(bad.error().message(), Catch::Contains("bad.record.policy"));
}

TEST_CASE("the help text (--help) lists every key with its default") {
  auto c = load({"--help"});
  REQUIRE(c.ok());
  CHECK(c->help_requested());
  auto text = config::help_text("prog");
  for (auto& k : config::keys())
    CHECK_THAT(text, Catch::Contains("--" + k.name));
  CHECK_THAT(text, Catch::Contains("(default: 100)"));
}

TEST_CASE("a properties file line without a separator is reported with its line number") {
  auto path = std::string{"/tmp/weft-config-bad-"} + std::to_string(::getpid());
  {
    std::ofstream f{path};
    f << "application.id=a\njust-a-word\n";
  }
  auto r = config::read_properties(path);
  std::remove(path.c_str());
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.error().message(), Catch::Contains(":2: expected key=value"));
}

namespace {

/// A fresh temporary folder, removed with the object.
struct temp_dir {
  std::string path;
  temp_dir() {
    char tmpl[] = "/tmp/weft-config-test-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~temp_dir() { std::system(("rm -rf '" + path + "'").c_str()); }
};

/// Makes a self-signed CA certificate and key at `dir`/ca.pem and ca.key with
/// the openssl command line; REQUIREs success.
void make_ca(const std::string& dir) {
  auto cmd =
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
      "-subj /CN=test-ca -keyout '" +
      dir + "/ca.key' -out '" + dir + "/ca.pem' 2>/dev/null";
  REQUIRE(std::system(cmd.c_str()) == 0);
}

} // namespace

TEST_CASE("cluster.tls.enabled needs its three files, each readable, naming the key and "
          "the fix") {
  temp_dir d;
  make_ca(d.path);
  std::map<std::string, std::string> base{{"application.id", "a"},
                                          {"cluster.tls.enabled", "true"},
                                          {"cluster.tls.certificate", d.path + "/ca.pem"},
                                          {"cluster.tls.key", d.path + "/ca.key"},
                                          {"cluster.tls.ca", d.path + "/ca.pem"}};
  // The files' contents are the node's business (actors/weft/cluster/tls.cpp):
  // here they only need to be there.
  CHECK(config::from_map(base).ok());
  for (auto* key : {"cluster.tls.certificate", "cluster.tls.key", "cluster.tls.ca"}) {
    auto unset = base;
    unset.erase(key);
    auto c = config::from_map(unset);
    REQUIRE_FALSE(c.ok());
    CHECK(c.error().code() == errc::invalid_config);
    CHECK_THAT(c.error().message(),
               Catch::Contains(std::string{"'"} + key + "' must be set") &&
                   Catch::Contains("tools/weft-certs"));
    auto missing = base;
    missing[key] = d.path + "/nope.pem";
    c = config::from_map(missing);
    REQUIRE_FALSE(c.ok());
    CHECK_THAT(c.error().message(),
               Catch::Contains(key) &&
                   Catch::Contains("cannot read '" + d.path + "/nope.pem'") &&
                   Catch::Contains("No such file"));
  }
  // Off: the file keys are not looked at.
  auto off = base;
  off["cluster.tls.enabled"] = "false";
  off["cluster.tls.ca"] = "/nonexistent";
  CHECK(config::from_map(off).ok());
}

TEST_CASE("Kafka security properties (TLS, SASL) pass through to librdkafka") {
  temp_dir d;
  make_ca(d.path);
  auto c = config::from_map({{"application.id", "a"},
                             {"bootstrap.servers", "broker1:9093"},
                             {"kafka.security.protocol", "SASL_SSL"},
                             {"kafka.sasl.mechanism", "SCRAM-SHA-512"},
                             {"kafka.sasl.username", "weft-app"},
                             {"kafka.sasl.password", "s3cret"},
                             {"kafka.ssl.ca.location", d.path + "/ca.pem"},
                             {"kafka.ssl.endpoint.identification.algorithm", "https"},
                             {"producer.ssl.key.password", "only-the-producer"}});
  REQUIRE(c.ok());
  for (auto kind : {weft::client_kind::consumer, weft::client_kind::producer,
                    weft::client_kind::admin}) {
    auto props = c->kafka_properties(kind);
    CHECK(props.at("security.protocol") == "SASL_SSL");
    CHECK(props.at("sasl.mechanism") == "SCRAM-SHA-512");
    CHECK(props.at("sasl.username") == "weft-app");
    CHECK(props.at("ssl.ca.location") == d.path + "/ca.pem");
    CHECK(props.count("ssl.key.password") == (kind == weft::client_kind::producer));
    // librdkafka takes every one (this build has SSL and SASL) and keeps it.
    auto conf = weft::kafka::make_conf(props);
    REQUIRE(conf.ok());
    for (auto* key : {"security.protocol", "sasl.mechanism", "sasl.username",
                      "ssl.ca.location", "ssl.endpoint.identification.algorithm"}) {
      char value[512];
      size_t size = sizeof value;
      REQUIRE(rd_kafka_conf_get(conf->get(), key, value, &size) == RD_KAFKA_CONF_OK);
      // (enums come back lower-case: "sasl_ssl")
      std::string got = value, want = props.at(key);
      for (auto* t : {&got, &want})
        for (auto& ch : *t)
          ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      CHECK(got == want);
    }
    // A client made from it loads the CA file (no broker needed to get there).
    if (kind == weft::client_kind::producer) {
      char err[512];
      auto* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf->release(), err, sizeof err);
      INFO(err);
      REQUIRE(rk != nullptr);
      rd_kafka_destroy(rk);
    }
  }
  // librdkafka's own checks name the property at start-up.
  auto bad = config::from_map(
      {{"application.id", "a"}, {"kafka.security.protocol", "SASL_TLS"}});
  REQUIRE(bad.ok());
  auto conf = weft::kafka::make_conf(bad->kafka_properties(weft::client_kind::consumer));
  REQUIRE_FALSE(conf.ok());
  CHECK_THAT(conf.error().message(), Catch::Contains("'security.protocol'") &&
                                         Catch::Contains("kafka.security.protocol"));
}

TEST_CASE(
    "a --describe option asks for the topology in a format, without the required keys") {
  auto plain = load({"--describe"});
  REQUIRE(plain.ok());
  CHECK(plain->describe_format() == "text");
  auto dot = load({"--describe=dot"});
  REQUIRE(dot.ok());
  CHECK(dot->describe_format() == "dot");
  CHECK(load({"--application.id=a"})->describe_format().empty());
  auto bad = load({"--describe=svg", "--application.id=a"});
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(bad.error().message(), Catch::Contains("text, dot, mermaid or json"));
  CHECK_THAT(config::help_text("prog"), Catch::Contains("--describe"));
}

namespace {

/// A program with keys of its own, one of which takes weft's http.port
/// (weft's is node.http.port there), and a default of its own for weft's
/// processing.guarantee.
weft::app_schema shop_schema() {
  using kind = weft::config_key::kind;
  weft::app_schema app;
  app.keys.push_back(
      {"http.port", kind::integer, "7070", "The shop's REST port.", false, 0, 65535});
  app.keys.push_back({"shop.name", kind::string, "", "The shop's name.", true});
  app.keys.push_back({"shop.mode",
                      kind::choice,
                      "retail",
                      "How the shop sells.",
                      false,
                      0,
                      0,
                      {"retail", "wholesale"}});
  app.renamed["http.port"] = "node.http.port";
  app.defaults["processing.guarantee"] = "exactly_once";
  return app;
}

weft::result<config> load_shop(std::vector<const char*> args) {
  args.insert(args.begin(), "shop");
  return config::load(static_cast<int>(args.size()), args.data(), shop_schema());
}

} // namespace

TEST_CASE("application keys come from the file, the environment and the command line "
          "in weft's precedence, and a renamed weft key answers to its new name") {
  auto path = std::string{"/tmp/weft-app-config-test-"} + std::to_string(::getpid()) +
              ".properties";
  {
    std::ofstream f{path};
    f << "application.id=shop\nshop.name=from-file\nhttp.port=7000\nshop.mode="
         "wholesale\n";
  }
  ::setenv("WEFT_SHOP_NAME", "from-env", 1);
  ::setenv("WEFT_NODE_HTTP_PORT", "8081", 1);
  auto arg = "--config=" + path;
  auto c = load_shop({arg.c_str(), "--http.port=7071"});
  ::unsetenv("WEFT_SHOP_NAME");
  ::unsetenv("WEFT_NODE_HTTP_PORT");
  std::remove(path.c_str());
  INFO((c ? "" : c.error().message()));
  REQUIRE(c.ok());
  CHECK(c->app_string("shop.name") == "from-env");  // env beats the file
  CHECK(c->app_int("http.port") == 7071);           // the command line beats both
  CHECK(c->app_string("shop.mode") == "wholesale"); // from the file
  CHECK(c->get_int("http.port") == 8081);           // weft's, as node.http.port
  CHECK(c->get_string("processing.guarantee") == "exactly_once"); // the program's default
  CHECK_FALSE(c->was_set("processing.guarantee"));
  CHECK(c->was_set("http.port"));
  CHECK(c->was_set("application.id"));
  CHECK_FALSE(c->was_set("commit.interval.ms"));
  // A source still beats the program's default for a weft key.
  auto eos = load_shop(
      {"--application.id=a", "--shop.name=x", "--processing.guarantee=at_least_once"});
  REQUIRE(eos.ok());
  CHECK(eos->get_string("processing.guarantee") == "at_least_once");
}

TEST_CASE("bad application values fail naming the key as the program names it") {
  SECTION("a malformed application integer") {
    auto c = load_shop({"--application.id=a", "--shop.name=x", "--http.port=web"});
    REQUIRE_FALSE(c.ok());
    CHECK(c.error().code() == errc::invalid_config);
    CHECK(c.error().message().find("config key 'http.port'") != std::string::npos);
    CHECK(c.error().message().find("not an integer") != std::string::npos);
  }
  SECTION("a renamed weft key out of range is named by its new name") {
    auto c = load_shop({"--application.id=a", "--shop.name=x", "--node.http.port=70000"});
    REQUIRE_FALSE(c.ok());
    CHECK(c.error().message().find("config key 'node.http.port'") != std::string::npos);
  }
  SECTION("a missing required application key") {
    auto c = load_shop({"--application.id=a"});
    REQUIRE_FALSE(c.ok());
    CHECK(c.error().message().find("config key 'shop.name' is required") !=
          std::string::npos);
    CHECK(c.error().message().find("WEFT_SHOP_NAME") != std::string::npos);
  }
  SECTION("a choice outside its list") {
    auto c = load_shop({"--application.id=a", "--shop.name=x", "--shop.mode=barter"});
    REQUIRE_FALSE(c.ok());
    CHECK(c.error().message().find("use one of: retail, wholesale") != std::string::npos);
  }
  SECTION("a typo of an application key is suggested") {
    auto c = load_shop({"--application.id=a", "--shop.nmae=x"});
    REQUIRE_FALSE(c.ok());
    CHECK(c.error().message().find("did you mean 'shop.name'") != std::string::npos);
  }
  SECTION("--help skips the required keys and lists both, under the program's names") {
    auto c = load_shop({"--help"});
    REQUIRE(c.ok());
    CHECK(c->help_requested());
    auto help = config::help_text("shop", shop_schema());
    CHECK(help.find("--node.http.port  (default: -1)") != std::string::npos);
    CHECK(help.find("--processing.guarantee  (default: exactly_once)") !=
          std::string::npos);
    CHECK(help.find("Keys of shop") != std::string::npos);
    CHECK(help.find("--shop.name  (required)") != std::string::npos);
    CHECK(help.find("--http.port  (default: 7070)") != std::string::npos);
  }
}

TEST_CASE("an application schema that collides with weft's keys fails at start-up, "
          "naming the key and the fix") {
  using kind = weft::config_key::kind;
  SECTION("a key weft has, not renamed away") {
    weft::app_schema app;
    app.keys.push_back({"commit.interval.ms", kind::integer, "5", "mine"});
    auto c = config::from_map({{"application.id", "a"}}, app);
    REQUIRE_FALSE(c.ok());
    CHECK(c.error().message().find("'commit.interval.ms' is declared twice") !=
          std::string::npos);
    CHECK(c.error().message().find("app_schema::renamed") != std::string::npos);
  }
  SECTION("a key under a prefix weft reserves") {
    weft::app_schema app;
    app.keys.push_back({"kafka.mine", kind::string, "", "mine"});
    auto c = config::from_map({{"application.id", "a"}}, app);
    REQUIRE_FALSE(c.ok());
    CHECK(c.error().message().find("prefix weft reserves") != std::string::npos);
  }
  SECTION("a rename or a default for a key weft does not have") {
    weft::app_schema a;
    a.renamed["no.such.key"] = "x";
    CHECK_FALSE(config::from_map({{"application.id", "a"}}, a).ok());
    weft::app_schema b;
    b.defaults["no.such.key"] = "x";
    CHECK_FALSE(config::from_map({{"application.id", "a"}}, b).ok());
  }
  SECTION("with_app validates like a source") {
    auto c =
        config::from_map({{"application.id", "a"}, {"shop.name", "x"}}, shop_schema());
    REQUIRE(c.ok());
    CHECK(c->with_app("http.port", "8000")->app_int("http.port") == 8000);
    CHECK_FALSE(c->with_app("http.port", "-3").ok());
    CHECK_FALSE(c->with_app("no.such", "1").ok());
  }
}

TEST_CASE("the version flag (--version) is asked without the required keys, and --help "
          "names the version") {
  auto c = load({"--version"});
  REQUIRE(c.ok());
  CHECK(c->version_requested());
  CHECK_FALSE(c->help_requested());
  CHECK(std::string{weft::version} == std::to_string(weft::version_major) + "." +
                                          std::to_string(weft::version_minor) + "." +
                                          std::to_string(weft::version_patch));
  CHECK(config::help_text("prog").find(std::string{"built on weft "} + weft::version) !=
        std::string::npos);
}
