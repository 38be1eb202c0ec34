#include "weft/node.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <nlohmann/json.hpp>

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
#include <thread>

#include "weft/actors/delivery_tracker.hpp"
#include "weft/actors/global_table.hpp"
#include "weft/actors/http_endpoint.hpp"
#include "weft/actors/messages.hpp"
#include "weft/actors/node_context.hpp"
#include "weft/actors/restorer.hpp"
#include "weft/actors/standby.hpp"
#include "weft/actors/supervisor.hpp"
#include "weft/cluster/membership.hpp"
#include "weft/kafka/admin.hpp"
#include "weft/log.hpp"
#include "weft/services/partitioner.hpp"

namespace weft {

using detail::bad_record_policy;

struct node::impl {
  detail::node_context ctx;
  std::vector<service_factory> factories;
  std::unique_ptr<caf::actor_system_config> caf_cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::actor supervisor;
  std::thread poller;
  std::atomic<bool> poll_stop{false};

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

  status resolve_services(kafka::admin& admin, int timeout_ms,
                          std::vector<kafka::new_topic>& to_create);
  struct global_decl {
    std::string topic;
    std::string store;
  };
  std::vector<global_decl> global_tables;
  std::vector<std::unique_ptr<detail::global_table>> global_readers;
  std::unique_ptr<detail::restorer> restorer;
  status shutdown();

  /// The plan of the units this node owns (`owned`): takes each partition's
  /// queue and assigns the partitions at their committed offsets.
  /// The plan of the owned units' tasks (all of them: the assignment is
  /// replaced; or, given `running`, those not in it: their partitions are
  /// added to the assignment).
  result<detail::assignment_plan>
  make_plan(const std::set<detail::task_key>* running = nullptr);
  std::map<std::string, int> input_partitions;

  // Units of work: the tasks that must run on one node because they share
  // input partitions (a partition has one committed offset). The cluster
  // assigns units; a node without a cluster owns them all.
  struct unit_def {
    std::vector<std::pair<size_t, int32_t>> tasks; ///< (service, partition)
    std::vector<topic_partition> inputs;
    bool stateful = false;
    std::string name;
  };
  std::vector<unit_def> units;
  std::map<std::pair<size_t, int32_t>, size_t> unit_of;
  std::map<std::string, size_t> service_of_store;
  status compute_units(kafka::admin& admin, int timeout_ms);
  std::string topology() const;

  std::string node_id;
  std::string txn_id;
  bool clustered = false;
  mutable std::mutex own_mu;
  std::set<size_t> owned; ///< units whose tasks run here

  status make_producer();
  status begin_first_transaction(int timeout_ms);
  void spawn_supervisor_for_owned();
  /// Stops the supervisor and waits until its children are gone (their
  /// shards closed). graceful: drain and commit first.
  status stop_supervisor(bool graceful, bool final_stop);

  // Clustering (cluster.enabled).
  std::unique_ptr<detail::cluster_member> cluster;
  std::unique_ptr<detail::standby_manager> standbys;
  std::unique_ptr<detail::http_endpoint> http;
  std::thread rebalancer;
  std::mutex rb_mu;
  std::condition_variable rb_cv;
  std::vector<std::shared_ptr<const cluster::assignment>> targets; ///< in order
  std::shared_ptr<const cluster::assignment> target;               ///< the latest
  /// unit -> node -> the latest generation as of which it declared itself
  /// clear of the unit (released).
  std::map<size_t, std::map<std::string, int64_t>> released_from;
  /// Units handed to this node (by the node, from that generation on) whose
  /// old owner has not released them yet. This node is not clear of them
  /// until it has, even once they moved on (rebalancer thread only).
  std::map<size_t, std::pair<std::string, int64_t>> handoff_from;
  std::set<size_t> waiting_logged;
  bool rb_dirty = false;
  bool rb_stop = false;
  bool fenced = false;
  std::string fenced_why;
  void wake_rebalancer() {
    rb_dirty = true;
    rb_cv.notify_all();
  }
  void rebalance_loop();
  void apply_assignment(const cluster::assignment& a,
                        const std::map<size_t, std::map<std::string, int64_t>>& released);
  void rejoin_after_fencing(const std::string& why);
  void release_idle(const cluster::assignment& a);
  std::string status_json();
  detail::query_answer local_query(const std::string& store, const std::string& key,
                                   int64_t max_lag, bool remote);
  result<std::optional<std::string>> query(const std::string& store,
                                           const std::string& key, int64_t max_lag);
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

bad_record_policy parse_policy(const std::string& s) {
  if (s == "skip") return bad_record_policy::skip;
  if (s == "dead_letter") return bad_record_policy::dead_letter;
  return bad_record_policy::fail;
}

} // namespace

node::node(config cfg) : impl_(std::make_unique<impl>()) {
  impl_->ctx.cfg = std::move(cfg);
  impl_->ctx.application_id = impl_->ctx.cfg.get_string("application.id");
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

node_metrics node::metrics() const {
  auto& c = impl_->ctx.counters;
  node_metrics m;
  m.processed = c.processed.load();
  m.produced = c.produced.load();
  m.bad_records = c.bad_records.load();
  m.commits = c.commits.load();
  m.pauses = c.pauses.load();
  m.epochs_committed = c.epochs_committed.load();
  m.epochs_aborted = c.epochs_aborted.load();
  m.commit_latency_us_total = c.commit_us_total.load();
  m.commit_latency_us_max = c.commit_us_max.load();
  m.aligned_us_total = c.aligned_us_total.load();
  m.transaction_us_total = c.txn_us_total.load();
  return m;
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

} // namespace

result<std::optional<std::string>> node::get(std::string_view store_name,
                                             std::string_view key,
                                             int64_t max_standby_lag) const {
  if (impl_->cluster)
    return impl_->query(std::string{store_name}, std::string{key}, max_standby_lag);
  return get(store_name, key);
}

result<std::optional<std::string>> node::get(std::string_view store_name,
                                             std::string_view key) const {
  if (impl_->cluster) return impl_->query(std::string{store_name}, std::string{key}, -1);
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
  std::string store{store_name};
  if (impl_->ctx.global_stores.count(store_name)) return true;
  int parts = impl_->ctx.shards.partitions(store);
  if (parts == 0) return false;
  std::set<size_t> mine;
  if (impl_->cluster) {
    std::lock_guard<std::mutex> guard{impl_->own_mu};
    mine = impl_->owned;
  }
  auto svc = impl_->service_of_store.find(store);
  for (int32_t p = 0; p < parts; ++p)
    if (impl_->cluster && svc != impl_->service_of_store.end() &&
        !mine.count(impl_->unit_of.at({svc->second, p})))
      continue; // another node's
    else if (!impl_->ctx.shards.with(
                 store, p, [](state::shard* sh, int) { return sh && sh->ready(); }))
      return false;
  return true;
}

status node::range(std::string_view store_name, std::string_view from,
                   std::string_view to, const state::visitor& fn) const {
  std::string store{store_name};
  auto g = impl_->ctx.global_stores.find(store_name);
  if (g != impl_->ctx.global_stores.end()) return g->second->range(from, to, fn);
  int parts = impl_->ctx.shards.partitions(store);
  if (parts == 0) return shard_error(store, nullptr, 0);
  std::set<size_t> mine;
  if (impl_->cluster) {
    std::lock_guard<std::mutex> guard{impl_->own_mu};
    mine = impl_->owned;
  }
  auto svc = impl_->service_of_store.find(store);
  for (int32_t p = 0; p < parts; ++p) {
    if (impl_->cluster && svc != impl_->service_of_store.end() &&
        !mine.count(impl_->unit_of.at({svc->second, p})))
      continue; // another node's
    auto st = impl_->ctx.shards.with(store, p, [&](state::shard* sh, int n) -> status {
      if (!sh || !sh->ready()) return shard_error(store, sh, n);
      auto* kv = sh->kv(store);
      if (!kv)
        return make_error(errc::invalid_argument,
                          "store '" + store + "' is not a key-value store");
      return kv->range(from, to, fn);
    });
    if (!st) return st;
  }
  return {};
}

status node::fetch(std::string_view store_name, std::string_view key, timestamp_ms from,
                   timestamp_ms to,
                   const std::function<bool(timestamp_ms, std::string_view)>& fn) const {
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

status node::impl::resolve_services(kafka::admin& admin, int timeout_ms,
                                    std::vector<kafka::new_topic>& to_create) {
  auto& app = ctx.application_id;
  auto& cfg = ctx.cfg;
  std::vector<std::unique_ptr<service_base>> protos;
  std::set<std::string> names;
  for (auto& f : factories) {
    auto p = f();
    if (!p) return make_error(errc::invalid_argument, "a service factory returned null");
    if (p->name().empty())
      return make_error(errc::invalid_argument, "a service has an empty name");
    if (!names.insert(p->name()).second)
      return make_error(errc::invalid_argument, "two services are named '" + p->name() +
                                                    "': names must be unique");
    // A table-table join reads tables only.
    if (p->inputs().empty() &&
        std::none_of(p->tables().begin(), p->tables().end(),
                     [](const table_decl& t) { return !t.global; }))
      return make_error(errc::invalid_argument,
                        "service '" + p->name() + "' declares no input topic");
    protos.push_back(std::move(p));
  }
  for (auto& s : cfg.mentioned_services())
    if (!names.count(s))
      return make_error(
          errc::invalid_config, "config key 'service." + s +
                                    ".*' names no service of this node; "
                                    "services are: " +
                                    [&] {
                                      std::string all;
                                      for (auto& n : names)
                                        all += (all.empty() ? "" : ", ") + n;
                                      return all;
                                    }());
  // Partition counts: user topics from the brokers, repartition topics from
  // the inputs of the service that writes them (resolved to a fixed point,
  // since a repartition may feed a service that repartitions again).
  std::map<std::string, int> partitions;
  std::map<std::string, size_t> writer; // repartition short name -> service
  for (size_t i = 0; i < protos.size(); ++i)
    for (auto& o : protos[i]->outputs())
      if (o.kind == output_kind::repartition) {
        if (writer.count(o.name))
          return make_error(errc::invalid_argument,
                            "repartition '" + o.name + "' is written by two services");
        writer[o.name] = i;
      }
  auto topic_of = [&](const input_decl& in) {
    return in.internal ? repartition_topic(app, in.name) : in.name;
  };
  auto lookup = [&](const std::string& service, const std::string& topic,
                    const char* what) -> status {
    if (partitions.count(topic)) return {};
    auto n = admin.partition_count(topic, timeout_ms);
    if (!n) {
      if (n.error().code() == errc::not_found)
        return make_error(
            errc::invalid_config,
            "service '" + service + "': " + what + " '" + topic +
                "' does not exist; create it (e.g. kafka-topics.sh --create "
                "--topic " +
                topic + " --partitions 6) or fix the topic name");
      return n.error();
    }
    partitions[topic] = *n;
    return {};
  };
  for (auto& p : protos)
    for (auto& t : p->tables())
      if (auto st =
              lookup(p->name(), t.topic, t.global ? "global table topic" : "table topic");
          !st)
        return st;
  for (auto& p : protos)
    for (auto& in : p->inputs()) {
      if (in.internal) {
        if (!writer.count(in.name))
          return make_error(errc::invalid_argument,
                            "service '" + p->name() + "' reads repartitioned(\"" +
                                in.name + "\") but no service writes repartition(\"" +
                                in.name + "\")");
        continue;
      }
      if (auto st = lookup(p->name(), in.name, "input topic"); !st) return st;
    }
  // A repartition read by a service that also reads user topics or tables is
  // created co-partitioned with them; otherwise like its writer's inputs.
  std::map<std::string, int> copartitioned;
  for (auto& p : protos) {
    int external = 0;
    for (auto& in : p->inputs())
      if (!in.internal) external = partitions[in.name];
    for (auto& t : p->tables())
      if (!t.global) external = partitions[t.topic];
    if (external > 0)
      for (auto& in : p->inputs())
        if (in.internal) copartitioned[in.name] = external;
  }
  for (size_t round = 0; round <= protos.size(); ++round)
    for (auto& [name, w] : writer) {
      int n = 0;
      for (auto& in : protos[w]->inputs()) {
        auto i = partitions.find(topic_of(in));
        if (i != partitions.end()) n = std::max(n, i->second);
      }
      if (copartitioned.count(name)) n = copartitioned[name];
      if (n > 0) partitions[repartition_topic(app, name)] = n;
    }
  for (auto& [name, w] : writer)
    if (!partitions.count(repartition_topic(app, name)))
      return make_error(errc::invalid_argument,
                        "repartition '" + name + "' is part of a cycle of repartitions");
  auto rf = static_cast<int>(cfg.get_int("replication.factor"));
  for (auto& [name, w] : writer) {
    auto t = repartition_topic(app, name);
    to_create.push_back({t, partitions[t], rf, {}});
  }
  for (auto& p : protos) {
    detail::service_info info;
    info.name = p->name();
    info.factory = nullptr;
    int max_parts = 1;
    for (auto& in : p->inputs()) {
      info.input_topics.push_back(topic_of(in));
      max_parts = std::max(max_parts, partitions[topic_of(in)]);
    }
    for (auto& t : p->tables()) {
      if (t.global) {
        // Several services may read one global table: one copy per node.
        auto same =
            std::find_if(global_tables.begin(), global_tables.end(),
                         [&](const global_decl& g) { return g.store == t.store; });
        if (same == global_tables.end()) {
          global_tables.push_back({t.topic, t.store});
        } else if (same->topic != t.topic) {
          return make_error(errc::invalid_config,
                            "service '" + p->name() + "' declares global table '" +
                                t.store + "' over topic '" + t.topic +
                                "', but another service declared it over '" +
                                same->topic + "'; give one of them another store name");
        }
        continue;
      }
      info.input_topics.push_back(t.topic);
      info.table_stores[t.topic] = t.store;
      max_parts = std::max(max_parts, partitions[t.topic]);
    }
    info.partitions = max_parts;
    // State is sharded by partition: every input of a stateful service must
    // have the same partition count, or one key's records would reach
    // different tasks.
    if (!p->stores().empty() || !info.table_stores.empty())
      for (auto& a : info.input_topics)
        for (auto& b : info.input_topics)
          if (partitions[a] != partitions[b])
            return make_error(
                errc::invalid_config,
                "service '" + p->name() + "' is not co-partitioned: topic '" + a +
                    "' has " + std::to_string(partitions[a]) + " partitions but topic '" +
                    b + "' has " + std::to_string(partitions[b]) +
                    " partitions; give them the same partition count, or re-key one side "
                    "through a "
                    "repartition topic (weft::rekey / repartitioned())");
    for (auto& d : p->stores()) {
      state::store_spec spec;
      spec.name = d.name;
      spec.type = d.type == store_decl::kind::kv       ? state::store_spec::kind::kv
                  : d.type == store_decl::kind::window ? state::store_spec::kind::window
                                                       : state::store_spec::kind::session;
      spec.retention_ms = d.retention_ms;
      info.stores.push_back(spec);
      std::map<std::string, std::string> topic_cfg{{"cleanup.policy", "compact"}};
      if (spec.type != state::store_spec::kind::kv) {
        // Windows expire: let Kafka delete what the store has dropped, a day late.
        topic_cfg["cleanup.policy"] = "compact,delete";
        topic_cfg["retention.ms"] = std::to_string(d.retention_ms + 86400000);
      }
      to_create.push_back(
          {state::changelog_topic(app, d.name), max_parts, rf, topic_cfg});
    }
    info.punctuate_ms = p->punctuate_interval_ms();
    for (auto& o : p->outputs()) {
      if (o.kind == output_kind::repartition) {
        info.output_topics.push_back(repartition_topic(app, o.name));
        continue;
      }
      auto n = admin.partition_count(o.name, timeout_ms);
      if (!n) {
        if (n.error().code() == errc::not_found)
          return make_error(errc::invalid_config,
                            "service '" + p->name() + "': output topic '" + o.name +
                                "' does not exist; create it or fix the topic name");
        return n.error();
      }
      info.output_topics.push_back(o.name);
    }
    info.policy = parse_policy(cfg.service_value(p->name(), "bad.record.policy"));
    if (info.policy == bad_record_policy::dead_letter) {
      info.dead_letter_topic = cfg.service_value(p->name(), "dead.letter.topic");
      if (info.dead_letter_topic.empty())
        info.dead_letter_topic = app + "-" + p->name() + "-dlq";
      to_create.push_back({info.dead_letter_topic, max_parts, rf, {}});
    }
    ctx.services.push_back(std::move(info));
  }
  for (size_t i = 0; i < factories.size(); ++i)
    ctx.services[i].factory = factories[i];
  return {};
}

status node::impl::compute_units(kafka::admin& admin, int timeout_ms) {
  for (auto& svc : ctx.services)
    for (auto& topic : svc.input_topics)
      if (!input_partitions.count(topic)) {
        auto n = admin.partition_count(topic, timeout_ms);
        if (!n) return n.error();
        input_partitions[topic] = *n;
      }
  // Union-find over tasks: two tasks reading one partition are one unit.
  std::vector<std::pair<size_t, int32_t>> tasks;
  std::map<std::pair<size_t, int32_t>, size_t> index;
  std::vector<size_t> parent;
  std::function<size_t(size_t)> root = [&](size_t i) {
    return parent[i] == i ? i : parent[i] = root(parent[i]);
  };
  std::map<topic_partition, size_t> first_reader;
  for (size_t s = 0; s < ctx.services.size(); ++s)
    for (auto& topic : ctx.services[s].input_topics)
      for (int32_t p = 0; p < input_partitions[topic]; ++p) {
        auto key = std::make_pair(s, p);
        if (!index.count(key)) {
          index[key] = tasks.size();
          tasks.push_back(key);
          parent.push_back(parent.size());
        }
        topic_partition tp{topic, partition_id{p}};
        auto f = first_reader.find(tp);
        if (f == first_reader.end())
          first_reader[tp] = index[key];
        else
          parent[root(index[key])] = root(f->second);
      }
  std::map<size_t, size_t> unit_of_root;
  for (size_t i = 0; i < tasks.size(); ++i) {
    auto r = root(i);
    if (!unit_of_root.count(r)) {
      unit_of_root[r] = units.size();
      units.emplace_back();
    }
    auto& u = units[unit_of_root[r]];
    u.tasks.push_back(tasks[i]);
    u.stateful |= !ctx.services[tasks[i].first].stores.empty();
    u.name += (u.name.empty() ? "" : "+") + ctx.services[tasks[i].first].name + "/" +
              std::to_string(tasks[i].second);
    unit_of[tasks[i]] = unit_of_root[r];
  }
  for (auto& [tp, t] : first_reader)
    units[unit_of[tasks[t]]].inputs.push_back(tp);
  for (size_t s = 0; s < ctx.services.size(); ++s)
    for (auto& spec : ctx.services[s].stores)
      service_of_store[spec.name] = s;
  return {};
}

std::string node::impl::topology() const {
  // Nodes of one application must agree on the units: same services, same
  // partition counts.
  std::string t;
  for (auto& u : units)
    t += u.name + ";";
  return std::to_string(std::hash<std::string>{}(t));
}

result<detail::assignment_plan>
node::impl::make_plan(const std::set<detail::task_key>* running) {
  detail::assignment_plan plan;
  std::map<std::pair<size_t, int32_t>, size_t> task_index;
  std::map<topic_partition, std::vector<size_t>> feeds;
  std::set<size_t> mine;
  {
    std::lock_guard<std::mutex> guard{own_mu};
    mine = owned;
  }
  for (size_t s = 0; s < ctx.services.size(); ++s) {
    for (auto& topic : ctx.services[s].input_topics) {
      for (int32_t p = 0; p < input_partitions[topic]; ++p) {
        auto key = std::make_pair(s, p);
        if (!mine.count(unit_of[key])) continue;
        if (running && running->count(key)) continue;
        if (!task_index.count(key)) {
          task_index[key] = plan.tasks.size();
          plan.tasks.push_back({s, p});
        }
        feeds[{topic, partition_id{p}}].push_back(task_index[key]);
      }
    }
  }
  std::vector<topic_partition> tps;
  for (auto& [tp, tasks] : feeds) {
    tps.push_back(tp);
    auto q = ctx.consumer->take_queue(tp);
    if (!q) return make_error(errc::internal, "no queue for " + to_string(tp));
    plan.partitions.push_back({tp, std::move(q), tasks});
  }
  // Records below the committed offsets are done: a fetch left over from an
  // earlier assignment of a partition (librdkafka delivered one twice after
  // an incremental assignment was replaced) must not hand them on. Without
  // an answer the queues still drop any offset delivered twice. Short: a
  // roll-back or a grow asks this on the supervisor's scheduler thread.
  if (!tps.empty()) {
    if (auto committed = ctx.consumer->committed(tps, 2000); committed) {
      for (size_t i = 0; i < tps.size(); ++i)
        if ((*committed)[i] >= 0) plan.partitions[i].queue->set_floor((*committed)[i]);
    } else {
      log::debug("committed offsets for the assignment: {}", committed.error().message());
    }
  }
  // Units share no partition: the added tasks' partitions are new to the
  // consumer, and the running ones' go on where they are.
  if (running) {
    if (auto s = ctx.consumer->incremental_assign(tps); !s) return s;
    return plan;
  }
  if (auto s = ctx.consumer->assign(tps); !s) return s;
  // A partition paused by the previous partition actor's flow control stays
  // paused in librdkafka across the re-assignment: the new partition actor
  // starts with full credit and would never resume it. (Only those: resuming
  // a partition that was never paused right after assign() is not a no-op.)
  std::set<topic_partition> paused;
  {
    std::lock_guard<std::mutex> guard{ctx.paused_mu};
    paused.swap(ctx.paused);
  }
  for (auto& tp : paused)
    if (auto s = ctx.consumer->resume(tp); !s) return s;
  return plan;
}

status node::impl::make_producer() {
  auto* self = this;
  auto pprops = ctx.cfg.kafka_properties(client_kind::producer);
  // Partition keys like Kafka's Java client, so Java and weft services agree.
  pprops.emplace("partitioner", "murmur2_random");
  if (ctx.exactly_once) pprops["transactional.id"] = txn_id;
  auto producer = kafka::producer::create(
      std::move(pprops),
      [](void* opaque, const status& st, int64_t offset) {
        if (st.ok()) {
          detail::on_delivered(opaque, nullptr, offset);
        } else {
          auto m = st.message();
          detail::on_delivered(opaque, &m, -1);
        }
      },
      [self](const status& st) {
        if (st.code() == errc::kafka_fatal) {
          if (self->ctx.on_fenced)
            self->ctx.on_fenced(st.message());
          else
            self->on_fatal(st.message());
        } else {
          log::warn("{}", st.message());
        }
      });
  if (!producer) return producer.error();
  ctx.producer = std::move(*producer);
  return {};
}

status node::impl::begin_first_transaction(int timeout_ms) {
  // Fence any earlier incarnation with our transactional.id (aborting its
  // open transaction) before reading committed offsets or restoring
  // changelogs, so neither can change under us.
  if (auto st = ctx.producer->init_transactions(timeout_ms); !st)
    return make_error(st.code(), "exactly_once: initialising transactional.id '" +
                                     txn_id + "': " + st.message());
  if (auto st = ctx.producer->begin_transaction(); !st) return st;
  log::info("exactly_once: transactional.id {}", txn_id);
  return {};
}

void node::impl::spawn_supervisor_for_owned() {
  auto* self = this;
  auto plan = make_plan();
  if (!plan) return on_fatal("assigning input partitions: " + plan.error().message());
  supervisor = detail::spawn_supervisor(
      *sys, &ctx, std::move(*plan),
      [self](const std::string& why) { self->on_fatal(why); },
      [self]() -> result<detail::assignment_plan> {
        // Roll-back: unassign (dropping what was fetched) and assign again
        // at the committed offsets.
        if (auto s = self->ctx.consumer->assign_at({}); !s) return s;
        return self->make_plan();
      },
      [self](const std::set<detail::task_key>& running) {
        return self->make_plan(&running);
      });
}

status node::impl::stop_supervisor(bool graceful, bool final_stop) {
  auto timeout = std::chrono::milliseconds(ctx.cfg.get_int("shutdown.timeout.ms"));
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto left = [&] {
    auto d = deadline - std::chrono::steady_clock::now();
    return std::max(std::chrono::milliseconds(100),
                    std::chrono::duration_cast<std::chrono::milliseconds>(d));
  };
  status result;
  if (supervisor) {
    caf::scoped_actor self{*sys};
    if (graceful) {
      // 1. Stop fetching and wait until in-flight records are handled.
      self->request(supervisor, left(), detail::stop_atom::value)
          .receive([] {},
                   [&](caf::error& e) {
                     result = make_error(errc::timed_out,
                                         "drain did not finish: " + sys->render(e));
                     log::warn("{}", result.message());
                   });
      // Exactly-once: the supervisor's final epoch committed everything (or
      // the node failed, and nothing after the last committed epoch may
      // commit).
      if (!ctx.exactly_once) {
        // 2. Flush the stores' caches into their changelogs.
        self->request(supervisor, left(), detail::final_atom::value, true)
            .receive(
                [](const detail::partition_offsets&) {},
                [&](caf::error& e) { log::warn("flushing state: {}", sys->render(e)); });
        // 3. Wait until Kafka acknowledged everything produced so far.
        if (auto s = ctx.producer->flush(static_cast<int>(left().count())); !s)
          log::warn("{}", s.message());
        // 4. Commit what is now safe, synchronously.
        self->request(supervisor, left(), detail::final_atom::value, false)
            .receive(
                [&](const detail::partition_offsets& offs) {
                  if (auto s = ctx.consumer->commit_sync(
                          offs, static_cast<int>(left().count()));
                      !s) {
                    log::warn("final commit failed: {}", s.message());
                  } else if (!offs.empty()) {
                    ctx.counters.commits.fetch_add(1);
                    log::info("committed final offsets of {} partitions", offs.size());
                  }
                },
                [&](caf::error& e) { log::warn("final offsets: {}", sys->render(e)); });
      }
    }
    if (final_stop) {
      // 5. No delivery callback may touch task state after this point, and
      // the restore thread lets go of the shards.
      ctx.producer->stop_polling();
      restorer.reset();
      ctx.restorer = nullptr;
    }
    self->monitor(supervisor);
    self->send_exit(supervisor, caf::exit_reason::user_shutdown);
    self->receive([](caf::down_msg&) {},
                  caf::after(left()) >> [] { log::warn("the supervisor did not stop"); });
  }
  supervisor = nullptr;
  // Its children exit after it: wait until their shards are closed.
  while (ctx.live_actors.load(std::memory_order_acquire) > 0 &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (ctx.live_actors.load() > 0)
    return make_error(errc::timed_out, "tasks did not stop within shutdown.timeout.ms");
  return result;
}

void node::impl::rebalance_loop() {
  while (true) {
    std::shared_ptr<const cluster::assignment> a;
    std::map<size_t, std::map<std::string, int64_t>> released;
    bool was_fenced = false;
    std::string why;
    {
      std::unique_lock<std::mutex> lock{rb_mu};
      rb_cv.wait(lock, [&] { return rb_stop || rb_dirty; });
      if (rb_stop) return;
      rb_dirty = false;
      a = target;
      std::set<size_t> running;
      {
        std::lock_guard<std::mutex> guard{own_mu};
        running = owned;
      }
      // Every generation in order: each handoff to this node counts, even
      // one a later generation took back before it completed.
      for (auto& g : targets)
        for (size_t u = 0; u < g->active.size(); ++u)
          if (g->active[u] == node_id && !g->previous[u].empty() &&
              g->previous[u] != node_id && !running.count(u)) {
            auto h = handoff_from.find(u);
            if (h == handoff_from.end() || h->second.first != g->previous[u])
              handoff_from[u] = {g->previous[u], g->generation};
          }
      targets.clear();
      released = released_from;
      was_fenced = fenced;
      why = fenced_why;
    }
    if (was_fenced) {
      rejoin_after_fencing(why);
      std::lock_guard<std::mutex> guard{rb_mu};
      fenced = false;
      continue;
    }
    if (a) apply_assignment(*a, released);
  }
}

void node::impl::apply_assignment(
    const cluster::assignment& a,
    const std::map<size_t, std::map<std::string, int64_t>>& released) {
  if (a.active.size() != units.size()) {
    log::error("cluster: generation {} has {} units, this node {}: is another "
               "version of the application running?",
               a.generation, a.active.size(), units.size());
    return;
  }
  // Handoffs done: the old owner released the unit as of the handoff's
  // generation or later, or it is no member any more (the leader fenced it
  // before publishing a generation without it).
  for (auto h = handoff_from.begin(); h != handoff_from.end();) {
    auto& [from, since] = h->second;
    auto r = released.find(h->first);
    bool done = false;
    if (r != released.end()) {
      auto f = r->second.find(from);
      done = f != r->second.end() && f->second >= since;
    }
    done |= std::find(a.members.begin(), a.members.end(), from) == a.members.end();
    h = done ? handoff_from.erase(h) : std::next(h);
  }
  std::set<size_t> current;
  {
    std::lock_guard<std::mutex> guard{own_mu};
    current = owned;
  }
  std::set<size_t> desired;
  std::set<size_t> standby_units;
  for (size_t u = 0; u < units.size(); ++u) {
    bool mine = a.active[u] == node_id;
    if (mine) {
      auto h = handoff_from.find(u);
      std::string prev = h == handoff_from.end() ? "" : h->second.first;
      if (current.count(u) || prev.empty()) {
        desired.insert(u);
      } else {
        // A handoff: the old owner commits and releases it first; its
        // standby here keeps tailing meanwhile.
        if (waiting_logged.insert(u).second)
          log::info(
              "cluster: generation {}: unit {} ({}) waits for node {} to release it",
              a.generation, u, units[u].name, prev);
        if (units[u].stateful) standby_units.insert(u);
      }
    }
    if (!mine && std::find(a.standbys[u].begin(), a.standbys[u].end(), node_id) !=
                     a.standbys[u].end())
      standby_units.insert(u);
  }
  auto to_keys = [&](const std::set<size_t>& us) {
    std::vector<std::pair<size_t, int32_t>> keys;
    for (auto u : us)
      for (auto& t : units[u].tasks)
        if (!ctx.services[t.first].stores.empty()) keys.push_back(t);
    return keys;
  };
  if (desired != current) {
    auto start = std::chrono::steady_clock::now();
    std::vector<size_t> lost;
    for (auto u : current)
      if (!desired.count(u)) {
        lost.push_back(u);
        log::info("cluster: generation {}: unit {} ({}) moves from here to {}",
                  a.generation, u, units[u].name,
                  a.active[u].empty() ? "nobody" : a.active[u]);
      }
    for (auto u : desired)
      if (!current.count(u)) {
        waiting_logged.erase(u);
        auto prev = a.previous[u];
        log::info("cluster: generation {}: unit {} ({}) starts here{}", a.generation, u,
                  units[u].name,
                  prev.empty() || prev == node_id ? "" : " (handed off by " + prev + ")");
      }
    if (supervisor && lost.empty()) {
      // Only gains: the running tasks go on; the supervisor adds the new
      // units' tasks (their standby shards close here first).
      std::set<size_t> keep;
      for (auto u : standby_units)
        if (!desired.count(u)) keep.insert(u);
      standbys->set(to_keys(keep));
      {
        std::lock_guard<std::mutex> guard{own_mu};
        owned = desired;
      }
      caf::anon_send(supervisor, detail::grow_atom::value);
      release_idle(a);
      log::info("cluster: generation {} applied in {} ms without a restart: {} units "
                "active, {} standby here",
                a.generation,
                std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::steady_clock::now() - start)
                    .count(),
                desired.size(), keep.size());
      return;
    }
    if (auto s = stop_supervisor(true, false); !s) {
      log::warn("cluster: stopping the tasks for generation {}: {}", a.generation,
                s.message());
      // The units could not be released cleanly: leave them to the fencing
      // the cluster does for unresponsive nodes.
      std::lock_guard<std::mutex> guard{rb_mu};
      if (!fenced) {
        fenced = true;
        fenced_why = s.message();
        wake_rebalancer();
      }
      return;
    }
    if (ctx.exactly_once) {
      // The final epoch committed; a roll-back during the stop may have left
      // an empty transaction open.
      (void)ctx.producer->abort_transaction(5000);
      if (auto s = ctx.producer->begin_transaction(); !s) {
        if (ctx.on_fenced) ctx.on_fenced("beginning a transaction: " + s.message());
        return;
      }
    }
    // Gained units' standby shards close here, before their tasks open them.
    std::set<size_t> keep;
    for (auto u : standby_units)
      if (!desired.count(u)) keep.insert(u);
    standbys->set(to_keys(keep));
    {
      std::lock_guard<std::mutex> guard{own_mu};
      owned = desired;
    }
    if (auto s = ctx.consumer->assign_at({}); !s) log::warn("{}", s.message());
    if (!desired.empty()) spawn_supervisor_for_owned();
    release_idle(a);
    log::info("cluster: generation {} applied in {} ms: {} units active, {} standby here",
              a.generation,
              std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - start)
                  .count(),
              desired.size(), keep.size());
  } else {
    standbys->set(to_keys(standby_units));
    release_idle(a);
  }
}

void node::impl::release_idle(const cluster::assignment& a) {
  // Tell everyone which units this node is clear of — it does not run them
  // and waits for no release of them — so a node waiting to take one over
  // may start it. Idempotent; sent with every generation applied.
  std::set<size_t> running;
  {
    std::lock_guard<std::mutex> guard{own_mu};
    running = owned;
  }
  std::vector<size_t> clear;
  for (size_t u = 0; u < a.active.size(); ++u)
    if (a.active[u] != node_id && !running.count(u) && !handoff_from.count(u))
      clear.push_back(u);
  cluster->released(clear, a.generation);
}

void node::impl::rejoin_after_fencing(const std::string& why) {
  log::warn("cluster: this node was fenced ({}); it drops its tasks, commits nothing "
            "more and rejoins",
            why);
  // No delivery report may reach a task from here on; the fenced producer's
  // records never commit.
  ctx.producer->stop_polling();
  if (auto s = stop_supervisor(false, false); !s) log::warn("{}", s.message());
  {
    std::lock_guard<std::mutex> guard{own_mu};
    owned.clear();
  }
  (void)ctx.consumer->assign_at({});
  standbys->set({});
  handoff_from.clear();
  ctx.producer.reset();
  if (auto s = make_producer(); !s)
    return on_fatal("re-creating the producer: " + s.message());
  auto timeout = static_cast<int>(ctx.cfg.get_int("startup.timeout.ms"));
  if (ctx.exactly_once)
    if (auto s = begin_first_transaction(timeout); !s)
      return on_fatal("rejoining: " + s.message());
  cluster->rejoin();
}

std::string node::impl::status_json() {
  nlohmann::json active = nlohmann::json::object();
  nlohmann::json standby = nlohmann::json::object();
  std::set<size_t> mine;
  {
    std::lock_guard<std::mutex> guard{own_mu};
    mine = owned;
  }
  for (auto u : mine) {
    int64_t lag = 0;
    for (auto& tp : units[u].inputs) {
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
    active[std::to_string(u)] = lag;
  }
  if (standbys) {
    std::map<size_t, int64_t> lags;
    for (auto& [key, lag] : standbys->lags()) {
      auto u = unit_of.at(key);
      if (lag < 0 || (lags.count(u) && lags[u] < 0))
        lags[u] = -1;
      else
        lags[u] += lag;
    }
    for (auto& [u, lag] : lags)
      standby[std::to_string(u)] = lag;
  }
  return nlohmann::json{{"active", active}, {"standby", standby}}.dump();
}

namespace {

detail::query_answer answer_of(const result<std::optional<std::string>>& r) {
  detail::query_answer a;
  if (!r) {
    a.code = static_cast<int32_t>(r.error().code());
    a.error = r.error().message();
  } else if (*r) {
    a.found = true;
    a.value = **r;
  }
  return a;
}

result<std::optional<std::string>> result_of(detail::query_answer a) {
  if (a.code != 0) return make_error(static_cast<errc>(a.code), std::move(a.error));
  if (!a.found) return std::optional<std::string>{};
  return std::optional<std::string>{std::move(a.value)};
}

} // namespace

detail::query_answer node::impl::local_query(const std::string& store,
                                             const std::string& key, int64_t max_lag,
                                             bool remote) {
  detail::query_answer out;
  int parts = ctx.shards.partitions(store);
  auto s = service_of_store.find(store);
  if (parts == 0 || s == service_of_store.end()) {
    out.code = static_cast<int32_t>(errc::not_found);
    out.error = "no state store named '" + store + "' in this application";
    return out;
  }
  auto p = partition_for(key, parts);
  auto u = unit_of.at({s->second, p});
  auto a = cluster ? cluster->current() : nullptr;
  bool active_here = false;
  {
    std::lock_guard<std::mutex> guard{own_mu};
    active_here = owned.count(u) && a && a->active[u] == node_id;
  }
  if (active_here) {
    return answer_of(ctx.shards.with(
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
  if (max_lag >= 0 && standbys) {
    auto r = standbys->get(store, p, key, max_lag);
    if (r || r.error().code() != errc::not_found) return answer_of(r);
  }
  out.code = static_cast<int32_t>(errc::state_not_ready);
  out.error =
      "store '" + store + "' partition " + std::to_string(p) +
      (remote ? " is not active on node " + node_id : " has no active owner yet") +
      " (it is moving); retry shortly";
  return out;
}

result<std::optional<std::string>>
node::impl::query(const std::string& store, const std::string& key, int64_t max_lag) {
  auto g = ctx.global_stores.find(store);
  if (g != ctx.global_stores.end()) return g->second->get(key);
  if (!cluster) return make_error(errc::internal, "query routing without a cluster");
  int parts = ctx.shards.partitions(store);
  auto s = service_of_store.find(store);
  if (parts == 0 || s == service_of_store.end())
    return make_error(errc::not_found,
                      "no state store named '" + store + "' in this application");
  auto p = partition_for(key, parts);
  auto u = unit_of.at({s->second, p});
  auto a = cluster->current();
  if (!a || u >= a->active.size() || a->active[u].empty())
    return make_error(errc::state_not_ready,
                      "the cluster has not assigned store '" + store + "' partition " +
                          std::to_string(p) + " yet; retry shortly");
  auto& owner = a->active[u];
  if (owner == node_id) return result_of(local_query(store, key, max_lag, false));
  if (max_lag >= 0 && standbys) {
    auto r = standbys->get(store, p, key, max_lag);
    if (r || r.error().code() != errc::not_found) return r;
  }
  return result_of(
      cluster->remote_get(owner, store, key, -1,
                          static_cast<int>(ctx.cfg.get_int("cluster.timeout.ms")) * 2));
}

status node::start() {
  auto& cfg = impl_->ctx.cfg;
  log::setup(cfg.get_string("log.level"));
  {
    std::lock_guard<std::mutex> guard{impl_->mu};
    if (impl_->started) return make_error(errc::invalid_argument, "node already started");
  }
  if (impl_->factories.empty())
    return make_error(errc::invalid_argument,
                      "no services: call node::add() before start()");
  auto timeout = static_cast<int>(cfg.get_int("startup.timeout.ms"));
  impl_->ctx.exactly_once = cfg.get_string("processing.guarantee") == "exactly_once";
  impl_->clustered = cfg.get_bool("cluster.enabled");
  auto node_id = cfg.get_string("node.id");
  if (node_id.empty() && impl_->ctx.exactly_once) {
    auto id =
        persistent_node_id(cfg.get_string("state.dir") + "/" + impl_->ctx.application_id);
    if (!id) return id.error();
    node_id = *id;
  }
  if (node_id.empty()) node_id = default_node_id();
  impl_->node_id = node_id;
  log::info("weft node {} of application '{}' starting, brokers {}", node_id,
            impl_->ctx.application_id, cfg.get_string("bootstrap.servers"));

  auto admin = kafka::admin::create(cfg.kafka_properties(client_kind::admin));
  if (!admin) return admin.error();
  if (auto s = (*admin)->wait_for_brokers(timeout); !s)
    return make_error(errc::kafka,
                      "cannot reach Kafka at " + cfg.get_string("bootstrap.servers") +
                          " (" + s.message() +
                          "): start the local broker with `tools/weft-broker "
                          "start`, or set bootstrap.servers");
  std::vector<kafka::new_topic> to_create;
  if (auto s = impl_->resolve_services(**admin, timeout, to_create); !s) return s;
  for (auto& svc : impl_->ctx.services)
    for (auto& spec : svc.stores)
      impl_->ctx.shards.declare(spec.name, svc.partitions);
  if (auto s = (*admin)->ensure_topics(to_create, timeout); !s) return s;
  if (auto s = impl_->compute_units(**admin, timeout); !s) return s;

  auto* self = impl_.get();
  if (impl_->ctx.exactly_once) impl_->txn_id = impl_->ctx.application_id + "-" + node_id;
  if (auto s = impl_->make_producer(); !s) return s;

  auto cprops = cfg.kafka_properties(client_kind::consumer);
  cprops["group.id"] = impl_->ctx.application_id;
  // Exactly-once reads only committed transactions (its own upstream
  // services' included); offsets are fetched with require_stable.
  if (impl_->ctx.exactly_once) cprops["isolation.level"] = "read_committed";
  // Bound librdkafka's prefetch: fetch.buffer.max.bytes is shared by every
  // input partition of the node (the credit scheme bounds what is past it).
  {
    size_t parts = 0;
    for (auto& svc : impl_->ctx.services)
      parts += svc.input_topics.size() * svc.partitions;
    auto per = static_cast<size_t>(cfg.get_int("fetch.buffer.max.bytes")) /
               std::max<size_t>(parts, 1) / 1024;
    cprops.emplace("queued.max.messages.kbytes",
                   std::to_string(std::clamp<size_t>(per, 1024, 65536)));
  }
  auto consumer = kafka::consumer::create(std::move(cprops), [self](const status& st) {
    if (st.code() == errc::kafka_fatal)
      self->on_fatal(st.message());
    else
      log::warn("{}", st.message());
  });
  if (!consumer) return consumer.error();
  impl_->ctx.consumer = std::move(*consumer);

  // State: one store factory (shared RocksDB cache) and one restore thread.
  impl_->ctx.state_dir = cfg.get_string("state.dir");
  impl_->ctx.stores = state::make_rocksdb_factory(
      static_cast<size_t>(cfg.get_int("statestore.cache.max.bytes")),
      static_cast<size_t>(cfg.get_int("rocksdb.write.buffer.max.bytes")));
  auto rprops = cfg.kafka_properties(client_kind::consumer);
  rprops["group.id"] = impl_->ctx.application_id + "-restore";
  // Changelogs of exactly-once nodes hold aborted epochs: never restore them.
  rprops["isolation.level"] = "read_committed";
  // Restoring reads one partition at a time as fast as it can: large fetches
  // and a deep prefetch (librdkafka's defaults suit many partitions at once).
  rprops.emplace("max.partition.fetch.bytes", "16777216");
  rprops.emplace("fetch.max.bytes", "67108864");
  rprops.emplace("queued.min.messages", "500000");
  // At a changelog's end a fetch would wait fetch.wait.max.ms (500) for data
  // that never comes (with exactly_once the end is a commit marker, reached
  // only by one more fetch): every restore round cost half a second.
  rprops.emplace("fetch.wait.max.ms", "10");
  impl_->restorer = std::make_unique<detail::restorer>(rprops, 10000, timeout);
  impl_->ctx.restorer = impl_->restorer.get();
  for (auto& g : impl_->global_tables) {
    auto dir =
        impl_->ctx.state_dir + "/" + impl_->ctx.application_id + "/global/" + g.store;
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    std::filesystem::create_directories(dir, ec);
    if (ec) return make_error(errc::io, "cannot create '" + dir + "': " + ec.message());
    state::store_spec spec{g.store, state::store_spec::kind::kv, 0, false};
    auto store = impl_->ctx.stores->kv(dir, spec, nullptr, nullptr);
    if (!store) return store.error();
    auto* raw = store->get();
    impl_->ctx.global_stores[g.store] = std::move(*store);
    auto reader = std::make_unique<detail::global_table>(g.topic, raw);
    auto gprops = cfg.kafka_properties(client_kind::consumer);
    gprops.emplace("isolation.level", "read_committed");
    if (auto s = reader->start(std::move(gprops), timeout); !s) return s;
    impl_->global_readers.push_back(std::move(reader));
  }

  if (impl_->ctx.exactly_once)
    if (auto st = impl_->begin_first_transaction(timeout); !st) return st;

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
  if (impl_->clustered) {
    impl_->caf_cfg->load<caf::io::middleman>();
    // Without both, a frozen peer is never noticed (FACTS.md).
    impl_->caf_cfg->set(
        "middleman.heartbeat-interval",
        caf::timespan{std::chrono::milliseconds(cfg.get_int("cluster.heartbeat.ms"))});
    impl_->caf_cfg->set(
        "middleman.connection-timeout",
        caf::timespan{std::chrono::milliseconds(cfg.get_int("cluster.timeout.ms"))});
  }
  impl_->sys = std::make_unique<caf::actor_system>(*impl_->caf_cfg);

  if (!impl_->clustered) {
    for (size_t u = 0; u < impl_->units.size(); ++u)
      impl_->owned.insert(u);
    impl_->spawn_supervisor_for_owned();
    log::info("{} services, {} units of work, all on this node (cluster.enabled=false)",
              impl_->ctx.services.size(), impl_->units.size());
  } else {
    rprops["group.id"] = impl_->ctx.application_id + "-standby";
    impl_->standbys =
        std::make_unique<detail::standby_manager>(&impl_->ctx, rprops, timeout);
    auto http_port = cfg.get_int("http.port");
    std::string http_endpoint;
    if (http_port >= 0) {
      detail::http_endpoint::handlers h;
      h.get = [self](const std::string& store, const std::string& key, int64_t max_lag) {
        return self->query(store, key, max_lag);
      };
      h.cluster = [self] { return self->cluster ? self->cluster->view_json() : "{}"; };
      h.metrics = [this] {
        auto m = metrics();
        return nlohmann::json{{"processed", m.processed},
                              {"produced", m.produced},
                              {"bad_records", m.bad_records},
                              {"commits", m.commits},
                              {"epochs_committed", m.epochs_committed},
                              {"epochs_aborted", m.epochs_aborted}}
            .dump();
      };
      auto ep = detail::http_endpoint::start(cfg.get_string("http.host"),
                                             static_cast<int>(http_port), std::move(h));
      if (!ep) return ep.error();
      impl_->http = std::move(*ep);
      http_endpoint =
          cfg.get_string("http.host") + ":" + std::to_string(impl_->http->port());
      log::info("HTTP endpoint on {}", http_endpoint);
    }
    detail::member_info me;
    me.id = node_id;
    me.host = cfg.get_string("cluster.host");
    me.http = http_endpoint;
    me.topology = impl_->topology();
    std::vector<bool> stateful;
    std::vector<std::string> names;
    for (auto& u : impl_->units) {
      stateful.push_back(u.stateful);
      names.push_back(u.name);
    }
    detail::cluster_hooks hooks;
    hooks.on_assignment = [self](std::shared_ptr<const cluster::assignment> a) {
      std::lock_guard<std::mutex> guard{self->rb_mu};
      self->targets.push_back(a);
      self->target = std::move(a);
      self->wake_rebalancer();
    };
    hooks.on_released = [self](size_t unit, const std::string& from, int64_t gen) {
      std::lock_guard<std::mutex> guard{self->rb_mu};
      auto& g = self->released_from[unit][from];
      if (gen <= g) return;
      g = gen;
      self->wake_rebalancer();
    };
    hooks.on_member_lost = [](const std::string&) {};
    hooks.on_frozen = [self] {
      std::lock_guard<std::mutex> guard{self->rb_mu};
      if (self->fenced) return;
      self->fenced = true;
      self->fenced_why = "frozen longer than cluster.timeout.ms";
      self->wake_rebalancer();
    };
    hooks.status_json = [self] { return self->status_json(); };
    hooks.standby_lags = [self] {
      std::map<size_t, int64_t> out;
      for (auto& [key, lag] : self->standbys->lags()) {
        auto u = self->unit_of.at(key);
        if (lag < 0) {
          out[u] = -1;
        } else if (!out.count(u) || out[u] >= 0) {
          out[u] += lag;
        }
      }
      return out;
    };
    hooks.local_query = [self](const std::string& store, const std::string& key,
                               int64_t max_lag) {
      return self->local_query(store, key, max_lag, true);
    };
    impl_->ctx.on_fenced = [self](const std::string& why) {
      std::lock_guard<std::mutex> guard{self->rb_mu};
      if (self->fenced) return;
      self->fenced = true;
      self->fenced_why = why;
      self->wake_rebalancer();
    };
    impl_->cluster = std::make_unique<detail::cluster_member>(
        &impl_->ctx, std::move(me), std::move(stateful), std::move(names),
        std::move(hooks));
    impl_->rebalancer = std::thread{[self] { self->rebalance_loop(); }};
    if (auto s = impl_->cluster->start(*impl_->sys, timeout); !s) {
      {
        std::lock_guard<std::mutex> guard{impl_->rb_mu};
        impl_->rb_stop = true;
        impl_->rb_cv.notify_all();
      }
      impl_->rebalancer.join();
      return s;
    }
    log::info("{} services, {} units of work; joining the cluster of '{}'",
              impl_->ctx.services.size(), impl_->units.size(), impl_->ctx.application_id);
  }

  impl_->poller = std::thread{[self] {
    while (!self->poll_stop.load(std::memory_order_relaxed))
      self->ctx.consumer->poll_events(100);
  }};
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
  if (rebalancer.joinable()) {
    {
      std::lock_guard<std::mutex> guard{rb_mu};
      rb_stop = true;
      rb_cv.notify_all();
    }
    rebalancer.join();
  }
  status result;
  http.reset(); // no query may reach the node's parts while they go
  if (auto s = stop_supervisor(true, true); !s) log::warn("stopping: {}", s.message());
  if (cluster) {
    cluster->leave(static_cast<int>(ctx.cfg.get_int("cluster.timeout.ms")) * 2);
    cluster.reset();
  }
  standbys.reset();
  http.reset();
  if (restorer) {
    ctx.producer->stop_polling();
    restorer.reset();
    ctx.restorer = nullptr;
  }
  sys->await_all_actors_done();
  poll_stop = true;
  if (poller.joinable()) poller.join();
  ctx.producer.reset();
  sys.reset();
  global_readers.clear();
  ctx.global_stores.clear();
  if (auto s = ctx.consumer->close(); !s) log::warn("{}", s.message());
  ctx.consumer.reset();
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

int node::run() {
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
  node n{std::move(*cfg)};
  setup(n);
  return n.run();
}

} // namespace weft
