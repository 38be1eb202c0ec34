// The windowed key serdes (Kafka's TimeWindowedSerde and
// SessionWindowedSerde layouts, weft/services/windows.hpp): the trailing 8
// or 16 bytes are the window bounds, big-endian, the rest is the inner key;
// what decodes encodes back to the same bytes, a time window's end is its
// start plus the size unless that overflows, and too-short input or a bad
// inner key is a bad_record. The first byte picks the serde.

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "weft/serde.hpp"
#include "weft/services/windows.hpp"

namespace {

int64_t big_endian(std::string_view b) {
  uint64_t v = 0;
  for (unsigned char c : b)
    v = v << 8 | c;
  return static_cast<int64_t>(v);
}

template <class S>
void check(std::string_view in, size_t tail) {
  auto r = S::deserialize(in);
  if (in.size() < tail) {
    WEFT_FUZZ_CHECK(!r, "%zu bytes decoded", in.size());
    WEFT_FUZZ_CHECK(r.error().code() == weft::errc::bad_record, "wrong error code");
    return;
  }
  if (!r) {
    WEFT_FUZZ_CHECK(r.error().code() == weft::errc::bad_record, "wrong error code");
    return;
  }
  WEFT_FUZZ_CHECK(S::serialize(*r) == in, "no round trip");
  auto bounds = in.substr(in.size() - tail);
  if (tail == 16) {
    WEFT_FUZZ_CHECK(r->end == big_endian(bounds.substr(0, 8)), "session end");
    WEFT_FUZZ_CHECK(r->start == big_endian(bounds.substr(8)), "session start");
  } else {
    WEFT_FUZZ_CHECK(r->start == big_endian(bounds), "window start");
  }
}

template <class S, int64_t Size>
void check_time(std::string_view in) {
  check<S>(in, 8);
  auto r = S::deserialize(in);
  if (!r) return;
  constexpr auto max = std::numeric_limits<int64_t>::max();
  if (Size == 0 || r->start > max - Size)
    WEFT_FUZZ_CHECK(r->end == max, "end without a size or past int64");
  else
    WEFT_FUZZ_CHECK(r->end == r->start + Size, "end is not start + size");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view in{reinterpret_cast<const char*>(data) + 1, size - 1};
  switch (data[0] % 4) {
  case 0:
    check_time<weft::time_windowed_serde<weft::string_serde, 60000>, 60000>(in);
    break;
  case 1:
    check_time<weft::time_windowed_serde<weft::int64_serde>, 0>(in);
    break;
  case 2:
    check<weft::session_windowed_serde<weft::string_serde>>(in, 16);
    break;
  default:
    check<weft::session_windowed_serde<weft::int32_serde>>(in, 16);
    break;
  }
  return 0;
}
