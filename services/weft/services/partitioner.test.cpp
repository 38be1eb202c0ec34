#include "weft/services/partitioner.hpp"

#include <catch2/catch.hpp>
#include <librdkafka/rdkafka.h>

#include <string>
#include <utility>
#include <vector>

namespace {

// (key, Utils.murmur2(key.getBytes())) as the Java client computes them:
// Kafka's own UtilsTest.testMurmur2 vectors.
const std::vector<std::pair<std::string, int32_t>> java_vectors = {
    {"21", -973932308},
    {"foobar", -790332482},
    {"a-little-bit-long-string", -985981536},
    {"a-little-bit-longer-string", -1486304829},
    {"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
    {"abc", 479470107},
};

} // namespace

TEST_CASE("murmur2 gives the Java client's hash for known keys", "[operators]") {
  for (auto& [key, hash] : java_vectors) {
    INFO("key " << key);
    CHECK(weft::murmur2(key) == hash);
  }
}

TEST_CASE("murmur2 hashes every tail length and the empty key", "[operators]") {
  // librdkafka's unit-test vectors for its Java-compatible murmur2 (rdmurmur2.c).
  CHECK(static_cast<uint32_t>(weft::murmur2("kafka")) == 0xd067cf64U);
  CHECK(static_cast<uint32_t>(weft::murmur2("giberish123456789")) == 0x8f552b0cU);
  CHECK(static_cast<uint32_t>(weft::murmur2("1234")) == 0x9fc97b14U);
  CHECK(static_cast<uint32_t>(weft::murmur2("234")) == 0xe7c009caU);
  CHECK(static_cast<uint32_t>(weft::murmur2("34")) == 0x873930daU);
  CHECK(static_cast<uint32_t>(weft::murmur2("4")) == 0x5a4b5ca1U);
  CHECK(static_cast<uint32_t>(weft::murmur2("")) == 0x106e08d9U);
}

TEST_CASE("partition_for masks the sign bit and takes the remainder, as Java does",
          "[operators]") {
  for (auto& [key, hash] : java_vectors) {
    for (int32_t n : {1, 2, 3, 6, 12, 100}) {
      INFO("key " << key << ", " << n << " partitions");
      CHECK(weft::partition_for(key, n) == (hash & 0x7fffffff) % n);
    }
  }
  // "21" hashes negative: a plain abs() or a signed % would pick another one.
  CHECK(weft::partition_for("21", 6) == 1173551340 % 6);
}

TEST_CASE("partition_for agrees with librdkafka's murmur2 partitioner", "[operators]") {
  std::string key;
  for (int i = 0; i < 500; ++i) {
    key += static_cast<char>((i * 37 + 11) & 0xff); // every byte value, every length
    for (int32_t n : {1, 7, 64}) {
      auto expected = rd_kafka_msg_partitioner_murmur2(nullptr, key.data(), key.size(), n,
                                                       nullptr, nullptr);
      REQUIRE(weft::partition_for(key, n) == expected);
    }
  }
}
