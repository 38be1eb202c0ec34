#pragma once
// The dead-letter record of a bad record (bad.record.policy=dead_letter):
// the original key, value and headers, plus headers that say what went
// wrong and where it came from. Internal to weft; no CAF.

#include <cstddef>
#include <string>
#include <string_view>

#include "weft/config.hpp"
#include "weft/record.hpp"

namespace weft::detail {

/// The longest error text a dead-letter header or a log line carries; a
/// decoder's message may quote much of a huge record (nlohmann's "last
/// read"), which would otherwise be copied into every log line about it.
inline constexpr size_t max_error_length = 1024;

/// `error` cut to max_error_length bytes, with the length it had.
std::string cap_error(std::string_view error);

/// The largest record the node's producer takes (message.max.bytes, as
/// librdkafka counts it: key, value and headers).
size_t max_message_bytes(const config& cfg);

/// The dead-letter record of `r` for `topic`: key, value, timestamp and
/// headers as they were, then weft.error, weft.service, weft.topic,
/// weft.partition and weft.offset. A record that would not fit in
/// `max_bytes` loses, in this order, its original headers, then the tail of
/// its value, then the tail of its key, and gets a weft.truncated header
/// saying what was cut: a bad record too large to dead-letter whole must
/// still not stop its service (the producer would refuse it, and a failed
/// delivery stops the task).
record dead_letter_record(const record_view& r, std::string_view error,
                          const std::string& service, const std::string& topic,
                          size_t max_bytes);

} // namespace weft::detail
