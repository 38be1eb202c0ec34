#pragma once
// Events as weft passes them around. A `record` owns its bytes and is what a
// service produces; a `record_view` borrows the bytes of a consumed Kafka
// message for the length of one handler call, so consuming costs no copy.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "weft/types.hpp"

namespace weft {

/// One record header. Kafka allows a null header value; weft maps it to "".
struct header {
  std::string key;
  std::string value;
};

/// A header borrowed for one call (the producer copies it into librdkafka's
/// message): how weft adds its own header without owning a copy per record.
struct header_ref {
  std::string_view key;
  std::string_view value;
};

/// Timestamps are milliseconds since the epoch, as Kafka's CreateTime.
using timestamp_ms = int64_t;

/// A consumed event, borrowed. Valid only while the handler that received it
/// runs; copy what you keep. A null key or value (a tombstone) is nullopt.
struct record_view {
  std::string_view topic;
  partition_id partition;
  weft::offset offset;
  timestamp_ms timestamp = 0;
  std::optional<std::string_view> key;
  std::optional<std::string_view> value;
  /// Headers, decoded lazily by the caller through header_value().
  const void* headers_ = nullptr; // rd_kafka_headers_t*, owned by the message

  /// The last value of header `name`, if present.
  std::optional<std::string_view> header_value(std::string_view name) const;
  /// Every header, copied.
  std::vector<header> headers() const;
};

/// An event to produce, owned. partition < 0 means "partition by key hash"
/// (librdkafka's default partitioner, murmur2 like the Java client), so
/// records written by weft land where Kafka Streams would put them.
struct record {
  std::string topic;
  int32_t partition = -1;
  std::optional<std::string> key;
  std::optional<std::string> value;
  timestamp_ms timestamp = 0; ///< 0: the producer stamps the current time
  std::vector<header> headers;
  /// partition < 0: hash the key without its last `key_suffix` bytes, 0, 8
  /// (a time-windowed key) or 16 (a session-windowed key), so a windowed
  /// result lands on the partition of its plain key, as Kafka Streams'
  /// WindowedStreamPartitioner puts it.
  uint8_t key_suffix = 0;
};

} // namespace weft
