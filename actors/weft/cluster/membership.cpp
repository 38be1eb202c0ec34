#include "weft/cluster/membership.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "weft/actors/node_context.hpp"
#include "weft/kafka/admin.hpp"
#include "weft/kafka/consumer.hpp"
#include "weft/kafka/producer.hpp"
#include "weft/log.hpp"

namespace weft::detail {
struct query_answer;
}
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::shared_ptr<std::promise<weft::detail::query_answer>>)

namespace weft::detail {

using hello_atom = caf::atom_constant<caf::atom("hello")>;
using leaving_atom = caf::atom_constant<caf::atom("leaving")>;
using released_atom = caf::atom_constant<caf::atom("released")>;
using status_atom = caf::atom_constant<caf::atom("status")>;
using query_atom = caf::atom_constant<caf::atom("query")>;
using logchg_atom = caf::atom_constant<caf::atom("logchg")>;
using ctick_atom = caf::atom_constant<caf::atom("ctick")>;
using rejoin_atom = caf::atom_constant<caf::atom("rejoin")>;
using bye_atom = caf::atom_constant<caf::atom("bye")>;
using forward_atom = caf::atom_constant<caf::atom("forward")>;

/// Where a forwarded query's answer goes: the asking thread waits on it.
using answer_promise = std::shared_ptr<std::promise<query_answer>>;

namespace {

using json = nlohmann::json;

std::string member_json(const member_info& m) {
  return json{{"id", m.id},
              {"host", m.host},
              {"port", m.port},
              {"http", m.http},
              {"incarnation", m.incarnation},
              {"topology", m.topology}}
      .dump();
}

std::optional<member_info> member_from(std::string_view text) {
  auto j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  member_info m;
  m.id = j.value("id", "");
  m.host = j.value("host", "");
  m.port = j.value("port", uint16_t{0});
  m.http = j.value("http", "");
  m.incarnation = j.value("incarnation", int64_t{0});
  m.topology = j.value("topology", "");
  if (m.id.empty() || m.host.empty() || m.port == 0) return std::nullopt;
  return m;
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

const std::string assignment_key = "assignment";
const std::string member_prefix = "member/";

} // namespace

struct cluster_member::impl {
  node_context* ctx = nullptr;
  member_info me;
  std::vector<bool> stateful;
  std::vector<std::string> unit_names;
  cluster_hooks hooks;
  std::string topic;
  int timeout_ms = 1000;
  caf::actor_system* sys = nullptr;
  caf::actor coordinator;
  caf::actor query;
  std::unique_ptr<kafka::producer> announcer;
  std::unique_ptr<kafka::consumer> reader;
  std::unique_ptr<kafka::partition_queue> queue;
  std::thread reader_thread;
  std::atomic<bool> stop{false};
  /// Freeze detection: a thread that notes the time every 50 ms. After a
  /// SIGSTOP (or any stall of the whole process) longer than
  /// cluster.timeout.ms the others took this node for dead and moved its
  /// units; it must not act on its stale view (claim the lease, fence the
  /// nodes it lost its connections to) but rejoin.
  std::thread watchdog;
  std::atomic<int64_t> watchdog_ms{0};
  std::atomic<bool> frozen{false};
  static int64_t steady_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  bool was_frozen() const {
    return frozen.load() || steady_ms() - watchdog_ms.load() > timeout_ms;
  }
  std::atomic<int64_t> read_pos{0};

  mutable std::mutex mu;
  std::map<std::string, member_info> announced; ///< from the log
  std::shared_ptr<const cluster::assignment> latest;
  /// Every generation read and not yet handed to the node, in order (a node
  /// must see each handoff, not only the latest assignment).
  std::vector<std::shared_ptr<const cluster::assignment>> fresh;
  struct peer_view {
    member_info info;
    caf::actor coord;
    caf::actor query;
    bool connected = false;
  };
  std::map<std::string, peer_view> peers;      ///< the coordinator's, copied
  std::map<std::string, std::string> statuses; ///< node -> status JSON

  topic_partition tp() const { return {topic, partition_id{0}}; }

  /// Applies what the reader fetched; true if anything changed.
  bool apply_available() {
    kafka::message_batch b;
    queue->drain(b, 1000);
    bool changed = false;
    for (size_t i = 0; i < b.size(); ++i) {
      auto v = b.view(i);
      if (!v.key) continue;
      std::string_view key = *v.key;
      std::lock_guard<std::mutex> guard{mu};
      if (key == assignment_key) {
        if (!v.value) continue;
        auto a = cluster::assignment_from_json(*v.value);
        if (!a) {
          log::warn("cluster topic {}: unreadable assignment at offset {}: {}", topic,
                    v.offset.value(), a.error().message());
          continue;
        }
        if (!latest || a->generation > latest->generation) {
          latest = std::make_shared<cluster::assignment>(std::move(*a));
          fresh.push_back(latest);
          changed = true;
        }
      } else if (key.substr(0, member_prefix.size()) == member_prefix) {
        std::string id{key.substr(member_prefix.size())};
        if (!v.value) {
          changed |= announced.erase(id) > 0;
        } else if (auto m = member_from(*v.value)) {
          announced[id] = *m;
          changed = true;
        }
      }
    }
    auto pos = reader->position(tp());
    if (pos >= 0) read_pos.store(pos, std::memory_order_release);
    return changed;
  }

  void read_loop() {
    while (!stop.load(std::memory_order_relaxed)) {
      bool changed = apply_available();
      if (changed && coordinator) caf::anon_send(coordinator, logchg_atom::value);
      if (queue->size() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  /// Waits until everything committed to the cluster topic so far is applied.
  status sync(int timeout) {
    auto marks = reader->watermarks(tp(), timeout);
    if (!marks) return marks.error();
    auto high = marks->second;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout);
    while (read_pos.load(std::memory_order_acquire) < high) {
      if (std::chrono::steady_clock::now() > deadline)
        return make_error(errc::timed_out, "reading the cluster topic " + topic +
                                               " to offset " + std::to_string(high));
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return {};
  }

  status announce(bool tombstone) {
    auto key = member_prefix + me.id;
    std::optional<std::string> value;
    if (!tombstone) value = member_json(me);
    std::optional<std::string_view> v;
    if (value) v = *value;
    if (auto s = announcer->send(topic, 0, key, v); !s) return s;
    return announcer->flush(timeout_ms * 5);
  }
};

namespace {

struct coordinator_state {
  cluster_member::impl* m = nullptr;
  struct peer {
    member_info info;
    caf::actor coord;
    caf::actor query;
    bool connected = false;
    bool connecting = false;
    bool background = false; ///< a periodic retry: the view does not wait for it
    int64_t connecting_incarnation = -1;
    std::chrono::steady_clock::time_point last_try;
  };
  std::map<std::string, peer> peers;
  std::map<caf::actor_addr, std::string> by_addr;
  bool leader = false;
  std::unique_ptr<kafka::producer> lease;
  std::set<std::string> fenced;
  int64_t seen_generation = 0;
  int64_t last_published = 0; ///< never publish a generation twice
  bool leaving = false;
  bool ready = false;     ///< the announced nodes were seen (no view before that)
  bool rejoining = false; ///< after a freeze: no decisions until the rejoin
  /// No decision before this: nodes starting together must first read each
  /// other's announcements (like Kafka's group.initial.rebalance.delay.ms).
  std::chrono::steady_clock::time_point quiet_until;
  std::chrono::steady_clock::time_point last_status;
  std::chrono::steady_clock::time_point last_publish_try;
  static inline const char* name = "weft.coordinator";
};

using coordinator_actor = caf::stateful_actor<coordinator_state>;

void evaluate(coordinator_actor* self);

/// Copies the peer table for the other threads.
void share_peers(coordinator_actor* self) {
  auto* m = self->state.m;
  std::lock_guard<std::mutex> guard{m->mu};
  m->peers.clear();
  for (auto& [id, p] : self->state.peers)
    m->peers[id] = {p.info, p.coord, p.query, p.connected};
}

void peer_up(coordinator_actor* self, const member_info& info, const caf::actor& coord,
             const caf::actor& query) {
  auto& st = self->state;
  auto& p = st.peers[info.id];
  bool was = p.connected;
  if (p.info.incarnation != info.incarnation) st.fenced.erase(info.id);
  p.info = info;
  p.query = query;
  if (p.coord != coord) {
    if (p.coord) st.by_addr.erase(p.coord.address());
    p.coord = coord;
    st.by_addr[coord.address()] = info.id;
    self->monitor(coord);
  }
  p.connected = true;
  if (!was)
    log::info("cluster: connected to node {} ({}:{}){}", info.id, info.host, info.port,
              info.topology == st.m->me.topology
                  ? ""
                  : " — it runs a different topology and gets no tasks");
  share_peers(self);
}

void peer_lost(coordinator_actor* self, const std::string& id, const std::string& why) {
  auto& st = self->state;
  auto i = st.peers.find(id);
  if (i == st.peers.end()) return;
  bool was = i->second.connected;
  i->second.connected = false;
  if (i->second.coord) {
    st.by_addr.erase(i->second.coord.address());
    self->demonitor(i->second.coord);
    i->second.coord = nullptr;
  }
  share_peers(self);
  if (was) log::warn("cluster: node {} is gone ({})", id, why);
  if (st.m->hooks.on_member_lost) st.m->hooks.on_member_lost(id);
}

void connect(coordinator_actor* self, const member_info& info, bool background = false) {
  auto& st = self->state;
  auto& p = st.peers[info.id];
  if (p.connecting && p.connecting_incarnation == info.incarnation) return;
  if (p.connected && p.info.incarnation == info.incarnation) return;
  if (p.info.incarnation != info.incarnation) p.info = info;
  p.connecting = true;
  p.background = background;
  p.last_try = std::chrono::steady_clock::now();
  p.connecting_incarnation = info.incarnation;
  // Reaching the node's middleman is bounded by cluster.timeout.ms (a frozen
  // node never completes the handshake); its coordinator may be busy in a
  // blocking Kafka call for a while, so the hello gets longer.
  auto timeout = std::chrono::milliseconds(st.m->timeout_ms);
  auto hello_timeout = std::max(timeout * 10, std::chrono::milliseconds(10000));
  auto mm = self->system().middleman().actor_handle();
  auto id = info.id;
  auto inc = info.incarnation;
  auto done = [self, id](const std::string& why) {
    auto& st = self->state;
    auto& p = st.peers[id];
    p.connecting = false;
    if (!why.empty()) {
      if (p.connected) {
        // Still connected through an earlier incarnation's link? No: a new
        // incarnation that cannot be reached replaces it.
        peer_lost(self, id, why);
      } else {
        log::debug("cluster: cannot reach node {}: {}", id, why);
        if (st.m->hooks.on_member_lost) st.m->hooks.on_member_lost(id);
      }
    }
    evaluate(self);
  };
  self->request(mm, timeout, caf::connect_atom::value, info.host, info.port)
      .then(
          [self, hello_timeout, id, inc, done](const caf::node_id&,
                                               caf::strong_actor_ptr& ptr,
                                               const std::set<std::string>&) mutable {
            if (!ptr) return done("nothing published at its port");
            auto coord = caf::actor_cast<caf::actor>(ptr);
            auto& st = self->state;
            self->request(coord, hello_timeout, hello_atom::value, member_json(st.m->me),
                          caf::actor_cast<caf::actor>(self), st.m->query)
                .then(
                    [self, id, inc, coord, done](const std::string& info_json,
                                                 const caf::actor& query) mutable {
                      auto info = member_from(info_json);
                      if (!info || info->id != id)
                        return done("it answered as another node");
                      if (info->incarnation < inc)
                        return done("it answered as an older incarnation");
                      peer_up(self, *info, coord, query);
                      done("");
                    },
                    [self, done](caf::error& e) mutable {
                      done("hello: " + self->system().render(e));
                    });
          },
          [self, done](caf::error& e) mutable { done(self->system().render(e)); });
}

std::vector<std::string> live_members(coordinator_actor* self) {
  auto& st = self->state;
  std::vector<std::string> out{st.m->me.id};
  for (auto& [id, p] : st.peers)
    if (p.connected && p.info.topology == st.m->me.topology) out.push_back(id);
  std::sort(out.begin(), out.end());
  return out;
}

void step_down(coordinator_actor* self, const std::string& why) {
  auto& st = self->state;
  if (!st.leader) return;
  st.leader = false;
  st.lease.reset();
  log::info("cluster: this node no longer leads ({})", why);
}

status claim_lease(coordinator_actor* self) {
  auto& st = self->state;
  auto* m = st.m;
  auto props = m->ctx->cfg.kafka_properties(client_kind::producer);
  props["transactional.id"] = m->ctx->application_id + ".cluster.leader";
  props["transaction.timeout.ms"] = "10000";
  auto p = kafka::producer::create(std::move(props));
  if (!p) return p.error();
  auto start = std::chrono::steady_clock::now();
  if (auto s = (*p)->init_transactions(m->timeout_ms * 10); !s) return s;
  // Everything earlier leaders committed is now final: read it all.
  if (auto s = m->sync(m->timeout_ms * 10); !s) return s;
  st.lease = std::move(*p);
  st.leader = true;
  log::info("cluster: this node leads (lease taken in {} ms)",
            std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::steady_clock::now() - start)
                .count());
  return {};
}

/// exactly_once: takes `node`'s transactional.id, aborting its open
/// transaction; the node can never commit again.
status fence(coordinator_actor* self, const std::string& node) {
  auto* m = self->state.m;
  auto props = m->ctx->cfg.kafka_properties(client_kind::producer);
  auto txn = m->ctx->application_id + "-" + node;
  props["transactional.id"] = txn;
  auto p = kafka::producer::create(std::move(props));
  if (!p) return p.error();
  auto start = std::chrono::steady_clock::now();
  if (auto s = (*p)->init_transactions(m->timeout_ms * 30); !s) return s;
  log::info("cluster: fenced node {} (transactional.id {}) in {} ms", node, txn,
            std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::steady_clock::now() - start)
                .count());
  self->state.fenced.insert(node);
  return {};
}

std::map<std::pair<size_t, std::string>, int64_t> standby_lags(coordinator_actor* self) {
  auto* m = self->state.m;
  std::map<std::pair<size_t, std::string>, int64_t> out;
  if (m->hooks.standby_lags)
    for (auto& [u, lag] : m->hooks.standby_lags())
      if (lag >= 0) out[{u, m->me.id}] = lag;
  std::lock_guard<std::mutex> guard{m->mu};
  for (auto& [node, text] : m->statuses) {
    if (node == m->me.id) continue;
    auto j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.contains("standby")) continue;
    for (auto& [u, lag] : j["standby"].items()) {
      auto l = lag.get<int64_t>();
      if (l >= 0) out[{std::stoul(u), node}] = l;
    }
  }
  return out;
}

std::string describe(const cluster::assignment& a) {
  std::string out;
  for (auto& [node, load] : cluster::load(a))
    out += (out.empty() ? "" : ", ") + node + ": " + std::to_string(load.first) +
           " active/" + std::to_string(load.second) + " standby";
  size_t warm = 0;
  for (auto& w : a.warmup)
    warm += !w.empty();
  if (warm) out += "; " + std::to_string(warm) + " warming up";
  return out;
}

void publish_if_changed(coordinator_actor* self) {
  auto& st = self->state;
  auto* m = st.m;
  auto cur = [m] {
    std::lock_guard<std::mutex> guard{m->mu};
    return m->latest;
  }();
  cluster::assignor_input in;
  in.members = live_members(self);
  in.stateful = m->stateful;
  in.previous = cur.get();
  in.num_standbys = static_cast<int>(m->ctx->cfg.get_int("num.standby.replicas"));
  in.standby_lag = standby_lags(self);
  in.acceptable_lag = m->ctx->cfg.get_int("acceptable.recovery.lag");
  auto a = cluster::assign(in);
  if (cur && a == *cur) return;
  st.last_publish_try = std::chrono::steady_clock::now();
  if (m->ctx->exactly_once && cur) {
    std::set<std::string> live{in.members.begin(), in.members.end()};
    // Every node that may still hold a unit: actives, and old owners of
    // handoffs in flight (one that died mid-handoff may have left a
    // transaction open, which would stall the new owner's offset fetch).
    std::set<std::string> holders{cur->active.begin(), cur->active.end()};
    holders.insert(cur->previous.begin(), cur->previous.end());
    for (auto& owner : holders)
      if (!owner.empty() && !live.count(owner) && !st.fenced.count(owner))
        if (auto s = fence(self, owner); !s) {
          log::warn("cluster: cannot fence node {}: {}; its tasks stay put", owner,
                    s.message());
          return;
        }
  }
  a.generation = std::max(cur ? cur->generation : 0, st.last_published) + 1;
  st.last_published = a.generation;
  a.leader = m->me.id;
  auto text = cluster::to_json(a);
  auto s = st.lease->begin_transaction();
  if (s) s = st.lease->send(m->topic, 0, assignment_key, std::string_view{text});
  if (s) s = st.lease->commit_transaction(m->timeout_ms * 10);
  if (!s) {
    if (s.code() == errc::kafka_fatal) return step_down(self, s.message());
    log::warn("cluster: publishing generation {} failed: {}", a.generation, s.message());
    (void)st.lease->abort_transaction(m->timeout_ms * 10);
    return;
  }
  log::info(
      "cluster: generation {} for members [{}]: {}", a.generation,
      [&] {
        std::string ids;
        for (auto& id : a.members)
          ids += (ids.empty() ? "" : ", ") + id;
        return ids;
      }(),
      describe(a));
  // Read it back before deciding anything else. The commit markers reach
  // the partition moments after commit_transaction returns (the last stable
  // offset moves then), so wait for the generation itself, bounded.
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(m->timeout_ms * 10);
  while (std::chrono::steady_clock::now() < deadline) {
    {
      std::lock_guard<std::mutex> guard{m->mu};
      if (m->latest && m->latest->generation >= a.generation) return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  log::warn("cluster: generation {} not read back from {} yet", a.generation, m->topic);
}

/// After a freeze the view is stale: step down and let the node drop its
/// units and rejoin (cluster_hooks::on_frozen).
bool check_frozen(coordinator_actor* self) {
  auto& st = self->state;
  auto* m = st.m;
  if (!m->was_frozen()) return false;
  m->frozen = false;
  m->watchdog_ms = cluster_member::impl::steady_ms();
  if (st.rejoining) return true;
  st.rejoining = true;
  log::warn("cluster: this node was frozen for more than cluster.timeout.ms ({} ms): "
            "the others have moved its units; it drops them and rejoins",
            m->timeout_ms);
  step_down(self, "frozen");
  if (m->hooks.on_frozen) m->hooks.on_frozen();
  return true;
}

void evaluate(coordinator_actor* self) {
  auto& st = self->state;
  if (st.leaving || !st.ready) return;
  if (check_frozen(self) || st.rejoining) return;
  if (std::chrono::steady_clock::now() < st.quiet_until) return;
  // Decide only on a settled view: no connection attempt in flight.
  for (auto& [id, p] : st.peers)
    if (p.connecting && !p.background) return;
  auto members = live_members(self);
  if (members.front() != st.m->me.id) {
    step_down(self, "node " + members.front() + " has the smallest id");
    return;
  }
  if (!st.leader) {
    if (auto s = claim_lease(self); !s) {
      log::warn("cluster: cannot take the leader lease: {}", s.message());
      return;
    }
  }
  publish_if_changed(self);
}

void on_log(coordinator_actor* self) {
  auto& st = self->state;
  auto* m = st.m;
  std::map<std::string, member_info> announced;
  std::vector<std::shared_ptr<const cluster::assignment>> fresh;
  {
    std::lock_guard<std::mutex> guard{m->mu};
    announced = m->announced;
    fresh.swap(m->fresh);
  }
  st.ready = true;
  for (auto& [id, info] : announced) {
    if (id == m->me.id) continue;
    auto i = st.peers.find(id);
    if (i == st.peers.end() || i->second.info.incarnation < info.incarnation ||
        (!i->second.connected && !i->second.connecting &&
         i->second.info.incarnation != info.incarnation))
      connect(self, info);
  }
  for (auto i = st.peers.begin(); i != st.peers.end();) {
    if (!announced.count(i->first) && !i->second.connected && !i->second.connecting)
      i = st.peers.erase(i);
    else
      ++i;
  }
  for (auto& a : fresh) {
    if (a->generation <= st.seen_generation) continue;
    st.seen_generation = a->generation;
    if (a->leader != m->me.id && st.leader)
      log::info("cluster: generation {} published by {}", a->generation, a->leader);
    if (m->hooks.on_assignment) m->hooks.on_assignment(a);
  }
  evaluate(self);
}

void broadcast_status(coordinator_actor* self) {
  auto& st = self->state;
  auto* m = st.m;
  if (!m->hooks.status_json) return;
  auto text = m->hooks.status_json();
  {
    std::lock_guard<std::mutex> guard{m->mu};
    m->statuses[m->me.id] = text;
  }
  for (auto& [id, p] : st.peers)
    if (p.connected && p.coord) self->send(p.coord, status_atom::value, m->me.id, text);
}

caf::behavior coordinator(coordinator_actor* self, cluster_member::impl* m) {
  auto& st = self->state;
  st.m = m;
  st.quiet_until =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(m->timeout_ms);
  self->set_down_handler([self](caf::down_msg& msg) {
    auto& st = self->state;
    auto i = st.by_addr.find(msg.source);
    if (i == st.by_addr.end()) return;
    auto id = i->second;
    auto info = st.peers[id].info;
    peer_lost(self, id, self->system().render(msg.reason));
    if (st.leaving) return;
    // Gone at once (its units move now); a node that is in fact alive is
    // found again by the periodic reconnects and rejoins like a new one.
    // (Waiting for one more attempt first cost up to the hello timeout: the
    // middleman may hand out its cached proxy of the dead node.)
    st.peers[id].connecting_incarnation = -1;
    st.peers[id].last_try = std::chrono::steady_clock::now();
    evaluate(self);
  });
  self->set_exit_handler([self](caf::exit_msg& msg) { self->quit(msg.reason); });
  self->delayed_send(self, std::chrono::milliseconds(200), ctick_atom::value);
  return {
      [self](logchg_atom) { on_log(self); },
      [self](hello_atom, const std::string& info_json, const caf::actor& coord,
             const caf::actor& query) -> caf::result<std::string, caf::actor> {
        auto& st = self->state;
        auto info = member_from(info_json);
        if (info && info->id != st.m->me.id) {
          peer_up(self, *info, coord, query);
          evaluate(self);
        }
        return {member_json(st.m->me), st.m->query};
      },
      [self](leaving_atom, const std::string& id) {
        auto& st = self->state;
        peer_lost(self, id, "it left");
        st.peers.erase(id);
        share_peers(self);
        evaluate(self);
      },
      [self](released_atom, uint64_t unit, const std::string& from, int64_t generation) {
        auto* m = self->state.m;
        if (m->hooks.on_released)
          m->hooks.on_released(static_cast<size_t>(unit), from, generation);
      },
      [self](status_atom, const std::string& node, const std::string& text) {
        auto* m = self->state.m;
        std::lock_guard<std::mutex> guard{m->mu};
        m->statuses[node] = text;
      },
      [self](rejoin_atom) {
        auto& st = self->state;
        st.m->me.incarnation = std::max(now_ms(), st.m->me.incarnation + 1);
        step_down(self, "rejoining");
        if (auto s = st.m->announce(false); !s)
          log::warn("cluster: announcing the rejoin: {}", s.message());
        log::info("cluster: rejoining as incarnation {}", st.m->me.incarnation);
        st.rejoining = false;
        st.quiet_until = std::chrono::steady_clock::now() +
                         std::chrono::milliseconds(st.m->timeout_ms);
        // A settled view before any decision: try every announced node now.
        std::map<std::string, member_info> announced;
        {
          std::lock_guard<std::mutex> guard{st.m->mu};
          announced = st.m->announced;
        }
        for (auto& [id, info] : announced)
          if (id != st.m->me.id && !st.peers[id].connected) connect(self, info);
        // The peers see the new announcement and connect; say hello as well.
        for (auto& [id, p] : st.peers)
          if (p.connected && p.coord)
            self->send(p.coord, hello_atom::value, member_json(st.m->me),
                       caf::actor_cast<caf::actor>(self), st.m->query);
      },
      [self](bye_atom) -> caf::result<void> {
        auto& st = self->state;
        st.leaving = true;
        for (auto& [id, p] : st.peers)
          if (p.connected && p.coord)
            self->send(p.coord, leaving_atom::value, st.m->me.id);
        step_down(self, "leaving");
        return caf::unit;
      },
      [self](ctick_atom) {
        auto& st = self->state;
        if (st.leaving) return;
        // The next tick first: a tick that found this node frozen must not
        // end the ticks (the rejoined node would never again send its status
        // or reconnect).
        self->delayed_send(self, std::chrono::milliseconds(200), ctick_atom::value);
        if (check_frozen(self)) return;
        auto now = std::chrono::steady_clock::now();
        if (now - st.last_status > std::chrono::milliseconds(500)) {
          st.last_status = now;
          broadcast_status(self);
        }
        // Announced nodes not connected: try again every few seconds (a
        // view that missed a node heals; a dead node's attempt fails fast).
        std::map<std::string, member_info> announced;
        {
          std::lock_guard<std::mutex> guard{st.m->mu};
          announced = st.m->announced;
        }
        for (auto& [id, info] : announced) {
          if (id == st.m->me.id) continue;
          auto& p = st.peers[id];
          if (!p.connected && !p.connecting && now - p.last_try > std::chrono::seconds(3))
            connect(self, info, true);
        }
        evaluate(self);
      },
      // Answers to our own hello sent on rejoin (ignored).
      [](const std::string&, const caf::actor&) {},
  };
}

caf::behavior query_server(caf::event_based_actor* self, cluster_member::impl* m) {
  return {
      // A query of this node's HTTP or API threads for another node: asked
      // from here, so no thread outside CAF holds an actor (a scoped_actor on
      // a foreign thread pool kept the actor system from shutting down).
      [self](forward_atom, const caf::actor& remote, const std::string& store,
             const std::string& key, int64_t max_lag, uint32_t timeout_ms,
             const answer_promise& done) {
        self->request(remote, std::chrono::milliseconds(timeout_ms), query_atom::value,
                      store, key, max_lag)
            .then(
                [done](int32_t code, bool found, std::string& value, std::string& error) {
                  done->set_value({code, found, std::move(value), std::move(error)});
                },
                [self, done](caf::error& e) {
                  query_answer a;
                  a.code = static_cast<int32_t>(errc::state_not_ready);
                  a.error = self->system().render(e) + "; retry shortly";
                  done->set_value(std::move(a));
                });
      },
      [m](query_atom, const std::string& store, const std::string& key,
          int64_t max_lag) -> caf::result<int32_t, bool, std::string, std::string> {
        auto a = m->hooks.local_query(store, key, max_lag);
        return {a.code, a.found, std::move(a.value), std::move(a.error)};
      },
  };
}

} // namespace

cluster_member::cluster_member(node_context* ctx, member_info self,
                               std::vector<bool> stateful,
                               std::vector<std::string> unit_names, cluster_hooks hooks)
  : impl_(std::make_unique<impl>()) {
  impl_->unit_names = std::move(unit_names);
  impl_->ctx = ctx;
  impl_->me = std::move(self);
  impl_->stateful = std::move(stateful);
  impl_->hooks = std::move(hooks);
  impl_->topic = ctx->application_id + "-cluster";
  impl_->timeout_ms = static_cast<int>(ctx->cfg.get_int("cluster.timeout.ms"));
}

cluster_member::~cluster_member() {
  impl_->stop = true;
  if (impl_->reader_thread.joinable()) impl_->reader_thread.join();
  if (impl_->watchdog.joinable()) impl_->watchdog.join();
  // The actors use this object: wait until they are gone (a handler may be
  // in a blocking Kafka call).
  if (impl_->sys && (impl_->coordinator || impl_->query)) {
    caf::scoped_actor self{*impl_->sys};
    for (auto* a : {&impl_->coordinator, &impl_->query}) {
      if (!*a) continue;
      self->monitor(*a);
      self->send_exit(*a, caf::exit_reason::kill);
      self->receive([](caf::down_msg&) {},
                    caf::after(std::chrono::seconds(60)) >>
                        [] { log::warn("cluster: an actor did not stop"); });
      *a = nullptr;
    }
  }
  impl_->queue.reset();
  if (impl_->reader) (void)impl_->reader->close();
}

const member_info& cluster_member::self() const {
  return impl_->me;
}

status cluster_member::start(caf::actor_system& sys, int timeout_ms) {
  auto* m = impl_.get();
  m->sys = &sys;
  auto& cfg = m->ctx->cfg;
  auto admin = kafka::admin::create(cfg.kafka_properties(client_kind::admin));
  if (!admin) return admin.error();
  auto rf = static_cast<int>(cfg.get_int("replication.factor"));
  if (auto s = (*admin)->ensure_topics(
          {{m->topic, 1, rf, {{"cleanup.policy", "compact"}, {"segment.ms", "600000"}}}},
          timeout_ms);
      !s)
    return s;
  auto pprops = cfg.kafka_properties(client_kind::producer);
  pprops["linger.ms"] = "0";
  auto p = kafka::producer::create(std::move(pprops));
  if (!p) return p.error();
  m->announcer = std::move(*p);
  auto cprops = cfg.kafka_properties(client_kind::consumer);
  cprops["group.id"] = m->ctx->application_id + "-cluster-reader";
  cprops["isolation.level"] = "read_committed";
  cprops["fetch.wait.max.ms"] = "10";
  auto c = kafka::consumer::create(std::move(cprops));
  if (!c) return c.error();
  m->reader = std::move(*c);
  m->queue = m->reader->take_queue(m->tp());
  if (auto s = m->reader->assign_at({{m->tp(), weft::offset{RD_KAFKA_OFFSET_BEGINNING}}});
      !s)
    return s;
  m->reader_thread = std::thread{[m] { m->read_loop(); }};
  // A topic another node created a moment ago may not be known to every
  // broker connection yet.
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (auto s = m->sync(timeout_ms); !s; s = m->sync(timeout_ms)) {
    if ((s.code() != errc::not_found && s.code() != errc::kafka) ||
        std::chrono::steady_clock::now() > deadline)
      return s;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }

  m->watchdog_ms = impl::steady_ms();
  m->watchdog = std::thread{[m] {
    while (!m->stop.load(std::memory_order_relaxed)) {
      auto now = impl::steady_ms();
      if (now - m->watchdog_ms.load() > m->timeout_ms) {
        m->frozen = true;
        if (m->coordinator) caf::anon_send(m->coordinator, logchg_atom::value);
      }
      m->watchdog_ms = now;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }};
  m->query = sys.spawn(query_server, m);
  m->coordinator = sys.spawn<caf::detached>(coordinator, m);
  auto port = sys.middleman().publish(m->coordinator,
                                      static_cast<uint16_t>(cfg.get_int("cluster.port")),
                                      m->me.host.c_str(), false);
  if (!port)
    return make_error(errc::invalid_config,
                      "cluster.port: cannot listen on " + m->me.host + ":" +
                          std::to_string(cfg.get_int("cluster.port")) + " (" +
                          sys.render(port.error()) +
                          "); pick a free port, or 0 for any, or set cluster.host");
  m->me.port = *port;
  m->me.incarnation = now_ms();
  if (auto s = m->announce(false); !s) return s;
  log::info("cluster: node {} listening on {}:{}, announced in {}", m->me.id, m->me.host,
            m->me.port, m->topic);
  caf::anon_send(m->coordinator, logchg_atom::value);
  return {};
}

void cluster_member::leave(int timeout_ms) {
  auto* m = impl_.get();
  if (!m->coordinator) return;
  {
    caf::scoped_actor self{*m->sys};
    self->request(m->coordinator, std::chrono::milliseconds(timeout_ms), bye_atom::value)
        .receive([] {}, [](caf::error&) {});
  }
  if (auto s = m->announce(true); !s)
    log::warn("cluster: removing the announcement: {}", s.message());
}

std::shared_ptr<const cluster::assignment> cluster_member::current() const {
  std::lock_guard<std::mutex> guard{impl_->mu};
  return impl_->latest;
}

bool cluster_member::connected(const std::string& node) const {
  std::lock_guard<std::mutex> guard{impl_->mu};
  auto i = impl_->peers.find(node);
  return i != impl_->peers.end() && i->second.connected;
}

query_answer cluster_member::remote_get(const std::string& node, const std::string& store,
                                        const std::string& key, int64_t max_lag,
                                        int timeout_ms) {
  caf::actor q;
  {
    std::lock_guard<std::mutex> guard{impl_->mu};
    auto i = impl_->peers.find(node);
    if (i != impl_->peers.end() && i->second.connected) q = i->second.query;
  }
  query_answer out;
  if (!q) {
    out.code = static_cast<int32_t>(errc::state_not_ready);
    out.error = "node " + node + " (the owner) is not reachable from here; retry shortly";
    return out;
  }
  auto done = std::make_shared<std::promise<query_answer>>();
  auto answer = done->get_future();
  caf::anon_send(impl_->query, forward_atom::value, q, store, key, max_lag,
                 static_cast<uint32_t>(timeout_ms), done);
  if (answer.wait_for(std::chrono::milliseconds(timeout_ms + 1000)) !=
      std::future_status::ready) {
    out.code = static_cast<int32_t>(errc::state_not_ready);
    out.error = "asking node " + node + ": no answer; retry shortly";
    return out;
  }
  out = answer.get();
  if (out.code == static_cast<int32_t>(errc::state_not_ready) &&
      out.error.rfind("asking node", 0) != 0 &&
      out.error.find("retry") != std::string::npos &&
      out.error.find("node ") == std::string::npos)
    out.error = "asking node " + node + ": " + out.error;
  return out;
}

void cluster_member::released(const std::vector<size_t>& units, int64_t generation) {
  if (units.empty()) return;
  std::lock_guard<std::mutex> guard{impl_->mu};
  std::vector<uint64_t> list{units.begin(), units.end()};
  for (auto& [id, p] : impl_->peers)
    if (p.connected && p.coord)
      for (auto u : list)
        caf::anon_send(p.coord, released_atom::value, u, impl_->me.id, generation);
}

void cluster_member::rejoin() {
  if (impl_->coordinator) caf::anon_send(impl_->coordinator, rejoin_atom::value);
}

std::string cluster_member::view_json() const {
  auto* m = impl_.get();
  std::lock_guard<std::mutex> guard{m->mu};
  json out;
  out["node"] = m->me.id;
  json members = json::array();
  members.push_back({{"id", m->me.id},
                     {"cluster", m->me.host + ":" + std::to_string(m->me.port)},
                     {"http", m->me.http},
                     {"connected", true}});
  for (auto& [id, p] : m->peers)
    members.push_back({{"id", id},
                       {"cluster", p.info.host + ":" + std::to_string(p.info.port)},
                       {"http", p.info.http},
                       {"connected", p.connected}});
  out["members"] = members;
  std::map<std::string, json> status;
  for (auto& [node, text] : m->statuses) {
    auto j = json::parse(text, nullptr, false);
    if (!j.is_discarded()) status[node] = j;
  }
  auto lag = [&](const std::string& node, const char* kind, size_t u) -> json {
    auto i = status.find(node);
    if (i == status.end() || !i->second.contains(kind)) return nullptr;
    auto key = std::to_string(u);
    if (!i->second[kind].contains(key)) return nullptr;
    return i->second[kind][key];
  };
  if (m->latest) {
    auto& a = *m->latest;
    out["generation"] = a.generation;
    out["leader"] = a.leader;
    json units = json::array();
    for (size_t u = 0; u < a.active.size(); ++u) {
      json unit{{"unit", u},
                {"tasks", u < m->unit_names.size() ? m->unit_names[u] : ""},
                {"active", a.active[u]},
                {"active_lag", lag(a.active[u], "active", u)}};
      json sb = json::array();
      for (auto& n : a.standbys[u])
        sb.push_back({{"node", n}, {"lag", lag(n, "standby", u)}});
      unit["standbys"] = sb;
      if (!a.warmup[u].empty()) unit["warmup"] = a.warmup[u];
      units.push_back(unit);
    }
    out["units"] = units;
  }
  return out.dump();
}

} // namespace weft::detail
