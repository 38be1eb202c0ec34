#include "weft/services/test_driver.hpp"

#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>

#include "weft/services/stateless.hpp"

using str = weft::string_serde;
using i64 = weft::int64_serde;
using weft::partition_id;

namespace {

/// Writes "<partition>:<value>" for every record, to see where it ran.
struct where_am_i : weft::stateless<str, str> {
  weft::output<str, str> out = to<str, str>("seen");
  where_am_i() : stateless("where", "in") {}
  void process(const std::string& k, const std::string& v, weft::context& ctx) override {
    out.emit(ctx, k, std::to_string(ctx.partition().value()) + ":" + v);
  }
};

/// Reports table updates: "<old or ->=><new or ->".
struct table_watcher : weft::service_base {
  table_watcher() : service_base("watch") {
    add_table("prices", "prices-store");
    add_global_table("rates", "rates-store");
    out_ = add_output("changes", weft::output_kind::external);
  }
  void on_record(const weft::record_view&, weft::context&) override {}
  void on_table_update(const weft::record_view& r, std::optional<std::string_view> old,
                       weft::context& ctx) override {
    std::string s = old ? std::string{*old} : "-";
    s += "=>";
    s += r.value ? std::string{*r.value} : "-";
    ctx.emit_bytes(out_, std::string{*r.key}, s);
  }
  size_t out_ = 0;
};

/// Counts punctuations and writes the time each one saw.
struct ticker : weft::service_base {
  explicit ticker(weft::timestamp_ms every) : service_base("ticker") {
    add_input("ticks");
    set_punctuate_interval(every);
    out_ = add_output("punctuations", weft::output_kind::external);
  }
  void on_record(const weft::record_view&, weft::context&) override {}
  void on_punctuate(weft::context& ctx) override {
    ctx.emit_bytes(out_, std::string{"p"},
                   std::to_string(ctx.stream_time()) + "/" +
                       std::to_string(ctx.wall_time()));
  }
  size_t out_ = 0;
};

/// Emits, then fails on the value "boom".
struct fragile : weft::stateless<str, str> {
  weft::output<str, str> out = to<str, str>("out");
  fragile() : stateless("fragile", "in") {}
  void process(const std::string& k, const std::string& v, weft::context& ctx) override {
    out.emit(ctx, k, v);
    if (v == "boom") throw std::runtime_error("cannot handle boom");
  }
};

} // namespace

TEST_CASE("the test driver runs each keyed record on the partition Kafka would pick",
          "[operators]") {
  weft::test_driver d{[] { return std::make_unique<where_am_i>(); }, 4};
  for (std::string key : {"alpha", "beta", "gamma", "delta", "epsilon", "zeta"})
    d.pipe<str, str>("in", key, "x", 1);
  auto out = d.read_output<str, str>("seen");
  REQUIRE(out.size() == 6);
  for (auto& r : out)
    CHECK(r.value == std::to_string(weft::partition_for(r.key, 4)) + ":x");
  CHECK(d.read_output("seen").empty()); // read_output takes the records out
}

TEST_CASE("the test driver resolves output partitions by key and timestamps from the "
          "record",
          "[operators]") {
  weft::test_driver d{[] { return std::make_unique<where_am_i>(); }, 3};
  d.pipe<str, str>("in", "k", "v", 4242);
  auto out = d.read_output("seen");
  REQUIRE(out.size() == 1);
  CHECK(out[0].topic == "seen");
  CHECK(out[0].partition == weft::partition_for("k", 3));
  CHECK(out[0].timestamp == 4242);
}

TEST_CASE("a table record upserts or deletes the store before on_table_update sees the "
          "old value",
          "[operators]") {
  weft::test_driver d{[] { return std::make_unique<table_watcher>(); }};
  d.pipe("prices", std::string{"apple"}, std::string{"3"}, 10);
  d.pipe("prices", std::string{"apple"}, std::string{"4"}, 11);
  CHECK(d.kv("prices-store").get("apple").value() == std::optional<std::string>{"4"});
  d.pipe("prices", std::string{"apple"}, std::nullopt, 12); // tombstone
  CHECK_FALSE(d.kv("prices-store").get("apple").value().has_value());
  d.pipe("prices", std::nullopt, std::string{"5"}, 13); // no key: ignored
  auto out = d.read_output<str, str>("changes");
  REQUIRE(out.size() == 3);
  CHECK(out[0].value == "-=>3");
  CHECK(out[1].value == "3=>4");
  CHECK(out[2].value == "4=>-");
}

TEST_CASE("a global table record updates the shared store and triggers nothing",
          "[operators]") {
  weft::test_driver d{[] { return std::make_unique<table_watcher>(); }, 3};
  d.pipe("rates", std::string{"eur"}, std::string{"1.1"}, 1);
  CHECK(d.global("rates-store").get("eur").value() == std::optional<std::string>{"1.1"});
  d.pipe("rates", std::string{"eur"}, std::nullopt, 2);
  CHECK_FALSE(d.global("rates-store").get("eur").value().has_value());
  CHECK(d.output_topics().empty());
}

TEST_CASE("stream time punctuates once each time it enters a later interval",
          "[operators]") {
  weft::test_driver d{[] { return std::make_unique<ticker>(100); }};
  CHECK(d.stream_time() == -1);
  d.pipe("ticks", std::string{"a"}, std::string{"x"}, 50);  // sets the start: interval 0
  d.pipe("ticks", std::string{"a"}, std::string{"x"}, 99);  // still interval 0
  d.pipe("ticks", std::string{"a"}, std::string{"x"}, 120); // interval 1: punctuate
  d.pipe("ticks", std::string{"a"}, std::string{"x"}, 110); // out of order: no change
  d.pipe("ticks", std::string{"a"}, std::string{"x"}, 450); // interval 4: once
  CHECK(d.stream_time() == 450);
  auto out = d.read_output<str, str>("punctuations");
  REQUIRE(out.size() == 2);
  CHECK(out[0].value == "120/0");
  CHECK(out[0].timestamp == 120);
  CHECK(out[1].value == "450/0");
}

TEST_CASE("advancing the wall clock punctuates every task when an interval is due",
          "[operators]") {
  weft::test_driver d{[] { return std::make_unique<ticker>(1000); }, 2, "app", 500};
  d.advance_wall_clock(400); // 900: not due
  CHECK(d.output_size("punctuations") == 0);
  d.advance_wall_clock(100); // 1000: both tasks
  CHECK(d.output_size("punctuations") == 2);
  d.advance_wall_clock(2500); // 3500: due once, not three times
  auto out = d.read_output<str, str>("punctuations");
  REQUIRE(out.size() == 4);
  CHECK(out[3].value == "-1/3500");
  CHECK(out[3].timestamp == 3500);
  d.advance_wall_clock(499); // 3999: next is 4000
  CHECK(d.output_size("punctuations") == 0);
  CHECK_THROWS_AS(d.advance_wall_clock(-1), weft::weft_error);
}

TEST_CASE("a record the service cannot handle makes pipe throw and discards its outputs",
          "[operators]") {
  weft::test_driver d{[] { return std::make_unique<fragile>(); }};
  d.pipe<str, str>("in", "k", "fine", 1);
  try {
    d.pipe<str, str>("in", "k", "boom", 2);
    FAIL("pipe did not throw");
  } catch (const weft::weft_error& e) {
    CHECK(e.error().code() == weft::errc::bad_record);
    CHECK_THAT(e.error().message(), Catch::Contains("fragile on in/0@1") &&
                                        Catch::Contains("cannot handle boom"));
  }
  // A value that is not UTF-8: the stateless base's decoding failure.
  try {
    d.pipe("in", std::string{"k"}, std::string{"\xff"}, 3);
    FAIL("pipe did not throw");
  } catch (const weft::weft_error& e) {
    CHECK(e.error().code() == weft::errc::bad_record);
    CHECK_THAT(e.error().message(), Catch::Contains("value: string"));
  }
  auto out = d.read_output<str, str>("out");
  REQUIRE(out.size() == 1);
  CHECK(out[0].value == "fine");
}

TEST_CASE("piping into a topic the service does not read is an error", "[operators]") {
  weft::test_driver d{[] { return std::make_unique<fragile>(); }};
  try {
    d.pipe<str, str>("elsewhere", "k", "v", 1);
    FAIL("pipe did not throw");
  } catch (const weft::weft_error& e) {
    CHECK(e.error().code() == weft::errc::not_found);
  }
  CHECK_THROWS_AS(d.kv("no-such-store"), weft::weft_error);
  CHECK_THROWS_AS(d.service(partition_id{1}), weft::weft_error);
}

TEST_CASE("repartition outputs and inputs use the application's internal topic name",
          "[operators]") {
  auto rekey = weft::rekey<str, str, str>("by-value", "in", "by-v",
                                          [](auto&, auto& v) { return v; });
  weft::test_driver d{rekey, 2, "shop"};
  d.pipe<str, str>("in", "k1", "red", 5);
  CHECK(d.output_topics() == std::vector<std::string>{"shop-by-v-repartition"});
  auto out = d.read_output("shop-by-v-repartition");
  REQUIRE(out.size() == 1);
  CHECK(out[0].key == std::optional<std::string>{"red"});
  CHECK(out[0].partition == weft::partition_for("red", 2));

  auto reader = weft::filter<str, str>("reader", weft::repartitioned("by-v"), "out",
                                       [](auto&, auto&) { return true; });
  weft::test_driver d2{reader, 2, "shop"};
  d2.pipe_records(out);
  CHECK(d2.read_output<str, str>("out").size() == 1);
}

TEST_CASE("headers of a piped record reach the service", "[operators]") {
  struct header_echo : weft::stateless<str, str> {
    weft::output<str, str> out = to<str, str>("out");
    header_echo() : stateless("echo", "in") {}
    void process(const std::string& k, const std::string&, weft::context& ctx) override {
      auto h = ctx.current().header_value("trace");
      out.emit(ctx, k, h ? std::string{*h} : "none");
    }
  };
  weft::test_driver d{[] { return std::make_unique<header_echo>(); }};
  d.pipe<str, str>("in", "k", "v", 1, {{"trace", "abc"}});
  d.pipe<str, str>("in", "k", "v", 2);
  auto out = d.read_output<str, str>("out");
  REQUIRE(out.size() == 2);
  CHECK(out[0].value == "abc");
  CHECK(out[1].value == "none");
}

TEST_CASE("the test driver rejects a partition count below one and duplicate stores",
          "[operators]") {
  CHECK_THROWS_AS(weft::test_driver({[] { return std::make_unique<fragile>(); }}, 0),
                  weft::weft_error);
  struct twice : weft::service_base {
    twice() : service_base("twice") {
      add_input("in");
      add_store({"s", weft::store_decl::kind::kv});
      add_store({"s", weft::store_decl::kind::window, 10, 10});
    }
    void on_record(const weft::record_view&, weft::context&) override {}
  };
  weft::service_factory dup = [] { return std::make_unique<twice>(); };
  CHECK_THROWS_AS(weft::test_driver{dup}, weft::weft_error);
}
