// int32_serde and int64_serde (Kafka's IntegerSerde / LongSerde): exactly 4
// or 8 bytes decode, as big-endian two's complement computed here by
// arithmetic, and encode back to the same bytes; any other length is a
// bad_record naming both lengths. The first input byte picks the serde.

#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "weft/serde.hpp"

namespace {

template <class S, class Int>
void check(std::string_view in) {
  auto r = S::deserialize(in);
  if (in.size() != sizeof(Int)) {
    WEFT_FUZZ_CHECK(!r, "%zu bytes decoded", in.size());
    WEFT_FUZZ_CHECK(r.error().code() == weft::errc::bad_record, "wrong error code");
    auto want = std::string{S::name} + ": expected " + std::to_string(sizeof(Int)) +
                " bytes, got " + std::to_string(in.size());
    WEFT_FUZZ_CHECK(r.error().message() == want, "message: %s",
                    r.error().message().c_str());
    return;
  }
  WEFT_FUZZ_CHECK(r.ok(), "%s", r.error().message().c_str());
  // Reference: sum of bytes times powers of 256, then the sign.
  unsigned __int128 u = 0;
  for (unsigned char c : in)
    u = u * 256 + c;
  const unsigned __int128 range = static_cast<unsigned __int128>(1) << (8 * sizeof(Int));
  __int128 v = static_cast<__int128>(u);
  if (u >= range / 2) v -= static_cast<__int128>(range);
  WEFT_FUZZ_CHECK(static_cast<__int128>(*r) == v, "wrong value");
  WEFT_FUZZ_CHECK(S::serialize(*r) == in, "no round trip");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view in{reinterpret_cast<const char*>(data) + 1, size - 1};
  if (data[0] & 1)
    check<weft::int64_serde, int64_t>(in);
  else
    check<weft::int32_serde, int32_t>(in);
  return 0;
}
