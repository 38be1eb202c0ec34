#include "weft/services/service.hpp"

namespace weft {

context::~context() = default;
service_base::~service_base() = default;

const char* to_string(service_pattern p) {
  switch (p) {
  case service_pattern::stateless:
    return "stateless";
  case service_pattern::enricher:
    return "enricher";
  case service_pattern::gate:
    return "gate";
  case service_pattern::stateful:
    return "stateful";
  case service_pattern::stream_aside:
    return "stream-aside";
  case service_pattern::sidecar:
    return "sidecar";
  }
  return "stateless";
}

service_pattern service_base::pattern() const {
  if (has_pattern_) return pattern_;
  if (!stores_.empty()) return service_pattern::stateful;
  for (auto& t : tables_)
    if (t.global) return service_pattern::enricher;
  return service_pattern::stateless;
}

std::string repartition_topic(std::string_view app, std::string_view name) {
  std::string s{app};
  s += '-';
  s += name;
  s += "-repartition";
  return s;
}

} // namespace weft
