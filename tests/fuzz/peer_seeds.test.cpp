// The seed corpora of the peer message fuzz targets (corpus/peer_message/,
// corpus/peer_types/) are the encodings of well-formed and of out-of-bounds
// messages as a node writes them today: this test encodes them again and
// compares with the committed files, so a change of a wire type's fields
// cannot leave the fuzzers starting from stale seeds. Run with
// WEFT_WRITE_SEEDS=1 to write them (then commit them).

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "peer_fuzzing.hpp"
#include "weft/protocol.hpp"

using namespace weft::cluster;

namespace {

struct seed {
  std::string name;
  std::vector<char> bytes;
};

template <class... Ts>
std::vector<char> payload(Ts&&... xs) {
  auto& env = weft::fuzz::peer_environment::get();
  return env.encode({}, caf::make_message(std::forward<Ts>(xs)...));
}

template <class... Ts>
std::vector<char> typed(char type, Ts... xs) {
  auto& env = weft::fuzz::peer_environment::get();
  std::vector<char> out;
  caf::binary_serializer sink{env.context(), out};
  REQUIRE(!sink(xs...));
  out.insert(out.begin(), type);
  return out;
}

node_status a_status() {
  node_status s;
  s.node = "n2";
  s.incarnation = 1733400000000;
  s.applied = 7;
  s.holding = {0, 2, 5};
  s.standby_lag = {{1, 0}, {3, 12}};
  s.active_lag = {{0, 4}, {2, -1}};
  return s;
}

member_record a_record() {
  return {"n2", "10.0.0.2", 7100, "10.0.0.2:8080", 1733400000000, "3f2a9c"};
}

std::vector<seed> message_seeds() {
  auto many = a_status();
  many.holding.clear();
  for (unit_id u = 0; u < 40; ++u)
    many.holding.push_back(u);
  auto unsorted = a_status();
  unsorted.holding = {5, 2};
  query_answer found{0, true, R"({"count":3})", ""};
  query_answer moving{static_cast<int32_t>(weft::errc::state_not_ready), false, "",
                      "store 'counts' partition 3 is moving; retry shortly"};
  query_answer odd_code{999, false, "", "?"};
  scan_answer piece{0, "", {"c1", "c2", "c3"}, {"1", "2", "3"}, true};
  scan_answer unordered{0, "", {"c2", "c1"}, {"2", "1"}, false};
  return {
      {"status", payload(status_atom::value, a_status(), uint64_t{17})},
      {"status_many_units", payload(status_atom::value, many, uint64_t{18})},
      {"status_unsorted", payload(status_atom::value, unsorted, uint64_t{19})},
      {"hello", payload(hello_atom::value, a_record(), query_server_actor{})},
      {"hello_answer", payload(a_record(), query_server_actor{})},
      {"leaving", payload(leaving_atom::value, std::string{"n2"})},
      {"query",
       payload(query_atom::value, std::string{"counts"}, std::string{"k1"}, int64_t{-1})},
      {"query_answer", payload(found)},
      {"query_answer_moving", payload(moving)},
      {"query_answer_odd_code", payload(odd_code)},
      {"scan",
       payload(scan_atom::value, std::string{"customers"}, std::vector<int32_t>{0, 3},
               std::string{"c1"}, std::string{"c2"}, uint32_t{100})},
      {"park", payload(park_atom::value, std::string{"orders"}, int32_t{2},
                       std::string{"\1\0\0\0\4o-17", 9}, std::string{"retry"})},
      {"scan_answer", payload(piece)},
      {"scan_answer_unordered", payload(unordered)},
  };
}

std::vector<seed> type_seeds() {
  scan_answer piece{0, "", {"c1", "c2"}, {"1", "2"}, true};
  return {
      {"status", typed(0, a_status())},
      {"record", typed(1, a_record())},
      {"query_answer", typed(2, query_answer{0, true, "v", ""})},
      {"scan_answer", typed(3, piece)},
      {"query_args", typed(4, std::string{"counts"}, std::string{"k1"}, int64_t{5})},
      {"scan_args", typed(5, std::string{"customers"}, std::vector<int32_t>{1, 2},
                          std::string{"a"}, std::string{}, uint32_t{10})},
      {"park_args", typed(6, std::string{"orders"}, int32_t{2},
                          std::string{"\1\0\0\0\4o-17", 9}, std::string{"skip"})},
  };
}

void compare_or_write(const std::string& target, const std::vector<seed>& seeds) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path{WEFT_FUZZ_DIR} / "corpus" / target;
  const bool write = std::getenv("WEFT_WRITE_SEEDS") != nullptr;
  for (auto& s : seeds) {
    INFO(target << "/" << s.name);
    REQUIRE(!s.bytes.empty());
    auto path = dir / s.name;
    if (write) {
      fs::create_directories(dir);
      std::ofstream out{path, std::ios::binary};
      out.write(s.bytes.data(), static_cast<std::streamsize>(s.bytes.size()));
      continue;
    }
    std::ifstream in{path, std::ios::binary};
    REQUIRE(in);
    std::vector<char> committed{std::istreambuf_iterator<char>{in}, {}};
    CHECK(committed == s.bytes);
  }
}

} // namespace

TEST_CASE("the peer fuzz targets' seeds are today's encodings of every message a node "
          "takes from another") {
  compare_or_write("peer_message", message_seeds());
  compare_or_write("peer_types", type_seeds());
}
