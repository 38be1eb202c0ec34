#include "weft/log.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace weft::log {

void setup(std::string_view level) {
  auto logger = spdlog::get("weft");
  if (!logger) logger = spdlog::stderr_color_mt("weft");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%-5l%$ [%t] %v");
  spdlog::set_level(spdlog::level::from_str(std::string{level}));
}

} // namespace weft::log
