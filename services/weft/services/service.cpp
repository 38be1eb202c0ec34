#include "weft/services/service.hpp"

namespace weft {

context::~context() = default;
service_base::~service_base() = default;

std::string repartition_topic(std::string_view app, std::string_view name) {
  std::string s{app};
  s += '-';
  s += name;
  s += "-repartition";
  return s;
}

} // namespace weft
