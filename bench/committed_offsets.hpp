#pragma once
// What the benchmarks that wait for a run to finish share: the input
// offsets a group has committed. Header-only (benchmarks are programs).

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "weft/kafka/consumer.hpp"

namespace weft::bench {

/// The sum of `group`'s committed offsets on partitions 0..parts-1 of `topic`
/// (a partition without a commit counts 0): the records the run has finished.
/// -1 when the broker does not answer within 10 s. A consumer that cannot be
/// created ends the program (a wrong bootstrap, nothing to wait for).
inline int64_t committed_sum(const std::string& bootstrap, const std::string& group,
                             const std::string& topic, int parts) {
  auto c =
      kafka::consumer::create({{"bootstrap.servers", bootstrap}, {"group.id", group}});
  if (!c) {
    std::fprintf(stderr, "bench: %s\n", c.error().message().c_str());
    std::exit(1);
  }
  std::vector<topic_partition> tps;
  for (int p = 0; p < parts; ++p)
    tps.push_back({topic, partition_id{p}});
  auto offs = (*c)->committed(tps, 10000);
  if (!offs) return -1;
  int64_t sum = 0;
  for (auto o : *offs)
    sum += std::max<int64_t>(o, 0);
  return sum;
}

} // namespace weft::bench
