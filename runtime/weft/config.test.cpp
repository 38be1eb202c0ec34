#include "weft/config.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
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
  CHECK_THAT(c.error().message(), Catch::Contains("use one of: fail, skip, dead_letter"));
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

TEST_CASE("--help lists every key with its default") {
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
