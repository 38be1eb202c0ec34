#include "weft/services/gate.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "weft/services/test_driver.hpp"

using str = weft::string_serde;

namespace {

using out_t = std::vector<weft::test_record<std::string, std::string>>;

/// "When an order and its payment both arrived, ship it" — or report what is
/// missing after 1000 ms.
struct release : weft::gate<str> {
  part<str> order = when<str>("orders");
  part<str> payment = when<str>("payments");
  weft::output<str, str> ship = to<str, str>("shipments");
  weft::output<str, str> expired = to<str, str>("expired");

  explicit release(weft::gate_clock clock) : gate("release", 1000, clock, 100) {}

  void on_ready(const std::string& id, const correlation& c,
                weft::context& ctx) override {
    ship.emit(ctx, id, *c.get(order) + "/" + *c.get(payment));
  }
  void on_timeout(const std::string& id, const correlation& c,
                  weft::context& ctx) override {
    expired.emit(ctx, id, c.has(order) ? "no payment" : "no order");
  }
};

weft::service_factory wall_gate() {
  return [] { return std::make_unique<release>(weft::gate_clock::wall); };
}

} // namespace

TEST_CASE("a gate emits once both order and payment arrived", "[operators]") {
  weft::test_driver d{wall_gate()};
  d.pipe<str, str>("orders", "o1", "book", 1);
  CHECK(d.output_size("shipments") == 0);
  d.pipe<str, str>("payments", "o1", "paid", 2);
  d.pipe<str, str>("payments", "o1", "paid again", 3); // a retry: ignored
  d.pipe<str, str>("orders", "o1", "book", 4);         // a duplicate: ignored
  CHECK(d.read_output<str, str>("shipments") == out_t{{"o1", "book/paid", 2}});
}

TEST_CASE("a gate correlates by key whatever order the events come in", "[operators]") {
  weft::test_driver d{wall_gate(), 3};
  d.pipe<str, str>("payments", "o1", "p1", 1);
  d.pipe<str, str>("payments", "o2", "p2", 2);
  d.pipe<str, str>("orders", "o2", "pen", 3);
  d.pipe<str, str>("orders", "o1", "ink", 4);
  auto out = d.read_output<str, str>("shipments");
  REQUIRE(out.size() == 2);
  CHECK(out[0] == weft::test_record<std::string, std::string>{"o2", "pen/p2", 3});
  CHECK(out[1] == weft::test_record<std::string, std::string>{"o1", "ink/p1", 4});
}

TEST_CASE("a gate times out an incomplete correlation when the wall clock passes its "
          "deadline",
          "[operators]") {
  weft::test_driver d{wall_gate()}; // wall time 0: deadline 1000
  d.pipe<str, str>("orders", "o1", "book", 1);
  d.advance_wall_clock(999);
  CHECK(d.output_size("expired") == 0);
  d.advance_wall_clock(1);
  CHECK(d.read_output<str, str>("expired") == out_t{{"o1", "no payment", 1000}});
  CHECK(d.kv("release-store").approximate_size() == 0);
  // A payment after the timeout starts over: it alone does not ship.
  d.pipe<str, str>("payments", "o1", "paid", 1001);
  CHECK(d.output_size("shipments") == 0);
  d.advance_wall_clock(1000);
  CHECK(d.read_output<str, str>("expired") == out_t{{"o1", "no order", 2000}});
}

TEST_CASE("a gate forgets a completed correlation at its deadline without a timeout",
          "[operators]") {
  weft::test_driver d{wall_gate()};
  d.pipe<str, str>("orders", "o1", "book", 1);
  d.pipe<str, str>("payments", "o1", "paid", 2);
  d.advance_wall_clock(1000);
  CHECK(d.output_size("expired") == 0);
  CHECK(d.kv("release-store").approximate_size() == 0);
  CHECK(d.kv("release-timers").approximate_size() == 0);
  // The key can correlate again, and ships again.
  d.pipe<str, str>("orders", "o1", "book 2", 3);
  d.pipe<str, str>("payments", "o1", "paid 2", 4);
  CHECK(d.read_output<str, str>("shipments") ==
        out_t{{"o1", "book/paid", 2}, {"o1", "book 2/paid 2", 4}});
}

TEST_CASE("a gate on stream time times out as record timestamps advance", "[operators]") {
  weft::test_driver d{[] { return std::make_unique<release>(weft::gate_clock::stream); }};
  d.pipe<str, str>("orders", "a", "book", 100); // deadline 1100
  d.pipe<str, str>("orders", "b", "pen", 1099); // a still open
  CHECK(d.output_size("expired") == 0);
  d.pipe<str, str>("payments", "a", "paid", 1100); // a expired first: no shipment
  CHECK(d.output_size("shipments") == 0);
  auto expired = d.read_output<str, str>("expired");
  REQUIRE(expired.size() == 1);
  CHECK(expired[0].key == "a");
  CHECK(expired[0].value == "no payment");
  d.pipe<str, str>("payments", "b", "paid", 1101); // b still open until 2099
  CHECK(d.read_output<str, str>("shipments") == out_t{{"b", "pen/paid", 1101}});
}

TEST_CASE("a gate's condition can be any predicate over the parts", "[operators]") {
  struct either_payment : weft::gate<str> {
    part<str> order = when<str>("orders");
    part<str> card = when<str>("card-payments");
    part<str> voucher = when<str>("vouchers");
    weft::output<str, str> ship = to<str, str>("shipments");
    either_payment() : gate("either", 60'000) {}
    bool ready(const correlation& c) const override {
      return c.has(order) && (c.has(card) || c.has(voucher));
    }
    void on_ready(const std::string& id, const correlation& c,
                  weft::context& ctx) override {
      ship.emit(ctx, id, c.has(card) ? "card" : "voucher");
    }
  };
  weft::test_driver d{[] { return std::make_unique<either_payment>(); }};
  d.pipe<str, str>("orders", "o1", "x", 1);
  d.pipe<str, str>("vouchers", "o1", "v", 2);
  d.pipe<str, str>("card-payments", "o1", "c", 3); // already shipped
  d.pipe<str, str>("card-payments", "o2", "c", 4);
  d.pipe<str, str>("orders", "o2", "y", 5);
  CHECK(d.read_output<str, str>("shipments") ==
        out_t{{"o1", "voucher", 2}, {"o2", "card", 5}});
}

TEST_CASE("a gate treats an undecodable event as a bad record and drops keyless ones",
          "[operators]") {
  weft::test_driver d{wall_gate()};
  CHECK_THROWS_AS(d.pipe("orders", std::string{"o1"}, std::string{"\xc3"}, 1),
                  weft::weft_error);
  d.pipe("orders", std::nullopt, std::string{"book"}, 2);
  CHECK(weft::drops_of(d.service()).null_key == 1);
  CHECK(d.kv("release-store").approximate_size() == 0);
}
