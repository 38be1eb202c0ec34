#include "weft/state/key_encoding.hpp"

namespace weft::state {

void append_be64(std::string& out, int64_t t) {
  auto u = static_cast<uint64_t>(t);
  for (int shift = 56; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((u >> shift) & 0xff));
}

int64_t read_be64(std::string_view bytes) {
  uint64_t u = 0;
  for (size_t i = 0; i < 8; ++i)
    u = (u << 8) | static_cast<uint8_t>(bytes[i]);
  return static_cast<int64_t>(u);
}

std::string encode_window_key(std::string_view key, timestamp_ms start) {
  std::string out;
  out.reserve(key.size() + window_suffix_size);
  out.append(key);
  append_be64(out, start);
  return out;
}

std::optional<window_key_view> decode_window_key(std::string_view encoded) {
  if (encoded.size() < window_suffix_size) return std::nullopt;
  auto n = encoded.size() - window_suffix_size;
  return window_key_view{encoded.substr(0, n), read_be64(encoded.substr(n))};
}

std::string encode_session_key(std::string_view key, session_window w) {
  std::string out;
  out.reserve(key.size() + session_suffix_size);
  out.append(key);
  append_be64(out, w.end);
  append_be64(out, w.start);
  return out;
}

std::optional<session_key_view> decode_session_key(std::string_view encoded) {
  if (encoded.size() < session_suffix_size) return std::nullopt;
  auto n = encoded.size() - session_suffix_size;
  session_window w;
  w.end = read_be64(encoded.substr(n));
  w.start = read_be64(encoded.substr(n + 8));
  return session_key_view{encoded.substr(0, n), w};
}

} // namespace weft::state
