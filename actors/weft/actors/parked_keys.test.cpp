#include "weft/actors/parked_keys.hpp"

#include <catch2/catch.hpp>

#include <librdkafka/rdkafka.h>

#include "weft/state/memory_store.hpp"

using namespace weft;
using namespace weft::detail;

namespace {

/// A record_view over owned bytes, with headers.
struct owned_view {
  std::string topic = "orders", key, value;
  rd_kafka_headers_t* headers = rd_kafka_headers_new(2);
  record_view view;
  owned_view(std::string k, std::string v, int64_t offset)
    : key(std::move(k)), value(std::move(v)) {
    rd_kafka_header_add(headers, "trace", -1, "t-1", -1);
    view.topic = topic;
    view.partition = partition_id{3};
    view.offset = weft::offset{offset};
    view.timestamp = 1000 + offset;
    view.key = std::string_view{key};
    view.value = std::string_view{value};
    view.headers_ = headers;
  }
  ~owned_view() { rd_kafka_headers_destroy(headers); }
};

} // namespace

TEST_CASE("a held record keeps its topic, place, time, key, value and headers") {
  owned_view r{"k1", std::string("v\0x", 3), 42};
  auto back = decode_held(encode_held(r.view));
  REQUIRE(back.ok());
  CHECK(back->topic == "orders");
  CHECK(back->partition == 3);
  CHECK(back->offset == 42);
  CHECK(back->timestamp == 1042);
  CHECK(back->key == std::optional<std::string>{"k1"});
  CHECK(back->value == std::optional<std::string>{std::string("v\0x", 3)});
  REQUIRE(back->headers.size() == 1);
  CHECK(back->headers[0].key == "trace");
  held_view hv{*back};
  CHECK(hv.view().header_value("trace") == std::optional<std::string_view>{"t-1"});
  CHECK(hv.view().key == std::optional<std::string_view>{"k1"});
  auto bytes = encode_held(r.view);
  CHECK_FALSE(decode_held(bytes.substr(0, bytes.size() - 1)).ok());
  CHECK_FALSE(decode_held("").ok());
}

TEST_CASE("key ids tell a null key from an empty one, and never prefix each other") {
  CHECK(parked_keys::key_id(std::nullopt) != parked_keys::key_id(std::string_view{""}));
  CHECK(parked_keys::key_of(parked_keys::key_id(std::nullopt)) == std::nullopt);
  CHECK(parked_keys::key_of(parked_keys::key_id(std::string_view{"ab"})) ==
        std::optional<std::string>{"ab"});
  auto a = parked_keys::key_id(std::string_view{"a"});
  auto ab = parked_keys::key_id(std::string_view{"ab"});
  CHECK(ab.compare(0, a.size(), a) != 0);
}

TEST_CASE("a parked key holds its records in order, is rebuilt from its store, and is "
          "released when its last record goes") {
  auto store = state::make_memory_kv("svc-parked");
  parked_keys pk;
  REQUIRE(pk.load(store.get()).ok());
  CHECK(pk.empty());
  owned_view bad{"k1", "bad", 10}, later1{"k1", "v11", 11}, later2{"k1", "v12", 12},
      other{"k2", "x", 13};
  auto id = parked_keys::key_id(bad.view.key);
  auto e = pk.park(id, bad.view, "boom", true, 5000);
  REQUIRE(e.ok());
  REQUIRE(pk.hold(id, **e, later1.view).ok());
  REQUIRE(pk.hold(id, **e, later2.view).ok());
  auto id2 = parked_keys::key_id(other.view.key);
  REQUIRE(pk.park(id2, other.view, "cannot decode", false, 6000).ok());
  CHECK(pk.size() == 2);
  CHECK(pk.held() == 4);

  // A restart: the index comes back from the store, order and errors kept.
  parked_keys again;
  REQUIRE(again.load(store.get()).ok());
  REQUIRE(again.size() == 2);
  auto* e1 = again.find(id);
  REQUIRE(e1);
  CHECK(e1->seqs.size() == 3);
  CHECK(e1->error == "boom");
  CHECK(e1->attempts == 1);
  CHECK(e1->since == 5000);
  CHECK(e1->head_offset == 10);
  CHECK_FALSE(again.find(id2)->retriable);
  for (auto want : {"bad", "v11", "v12"}) {
    auto h = again.head(id, *again.find(id));
    REQUIRE(h.ok());
    CHECK(h->value == std::optional<std::string>{want});
    auto more = again.pop_head(id, nullptr);
    REQUIRE(more.ok());
    CHECK(*more == (std::string{want} != "v12"));
  }
  CHECK_FALSE(again.find(id));
  // Deferred: nothing leaves the store until the removals are applied, and
  // a key parked again meanwhile keeps its error entry.
  std::vector<std::string> removals;
  REQUIRE(again.drop(id2, &removals).ok());
  CHECK_FALSE(again.find(id2));
  parked_keys before;
  REQUIRE(before.load(store.get()).ok());
  CHECK(before.size() == 1);
  REQUIRE(again.park(id2, other.view, "again", false, 7000).ok());
  REQUIRE(again.apply_removals(removals).ok());
  parked_keys after;
  REQUIRE(after.load(store.get()).ok());
  REQUIRE(after.size() == 1);
  CHECK(after.find(id2)->error == "again");
  CHECK(after.find(id2)->seqs.size() == 1);
}

TEST_CASE("a parked key knows the input it holds: a re-delivered held record is held "
          "already, an earlier one of the head's partition ran before it, and both "
          "survive a reload") {
  auto store = state::make_memory_kv("svc-parked");
  parked_keys pk;
  REQUIRE(pk.load(store.get()).ok());
  owned_view before{"k1", "v9", 9}, bad{"k1", "bad", 10}, later{"k1", "v12", 12},
      newer{"k1", "v13", 13};
  auto id = parked_keys::key_id(bad.view.key);
  auto e = pk.park(id, bad.view, "boom", true, 5000);
  REQUIRE(e.ok());
  REQUIRE(pk.hold(id, **e, later.view).ok());

  auto check = [&](const parked_entry& entry) {
    CHECK(parked_keys::already_held(entry, bad.view));
    CHECK(parked_keys::already_held(entry, later.view));
    CHECK_FALSE(parked_keys::already_held(entry, newer.view));
    CHECK_FALSE(parked_keys::already_held(entry, before.view));
    CHECK(parked_keys::before_head(entry, before.view));
    CHECK_FALSE(parked_keys::before_head(entry, bad.view));
    // Another partition of the same topic holds nothing of the key.
    owned_view elsewhere{"k1", "x", 11};
    elsewhere.view.partition = partition_id{4};
    CHECK_FALSE(parked_keys::already_held(entry, elsewhere.view));
    CHECK_FALSE(parked_keys::before_head(entry, elsewhere.view));
    // Nor does another topic at the same place.
    owned_view other_topic{"k1", "x", 11};
    other_topic.topic = "payments";
    other_topic.view.topic = other_topic.topic;
    CHECK_FALSE(parked_keys::already_held(entry, other_topic.view));
  };
  check(**e);
  parked_keys again;
  REQUIRE(again.load(store.get()).ok());
  REQUIRE(again.find(id));
  check(*again.find(id));

  // The head replayed and left: what it held is still known while the key
  // stays parked, so a re-delivery of the old head is not held twice.
  REQUIRE(again.pop_head(id, nullptr).ok());
  CHECK(parked_keys::already_held(*again.find(id), bad.view));
  CHECK(parked_keys::already_held(*again.find(id), later.view));
}
