#include "weft/topology.hpp"

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <set>

#include "weft/services/describe.hpp"
#include "weft/services/partitioner.hpp"
#include "weft/state/shard.hpp"

namespace weft::detail {

namespace {

bad_record_policy parse_policy(const std::string& s) {
  if (s == "skip") return bad_record_policy::skip;
  if (s == "dead_letter") return bad_record_policy::dead_letter;
  if (s == "park") return bad_record_policy::park;
  return bad_record_policy::fail;
}

} // namespace

std::string topology::fingerprint() const {
  std::string t;
  for (auto& u : units)
    t += u.name + ";";
  return std::to_string(std::hash<std::string>{}(t));
}

std::vector<task_key>
topology::stateful_tasks(const std::vector<size_t>& us,
                         const std::vector<service_info>& services) const {
  std::vector<task_key> keys;
  for (auto u : us)
    for (auto& t : units[u].tasks)
      if (!services[t.first].stores.empty()) keys.push_back(t);
  return keys;
}

status resolve_services(const std::vector<service_factory>& factories,
                        const std::string& app, const config& cfg, kafka::admin& admin,
                        int timeout_ms, std::vector<service_info>& services,
                        std::vector<global_table_decl>& global_tables,
                        std::vector<kafka::new_topic>& to_create) {
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
                         [&](const global_table_decl& g) { return g.store == t.store; });
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
    info.policy = parse_policy(cfg.service_value(p->name(), "bad.record.policy"));
    bool park = info.policy == bad_record_policy::park;
    // State is sharded by partition: every input of a stateful service must
    // have the same partition count, or one key's records would reach
    // different tasks.
    // A parked key holds its later records in the task that parked it, so
    // every record of a key must reach one task: park needs it too.
    if (!p->stores().empty() || !info.table_stores.empty() || park)
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
    if (park) {
      // The parked store: held records and each parked key's error, in the
      // task's shard like any state (changelogged, restored, standbys).
      state::store_spec spec;
      spec.name = parked_store(p->name());
      info.stores.push_back(spec);
      to_create.push_back({state::changelog_topic(app, spec.name),
                           max_parts,
                           rf,
                           {{"cleanup.policy", "compact"}}});
      info.park_retries = static_cast<int>(std::strtoll(
          cfg.service_value(p->name(), "bad.record.retries").c_str(), nullptr, 10));
      info.park_backoff_ms = std::strtoll(
          cfg.service_value(p->name(), "bad.record.retry.backoff.ms").c_str(), nullptr,
          10);
      info.park_backoff_max_ms = std::strtoll(
          cfg.service_value(p->name(), "bad.record.retry.backoff.max.ms").c_str(),
          nullptr, 10);
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
    // park sends a skipped head record to the dead-letter topic.
    if (info.policy == bad_record_policy::dead_letter || park) {
      info.dead_letter_topic = dead_letter_topic_of(cfg, app, p->name());
      to_create.push_back({info.dead_letter_topic, max_parts, rf, {}});
    }
    services.push_back(std::move(info));
  }
  for (size_t i = 0; i < factories.size(); ++i)
    services[i].factory = factories[i];
  return {};
}

result<std::map<std::string, int>>
input_partition_counts(const std::vector<service_info>& services, kafka::admin& admin,
                       int timeout_ms) {
  std::map<std::string, int> out;
  for (auto& svc : services)
    for (auto& topic : svc.input_topics)
      if (!out.count(topic)) {
        auto n = admin.partition_count(topic, timeout_ms);
        if (!n) return n.error();
        out[topic] = *n;
      }
  return out;
}

topology compute_units(const std::vector<service_info>& services,
                       std::map<std::string, int> partitions) {
  topology out;
  out.input_partitions = std::move(partitions);
  // Union-find over tasks: two tasks reading one partition are one unit.
  std::vector<task_key> tasks;
  std::map<task_key, size_t> index;
  std::vector<size_t> parent;
  std::function<size_t(size_t)> root = [&](size_t i) {
    return parent[i] == i ? i : parent[i] = root(parent[i]);
  };
  std::map<topic_partition, size_t> first_reader;
  for (size_t s = 0; s < services.size(); ++s)
    for (auto& topic : services[s].input_topics)
      for (int32_t p = 0; p < out.input_partitions[topic]; ++p) {
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
      unit_of_root[r] = out.units.size();
      out.units.emplace_back();
    }
    auto& u = out.units[unit_of_root[r]];
    u.tasks.push_back(tasks[i]);
    u.stateful |= !services[tasks[i].first].stores.empty();
    u.name += (u.name.empty() ? "" : "+") + services[tasks[i].first].name + "/" +
              std::to_string(tasks[i].second);
    out.unit_of[tasks[i]] = unit_of_root[r];
  }
  for (auto& [tp, t] : first_reader)
    out.units[out.unit_of[tasks[t]]].inputs.push_back(tp);
  for (size_t s = 0; s < services.size(); ++s)
    for (auto& spec : services[s].stores)
      out.service_of_store[spec.name] = s;
  return out;
}

} // namespace weft::detail
