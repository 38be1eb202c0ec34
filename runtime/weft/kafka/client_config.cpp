#include "weft/kafka/client_config.hpp"

namespace weft::kafka {

result<conf_ptr> make_conf(const std::map<std::string, std::string>& props) {
  conf_ptr conf{rd_kafka_conf_new()};
  char err[512];
  for (auto& [k, v] : props) {
    if (rd_kafka_conf_set(conf.get(), k.c_str(), v.c_str(), err, sizeof err) !=
        RD_KAFKA_CONF_OK)
      return make_error(errc::invalid_config,
                        "librdkafka property '" + k + "': " + err + " (set it as kafka." +
                            k + ", consumer." + k + " or producer." + k + ")");
  }
  return conf;
}

std::map<std::string, std::string> merge(std::map<std::string, std::string> base,
                                         const std::map<std::string, std::string>& over) {
  for (auto& [k, v] : over)
    base[k] = v;
  return base;
}

} // namespace weft::kafka
