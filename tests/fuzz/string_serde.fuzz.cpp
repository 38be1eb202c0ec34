// string_serde (UTF-8, checked) against a reference: a plain decoder of
// code points by RFC 3629 (shortest form, no surrogates, at most U+10FFFF),
// written apart from serde.cpp's byte-range table. Valid input must come
// back unchanged and round-trip; invalid input must give a bad_record that
// names a byte inside the input.

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "weft/serde.hpp"

namespace {

bool reference_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto b = static_cast<unsigned char>(s[i]);
    uint32_t cp;
    size_t len;
    if (b < 0x80) {
      cp = b, len = 1;
    } else if ((b & 0xE0) == 0xC0) {
      cp = b & 0x1F, len = 2;
    } else if ((b & 0xF0) == 0xE0) {
      cp = b & 0x0F, len = 3;
    } else if ((b & 0xF8) == 0xF0) {
      cp = b & 0x07, len = 4;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      auto c = static_cast<unsigned char>(s[i + k]);
      if ((c & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3F);
    }
    static const uint32_t shortest[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < shortest[len]) return false;           // overlong
    if (cp >= 0xD800 && cp <= 0xDFFF) return false; // surrogate
    if (cp > 0x10FFFF) return false;                // beyond Unicode
    i += len;
  }
  return true;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in{reinterpret_cast<const char*>(data), size};
  auto r = weft::string_serde::deserialize(in);
  const bool valid = reference_utf8(in);
  WEFT_FUZZ_CHECK(r.ok() == valid, "serde says %s, the reference says %s",
                  r.ok() ? "valid" : r.error().message().c_str(),
                  valid ? "valid" : "invalid");
  if (r) {
    WEFT_FUZZ_CHECK(*r == in, "a valid string came back changed");
    WEFT_FUZZ_CHECK(weft::string_serde::serialize(*r) == in, "no round trip");
  } else {
    WEFT_FUZZ_CHECK(r.error().code() == weft::errc::bad_record, "wrong error code");
    auto& m = r.error().message();
    WEFT_FUZZ_CHECK(m.rfind("string: invalid UTF-8 at byte ", 0) == 0, "message: %s",
                    m.c_str());
    auto pos = std::strtoull(m.c_str() + std::strlen("string: invalid UTF-8 at byte "),
                             nullptr, 10);
    WEFT_FUZZ_CHECK(pos < size, "names byte %llu of %zu", pos, size);
    // The error names the first bad byte: everything before it is valid.
    WEFT_FUZZ_CHECK(reference_utf8(in.substr(0, pos)) || pos == 0,
                    "the input before byte %llu is invalid too", pos);
  }
  return 0;
}
