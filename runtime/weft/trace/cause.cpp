#include "weft/trace/cause.hpp"

#include <charconv>
#include <limits>

namespace weft::trace {

namespace {

bool legal_topic(std::string_view t) {
  if (t.empty() || t.size() > 249) return false;
  for (char c : t)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '.' || c == '_' || c == '-'))
      return false;
  return true;
}

/// A non-negative decimal without sign or leading zeros (but "0"), in range.
template <class Int>
bool parse_number(std::string_view s, Int& out) {
  if (s.empty() || s.size() > 19 || (s.size() > 1 && s[0] == '0')) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc{} && end == s.data() + s.size() && out >= 0;
}

status bad(std::string why) {
  return status{errc::bad_record, std::string{cause_header} + ": " + std::move(why)};
}

} // namespace

void encode_cause(std::string& out, std::string_view service, std::string_view topic,
                  int32_t partition, int64_t offset) {
  out.clear();
  out.append(service).push_back('@');
  if (topic.empty()) return;
  out.append(topic).push_back('/');
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, partition);
  out.append(buf, r.ptr).push_back('/');
  r = std::to_chars(buf, buf + sizeof buf, offset);
  out.append(buf, r.ptr);
}

result<cause> decode_cause(std::string_view v) {
  if (v.size() > max_cause_bytes)
    return bad(std::to_string(v.size()) + " bytes, more than " +
               std::to_string(max_cause_bytes));
  auto at = v.rfind('@');
  if (at == std::string_view::npos)
    return bad("no '@' between the service and the input record");
  cause c;
  c.service = std::string{v.substr(0, at)};
  if (c.service.empty()) return bad("no service before '@'");
  auto in = v.substr(at + 1);
  if (in.empty()) return c; // a timer's output
  auto s2 = in.rfind('/');
  auto s1 = s2 == std::string_view::npos || s2 == 0 ? std::string_view::npos
                                                    : in.rfind('/', s2 - 1);
  if (s1 == std::string_view::npos)
    return bad("the input record is not <topic>/<partition>/<offset>");
  auto topic = in.substr(0, s1);
  if (!legal_topic(topic))
    return bad("'" + std::string{topic.substr(0, 100)} + "' is not a topic name");
  if (!parse_number(in.substr(s1 + 1, s2 - s1 - 1), c.partition))
    return bad("the partition is not a number from 0 to 2147483647");
  if (!parse_number(in.substr(s2 + 1), c.offset))
    return bad("the offset is not a number from 0 to 9223372036854775807");
  c.topic = std::string{topic};
  return c;
}

} // namespace weft::trace
