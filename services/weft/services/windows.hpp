#pragma once
// Windows for aggregations and joins, and how windowed keys look on a topic.
//
// Time is event time: a record's timestamp decides its windows. Each task
// keeps a stream time, the largest record timestamp it has seen; a window
// *closes* when stream time passes its end plus the grace period, and a
// record that arrives for a closed window is *late*: the operator drops it
// and counts it (operator_base::drops().late), as Kafka Streams does.
//
//   weft::tumbling_window{60'000, 10'000}        // [0,60s) [60s,120s) ..., 10 s grace
//   weft::hopping_window{60'000, 15'000, 0}      // 1-minute windows every 15 s
//   weft::session_window_spec{30'000, 5'000}     // sessions split by 30 s of silence
//
// Windowed results are keyed like Kafka Streams' windowed serdes, so a Java
// consumer reads them with WindowedSerdes.timeWindowedSerdeFrom(K, size) or
// sessionWindowedSerdeFrom(K):
//   time window:    <key bytes><window start, int64 big-endian>
//   session window: <key bytes><session end, int64 BE><session start, int64 BE>
// The value is the aggregate, in the aggregate's own serde. A record keyed
// with these serdes goes to the partition of its plain key (murmur2 of the
// key bytes alone, Kafka Streams' WindowedStreamPartitioner), so windowed
// results are co-partitioned with the key's other topics.

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "weft/record.hpp"
#include "weft/serde.hpp"

namespace weft {

/// Fixed-size, non-overlapping windows [k*size, (k+1)*size).
struct tumbling_window {
  timestamp_ms size = 0;
  timestamp_ms grace = 0; ///< how long after its end a window still takes records
};

/// Fixed-size windows that start every `advance` ms (advance <= size), so a
/// record falls into size/advance windows. advance == size is tumbling.
struct hopping_window {
  timestamp_ms size = 0;
  timestamp_ms advance = 0;
  timestamp_ms grace = 0;
};

/// Per-key sessions: records closer than `inactivity_gap` to a session join
/// it (merging sessions they bridge); a session is [first, last] timestamp.
struct session_window_spec {
  timestamp_ms inactivity_gap = 0;
  timestamp_ms grace = 0;
};

/// When a windowed aggregation writes its result.
enum class emit {
  on_update,       ///< every change of a window's aggregate, at once
  on_window_close, ///< once per window, its final value, when the window closes
};

/// A time window [start, end): end is exclusive, as in Kafka Streams.
struct time_window {
  timestamp_ms start = 0;
  timestamp_ms end = 0;
  bool operator==(const time_window& o) const { return start == o.start && end == o.end; }
};

/// Hopping (or tumbling, advance == size) windows as one shape.
struct time_windows {
  timestamp_ms size = 0;
  timestamp_ms advance = 0;
  timestamp_ms grace = 0;
  time_windows(tumbling_window w) : size(w.size), advance(w.size), grace(w.grace) {}
  time_windows(hopping_window w) : size(w.size), advance(w.advance), grace(w.grace) {}
};

/// The windows that contain `ts` (>= 0), oldest first: Kafka's
/// TimeWindows.windowsFor, so window starts are multiples of `advance`.
inline std::vector<time_window> windows_for(timestamp_ms ts, const time_windows& w) {
  std::vector<time_window> out;
  timestamp_ms start = ts - w.size + w.advance;
  if (start < 0) start = 0;
  start = start / w.advance * w.advance;
  for (; start <= ts; start += w.advance)
    out.push_back({start, start + w.size});
  return out;
}

/// A key with the window it was aggregated in. For a time window `end` is
/// exclusive; for a session both ends are inclusive record timestamps.
template <class K>
struct windowed {
  K key;
  timestamp_ms start = 0;
  timestamp_ms end = 0;
  bool operator==(const windowed& o) const {
    return key == o.key && start == o.start && end == o.end;
  }
};

/// Kafka's TimeWindowedSerde over key serde KS: key bytes, then the window
/// start as a big-endian int64. The window end is not on the wire; give the
/// window size as `SizeMs` to have deserialize fill it in, otherwise it is
/// INT64_MAX, as Java's TimeWindowedDeserializer without a size does.
template <class KS, timestamp_ms SizeMs = 0>
struct time_windowed_serde {
  static_assert(is_serde_v<KS> && !is_nullable_serde_v<KS>,
                "time_windowed_serde<KS>: KS must be a non-nullable weft serde");
  using value_type = windowed<typename KS::value_type>;
  static constexpr const char* name = "time windowed";
  /// Partition by the plain key (serde.hpp, partition_key_suffix).
  static constexpr uint8_t partition_key_suffix = 8;

  static std::string serialize(const value_type& w) {
    std::string out = KS::serialize(w.key);
    char buf[8];
    detail::store_big_endian(buf, static_cast<uint64_t>(w.start));
    out.append(buf, 8);
    return out;
  }
  static result<value_type> deserialize(std::string_view bytes) {
    if (bytes.size() < 8)
      return decode_error(name, "expected at least 8 bytes, got " +
                                    std::to_string(bytes.size()));
    auto k = KS::deserialize(bytes.substr(0, bytes.size() - 8));
    if (!k) return k.error();
    auto start = static_cast<timestamp_ms>(
        detail::load_big_endian<uint64_t>(bytes.data() + bytes.size() - 8));
    timestamp_ms end = std::numeric_limits<timestamp_ms>::max();
    if (SizeMs > 0 && start <= end - SizeMs) end = start + SizeMs;
    return value_type{std::move(k).value(), start, end};
  }
};

/// Kafka's SessionWindowedSerde over key serde KS: key bytes, then the
/// session end and the session start as big-endian int64s.
template <class KS>
struct session_windowed_serde {
  static_assert(is_serde_v<KS> && !is_nullable_serde_v<KS>,
                "session_windowed_serde<KS>: KS must be a non-nullable weft serde");
  using value_type = windowed<typename KS::value_type>;
  static constexpr const char* name = "session windowed";
  /// Partition by the plain key (serde.hpp, partition_key_suffix).
  static constexpr uint8_t partition_key_suffix = 16;

  static std::string serialize(const value_type& w) {
    std::string out = KS::serialize(w.key);
    char buf[16];
    detail::store_big_endian(buf, static_cast<uint64_t>(w.end));
    detail::store_big_endian(buf + 8, static_cast<uint64_t>(w.start));
    out.append(buf, 16);
    return out;
  }
  static result<value_type> deserialize(std::string_view bytes) {
    if (bytes.size() < 16)
      return decode_error(name, "expected at least 16 bytes, got " +
                                    std::to_string(bytes.size()));
    auto k = KS::deserialize(bytes.substr(0, bytes.size() - 16));
    if (!k) return k.error();
    const char* tail = bytes.data() + bytes.size() - 16;
    auto end = static_cast<timestamp_ms>(detail::load_big_endian<uint64_t>(tail));
    auto start = static_cast<timestamp_ms>(detail::load_big_endian<uint64_t>(tail + 8));
    return value_type{std::move(k).value(), start, end};
  }
};

} // namespace weft
