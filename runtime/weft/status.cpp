#include "weft/status.hpp"

#include "weft/types.hpp"

namespace weft {

const char* to_string(errc code) {
  switch (code) {
  case errc::ok:
    return "ok";
  case errc::invalid_config:
    return "invalid configuration";
  case errc::invalid_argument:
    return "invalid argument";
  case errc::kafka:
    return "kafka";
  case errc::kafka_fatal:
    return "kafka fatal";
  case errc::kafka_retriable:
    return "kafka retriable";
  case errc::kafka_abortable:
    return "kafka transaction must be aborted";
  case errc::queue_full:
    return "producer queue full";
  case errc::timed_out:
    return "timed out";
  case errc::not_found:
    return "not found";
  case errc::bad_record:
    return "bad record";
  case errc::io:
    return "i/o";
  case errc::state_not_ready:
    return "state not ready";
  case errc::shutting_down:
    return "shutting down";
  case errc::internal:
    return "internal";
  }
  return "unknown";
}

std::string status::to_string() const {
  if (ok()) return "ok";
  return std::string{weft::to_string(code_)} + ": " + message_;
}

std::string to_string(const topic_partition& tp) {
  return tp.topic + "[" + std::to_string(tp.partition.value()) + "]";
}

} // namespace weft
