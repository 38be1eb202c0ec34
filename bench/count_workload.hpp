#pragma once
// The count-by-key workload the state benchmarks share: its input (records
// over a key space, written once) and its service (get, +1, put in a
// RocksDB store with a changelog, optionally emit the new count).
// Header-only (benchmarks are programs).

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>

#include "weft/kafka/producer.hpp"
#include "weft/node.hpp"

namespace weft::bench {

/// Writes `n` records of 88-byte values to `topic`, keys "key%09d" walking
/// `keys` keys in a scattered order ((i * 7919) % keys), partitioned by
/// murmur2 (as the Java client); with `partitions_for_key` > 0 record i goes
/// to partition i % partitions_for_key instead (a changelog written
/// directly). Ends the program on an error.
inline void produce_keys(const std::string& bootstrap, const std::string& topic, size_t n,
                         size_t keys, int32_t partitions_for_key = -1) {
  auto p = kafka::producer::create({{"bootstrap.servers", bootstrap},
                                    {"linger.ms", "20"},
                                    {"partitioner", "murmur2_random"}});
  if (!p) {
    std::fprintf(stderr, "bench: %s\n", p.error().message().c_str());
    std::exit(1);
  }
  std::string value(88, 'v');
  for (size_t i = 0; i < n; ++i) {
    char key[24];
    int len = std::snprintf(key, sizeof key, "key%09zu", (i * 7919) % keys);
    int32_t part =
        partitions_for_key > 0 ? static_cast<int32_t>(i % partitions_for_key) : -1;
    while ((*p)->send(topic, part, std::string_view{key, size_t(len)}, value).code() ==
           errc::queue_full)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (auto s = (*p)->flush(120000); !s) {
    std::fprintf(stderr, "bench: %s\n", s.message().c_str());
    std::exit(1);
  }
}

/// Counts records per key in the store "counts"; with `emit`, writes every
/// new count to its output (as Kafka Streams' count().toStream().to()).
struct key_counter : service_base {
  output<bytes_serde, int64_serde> out;
  bool emit;
  key_counter(std::string in, std::string out_topic, bool emit_counts)
    : service_base("counter"), emit(emit_counts) {
    add_input(in);
    add_store({"counts", store_decl::kind::kv});
    out = output<bytes_serde, int64_serde>{add_output(out_topic, output_kind::external)};
  }
  void on_record(const record_view& r, context& ctx) override {
    auto& store = ctx.kv_store("counts");
    auto old = store.get(*r.key);
    int64_t n = 1;
    if (old.ok() && *old) n += *int64_serde::deserialize(**old);
    (void)store.put(*r.key, int64_serde::serialize(n));
    if (emit) out.emit(ctx, std::string{*r.key}, n);
  }
};

} // namespace weft::bench
