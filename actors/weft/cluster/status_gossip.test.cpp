// status_gossip: the newest status of each node wins whichever way it came,
// fresh statuses are passed on (never back to their own node), and a linked
// peer that falls silent is told apart from one whose link is broken one way.

#include "weft/cluster/status_gossip.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

using namespace weft::cluster;

namespace {

stamped_status status_of(const std::string& node, int64_t incarnation, uint64_t beat,
                         int64_t applied) {
  stamped_status s;
  s.status.node = node;
  s.status.incarnation = incarnation;
  s.status.applied = applied;
  s.beat = beat;
  return s;
}

std::vector<std::string> nodes_of(const std::vector<stamped_status>& xs) {
  std::vector<std::string> out;
  for (auto& x : xs)
    out.push_back(x.status.node);
  std::sort(out.begin(), out.end());
  return out;
}

status_gossip gossip_of_n2() {
  gossip_settings s;
  s.self = "n2";
  s.silence_ms = 3000;
  s.relay_fresh_ms = 3000;
  return status_gossip{s};
}

} // namespace

TEST_CASE("status gossip: only a newer status goes on, by incarnation then beat, "
          "whichever peer it came through") {
  auto g = gossip_of_n2();
  g.linked("n1", 0);
  g.linked("n3", 0);
  CHECK(g.take(status_of("n3", 5, 10, 80), "n3", 100));
  // The same status passed on by n1 later: not newer.
  CHECK_FALSE(g.take(status_of("n3", 5, 10, 80), "n1", 200));
  // A newer beat through n1 (n3's own link broken one way): goes on.
  CHECK(g.take(status_of("n3", 5, 11, 93), "n1", 600));
  // The older one arriving late on the direct link: stays back.
  CHECK_FALSE(g.take(status_of("n3", 5, 10, 80), "n3", 700));
  // A new incarnation wins even with a smaller beat (a restarted process).
  CHECK(g.take(status_of("n3", 6, 1, 93), "n1", 800));
  CHECK_FALSE(g.take(status_of("n3", 5, 99, 93), "n1", 900));
  // This node's own status, passed back to it: never taken.
  CHECK_FALSE(g.take(status_of("n2", 7, 1000, 93), "n1", 900));
  // The beat of this node's own status only grows.
  auto b1 = g.next_beat();
  CHECK(g.next_beat() == b1 + 1);
}

TEST_CASE("status gossip: fresh statuses are passed on, never to their own node, and "
          "one that stopped advancing stops being passed on") {
  auto g = gossip_of_n2();
  g.linked("n1", 0);
  g.linked("n3", 0);
  g.take(status_of("n1", 1, 1, 5), "n1", 1000);
  g.take(status_of("n3", 1, 1, 5), "n3", 1000);
  CHECK(nodes_of(g.relay_to("n1", 1500)) == std::vector<std::string>{"n3"});
  CHECK(nodes_of(g.relay_to("n3", 1500)) == std::vector<std::string>{"n1"});
  CHECK(nodes_of(g.relay_to("n4", 1500)) == std::vector<std::string>{"n1", "n3"});
  // n3's status advances no more (it is gone): after relay_fresh_ms it is no
  // longer passed on, while n1's, advancing, still is.
  g.take(status_of("n1", 1, 2, 5), "n1", 3900);
  CHECK(nodes_of(g.relay_to("n4", 4001)) == std::vector<std::string>{"n1"});
  // A node no longer in the cluster is forgotten.
  g.forget("n1");
  CHECK(g.relay_to("n4", 4001).empty());
}

TEST_CASE("status gossip: a linked peer silent past the bound is reported, as broken "
          "one way while its status still comes through others, else as silent") {
  auto g = gossip_of_n2();
  g.linked("n1", 0);
  g.linked("n3", 0);
  // Within the bound nobody is silent, though nothing arrived yet.
  CHECK(g.silent(3000).empty());
  // n1 keeps sending, and passes on n3's advancing status; n3 sends nothing
  // that arrives.
  for (time_ms t = 500; t <= 4000; t += 500) {
    g.take(status_of("n1", 1, static_cast<uint64_t>(t), 5), "n1", t);
    g.take(status_of("n3", 1, static_cast<uint64_t>(t), 5), "n1", t);
  }
  auto quiet = g.silent(4000);
  REQUIRE(quiet.size() == 1);
  CHECK(quiet[0].peer == "n3");
  CHECK(quiet[0].for_ms == 4000);
  CHECK(quiet[0].heard_through_others);
  // n1 stops passing it on (n3 is gone altogether): silent, heard by no way.
  for (time_ms t = 4500; t <= 8000; t += 500)
    g.take(status_of("n1", 1, static_cast<uint64_t>(t), 5), "n1", t);
  quiet = g.silent(8000);
  REQUIRE(quiet.size() == 1);
  CHECK(quiet[0].peer == "n3");
  CHECK_FALSE(quiet[0].heard_through_others);
  // Anything n3 sends that arrives ends its silence, whosever status it is.
  g.take(status_of("n1", 1, 1, 5), "n3", 8100);
  CHECK(g.silent(8100).empty());
  // An unlinked peer is never silent; linking again starts its clock anew.
  g.unlinked("n3");
  CHECK(g.silent(20000).size() == 1); // n1's last arrival was at 8000
  g.linked("n3", 20000);
  auto later = g.silent(22000);
  REQUIRE(later.size() == 1);
  CHECK(later[0].peer == "n1");
}

TEST_CASE("status gossip: after this node stalled, its peers' silence counts from the "
          "end of the stall") {
  auto g = gossip_of_n2();
  g.linked("n1", 0);
  g.take(status_of("n1", 1, 1, 5), "n1", 500);
  // Frozen from 600 to 7000: n1's statuses wait in the mailbox.
  g.stalled(7000);
  CHECK(g.silent(7000).empty());
  CHECK(g.silent(10000).empty());
  // Still nothing after the bound from the stall's end: silent.
  REQUIRE(g.silent(10001).size() == 1);
}
