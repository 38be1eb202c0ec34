#pragma once
// The byte layout of window and session store keys. It is the key of every
// record in a windowed or session store's changelog, so it is part of weft's
// on-the-wire format: RocksDB and in-memory stores use the same layout, and a
// changelog written by one restores into the other.
//
//   window key:  <user key bytes> <window start: 8 bytes, big-endian>
//   session key: <user key bytes> <session end: 8 bytes, big-endian>
//                                 <session start: 8 bytes, big-endian>
//
// Times are unsigned big-endian so that byte order is time order: a window or
// session time must be >= 0 (encode_* callers check; the stores answer
// errc::invalid_argument). The user key has no length prefix: the fixed-size
// suffix makes decoding unambiguous (the user key is everything before it).
// Keys of different lengths may interleave in byte order ("a" windows sort
// among "a\0" windows), so the stores filter scans by encoded length — the
// same trade-off as Kafka Streams' WindowKeySchema.
//
// Pure functions; safe from any thread.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "weft/state/store.hpp"

namespace weft::state {

/// Bytes of the time suffix of a window key.
constexpr size_t window_suffix_size = 8;
/// Bytes of the time suffix of a session key.
constexpr size_t session_suffix_size = 16;

/// Appends `t` as 8 big-endian bytes (t must be >= 0 to keep byte order).
void append_be64(std::string& out, int64_t t);
/// Reads 8 big-endian bytes (the caller checks the size).
int64_t read_be64(std::string_view bytes);

/// `key` followed by the big-endian window start.
std::string encode_window_key(std::string_view key, timestamp_ms start);

/// The parts of an encoded window key; views into the encoded bytes.
struct window_key_view {
  std::string_view key;
  timestamp_ms start = 0;
};
/// nullopt when `encoded` is shorter than the suffix.
std::optional<window_key_view> decode_window_key(std::string_view encoded);

/// `key` followed by the big-endian session end, then start.
std::string encode_session_key(std::string_view key, session_window w);

struct session_key_view {
  std::string_view key;
  session_window window;
};
/// nullopt when `encoded` is shorter than the suffix.
std::optional<session_key_view> decode_session_key(std::string_view encoded);

} // namespace weft::state
