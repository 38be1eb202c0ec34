// The weft.cause header's codec: round trips, the timer form, and every kind
// of malformed value refused with a reason (never a throw or a crash).

#include <catch2/catch.hpp>

#include <random>

#include "weft/trace/cause.hpp"

using namespace weft;
using namespace weft::trace;

TEST_CASE("weft.cause round-trips a service and its input record", "[unit][trace]") {
  std::string v;
  encode_cause(v, "payment-gate", "orders-demo-payments-by-order-repartition", 3, 12345);
  CHECK(v == "payment-gate@orders-demo-payments-by-order-repartition/3/12345");
  auto c = decode_cause(v);
  REQUIRE(c);
  CHECK(c->service == "payment-gate");
  CHECK(c->topic == "orders-demo-payments-by-order-repartition");
  CHECK(c->partition == 3);
  CHECK(c->offset == 12345);
  CHECK(c->has_input());

  // Extremes, and a service name holding the separators.
  encode_cause(v, "a@b/1/2", "t", 2147483647, 9223372036854775807LL);
  c = decode_cause(v);
  REQUIRE(c);
  CHECK(c->service == "a@b/1/2");
  CHECK(c->topic == "t");
  CHECK(c->partition == 2147483647);
  CHECK(c->offset == 9223372036854775807LL);
}

TEST_CASE("weft.cause of a timer's output names the service only", "[unit][trace]") {
  std::string v;
  encode_cause(v, "validation-gate", "", -1, -1);
  CHECK(v == "validation-gate@");
  auto c = decode_cause(v);
  REQUIRE(c);
  CHECK(c->service == "validation-gate");
  CHECK_FALSE(c->has_input());
}

TEST_CASE("weft.cause reuses the caller's buffer", "[unit][trace]") {
  std::string v;
  encode_cause(v, "a-long-service-name-beyond-sso", "a-long-topic-name", 1, 1000000);
  auto* data = v.data();
  auto cap = v.capacity();
  encode_cause(v, "short", "t", 0, 0);
  CHECK(v == "short@t/0/0");
  CHECK(v.data() == data); // no new allocation for a shorter value
  CHECK(v.capacity() == cap);
}

TEST_CASE("malformed weft.cause values are refused with a reason", "[unit][trace]") {
  const char* bad[] = {"",
                       "no-separator",
                       "@t/0/0",
                       "svc@t/0",
                       "svc@t",
                       "svc@/0/0",
                       "svc@t//0",
                       "svc@t/0/",
                       "svc@t/-1/0",
                       "svc@t/0/-5",
                       "svc@t/+1/0",
                       "svc@t/01/0",
                       "svc@t/2147483648/0",
                       "svc@t/0/9223372036854775808",
                       "svc@t/0/99999999999999999999",
                       "svc@to pic/0/0",
                       "svc@t\xff/0/0",
                       "svc@t/0/0x",
                       "svc@t/0/1/2/3"};
  for (auto* b : bad) {
    CAPTURE(b);
    auto c = decode_cause(b);
    REQUIRE_FALSE(c);
    CHECK(c.error().code() == errc::bad_record);
    CHECK(c.error().message().rfind("weft.cause: ", 0) == 0);
  }
  CHECK_FALSE(decode_cause(std::string(5000, 'a') + "@t/0/0"));
  CHECK_FALSE(decode_cause("svc@" + std::string(250, 't') + "/0/0"));
  CHECK(decode_cause("svc@" + std::string(249, 't') + "/0/0"));
}

TEST_CASE("weft.cause decodes random bytes without crashing", "[unit][trace]") {
  std::mt19937 rng{15};
  const std::string alphabet = "ab@/0123456789-._ \xff";
  for (int i = 0; i < 20000; ++i) {
    std::string s(rng() % 40, ' ');
    for (auto& ch : s)
      ch = alphabet[rng() % alphabet.size()];
    auto c = decode_cause(s);
    if (!c) continue;
    // Whatever decodes encodes back to the same bytes.
    std::string again;
    encode_cause(again, c->service, c->topic, c->partition, c->offset);
    CHECK(again == s);
  }
}
