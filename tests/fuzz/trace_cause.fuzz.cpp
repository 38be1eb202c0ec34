// The weft.cause header (runtime/weft/trace/cause.hpp), as weft-trace reads
// it from any record of an application's topics: any bytes decode to a cause
// or a bad_record naming the header, never a crash; what decodes encodes
// back to the same bytes, with a legal topic and non-negative numbers.

#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "weft/trace/cause.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in{reinterpret_cast<const char*>(data), size};
  auto c = weft::trace::decode_cause(in);
  if (!c) {
    WEFT_FUZZ_CHECK(c.error().code() == weft::errc::bad_record, "wrong error code");
    WEFT_FUZZ_CHECK(c.error().message().rfind("weft.cause: ", 0) == 0, "message: %s",
                    c.error().message().c_str());
    return 0;
  }
  WEFT_FUZZ_CHECK(!c->service.empty(), "empty service");
  if (c->has_input()) {
    WEFT_FUZZ_CHECK(c->partition >= 0 && c->offset >= 0, "negative position");
    WEFT_FUZZ_CHECK(c->topic.size() <= 249, "topic too long");
    WEFT_FUZZ_CHECK(c->topic.find_first_of("@/") == std::string::npos, "bad topic");
  }
  std::string again;
  weft::trace::encode_cause(again, c->service, c->topic, c->partition, c->offset);
  WEFT_FUZZ_CHECK(again == in, "no round trip: %s", again.c_str());
  return 0;
}
