#include "weft/cluster/assignor.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <set>

using weft::errc;
using weft::cluster::assign;
using weft::cluster::assignment;
using weft::cluster::assignment_from_json;
using weft::cluster::assignor_input;
using weft::cluster::load;

namespace {

assignor_input input(std::vector<std::string> members, size_t units,
                     const assignment* previous = nullptr, bool stateful = true) {
  assignor_input in;
  in.members = std::move(members);
  in.stateful.assign(units, stateful);
  in.previous = previous;
  return in;
}

int actives_on(const assignment& a, const std::string& node) {
  return load(a)[node].first;
}

int moves(const assignment& a) {
  return static_cast<int>(std::count_if(a.previous.begin(), a.previous.end(),
                                        [](auto& p) { return !p.empty(); }));
}

bool contains(const std::vector<std::string>& nodes, const std::string& node) {
  return std::find(nodes.begin(), nodes.end(), node) != nodes.end();
}

int warmups(const assignment& a) {
  return static_cast<int>(std::count_if(a.warmup.begin(), a.warmup.end(),
                                        [](auto& w) { return !w.empty(); }));
}

// Every assignment keeps these, whatever the input.
void check_valid(const assignment& a, const assignor_input& in) {
  std::set<std::string> members(in.members.begin(), in.members.end());
  CHECK(a.members == std::vector<std::string>(members.begin(), members.end()));
  size_t n = in.stateful.size();
  REQUIRE(a.active.size() == n);
  REQUIRE(a.standbys.size() == n);
  REQUIRE(a.warmup.size() == n);
  REQUIRE(a.previous.size() == n);
  size_t wanted = std::min<size_t>(in.num_standbys, members.size() - 1);
  for (size_t u = 0; u < n; ++u) {
    INFO("unit " << u);
    CHECK(members.count(a.active[u]) == 1);
    std::set<std::string> standbys(a.standbys[u].begin(), a.standbys[u].end());
    CHECK(standbys.size() == a.standbys[u].size());
    CHECK(standbys.count(a.active[u]) == 0);
    for (auto& s : standbys)
      CHECK(members.count(s) == 1);
    if (!in.stateful[u]) {
      CHECK(a.standbys[u].empty());
      CHECK(a.warmup[u].empty());
      continue;
    }
    size_t with_warmup = a.warmup[u].empty() ? 0 : 1;
    if (with_warmup) CHECK(standbys.count(a.warmup[u]) == 1);
    CHECK(a.standbys[u].size() - with_warmup ==
          std::min(wanted, members.size() - 1 - with_warmup));
  }
}

} // namespace

TEST_CASE("no members leaves every unit unassigned") {
  auto in = input({}, 3);
  auto a = assign(in);
  CHECK(a.members.empty());
  CHECK(a.active == std::vector<std::string>(3, ""));
  CHECK(a.standbys == std::vector<std::vector<std::string>>(3));
  CHECK(a.warmup == std::vector<std::string>(3, ""));
  CHECK(a.previous == std::vector<std::string>(3, ""));
}

TEST_CASE("a single node gets every unit and no standbys") {
  auto in = input({"n1"}, 5);
  auto a = assign(in);
  check_valid(a, in);
  CHECK(a.active == std::vector<std::string>(5, "n1"));
  CHECK(a.standbys == std::vector<std::vector<std::string>>(5));
  CHECK(warmups(a) == 0);
  CHECK(moves(a) == 0);
}

TEST_CASE("twelve stateful units on three nodes are spread 4/4/4 with one standby each") {
  auto in = input({"n3", "n1", "n2"}, 12);
  auto a = assign(in);
  check_valid(a, in);
  CHECK(a.members == std::vector<std::string>{"n1", "n2", "n3"});
  for (auto& [node, counts] : load(a)) {
    INFO(node);
    CHECK(counts.first == 4);
    CHECK(counts.second == 4);
  }
  for (size_t u = 0; u < 12; ++u) {
    REQUIRE(a.standbys[u].size() == 1);
    CHECK(a.standbys[u][0] != a.active[u]);
  }
  CHECK(warmups(a) == 0);
  CHECK(moves(a) == 0);
}

TEST_CASE("scaling out from one node to three warms up standbys before moving units") {
  auto one_in = input({"n1"}, 12);
  auto one = assign(one_in);

  // n2 and n3 join with no state: nothing moves, eight units get warm-ups.
  auto in = input({"n1", "n2", "n3"}, 12, &one);
  auto warming = assign(in);
  check_valid(warming, in);
  CHECK(warming.active == one.active);
  CHECK(moves(warming) == 0);
  CHECK(warmups(warming) == 8);
  CHECK(std::count(warming.warmup.begin(), warming.warmup.end(), "n2") == 4);
  CHECK(std::count(warming.warmup.begin(), warming.warmup.end(), "n3") == 4);

  // Lags still unknown: the same warm-ups again, still no moves.
  in.previous = &warming;
  auto still = assign(in);
  CHECK(still == warming);

  // The warm-up copies report caught up: those units move, and balance.
  for (size_t u = 0; u < 12; ++u)
    if (!warming.warmup[u].empty()) in.standby_lag[{u, warming.warmup[u]}] = 120;
  auto moved = assign(in);
  check_valid(moved, in);
  CHECK(warmups(moved) == 0);
  CHECK(moves(moved) == 8);
  for (size_t u = 0; u < 12; ++u) {
    INFO("unit " << u);
    if (warming.warmup[u].empty()) {
      CHECK(moved.active[u] == "n1");
      CHECK(moved.previous[u].empty());
    } else {
      CHECK(moved.active[u] == warming.warmup[u]);
      CHECK(moved.previous[u] == "n1");
      // The standby is a node that already holds the state: the one that
      // handed the unit off or a standby of the warm-up round.
      REQUIRE(moved.standbys[u].size() == 1);
      auto& standby = moved.standbys[u][0];
      CHECK((standby == "n1" || contains(warming.standbys[u], standby)));
    }
  }
  for (auto& [node, counts] : load(moved)) {
    INFO(node);
    CHECK(counts.first == 4);
    CHECK(counts.second == 4);
  }
}

TEST_CASE(
    "a node that dies hands its units at once to the nodes holding their standbys") {
  auto three_in = input({"n1", "n2", "n3"}, 12);
  auto three = assign(three_in);

  auto in = input({"n1", "n2"}, 12, &three);
  auto a = assign(in);
  check_valid(a, in);
  for (size_t u = 0; u < 12; ++u) {
    INFO("unit " << u);
    if (three.active[u] == "n3") {
      REQUIRE(three.standbys[u].size() == 1);
      CHECK(a.active[u] == three.standbys[u][0]);
    } else {
      CHECK(a.active[u] == three.active[u]);
    }
    CHECK(a.previous[u].empty()); // a failover from a dead node is no handoff
  }
  CHECK(actives_on(a, "n1") + actives_on(a, "n2") == 12);
}

TEST_CASE("a dead node's unit goes to the standby with the smallest lag") {
  assignment prev;
  prev.members = {"n1", "n2", "n3"};
  prev.active = {"n3"};
  prev.standbys = {{"n1", "n2"}};
  prev.warmup = {""};
  prev.previous = {""};
  auto in = input({"n1", "n2"}, 1, &prev);
  in.num_standbys = 2;
  in.standby_lag = {{{0, "n1"}, 500}, {{0, "n2"}, 7}};
  auto a = assign(in);
  check_valid(a, in);
  CHECK(a.active[0] == "n2");
  CHECK(a.standbys[0] == std::vector<std::string>{"n1"});
  CHECK(a.previous[0].empty());
}

TEST_CASE("the same input twice gives the same assignment and moves nothing") {
  auto first_in = input({"n1", "n2", "n3"}, 10);
  first_in.num_standbys = 2;
  auto first = assign(first_in);

  auto in = first_in;
  in.previous = &first;
  auto second = assign(in);
  check_valid(second, in);
  CHECK(second == first);
  CHECK(moves(second) == 0);
  CHECK(assign(in) == second);
}

TEST_CASE("num.standby.replicas=0 places no standbys") {
  auto in = input({"n1", "n2", "n3"}, 9);
  in.num_standbys = 0;
  auto a = assign(in);
  check_valid(a, in);
  CHECK(a.standbys == std::vector<std::vector<std::string>>(9));
  for (auto& node : {"n1", "n2", "n3"})
    CHECK(actives_on(a, node) == 3);
}

TEST_CASE("stateless units get no standbys and move at once when balancing") {
  auto one_in = input({"n1"}, 4, nullptr, /*stateful=*/false);
  auto one = assign(one_in);

  auto in = input({"n1", "n2"}, 4, &one, /*stateful=*/false);
  auto a = assign(in);
  check_valid(a, in);
  CHECK(a.standbys == std::vector<std::vector<std::string>>(4));
  CHECK(warmups(a) == 0);
  CHECK(actives_on(a, "n1") == 2);
  CHECK(actives_on(a, "n2") == 2);
  for (size_t u = 0; u < 4; ++u)
    CHECK(a.previous[u] == (a.active[u] == "n2" ? "n1" : ""));
}

TEST_CASE("a balancing move prefers a unit whose target has a caught-up standby") {
  auto one_in = input({"n1"}, 4);
  auto one = assign(one_in);

  auto in = input({"n1", "n2"}, 4, &one);
  in.standby_lag = {{{2, "n2"}, 0}, {{3, "n2"}, 50000}};
  auto a = assign(in);
  check_valid(a, in);
  CHECK(a.active == std::vector<std::string>{"n1", "n1", "n2", "n1"});
  CHECK(a.previous == std::vector<std::string>{"", "", "n1", ""});
  // The second unit n2 should take waits for a warm-up: unbalanced on purpose.
  CHECK(warmups(a) == 1);
  CHECK(a.warmup[2].empty());
}

TEST_CASE("the assignment does not depend on the order of members") {
  auto one_in = input({"a"}, 7);
  one_in.stateful[3] = false;
  auto one = assign(one_in);

  std::vector<std::string> members{"a", "b", "c", "d"};
  auto in = input(members, 7, &one);
  in.stateful[3] = false;
  in.standby_lag = {{{1, "c"}, 3}, {{4, "b"}, 0}};
  auto expected = assign(in);
  check_valid(expected, in);
  do {
    in.members = members;
    CHECK(assign(in) == expected);
  } while (std::next_permutation(members.begin(), members.end()));
}

TEST_CASE("a previous assignment with another unit count is ignored") {
  auto old_in = input({"n2"}, 3);
  auto old = assign(old_in);
  auto in = input({"n1", "n2"}, 4, &old);
  auto a = assign(in);
  check_valid(a, in);
  CHECK(a.active == std::vector<std::string>{"n1", "n2", "n1", "n2"});
  CHECK(moves(a) == 0);
  CHECK(warmups(a) == 0);
}

TEST_CASE("an assignment survives a JSON round trip") {
  auto one_in = input({"n1"}, 6);
  auto one = assign(one_in);
  auto in = input({"n1", "n2", "n3"}, 6, &one);
  in.stateful[5] = false;
  in.standby_lag = {{{0, "n2"}, 0}};
  auto a = assign(in);
  a.generation = 42;
  a.leader = "n1";
  REQUIRE(warmups(a) > 0);
  REQUIRE(moves(a) > 0);

  auto back = assignment_from_json(weft::cluster::to_json(a));
  REQUIRE(back.ok());
  CHECK(*back == a);
  CHECK(back->generation == 42);
  CHECK(back->leader == "n1");
}

TEST_CASE("malformed assignment JSON fails with invalid_argument naming the problem") {
  auto not_json = assignment_from_json("{\"generation\": 1,");
  REQUIRE_FALSE(not_json.ok());
  CHECK(not_json.error().code() == errc::invalid_argument);
  CHECK_THAT(not_json.error().message(),
             Catch::Contains("invalid assignment JSON") && Catch::Contains("parse"));

  auto mistyped = assignment_from_json(
      R"({"generation": 1, "leader": "n1", "members": ["n1"], "active": ["n1", 2],
          "standbys": [[], []], "warmup": ["", ""], "previous": ["", ""]})");
  REQUIRE_FALSE(mistyped.ok());
  CHECK_THAT(mistyped.error().message(),
             Catch::Contains("'active' must be an array of strings"));

  auto missing = assignment_from_json(R"({"generation": 1, "leader": "n1"})");
  REQUIRE_FALSE(missing.ok());
  CHECK_THAT(missing.error().message(), Catch::Contains("'members' is missing"));

  auto short_array = assignment_from_json(
      R"({"generation": 1, "leader": "n1", "members": ["n1"], "active": ["n1", "n1"],
          "standbys": [[], []], "warmup": [""], "previous": ["", ""]})");
  REQUIRE_FALSE(short_array.ok());
  CHECK_THAT(short_array.error().message(),
             Catch::Contains("'warmup' has 1 entries but 'active' has 2"));

  CHECK_FALSE(assignment_from_json("[1, 2]").ok());
}

TEST_CASE("stateful units are balanced on their own, and stateless ones even out the "
          "totals") {
  // 12 stateless units (0..11) and 12 stateful ones (12..23), as a pipeline
  // of a splitter and a counter over 12 partitions. Before: n1 runs 8
  // stateful units and n2 none; every standby is caught up.
  assignor_input in;
  in.members = {"n1", "n2", "n3"};
  in.stateful.assign(24, false);
  std::fill(in.stateful.begin() + 12, in.stateful.end(), true);
  assignment before;
  before.members = in.members;
  before.active.assign(24, "");
  before.standbys.assign(24, {});
  before.warmup.assign(24, "");
  before.previous.assign(24, "");
  for (size_t u = 0; u < 12; ++u)
    before.active[u] = u < 8 ? "n2" : "n3";
  for (size_t u = 12; u < 24; ++u) {
    before.active[u] = u < 20 ? "n1" : "n3";
    before.standbys[u] = {before.active[u] == "n1" ? "n2" : "n1"};
    for (auto& node : in.members)
      if (node != before.active[u]) in.standby_lag[{u, node}] = 0;
  }
  in.previous = &before;
  auto a = assign(in);
  check_valid(a, in);
  std::map<std::string, int> stateful, all;
  for (size_t u = 0; u < 24; ++u) {
    ++all[a.active[u]];
    if (in.stateful[u]) ++stateful[a.active[u]];
  }
  for (auto& node : in.members) {
    INFO(node);
    CHECK(stateful[node] == 4);
    CHECK(all[node] == 8);
  }
  CHECK(warmups(a) == 0);
  // From scratch as well.
  in.previous = nullptr;
  in.standby_lag.clear();
  auto fresh = assign(in);
  check_valid(fresh, in);
  std::map<std::string, int> fresh_stateful;
  for (size_t u = 12; u < 24; ++u)
    ++fresh_stateful[fresh.active[u]];
  for (auto& node : in.members)
    CHECK(fresh_stateful[node] == 4);
}
