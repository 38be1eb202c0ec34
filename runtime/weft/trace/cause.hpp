#pragma once
// The causal header weft stamps on every record a service produces
// (trace.headers=true, the default): which service produced it and which
// input record it handled when it did. weft-trace follows these to list what
// one key's records caused under other keys (tools/trace/README.md).
//
// One header, `weft.cause`, with a text value:
//
//   <service>@<topic>/<partition>/<offset>   produced while handling that record
//   <service>@                               produced by a timer or punctuation
//
// Text, so kcat and kafka-console-consumer --property print.headers=true show
// it as it is; one header rather than two, since each header costs its name
// and two varints in every record. A topic name is [A-Za-z0-9._-]{1,249}
// (Kafka's rule), so the value parses from its last '@' whatever the
// service's name holds.
//
// Thread safety: free functions without shared state.

#include <cstdint>
#include <string>
#include <string_view>

#include "weft/status.hpp"

namespace weft::trace {

/// The header's name.
inline constexpr std::string_view cause_header = "weft.cause";

/// Longest value decode_cause() accepts (a service name is bounded by it).
inline constexpr size_t max_cause_bytes = 4096;

/// A decoded `weft.cause`.
struct cause {
  std::string service;
  std::string topic;      ///< empty: a timer or punctuation produced it
  int32_t partition = -1; ///< of `topic`
  int64_t offset = -1;    ///< of the input record in `topic`/`partition`
  bool has_input() const { return !topic.empty(); }
};

/// Writes the header's value into `out` (cleared first; its capacity is
/// reused, so a task building one per output allocates only while its
/// longest value grows). An empty `topic` encodes "no input record".
void encode_cause(std::string& out, std::string_view service, std::string_view topic,
                  int32_t partition, int64_t offset);

/// Parses a header value. errc::bad_record with the reason for anything
/// encode_cause() cannot have written (no '@', an empty service, a bad topic
/// name, a partition or offset that is not a non-negative decimal in range,
/// over max_cause_bytes). Never throws.
result<cause> decode_cause(std::string_view value);

} // namespace weft::trace
