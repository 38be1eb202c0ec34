#pragma once
// Kafka's default key partitioning, bit for bit: which partition of an
// n-partition topic a keyed record lands on.
//
// weft must place a key exactly where the Java client (and so Kafka Streams,
// and librdkafka's "murmur2" partitioner) would, or a repartitioned key would
// meet its table row on another task. Hence Java's murmur2 (signed 32-bit
// arithmetic, seed 0x9747b28c) and `(murmur2(key) & 0x7fffffff) % n`, as in
// org.apache.kafka.clients.producer.internals.BuiltInPartitioner.
//
// Header-only and dependency-free, so the runtime and the test driver share it.
// Pure functions: thread-safe.

#include <cstdint>
#include <string_view>

namespace weft {

/// Kafka's murmur2 hash (org.apache.kafka.common.utils.Utils.murmur2) of
/// `key`'s bytes, as the signed int the Java client computes.
inline int32_t murmur2(std::string_view key) noexcept {
  // Unsigned arithmetic gives the same bits as Java's wrapping int
  // arithmetic without C++'s signed-overflow undefined behaviour; Java's
  // `>>>` is a logical shift, which is what an unsigned shift does.
  constexpr uint32_t seed = 0x9747b28cU;
  constexpr uint32_t m = 0x5bd1e995U;
  constexpr int r = 24;
  const auto* data = reinterpret_cast<const unsigned char*>(key.data());
  const auto length = static_cast<uint32_t>(key.size());
  uint32_t h = seed ^ length;
  const uint32_t length4 = length / 4;
  for (uint32_t i = 0; i < length4; ++i) {
    const uint32_t i4 = i * 4;
    uint32_t k = static_cast<uint32_t>(data[i4]) |
                 (static_cast<uint32_t>(data[i4 + 1]) << 8) |
                 (static_cast<uint32_t>(data[i4 + 2]) << 16) |
                 (static_cast<uint32_t>(data[i4 + 3]) << 24);
    k *= m;
    k ^= k >> r;
    k *= m;
    h *= m;
    h ^= k;
  }
  const uint32_t tail = length & ~3U;
  switch (length % 4) {
  case 3:
    h ^= static_cast<uint32_t>(data[tail + 2]) << 16;
    [[fallthrough]];
  case 2:
    h ^= static_cast<uint32_t>(data[tail + 1]) << 8;
    [[fallthrough]];
  case 1:
    h ^= static_cast<uint32_t>(data[tail]);
    h *= m;
  }
  h ^= h >> 13;
  h *= m;
  h ^= h >> 15;
  return static_cast<int32_t>(h);
}

/// The partition of `key` in a topic of `partitions` partitions (> 0), as the
/// Java client's default partitioner picks it for a record with a key.
/// Records without a key are not hashed (Kafka spreads them "sticky"), so
/// there is no overload for them.
inline int32_t partition_for(std::string_view key, int32_t partitions) noexcept {
  return static_cast<int32_t>((static_cast<uint32_t>(murmur2(key)) & 0x7fffffffU) %
                              static_cast<uint32_t>(partitions));
}

} // namespace weft
