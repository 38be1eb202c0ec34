#pragma once
// The one place where librdkafka error codes become weft statuses.

#include <librdkafka/rdkafka.h>

#include <string_view>

#include "weft/status.hpp"

namespace weft::kafka {

/// status{errc::kafka, "<context>: <error name>: <librdkafka text>"}, or ok for
/// RD_KAFKA_RESP_ERR_NO_ERROR.
status from_rd(rd_kafka_resp_err_t err, std::string_view context);

/// Converts an rd_kafka_error_t (transactional and admin APIs) and destroys it.
/// Fatal errors (e.g. a fenced producer) map to errc::kafka_fatal; retriable
/// ones keep errc::kafka and say "retriable" in the text.
status from_rd(rd_kafka_error_t* err, std::string_view context);

} // namespace weft::kafka
