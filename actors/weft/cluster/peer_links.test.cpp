// The peer links against peers that send too much: the real peer_links
// actor, with stand-ins for the coordinator and the rebalancer that record
// what reaches them. What fails peer_bounds.hpp is dropped (counted, logged),
// never handed on, and the actor goes on serving the next, well-formed
// message: in one actor system, and between two actor systems of this
// process through CAF's io middleman (BASP over a real TCP connection on
// 127.0.0.1), as another node's messages arrive.

#include "weft/cluster/peer_links.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "weft/cluster/peer_bounds.hpp"
#include "weft/cluster/wire_types.hpp"
#include "weft/protocol.hpp"

using namespace weft::cluster;
using namespace std::chrono_literals;

namespace {

/// What reached the stand-ins, in order.
struct seen {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> statuses; ///< node ids, at the coordinator
  std::vector<std::string> rebalancer_statuses;
  std::vector<std::string> peers_up;
  std::vector<std::string> peers_up_incarnations; ///< "id#incarnation"
  std::vector<std::string> peers_down;
  void add(std::vector<std::string>& to, const std::string& what) {
    std::lock_guard<std::mutex> guard{mu};
    to.push_back(what);
    cv.notify_all();
  }
  /// Waits (at most 10 s) until `pred` holds; returns whether it did.
  template <class Pred>
  bool wait(Pred pred) {
    std::unique_lock<std::mutex> guard{mu};
    return cv.wait_for(guard, 10s, pred);
  }
};

coordinator_actor::behavior_type fake_coordinator(coordinator_actor::pointer, seen* s) {
  return {
      [](log_atom, const log_update_ptr&) {},
      [s](peer_up_atom, const member_record& m) {
        s->add(s->peers_up_incarnations, m.id + "#" + std::to_string(m.incarnation));
        s->add(s->peers_up, m.id);
      },
      [s](peer_down_atom, const std::string& id) { s->add(s->peers_down, id); },
      [s](status_atom, const node_status& st) {
        s->add(s->statuses, st.node + "@" + std::to_string(st.applied));
      },
      [](frozen_atom) {},
      [](rejoined_atom, int64_t) {},
      [](tick_atom) {},
      [](view_atom) { return std::string{}; },
      [](leave_atom) { return true; },
  };
}

rebalancer_actor::behavior_type fake_rebalancer(rebalancer_actor::pointer, seen* s) {
  return {
      [](log_atom, const log_update_ptr&) {},
      [s](status_atom, const node_status& st) {
        s->add(s->rebalancer_statuses, st.node);
      },
      [](fenced_atom, const std::string&) {},
      [](frozen_atom) {},
      [](tick_atom) {},
      [](view_atom) { return std::map<unit_id, std::string>{}; },
  };
}

struct node_config : caf::actor_system_config {
  node_config() {
    load<caf::io::middleman>();
    add_wire_types(*this);
    set("scheduler.max-threads", 2);
    set("logger.file-verbosity", caf::atom("quiet"));
    set("logger.console-verbosity", caf::atom("quiet"));
  }
};

/// One node's peer links (id "a", an application of 4 units) with recording
/// stand-ins for its coordinator and rebalancer, in an actor system of its own.
struct links_under_test {
  node_config cfg;
  caf::actor_system sys{cfg};
  seen got;
  peer_directory directory;
  std::atomic<uint64_t> dropped{0};
  member_record self{"a", "127.0.0.1", 0, "", 1, "topology"};
  caf::actor links, coordinator, rebalancer;

  links_under_test() {
    peer_links_settings ps;
    ps.self = self;
    ps.timeout_ms = 1000;
    ps.directory = &directory;
    ps.max_units = 4;
    ps.dropped = &dropped;
    coordinator = caf::actor_cast<caf::actor>(sys.spawn(fake_coordinator, &got));
    rebalancer = caf::actor_cast<caf::actor>(sys.spawn(fake_rebalancer, &got));
    links = spawn_peer_links(sys, ps, caf::actor{});
    caf::anon_send(caf::actor_cast<peer_links_actor>(links), announce_atom::value, self,
                   caf::actor_cast<coordinator_actor>(coordinator),
                   caf::actor_cast<rebalancer_actor>(rebalancer));
  }
  ~links_under_test() {
    for (auto& a : {links, coordinator, rebalancer})
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    links = coordinator = rebalancer = nullptr;
    // The actors use the members below: they must be gone first.
    sys.await_all_actors_done();
  }
};

/// Tells the node's links that the cluster log names `ids` (port 0: nobody
/// connects to them), as the node's log reader would.
void announce(links_under_test& node, const std::vector<std::string>& ids) {
  auto u = std::make_shared<log_update>();
  for (auto& id : ids)
    u->announced[id] = member_record{id, "127.0.0.1", 0, "", 2, "topology"};
  caf::anon_send(caf::actor_cast<peer_links_actor>(node.links), log_atom::value,
                 log_update_ptr{u});
}

node_status status_of(std::string node, std::vector<unit_id> holding) {
  node_status s;
  s.node = std::move(node);
  s.incarnation = 1;
  s.applied = 3;
  s.holding = std::move(holding);
  return s;
}

/// The statuses and handshakes no peer may send: one per bound.
std::vector<std::pair<std::string, node_status>> oversized_statuses() {
  std::vector<std::pair<std::string, node_status>> out;
  out.emplace_back("more units than the application's", status_of("b", {0, 1, 2, 3, 4}));
  out.emplace_back("a unit beyond the application's", status_of("b", {1, 70000}));
  out.emplace_back("units not sorted", status_of("b", {2, 1}));
  out.emplace_back("a node id of 2 KiB", status_of(std::string(2048, 'b'), {1}));
  auto lags = status_of("b", {1});
  for (unit_id u = 0; u < 5; ++u)
    lags.standby_lag[u] = 0;
  out.emplace_back("five standby lags", lags);
  auto far = status_of("b", {1});
  far.active_lag[9] = 0;
  out.emplace_back("an active lag of unit 9", far);
  return out;
}

} // namespace

TEST_CASE("peer bounds: each limit refuses with its reason, and a node's own status "
          "passes") {
  CHECK(peer_status_violation(status_of("n1", {0, 1, 3}), 4).empty());
  CHECK(peer_status_violation(status_of("n1", {}), 0).empty());
  for (auto& [what, s] : oversized_statuses()) {
    INFO(what);
    CHECK(!peer_status_violation(s, 4).empty());
  }
  CHECK_THAT(peer_status_violation(status_of("n1", {0, 9}), 4),
             Catch::Contains("unit 9") && Catch::Contains("4"));
  member_record m{"n1", "10.0.0.1", 7100, "10.0.0.1:8080", 5, "t"};
  CHECK(peer_record_violation(m).empty());
  m.host.assign(max_peer_text + 1, 'h');
  CHECK_THAT(peer_record_violation(m), Catch::Contains("host"));
  m.host = "h";
  m.id.clear();
  CHECK_THAT(peer_record_violation(m), Catch::Contains("empty"));
  CHECK(peer_query_violation("counts", "k", -1).empty());
  CHECK(!peer_query_violation("counts", std::string(max_peer_key + 1, 'k'), -1).empty());
  CHECK(!peer_query_violation("counts", "k", -2).empty());
  CHECK(peer_scan_violation("counts", 6, "a", "b", 100).empty());
  CHECK(!peer_scan_violation("counts", 6, "a", "b", 0).empty());
  CHECK(!peer_scan_violation("counts", 70000, "a", "b", 10).empty());
}

TEST_CASE("peer bounds: a forwarded park call is refused beyond each bound, naming it, "
          "and an operator's call within them passes") {
  const std::string id{"\1\0\0\0\3o-1", 8};
  for (auto* action : {"retry", "skip", "drop"})
    CHECK(peer_park_violation("orders", 5, id, action).empty());
  CHECK(peer_park_violation("orders", 0, std::string(max_peer_key + 5, 'k'), "drop")
            .empty());
  CHECK_THAT(peer_park_violation(std::string(max_peer_text + 1, 's'), 0, id, "retry"),
             Catch::Contains("service name"));
  CHECK_THAT(peer_park_violation("orders", -1, id, "retry"),
             Catch::Contains("partition"));
  CHECK_THAT(peer_park_violation("orders", 65536, id, "retry"),
             Catch::Contains("partition"));
  CHECK_THAT(
      peer_park_violation("orders", 0, std::string(max_peer_key + 6, 'k'), "retry"),
      Catch::Contains("key"));
  CHECK_THAT(peer_park_violation("orders", 0, id, "explode"), Catch::Contains("action"));
  CHECK_THAT(peer_park_violation("orders", 0, id, std::string(1 << 20, 'r')),
             Catch::Contains("action"));
}

TEST_CASE("the peer links drop every status, handshake and leave notice beyond the "
          "bounds, count them, and keep serving") {
  links_under_test node;
  auto links = caf::actor_cast<peer_links_actor>(node.links);
  announce(node, {"b", "c"});
  {
    caf::scoped_actor peer{node.sys};
    size_t sent = 0;
    for (auto& [what, s] : oversized_statuses()) {
      peer->send(links, status_atom::value, s, uint64_t{1});
      ++sent;
    }
    // A handshake with a 4 KiB host: answered (the node says who it is) but
    // the peer is not taken up.
    member_record big{"b", std::string(4096, 'h'), 7100, "", 2, "topology"};
    member_record answer;
    peer->request(links, 5s, hello_atom::value, big, query_server_actor{})
        .receive([&](const member_record& m, const query_server_actor&) { answer = m; },
                 [&](caf::error& e) { FAIL(node.sys.render(e)); });
    ++sent;
    CHECK(answer == node.self);
    peer->send(links, leaving_atom::value, std::string(5000, 'b'));
    ++sent;
    // Then a well-formed status: it goes on to both.
    peer->send(links, status_atom::value, status_of("c", {0, 2}), uint64_t{1});
    REQUIRE(node.got.wait([&] {
      return !node.got.statuses.empty() && !node.got.rebalancer_statuses.empty();
    }));
    CHECK(node.got.statuses == std::vector<std::string>{"c@3"});
    CHECK(node.got.rebalancer_statuses == std::vector<std::string>{"c"});
    CHECK(node.got.peers_up.empty());
    CHECK(node.dropped.load() == sent);
    // And a well-formed handshake takes the peer up.
    peer->request(links, 5s, hello_atom::value,
                  member_record{"d", "127.0.0.1", 7100, "", 2, "topology"},
                  query_server_actor{})
        .receive([&](const member_record& m, const query_server_actor&) { answer = m; },
                 [&](caf::error& e) { FAIL(node.sys.render(e)); });
    REQUIRE(node.got.wait([&] { return !node.got.peers_up.empty(); }));
    CHECK(node.got.peers_up == std::vector<std::string>{"d"});
    CHECK(node.dropped.load() == sent);
  }
}

TEST_CASE("a peer connected through CAF's middleman sends an 8 MiB status and a status "
          "naming 100,000 units: both dropped, and the node answers the next handshake") {
  links_under_test node;
  auto links = caf::actor_cast<peer_links_actor>(node.links);
  announce(node, {"b", "e"});
  auto port = node.sys.middleman().publish(links, 0, "127.0.0.1", false);
  REQUIRE(port);
  // The other node: a process-local actor system of its own, connected over
  // TCP; everything it sends is serialized, framed by BASP and decoded by
  // the node's middleman, as between two processes.
  node_config other_cfg;
  caf::actor_system other{other_cfg};
  {
    auto remote = other.middleman().remote_actor<peer_links_actor>("127.0.0.1", *port);
    REQUIRE(remote);
    caf::scoped_actor peer{other};
    peer->send(*remote, status_atom::value, status_of(std::string(8 << 20, 'b'), {1}),
               uint64_t{1});
    std::vector<unit_id> many(100000);
    for (unit_id u = 0; u < many.size(); ++u)
      many[u] = u;
    peer->send(*remote, status_atom::value, status_of("b", many), uint64_t{2});
    peer->send(*remote, status_atom::value, status_of("e", {3}), uint64_t{3});
    REQUIRE(node.got.wait([&] { return !node.got.statuses.empty(); }));
    CHECK(node.got.statuses == std::vector<std::string>{"e@3"});
    CHECK(node.dropped.load() == 2);
    member_record answer;
    peer->request(*remote, 5s, hello_atom::value,
                  member_record{"e", "127.0.0.1", 7100, "", 2, "topology"},
                  query_server_actor{})
        .receive([&](const member_record& m, const query_server_actor&) { answer = m; },
                 [&](caf::error& e) { FAIL(other.render(e)); });
    CHECK(answer == node.self);
    REQUIRE(node.got.wait([&] { return !node.got.peers_up.empty(); }));
    CHECK(node.got.peers_up == std::vector<std::string>{"e"});
    CHECK(node.dropped.load() == 2);
  }
}

namespace {

/// Links `id` to the node as a peer would (a handshake): the node then sends
/// its statuses and what it passes on to `peer`.
void link(links_under_test& node, caf::scoped_actor& peer, const std::string& id) {
  member_record answer;
  peer->request(caf::actor_cast<peer_links_actor>(node.links), 5s, hello_atom::value,
                member_record{id, "127.0.0.1", 0, "", 2, "topology"},
                query_server_actor{})
      .receive([&](const member_record& m, const query_server_actor&) { answer = m; },
               [&](caf::error& e) { FAIL(node.sys.render(e)); });
  REQUIRE(answer == node.self);
}

node_status applied_at(const std::string& node, int64_t applied) {
  auto s = status_of(node, {});
  s.applied = applied;
  return s;
}

} // namespace

TEST_CASE("a status passed on by another node reaches the node's roles once, the "
          "newest by its origin's beat, and the node passes it on in turn") {
  links_under_test node;
  auto links = caf::actor_cast<peer_links_actor>(node.links);
  announce(node, {"b", "c", "d"});
  caf::scoped_actor b{node.sys};
  caf::scoped_actor d{node.sys};
  link(node, b, "b");
  link(node, d, "d");
  // c's own link to the node is broken one way: its status comes through b.
  b->send(links, status_atom::value, applied_at("c", 80), uint64_t{10});
  b->send(links, status_atom::value, applied_at("c", 93), uint64_t{11});
  // The older copy, late (as the direct link would deliver it): stays back.
  b->send(links, status_atom::value, applied_at("c", 80), uint64_t{10});
  b->send(links, status_atom::value, applied_at("b", 93), uint64_t{1});
  REQUIRE(node.got.wait([&] { return node.got.statuses.size() >= 3; }));
  CHECK(node.got.statuses == std::vector<std::string>{"c@80", "c@93", "b@93"});
  CHECK(node.got.rebalancer_statuses == std::vector<std::string>{"c", "c", "b"});
  // Within a status interval the node passes c's newest status on to d, and
  // b's too; never b's own back to b.
  std::map<std::string, int64_t> at_d;
  bool d_done = false;
  d->receive_while([&] { return !d_done; })(
      [&](status_atom, const node_status& s, uint64_t) {
        at_d[s.node] = s.applied;
        d_done = at_d.size() == 2;
      },
      caf::after(3s) >> [&] { d_done = true; });
  CHECK(at_d == std::map<std::string, int64_t>{{"b", 93}, {"c", 93}});
  // What reaches b over the next status interval and a half.
  std::vector<std::string> at_b;
  auto until = std::chrono::steady_clock::now() + 1500ms;
  b->receive_while([&] { return std::chrono::steady_clock::now() < until; })(
      [&](status_atom, const node_status& s, uint64_t) { at_b.push_back(s.node); },
      caf::after(100ms) >> [] {});
  CHECK(std::count(at_b.begin(), at_b.end(), "b") == 0);
  CHECK(std::count(at_b.begin(), at_b.end(), "c") > 0);
}

TEST_CASE("a linked peer whose status still comes through others stays up though "
          "nothing of its own arrives, and once nothing arrives at all it is gone within "
          "the bound") {
  links_under_test node; // cluster.timeout.ms 1000: silent after 3 s
  auto links = caf::actor_cast<peer_links_actor>(node.links);
  announce(node, {"b", "c"});
  caf::scoped_actor b{node.sys};
  caf::scoped_actor c{node.sys};
  link(node, b, "b");
  link(node, c, "c");
  auto start = std::chrono::steady_clock::now();
  // 4.5 s: b sends its status and passes on c's; c's own never arrive.
  uint64_t beat = 0;
  while (std::chrono::steady_clock::now() - start < 4500ms) {
    ++beat;
    b->send(links, status_atom::value, applied_at("b", 5), beat);
    b->send(links, status_atom::value, applied_at("c", 5), beat);
    std::this_thread::sleep_for(250ms); // b's and c's status schedule
  }
  {
    std::lock_guard<std::mutex> guard{node.got.mu};
    CHECK(node.got.peers_down.empty());
  }
  // c's status stops coming through b: c is gone for the node within the
  // silence bound (3 s) plus a tick, and b, still sending, stays up.
  auto quiet_from = std::chrono::steady_clock::now();
  bool gone = false;
  while (!gone && std::chrono::steady_clock::now() - quiet_from < 6s) {
    ++beat;
    b->send(links, status_atom::value, applied_at("b", 5), beat);
    std::unique_lock<std::mutex> guard{node.got.mu};
    gone =
        node.got.cv.wait_for(guard, 250ms, [&] { return !node.got.peers_down.empty(); });
  }
  auto took = std::chrono::steady_clock::now() - quiet_from;
  REQUIRE(gone);
  std::lock_guard<std::mutex> guard{node.got.mu};
  CHECK(node.got.peers_down == std::vector<std::string>{"c"});
  CHECK(took < 5s);
}

TEST_CASE("a node that left is not linked again while the cluster log still names it, "
          "and its next incarnation is") {
  links_under_test node;
  auto links = caf::actor_cast<peer_links_actor>(node.links);
  announce(node, {"b"});
  caf::scoped_actor b{node.sys};
  link(node, b, "b");
  REQUIRE(node.got.wait([&] { return node.got.peers_up.size() == 1; }));
  b->send(links, leaving_atom::value, std::string{"b"});
  REQUIRE(node.got.wait([&] { return node.got.peers_down.size() == 1; }));
  // b drains before it exits, and its handshake (or this node's reconnection
  // to it, which ends in the same handshake) comes again: not a member again.
  link(node, b, "b");
  member_record next{"b", "127.0.0.1", 0, "", 3, "topology"};
  b->request(links, 5s, hello_atom::value, next, query_server_actor{})
      .receive([](const member_record&, const query_server_actor&) {},
               [&](caf::error& e) { FAIL(node.sys.render(e)); });
  REQUIRE(node.got.wait([&] { return node.got.peers_up.size() >= 2; }));
  std::lock_guard<std::mutex> guard{node.got.mu};
  CHECK(node.got.peers_up_incarnations == std::vector<std::string>{"b#2", "b#3"});
  CHECK(node.got.peers_down == std::vector<std::string>{"b"});
}
