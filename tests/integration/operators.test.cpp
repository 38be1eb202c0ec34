// The operators of services/ on a real node and broker [broker]: a windowed
// count that emits once per closed window, and a gate that fires once per
// order and payment pair and times out orders that never get paid.

#include <catch2/catch.hpp>

#include <map>

#include "test_cluster.hpp"
#include "weft/node.hpp"
#include "weft/services/aggregate.hpp"
#include "weft/services/gate.hpp"

using namespace weft;
using namespace std::chrono_literals;
using str = string_serde;

namespace {

struct pay_gate : gate<str> {
  part<str> ordered;
  part<str> paid;
  output<str, str> ready_out;
  output<str, str> expired_out;
  pay_gate(std::string orders, std::string payments, std::string ready,
           std::string expired)
    : gate("pay-gate", 2000, gate_clock::wall, 200) {
    ordered = when<str>(orders);
    paid = when<str>(payments);
    ready_out = to<str, str>(ready);
    expired_out = to<str, str>(expired);
  }
  void on_ready(const std::string& id, const correlation& c, context& ctx) override {
    ready_out.emit(ctx, id, *c.get(ordered) + "+" + *c.get(paid));
  }
  void on_timeout(const std::string& id, const correlation& c, context& ctx) override {
    if (c.has(ordered)) expired_out.emit(ctx, id, "unpaid");
  }
};

void send_at(kafka::producer& p, const std::string& topic, const std::string& k,
             const std::string& v, timestamp_ms ts) {
  REQUIRE(p.send(topic, -1, k, v, ts).ok());
}

} // namespace

TEST_CASE("a windowed count and a gate run on a node: one result per closed window, one "
          "per paired key, and a timeout for the unpaired",
          "[broker]") {
  auto clicks = test::unique_name("clicks"), counts = test::unique_name("per-minute");
  auto orders = test::unique_name("orders"), payments = test::unique_name("payments"),
       ready = test::unique_name("ready"), expired = test::unique_name("expired");
  test::create_topics({clicks, counts, orders, payments, ready, expired}, 2);
  auto app = test::unique_name("operators");
  auto cfg = config::from_map({{"application.id", app},
                               {"bootstrap.servers", test::bootstrap()},
                               {"state.dir", "/tmp/" + app}});
  REQUIRE(cfg.ok());
  node n{*cfg};
  n.add(count<str, str>("per-minute", clicks, counts, tumbling_window{60000, 0},
                        emit::on_window_close));
  auto live = test::unique_name("live-counts");
  test::create_topics({live}, 2);
  n.add(
      count<str, str>("live", clicks, live, tumbling_window{60000, 0}, emit::on_update));
  n.add<pay_gate>(orders, payments, ready, expired);
  auto st = n.start();
  INFO(st.to_string());
  REQUIRE(st.ok());

  auto p = kafka::producer::create(
      {{"bootstrap.servers", test::bootstrap()}, {"partitioner", "murmur2_random"}});
  REQUIRE(p.ok());
  // Key "a": two clicks in minute 0, one in minute 1; "a" at 125 s closes
  // minute 1 (same key: same task, same stream time).
  send_at(**p, clicks, "a", "x", 1000);
  send_at(**p, clicks, "a", "x", 2000);
  send_at(**p, clicks, "a", "x", 61000);
  send_at(**p, clicks, "a", "x", 125000);
  // Orders o1 (paid, payment duplicated) and o2 (never paid).
  send_at(**p, orders, "o1", "order1", 0);
  send_at(**p, payments, "o1", "pay1", 0);
  send_at(**p, payments, "o1", "pay1", 0);
  send_at(**p, orders, "o2", "order2", 0);
  REQUIRE((*p)->flush(10000).ok());

  auto windows = test::consume_all(counts, 2, 60s, 1s);
  REQUIRE(windows.size() == 2);
  std::map<int64_t, int64_t> per_start;
  for (auto& r : windows) {
    REQUIRE(r.key->size() == 1 + 8); // "a" + big-endian window start
    CHECK(r.key->substr(0, 1) == "a");
    auto start = *int64_serde::deserialize(r.key->substr(1));
    per_start[start] = *int64_serde::deserialize(*r.value);
  }
  CHECK(per_start == std::map<int64_t, int64_t>{{0, 2}, {60000, 1}});

  // The on-update count keeps its windows: query them through the node.
  REQUIRE(test::wait_until([&] { return test::end_offsets(live) >= 4; }, 30s));
  std::map<timestamp_ms, int64_t> queried;
  auto qs =
      n.fetch("live-store", "a", 0, 200000, [&](timestamp_ms start, std::string_view v) {
        queried[start] = *int64_serde::deserialize(v);
        return true;
      });
  INFO(qs.to_string());
  REQUIRE(qs.ok());
  // Window 0 is past the store's retention (size + grace) once stream time
  // reached 125 s, so the store no longer holds it.
  CHECK(queried == std::map<timestamp_ms, int64_t>{{60000, 1}, {120000, 1}});
  auto unknown = n.get("no-such-store", "a");
  REQUIRE_FALSE(unknown.ok());
  CHECK(unknown.error().code() == errc::not_found);

  auto paired = test::consume_all(ready, 1, 30s, 1s);
  REQUIRE(paired.size() == 1);
  CHECK(*paired[0].key == "o1");
  CHECK(*paired[0].value == "order1+pay1");
  auto timed_out = test::consume_all(expired, 1, 30s, 500ms);
  REQUIRE(timed_out.size() == 1);
  CHECK(*timed_out[0].key == "o2");
  n.request_stop();
  CHECK(n.wait().ok());
}
