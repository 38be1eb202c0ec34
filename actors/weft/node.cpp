#include "weft/node.hpp"
#include "weft/allocator.hpp"
#include "weft/version.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <caf/openssl/publish.hpp>

#include <nlohmann/json.hpp>

#include <execinfo.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <pthread.h>
#include <set>
#include <shared_mutex>
#include <thread>

#include "weft/actors/global_table.hpp"
#include "weft/actors/http_endpoint.hpp"
#include "weft/actors/node_context.hpp"
#include "weft/actors/park_registry.hpp"
#include "weft/actors/parked_keys.hpp"
#include "weft/actors/restorer.hpp"
#include "weft/actors/standby.hpp"
#include "weft/cluster/cluster_log.hpp"
#include "weft/cluster/coordinator.hpp"
#include "weft/cluster/freeze_watchdog.hpp"
#include "weft/cluster/lease_keeper.hpp"
#include "weft/cluster/peer_links.hpp"
#include "weft/cluster/query_router.hpp"
#include "weft/cluster/rebalancer.hpp"
#include "weft/cluster/scan_merge.hpp"
#include "weft/cluster/tls.hpp"
#include "weft/cluster/wire_types.hpp"
#include "weft/kafka/admin.hpp"
#include "weft/log.hpp"
#include "weft/node_metrics_page.hpp"
#include "weft/protocol.hpp"
#include "weft/services/partitioner.hpp"
#include "weft/task_manager.hpp"
#include "weft/topology.hpp"
#include "weft/trace_view.hpp"

namespace weft {

namespace {

/// Hands the cluster log's updates to the actors that read it, in order;
/// those read before the actors exist wait for them.
class log_fanout {
 public:
  void post(cluster::log_update_ptr u) {
    std::lock_guard<std::mutex> guard{mu_};
    if (targets_.empty()) {
      pending_.push_back(std::move(u));
      return;
    }
    for (auto& t : targets_)
      caf::anon_send(t, cluster::log_atom::value, u);
  }
  void attach(std::vector<caf::actor> targets) {
    std::lock_guard<std::mutex> guard{mu_};
    targets_ = std::move(targets);
    for (auto& u : pending_)
      for (auto& t : targets_)
        caf::anon_send(t, cluster::log_atom::value, u);
    pending_.clear();
  }
  void detach() {
    std::lock_guard<std::mutex> guard{mu_};
    targets_.clear();
  }

 private:
  std::mutex mu_;
  std::vector<caf::actor> targets_;
  std::vector<cluster::log_update_ptr> pending_;
};

/// The parts of a clustered node (cluster.enabled).
struct cluster_parts {
  cluster::peer_directory directory;
  log_fanout fanout;
  std::unique_ptr<detail::standby_manager> standbys;
  std::unique_ptr<cluster::cluster_log_reader> log;
  std::unique_ptr<cluster::query_router> router;
  std::unique_ptr<cluster::freeze_watchdog> watchdog;
  caf::actor lease_keeper, coordinator, rebalancer, peer_links, query_server;
  cluster::member_record me;
};

} // namespace

struct node::impl {
  detail::node_context ctx;
  std::vector<service_factory> factories;
  std::vector<std::function<void(metrics::exposition&)>> metric_writers;
  describe_extras extras;
  detail::topology topo;
  std::vector<detail::global_table_decl> global_tables;
  std::vector<std::unique_ptr<detail::global_table>> global_readers;
  std::unique_ptr<detail::restorer> restorer;
  std::unique_ptr<caf::actor_system_config> caf_cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::actor task_manager;
  std::unique_ptr<cluster_parts> cluster;
  std::unique_ptr<detail::http_endpoint> http;
  std::thread poller;
  std::atomic<bool> poll_stop{false};
  std::string node_id;
  std::string txn_id;
  const node* owner = nullptr; ///< for the HTTP endpoint's node::scan calls

  /// Queries from other threads (the node's and the application's HTTP
  /// servers) hold this shared while they run; the shutdown takes it
  /// exclusively once, so no query is inside the parts it tears down.
  mutable std::shared_mutex serving_mu;
  bool serving = false;
  status not_serving() const {
    return make_error(errc::shutting_down, "the node is not running; retry elsewhere");
  }

  std::mutex mu;
  std::condition_variable cv;
  bool started = false;
  bool stop_requested = false;
  bool stopped = false;
  std::optional<std::string> fatal;

  void on_fatal(const std::string& why) {
    std::lock_guard<std::mutex> guard{mu};
    if (!fatal) fatal = why;
    cv.notify_all();
  }

  /// Where the data plane's alarms go: a clustered node survives a fenced
  /// producer (the rebalancer drops its tasks and rejoins); anything else
  /// stops the node.
  void alarm(const std::string& why, bool producer_fenced) {
    if (producer_fenced && cluster && cluster->rebalancer)
      caf::anon_send(caf::actor_cast<cluster::rebalancer_actor>(cluster->rebalancer),
                     cluster::fenced_atom::value, why);
    else
      on_fatal(why);
  }

  /// Spawns the task manager (`tasks`) too: it needs the standby manager.
  status start_cluster(int timeout_ms, detail::task_manager_settings tasks);
  status start_http();
  status shutdown();
  std::string metrics_json(const node_metrics& m) const;
  node_metrics read_metrics() const;
  /// The Prometheus page (GET /metrics).
  std::string prometheus_page();
  /// GET /parked: this node's parked keys.
  std::string parked_json() const;
  /// POST /parked/...: (HTTP status, JSON body).
  std::pair<int, std::string> release_parked(const std::string& service,
                                             const std::optional<std::string>& key,
                                             int64_t partition,
                                             const std::string& action);
  std::pair<std::map<cluster::unit_id, int64_t>, std::map<cluster::unit_id, int64_t>>
  lags();
};

namespace {

std::string default_node_id() {
  char host[256] = "node";
  gethostname(host, sizeof host - 1);
  return std::string{host} + "-" + std::to_string(getpid());
}

/// exactly_once without node.id: the id kept in the state folder, made on
/// first start. The transactional.id derives from it, and a restarted node
/// must present the same one to fence its previous incarnation and abort its
/// open transaction at once (a fresh id would leave that transaction open,
/// blocking read_committed readers until transaction.timeout.ms).
result<std::string> persistent_node_id(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return make_error(errc::io, "cannot create '" + dir + "': " + ec.message());
  auto path = dir + "/node.id";
  if (FILE* f = std::fopen(path.c_str(), "r")) {
    char buf[256] = {};
    auto n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    std::string id{buf, n};
    while (!id.empty() && (id.back() == '\n' || id.back() == ' '))
      id.pop_back();
    if (!id.empty()) return id;
  }
  auto id = default_node_id();
  auto tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (!f) return make_error(errc::io, "cannot write '" + tmp + "'");
  std::fprintf(f, "%s\n", id.c_str());
  std::fclose(f);
  std::filesystem::rename(tmp, path, ec);
  if (ec) return make_error(errc::io, "cannot write '" + path + "': " + ec.message());
  return id;
}

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// Asks `whom` and waits for the answer (a call_result), at most `bound`.
template <class Handle, class... Ts>
cluster::call_result ask(caf::actor_system& sys, const Handle& whom,
                         std::chrono::milliseconds bound, Ts&&... xs) {
  cluster::call_result out{static_cast<int32_t>(errc::timed_out), "no answer", 0};
  caf::scoped_actor self{sys};
  self->request(whom, bound, std::forward<Ts>(xs)...)
      .receive([&](cluster::call_result& r) { out = std::move(r); },
               [&](caf::error& e) {
                 out = {static_cast<int32_t>(errc::timed_out), sys.render(e), 0};
               });
  return out;
}

} // namespace

node::node(config cfg) : impl_(std::make_unique<impl>()) {
  impl_->ctx.cfg = std::move(cfg);
  impl_->ctx.application_id = impl_->ctx.cfg.get_string("application.id");
  impl_->ctx.parked = std::make_shared<detail::park_registry>();
}

node::~node() {
  if (!impl_) return;
  bool running;
  {
    std::lock_guard<std::mutex> guard{impl_->mu};
    running = impl_->started && !impl_->stopped;
  }
  if (running) {
    request_stop();
    (void)wait();
  }
}

void node::add(service_factory factory) {
  impl_->factories.push_back(std::move(factory));
}

const config& node::cfg() const {
  return impl_->ctx.cfg;
}

int node::http_port() const {
  std::shared_lock<std::shared_mutex> serving{impl_->serving_mu};
  return impl_->serving && impl_->http ? impl_->http->port() : -1;
}

node_metrics node::impl::read_metrics() const {
  auto& c = ctx.counters;
  auto t = c.sum();
  node_metrics m;
  m.processed = t.processed;
  m.produced = t.produced + t.changelog;
  c.tasks.visit([&](size_t, int32_t, const detail::task_counters& x) {
    m.produced += x.dead_lettered.load(std::memory_order_relaxed);
  });
  m.bad_records = t.bad;
  m.commits = c.commits.load();
  m.pauses = c.pauses.load();
  m.epochs_committed = c.epochs_committed.load();
  m.epochs_aborted = c.epochs_aborted.load();
  m.commit_latency_us_total = c.commit_us_total.load();
  m.commit_latency_us_max = c.commit_us_max.load();
  m.aligned_us_total = c.aligned_us_total.load();
  m.records_ahead = t.ahead;
  m.work_ahead_pauses = t.ahead_pauses;
  m.transaction_us_total = c.txn_us_total.load();
  std::tie(m.parked_keys, m.parked_records) = ctx.parked->totals();
  return m;
}

node_metrics node::metrics() const {
  return impl_->read_metrics();
}

void node::add_metrics(std::function<void(metrics::exposition&)> fn) {
  impl_->metric_writers.push_back(std::move(fn));
}

void node::mark_intermediate(std::string topic) {
  impl_->extras.intermediate_topics.push_back(std::move(topic));
}

void node::add_client(client_decl c) {
  impl_->extras.clients.push_back(std::move(c));
}

result<std::string> node::describe(describe_format f) const {
  auto d = describe_topology(impl_->factories, impl_->ctx.cfg, impl_->extras);
  if (!d) return d.error();
  return render(*d, f);
}

std::string node::impl::prometheus_page() {
  detail::metrics_sources src;
  {
    std::shared_lock<std::shared_mutex> serving_lock{serving_mu};
    if (!serving) return "";
    src.ctx = &ctx;
    src.topo = &topo;
    src.node_id = node_id;
    if (cluster && cluster->standbys) src.standby_lags = cluster->standbys->lags();
    src.parked = ctx.parked->by_task();
    if (restorer) src.restore_retries = restorer->retries();
    src.extra = metric_writers;
    metrics::exposition page;
    detail::write_node_metrics(page, src);
    return page.str();
  }
}

namespace {

status shard_error(const std::string& store, state::shard* sh, int parts) {
  if (parts == 0)
    return make_error(errc::not_found,
                      "no state store named '" + store + "' on this node");
  if (!sh)
    // Single node: every partition is local, so a missing shard is one whose
    // task has not opened it yet.
    return make_error(errc::state_not_ready,
                      "store '" + store + "': the shard is not open yet; retry shortly");
  return make_error(errc::state_not_ready, "store '" + store + "' partition " +
                                               std::to_string(sh->partition()) +
                                               " is restoring; retry shortly");
}

/// Visits the keys in [from, to) of partition `p` of kv store `store` on
/// this node, in order.
status range_of_shard(const detail::node_context& ctx, const std::string& store,
                      int32_t p, std::string_view from, std::string_view to,
                      const state::visitor& fn) {
  return ctx.shards.with(store, p, [&](state::shard* sh, int n) -> status {
    if (!sh || !sh->ready()) return shard_error(store, sh, n);
    auto* kv = sh->kv(store);
    if (!kv)
      return make_error(errc::invalid_argument,
                        "store '" + store + "' is not a key-value store");
    return kv->range(from, to, fn);
  });
}

} // namespace

result<std::optional<std::string>> node::get(std::string_view store_name,
                                             std::string_view key,
                                             int64_t max_standby_lag) const {
  std::shared_lock<std::shared_mutex> serving{impl_->serving_mu};
  if (!impl_->serving) return impl_->not_serving();
  if (impl_->cluster)
    return impl_->cluster->router->get(std::string{store_name}, std::string{key},
                                       max_standby_lag);
  return get(store_name, key);
}

result<std::optional<std::string>> node::get(std::string_view store_name,
                                             std::string_view key) const {
  std::shared_lock<std::shared_mutex> serving{impl_->serving_mu};
  if (!impl_->serving) return impl_->not_serving();
  if (impl_->cluster)
    return impl_->cluster->router->get(std::string{store_name}, std::string{key}, -1);
  std::string store{store_name};
  auto g = impl_->ctx.global_stores.find(store_name);
  if (g != impl_->ctx.global_stores.end()) return g->second->get(key);
  int parts = impl_->ctx.shards.partitions(store);
  if (parts == 0) return shard_error(store, nullptr, 0);
  auto p = partition_for(key, parts);
  return impl_->ctx.shards.with(
      store, p, [&](state::shard* sh, int n) -> result<std::optional<std::string>> {
        if (!sh || !sh->ready()) return shard_error(store, sh, n);
        auto* kv = sh->kv(store);
        if (!kv)
          return make_error(errc::invalid_argument,
                            "store '" + store + "' is not a key-value store");
        return kv->get(key);
      });
}

bool node::store_ready(std::string_view store_name) const {
  std::shared_lock<std::shared_mutex> serving{impl_->serving_mu};
  if (!impl_->serving) return false;
  std::string store{store_name};
  if (impl_->ctx.global_stores.count(store_name)) return true;
  int parts = impl_->ctx.shards.partitions(store);
  if (parts == 0) return false;
  std::set<size_t> mine;
  if (impl_->cluster) mine = impl_->ctx.owned_units();
  auto& topo = impl_->topo;
  auto svc = topo.service_of_store.find(store);
  for (int32_t p = 0; p < parts; ++p)
    if (impl_->cluster && svc != topo.service_of_store.end() &&
        !mine.count(topo.unit_of.at({svc->second, p})))
      continue; // another node's
    else if (!impl_->ctx.shards.with(
                 store, p, [](state::shard* sh, int) { return sh && sh->ready(); }))
      return false;
  return true;
}

status node::range(std::string_view store_name, std::string_view from,
                   std::string_view to, const state::visitor& fn) const {
  std::shared_lock<std::shared_mutex> serving{impl_->serving_mu};
  if (!impl_->serving) return impl_->not_serving();
  std::string store{store_name};
  auto g = impl_->ctx.global_stores.find(store_name);
  if (g != impl_->ctx.global_stores.end()) return g->second->range(from, to, fn);
  int parts = impl_->ctx.shards.partitions(store);
  if (parts == 0) return shard_error(store, nullptr, 0);
  std::set<size_t> mine;
  if (impl_->cluster) mine = impl_->ctx.owned_units();
  auto& topo = impl_->topo;
  auto svc = topo.service_of_store.find(store);
  for (int32_t p = 0; p < parts; ++p) {
    if (impl_->cluster && svc != topo.service_of_store.end() &&
        !mine.count(topo.unit_of.at({svc->second, p})))
      continue; // another node's
    if (auto st = range_of_shard(impl_->ctx, store, p, from, to, fn); !st) return st;
  }
  return {};
}

result<scan_page> node::scan(std::string_view store_name, std::string_view from,
                             std::string_view to, size_t limit) const {
  std::shared_lock<std::shared_mutex> serving{impl_->serving_mu};
  if (!impl_->serving) return impl_->not_serving();
  if (limit < 1 || limit > cluster::max_scan_rows)
    return make_error(errc::invalid_argument, "scan limit " + std::to_string(limit) +
                                                  ": must be from 1 to " +
                                                  std::to_string(cluster::max_scan_rows));
  std::string store{store_name};
  scan_page page;
  auto g = impl_->ctx.global_stores.find(store_name);
  if (g != impl_->ctx.global_stores.end()) {
    cluster::scan_collector collect{limit};
    if (auto st = g->second->range(from, to, std::ref(collect)); !st) return st;
    auto piece = collect.take();
    page.rows = std::move(piece.rows);
    page.more = piece.more;
    return page;
  }
  if (impl_->cluster)
    return impl_->cluster->router->scan(store, std::string{from}, std::string{to}, limit);
  int parts = impl_->ctx.shards.partitions(store);
  if (parts == 0) return shard_error(store, nullptr, 0);
  std::vector<cluster::scan_piece> pieces;
  auto& mine = page.partitions[impl_->ctx.cfg.get_string("node.id")];
  for (int32_t p = 0; p < parts; ++p) {
    cluster::scan_collector collect{limit};
    if (auto st = range_of_shard(impl_->ctx, store, p, from, to, std::ref(collect)); !st)
      return st;
    pieces.push_back(collect.take());
    mine.push_back(p);
  }
  auto merged = cluster::merge_scan(std::move(pieces), limit);
  page.rows = std::move(merged.rows);
  page.more = merged.more;
  page.partition_count = parts;
  return page;
}

status node::fetch(std::string_view store_name, std::string_view key, timestamp_ms from,
                   timestamp_ms to,
                   const std::function<bool(timestamp_ms, std::string_view)>& fn) const {
  std::shared_lock<std::shared_mutex> serving{impl_->serving_mu};
  if (!impl_->serving) return impl_->not_serving();
  std::string store{store_name};
  int parts = impl_->ctx.shards.partitions(store);
  if (parts == 0) return shard_error(store, nullptr, 0);
  return impl_->ctx.shards.with(
      store, partition_for(key, parts), [&](state::shard* sh, int n) -> status {
        if (!sh || !sh->ready()) return shard_error(store, sh, n);
        auto* w = sh->window(store);
        if (!w)
          return make_error(errc::invalid_argument,
                            "store '" + store + "' is not a window store");
        return w->fetch(key, from, to, fn);
      });
}

std::pair<std::map<cluster::unit_id, int64_t>, std::map<cluster::unit_id, int64_t>>
node::impl::lags() {
  std::map<cluster::unit_id, int64_t> standby;
  std::map<cluster::unit_id, int64_t> active;
  if (cluster && cluster->standbys)
    for (auto& [key, lag] : cluster->standbys->lags()) {
      auto u = static_cast<cluster::unit_id>(topo.unit_of.at(key));
      if (lag < 0 || (standby.count(u) && standby[u] < 0))
        standby[u] = -1;
      else
        standby[u] += lag;
    }
  for (auto u : ctx.owned_units()) {
    int64_t lag = 0;
    for (auto& tp : topo.units[u].inputs) {
      int64_t lo = 0, hi = 0;
      // Cached by the fetches: no broker round trip.
      if (rd_kafka_get_watermark_offsets(ctx.consumer->handle(), tp.topic.c_str(),
                                         tp.partition.value(), &lo,
                                         &hi) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        lag = -1;
        break;
      }
      auto pos = ctx.consumer->position(tp);
      if (hi < 0 || pos < 0) {
        lag = -1; // not fetched from yet: unknown
        break;
      }
      lag += std::max<int64_t>(0, hi - pos);
    }
    active[static_cast<cluster::unit_id>(u)] = lag;
  }
  return {standby, active};
}

std::string node::impl::metrics_json(const node_metrics& m) const {
  return nlohmann::json{{"processed", m.processed},
                        {"produced", m.produced},
                        {"bad_records", m.bad_records},
                        {"commits", m.commits},
                        {"pauses", m.pauses},
                        {"epochs_committed", m.epochs_committed},
                        {"epochs_aborted", m.epochs_aborted},
                        {"commit_latency_us_total", m.commit_latency_us_total},
                        {"commit_latency_us_max", m.commit_latency_us_max},
                        {"aligned_us_total", m.aligned_us_total},
                        {"records_ahead", m.records_ahead},
                        {"work_ahead_pauses", m.work_ahead_pauses},
                        {"transaction_us_total", m.transaction_us_total},
                        {"parked_keys", m.parked_keys},
                        {"parked_records", m.parked_records}}
      .dump();
}

namespace {

std::string json_body(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

} // namespace

std::string node::impl::parked_json() const {
  std::shared_lock<std::shared_mutex> serving_lock{serving_mu};
  nlohmann::json keys = nlohmann::json::array();
  uint64_t held = 0;
  if (serving)
    for (auto& p : ctx.parked->list()) {
      auto key = detail::parked_keys::key_of(p.id);
      nlohmann::json k{
          {"service", ctx.services[p.service].name},
          {"partition", p.partition},
          {"null_key", !key},
          {"key", nullptr},
          {"key_base64", key ? detail::base64(*key) : ""}, // as /trace shows keys
          {"held", p.held},
          {"error", p.error},
          {"parked_at_ms", p.since},
          {"attempts", p.attempts},
          {"retry_at_ms", p.retry_at},
          {"releasing", p.replaying},
          {"head",
           {{"topic", p.topic}, {"partition", p.head_partition}, {"offset", p.offset}}}};
      if (key && string_serde::deserialize(*key)) k["key"] = *key;
      held += p.held;
      keys.push_back(std::move(k));
    }
  return json_body(
      {{"node", node_id}, {"keys", keys.size()}, {"held", held}, {"parked", keys}});
}

std::pair<int, std::string>
node::impl::release_parked(const std::string& service,
                           const std::optional<std::string>& key, int64_t partition,
                           const std::string& action) {
  auto refuse = [](int code, const std::string& why) {
    return std::make_pair(code, json_body({{"error", why}}));
  };
  std::shared_lock<std::shared_mutex> serving_lock{serving_mu};
  if (!serving) return refuse(503, not_serving().message());
  size_t s = 0;
  while (s < ctx.services.size() && ctx.services[s].name != service)
    ++s;
  if (s == ctx.services.size())
    return refuse(404, "no service named '" + service.substr(0, 200) + "' on this node");
  auto& svc = ctx.services[s];
  if (svc.policy != detail::bad_record_policy::park)
    return refuse(404, "service '" + service + "' does not park keys (set service." +
                           service + ".bad.record.policy=park)");
  if (action != "retry" && action != "skip" && action != "drop")
    return refuse(400, "action must be retry, skip or drop, not '" +
                           action.substr(0, 100) + "'");
  if (partition >= svc.partitions)
    return refuse(400, "service '" + service + "' has partitions 0 to " +
                           std::to_string(svc.partitions - 1) + ", not " +
                           std::to_string(partition));
  if (partition < 0 && !key)
    return refuse(400, "the null key has no partition of its own: add ?partition=N "
                       "(GET /parked lists it)");
  auto p = partition >= 0 ? static_cast<int32_t>(partition)
                          : partition_for(*key, svc.partitions);
  auto id = detail::parked_keys::key_id(key ? std::optional<std::string_view>{*key}
                                            : std::nullopt);
  auto timeout = static_cast<int>(ctx.cfg.get_int("cluster.timeout.ms")) * 2;
  auto a = cluster ? cluster->router->park(s, p, id, action)
                   : cluster::ask_task_park(*sys, &ctx, s, p, id, action, timeout);
  if (a.code != 0) {
    auto code = static_cast<errc>(a.code);
    return refuse(code == errc::not_found ? 404 : 503, a.error);
  }
  auto j = nlohmann::json::parse(a.value, nullptr, false);
  int http = j.is_object() ? j.value("http", 500) : 500;
  if (j.is_object()) j.erase("http");
  if (j.is_object() && !j.contains("node")) j["node"] = node_id; // a single node
  return {http, json_body(j)};
}

status node::impl::start_http() {
  auto& cfg = ctx.cfg;
  auto http_port = cfg.get_int("http.port");
  if (http_port < 0) {
    log::info("no HTTP endpoint (http.port=-1): set http.port for the live map, "
              "/metrics and queries");
    return {};
  }
  detail::http_endpoint::handlers h;
  auto* self = this;
  h.get = [self](const std::string& store, const std::string& key,
                 int64_t max_lag) -> result<std::optional<std::string>> {
    std::shared_lock<std::shared_mutex> serving{self->serving_mu};
    if (!self->serving) return self->not_serving();
    if (self->cluster) return self->cluster->router->get(store, key, max_lag);
    // A single node: every shard is here.
    auto g = self->ctx.global_stores.find(store);
    if (g != self->ctx.global_stores.end()) return g->second->get(key);
    int parts = self->ctx.shards.partitions(store);
    if (parts == 0)
      return result<std::optional<std::string>>{make_error(
          errc::not_found, "no state store named '" + store + "' on this node")};
    auto p = partition_for(key, parts);
    return self->ctx.shards.with(
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
        });
  };
  h.cluster = [self]() -> std::string {
    std::shared_lock<std::shared_mutex> serving{self->serving_mu};
    if (!self->serving) return "{}";
    if (!self->cluster) {
      nlohmann::json units = nlohmann::json::array();
      for (size_t u = 0; u < self->topo.units.size(); ++u)
        units.push_back({{"unit", u},
                         {"tasks", self->topo.units[u].name},
                         {"active", self->node_id},
                         {"standbys", nlohmann::json::array()}});
      return nlohmann::json{{"node", self->node_id},
                            {"clustered", false},
                            {"members", {{{"id", self->node_id}, {"connected", true}}}},
                            {"units", units}}
          .dump();
    }
    std::string out = "{}";
    // See query_router.cpp: no logger reference may stay in this thread.
    struct drop_thread_logger {
      ~drop_thread_logger() { caf::logger::set_current_actor_system(nullptr); }
    } drop;
    caf::scoped_actor scoped{*self->sys};
    scoped
        ->request(caf::actor_cast<cluster::coordinator_actor>(self->cluster->coordinator),
                  std::chrono::seconds(5), cluster::view_atom::value)
        .receive([&](std::string& v) { out = std::move(v); }, [](caf::error&) {});
    return out;
  };
  h.metrics_json = [self]() { return self->metrics_json(self->read_metrics()); };
  h.metrics = [self]() { return self->prometheus_page(); };
  h.topology = [self](describe_format f) -> result<std::string> {
    auto d = describe_topology(self->factories, self->ctx.cfg, self->extras);
    if (!d) return d.error();
    return render(*d, f);
  };
  h.parked = [self]() { return self->parked_json(); };
  h.trace = [self, get = h.get](const std::string& key) -> std::string {
    auto d = describe_topology(self->factories, self->ctx.cfg, self->extras);
    detail::trace_sources src;
    src.application = self->ctx.application_id;
    src.node_id = self->node_id;
    src.trace_headers = self->ctx.trace_headers;
    if (d) src.topology = &*d;
    src.get = [&get](const std::string& store, const std::string& k) {
      return get(store, k, -1);
    };
    // A timer store's entry is in the partition of the timer's key: one
    // exact-key range scan over every partition (node::scan) finds it.
    src.find = [self](const std::string& store,
                      const std::string& k) -> result<std::optional<std::string>> {
      auto page = self->owner->scan(store, k, k + '\0', 1);
      if (!page) return page.error();
      if (page->rows.empty()) return std::optional<std::string>{};
      return std::optional<std::string>{std::move(page->rows.front().second)};
    };
    src.partitions = [self](const std::string& service) {
      std::shared_lock<std::shared_mutex> serving{self->serving_mu};
      if (!self->serving) return 0;
      for (auto& s : self->ctx.services)
        if (s.name == service) return s.partitions;
      return 0;
    };
    return detail::trace_json(key, src);
  };
  h.park = [self](const std::string& service, const std::optional<std::string>& key,
                  int64_t partition, const std::string& action) {
    return self->release_parked(service, key, partition, action);
  };
  auto ep = detail::http_endpoint::start(cfg.get_string("http.host"),
                                         static_cast<int>(http_port), std::move(h),
                                         http::limits_from(cfg));
  if (!ep) return ep.error();
  http = std::move(*ep);
  log::info("HTTP endpoint on {}:{}; the live map at http://{}:{}/",
            cfg.get_string("http.host"), http->port(), cfg.get_string("http.host"),
            http->port());
  return {};
}

status node::impl::start_cluster(int timeout_ms, detail::task_manager_settings tasks) {
  auto& cfg = ctx.cfg;
  cluster = std::make_unique<cluster_parts>();
  auto& c = *cluster;
  auto cluster_timeout = static_cast<int>(cfg.get_int("cluster.timeout.ms"));
  // The cluster log: created if missing, then read to its end before any
  // decision (a restarted node must not act on generations older than the
  // ones its previous incarnation saw).
  auto admin = kafka::admin::create(cfg.kafka_properties(client_kind::admin));
  if (!admin) return admin.error();
  auto topic = cluster::cluster_log_topic(ctx.application_id);
  auto rf = static_cast<int>(cfg.get_int("replication.factor"));
  if (auto s = (*admin)->ensure_topics(
          {{topic, 1, rf, {{"cleanup.policy", "compact"}, {"segment.ms", "600000"}}}},
          timeout_ms);
      !s)
    return s;
  auto cprops = cfg.kafka_properties(client_kind::consumer);
  cprops["group.id"] = ctx.application_id + "-cluster-reader";
  auto* fanout = &c.fanout;
  auto reader = cluster::cluster_log_reader::start(
      std::move(cprops), topic,
      [fanout](const std::map<std::string, cluster::member_record>& announced,
               const std::vector<cluster::assignment>& fresh, int64_t position) {
        auto u = std::make_shared<cluster::log_update>();
        u->announced = announced;
        u->fresh = fresh;
        u->position = position;
        fanout->post(std::move(u));
      },
      static_cast<int>(cfg.get_int("cluster.timeout.ms")) * 5);
  if (!reader) return reader.error();
  c.log = std::move(*reader);
  // A topic another node created a moment ago may not be known to every
  // broker connection yet: retried within the start-up bound.
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (auto s = c.log->sync(timeout_ms); !s; s = c.log->sync(timeout_ms)) {
    if ((s.code() != errc::not_found && s.code() != errc::kafka) ||
        std::chrono::steady_clock::now() > deadline)
      return s;
    log::info("cluster: waiting for the cluster log {}: {}", topic, s.message());
    std::unique_lock<std::mutex> lock{mu};
    cv.wait_for(lock, std::chrono::milliseconds(100));
  }

  auto rprops = cfg.kafka_properties(client_kind::consumer);
  rprops["group.id"] = ctx.application_id + "-standby";
  rprops["isolation.level"] = "read_committed";
  rprops.emplace("max.partition.fetch.bytes", "16777216");
  rprops.emplace("fetch.wait.max.ms", "10");
  c.standbys = std::make_unique<detail::standby_manager>(&ctx, rprops, timeout_ms);
  tasks.standbys = c.standbys.get();
  task_manager = detail::spawn_task_manager(*sys, std::move(tasks));

  // Who this node is.
  c.me.id = node_id;
  c.me.host = cfg.get_string("cluster.host");
  c.me.http =
      http ? cfg.get_string("http.host") + ":" + std::to_string(http->port()) : "";
  c.me.incarnation = wall_ms();
  c.me.topology = topo.fingerprint();
  std::vector<bool> stateful;
  std::vector<std::string> names;
  for (auto& u : topo.units) {
    stateful.push_back(u.stateful);
    names.push_back(u.name);
  }

  c.router = std::make_unique<cluster::query_router>(
      &ctx, &topo, sys.get(), &c.directory, c.log.get(), c.standbys.get(), node_id,
      cluster_timeout, static_cast<int>(cfg.get_int("cluster.query.max.in.flight")));
  c.query_server = cluster::spawn_query_server(*sys, c.router.get());
  c.lease_keeper =
      cluster::spawn_lease_keeper(*sys, &ctx, c.log.get(), topic, cluster_timeout);
  cluster::peer_links_settings ps;
  ps.self = c.me;
  ps.timeout_ms = cluster_timeout;
  ps.directory = &c.directory;
  ps.tls = cfg.get_bool("cluster.tls.enabled");
  ps.max_units = topo.units.size();
  ps.dropped = &ctx.counters.peer_messages_dropped;
  c.peer_links = cluster::spawn_peer_links(*sys, ps, c.query_server);
  auto links = caf::actor_cast<cluster::peer_links_actor>(c.peer_links);
  auto listen_port = static_cast<uint16_t>(cfg.get_int("cluster.port"));
  // With TLS only the openssl module listens: no plain port is left open.
  auto port =
      ps.tls ? caf::openssl::publish(links, listen_port, c.me.host.c_str(), false)
             : sys->middleman().publish(links, listen_port, c.me.host.c_str(), false);
  if (!port)
    return make_error(errc::invalid_config,
                      "cluster.port: cannot listen on " + c.me.host + ":" +
                          std::to_string(cfg.get_int("cluster.port")) + " (" +
                          sys->render(port.error()) +
                          "); pick a free port, or 0 for any, or set cluster.host");
  c.me.port = *port;

  cluster::coordinator_settings cs;
  cs.self = c.me;
  cs.stateful = stateful;
  cs.unit_names = names;
  cs.num_standbys = static_cast<int>(cfg.get_int("num.standby.replicas"));
  cs.acceptable_lag = cfg.get_int("acceptable.recovery.lag");
  cs.exactly_once = ctx.exactly_once;
  cs.timeout_ms = cluster_timeout;
  c.coordinator = cluster::spawn_coordinator(*sys, cs, c.lease_keeper);

  cluster::rebalancer_settings rs;
  rs.self = node_id;
  rs.incarnation = c.me.incarnation;
  rs.stateful = stateful;
  rs.lags = [this] { return lags(); };
  rs.task_timeout_ms = static_cast<int>(cfg.get_int("shutdown.timeout.ms") * 3 +
                                        cfg.get_int("startup.timeout.ms"));
  c.rebalancer =
      cluster::spawn_rebalancer(*sys, rs, task_manager, c.peer_links, c.coordinator);
  caf::anon_send(caf::actor_cast<cluster::peer_links_actor>(c.peer_links),
                 cluster::announce_atom::value, c.me,
                 caf::actor_cast<cluster::coordinator_actor>(c.coordinator),
                 caf::actor_cast<cluster::rebalancer_actor>(c.rebalancer));

  auto announced =
      ask(*sys, caf::actor_cast<cluster::lease_keeper_actor>(c.lease_keeper),
          std::chrono::milliseconds(timeout_ms), cluster::announce_atom::value, c.me);
  if (!announced.ok())
    return make_error(static_cast<errc>(announced.code),
                      "announcing this node in " + topic + ": " + announced.why);
  log::info("cluster: node {} listening on {}:{}{}, announced in {}", node_id, c.me.host,
            c.me.port,
            ps.tls ? " (TLS, peers need a certificate signed by cluster.tls.ca)" : "",
            topic);
  c.fanout.attach({c.coordinator, c.rebalancer, c.peer_links});

  auto coordinator = caf::actor_cast<cluster::coordinator_actor>(c.coordinator);
  auto rebalancer = caf::actor_cast<cluster::rebalancer_actor>(c.rebalancer);
  c.watchdog = std::make_unique<cluster::freeze_watchdog>(
      cluster_timeout, [coordinator, rebalancer](int64_t) {
        caf::anon_send(coordinator, cluster::frozen_atom::value);
        caf::anon_send(rebalancer, cluster::frozen_atom::value);
      });
  return {};
}

status node::start() {
  auto& cfg = impl_->ctx.cfg;
  if (auto st = log::setup(cfg.get_string("log.level"), cfg.get_string("log.file")); !st)
    return st;
  // A write to a socket the other end closed (an HTTP client that gave up, a
  // peer node that died) must be an error on that socket, not SIGPIPE's
  // default action: ending this process without a word.
  std::signal(SIGPIPE, SIG_IGN);
  {
    std::lock_guard<std::mutex> guard{impl_->mu};
    if (impl_->started) return make_error(errc::invalid_argument, "node already started");
  }
  if (impl_->factories.empty())
    return make_error(errc::invalid_argument,
                      "no services: call node::add() before start()");
  auto timeout = static_cast<int>(cfg.get_int("startup.timeout.ms"));
  auto& ctx = impl_->ctx;
  ctx.exactly_once = cfg.get_string("processing.guarantee") == "exactly_once";
  ctx.trace_headers = cfg.get_bool("trace.headers");
  ctx.clustered = cfg.get_bool("cluster.enabled");
  auto node_id = cfg.get_string("node.id");
  if (node_id.empty() && ctx.exactly_once) {
    auto id = persistent_node_id(cfg.get_string("state.dir") + "/" + ctx.application_id);
    if (!id) return id.error();
    node_id = *id;
  }
  if (node_id.empty()) node_id = default_node_id();
  impl_->node_id = node_id;
  log::info("weft node {} of application '{}' starting, brokers {}, malloc {}", node_id,
            ctx.application_id, cfg.get_string("bootstrap.servers"), allocator_name());

  auto admin = kafka::admin::create(cfg.kafka_properties(client_kind::admin));
  if (!admin) return admin.error();
  if (auto s = (*admin)->wait_for_brokers(timeout); !s)
    return make_error(errc::kafka,
                      "cannot reach Kafka at " + cfg.get_string("bootstrap.servers") +
                          " (" + s.message() +
                          "): start the local broker with `tools/weft-broker "
                          "start`, or set bootstrap.servers");
  std::vector<kafka::new_topic> to_create;
  if (auto s = detail::resolve_services(impl_->factories, ctx.application_id, cfg,
                                        **admin, timeout, ctx.services,
                                        impl_->global_tables, to_create);
      !s)
    return s;
  for (auto& svc : ctx.services)
    for (auto& spec : svc.stores)
      ctx.shards.declare(spec.name, svc.partitions);
  if (auto s = (*admin)->ensure_topics(to_create, timeout); !s) return s;
  auto parts = detail::input_partition_counts(ctx.services, **admin, timeout);
  if (!parts) return parts.error();
  impl_->topo = detail::compute_units(ctx.services, std::move(*parts));

  auto* self = impl_.get();
  if (ctx.exactly_once) impl_->txn_id = ctx.application_id + "-" + node_id;
  if (auto s = detail::make_producer(ctx, impl_->txn_id,
                                     [self](const std::string& why) {
                                       self->alarm("the producer is fenced: " + why,
                                                   true);
                                     });
      !s)
    return s;
  // The topics this node produces to, learned before the first record: a
  // topic created a moment ago (a changelog, or outputs made just before
  // start) is not known to a new producer, whose first records to it then
  // waited 0.8 s — one such wait per hop of a pipeline at start-up.
  {
    std::set<std::string> produced;
    for (auto& svc : ctx.services) {
      produced.insert(svc.output_topics.begin(), svc.output_topics.end());
      if (!svc.dead_letter_topic.empty()) produced.insert(svc.dead_letter_topic);
      for (auto& spec : svc.stores)
        produced.insert(state::changelog_topic(ctx.application_id, spec.name));
    }
    auto learn_start = std::chrono::steady_clock::now();
    auto learned = ctx.producer->learn_topics({produced.begin(), produced.end()},
                                              std::min(timeout, 10000));
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::steady_clock::now() - learn_start)
                    .count();
    if (!learned)
      log::warn("{}; starting anyway (the producer keeps asking)", learned.message());
    else
      log::debug("producer: {} topics known in {} ms", produced.size(), took);
  }

  auto cprops = cfg.kafka_properties(client_kind::consumer);
  cprops["group.id"] = ctx.application_id;
  // Exactly-once reads only committed transactions (its own upstream
  // services' included); offsets are fetched with require_stable.
  if (ctx.exactly_once) cprops["isolation.level"] = "read_committed";
  // Bound librdkafka's prefetch: fetch.buffer.max.bytes is shared by every
  // input partition of the node (the credit scheme bounds what is past it).
  {
    size_t n = 0;
    for (auto& svc : ctx.services)
      n += svc.input_topics.size() * svc.partitions;
    n = std::max<size_t>(n, 1);
    auto budget = static_cast<size_t>(cfg.get_int("fetch.buffer.max.bytes"));
    cprops.emplace("queued.max.messages.kbytes",
                   std::to_string(std::clamp<size_t>(budget / n / 1024, 1024, 65536)));
    // With many partitions the per-partition defaults add up: librdkafka
    // keeps up to 100,000 records a partition queued and each fetched
    // buffer (up to 1 MiB a partition) alive while a record of it is. At
    // 96 partitions the node peaked at 749-848 MB; scaled down (below 24
    // partitions these are librdkafka's defaults) at 543 MB, as fast
    // (bench/scaling.sh).
    cprops.emplace("queued.min.messages",
                   std::to_string(std::clamp<size_t>(600000 / n, 5000, 100000)));
    cprops.emplace("max.partition.fetch.bytes",
                   std::to_string(std::clamp<size_t>(budget / n, 256 << 10, 1 << 20)));
  }
  auto consumer = kafka::consumer::create(std::move(cprops), [self](const status& st) {
    if (st.code() == errc::kafka_fatal)
      self->on_fatal(st.message());
    else
      log::warn("{}", st.message());
  });
  if (!consumer) return consumer.error();
  ctx.consumer = std::move(*consumer);

  // State: one store factory (shared RocksDB cache) and one restore thread.
  ctx.state_dir = cfg.get_string("state.dir");
  ctx.stores = state::make_rocksdb_factory(
      static_cast<size_t>(cfg.get_int("statestore.cache.max.bytes")),
      static_cast<size_t>(cfg.get_int("rocksdb.write.buffer.max.bytes")),
      static_cast<size_t>(cfg.get_int("statestore.value.cache.max.bytes")));
  auto rprops = cfg.kafka_properties(client_kind::consumer);
  rprops["group.id"] = ctx.application_id + "-restore";
  // Changelogs of exactly-once nodes hold aborted epochs: never restore them.
  rprops["isolation.level"] = "read_committed";
  // A restore reads every changelog partition of its shards at once, each
  // through a queue of its own, so librdkafka's prefetch limits apply per
  // partition: large fetches and a prefetch deep enough to keep the writer
  // busy, bounded: at most 50,000 records or 64 MiB queued per partition
  // (16 MiB halved the speed: librdkafka counts more than the payloads).
  // At 500,000 records a partition, restoring 10^7 records over 6 partitions
  // peaked at 1.4 GB; now 290-370 MB, as fast (bench/scaling.sh; that
  // restore takes 23 s or 45 s from run to run, before and after).
  rprops.emplace("max.partition.fetch.bytes", "8388608");
  rprops.emplace("fetch.max.bytes", "67108864");
  rprops.emplace("queued.min.messages", "50000");
  rprops.emplace("queued.max.messages.kbytes", "65536");
  // At a changelog's end a fetch would wait fetch.wait.max.ms (500) for data
  // that never comes (with exactly_once the end is a commit marker, reached
  // only by one more fetch): every restore round cost half a second.
  rprops.emplace("fetch.wait.max.ms", "10");
  impl_->restorer =
      std::make_unique<detail::restorer>(rprops, 10000, timeout, &ctx.counters.restore);
  ctx.restorer = impl_->restorer.get();
  for (auto& g : impl_->global_tables) {
    auto dir = ctx.state_dir + "/" + ctx.application_id + "/global/" + g.store;
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    std::filesystem::create_directories(dir, ec);
    if (ec) return make_error(errc::io, "cannot create '" + dir + "': " + ec.message());
    state::store_spec spec{g.store, state::store_spec::kind::kv, 0, false};
    auto store = ctx.stores->kv(dir, spec, nullptr, nullptr);
    if (!store) return store.error();
    auto* raw = store->get();
    ctx.global_stores[g.store] = std::move(*store);
    auto reader = std::make_unique<detail::global_table>(g.topic, raw);
    auto gprops = cfg.kafka_properties(client_kind::consumer);
    gprops.emplace("isolation.level", "read_committed");
    if (auto s = reader->start(std::move(gprops), timeout); !s) return s;
    impl_->global_readers.push_back(std::move(reader));
  }

  if (ctx.exactly_once)
    if (auto st = detail::begin_first_transaction(ctx, impl_->txn_id, timeout); !st)
      return st;

  impl_->caf_cfg = std::make_unique<caf::actor_system_config>();
  impl_->caf_cfg->set("scheduler.max-threads", cfg.get_int("num.stream.threads"));
  // A finite throughput makes busy actors yield their thread (FACTS.md).
  impl_->caf_cfg->set("scheduler.max-throughput", 64);
  // One FIFO queue for all workers. CAF's default work-stealing policy puts
  // an actor woken by another actor at the front of the worker's queue
  // (LIFO): a saturated partition -> task -> partition chain then starves
  // every actor woken from outside (commit ticks, librdkafka wake-ups), and
  // offsets were not committed until the input ran dry.
  impl_->caf_cfg->set("scheduler.policy", caf::atom("sharing"));
  impl_->caf_cfg->set("logger.file-verbosity", caf::atom("quiet"));
  impl_->caf_cfg->set("logger.console-verbosity", caf::atom("quiet"));
  if (ctx.clustered) {
    impl_->caf_cfg->load<caf::io::middleman>();
    auto tls = cluster::load_tls(cfg);
    if (!tls) return tls.error();
    if (*tls) cluster::use_tls(*impl_->caf_cfg, **tls);
    cluster::add_wire_types(*impl_->caf_cfg);
    // Without both, a frozen peer is never noticed (FACTS.md).
    impl_->caf_cfg->set(
        "middleman.heartbeat-interval",
        caf::timespan{std::chrono::milliseconds(cfg.get_int("cluster.heartbeat.ms"))});
    impl_->caf_cfg->set(
        "middleman.connection-timeout",
        caf::timespan{std::chrono::milliseconds(cfg.get_int("cluster.timeout.ms"))});
  }
  impl_->sys = std::make_unique<caf::actor_system>(*impl_->caf_cfg);

  impl_->owner = this;
  if (auto s = impl_->start_http(); !s) return s;

  detail::task_manager_settings ts;
  ts.ctx = &ctx;
  ts.topo = &impl_->topo;
  ts.transactional_id = impl_->txn_id;
  ts.on_alarm = [self](const std::string& why, bool fenced) { self->alarm(why, fenced); };
  if (!ctx.clustered) {
    impl_->task_manager = detail::spawn_task_manager(*impl_->sys, std::move(ts));
    std::vector<cluster::unit_id> all;
    for (size_t u = 0; u < impl_->topo.units.size(); ++u)
      all.push_back(static_cast<cluster::unit_id>(u));
    auto r =
        ask(*impl_->sys, caf::actor_cast<detail::task_manager_actor>(impl_->task_manager),
            std::chrono::milliseconds(timeout), detail::run_atom::value, all, false,
            std::vector<cluster::unit_id>{}, int64_t{0});
    if (!r.ok()) return make_error(static_cast<errc>(r.code), r.why);
    log::info("{} services, {} units of work, all on this node (cluster.enabled=false)",
              ctx.services.size(), impl_->topo.units.size());
  } else {
    if (auto s = impl_->start_cluster(timeout, std::move(ts)); !s) return s;
    log::info("{} services, {} units of work; joining the cluster of '{}'",
              ctx.services.size(), impl_->topo.units.size(), ctx.application_id);
  }

  impl_->poller = std::thread{[self] {
    while (!self->poll_stop.load(std::memory_order_relaxed))
      self->ctx.consumer->poll_events(100);
  }};
  {
    std::unique_lock<std::shared_mutex> serving{impl_->serving_mu};
    impl_->serving = true;
  }
  {
    std::lock_guard<std::mutex> guard{impl_->mu};
    impl_->started = true;
  }
  log::info("node {} running", node_id);
  return {};
}

void node::request_stop() {
  std::lock_guard<std::mutex> guard{impl_->mu};
  impl_->stop_requested = true;
  impl_->cv.notify_all();
}

status node::impl::shutdown() {
  auto bound = std::chrono::milliseconds(ctx.cfg.get_int("shutdown.timeout.ms"));
  {
    // Waits for the queries in flight (each bounded); later ones are told
    // the node is stopping.
    std::unique_lock<std::shared_mutex> serving_lock{serving_mu};
    serving = false;
  }
  if (cluster) {
    cluster->watchdog.reset();
    cluster->fanout.detach();
    // Say goodbye first: the others stop routing queries here and take the
    // units over once this node committed and left.
    {
      caf::scoped_actor self{*sys};
      self->request(caf::actor_cast<cluster::coordinator_actor>(cluster->coordinator),
                    std::chrono::seconds(5), cluster::leave_atom::value)
          .receive([](bool) {}, [](caf::error&) {});
    }
    // The rebalancer must not act on anything from here on.
    caf::anon_send_exit(cluster->rebalancer, caf::exit_reason::user_shutdown);
  }
  http.reset(); // no query may reach the node's parts while they go
  if (task_manager) {
    auto r = ask(*sys, caf::actor_cast<detail::task_manager_actor>(task_manager),
                 bound * 2, detail::shutdown_atom::value);
    if (!r.ok()) log::warn("stopping: {}", r.why);
  }
  if (cluster) {
    caf::scoped_actor self{*sys};
    self->request(caf::actor_cast<cluster::peer_links_actor>(cluster->peer_links),
                  std::chrono::seconds(2), cluster::leave_atom::value)
        .receive([](bool) {}, [](caf::error&) {});
    // The announcement goes: this node left.
    auto props = ctx.cfg.kafka_properties(client_kind::producer);
    if (auto p = kafka::producer::create(std::move(props)); p) {
      auto topic = cluster::cluster_log_topic(ctx.application_id);
      if (auto s = (*p)->send(topic, 0, cluster::member_key(node_id), std::nullopt); s)
        s = (*p)->flush(static_cast<int>(ctx.cfg.get_int("cluster.timeout.ms")) * 5);
    }
    for (auto* a : {&cluster->coordinator, &cluster->peer_links, &cluster->lease_keeper,
                    &cluster->query_server}) {
      if (*a) caf::anon_send_exit(*a, caf::exit_reason::user_shutdown);
    }
  }
  if (task_manager) caf::anon_send_exit(task_manager, caf::exit_reason::user_shutdown);
  ctx.producer->stop_polling();
  restorer.reset();
  ctx.restorer = nullptr;
  {
    // Every actor holds pointers into what follows.
    caf::actor_system* s = sys.get();
    task_manager = nullptr;
    if (cluster) {
      cluster->coordinator = cluster->peer_links = cluster->lease_keeper =
          cluster->query_server = cluster->rebalancer = nullptr;
    }
    s->await_all_actors_done();
  }
  if (cluster) {
    cluster->router.reset();
    cluster->standbys.reset();
    cluster->log.reset();
    cluster->directory.clear();
  }
  poll_stop = true;
  if (poller.joinable()) poller.join();
  ctx.producer.reset();
  sys.reset();
  cluster.reset();
  global_readers.clear();
  ctx.global_stores.clear();
  if (auto s = ctx.consumer->close(); !s) log::warn("{}", s.message());
  ctx.consumer.reset();
  status result;
  {
    std::lock_guard<std::mutex> guard{mu};
    if (fatal) result = make_error(errc::internal, *fatal);
    stopped = true;
  }
  return result;
}

status node::wait() {
  {
    std::unique_lock<std::mutex> lock{impl_->mu};
    if (!impl_->started)
      return make_error(errc::invalid_argument,
                        "node::wait() before a successful start()");
    if (impl_->stopped) return {};
    impl_->cv.wait(lock,
                   [&] { return impl_->stop_requested || impl_->fatal.has_value(); });
    if (impl_->fatal)
      log::error("stopping: {}", *impl_->fatal);
    else
      log::info("stopping: draining in-flight records and committing");
  }
  auto s = impl_->shutdown();
  auto m = metrics();
  log::info("node stopped: processed {}, produced {}, bad records {}", m.processed,
            m.produced, m.bad_records);
  return s;
}

namespace {

sigset_t stop_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  return signals;
}

} // namespace

void block_stop_signals() {
  auto signals = stop_signals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
}

namespace {

/// A crash (SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL) writes the signal and a
/// backtrace to stderr before the default action ends the process: a node
/// that dies must say where. Async-signal-safe calls only.
void on_crash(int sig) {
  const char* what = sig == SIGSEGV   ? "SIGSEGV"
                     : sig == SIGABRT ? "SIGABRT"
                     : sig == SIGBUS  ? "SIGBUS"
                     : sig == SIGFPE  ? "SIGFPE"
                                      : "SIGILL";
  char line[96];
  int n = std::snprintf(line, sizeof line, "weft: fatal signal %s; backtrace:\n", what);
  if (n > 0) (void)!::write(2, line, static_cast<size_t>(n));
  void* frames[64];
  int count = ::backtrace(frames, 64);
  ::backtrace_symbols_fd(frames, count, 2);
  std::signal(sig, SIG_DFL);
  ::raise(sig);
}

void report_crashes() {
  for (int sig : {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL})
    std::signal(sig, on_crash);
}

} // namespace

int node::run() {
  if (auto& f = impl_->ctx.cfg.describe_format(); !f.empty()) {
    auto format = parse_describe_format(f);
    auto text = format ? describe(*format) : result<std::string>{format.error()};
    if (!text) {
      std::fprintf(stderr, "describe: %s\n", text.error().message().c_str());
      return 1;
    }
    std::fwrite(text->data(), 1, text->size(), stdout);
    return 0;
  }
  report_crashes();
  // Block before the node's threads exist so every thread inherits the mask
  // and only the watcher below receives the signals.
  block_stop_signals();
  auto signals = stop_signals();
  if (auto s = start(); !s) {
    log::error("{}", s.message());
    return 1;
  }
  std::atomic<bool> done{false};
  std::thread watcher{[this, &signals, &done] {
    int count = 0;
    while (true) {
      int sig = 0;
      if (sigwait(&signals, &sig) != 0) continue;
      if (done) return;
      if (++count == 1) {
        log::info("signal {}: stopping gracefully (send it again to exit at once)", sig);
        request_stop();
      } else {
        log::warn("second signal: exiting without draining");
        std::_Exit(130);
      }
    }
  }};
  auto s = wait();
  done = true;
  pthread_kill(watcher.native_handle(), SIGTERM);
  watcher.join();
  if (!s) {
    log::error("{}", s.message());
    return 1;
  }
  return 0;
}

int run_main(int argc, char** argv, const std::function<void(node&)>& setup) {
  auto cfg = config::load(argc, argv);
  if (!cfg) {
    std::fprintf(stderr, "%s: %s\n", argv[0], cfg.error().message().c_str());
    return 2;
  }
  if (cfg->help_requested()) {
    std::cout << config::help_text(argv[0]);
    return 0;
  }
  if (cfg->version_requested()) {
    std::cout << argv[0] << " (weft " << version << ")\n";
    return 0;
  }
  node n{std::move(*cfg)};
  setup(n);
  return n.run();
}

} // namespace weft
