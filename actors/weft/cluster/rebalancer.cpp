#include "weft/cluster/rebalancer.hpp"

#include <caf/all.hpp>

#include <chrono>
#include <memory>

#include "weft/cluster/coordinator.hpp"
#include "weft/cluster/rebalance_logic.hpp"
#include "weft/log.hpp"
#include "weft/protocol.hpp"

namespace weft::cluster {

namespace {

int64_t wall_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct rebalancer_state {
  rebalancer_settings s;
  std::unique_ptr<rebalance_logic> logic;
  detail::task_manager_actor tasks;
  peer_links_actor links;
  coordinator_actor coordinator;
  int64_t incarnation = 0;
  time_ms last_lags = 0;
  std::pair<std::map<unit_id, int64_t>, std::map<unit_id, int64_t>> lags;
  static inline const char* name = "weft.rebalancer";
};

using rebalancer_ptr = rebalancer_actor::stateful_pointer<rebalancer_state>;

void publish_status(rebalancer_ptr self, bool fresh_lags) {
  auto& st = self->state;
  auto now = steady_now();
  if (st.s.lags && (fresh_lags || now - st.last_lags > 500)) {
    st.lags = st.s.lags();
    st.last_lags = now;
  }
  auto s = st.logic->status();
  s.standby_lag = st.lags.first;
  // Only units that run here have an active lag.
  for (auto u : s.holding) {
    auto l = st.lags.second.find(u);
    s.active_lag[u] = l == st.lags.second.end() ? -1 : l->second;
  }
  self->send(st.links, own_status_atom::value, s);
}

void run_commands(rebalancer_ptr self) {
  auto& st = self->state;
  auto bound = std::chrono::milliseconds(st.s.task_timeout_ms);
  for (auto& c : st.logic->take_commands()) {
    auto id = c.id;
    auto failed = [self, id](caf::error& e) {
      self->state.logic->task_failed(id, self->system().render(e), steady_now());
      run_commands(self);
      publish_status(self, false);
    };
    // A run or standbys command answered: done or failed as the answer says.
    auto done = [self, id](const call_result& r) {
      auto now = steady_now();
      if (r.ok())
        self->state.logic->task_done(id, now);
      else
        self->state.logic->task_failed(id, r.why, now);
      run_commands(self);
      publish_status(self, true);
    };
    switch (c.what) {
    case task_command::kind::run:
      self->request(st.tasks, bound, detail::run_atom::value, c.units, c.only_add,
                    c.standbys, c.generation)
          .then(done, failed);
      break;
    case task_command::kind::standbys:
      self->request(st.tasks, bound, detail::standbys_atom::value, c.standbys)
          .then(done, failed);
      break;
    case task_command::kind::drop:
      self->request(st.tasks, bound, detail::drop_atom::value)
          .then(
              [self, id](const call_result& r) {
                auto& st = self->state;
                auto now = steady_now();
                if (!r.ok()) {
                  st.logic->task_failed(id, r.why, now);
                } else {
                  // A new incarnation: assignments naming the old one are
                  // not this node's any more.
                  st.incarnation = std::max(wall_now(), st.incarnation + 1);
                  st.logic->dropped(id, st.incarnation, now);
                  log::info("cluster: rejoining as incarnation {}", st.incarnation);
                  self->send(st.coordinator, rejoined_atom::value, st.incarnation);
                  self->send(st.links, rejoined_atom::value, st.incarnation);
                }
                run_commands(self);
                publish_status(self, true);
              },
              failed);
      break;
    }
  }
}

} // namespace

caf::actor spawn_rebalancer(caf::actor_system& sys, rebalancer_settings settings,
                            caf::actor task_manager, caf::actor peer_links,
                            caf::actor coordinator) {
  auto fn = [](rebalancer_ptr self, rebalancer_settings s, caf::actor tasks,
               caf::actor links,
               caf::actor coordinator) -> rebalancer_actor::behavior_type {
    auto& st = self->state;
    st.s = std::move(s);
    st.incarnation = st.s.incarnation;
    st.tasks = caf::actor_cast<detail::task_manager_actor>(tasks);
    st.links = caf::actor_cast<peer_links_actor>(links);
    st.coordinator = caf::actor_cast<coordinator_actor>(coordinator);
    rebalance_settings rs;
    rs.self = st.s.self;
    rs.incarnation = st.s.incarnation;
    rs.stateful = st.s.stateful;
    rs.log = to_spdlog;
    st.logic = std::make_unique<rebalance_logic>(rs);
    // The node read the cluster log to its end before spawning this actor.
    st.logic->start(steady_now());
    self->delayed_send(self, std::chrono::milliseconds(100), tick_atom::value);
    return {
        [self](log_atom, const log_update_ptr& u) {
          if (u->fresh.empty()) return;
          self->state.logic->generations(u->fresh, steady_now());
          run_commands(self);
          publish_status(self, false);
        },
        [self](status_atom, const node_status& s) {
          self->state.logic->status(s, steady_now());
          run_commands(self);
          publish_status(self, false);
        },
        [self](fenced_atom, const std::string& why) {
          self->state.logic->fenced(why, steady_now());
          run_commands(self);
          publish_status(self, false);
        },
        [self](frozen_atom) {
          self->state.logic->fenced("frozen longer than cluster.timeout.ms",
                                    steady_now());
          run_commands(self);
          publish_status(self, false);
        },
        [self](tick_atom) {
          self->state.logic->tick(steady_now());
          run_commands(self);
          publish_status(self, false);
          self->delayed_send(self, std::chrono::milliseconds(100), tick_atom::value);
        },
        [self](view_atom) -> std::map<unit_id, std::string> {
          return self->state.logic->waiting();
        },
    };
  };
  return caf::actor_cast<caf::actor>(
      sys.spawn(fn, std::move(settings), std::move(task_manager), std::move(peer_links),
                std::move(coordinator)));
}

} // namespace weft::cluster
