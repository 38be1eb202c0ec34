#include "weft/actors/dead_letter.hpp"

#include <catch2/catch.hpp>

#include <librdkafka/rdkafka.h>

#include <map>
#include <string>

using namespace weft;
using namespace weft::detail;

namespace {

std::map<std::string, std::string> by_name(const record& r) {
  std::map<std::string, std::string> out;
  for (auto& h : r.headers)
    out[h.key] = h.value;
  return out;
}

size_t size_as_librdkafka_counts(const record& r) {
  size_t n = (r.key ? r.key->size() : 0) + (r.value ? r.value->size() : 0);
  for (auto& h : r.headers)
    n += h.key.size() + h.value.size() + 10;
  return n;
}

struct headers_guard {
  rd_kafka_headers_t* h = rd_kafka_headers_new(4);
  ~headers_guard() { rd_kafka_headers_destroy(h); }
};

} // namespace

TEST_CASE("a dead-letter record keeps the bad record whole and says where it came from") {
  headers_guard hs;
  rd_kafka_header_add(hs.h, "trace", -1, "t-1", -1);
  std::string key = "k", value = "not json";
  record_view r;
  r.topic = "orders";
  r.partition = partition_id{3};
  r.offset = weft::offset{42};
  r.timestamp = 1000;
  r.key = key;
  r.value = value;
  r.headers_ = hs.h;
  auto dl = dead_letter_record(r, "json: parse error", "svc", "app-svc-dlq", 1000000);
  CHECK(dl.topic == "app-svc-dlq");
  CHECK(dl.key == key);
  CHECK(dl.value == value);
  CHECK(dl.timestamp == 1000);
  auto h = by_name(dl);
  CHECK(h["trace"] == "t-1");
  CHECK(h["weft.error"] == "json: parse error");
  CHECK(h["weft.service"] == "svc");
  CHECK(h["weft.topic"] == "orders");
  CHECK(h["weft.partition"] == "3");
  CHECK(h["weft.offset"] == "42");
  CHECK(h.count("weft.truncated") == 0);
}

TEST_CASE("a bad record too large to dead-letter whole loses its headers, then the tail "
          "of its value and key, and says so, so that it fits the producer's limit") {
  const size_t limit = 100000;
  headers_guard hs;
  std::string big_header(30000, 'h');
  rd_kafka_header_add(hs.h, "huge", -1, big_header.data(), big_header.size());
  std::string key(200, 'k'), value(90000, 'v');
  record_view r;
  r.topic = "t";
  r.partition = partition_id{0};
  r.offset = weft::offset{7};
  r.key = key;
  r.value = value;
  r.headers_ = hs.h;

  auto dl = dead_letter_record(r, std::string(5000, 'e'), "svc", "dlq", limit);
  CHECK(size_as_librdkafka_counts(dl) <= limit);
  auto h = by_name(dl);
  CHECK(h.count("huge") == 0);
  CHECK_THAT(h["weft.truncated"],
             Catch::Contains("1 original headers (30014 bytes) dropped"));
  // Headers alone made it too large: the value stays whole.
  CHECK(dl.value == value);
  CHECK(h["weft.offset"] == "7");
  // The error is capped for headers and logs.
  CHECK(h["weft.error"].size() < 1100);
  CHECK_THAT(h["weft.error"], Catch::EndsWith("(5000 bytes)"));

  std::string huge_value(300000, 'v');
  r.value = huge_value;
  auto cut = dead_letter_record(r, "too big", "svc", "dlq", limit);
  CHECK(size_as_librdkafka_counts(cut) <= limit);
  REQUIRE(cut.value);
  CHECK(cut.value->size() > limit / 2);
  CHECK(huge_value.compare(0, cut.value->size(), *cut.value) == 0); // the head is kept
  CHECK_THAT(
      by_name(cut)["weft.truncated"],
      Catch::Contains("value cut from 300000 to " + std::to_string(cut.value->size())));

  std::string huge_key(300000, 'k');
  r.key = huge_key;
  r.value = std::nullopt;
  auto cut_key = dead_letter_record(r, "too big", "svc", "dlq", limit);
  CHECK(size_as_librdkafka_counts(cut_key) <= limit);
  CHECK(!cut_key.value);
  CHECK_THAT(by_name(cut_key)["weft.truncated"], Catch::Contains("key cut from 300000"));
}

TEST_CASE("the dead-letter size limit is the producer's message.max.bytes") {
  auto plain = config::from_map({{"application.id", "a"}});
  REQUIRE(plain);
  CHECK(max_message_bytes(*plain) == 1000000);
  auto set = config::from_map(
      {{"application.id", "a"}, {"producer.message.max.bytes", "2000000"}});
  REQUIRE(set);
  CHECK(max_message_bytes(*set) == 2000000);
}
