#include "weft/cluster/coordinator.hpp"

#include <caf/all.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <memory>

#include "weft/cluster/membership_logic.hpp"
#include "weft/log.hpp"
#include "weft/protocol.hpp"

namespace weft::cluster {

void to_spdlog(log_level level, const std::string& line) {
  switch (level) {
  case log_level::debug:
    log::debug("{}", line);
    break;
  case log_level::info:
    log::info("{}", line);
    break;
  case log_level::warn:
    log::warn("{}", line);
    break;
  }
}

namespace {

struct coordinator_state {
  coordinator_settings s;
  std::unique_ptr<membership_logic> logic;
  lease_keeper_actor keeper;
  bool leaving = false;
  static inline const char* name = "weft.coordinator";
};

using coordinator_ptr = coordinator_actor::stateful_pointer<coordinator_state>;

/// Carries out the logic's commands; each answer goes back into the logic.
void run_commands(coordinator_ptr self) {
  auto& st = self->state;
  auto bound = std::chrono::milliseconds(st.s.timeout_ms * 40);
  for (auto& c : st.logic->take_commands()) {
    switch (c.what) {
    case membership_command::kind::claim_lease:
      self->request(st.keeper, bound, claim_atom::value)
          .then(
              [self](const call_result& r) {
                auto now = steady_now();
                if (r.ok())
                  self->state.logic->lease_taken(r.value, now);
                else
                  self->state.logic->lease_failed(r.why, now);
                run_commands(self);
              },
              [self](caf::error& e) {
                self->state.logic->lease_failed(self->system().render(e), steady_now());
                run_commands(self);
              });
      break;
    case membership_command::kind::drop_lease:
      self->send(st.keeper, drop_lease_atom::value);
      break;
    case membership_command::kind::fence:
      self->request(st.keeper, bound, fence_atom::value, c.node)
          .then(
              [self, node = c.node](const call_result& r) {
                auto now = steady_now();
                if (r.ok())
                  self->state.logic->fence_done(node, now);
                else
                  self->state.logic->fence_failed(node, r.why, now);
                run_commands(self);
              },
              [self, node = c.node](caf::error& e) {
                self->state.logic->fence_failed(node, self->system().render(e),
                                                steady_now());
                run_commands(self);
              });
      break;
    case membership_command::kind::publish: {
      auto g = c.assignment_.generation;
      self->request(st.keeper, bound, publish_atom::value, c.assignment_)
          .then(
              [self, g](const call_result& r) {
                auto now = steady_now();
                if (r.ok())
                  self->state.logic->publish_done(g, now);
                else
                  self->state.logic->publish_failed(
                      g, r.why, r.code == static_cast<int32_t>(errc::kafka_fatal), now);
                run_commands(self);
              },
              [self, g](caf::error& e) {
                self->state.logic->publish_failed(g, self->system().render(e), false,
                                                  steady_now());
                run_commands(self);
              });
      break;
    }
    }
  }
}

std::string view_json(coordinator_ptr self) {
  using json = nlohmann::json;
  auto& st = self->state;
  auto& logic = *st.logic;
  json out;
  auto& me = logic.self();
  out["node"] = me.id;
  out["leads"] = logic.leads();
  json members = json::array();
  members.push_back({{"id", me.id},
                     {"cluster", me.host + ":" + std::to_string(me.port)},
                     {"http", me.http},
                     {"incarnation", me.incarnation},
                     {"connected", true}});
  for (auto& [id, m] : logic.announced()) {
    if (id == me.id) continue;
    auto p = logic.peers().find(id);
    bool connected = p != logic.peers().end();
    auto& rec = connected ? p->second : m;
    members.push_back({{"id", id},
                       {"cluster", rec.host + ":" + std::to_string(rec.port)},
                       {"http", rec.http},
                       {"incarnation", rec.incarnation},
                       {"connected", connected}});
  }
  auto& statuses = logic.statuses();
  // What each node says it holds (runs or is starting or stopping) and the
  // generation it applied: the view of who actually runs what.
  for (auto& m : members) {
    auto i = statuses.find(m["id"].get<std::string>());
    if (i == statuses.end()) continue;
    m["applied"] = i->second.applied;
    m["holding"] = i->second.holding;
  }
  out["members"] = members;
  auto lag = [&](const std::string& node, bool active, unit_id u) -> json {
    auto i = statuses.find(node);
    if (i == statuses.end()) return nullptr;
    auto& m = active ? i->second.active_lag : i->second.standby_lag;
    auto l = m.find(u);
    if (l == m.end()) return nullptr;
    return l->second;
  };
  if (auto& a = logic.latest()) {
    out["generation"] = a->generation;
    out["leader"] = a->leader;
    json units = json::array();
    for (unit_id u = 0; u < a->active.size(); ++u) {
      json unit{{"unit", u},
                {"tasks", u < st.s.unit_names.size() ? st.s.unit_names[u] : ""},
                {"active", a->active[u]},
                {"active_lag", lag(a->active[u], true, u)}};
      json sb = json::array();
      for (auto& n : a->standbys[u])
        sb.push_back({{"node", n}, {"lag", lag(n, false, u)}});
      unit["standbys"] = sb;
      if (!a->warmup[u].empty()) unit["warmup"] = a->warmup[u];
      units.push_back(unit);
    }
    out["units"] = units;
  }
  return out.dump();
}

} // namespace

caf::actor spawn_coordinator(caf::actor_system& sys, coordinator_settings settings,
                             caf::actor lease_keeper) {
  auto fn = [](coordinator_ptr self, coordinator_settings s,
               caf::actor keeper) -> coordinator_actor::behavior_type {
    auto& st = self->state;
    st.s = std::move(s);
    st.keeper = caf::actor_cast<lease_keeper_actor>(keeper);
    membership_settings ms;
    ms.self = st.s.self;
    ms.stateful = st.s.stateful;
    ms.num_standbys = st.s.num_standbys;
    ms.acceptable_lag = st.s.acceptable_lag;
    ms.exactly_once = st.s.exactly_once;
    ms.quiet_ms = st.s.timeout_ms;
    ms.readback_ms = st.s.timeout_ms * 10;
    ms.log = to_spdlog;
    st.logic = std::make_unique<membership_logic>(ms);
    st.logic->start(steady_now());
    self->delayed_send(self, std::chrono::milliseconds(200), tick_atom::value);
    return {
        [self](log_atom, const log_update_ptr& u) {
          self->state.logic->log_read(u->announced, u->fresh, u->position, steady_now());
          run_commands(self);
        },
        [self](peer_up_atom, const member_record& m) {
          self->state.logic->peer_up(m, steady_now());
          run_commands(self);
        },
        [self](peer_down_atom, const std::string& id) {
          self->state.logic->peer_down(id, steady_now());
          run_commands(self);
        },
        [self](status_atom, const node_status& s) {
          self->state.logic->status(s, steady_now());
          run_commands(self);
        },
        [self](frozen_atom) {
          self->state.logic->frozen(steady_now());
          run_commands(self);
        },
        [self](rejoined_atom, int64_t incarnation) {
          auto& st = self->state;
          st.logic->rejoined(incarnation, steady_now());
          run_commands(self);
          auto me = st.logic->self();
          self->request(st.keeper, std::chrono::milliseconds(st.s.timeout_ms * 10),
                        announce_atom::value, me)
              .then(
                  [incarnation](const call_result& r) {
                    if (r.ok())
                      log::info("cluster: announced incarnation {}", incarnation);
                    else
                      log::warn("cluster: announcing incarnation {}: {}", incarnation,
                                r.why);
                  },
                  [self](caf::error& e) {
                    log::warn("cluster: announcing the rejoin: {}",
                              self->system().render(e));
                  });
        },
        [self](tick_atom) {
          auto& st = self->state;
          if (st.leaving) return;
          st.logic->tick(steady_now());
          run_commands(self);
          self->delayed_send(self, std::chrono::milliseconds(200), tick_atom::value);
        },
        [self](view_atom) -> std::string { return view_json(self); },
        [self](leave_atom) -> bool {
          auto& st = self->state;
          st.leaving = true;
          self->send(st.keeper, drop_lease_atom::value);
          return true;
        },
    };
  };
  return caf::actor_cast<caf::actor>(
      sys.spawn(fn, std::move(settings), std::move(lease_keeper)));
}

} // namespace weft::cluster
