#pragma once
// Logging: spdlog, one logger named "weft" writing to stderr. Call
// weft::log::setup() once at start-up (the node does); before that the
// default logger is used.

#include <spdlog/spdlog.h>

#include <string_view>

namespace weft::log {

/// Sets the level ("error", "warn", "info", "debug") and the line format.
void setup(std::string_view level);

using spdlog::debug;
using spdlog::error;
using spdlog::info;
using spdlog::warn;

} // namespace weft::log
