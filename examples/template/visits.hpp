#pragma once
// A stateful service: counts each user's page views and writes the running
// count. Its state (user -> count) is a RocksDB store, backed up to a Kafka
// changelog and moved with the user's partition when nodes come and go.

#include <cstdint>
#include <optional>
#include <string>

#include <weft/services/stateful_processor.hpp>

namespace visits {

struct visit_counter
  : weft::stateful_processor<weft::string_serde, weft::string_serde, weft::int64_serde> {
  weft::output<weft::string_serde, weft::int64_serde> counts =
      to<weft::string_serde, weft::int64_serde>("visit-counts");

  visit_counter() : stateful_processor("visits", "page-views") {}

  void process(const std::string& user, const std::string& /*page*/,
               std::optional<int64_t>& count, weft::context& ctx) override {
    count = count.value_or(0) + 1;
    counts.emit(ctx, user, *count);
  }
};

} // namespace visits
