#include "record_codec.hpp"

#include <catch2/catch.hpp>

using namespace sidecar;

TEST_CASE("base64 round-trips every length and refuses what is not padded base64") {
  std::string bytes;
  for (int i = 0; i < 300; ++i) {
    auto enc = base64_encode(bytes);
    auto dec = base64_decode(enc);
    REQUIRE(dec);
    CHECK(*dec == bytes);
    bytes += static_cast<char>(i * 37);
  }
  CHECK(base64_encode("foobar") == "Zm9vYmFy");
  CHECK(base64_encode("fo") == "Zm8=");
  CHECK_FALSE(base64_decode("Zm8"));
  CHECK_FALSE(base64_decode("Zm=8"));
  CHECK_FALSE(base64_decode("Z!8="));
}

TEST_CASE("values follow their serde both ways, and what does not fit names the field") {
  auto j = to_api(serde_kind::json, std::string_view{R"({"a":1})"});
  REQUIRE(j);
  CHECK((*j)["a"] == 1);
  CHECK_FALSE(to_api(serde_kind::json, std::string_view{"{oops"}));
  CHECK_FALSE(to_api(serde_kind::string, std::string_view{"\xff\xfe"}));
  CHECK(*to_api(serde_kind::bytes, std::string_view{"\xff"}) == "/w==");
  CHECK(to_api(serde_kind::json, std::nullopt)->is_null());

  auto s = from_api(serde_kind::string, json(3), "records[2].value");
  REQUIRE_FALSE(s);
  CHECK_THAT(s.error().message(), Catch::Contains("records[2].value") &&
                                      Catch::Contains("must be a string"));
  auto b = from_api(serde_kind::bytes, json("not base64!"), "key");
  REQUIRE_FALSE(b);
  CHECK_THAT(b.error().message(), Catch::Contains("key") && Catch::Contains("base64"));
  CHECK(**from_api(serde_kind::json, json{{"x", 2}}, "value") == R"({"x":2})");
  CHECK_FALSE(*from_api(serde_kind::json, json(nullptr), "value")); // a tombstone
}
