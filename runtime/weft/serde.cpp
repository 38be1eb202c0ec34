#include "weft/serde.hpp"

#include <algorithm>
#include <charconv>

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

json_number_guard guard_json_numbers(std::string_view json) {
  json_number_guard g;
  auto& out = g.text;
  size_t copied = 0; // json[0, copied) is in *out already
  bool in_string = false, escaped = false;
  size_t i = 0;
  const size_t n = json.size();
  auto digit = [&](size_t k) { return k < n && json[k] >= '0' && json[k] <= '9'; };
  auto replace = [&](size_t from, size_t to, const char* with) {
    if (!out) {
      out.emplace();
      out->reserve(n);
    }
    out->append(json.substr(copied, from - copied));
    out->append(with);
    copied = to;
  };
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
    bool well_formed = digit(i);
    // The decimal magnitude of the first non-zero digit: 1.5 -> 0, 120 -> 2,
    // 0.03 -> -2; `zero` while every digit so far is 0.
    bool zero = true;
    int64_t magnitude = 0, place = -1; // place: integer digits seen - 1
    while (digit(i)) {
      ++place;
      if (zero && json[i] != '0') zero = false, magnitude = -place;
      ++i;
    }
    const int64_t integer_digits = place + 1;
    int64_t fraction_digits = 0;
    if (!zero) magnitude += integer_digits - 1;
    const bool saw_point = i < n && json[i] == '.';
    if (saw_point) {
      ++i;
      well_formed = well_formed && digit(i);
      while (digit(i)) {
        ++fraction_digits;
        if (zero && json[i] != '0') zero = false, magnitude = -fraction_digits;
        ++i;
      }
    }
    int64_t exponent = 0;
    const bool has_exponent = i < n && (json[i] == 'e' || json[i] == 'E');
    if (has_exponent) {
      ++i;
      bool minus = false;
      if (i < n && (json[i] == '+' || json[i] == '-')) minus = json[i++] == '-';
      well_formed = well_formed && digit(i);
      while (digit(i)) {
        if (exponent < 100000) exponent = exponent * 10 + (json[i] - '0');
        ++i;
      }
      if (minus) exponent = -exponent;
    }
    if (i == start) ++i;        // a lone '-': step over it
    if (!well_formed) continue; // rapidjson refuses it
    // The space ends the number however the text goes on: "0e1e5" must not
    // become another zero with an exponent, "0.0e5".
    const char* zero_text = negative ? "-0.0 " : "0.0 ";
    const int64_t digits = integer_digits + fraction_digits;
    const bool plain_integer = fraction_digits == 0 && !has_exponent && !saw_point;
    if (zero) {
      // A short zero takes rapidjson's fast path; a long one (0.000...0 with
      // more digits than a double holds) the one that misreads it.
      if (has_exponent || digits > 15) replace(start, i, zero_text);
      continue;
    }
    // What rapidjson reads exactly without its full-precision path: an
    // integer that fits 64 bits (read as an integer), or at most 15 digits
    // and no exponent.
    if (plain_integer &&
        (digits < 20 ||
         (digits == 20 && !negative && json.substr(start, 20) <= "18446744073709551615")))
      continue;
    if (!plain_integer && !has_exponent && digits <= 15) continue;
    if (magnitude + exponent > 308) {
      g.error = "number " +
                std::string{json.substr(start, std::min<size_t>(i - start, 40))} +
                " is out of the range of a double";
      return g;
    }
    if (magnitude + exponent < -400) {
      replace(start, i, zero_text); // below the smallest double: zero
      continue;
    }
    // Anything else is read here, exactly (from_chars rounds correctly),
    // and handed on as the shortest text of that double: at most 17 digits,
    // an exponent within a double's range, which rapidjson reads right.
    double v = 0;
    auto [end, ec] = std::from_chars(json.data() + start, json.data() + i, v);
    if (end != json.data() + i ||
        (ec != std::errc{} && ec != std::errc::result_out_of_range)) {
      g.error = "number " +
                std::string{json.substr(start, std::min<size_t>(i - start, 40))} +
                " cannot be read";
      return g;
    }
    if (ec == std::errc::result_out_of_range) {
      // Within the magnitudes above only by rounding: past the largest
      // double, or below the smallest.
      if (magnitude + exponent > 0) {
        g.error = "number " +
                  std::string{json.substr(start, std::min<size_t>(i - start, 40))} +
                  " is out of the range of a double";
        return g;
      }
      replace(start, i, zero_text);
      continue;
    }
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf - 1, v);
    *r.ptr++ = ' ';
    *r.ptr = '\0';
    replace(start, i, buf);
  }
  if (out) out->append(json.substr(copied));
  return g;
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
