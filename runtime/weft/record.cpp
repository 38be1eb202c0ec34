#include "weft/record.hpp"

#include <librdkafka/rdkafka.h>

namespace weft {

std::optional<std::string_view> record_view::header_value(std::string_view name) const {
  if (!headers_) return std::nullopt;
  auto* hdrs = static_cast<const rd_kafka_headers_t*>(headers_);
  std::string key{name};
  const void* v = nullptr;
  size_t size = 0;
  if (rd_kafka_header_get_last(hdrs, key.c_str(), &v, &size) !=
      RD_KAFKA_RESP_ERR_NO_ERROR)
    return std::nullopt;
  return std::string_view{v ? static_cast<const char*>(v) : "", size};
}

std::vector<header> record_view::headers() const {
  std::vector<header> out;
  if (!headers_) return out;
  auto* hdrs = static_cast<const rd_kafka_headers_t*>(headers_);
  const char* name = nullptr;
  const void* v = nullptr;
  size_t size = 0;
  for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &v, &size) == 0; ++i)
    out.push_back({name, v ? std::string{static_cast<const char*>(v), size} : ""});
  return out;
}

} // namespace weft
