#include "weft/cluster/query_router.hpp"

#include <caf/all.hpp>

#include <nlohmann/json.hpp>

#include "weft/actors/node_context.hpp"
#include "weft/actors/park_registry.hpp"
#include "weft/actors/standby.hpp"
#include "weft/cluster/cluster_log.hpp"
#include "weft/cluster/peer_bounds.hpp"
#include "weft/cluster/scan_merge.hpp"
#include "weft/cluster/wire_types.hpp"
#include "weft/data_protocol.hpp"
#include "weft/protocol.hpp"
#include "weft/services/partitioner.hpp"
#include "weft/topology.hpp"

namespace weft::cluster {

namespace {

query_answer answer_of(const result<std::optional<std::string>>& r) {
  query_answer a;
  if (!r) {
    a.code = static_cast<int32_t>(r.error().code());
    a.error = r.error().message();
  } else if (*r) {
    a.found = true;
    a.value = **r;
  }
  return a;
}

/// The largest answer to a park call taken from another node: the task's
/// JSON is a few hundred bytes plus the key.
constexpr size_t max_park_answer = max_peer_key + 4096;

/// A task's answer to a park call, as `owner` (the node whose task carried
/// it out) gave it: the JSON value names that node, so the operator (and a
/// test) sees where the call went. An answer that is not a JSON object, or
/// is larger than max_park_answer, is errc::internal.
query_answer carried_out_by(query_answer a, const std::string& owner) {
  if (a.code != 0) {
    if (a.error.size() > 1024) a.error.resize(1024);
    return a;
  }
  auto j = a.value.size() <= max_park_answer
               ? nlohmann::json::parse(a.value, nullptr, false)
               : nlohmann::json{};
  if (!j.is_object()) {
    query_answer bad;
    bad.code = static_cast<int32_t>(errc::internal);
    bad.error = "node " + owner + " answered a park call with " +
                std::to_string(a.value.size()) + " bytes that are not its JSON answer";
    return bad;
  }
  j["node"] = owner;
  a.value = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return a;
}

std::string list_of(const std::vector<int32_t>& parts) {
  std::string out;
  for (auto p : parts)
    out += (out.empty() ? "" : ",") + std::to_string(p);
  return out;
}

scan_answer answer_of(status st) {
  scan_answer a;
  a.code = static_cast<int32_t>(st.code());
  a.error = st.message();
  return a;
}

scan_answer answer_of(scan_piece piece) {
  scan_answer a;
  a.more = piece.more;
  a.keys.reserve(piece.rows.size());
  a.values.reserve(piece.rows.size());
  for (auto& [k, v] : piece.rows) {
    a.keys.push_back(std::move(k));
    a.values.push_back(std::move(v));
  }
  return a;
}

/// Clears CAF's logger from a foreign thread's local storage once a scoped
/// actor is gone: the actor system's destructor waits until every such
/// reference is gone, so a thread pool that outlives the node (an
/// application's HTTP server) would keep the node from stopping.
struct drop_thread_logger {
  ~drop_thread_logger() { caf::logger::set_current_actor_system(nullptr); }
};

} // namespace

query_router::query_router(detail::node_context* ctx, const detail::topology* topo,
                           caf::actor_system* sys, const peer_directory* peers,
                           const cluster_log_reader* log,
                           detail::standby_manager* standbys, std::string node_id,
                           int timeout_ms, int max_in_flight)
  : ctx_(ctx), topo_(topo), sys_(sys), peers_(peers), log_(log), standbys_(standbys),
    node_id_(std::move(node_id)), timeout_ms_(timeout_ms), max_in_flight_(max_in_flight) {
}

query_answer query_router::local(const std::string& store, const std::string& key,
                                 int64_t max_lag, bool remote) {
  query_answer out;
  int parts = ctx_->shards.partitions(store);
  auto s = topo_->service_of_store.find(store);
  if (parts == 0 || s == topo_->service_of_store.end()) {
    out.code = static_cast<int32_t>(errc::not_found);
    out.error = "no state store named '" + store + "' in this application";
    return out;
  }
  auto p = partition_for(key, parts);
  auto u = topo_->unit_of.at({s->second, p});
  auto a = log_->latest();
  bool active_here = ctx_->owned_units().count(u) && a && u < a->active.size() &&
                     a->active[u] == node_id_;
  if (active_here) {
    return answer_of(ctx_->shards.with(
        store, p, [&](state::shard* sh, int) -> result<std::optional<std::string>> {
          if (!sh || !sh->ready())
            return make_error(errc::state_not_ready, "store '" + store + "' partition " +
                                                         std::to_string(p) +
                                                         " is restoring; retry shortly");
          auto* kv = sh->kv(store);
          if (!kv)
            return make_error(errc::invalid_argument,
                              "store '" + store + "' is not a key-value store");
          return kv->get(key);
        }));
  }
  if (max_lag >= 0 && standbys_) {
    auto r = standbys_->get(store, p, key, max_lag);
    if (r || r.error().code() != errc::not_found) return answer_of(r);
  }
  out.code = static_cast<int32_t>(errc::state_not_ready);
  out.error =
      "store '" + store + "' partition " + std::to_string(p) +
      (remote ? " is not active on node " + node_id_ : " has no active owner yet") +
      " (it is moving); retry shortly";
  return out;
}

result<std::optional<std::string>>
query_router::get(const std::string& store, const std::string& key, int64_t max_lag) {
  auto g = ctx_->global_stores.find(store);
  if (g != ctx_->global_stores.end()) return g->second->get(key);
  int parts = ctx_->shards.partitions(store);
  auto s = topo_->service_of_store.find(store);
  if (parts == 0 || s == topo_->service_of_store.end())
    return make_error(errc::not_found,
                      "no state store named '" + store + "' in this application");
  auto p = partition_for(key, parts);
  auto u = topo_->unit_of.at({s->second, p});
  auto a = log_->latest();
  if (!a || u >= a->active.size() || a->active[u].empty())
    return make_error(errc::state_not_ready,
                      "the cluster has not assigned store '" + store + "' partition " +
                          std::to_string(p) + " yet; retry shortly");
  auto owner = a->active[u];
  if (owner == node_id_) return result_of(local(store, key, max_lag, false));
  if (max_lag >= 0 && standbys_) {
    auto r = standbys_->get(store, p, key, max_lag);
    if (r || r.error().code() != errc::not_found) return r;
  }
  auto q = peers_->get(owner);
  if (!q)
    return make_error(errc::state_not_ready, "node " + owner +
                                                 " (the owner) is not reachable from "
                                                 "here; retry shortly");
  // Bounded: a flood of queries for a slow owner does not pile up here.
  if (in_flight_.fetch_add(1) >= max_in_flight_) {
    in_flight_.fetch_sub(1);
    return make_error(errc::state_not_ready,
                      "too many queries in flight to other nodes (" +
                          std::to_string(max_in_flight_) + "); retry shortly");
  }
  query_answer answer;
  {
    drop_thread_logger drop;
    caf::scoped_actor self{*sys_};
    self->request(q, std::chrono::milliseconds(timeout_ms_ * 2), query_atom::value, store,
                  key, max_lag)
        .receive([&](query_answer& a) { answer = std::move(a); },
                 [&](caf::error& e) {
                   answer.code = static_cast<int32_t>(errc::state_not_ready);
                   answer.error = "asking node " + owner + ": " + sys_->render(e) +
                                  "; retry shortly";
                 });
  }
  in_flight_.fetch_sub(1);
  return result_of(std::move(answer));
}

query_answer ask_task_park(caf::actor_system& sys, detail::node_context* ctx,
                           size_t service, int32_t partition, const std::string& id,
                           const std::string& action, int timeout_ms) {
  query_answer answer;
  auto addr = ctx->parked ? ctx->parked->task(service, partition) : caf::actor_addr{};
  auto task = caf::actor_cast<detail::task_actor>(addr);
  if (!task) {
    answer.code = static_cast<int32_t>(errc::state_not_ready);
    answer.error = "service '" + ctx->services[service].name + "' partition " +
                   std::to_string(partition) +
                   " has no task on this node yet; retry shortly";
    return answer;
  }
  // See get(): no logger reference may stay in this thread.
  struct drop_thread_logger {
    ~drop_thread_logger() { caf::logger::set_current_actor_system(nullptr); }
  } drop;
  caf::scoped_actor self{sys};
  self->request(task, std::chrono::milliseconds(timeout_ms), park_atom::value, id, action)
      .receive([&](query_answer& a) { answer = std::move(a); },
               [&](caf::error& e) {
                 answer.code = static_cast<int32_t>(errc::state_not_ready);
                 answer.error = "asking the task: " + sys.render(e) + "; retry shortly";
               });
  return answer;
}

caf::actor_addr query_router::park_target(const std::string& service, int32_t partition,
                                          query_answer& why) const {
  size_t s = 0;
  while (s < ctx_->services.size() && ctx_->services[s].name != service)
    ++s;
  why.code = static_cast<int32_t>(errc::state_not_ready);
  if (s == ctx_->services.size()) {
    why.code = static_cast<int32_t>(errc::not_found);
    why.error = "no service named '" + service + "' in this application";
    return {};
  }
  auto u = topo_->unit_of.find({s, partition});
  auto a = log_->latest();
  if (u == topo_->unit_of.end() || !ctx_->owned_units().count(u->second) || !a ||
      u->second >= a->active.size() || a->active[u->second] != node_id_) {
    why.error = "service '" + service + "' partition " + std::to_string(partition) +
                " is not active on node " + node_id_ + " (it is moving); retry shortly";
    return {};
  }
  auto addr = ctx_->parked ? ctx_->parked->task(s, partition) : caf::actor_addr{};
  if (!addr)
    why.error = "service '" + service + "' partition " + std::to_string(partition) +
                " has no task on node " + node_id_ + " yet; retry shortly";
  return addr;
}

query_answer query_router::park(size_t service, int32_t partition, const std::string& id,
                                const std::string& action) {
  query_answer out;
  out.code = static_cast<int32_t>(errc::state_not_ready);
  auto u = topo_->unit_of.find({service, partition});
  if (u == topo_->unit_of.end()) {
    out.code = static_cast<int32_t>(errc::not_found);
    out.error = "service '" + ctx_->services[service].name + "' has no partition " +
                std::to_string(partition);
    return out;
  }
  auto a = log_->latest();
  if (!a || u->second >= a->active.size() || a->active[u->second].empty()) {
    out.error = "the cluster has not assigned service '" + ctx_->services[service].name +
                "' partition " + std::to_string(partition) + " yet; retry shortly";
    return out;
  }
  auto owner = a->active[u->second];
  if (owner == node_id_) {
    if (!ctx_->owned_units().count(u->second)) {
      out.error = "service '" + ctx_->services[service].name + "' partition " +
                  std::to_string(partition) + " is still starting here; retry shortly";
      return out;
    }
    return carried_out_by(
        ask_task_park(*sys_, ctx_, service, partition, id, action, timeout_ms_ * 2),
        owner);
  }
  auto q = peers_->get(owner);
  if (!q) {
    out.error =
        "node " + owner + " (the owner) is not reachable from here; retry shortly";
    return out;
  }
  if (in_flight_.fetch_add(1) >= max_in_flight_) {
    in_flight_.fetch_sub(1);
    out.error = "too many queries in flight to other nodes (" +
                std::to_string(max_in_flight_) + "); retry shortly";
    return out;
  }
  {
    struct drop_thread_logger {
      ~drop_thread_logger() { caf::logger::set_current_actor_system(nullptr); }
    } drop;
    caf::scoped_actor self{*sys_};
    self->request(q, std::chrono::milliseconds(timeout_ms_ * 2), park_atom::value,
                  ctx_->services[service].name, partition, id, action)
        .receive([&](query_answer& a) { out = std::move(a); },
                 [&](caf::error& e) {
                   out.code = static_cast<int32_t>(errc::state_not_ready);
                   out.error = "asking node " + owner + ": " + sys_->render(e) +
                               "; retry shortly";
                 });
  }
  in_flight_.fetch_sub(1);
  return carried_out_by(std::move(out), owner);
}

scan_answer query_router::local_scan(const std::string& store,
                                     const std::vector<int32_t>& parts,
                                     const std::string& from, const std::string& to,
                                     size_t limit, bool remote) {
  int count = ctx_->shards.partitions(store);
  auto s = topo_->service_of_store.find(store);
  if (count == 0 || s == topo_->service_of_store.end())
    return answer_of(make_error(errc::not_found, "no state store named '" + store +
                                                     "' in this application"));
  auto a = log_->latest();
  auto mine = ctx_->owned_units();
  std::vector<scan_piece> pieces;
  for (auto p : parts) {
    if (p < 0 || p >= count)
      return answer_of(
          make_error(errc::invalid_argument,
                     "store '" + store + "' has no partition " + std::to_string(p)));
    auto u = topo_->unit_of.at({s->second, p});
    if (!mine.count(u) || !a || u >= a->active.size() || a->active[u] != node_id_)
      return answer_of(make_error(
          errc::state_not_ready,
          "store '" + store + "' partition " + std::to_string(p) +
              (remote ? " is not active on node " + node_id_ : " is not active here") +
              " (it is moving); retry shortly"));
    scan_collector collect{limit};
    auto st = ctx_->shards.with(store, p, [&](state::shard* sh, int) -> status {
      if (!sh || !sh->ready())
        return make_error(errc::state_not_ready,
                          "store '" + store + "' partition " + std::to_string(p) +
                              " on node " + node_id_ + " is restoring; retry shortly");
      auto* kv = sh->kv(store);
      if (!kv)
        return make_error(errc::invalid_argument,
                          "store '" + store + "' is not a key-value store");
      return kv->range(from, to, std::ref(collect));
    });
    if (!st) return answer_of(st);
    pieces.push_back(collect.take());
  }
  return answer_of(merge_scan(std::move(pieces), limit));
}

result<scan_page> query_router::scan(const std::string& store, const std::string& from,
                                     const std::string& to, size_t limit) {
  scan_page page;
  int count = ctx_->shards.partitions(store);
  auto s = topo_->service_of_store.find(store);
  if (count == 0 || s == topo_->service_of_store.end())
    return make_error(errc::not_found,
                      "no state store named '" + store + "' in this application");
  page.partition_count = count;
  auto a = log_->latest();
  std::map<std::string, std::vector<int32_t>> by_owner;
  for (int32_t p = 0; p < count; ++p) {
    auto u = topo_->unit_of.at({s->second, p});
    if (!a || u >= a->active.size() || a->active[u].empty())
      return make_error(errc::state_not_ready,
                        "the cluster has not assigned store '" + store + "' partition " +
                            std::to_string(p) + " to a node yet; retry shortly");
    by_owner[a->active[u]].push_back(p);
  }
  // Ask every other owner first, then scan here while they answer.
  std::vector<std::pair<std::string, query_server_actor>> remote;
  for (auto& [owner, parts] : by_owner) {
    if (owner == node_id_) continue;
    auto q = peers_->get(owner);
    if (!q)
      return make_error(errc::state_not_ready,
                        "node " + owner + " (the owner of store '" + store +
                            "' partitions " + list_of(parts) +
                            ") is not reachable from here; retry shortly");
    remote.emplace_back(owner, std::move(q));
  }
  int taken = static_cast<int>(remote.size());
  if (in_flight_.fetch_add(taken) + taken > max_in_flight_) {
    in_flight_.fetch_sub(taken);
    return make_error(errc::state_not_ready,
                      "too many queries in flight to other nodes (" +
                          std::to_string(max_in_flight_) + "); retry shortly");
  }
  std::vector<scan_piece> pieces;
  status first_error;
  {
    drop_thread_logger drop;
    caf::scoped_actor self{*sys_};
    const auto bound = std::chrono::milliseconds(timeout_ms_ * 2);
    std::vector<decltype(self->request(remote.front().second, bound, scan_atom::value,
                                       store, std::vector<int32_t>{}, from, to,
                                       uint32_t{0}))>
        asked;
    for (auto& [owner, q] : remote)
      asked.push_back(self->request(q, bound, scan_atom::value, store, by_owner[owner],
                                    from, to, static_cast<uint32_t>(limit)));
    if (auto mine = by_owner.find(node_id_); mine != by_owner.end()) {
      auto piece =
          piece_of(local_scan(store, mine->second, from, to, limit, false), limit);
      if (piece)
        pieces.push_back(std::move(*piece));
      else
        first_error = piece.error();
    }
    for (size_t i = 0; i < asked.size(); ++i) {
      const auto& owner = remote[i].first;
      asked[i].receive(
          [&](scan_answer& x) {
            auto piece = piece_of(std::move(x), limit);
            if (piece)
              pieces.push_back(std::move(*piece));
            else if (first_error.ok())
              first_error = piece.error();
          },
          [&](caf::error& e) {
            if (first_error.ok())
              first_error = make_error(errc::state_not_ready,
                                       "asking node " + owner + " for store '" + store +
                                           "' partitions " + list_of(by_owner[owner]) +
                                           ": " + sys_->render(e) + "; retry shortly");
          });
    }
  }
  in_flight_.fetch_sub(taken);
  if (!first_error.ok()) return first_error;
  auto merged = merge_scan(std::move(pieces), limit);
  page.rows = std::move(merged.rows);
  page.more = merged.more;
  page.partitions = std::move(by_owner);
  return page;
}

caf::actor spawn_query_server(caf::actor_system& sys, query_router* router) {
  auto fn = [](query_server_actor::pointer self,
               query_router* r) -> query_server_actor::behavior_type {
    return {
        [r](query_atom, const std::string& store, const std::string& key,
            int64_t max_lag) -> query_answer {
          if (auto why = peer_query_violation(store, key, max_lag); !why.empty()) {
            query_answer refused;
            refused.code = static_cast<int32_t>(errc::invalid_argument);
            refused.error = "query refused: " + why;
            return refused;
          }
          return r->local(store, key, max_lag, true);
        },
        [self, r](park_atom, const std::string& service, int32_t partition,
                  const std::string& id,
                  const std::string& action) -> caf::result<query_answer> {
          query_answer why;
          if (auto v = peer_park_violation(service, partition, id, action); !v.empty()) {
            why.code = static_cast<int32_t>(errc::invalid_argument);
            why.error = "park call refused: " + v;
            return why;
          }
          // The task answers the caller itself: nothing waits here.
          auto task = caf::actor_cast<detail::task_actor>(
              r->park_target(service, partition, why));
          if (!task) return why;
          return self->delegate(task, park_atom::value, id, action);
        },
        [r](scan_atom, const std::string& store, const std::vector<int32_t>& parts,
            const std::string& from, const std::string& to,
            uint32_t limit) -> scan_answer {
          if (auto why = peer_scan_violation(store, parts.size(), from, to, limit);
              !why.empty()) {
            scan_answer refused;
            refused.code = static_cast<int32_t>(errc::invalid_argument);
            refused.error = "scan refused: " + why;
            return refused;
          }
          return r->local_scan(store, parts, from, to, limit, true);
        },
    };
  };
  return caf::actor_cast<caf::actor>(sys.spawn(fn, router));
}

} // namespace weft::cluster
