#pragma once
// Logging: spdlog, one logger named "weft". Call weft::log::setup() once at
// start-up (the node does, from log.level and log.file); before that the
// default logger is used.
//
// Without a file every line goes to stderr. With log.file set, every line at
// log.level goes to the file (appended) and the console (stderr) keeps only
// warnings and errors: a program's own console output (a demo's progress
// lines) stays readable while nothing is lost.

#include <spdlog/spdlog.h>

#include <string>
#include <string_view>

#include "weft/status.hpp"

namespace weft::log {

/// Sets the level ("error", "warn", "info", "debug"), the line format and,
/// when `file` is not empty, the log file (its folder is created). A file
/// that cannot be opened for appending fails with errc::invalid_config
/// naming log.file; the logging is then left as it was. Calling it again
/// with the same arguments changes nothing.
status setup(std::string_view level, const std::string& file = {});

/// The log file set by setup(), or empty.
std::string file();

using spdlog::debug;
using spdlog::error;
using spdlog::info;
using spdlog::warn;

} // namespace weft::log
