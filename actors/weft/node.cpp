#include "weft/node.hpp"

#include <caf/all.hpp>

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
#include "weft/actors/messages.hpp"
#include "weft/actors/node_context.hpp"
#include "weft/actors/restorer.hpp"
#include "weft/actors/supervisor.hpp"
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

  /// Single node: this node owns every partition of every input (the plan
  /// the cluster leader will compute for a one-member cluster). Takes each
  /// partition's queue and assigns the partitions at their committed offsets.
  /// Partition counts come from `admin` the first time, then from memory.
  result<detail::assignment_plan> make_plan(kafka::admin* admin, int timeout_ms);
  std::map<std::string, int> input_partitions;
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
                                             std::string_view key) const {
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
  for (int32_t p = 0; p < parts; ++p)
    if (!impl_->ctx.shards.with(store, p,
                                [](state::shard* sh, int) { return sh && sh->ready(); }))
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
  for (int32_t p = 0; p < parts; ++p) {
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
    if (p->inputs().empty())
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

result<detail::assignment_plan> node::impl::make_plan(kafka::admin* admin,
                                                      int timeout_ms) {
  detail::assignment_plan plan;
  std::map<std::pair<size_t, int32_t>, size_t> task_index;
  std::map<topic_partition, std::vector<size_t>> feeds;
  for (size_t s = 0; s < ctx.services.size(); ++s) {
    for (auto& topic : ctx.services[s].input_topics) {
      if (!input_partitions.count(topic)) {
        if (!admin) return make_error(errc::internal, "unknown input topic " + topic);
        auto n = admin->partition_count(topic, timeout_ms);
        if (!n) return n.error();
        input_partitions[topic] = *n;
      }
      for (int32_t p = 0; p < input_partitions[topic]; ++p) {
        auto key = std::make_pair(s, p);
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
  if (auto s = ctx.consumer->assign(tps); !s) return s;
  return plan;
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
  auto node_id = cfg.get_string("node.id");
  if (node_id.empty() && impl_->ctx.exactly_once) {
    auto id =
        persistent_node_id(cfg.get_string("state.dir") + "/" + impl_->ctx.application_id);
    if (!id) return id.error();
    node_id = *id;
  }
  if (node_id.empty()) node_id = default_node_id();
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

  auto* self = impl_.get();
  auto pprops = cfg.kafka_properties(client_kind::producer);
  // Partition keys like Kafka's Java client, so Java and weft services agree.
  pprops.emplace("partitioner", "murmur2_random");
  std::string txn_id;
  if (impl_->ctx.exactly_once) {
    txn_id = impl_->ctx.application_id + "-" + node_id;
    pprops["transactional.id"] = txn_id;
  }
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
        if (st.code() == errc::kafka_fatal)
          self->on_fatal(st.message());
        else
          log::warn("{}", st.message());
      });
  if (!producer) return producer.error();
  impl_->ctx.producer = std::move(*producer);

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
  impl_->restorer = std::make_unique<detail::restorer>(std::move(rprops), 10000, timeout);
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

  // Exactly-once: fence any earlier incarnation with our transactional.id
  // (aborting its open transaction) before reading committed offsets or
  // restoring changelogs, so neither can change under us.
  if (impl_->ctx.exactly_once) {
    if (auto st = impl_->ctx.producer->init_transactions(timeout); !st)
      return make_error(st.code(), "exactly_once: initialising transactional.id '" +
                                       txn_id + "': " + st.message());
    if (auto st = impl_->ctx.producer->begin_transaction(); !st) return st;
    log::info("exactly_once: transactional.id {}", txn_id);
  }

  auto plan = impl_->make_plan(admin->get(), timeout);
  if (!plan) return plan.error();
  log::info("{} services, {} tasks over {} input partitions", impl_->ctx.services.size(),
            plan->tasks.size(), plan->partitions.size());

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
  impl_->sys = std::make_unique<caf::actor_system>(*impl_->caf_cfg);
  impl_->supervisor = detail::spawn_supervisor(
      *impl_->sys, &impl_->ctx, std::move(*plan),
      [self](const std::string& why) { self->on_fatal(why); },
      [self]() -> result<detail::assignment_plan> {
        // Roll-back: unassign (dropping what was fetched) and assign again
        // at the committed offsets.
        if (auto s = self->ctx.consumer->assign_at({}); !s) return s;
        return self->make_plan(nullptr, 0);
      });

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
  auto timeout = std::chrono::milliseconds(ctx.cfg.get_int("shutdown.timeout.ms"));
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto left = [&] {
    auto d = deadline - std::chrono::steady_clock::now();
    return std::max(std::chrono::milliseconds(100),
                    std::chrono::duration_cast<std::chrono::milliseconds>(d));
  };
  status result;
  {
    caf::scoped_actor self{*sys};
    // 1. Stop fetching and wait until in-flight records are handled.
    self->request(supervisor, left(), detail::stop_atom::value)
        .receive([] {},
                 [&](caf::error& e) {
                   log::warn("drain did not finish: {}", sys->render(e));
                 });
    // Exactly-once: the supervisor's final epoch committed everything (or the
    // node failed, and nothing after the last committed epoch may commit).
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
                if (auto s =
                        ctx.consumer->commit_sync(offs, static_cast<int>(left().count()));
                    !s) {
                  log::warn("final commit failed: {}", s.message());
                } else if (!offs.empty()) {
                  ctx.counters.commits.fetch_add(1);
                  log::info("committed final offsets of {} partitions", offs.size());
                }
              },
              [&](caf::error& e) { log::warn("final offsets: {}", sys->render(e)); });
    }
    // 5. No delivery callback may touch task state after this point, and the
    // restore thread lets go of the shards.
    ctx.producer->stop_polling();
    restorer.reset();
    ctx.restorer = nullptr;
    self->send_exit(supervisor, caf::exit_reason::user_shutdown);
  }
  supervisor = nullptr;
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
