#include "cluster_sim.hpp"

#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>

#include "weft/cluster/membership_logic.hpp"
#include "weft/cluster/rebalance_logic.hpp"

namespace weft::sim {

using namespace weft::cluster;

namespace {

struct violation {
  std::string what;
};

/// A unit's tasks running on a node: they commit from `from` on.
struct instance {
  int64_t from = 0;
};

struct sim_node {
  std::string id;
  bool alive = false;
  bool started = false; ///< read the log, announced, logic running
  int64_t incarnation = 0;
  int64_t life = 0; ///< bumped at every kill: events of an earlier life are dropped
  time_ms frozen_until = -1;
  time_ms frozen_since = 0;
  std::vector<std::function<void()>> deferred; ///< events that came while frozen
  std::unique_ptr<membership_logic> ml;
  std::unique_ptr<rebalance_logic> rl;
  size_t log_delivered = 0;
  node_status last_sent;
  // Data plane.
  int64_t producer_epoch = -1;
  std::map<unit_id, instance> running;
  std::set<unit_id> standbys;
  std::map<unit_id, time_ms> standby_since;
  bool op_busy = false;
  // Lease keeper: Kafka calls one at a time.
  int64_t lease_epoch = -1;
  std::deque<membership_command> lease_queue;
  bool lease_busy = false;
};

struct log_record {
  bool is_member = false;
  member_record member;
  assignment assigned;
  time_ms visible_at = 0;
};

struct fault {
  time_ms at = 0;
  enum class kind { kill, kill_restart, freeze_long, freeze_short, lossy, wobble } what;
  int target_rule = 0; ///< 0 random, 1 the leader, 2 a node in a handoff
  time_ms duration = 0;
};

const char* name_of(fault::kind k) {
  switch (k) {
  case fault::kind::kill:
    return "kill";
  case fault::kind::kill_restart:
    return "kill+restart";
  case fault::kind::freeze_long:
    return "freeze(long)";
  case fault::kind::freeze_short:
    return "freeze(short)";
  case fault::kind::lossy:
    return "lossy network";
  case fault::kind::wobble:
    return "broker wobble";
  }
  return "?";
}

class world {
 public:
  explicit world(const sim_options& o) : o_(o), rng_(o.seed) {
    nodes_count_ = o.nodes > 0 ? o.nodes : pick(2, 5);
    units_count_ = o.units > 0 ? o.units : pick(3, 16);
    for (int u = 0; u < units_count_; ++u)
      stateful_.push_back(pick(0, 3) > 0);
    for (int i = 0; i < nodes_count_; ++i) {
      auto n = std::make_unique<sim_node>();
      n->id = "n" + std::to_string(i + 1);
      nodes_.push_back(std::move(n));
    }
    committed_.assign(static_cast<size_t>(units_count_), 0);
  }

  sim_result run() {
    sim_result r;
    try {
      plan_faults();
      for (auto& n : nodes_)
        at(pick(0, 2000), [this, n = n.get()] { boot(*n); });
      at(0, [this] { commit_loop(); });
      auto end_faults = o_.fault_ms;
      at(end_faults, [this] { end_of_faults(); });
      auto deadline = end_faults + 3000 + o_.settle_bound_ms + o_.observe_ms;
      while (!queue_.empty() && !done_) {
        auto it = queue_.begin();
        now_ = it->first.first;
        auto fn = std::move(it->second);
        queue_.erase(it);
        ++events_;
        fn();
        if (now_ > deadline) break;
      }
      if (!done_) {
        if (settled_at_ < 0)
          throw violation{"the cluster did not settle within " +
                          std::to_string(o_.settle_bound_ms) +
                          " ms after the faults: " + unsettled_reason_};
        throw violation{"the simulation ended before its checks"};
      }
    } catch (const violation& v) {
      r.ok = false;
      r.failure = "t=" + std::to_string(now_) + " ms: " + v.what;
    }
    r.schedule = schedule_.str();
    (void)nodes_count_;
    r.trace.assign(trace_.begin(), trace_.end());
    r.settle_ms = settled_at_ < 0 ? -1 : settled_at_ - faults_end_;
    r.events = events_;
    r.commits = commits_;
    r.rejected_commits = rejected_;
    r.generations = generations_;
    r.faults = faults_;
    r.leader_faults = leader_faults_;
    return r;
  }

 private:
  // -- scheduling -------------------------------------------------------------

  int pick(int lo, int hi) { return std::uniform_int_distribution<int>{lo, hi}(rng_); }
  bool chance(double p) { return std::uniform_real_distribution<double>{0, 1}(rng_) < p; }

  void at(time_ms when, std::function<void()> fn) {
    queue_.emplace(std::make_pair(std::max(when, now_), seq_++), std::move(fn));
  }
  void after(time_ms delay, std::function<void()> fn) { at(now_ + delay, std::move(fn)); }

  /// An event of node `n` in its current life: dropped if the node died,
  /// held while it is frozen.
  void on_node(sim_node& n, time_ms delay, std::function<void()> fn) {
    on_node_life(n, n.life, delay, std::move(fn));
  }
  void on_node_life(sim_node& n, int64_t life, time_ms delay, std::function<void()> fn) {
    after(delay, [this, &n, life, fn = std::move(fn)]() mutable {
      if (!n.alive || n.life != life) return;
      if (n.frozen_until > now_) {
        n.deferred.push_back(std::move(fn));
        return;
      }
      fn();
    });
  }

  void log(const sim_node* n, const std::string& line) {
    std::string l = "t=" + std::to_string(now_) + " " + (n ? n->id : "sim") + ": " + line;
    trace_.push_back(std::move(l));
    if (!o_.trace && trace_.size() > 400) trace_.pop_front();
  }

  sim_node* node(const std::string& id) {
    for (auto& n : nodes_)
      if (n->id == id) return n.get();
    return nullptr;
  }

  bool wobbling() const { return now_ < wobble_until_; }
  bool lossy() const { return now_ < lossy_until_; }
  time_ms kafka_latency(int lo, int hi) {
    auto l = static_cast<time_ms>(pick(lo, hi));
    return wobbling() ? l * 10 : l;
  }
  bool kafka_fails() { return wobbling() && chance(0.5); }

  // -- nodes ------------------------------------------------------------------

  void boot(sim_node& n) {
    n.alive = true;
    n.started = false;
    n.incarnation = now_ + 1;
    n.frozen_until = -1;
    n.deferred.clear();
    n.running.clear();
    n.standbys.clear();
    n.standby_since.clear();
    n.op_busy = false;
    n.lease_epoch = -1;
    n.lease_queue.clear();
    n.lease_busy = false;
    n.log_delivered = 0;
    announced_of(n).clear();
    n.last_sent = {};
    n.producer_epoch = -1;
    log(&n, "starts (incarnation " + std::to_string(n.incarnation) + ")");
    auto sink = [this, &n](log_level, const std::string& line) { log(&n, line); };
    membership_settings ms;
    ms.self = {n.id, "127.0.0.1", 1, "", n.incarnation, "topology"};
    ms.stateful = stateful_;
    ms.num_standbys = 1;
    ms.acceptable_lag = 10000;
    ms.exactly_once = o_.exactly_once;
    ms.quiet_ms = o_.timeout_ms;
    ms.log = sink;
    n.ml = std::make_unique<membership_logic>(ms);
    rebalance_settings rs;
    rs.self = n.id;
    rs.incarnation = n.incarnation;
    rs.stateful = stateful_;
    rs.log = sink;
    n.rl = std::make_unique<rebalance_logic>(rs);
    // As a node starts: its producer takes the transactional.id (fencing the
    // previous incarnation), it reads the cluster log to its end, announces
    // itself, and its coordinator starts.
    on_node(n, kafka_latency(5, 50), [this, &n] {
      if (kafka_fails()) {
        log(&n, "start-up: init_transactions failed; retrying");
        on_node(n, 200, [this, &n] { restart_boot(n); });
        return;
      }
      n.producer_epoch = ++data_epoch_[n.id];
      // Read to the log's end as of now (records still on their way to
      // being readable included), then announce and start.
      time_ms end = now_;
      for (auto& r : log_)
        end = std::max(end, r.visible_at);
      on_node(n, end - now_, [this, &n] {
        read_log(n);
        append_member(n);
        n.started = true;
        n.ml->start(now_);
        n.rl->start(now_);
        ticks(n);
        status_loop(n);
        connect_loop(n);
      });
    });
  }

  void restart_boot(sim_node& n) {
    n.alive = false;
    ++n.life;
    boot(n);
  }

  void append_member(sim_node& n) {
    log_record r;
    r.is_member = true;
    r.member = {n.id, "127.0.0.1", 1, "", n.incarnation, "topology"};
    r.visible_at = now_ + pick(0, 30);
    log_.push_back(r);
    notify_log();
  }

  /// Delivers the visible log records this node has not read.
  void read_log(sim_node& n) {
    std::vector<assignment> fresh;
    bool any = false;
    while (n.log_delivered < log_.size() && log_[n.log_delivered].visible_at <= now_) {
      auto& r = log_[n.log_delivered++];
      any = true;
      if (r.is_member)
        announced_of(n)[r.member.id] = r.member;
      else
        fresh.push_back(r.assigned);
    }
    if (!any && n.started) return;
    n.ml->log_read(announced_of(n), fresh, static_cast<int64_t>(n.log_delivered), now_);
    n.rl->generations(fresh, now_);
    drain(n);
    // A new announcement: connect to it.
    if (n.started)
      for (auto& [id, m] : announced_of(n))
        if (id != n.id && !linked(n.id, id)) try_connect(n, id);
  }

  std::map<std::string, member_record>& announced_of(sim_node& n) {
    return announced_[n.id];
  }

  void notify_log() {
    // Readers fetch what became visible after a short delay.
    for (auto& n : nodes_) {
      auto* p = n.get();
      if (!p->alive || !p->started) continue;
      auto when = log_.back().visible_at - now_ + pick(1, 15);
      on_node(*p, when, [this, p] { read_log(*p); });
    }
  }

  void ticks(sim_node& n) {
    on_node(n, 200, [this, &n] {
      n.ml->tick(now_);
      n.rl->tick(now_);
      drain(n);
      ticks(n);
    });
  }

  void status_loop(sim_node& n) {
    on_node(n, 500, [this, &n] {
      broadcast(n, true);
      status_loop(n);
    });
  }

  void connect_loop(sim_node& n) {
    on_node(n, 1000 + pick(0, 2000), [this, &n] {
      for (auto& [id, m] : announced_of(n))
        if (id != n.id && !linked(n.id, id)) try_connect(n, id);
      connect_loop(n);
    });
  }

  // -- peer links -------------------------------------------------------------

  static std::pair<std::string, std::string> link_key(const std::string& a,
                                                      const std::string& b) {
    return a < b ? std::make_pair(a, b) : std::make_pair(b, a);
  }
  bool linked(const std::string& a, const std::string& b) const {
    return links_.count(link_key(a, b)) > 0;
  }

  void try_connect(sim_node& from, const std::string& to_id) {
    auto* to = node(to_id);
    auto key = link_key(from.id, to_id);
    if (connecting_.count(key)) return;
    connecting_.insert(key);
    after(pick(1, 20), [this, &from, to, key] {
      connecting_.erase(key);
      bool reachable = from.alive && to->alive && from.started && to->started &&
                       from.frozen_until <= now_ && to->frozen_until <= now_;
      if (!reachable || links_.count(key)) return;
      links_[key] = ++link_seq_;
      on_node(from, pick(0, 5), [this, &from, to] { peer_up(from, *to); });
      on_node(*to, pick(0, 5), [this, &from, to] { peer_up(*to, from); });
    });
  }

  void peer_up(sim_node& n, sim_node& peer) {
    if (!linked(n.id, peer.id)) return;
    n.ml->peer_up({peer.id, "127.0.0.1", 1, "", peer.incarnation, "topology"}, now_);
    drain(n);
    // A new peer gets this node's status at once.
    send_status(n, peer);
  }

  /// The link between a and b is gone: each side learns after `delay_a` and
  /// `delay_b` (a frozen side when it thaws).
  void cut(sim_node& a, sim_node& b, time_ms delay_a, time_ms delay_b) {
    auto key = link_key(a.id, b.id);
    if (!links_.erase(key)) return;
    on_node(a, delay_a, [this, &a, &b] { peer_down(a, b.id); });
    on_node(b, delay_b, [this, &a, &b] { peer_down(b, a.id); });
  }

  void peer_down(sim_node& n, const std::string& id) {
    if (linked(n.id, id)) return; // reconnected meanwhile: the up comes after
    n.ml->peer_down(id, now_);
    drain(n);
  }

  void send_status(sim_node& from, sim_node& to) {
    auto s = status_of(from);
    if (lossy() && chance(0.5)) return;
    auto key = link_key(from.id, to.id);
    auto link = links_.count(key) ? links_[key] : -1;
    on_node(to, pick(1, lossy() ? 200 : 20), [this, &to, key, link, s] {
      auto i = links_.find(key);
      if (i == links_.end() || i->second != link) return; // sent on a dead link
      to.ml->status(s, now_);
      to.rl->status(s, now_);
      drain(to);
    });
  }

  node_status status_of(sim_node& n) {
    auto s = n.rl->status();
    for (auto u : n.standbys) {
      auto since = n.standby_since[u];
      auto catchup = 100 + static_cast<time_ms>((u * 7919 + n.id.size() * 31) % 1900);
      s.standby_lag[u] = now_ - since >= catchup ? 0 : 50000;
    }
    for (auto& [u, i] : n.running)
      s.active_lag[u] = 0;
    return s;
  }

  void broadcast(sim_node& n, bool always) {
    auto s = status_of(n);
    if (!always && s == n.last_sent) return;
    n.last_sent = s;
    n.ml->status(s, now_);
    for (auto& p : nodes_)
      if (p.get() != &n && linked(n.id, p->id)) send_status(n, *p);
    drain_ml(n);
  }

  // -- commands ---------------------------------------------------------------

  void drain(sim_node& n) {
    drain_ml(n);
    for (auto& c : n.rl->take_commands())
      run_task_command(n, c);
    broadcast(n, false);
  }

  void drain_ml(sim_node& n) {
    for (auto& c : n.ml->take_commands()) {
      n.lease_queue.push_back(c);
      next_lease_call(n);
    }
  }

  void next_lease_call(sim_node& n) {
    if (n.lease_busy || n.lease_queue.empty()) return;
    auto c = n.lease_queue.front();
    n.lease_queue.pop_front();
    if (c.what == membership_command::kind::drop_lease) {
      n.lease_epoch = -1;
      return next_lease_call(n);
    }
    n.lease_busy = true;
    // The call reaches the broker after a latency whatever happens to the
    // node meanwhile (a request on its way lands); the answer reaches the
    // node's life that asked, if it is still alive (held while frozen).
    auto life = n.life;
    auto answer = [this, &n, life](std::function<void()> fn) {
      on_node_life(n, life, pick(1, 5), [this, &n, fn = std::move(fn)] {
        fn();
        n.lease_busy = false;
        drain(n);
        next_lease_call(n);
      });
    };
    switch (c.what) {
    case membership_command::kind::claim_lease:
      after(kafka_latency(5, 60), [this, &n, answer] {
        if (kafka_fails())
          return answer(
              [this, &n] { n.ml->lease_failed("NOT_COORDINATOR (simulated)", now_); });
        auto epoch = ++lease_epoch_;
        auto end = static_cast<int64_t>(log_.size());
        time_ms visible = log_.empty() ? now_ : log_.back().visible_at;
        answer([this, &n, epoch, end, visible] {
          n.lease_epoch = epoch;
          n.ml->lease_taken(end, now_);
          // The log end includes records not readable yet: read them when
          // they are.
          on_node(n, std::max<time_ms>(0, visible - now_) + 1,
                  [this, &n] { read_log(n); });
        });
      });
      break;
    case membership_command::kind::fence:
      after(kafka_latency(10, 600), [this, &n, answer, who = c.node] {
        if (kafka_fails())
          return answer([this, &n, who] {
            n.ml->fence_failed(who, "CONCURRENT_TRANSACTIONS (simulated)", now_);
          });
        ++data_epoch_[who];
        log(&n, "fenced " + who + " (producer epoch now " +
                    std::to_string(data_epoch_[who]) + ")");
        answer([this, &n, who] { n.ml->fence_done(who, now_); });
      });
      break;
    case membership_command::kind::publish: {
      auto holder = n.lease_epoch;
      after(kafka_latency(5, 50), [this, &n, answer, holder, a = c.assignment_] {
        if (kafka_fails())
          return answer([this, &n, g = a.generation] {
            n.ml->publish_failed(g, "_TIMED_OUT (simulated)", false, now_);
          });
        if (holder != lease_epoch_)
          return answer([this, &n, g = a.generation] {
            n.ml->publish_failed(g, "the lease is fenced", true, now_);
          });
        if (published_.count(a.generation))
          throw violation{"generation " + std::to_string(a.generation) +
                          " published twice (by " + published_[a.generation] + " and " +
                          n.id + ")"};
        if (a.generation <= last_generation_)
          throw violation{"generation " + std::to_string(a.generation) +
                          " published after " + std::to_string(last_generation_)};
        published_[a.generation] = n.id;
        last_generation_ = a.generation;
        ++generations_;
        log_record r;
        r.assigned = a;
        r.visible_at = now_ + pick(0, 30);
        log_.push_back(r);
        notify_log();
        answer([this, &n, g = a.generation] { n.ml->publish_done(g, now_); });
      });
      break;
    }
    case membership_command::kind::drop_lease:
      break;
    }
  }

  void run_task_command(sim_node& n, const task_command& c) {
    if (n.op_busy) throw violation{n.id + ": a task command while another one runs"};
    n.op_busy = true;
    auto id = c.id;
    auto finish = [this, &n, id](bool ok, const std::string& why) {
      n.op_busy = false;
      if (ok)
        n.rl->task_done(id, now_);
      else
        n.rl->task_failed(id, why, now_);
      drain(n);
    };
    auto dropped = [this, &n, id] {
      n.op_busy = false;
      rejoin(n, id);
    };
    switch (c.what) {
    case task_command::kind::standbys:
      on_node(n, pick(1, 10), [this, &n, c, finish] {
        set_standbys(n, c.standbys);
        finish(true, "");
      });
      break;
    case task_command::kind::drop:
      // Every task stops without committing; the producer is created again
      // and takes the transactional.id, fencing whatever was left open;
      // the node comes back as a new incarnation.
      n.running.clear();
      on_node(n, kafka_latency(5, 80), [this, &n, finish, dropped] {
        if (kafka_fails()) return finish(false, "init_transactions: NOT_COORDINATOR");
        n.producer_epoch = ++data_epoch_[n.id];
        dropped();
      });
      break;
    case task_command::kind::run: {
      std::set<unit_id> want{c.units.begin(), c.units.end()};
      if (!c.only_add) {
        // Stop: a final epoch commits what every task did, then they stop.
        on_node(n, kafka_latency(5, 60), [this, &n, c, want, finish] {
          if (!commit_epoch(n, "final epoch"))
            return finish(false, "the final epoch did not commit");
          n.running.clear();
          set_standbys(n, c.standbys);
          start_units(n, want, finish);
        });
      } else {
        set_standbys(n, c.standbys);
        start_units(n, want, finish);
      }
      break;
    }
    }
  }

  /// A new incarnation: announced in the log and said again to every peer.
  void rejoin(sim_node& n, uint64_t drop_id) {
    n.incarnation = std::max(now_ + 1, n.incarnation + 1);
    log(&n, "rejoins as incarnation " + std::to_string(n.incarnation));
    n.rl->dropped(drop_id, n.incarnation, now_);
    n.ml->rejoined(n.incarnation, now_);
    append_member(n);
    for (auto& p : nodes_) {
      auto* peer = p.get();
      if (peer != &n && linked(n.id, peer->id))
        on_node(*peer, pick(1, 10), [this, peer, &n] { peer_up(*peer, n); });
    }
    drain(n);
  }

  void set_standbys(sim_node& n, const std::vector<unit_id>& units) {
    std::set<unit_id> next{units.begin(), units.end()};
    for (auto u : next)
      if (!n.standbys.count(u)) n.standby_since[u] = now_;
    n.standbys = next;
  }

  /// Starts the wanted units that do not run yet (restore, then read the
  /// committed offset).
  void start_units(sim_node& n, std::set<unit_id> want,
                   std::function<void(bool, const std::string&)> finish) {
    for (auto u : want)
      n.standbys.erase(u);
    on_node(n, kafka_latency(10, 400), [this, &n, want, finish] {
      for (auto u : want) {
        if (n.running.count(u)) continue;
        check_single_owner(n, u);
        n.running[u] = {committed_[u]};
      }
      finish(true, "");
    });
  }

  /// No other node runs `u` with a producer that may still commit.
  void check_single_owner(sim_node& n, unit_id u) {
    if (!o_.exactly_once) return;                      // no fencing: zombies may overlap
    if (n.producer_epoch != data_epoch_[n.id]) return; // a zombie: it cannot commit
    for (auto& p : nodes_) {
      if (p.get() == &n || !p->alive || !p->running.count(u)) continue;
      if (p->producer_epoch != data_epoch_[p->id]) continue; // fenced: cannot commit
      throw violation{"unit " + std::to_string(u) + " starts on " + n.id +
                      " while it runs on " + p->id + " whose producer is not fenced"};
    }
  }

  // -- the data plane ---------------------------------------------------------

  void commit_loop() {
    after(100, [this] {
      for (auto& n : nodes_) {
        auto* p = n.get();
        if (!p->alive || p->running.empty()) continue;
        on_node(*p, pick(0, 20), [this, p] { commit_epoch(*p, "epoch"); });
      }
      commit_loop();
    });
  }

  /// Commits every running unit's progress in one transaction; false if
  /// the producer is fenced (the node learns it) or the commit failed.
  bool commit_epoch(sim_node& n, const char* what) {
    if (n.running.empty()) return true;
    if (n.producer_epoch != data_epoch_[n.id]) {
      ++rejected_;
      log(&n, std::string{what} + " refused: the producer is fenced");
      n.rl->fenced("the producer is fenced", now_);
      drain(n);
      return false;
    }
    if (kafka_fails()) {
      // Aborted: roll back to the committed offsets.
      for (auto& [u, i] : n.running)
        i.from = committed_[u];
      return false;
    }
    for (auto& [u, i] : n.running) {
      // at_least_once: a zombie may commit what another node committed too.
      if (committed_[u] != i.from && o_.exactly_once)
        throw violation{"unit " + std::to_string(u) + ": " + n.id + " commits from " +
                        std::to_string(i.from) + " but the committed offset is " +
                        std::to_string(committed_[u]) + " (processed twice or skipped)"};
      i.from += 1 + pick(0, 5);
      committed_[u] = i.from;
    }
    ++commits_;
    return true;
  }

  // -- faults -----------------------------------------------------------------

  void plan_faults() {
    time_ms every = o_.fault_every_ms > 0 ? o_.fault_every_ms : pick(1000, 6000);
    time_ms t = 2000 + pick(0, static_cast<int>(every));
    while (t < o_.fault_ms) {
      fault f;
      f.at = t;
      int k = pick(0, 99);
      f.what = k < 35   ? fault::kind::kill_restart
               : k < 45 ? fault::kind::kill
               : k < 60 ? fault::kind::freeze_long
               : k < 72 ? fault::kind::freeze_short
               : k < 86 ? fault::kind::lossy
                        : fault::kind::wobble;
      int rule = pick(0, 99);
      f.target_rule = rule < 40 ? 1 : rule < 55 ? 2 : 0;
      switch (f.what) {
      case fault::kind::kill:
        f.duration = 0;
        break;
      case fault::kind::kill_restart:
        f.duration = pick(0, 3000);
        break;
      case fault::kind::freeze_long:
        f.duration = o_.timeout_ms + pick(200, static_cast<int>(o_.timeout_ms * 3));
        break;
      case fault::kind::freeze_short:
        f.duration = pick(50, static_cast<int>(o_.timeout_ms * 8 / 10));
        break;
      case fault::kind::lossy:
      case fault::kind::wobble:
        f.duration = pick(500, 5000);
        break;
      }
      at(f.at, [this, f] { inject(f); });
      // Two faults close together now and then.
      if (chance(0.2)) {
        auto g = f;
        g.at = f.at + pick(0, 300);
        g.what = chance(0.5) ? fault::kind::kill_restart : fault::kind::freeze_long;
        g.target_rule = 0;
        g.duration = g.what == fault::kind::kill_restart
                         ? pick(0, 2000)
                         : o_.timeout_ms + pick(200, static_cast<int>(o_.timeout_ms));
        at(g.at, [this, g] { inject(g); });
      }
      t += every / 2 + pick(0, static_cast<int>(every));
    }
  }

  sim_node* leader() {
    for (auto& n : nodes_)
      if (n->alive && n->started && n->ml->leads()) return n.get();
    return nullptr;
  }

  sim_node* target_of(const fault& f) {
    std::vector<sim_node*> alive;
    for (auto& n : nodes_)
      if (n->alive) alive.push_back(n.get());
    if (alive.empty()) return nullptr;
    if (f.target_rule == 1)
      if (auto* l = leader()) return l;
    if (f.target_rule == 2)
      for (auto* n : alive)
        if (n->op_busy) return n;
    return alive[static_cast<size_t>(pick(0, static_cast<int>(alive.size()) - 1))];
  }

  void inject(const fault& f) {
    if (f.what == fault::kind::lossy) {
      lossy_until_ = std::max(lossy_until_, now_ + f.duration);
      note(f, nullptr);
      return;
    }
    if (f.what == fault::kind::wobble) {
      wobble_until_ = std::max(wobble_until_, now_ + f.duration);
      note(f, nullptr);
      return;
    }
    auto* n = target_of(f);
    if (!n) return;
    int alive = 0;
    for (auto& p : nodes_)
      alive += p->alive;
    if (f.what == fault::kind::kill && alive <= 1) return; // keep one node
    if ((f.what == fault::kind::freeze_long || f.what == fault::kind::freeze_short) &&
        n->frozen_until > now_)
      return;
    note(f, n);
    switch (f.what) {
    case fault::kind::kill:
    case fault::kind::kill_restart:
      kill(*n, f.what == fault::kind::kill_restart, f.duration);
      break;
    case fault::kind::freeze_long:
    case fault::kind::freeze_short:
      freeze(*n, f.duration);
      break;
    default:
      break;
    }
  }

  void note(const fault& f, sim_node* n) {
    ++faults_;
    bool on_leader = n && n->started && n->ml->leads();
    leader_faults_ += on_leader;
    std::string line = "t=" + std::to_string(now_) + " " + name_of(f.what);
    if (n)
      line += " " + n->id + (on_leader ? " (the leader)" : "") +
              (n->op_busy ? " (in a task operation)" : "");
    if (f.duration) line += " for " + std::to_string(f.duration) + " ms";
    schedule_ << line << "\n";
    log(nullptr, "FAULT: " + line);
  }

  void kill(sim_node& n, bool restart, time_ms after_ms) {
    n.alive = false;
    n.started = false;
    ++n.life;
    n.running.clear();
    n.deferred.clear();
    for (auto& p : nodes_)
      if (p.get() != &n) cut(n, *p, 0, pick(5, 50));
    if (restart)
      after(after_ms, [this, &n] { boot(n); });
    else
      dead_.insert(n.id);
  }

  void freeze(sim_node& n, time_ms duration) {
    n.frozen_since = now_;
    n.frozen_until = now_ + duration;
    auto life = n.life;
    // The peers' heartbeats time out.
    if (duration > o_.timeout_ms)
      after(o_.timeout_ms + pick(0, 200), [this, &n, life] {
        if (n.life != life || n.frozen_until <= now_) return;
        for (auto& p : nodes_)
          if (p.get() != &n) cut(n, *p, 0, pick(0, 20));
      });
    after(duration, [this, &n, life, duration] {
      if (n.life != life || !n.alive) return;
      n.frozen_until = -1;
      auto held = std::move(n.deferred);
      n.deferred.clear();
      for (auto& fn : held)
        after(0, [this, &n, life, fn = std::move(fn)] {
          if (n.life == life && n.alive) fn();
        });
      if (duration > o_.timeout_ms) {
        // The watchdog sees the stall a moment later.
        on_node(n, pick(0, 60), [this, &n] {
          log(&n, "watchdog: frozen");
          n.ml->frozen(now_);
          n.rl->fenced("frozen longer than cluster.timeout.ms", now_);
          drain(n);
        });
      }
    });
  }

  void end_of_faults() {
    faults_end_ = now_;
    // Nodes killed for good come back now and then.
    for (auto& id : dead_)
      if (chance(0.5)) {
        auto* n = node(id);
        after(pick(0, 500), [this, n] {
          if (!n->alive) boot(*n);
        });
      }
    dead_.clear();
    lossy_until_ = wobble_until_ = 0;
    after(1000, [this] { watch_settle(); });
  }

  /// Whether the cluster settled; else why not.
  bool settled(std::string& why) {
    std::vector<sim_node*> alive;
    for (auto& n : nodes_)
      if (n->alive) alive.push_back(n.get());
    if (alive.empty()) {
      why = "no node alive";
      return false;
    }
    for (auto* n : alive)
      if (!n->started || n->frozen_until > now_) {
        why = n->id + " is not up";
        return false;
      }
    auto* first = alive.front();
    if (!first->ml->leads()) {
      why = first->id + " (smallest live id) does not lead";
      return false;
    }
    auto& latest = first->ml->latest();
    if (!latest) {
      why = "nothing published";
      return false;
    }
    std::vector<std::string> ids;
    for (auto* n : alive)
      ids.push_back(n->id);
    if (latest->members != ids) {
      why = "generation " + std::to_string(latest->generation) + " is for other members";
      return false;
    }
    for (unit_id u = 0; u < latest->active.size(); ++u) {
      auto* owner = node(latest->active[u]);
      if (!owner || !owner->running.count(u)) {
        why = "unit " + std::to_string(u) + " does not run on " + latest->active[u];
        if (owner) {
          auto w = owner->rl->waiting();
          if (w.count(u)) why += " (it waits for " + w[u] + ")";
          if (owner->rl->dropping()) why += " (it is dropping its tasks)";
        }
        return false;
      }
      for (auto* n : alive)
        if (n != owner && n->running.count(u)) {
          why = "unit " + std::to_string(u) + " also runs on " + n->id;
          return false;
        }
    }
    return true;
  }

  void watch_settle() {
    std::string why;
    bool ok = settled(why);
    unsettled_reason_ = why;
    if (settled_at_ < 0) {
      if (ok) {
        settled_at_ = now_;
        log(nullptr,
            "settled " + std::to_string(now_ - faults_end_) + " ms after the last fault");
        after(o_.observe_ms, [this] { final_check(); });
      } else if (now_ - faults_end_ > o_.settle_bound_ms) {
        throw violation{"the cluster did not settle within " +
                        std::to_string(o_.settle_bound_ms) +
                        " ms after the faults: " + why};
      }
    }
    after(100, [this] { watch_settle(); });
  }

  /// Still settled once observe_ms passed; a warm-up may be moving a unit
  /// right then, so it may take until the settle bound again.
  void final_check(time_ms since = -1) {
    if (since < 0) since = now_;
    std::string why;
    if (settled(why)) {
      done_ = true;
      return;
    }
    if (now_ - since > o_.settle_bound_ms)
      throw violation{"settled, then unsettled for " + std::to_string(now_ - since) +
                      " ms: " + why};
    after(100, [this, since] { final_check(since); });
  }

  sim_options o_;
  std::mt19937_64 rng_;
  int nodes_count_ = 0;
  int units_count_ = 0;
  std::vector<bool> stateful_;
  std::vector<std::unique_ptr<sim_node>> nodes_;
  std::map<std::pair<time_ms, uint64_t>, std::function<void()>> queue_;
  uint64_t seq_ = 0;
  time_ms now_ = 0;
  bool done_ = false;
  // The broker.
  std::vector<log_record> log_;
  std::map<std::string, std::map<std::string, member_record>> announced_;
  int64_t lease_epoch_ = 0;
  std::map<std::string, int64_t> data_epoch_;
  std::vector<int64_t> committed_;
  std::map<int64_t, std::string> published_;
  int64_t last_generation_ = 0;
  // The network.
  std::map<std::pair<std::string, std::string>, int64_t> links_;
  std::set<std::pair<std::string, std::string>> connecting_;
  int64_t link_seq_ = 0;
  time_ms lossy_until_ = 0;
  time_ms wobble_until_ = 0;
  std::set<std::string> dead_;
  // Results.
  std::ostringstream schedule_;
  std::deque<std::string> trace_;
  time_ms faults_end_ = 0;
  time_ms settled_at_ = -1;
  std::string unsettled_reason_;
  int64_t events_ = 0;
  int64_t commits_ = 0;
  int64_t rejected_ = 0;
  int64_t generations_ = 0;
  int faults_ = 0;
  int leader_faults_ = 0;
};

} // namespace

std::string sim_result::summary() const {
  std::ostringstream out;
  out << (ok ? "ok" : "FAILED") << ": " << faults << " faults (" << leader_faults
      << " on the leader), " << generations << " generations, " << commits << " commits ("
      << rejected_commits << " refused: fenced), " << events << " events";
  if (settle_ms >= 0) out << ", settled " << settle_ms << " ms after the last fault";
  if (!ok) out << "\n  " << failure;
  return out.str();
}

sim_result run_simulation(const sim_options& options) {
  world w{options};
  return w.run();
}

} // namespace weft::sim
