#include "weft/cluster/peer_links.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <caf/openssl/manager.hpp>

#include <chrono>
#include <memory>
#include <random>
#include <set>

#include "weft/cluster/status_gossip.hpp"
#include "weft/log.hpp"
#include "weft/protocol.hpp"

namespace weft::cluster {

namespace {

using clock = std::chrono::steady_clock;

struct peer {
  member_record info;
  peer_links_actor handle;
  query_server_actor query;
  bool connected = false;
  bool connecting = false;
  int64_t connecting_incarnation = -1;
  int64_t deferred_incarnation = -1; ///< left to it to connect (smaller id)
  clock::time_point last_try;
};

struct links_state {
  peer_links_settings s;
  coordinator_actor coordinator;
  rebalancer_actor rebalancer;
  query_server_actor query;
  std::map<std::string, peer> peers;
  std::map<caf::actor_addr, std::string> by_addr;
  std::map<std::string, member_record> announced;
  node_status own;
  uint64_t own_beat = 0;
  bool own_known = false;
  /// The statuses heard of every node, what to pass on, who is silent.
  std::unique_ptr<status_gossip> gossip;
  /// Linked peers whose messages stopped arriving here while their status
  /// still comes through others (warned once, until they arrive again).
  std::set<std::string> one_way;
  /// Nodes that said they leave, by the incarnation that left: not connected
  /// to again (the cluster log still names them until the leader publishes
  /// without them), only a newer incarnation is.
  std::map<std::string, int64_t> left;
  time_ms last_tick = 0;
  bool leaving = false;
  std::minstd_rand rng{std::random_device{}()};
  uint64_t refused = 0; ///< peers' messages dropped for their size
  static inline const char* name = "weft.peer_links";
};

using links_ptr = peer_links_actor::stateful_pointer<links_state>;

/// Whether what a peer sent is within bounds (`why` empty); else counts it
/// and logs the first refusals and then one in 100 (statuses come every
/// 500 ms), naming the sender's node and the reason.
bool accept(links_ptr self, const std::string& why, const char* what) {
  if (why.empty()) return true;
  auto& st = self->state;
  if (st.s.dropped) st.s.dropped->fetch_add(1, std::memory_order_relaxed);
  if (st.refused++ % 100 == 0)
    log::warn("cluster: dropped a {} from {}: {} ({} dropped so far)", what,
              self->current_sender() ? to_string(self->current_sender()->node()) : "?",
              why.substr(0, 200), st.refused);
  return false;
}

bool within_bounds(links_ptr self, const member_record& m, const char* what) {
  return accept(self, peer_record_violation(m), what);
}

bool within_bounds(links_ptr self, const node_status& s) {
  return accept(self, peer_status_violation(s, self->state.s.max_units), "status");
}

void send_own_status(links_ptr self, const peer& p) {
  auto& st = self->state;
  if (st.own_known && p.connected && p.handle)
    self->send(p.handle, status_atom::value, st.own, st.own_beat);
}

/// Every other node's fresh status to `id` (status_gossip.hpp).
void relay(links_ptr self, const std::string& id, const peer& p, time_ms now) {
  if (!p.connected || !p.handle) return;
  for (auto& s : self->state.gossip->relay_to(id, now))
    self->send(p.handle, status_atom::value, s.status, s.beat);
}

/// Whether `info` is the incarnation of a node that left (or an older one).
bool left_already(const links_state& st, const member_record& info) {
  auto l = st.left.find(info.id);
  return l != st.left.end() && info.incarnation <= l->second;
}

void up(links_ptr self, const member_record& info, const peer_links_actor& handle,
        const query_server_actor& query) {
  auto& st = self->state;
  if (info.id == st.s.self.id || !handle) return;
  if (left_already(st, info)) return;
  st.left.erase(info.id); // a newer incarnation: linked as usual
  auto& p = st.peers[info.id];
  bool news = !p.connected || p.info != info;
  p.info = info;
  p.query = query;
  if (p.handle != handle) {
    if (p.handle) {
      st.by_addr.erase(p.handle.address());
      self->demonitor(p.handle.address());
    }
    p.handle = handle;
    st.by_addr[handle.address()] = info.id;
    self->monitor(handle);
  }
  if (!p.connected) {
    st.gossip->linked(info.id, steady_now());
    log::info("cluster: connected to node {} ({}:{}, incarnation {}){}", info.id,
              info.host, info.port, info.incarnation,
              info.topology == st.s.self.topology
                  ? ""
                  : " — it runs a different topology and gets no tasks");
  }
  p.connected = true;
  st.s.directory->set(info.id, query);
  if (news) {
    if (st.coordinator) self->send(st.coordinator, peer_up_atom::value, info);
    send_own_status(self, p);
  }
}

void down(links_ptr self, const std::string& id, const std::string& why) {
  auto& st = self->state;
  auto i = st.peers.find(id);
  if (i == st.peers.end()) return;
  auto& p = i->second;
  bool was = p.connected;
  p.connected = false;
  st.gossip->unlinked(id);
  st.one_way.erase(id);
  if (p.handle) {
    st.by_addr.erase(p.handle.address());
    self->demonitor(p.handle.address());
    p.handle = nullptr;
  }
  st.s.directory->set(id, {});
  if (was) {
    log::warn("cluster: node {} is gone ({})", id, why);
    if (st.coordinator) self->send(st.coordinator, peer_down_atom::value, id);
  }
}

void hello(links_ptr self, const std::string& id, const peer_links_actor& handle) {
  auto& st = self->state;
  auto bound = std::chrono::milliseconds(std::max(st.s.timeout_ms * 2, 2000));
  self->request(handle, bound, hello_atom::value, st.s.self, st.query)
      .then(
          [self, id, handle](const member_record& info, const query_server_actor& q) {
            auto& st = self->state;
            auto& p = st.peers[id];
            p.connecting = false;
            if (!within_bounds(self, info, "handshake answer")) return;
            if (info.id != id) {
              log::debug("cluster: {} answered as {}", id, info.id);
              return;
            }
            up(self, info, handle, q);
          },
          [self, id](caf::error& e) {
            auto& p = self->state.peers[id];
            p.connecting = false;
            log::debug("cluster: hello to node {}: {}", id, self->system().render(e));
          });
}

void connect(links_ptr self, const member_record& info) {
  auto& st = self->state;
  if (!st.coordinator || st.leaving || info.id == st.s.self.id || info.port == 0) return;
  if (left_already(st, info)) return;
  auto& p = st.peers[info.id];
  if (p.connecting && p.connecting_incarnation >= info.incarnation) return;
  if (p.connected && p.info.incarnation >= info.incarnation) return;
  if (p.connected) down(self, info.id, "a new incarnation was announced");
  p.connecting = true;
  p.connecting_incarnation = info.incarnation;
  p.last_try = clock::now();
  auto mm = st.s.tls ? self->system().openssl_manager().actor_handle()
                     : self->system().middleman().actor_handle();
  auto id = info.id;
  self->request(mm, std::chrono::milliseconds(st.s.timeout_ms), caf::connect_atom::value,
                info.host, info.port)
      .then(
          [self, id](const caf::node_id&, caf::strong_actor_ptr& ptr,
                     const std::set<std::string>&) {
            if (!ptr) {
              self->state.peers[id].connecting = false;
              log::debug("cluster: nothing published at node {}'s port", id);
              return;
            }
            hello(self, id, caf::actor_cast<peer_links_actor>(ptr));
          },
          [self, id](caf::error& e) {
            self->state.peers[id].connecting = false;
            log::debug("cluster: cannot reach node {}: {}", id, self->system().render(e));
          });
}

} // namespace

caf::actor spawn_peer_links(caf::actor_system& sys, peer_links_settings settings,
                            caf::actor query) {
  auto fn = [](links_ptr self, peer_links_settings s,
               caf::actor query) -> peer_links_actor::behavior_type {
    auto& st = self->state;
    st.s = std::move(s);
    st.query = caf::actor_cast<query_server_actor>(query);
    gossip_settings gs;
    gs.self = st.s.self.id;
    // Statuses go out every 500 ms: three missed in a row and at least three
    // times the silence CAF's heartbeats allow a link (cluster.timeout.ms).
    gs.silence_ms = std::max<time_ms>(3 * st.s.timeout_ms, 3 * 500);
    gs.relay_fresh_ms = gs.silence_ms;
    st.gossip = std::make_unique<status_gossip>(gs);
    self->set_down_handler([self](caf::down_msg& msg) {
      auto& st = self->state;
      auto i = st.by_addr.find(msg.source);
      if (i == st.by_addr.end()) return;
      auto id = i->second;
      down(self, id, self->system().render(msg.reason));
      // Tried again by the ticks; an announcement of a new incarnation tries
      // at once.
      st.peers[id].last_try = clock::now();
    });
    self->delayed_send(self, std::chrono::milliseconds(500), tick_atom::value);
    return {
        [self](announce_atom, const member_record& me, const coordinator_actor& c,
               const rebalancer_actor& r) {
          auto& st = self->state;
          st.s.self = me;
          st.coordinator = c;
          st.rebalancer = r;
        },
        [self](log_atom, const log_update_ptr& u) {
          auto& st = self->state;
          st.announced = u->announced;
          for (auto& [id, m] : st.announced) {
            if (id == st.s.self.id) continue;
            auto p = st.peers.find(id);
            if (p != st.peers.end() && p->second.connected &&
                p->second.info.incarnation >= m.incarnation)
              continue;
            // Of two nodes, the one with the smaller id connects: when both
            // connected to each other at once, CAF dropped one of the two
            // connections and the handshake on it (2-3 s without a
            // cluster, each node leading alone; seen over TLS, whose slower
            // handshakes made it the rule). The other one connects only if
            // no handshake came within the retry interval (the ticks).
            if (id > st.s.self.id) {
              connect(self, m);
              continue;
            }
            auto& q = st.peers[id];
            if (q.deferred_incarnation >= m.incarnation) continue;
            if (q.connected) down(self, id, "a new incarnation was announced");
            q.deferred_incarnation = m.incarnation;
            q.last_try = clock::now();
          }
          for (auto i = st.left.begin(); i != st.left.end();)
            i = st.announced.count(i->first) ? std::next(i) : st.left.erase(i);
          for (auto i = st.peers.begin(); i != st.peers.end();)
            if (!st.announced.count(i->first) && !i->second.connected &&
                !i->second.connecting) {
              st.gossip->forget(i->first);
              i = st.peers.erase(i);
            } else {
              ++i;
            }
        },
        [self](own_status_atom, const node_status& s) {
          auto& st = self->state;
          bool changed = !st.own_known || st.own != s;
          st.own = s;
          st.own_known = true;
          if (!changed) return;
          st.own_beat = st.gossip->next_beat();
          if (st.coordinator) self->send(st.coordinator, status_atom::value, s);
          for (auto& [id, p] : st.peers)
            send_own_status(self, p);
        },
        [self](rejoined_atom, int64_t incarnation) {
          auto& st = self->state;
          st.s.self.incarnation = incarnation;
          // The peers learn the new incarnation from a new handshake.
          for (auto& [id, p] : st.peers)
            if (p.connected && p.handle) hello(self, id, p.handle);
        },
        [self](tick_atom) {
          auto& st = self->state;
          if (st.leaving) return;
          self->delayed_send(self, std::chrono::milliseconds(500), tick_atom::value);
          auto at = steady_now();
          // Ticks come every 500 ms; one a second late means this node
          // stalled, and its peers' messages still wait in its mailbox.
          if (st.last_tick != 0 && at - st.last_tick > 1000) st.gossip->stalled(at);
          st.last_tick = at;
          st.own_beat = st.gossip->next_beat();
          for (auto& [id, p] : st.peers) {
            send_own_status(self, p);
            relay(self, id, p, at);
          }
          // A linked peer from which nothing arrived for the silence bound:
          // one way broken if its status still comes through others (this
          // node's view stays current: warned), else gone for this node.
          for (auto& quiet : st.gossip->silent(at)) {
            if (quiet.heard_through_others) {
              if (st.one_way.insert(quiet.peer).second)
                log::warn("cluster: nothing sent by node {} has arrived here for {} ms "
                          "though the link stands; its status still comes through "
                          "other nodes",
                          quiet.peer, quiet.for_ms);
              continue;
            }
            down(self, quiet.peer,
                 "nothing it sent arrived for " + std::to_string(quiet.for_ms) +
                     " ms, directly or through other nodes, though the link stood");
            st.peers[quiet.peer].last_try = clock::now();
          }
          // Announced nodes not connected: try again every 2-3 s (a view that
          // missed a node heals; a dead node's attempt fails fast).
          auto now = clock::now();
          std::uniform_int_distribution<int> jitter{0, 1000};
          for (auto& [id, m] : st.announced) {
            if (id == st.s.self.id) continue;
            auto& p = st.peers[id];
            if (!p.connected && !p.connecting &&
                now - p.last_try > std::chrono::milliseconds(2000 + jitter(st.rng)))
              connect(self, m);
          }
        },
        [self](leave_atom) -> bool {
          auto& st = self->state;
          st.leaving = true;
          for (auto& [id, p] : st.peers)
            if (p.connected && p.handle)
              self->send(p.handle, leaving_atom::value, st.s.self.id);
          return true;
        },
        [self](hello_atom, const member_record& info, const query_server_actor& q)
            -> caf::result<member_record, query_server_actor> {
          auto& st = self->state;
          auto handle = caf::actor_cast<peer_links_actor>(self->current_sender());
          if (!st.leaving && within_bounds(self, info, "handshake"))
            up(self, info, handle, q);
          return {st.s.self, st.query};
        },
        [self](status_atom, const node_status& s, uint64_t beat) {
          auto& st = self->state;
          if (!within_bounds(self, s)) return;
          std::string sender;
          if (auto i = st.by_addr.find(
                  caf::actor_cast<caf::actor_addr>(self->current_sender()));
              i != st.by_addr.end())
            sender = i->second;
          if (st.one_way.erase(sender) > 0)
            log::info("cluster: what node {} sends arrives here again", sender);
          // Passed on by others only for nodes of this cluster's log (a node
          // that just connected speaks for itself before the log names it).
          if (s.node != sender && !st.announced.count(s.node)) return;
          if (!st.gossip->take({s, beat}, sender, steady_now())) return;
          if (st.coordinator) self->send(st.coordinator, status_atom::value, s);
          if (st.rebalancer) self->send(st.rebalancer, status_atom::value, s);
        },
        [self](leaving_atom, const std::string& id) {
          if (!accept(self, peer_id_violation(id), "leave notice")) return;
          auto& st = self->state;
          if (auto p = st.peers.find(id); p != st.peers.end())
            st.left[id] = std::max(st.left[id], p->second.info.incarnation);
          down(self, id, "it left");
          st.peers.erase(id);
          st.gossip->forget(id);
        },
    };
  };
  return caf::actor_cast<caf::actor>(
      sys.spawn(fn, std::move(settings), std::move(query)));
}

} // namespace weft::cluster
