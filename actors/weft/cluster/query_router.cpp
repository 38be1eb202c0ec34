#include "weft/cluster/query_router.hpp"

#include <caf/all.hpp>

#include "weft/actors/node_context.hpp"
#include "weft/actors/standby.hpp"
#include "weft/cluster/cluster_log.hpp"
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

result<std::optional<std::string>> result_of(query_answer a) {
  if (a.code != 0) return make_error(static_cast<errc>(a.code), std::move(a.error));
  if (!a.found) return std::optional<std::string>{};
  return std::optional<std::string>{std::move(a.value)};
}

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
    // A scoped actor leaves CAF's logger in this (foreign) thread's local
    // storage, and the actor system's destructor waits until every such
    // reference is gone: drop it once done, or a thread pool that outlives
    // the node (an application's HTTP server) keeps the node from stopping.
    struct drop_thread_logger {
      ~drop_thread_logger() { caf::logger::set_current_actor_system(nullptr); }
    } drop;
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

caf::actor spawn_query_server(caf::actor_system& sys, query_router* router) {
  auto fn = [](query_server_actor::pointer,
               query_router* r) -> query_server_actor::behavior_type {
    return {
        [r](query_atom, const std::string& store, const std::string& key,
            int64_t max_lag) -> query_answer {
          return r->local(store, key, max_lag, true);
        },
    };
  };
  return caf::actor_cast<caf::actor>(sys.spawn(fn, router));
}

} // namespace weft::cluster
