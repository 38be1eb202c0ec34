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
    code = errc::kafka_abortable, msg += " (transaction must be aborted)";
  else if (rd_kafka_error_code(err) == RD_KAFKA_RESP_ERR__TIMED_OUT)
    code = errc::timed_out, msg += " (retriable)";
  else if (rd_kafka_error_is_retriable(err))
    code = errc::kafka_retriable, msg += " (retriable)";
  rd_kafka_error_destroy(err);
  return {code, std::move(msg)};
}

result<int> topic_partition_count(rd_kafka_t* rk, const std::string& topic,
                                  int timeout_ms) {
  const rd_kafka_metadata_t* md = nullptr;
  auto err = rd_kafka_metadata(rk, 1, nullptr, &md, timeout_ms);
  if (err) return from_rd(err, "metadata for topic '" + topic + "'");
  int n = -1;
  auto terr = RD_KAFKA_RESP_ERR_NO_ERROR;
  for (int i = 0; i < md->topic_cnt; ++i)
    if (topic == md->topics[i].topic) {
      terr = md->topics[i].err;
      n = md->topics[i].partition_cnt;
    }
  rd_kafka_metadata_destroy(md);
  if (terr == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || n <= 0)
    return make_error(errc::not_found, "topic '" + topic + "' does not exist");
  if (terr) return from_rd(terr, "metadata for topic '" + topic + "'");
  return n;
}

} // namespace weft::kafka
