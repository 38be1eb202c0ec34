#include "weft/services/enricher.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "weft/services/test_driver.hpp"

using str = weft::string_serde;

namespace {

using out_t = std::vector<weft::test_record<std::string, std::string>>;

/// Orders keyed by order id, valued "<customer id>:<item>", enriched with the
/// customer's name from the global "customers" table.
struct order_enricher : weft::enricher<str, str, str, str> {
  weft::output<str, str> out = to<str, str>("orders-enriched");
  weft::output<str, str> unknown = to<str, str>("orders-unknown-customer");

  order_enricher() : enricher("enrich-orders", "orders", "customers") {}

  std::optional<std::string> lookup_key(const std::string&,
                                        const std::string& v) override {
    auto colon = v.find(':');
    if (colon == std::string::npos) return std::nullopt;
    return v.substr(0, colon);
  }
  void enrich(const std::string& id, const std::string& v,
              const std::optional<std::string>& customer, weft::context& ctx) override {
    if (customer)
      out.emit(ctx, id, v.substr(v.find(':') + 1) + " for " + *customer);
    else
      unknown.emit(ctx, id, v);
  }
};

weft::service_factory enricher_factory() {
  return [] { return std::make_unique<order_enricher>(); };
}

} // namespace

TEST_CASE("an enricher joins each event with the global table row it names",
          "[operators]") {
  weft::test_driver d{enricher_factory(), 4};
  d.pipe<str, str>("customers", "c1", "Ann", 1);
  d.pipe<str, str>("customers", "c2", "Bob", 2);
  d.pipe<str, str>("orders", "o1", "c1:book", 10);
  d.pipe<str, str>("orders", "o2", "c2:pen", 11);
  d.pipe<str, str>("orders", "o3", "c1:ink", 12);
  auto out = d.read_output<str, str>("orders-enriched");
  // The orders ran on whichever task owns their id; each saw the whole table.
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.key < b.key; });
  CHECK(out == out_t{{"o1", "book for Ann", 10},
                     {"o2", "pen for Bob", 11},
                     {"o3", "ink for Ann", 12}});
}

TEST_CASE("an enricher sees table updates and reports rows it cannot find",
          "[operators]") {
  weft::test_driver d{enricher_factory()};
  d.pipe<str, str>("orders", "o1", "c1:book", 10); // c1 not known yet
  d.pipe<str, str>("customers", "c1", "Ann", 11);
  d.pipe<str, str>("orders", "o2", "c1:pen", 12);
  d.pipe<str, str>("customers", "c1", "Ann B.", 13); // renamed
  d.pipe<str, str>("orders", "o3", "c1:ink", 14);
  d.pipe_tombstone<str>("customers", "c1", 15); // deleted
  d.pipe<str, str>("orders", "o4", "c1:cup", 16);
  d.pipe<str, str>("orders", "o5", "no customer", 17); // lookup_key gives nullopt
  CHECK(d.read_output<str, str>("orders-enriched") ==
        out_t{{"o2", "pen for Ann", 12}, {"o3", "ink for Ann B.", 14}});
  CHECK(d.read_output<str, str>("orders-unknown-customer") ==
        out_t{{"o1", "c1:book", 10}, {"o4", "c1:cup", 16}, {"o5", "no customer", 17}});
}

TEST_CASE("an enricher keeps the global table in a store named after its topic",
          "[operators]") {
  weft::test_driver d{enricher_factory(), 2};
  d.pipe<str, str>("customers", "c1", "Ann", 1);
  CHECK(d.global("customers").get("c1").value() == std::optional<std::string>{"Ann"});
  CHECK(d.service().tables().size() == 1);
  CHECK(d.service().tables()[0].global);
}
