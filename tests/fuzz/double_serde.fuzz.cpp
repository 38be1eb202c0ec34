// double_serde (Kafka's DoubleSerde): exactly 8 bytes decode to the IEEE 754
// double with those big-endian bits; encoding gives the same bytes back,
// except that every NaN is written as the canonical 7ff8000000000000 (as
// Java's doubleToLongBits). Any other length is a bad_record.

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "weft/serde.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in{reinterpret_cast<const char*>(data), size};
  auto r = weft::double_serde::deserialize(in);
  if (size != 8) {
    WEFT_FUZZ_CHECK(!r, "%zu bytes decoded", size);
    WEFT_FUZZ_CHECK(r.error().message() ==
                        "double: expected 8 bytes, got " + std::to_string(size),
                    "message: %s", r.error().message().c_str());
    return 0;
  }
  WEFT_FUZZ_CHECK(r.ok(), "%s", r.error().message().c_str());
  uint64_t bits = 0;
  for (size_t i = 0; i < 8; ++i)
    bits = bits << 8 | data[i];
  double want;
  std::memcpy(&want, &bits, 8);
  auto back = weft::double_serde::serialize(*r);
  if (std::isnan(want)) {
    WEFT_FUZZ_CHECK(std::isnan(*r), "NaN decoded as a number");
    WEFT_FUZZ_CHECK(back == std::string("\x7f\xf8\0\0\0\0\0\0", 8), "NaN not canonical");
  } else {
    WEFT_FUZZ_CHECK(std::memcmp(&*r, &want, 8) == 0, "wrong bits");
    WEFT_FUZZ_CHECK(back == in, "no round trip");
  }
  return 0;
}
