#include "weft/log.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in{path};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

} // namespace

TEST_CASE("log.file takes every line at the level, in a folder it creates") {
  auto dir = "/tmp/weft-log-test-" + std::to_string(::getpid());
  auto path = dir + "/sub/node.log";
  std::filesystem::remove_all(dir);
  REQUIRE(weft::log::setup("info", path).ok());
  CHECK(weft::log::file() == path);
  weft::log::info("an info line {}", 1);
  weft::log::debug("a debug line");
  weft::log::warn("a warning");
  auto text = read_file(path);
  CHECK(text.find("info  [") != std::string::npos);
  CHECK(text.find("an info line 1") != std::string::npos);
  CHECK(text.find("a warning") != std::string::npos);
  CHECK(text.find("a debug line") == std::string::npos);
  // Back to the console only; the file keeps what it had.
  REQUIRE(weft::log::setup("info").ok());
  CHECK(weft::log::file().empty());
  weft::log::info("after");
  CHECK(read_file(path).find("after") == std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST_CASE("a log.file that cannot be written is refused naming the key, and the log "
          "stays as it was") {
  REQUIRE(weft::log::setup("info").ok());
  auto st = weft::log::setup("info", "/proc/weft-no-such-folder/node.log");
  REQUIRE_FALSE(st.ok());
  CHECK(st.code() == weft::errc::invalid_config);
  CHECK(st.message().find("log.file") != std::string::npos);
  CHECK(weft::log::file().empty());
}

TEST_CASE(
    "setup() while other threads log: every line lands somewhere, nothing crashes") {
  // Threads log through spdlog's default logger, a plain pointer; setup()
  // used to replace that logger (a use-after-free, and a null logger between
  // spdlog's drop() and set_default_logger()). 300 reconfigurations under two
  // logging threads crashed every run before the fix.
  auto dir = "/tmp/weft-log-race-" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  REQUIRE(weft::log::setup("info", dir + "/a.log").ok());
  std::atomic<bool> stop{false};
  std::atomic<long> lines{0};
  std::vector<std::thread> loggers;
  for (int t = 0; t < 2; ++t)
    loggers.emplace_back([&, t] {
      while (!stop.load()) {
        weft::log::warn("thread {} line {}", t, lines.fetch_add(1));
        weft::log::debug("thread {} debug", t);
      }
    });
  // Each setup() waits until the threads logged since the last one, so the
  // two really interleave however the machine schedules them (a busy CI
  // machine ran all 300 before either thread logged a line).
  auto logged_since = [&](long before) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (lines.load() <= before && std::chrono::steady_clock::now() < deadline)
      std::this_thread::yield();
    return lines.load() > before;
  };
  for (int i = 0; i < 300; ++i) {
    REQUIRE(logged_since(lines.load()));
    auto file = dir + (i % 2 == 0 ? "/b.log" : "/a.log");
    REQUIRE(weft::log::setup(i % 3 == 0 ? "debug" : "info", i % 5 == 0 ? "" : file).ok());
  }
  stop = true;
  for (auto& thread : loggers)
    thread.join();
  CHECK(lines.load() > 0);
  REQUIRE(weft::log::setup("info", dir + "/c.log").ok());
  weft::log::warn("the last line");
  CHECK(read_file(dir + "/c.log").find("the last line") != std::string::npos);
  CHECK(read_file(dir + "/a.log").find("thread ") != std::string::npos);
  REQUIRE(weft::log::setup("info").ok());
  std::filesystem::remove_all(dir);
}
