#pragma once
// Building librdkafka configurations from key/value maps.

#include <librdkafka/rdkafka.h>

#include <map>
#include <memory>
#include <string>

#include "weft/status.hpp"

namespace weft::kafka {

struct conf_deleter {
  void operator()(rd_kafka_conf_t* c) const { rd_kafka_conf_destroy(c); }
};
using conf_ptr = std::unique_ptr<rd_kafka_conf_t, conf_deleter>;

/// Applies every property to a new rd_kafka_conf_t. A property librdkafka
/// rejects fails with errc::invalid_config naming the key and librdkafka's
/// reason, e.g. "librdkafka property 'linger.ms': Configuration property
/// "linger.ms" value -1 is outside allowed range 0..900000".
result<conf_ptr> make_conf(const std::map<std::string, std::string>& props);

/// Properties merged: `over` wins over `base`.
std::map<std::string, std::string> merge(std::map<std::string, std::string> base,
                                         const std::map<std::string, std::string>& over);

} // namespace weft::kafka
