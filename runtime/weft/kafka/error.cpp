#include "weft/kafka/error.hpp"

#include <string>

namespace weft::kafka {

status from_rd(rd_kafka_resp_err_t err, std::string_view context) {
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return {};
  std::string msg{context};
  msg += ": ";
  msg += rd_kafka_err2name(err);
  msg += ": ";
  msg += rd_kafka_err2str(err);
  auto code = err == RD_KAFKA_RESP_ERR__FENCED ||
                      err == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
                      err == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH ||
                      err == RD_KAFKA_RESP_ERR__FATAL
                  ? errc::kafka_fatal
              : err == RD_KAFKA_RESP_ERR__TIMED_OUT ? errc::timed_out
                                                    : errc::kafka;
  return {code, std::move(msg)};
}

status from_rd(rd_kafka_error_t* err, std::string_view context) {
  if (!err) return {};
  std::string msg{context};
  msg += ": ";
  msg += rd_kafka_error_name(err);
  msg += ": ";
  msg += rd_kafka_error_string(err);
  auto code = errc::kafka;
  if (rd_kafka_error_is_fatal(err))
    code = errc::kafka_fatal, msg += " (fatal)";
  else if (rd_kafka_error_txn_requires_abort(err))
    msg += " (transaction must be aborted)";
  else if (rd_kafka_error_is_retriable(err))
    msg += " (retriable)";
  if (rd_kafka_error_code(err) == RD_KAFKA_RESP_ERR__TIMED_OUT && code == errc::kafka)
    code = errc::timed_out;
  rd_kafka_error_destroy(err);
  return {code, std::move(msg)};
}

} // namespace weft::kafka
