#include "weft/log.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

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
