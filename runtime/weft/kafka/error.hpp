#pragma once
// The one place where librdkafka error codes become weft statuses.

#include <librdkafka/rdkafka.h>

#include <string>
#include <string_view>

#include "weft/status.hpp"

namespace weft::kafka {

/// status{errc::kafka, "<context>: <error name>: <librdkafka text>"}, or ok for
/// RD_KAFKA_RESP_ERR_NO_ERROR.
status from_rd(rd_kafka_resp_err_t err, std::string_view context);

/// Converts an rd_kafka_error_t (transactional and admin APIs) and destroys it.
/// Fatal errors (e.g. a fenced producer) map to errc::kafka_fatal, errors
/// that require aborting the transaction to errc::kafka_abortable, timeouts
/// to errc::timed_out and other retriable ones to errc::kafka_retriable (the
/// call may be repeated as it is); the rest to errc::kafka.
status from_rd(rd_kafka_error_t* err, std::string_view context);

/// Number of partitions of `topic` as the brokers of `rk` know it;
/// errc::not_found when it does not exist. Asks for every topic's metadata:
/// a request naming the topic would make a broker with
/// auto.create.topics.enable create it, so checking would create. Blocks up
/// to timeout_ms.
result<int> topic_partition_count(rd_kafka_t* rk, const std::string& topic,
                                  int timeout_ms);

} // namespace weft::kafka
