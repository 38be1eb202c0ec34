#include "weft/serde.hpp"

#include <algorithm>

// After serde.hpp: cereal's json.hpp sets rapidjson's assertion and parse-flag
// macros, and the re-parse below must see rapidjson configured as cereal has it.
#include <rapidjson/error/en.h>

namespace weft {

status decode_error(std::string_view serde_name, std::string_view what) {
  std::string msg;
  msg.reserve(serde_name.size() + 2 + what.size());
  msg.append(serde_name).append(": ").append(what);
  return status{errc::bad_record, std::move(msg)};
}

namespace detail {

status wrong_size(const char* serde_name, size_t expected, size_t got) {
  return decode_error(serde_name, "expected " + std::to_string(expected) +
                                      " bytes, got " + std::to_string(got));
}

} // namespace detail

// -- UTF-8 ----------------------------------------------------------------------

namespace {

struct utf8_problem {
  size_t pos;
  const char* what;
};

bool is_continuation(unsigned char c) {
  return (c & 0xC0) == 0x80;
}

/// The first ill-formed sequence in `s` by the Unicode standard's table 3-7
/// (well-formed UTF-8 byte sequences), or nullopt if `s` is valid UTF-8.
std::optional<utf8_problem> find_invalid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    // Most keys and values are ASCII: skip it eight bytes at a time.
    while (i + 8 <= n) {
      uint64_t chunk;
      std::memcpy(&chunk, p + i, 8);
      if (chunk & 0x8080808080808080ULL) break;
      i += 8;
    }
    if (i >= n) break;
    unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    // Bounds of the second byte; the rest are always 80..BF.
    unsigned char lo = 0x80, hi = 0xBF;
    const char* narrow = nullptr; // why the second byte is out of [lo, hi]
    if (c < 0xC0) return utf8_problem{i, "unexpected continuation byte"};
    if (c < 0xC2) return utf8_problem{i, "overlong encoding"};
    if (c < 0xE0) {
      len = 2;
    } else if (c < 0xF0) {
      len = 3;
      if (c == 0xE0) lo = 0xA0, narrow = "overlong encoding";
      if (c == 0xED) hi = 0x9F, narrow = "UTF-16 surrogate";
    } else if (c < 0xF5) {
      len = 4;
      if (c == 0xF0) lo = 0x90, narrow = "overlong encoding";
      if (c == 0xF4) hi = 0x8F, narrow = "code point above U+10FFFF";
    } else {
      return utf8_problem{i, "not a UTF-8 byte"};
    }
    const size_t avail = std::min(len, n - i);
    if (avail >= 2 && (p[i + 1] < lo || p[i + 1] > hi))
      return utf8_problem{
          i, is_continuation(p[i + 1]) && narrow ? narrow : "missing continuation byte"};
    for (size_t k = 2; k < avail; ++k)
      if (!is_continuation(p[i + k])) return utf8_problem{i, "missing continuation byte"};
    if (avail < len) return utf8_problem{i, "sequence cut short by the end of the data"};
    i += len;
  }
  return std::nullopt;
}

} // namespace

result<std::string> string_serde::deserialize(std::string_view bytes) {
  if (auto bad = find_invalid_utf8(bytes)) {
    static constexpr char hex[] = "0123456789abcdef";
    auto b = static_cast<unsigned char>(bytes[bad->pos]);
    std::string what = "invalid UTF-8 at byte " + std::to_string(bad->pos) + " (0x";
    what += hex[b >> 4];
    what += hex[b & 0xF];
    what += "): ";
    what += bad->what;
    return decode_error(name, what);
  }
  return std::string{bytes};
}

namespace detail {

// -- streams ----------------------------------------------------------------

string_streambuf::int_type string_streambuf::overflow(int_type c) {
  flush_to_string();
  if (!traits_type::eq_int_type(c, traits_type::eof())) {
    *pptr() = traits_type::to_char_type(c);
    pbump(1);
  }
  return traits_type::not_eof(c);
}

std::streamsize string_streambuf::xsputn(const char* s, std::streamsize n) {
  // Small writes (cereal's per-field binary writes) fill the buffer; big ones
  // (strings, blobs) go straight to the string without a second copy. An
  // empty vector arrives as (nullptr, 0), which memcpy must not see.
  if (n <= 0) return 0;
  if (n <= epptr() - pptr()) {
    std::memcpy(pptr(), s, static_cast<size_t>(n));
    pbump(static_cast<int>(n));
  } else {
    flush_to_string();
    out_.append(s, static_cast<size_t>(n));
  }
  return n;
}

// -- JSON -------------------------------------------------------------------

void compact_json(std::string& json) {
  size_t out = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : json) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
    } else if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
      continue;
    } else if (c == '"') {
      in_string = true;
    }
    json[out++] = c;
  }
  json.resize(out);
}

std::optional<std::string> zero_exponents_fixed(std::string_view json) {
  std::optional<std::string> out;
  size_t copied = 0; // json[0, copied) is in *out already
  bool in_string = false, escaped = false;
  size_t i = 0;
  const size_t n = json.size();
  auto digit = [&](size_t k) { return k < n && json[k] >= '0' && json[k] <= '9'; };
  while (i < n) {
    char c = json[i];
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
      ++i;
      continue;
    }
    if (c == '"') {
      in_string = true;
      ++i;
      continue;
    }
    if (c != '-' && !digit(i)) {
      ++i;
      continue;
    }
    // A number: [-] digits [. digits] [e|E [+|-] digits]. Anything else
    // that starts like one is left for rapidjson to reject.
    const size_t start = i;
    const bool negative = c == '-';
    if (negative) ++i;
    bool zero = true, well_formed = digit(i);
    auto digits = [&] {
      while (digit(i)) {
        if (json[i] != '0') zero = false;
        ++i;
      }
    };
    digits();
    if (i < n && json[i] == '.') {
      ++i;
      well_formed = well_formed && digit(i);
      digits();
    }
    const bool exponent = i < n && (json[i] == 'e' || json[i] == 'E');
    if (exponent) {
      ++i;
      if (i < n && (json[i] == '+' || json[i] == '-')) ++i;
      well_formed = well_formed && digit(i);
      while (digit(i))
        ++i;
    }
    if (i == start) ++i; // a lone '-': step over it
    if (zero && exponent && well_formed) {
      if (!out) {
        out.emplace();
        out->reserve(n);
      }
      out->append(json.substr(copied, start - copied));
      out->append(negative ? "-0.0" : "0.0");
      copied = i;
    }
    // else: not a number token rapidjson would misread; leave it as it is
  }
  if (out) out->append(json.substr(copied));
  return out;
}

std::string describe_cereal_json_root(std::string_view bytes) {
  rapidjson::Document doc;
  try {
    doc.Parse(bytes.data(), bytes.size());
  } catch (const std::exception& e) {
    // cereal makes rapidjson's assertions throw; one fails inside its
    // number parser on e.g. 3333333333333333333333333333333333331e308. This
    // runs in serde's catch handler: nothing may leave it (found by fuzz).
    return std::string{"rapidjson could not parse it: "} + e.what();
  }
  if (doc.HasParseError())
    return std::string{rapidjson::GetParseError_En(doc.GetParseError())} + " at byte " +
           std::to_string(doc.GetErrorOffset());
  if (doc.IsObject() || doc.IsArray()) return {};
  const char* got = doc.IsNull()     ? "null"
                    : doc.IsBool()   ? "a boolean"
                    : doc.IsNumber() ? "a number"
                                     : "a string";
  return std::string{"expected a JSON object at the root, got "} + got;
}

std::string describe_cereal_json_exception(std::string_view what) {
  // rapidjson checks a value's type with an assertion, which cereal turns into
  // an exception quoting the assertion; say which type was expected instead.
  static constexpr std::string_view prefix = "rapidjson internal assertion failure: ";
  if (what.substr(0, prefix.size()) != prefix) return std::string{what};
  auto check = what.substr(prefix.size());
  static constexpr std::pair<std::string_view, std::string_view> known[] = {
      {"IsObject()", "an object"},
      {"IsArray()", "an array"},
      {"IsString()", "a string"},
      {"IsBool()", "a boolean"},
      {"IsNumber()", "a number"},
      {"IsNull()", "null"},
      {"& kIntFlag", "an integer that fits in 32 bits"},
      {"& kUintFlag", "a non-negative integer that fits in 32 bits"},
      {"& kInt64Flag", "an integer that fits in 64 bits"},
      {"& kUint64Flag", "a non-negative integer that fits in 64 bits"},
  };
  for (auto [suffix, expected] : known)
    if (check.size() >= suffix.size() &&
        check.substr(check.size() - suffix.size()) == suffix)
      return "wrong JSON type: expected " + std::string{expected};
  return std::string{what};
}

} // namespace detail

} // namespace weft
