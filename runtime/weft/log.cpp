#include "weft/log.hpp"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/dist_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <filesystem>
#include <mutex>

namespace weft::log {

namespace {

std::mutex mu;
std::string current_file;
std::string current_level;
bool configured = false;

constexpr const char* pattern = "%Y-%m-%d %H:%M:%S.%e %^%-5l%$ [%t] %v";

// The one "weft" logger, made by the first setup() and never replaced: other
// threads log through spdlog's default_logger_raw(), a plain pointer, so
// replacing the logger while they run would hand them a destroyed object (and,
// between spdlog's drop() and set_default_logger(), none at all). A later
// setup() swaps the sinks behind this switch instead; dist_sink swaps under
// the same mutex every line is written under.
std::shared_ptr<spdlog::sinks::dist_sink_mt> sink_switch;
std::shared_ptr<spdlog::logger> weft_logger;

} // namespace

status setup(std::string_view level_name, const std::string& path) {
  std::lock_guard<std::mutex> guard{mu};
  auto level = spdlog::level::from_str(std::string{level_name});
  if (configured && current_file == path && current_level == level_name) return {};
  std::vector<spdlog::sink_ptr> sinks;
  auto console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  if (!path.empty()) {
    std::error_code ec;
    auto parent = std::filesystem::path{path}.parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    if (ec)
      return make_error(errc::invalid_config,
                        "log.file: cannot create the folder of '" + path +
                            "': " + ec.message() +
                            "; pick a writable path, or set "
                            "log.file= (empty) to log to the console");
    try {
      auto file_sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path, false);
      file_sink->set_level(level);
      sinks.push_back(std::move(file_sink));
    } catch (const std::exception& e) {
      return make_error(errc::invalid_config,
                        "log.file: cannot open '" + path + "' for appending (" +
                            e.what() +
                            "); pick a writable path, or set log.file= (empty) to log "
                            "to the console");
    }
    console->set_level(std::max(level, spdlog::level::warn));
  } else {
    console->set_level(level);
  }
  sinks.insert(sinks.begin(), console);
  for (auto& sink : sinks)
    sink->set_formatter(std::make_unique<spdlog::pattern_formatter>(pattern));
  if (!weft_logger) {
    sink_switch = std::make_shared<spdlog::sinks::dist_sink_mt>();
    weft_logger = std::make_shared<spdlog::logger>("weft", sink_switch);
  }
  sink_switch->set_sinks(std::move(sinks));
  weft_logger->set_level(level);
  if (spdlog::default_logger_raw() != weft_logger.get())
    spdlog::set_default_logger(weft_logger);
  // A file gets every line as it is written: a crash must not eat the last.
  weft_logger->flush_on(path.empty() ? spdlog::level::off : spdlog::level::trace);
  current_file = path;
  current_level = std::string{level_name};
  configured = true;
  return {};
}

std::string file() {
  std::lock_guard<std::mutex> guard{mu};
  return current_file;
}

} // namespace weft::log
