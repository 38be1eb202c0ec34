// weft-cluster: prints an application's cluster view — which node holds which
// active and standby units, and how far behind each copy is.
//
//   weft-cluster --application.id=APP [--bootstrap.servers=HOST:PORT] [--json]
//                [--timeout.ms=MS]
//
// Where it looks (actors/weft/cluster/membership.hpp tells the protocol):
// 1. The compacted topic <APP>-cluster, read from its start to its end by a
//    consumer of its own: manual assignment, read_committed (an assignment is
//    written in the leader's transactions), and it never commits, so it leaves
//    nothing behind. It keeps the latest announcement per node (member/<id>; a
//    tombstone means the node left) and the assignment with the highest
//    generation.
// 2. GET /cluster on the leader's HTTP endpoint, else on each other member's
//    in turn (1 s each), for the task names of the units and the lags the
//    nodes report to each other, and for which members the answering node is
//    connected to. When no node answers it prints the assignment without lags
//    and says so.
//
// Output: a header line (application, generation, leader, members and whether
// they are connected), the units as a table (unit | tasks | active (lag) |
// standbys (lag) | warm-up) and a line per node with its counts. A lag is in
// records; "?" means no lag was reported, "pending" that the copy has not
// fetched yet. --json prints the same, merged, as one JSON object.
//
// --parked adds every node's parked keys (bad.record.policy=park), from
// GET /parked on each member's endpoint: a table (node | service/partition |
// key | held | attempts | error | head record), or "parked" in the JSON.
//
// Exit status: 0 when it printed the view; 1 on errors (a message on stderr),
// bad usage included.

#include <httplib.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "weft/cluster/assignor.hpp"
#include "weft/kafka/consumer.hpp"
#include "weft/log.hpp"

namespace {

using json = nlohmann::json;
using namespace weft;

constexpr const char* usage_text =
    "usage: weft-cluster --application.id=APP [--bootstrap.servers=HOST:PORT] [--json]\n"
    "                    [--timeout.ms=MS] [--parked]\n"
    "Prints which node of the weft cluster APP holds which active and standby units,\n"
    "with their lags, from the topic APP-cluster and the nodes' GET /cluster.\n"
    "  --application.id     the application's id (required)\n"
    "  --bootstrap.servers  Kafka brokers (default 127.0.0.1:9092)\n"
    "  --json               print the merged view as JSON\n"
    "  --parked             also list every node's parked keys (GET /parked)\n"
    "  --timeout.ms         limit of each Kafka wait (default 10000)\n";

struct options {
  std::string app;
  std::string bootstrap = "127.0.0.1:9092";
  bool as_json = false;
  bool parked = false;
  int timeout_ms = 10000;
  bool help = false;
};

result<options> parse_args(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      o.help = true;
      continue;
    }
    if (arg == "--json") {
      o.as_json = true;
      continue;
    }
    if (arg == "--parked") {
      o.parked = true;
      continue;
    }
    auto eq = arg.find('=');
    std::string key = arg.substr(0, eq);
    std::string value;
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      return make_error(errc::invalid_argument, key + " needs a value");
    }
    if (key == "--application.id") {
      o.app = value;
    } else if (key == "--bootstrap.servers") {
      o.bootstrap = value;
    } else if (key == "--timeout.ms") {
      try {
        size_t used = 0;
        o.timeout_ms = std::stoi(value, &used);
        if (used != value.size() || o.timeout_ms <= 0) throw std::invalid_argument{value};
      } catch (const std::exception&) {
        return make_error(
            errc::invalid_argument,
            "--timeout.ms must be a positive number of milliseconds, not '" + value +
                "'");
      }
    } else {
      return make_error(errc::invalid_argument, "unknown option '" + arg + "'");
    }
  }
  if (!o.help && o.app.empty())
    return make_error(errc::invalid_argument, "--application.id is required");
  if (o.bootstrap.empty())
    return make_error(errc::invalid_argument, "--bootstrap.servers must not be empty");
  return o;
}

/// A node's announcement in the cluster topic.
struct member {
  std::string id;
  std::string cluster; ///< host:port of its CAF endpoint
  std::string http;    ///< host:port of its HTTP endpoint, or empty
  int64_t incarnation = 0;
};

/// What the cluster topic says once read to its end.
struct log_view {
  std::map<std::string, member> members; ///< announced and not left
  std::optional<cluster::assignment> assignment;
  std::vector<std::string> warnings;
};

std::optional<member> member_from(std::string_view text) {
  auto j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  member m;
  try {
    m.id = j.value("id", "");
    m.cluster = j.value("host", "") + ":" + std::to_string(j.value("port", 0));
    m.http = j.value("http", "");
    m.incarnation = j.value("incarnation", int64_t{0});
  } catch (const json::exception&) {
    return std::nullopt;
  }
  if (m.id.empty()) return std::nullopt;
  return m;
}

/// Reads <app>-cluster from its start to its end (at most o.timeout_ms per wait).
result<log_view> read_cluster_topic(const options& o) {
  const std::string topic = o.app + "-cluster";
  std::string client_error; // the last one librdkafka reported, for context
  auto c = kafka::consumer::create(
      {{"bootstrap.servers", o.bootstrap},
       {"client.id", "weft-cluster"},
       // Never used for commits or subscriptions: unique only to stay apart.
       {"group.id", o.app + "-cluster-view-" + std::to_string(::getpid())},
       {"isolation.level", "read_committed"},
       {"fetch.wait.max.ms", "10"},
       // librdkafka's own lines (e.g. each failed connect) stay quiet: the last
       // client error goes into the one message this tool prints.
       {"log_level", "2"}},
      [&](const status& s) {
        // "consumer: <name>: <text> (<reason>)": the reason says the most.
        auto& m = s.message();
        auto open = m.find(" (");
        client_error = open != std::string::npos && m.back() == ')'
                           ? m.substr(open + 2, m.size() - open - 3)
                           : m;
      });
  if (!c) return c.error();
  auto& consumer = **c;
  auto failed = [&](const std::string& what, const status& s) {
    consumer.poll_events(0); // delivers the client's own errors to client_error
    return make_error(s.code(), what + " (Kafka at " + o.bootstrap + "): " + s.message() +
                                    (client_error.empty() ? "" : "; " + client_error));
  };

  auto parts = consumer.partition_count(topic, o.timeout_ms);
  if (!parts) {
    if (parts.error().code() == errc::not_found)
      return make_error(errc::not_found, "application " + o.app +
                                             " has no cluster topic (no node ran with "
                                             "cluster.enabled=true)");
    return failed("cannot look up the topic " + topic, parts.error());
  }
  topic_partition tp{topic, partition_id{0}};
  auto marks = consumer.watermarks(tp, o.timeout_ms);
  if (!marks) return failed("cannot read the end of " + topic, marks.error());
  auto [low, high] = *marks;

  log_view out;
  if (high <= low) return out;          // empty
  auto queue = consumer.take_queue(tp); // before assign_at: see consumer.hpp
  if (!queue) return make_error(errc::internal, "no fetch queue for " + to_string(tp));
  if (auto s = consumer.assign_at({{tp, weft::offset{RD_KAFKA_OFFSET_BEGINNING}}}); !s)
    return failed("cannot read " + topic, s);

  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(o.timeout_ms);
  bool read_any = false;
  while (true) {
    kafka::message_batch batch;
    status fetch_error;
    queue->drain(batch, 1000, &fetch_error);
    for (size_t i = 0; i < batch.size(); ++i) {
      auto v = batch.view(i);
      read_any = true;
      if (!v.key) continue;
      std::string_view key = *v.key;
      if (key == "assignment") {
        if (!v.value) continue;
        auto a = cluster::assignment_from_json(*v.value);
        if (!a) {
          out.warnings.push_back("unreadable assignment at offset " +
                                 std::to_string(v.offset.value()) + ": " +
                                 a.error().message());
        } else if (!out.assignment || a->generation > out.assignment->generation) {
          out.assignment = std::move(*a);
        }
      } else if (key.rfind("member/", 0) == 0) {
        std::string id{key.substr(7)};
        if (!v.value) {
          out.members.erase(id);
        } else if (auto m = member_from(*v.value)) {
          out.members[id] = std::move(*m);
        } else {
          out.warnings.push_back("unreadable announcement of " + id + " at offset " +
                                 std::to_string(v.offset.value()));
        }
      }
    }
    // read_committed: the position also moves past transaction markers.
    if (consumer.position(tp) >= high) break;
    if (std::chrono::steady_clock::now() > deadline) {
      if (!read_any)
        return failed("cannot read " + topic,
                      fetch_error.ok()
                          ? make_error(errc::timed_out, "nothing arrived within " +
                                                            std::to_string(o.timeout_ms) +
                                                            " ms")
                          : fetch_error);
      out.warnings.push_back("stopped reading " + topic + " at offset " +
                             std::to_string(consumer.position(tp)) + " of " +
                             std::to_string(high) +
                             " after --timeout.ms (an open transaction?); the view may "
                             "be behind");
      break;
    }
    consumer.poll_events(0);
    if (batch.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return out;
}

/// GET `path` on `endpoint` (host:port), 1 s per step; nullopt when it fails.
std::optional<json> fetch_json(const std::string& endpoint, const char* path) {
  auto colon = endpoint.rfind(':');
  if (colon == std::string::npos || colon == 0) return std::nullopt;
  std::string host = endpoint.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2); // [::1]
  int port = 0;
  try {
    port = std::stoi(endpoint.substr(colon + 1));
  } catch (const std::exception&) {
    return std::nullopt;
  }
  httplib::Client client{host, port};
  client.set_connection_timeout(1, 0);
  client.set_read_timeout(1, 0);
  client.set_write_timeout(1, 0);
  auto res = client.Get(path);
  if (!res || res->status != 200) return std::nullopt;
  auto j = json::parse(res->body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  return j;
}

/// The lag `node` reports for `unit` in the view's units: a number, -1 (not
/// fetched yet) or null (unknown).
json view_lag(const json* view_unit, const std::string& node, bool active) {
  if (!view_unit) return nullptr;
  if (active) {
    if (view_unit->value("active", "") == node && view_unit->contains("active_lag"))
      return (*view_unit)["active_lag"];
    return nullptr;
  }
  if (!view_unit->contains("standbys") || !(*view_unit)["standbys"].is_array())
    return nullptr;
  for (auto& s : (*view_unit)["standbys"])
    if (s.is_object() && s.value("node", "") == node && s.contains("lag"))
      return s["lag"];
  return nullptr;
}

/// Merges the log's members and assignment with the node's view (if any).
json merge(const options& o, const log_view& seen, const std::optional<json>& view,
           const std::string& view_from, const std::map<std::string, std::string>& http) {
  const cluster::assignment* a = seen.assignment ? &*seen.assignment : nullptr;
  json out;
  out["application"] = o.app;
  out["topic"] = o.app + "-cluster";
  out["generation"] = a ? json(a->generation) : json(nullptr);
  out["leader"] = a ? json(a->leader) : json(nullptr);
  out["lags_from"] = view ? json(view_from) : json(nullptr);
  if (view) out["lags_generation"] = view->value("generation", json(nullptr));

  // Who answered what about whom.
  std::map<std::string, bool> connected;
  if (view && view->contains("members") && (*view)["members"].is_array())
    for (auto& m : (*view)["members"])
      if (m.is_object() && m.contains("id") && m.contains("connected"))
        connected[m.value("id", "")] = m.value("connected", false);
  std::set<std::string> ids;
  for (auto& [id, m] : seen.members)
    ids.insert(id);
  if (a) ids.insert(a->members.begin(), a->members.end());
  json members = json::array();
  for (auto& id : ids) {
    json m{{"id", id}};
    auto i = seen.members.find(id);
    std::string state;
    if (i == seen.members.end()) {
      state = "left";
    } else {
      m["cluster"] = i->second.cluster;
      m["http"] = i->second.http;
      m["incarnation"] = i->second.incarnation;
      if (view) {
        auto c = connected.find(id);
        state = id == view_from        ? "connected"
                : c == connected.end() ? "unknown"
                                       : (c->second ? "connected" : "unreachable");
      } else {
        state = http.count(id) && http.at(id) == "no answer" ? "unreachable" : "unknown";
      }
    }
    m["status"] = state;
    if (auto h = http.find(id); h != http.end()) m["http_probe"] = h->second;
    members.push_back(m);
  }
  out["members"] = members;

  json units = json::array();
  json load = json::object();
  if (a) {
    std::map<size_t, const json*> by_unit;
    if (view && view->contains("units") && (*view)["units"].is_array())
      for (auto& u : (*view)["units"])
        if (u.is_object() && u.contains("unit") && u["unit"].is_number_unsigned())
          by_unit[u["unit"].get<size_t>()] = &u;
    for (size_t u = 0; u < a->active.size(); ++u) {
      auto vi = by_unit.find(u);
      const json* vu = vi == by_unit.end() ? nullptr : vi->second;
      json unit{{"unit", u}};
      unit["tasks"] = vu && (*vu).contains("tasks") ? (*vu)["tasks"] : json(nullptr);
      unit["active"] = a->active[u];
      unit["active_lag"] = view_lag(vu, a->active[u], true);
      json standbys = json::array();
      for (auto& n : a->standbys[u])
        standbys.push_back({{"node", n}, {"lag", view_lag(vu, n, false)}});
      unit["standbys"] = standbys;
      unit["warmup"] = a->warmup[u].empty() ? json(nullptr) : json(a->warmup[u]);
      unit["previous"] = a->previous[u].empty() ? json(nullptr) : json(a->previous[u]);
      units.push_back(unit);
    }
    for (auto& [node, counts] : cluster::load(*a))
      load[node] = {{"active", counts.first}, {"standby", counts.second}};
  }
  for (auto& id : ids)
    if (!load.contains(id)) load[id] = {{"active", 0}, {"standby", 0}};
  out["units"] = units;
  out["load"] = load;
  out["warnings"] = seen.warnings;
  return out;
}

std::string lag_text(const json& lag) {
  if (lag.is_number_integer()) {
    auto n = lag.get<int64_t>();
    return n < 0 ? "pending" : std::to_string(n);
  }
  return "?";
}

void print_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (auto& r : rows)
    for (size_t c = 0; c < r.size(); ++c) {
      if (width.size() <= c) width.push_back(0);
      width[c] = std::max(width[c], r[c].size());
    }
  for (auto& r : rows) {
    std::string line;
    for (size_t c = 0; c < r.size(); ++c) {
      line += r[c];
      if (c + 1 < r.size()) line += std::string(width[c] - r[c].size() + 2, ' ');
    }
    std::cout << line << "\n";
  }
}

void print_text(const json& v, bool with_lags, const std::string& no_answer) {
  std::string header = "application " + v["application"].get<std::string>() + ": ";
  if (v["generation"].is_null())
    header += "no assignment yet";
  else
    header += "generation " + std::to_string(v["generation"].get<int64_t>()) +
              ", leader " + v["leader"].get<std::string>();
  header += ", members ";
  if (v["members"].empty()) header += "none";
  for (size_t i = 0; i < v["members"].size(); ++i) {
    auto& m = v["members"][i];
    header += (i ? ", " : "") + m["id"].get<std::string>() + " (" +
              m["status"].get<std::string>() + ")";
  }
  std::cout << header << "\n";
  for (auto& w : v["warnings"])
    std::cout << "warning: " << w.get<std::string>() << "\n";
  if (with_lags) {
    std::cout << "lags in records, as node " << v["lags_from"].get<std::string>()
              << " sees them";
    if (v["lags_generation"] != v["generation"])
      std::cout << " (at its generation " << v["lags_generation"].dump() << ")";
    std::cout << "; ? = not reported, pending = not fetched yet\n";
  } else {
    std::cout << no_answer << "\n";
  }
  if (v["units"].empty()) return;

  std::cout << "\n";
  std::vector<std::vector<std::string>> rows{
      {"unit", "tasks", "active (lag)", "standbys (lag)", "warm-up"}};
  auto with_lag = [&](const std::string& node, const json& lag) {
    if (node.empty()) return std::string{"-"};
    return with_lags ? node + " (" + lag_text(lag) + ")" : node;
  };
  for (auto& u : v["units"]) {
    std::string standbys;
    for (auto& s : u["standbys"])
      standbys += (standbys.empty() ? "" : ", ") +
                  with_lag(s["node"].get<std::string>(), s["lag"]);
    rows.push_back({std::to_string(u["unit"].get<size_t>()),
                    u["tasks"].is_string() ? u["tasks"].get<std::string>() : "?",
                    with_lag(u["active"].get<std::string>(), u["active_lag"]),
                    standbys.empty() ? "-" : standbys,
                    u["warmup"].is_string() ? u["warmup"].get<std::string>() : "-"});
  }
  print_table(rows);
  std::cout << "\n";
  for (auto& [node, counts] : v["load"].items())
    std::cout << node << ": " << counts["active"].get<int>() << " active, "
              << counts["standby"].get<int>() << " standby\n";
}

void print_parked(const json& parked, const std::vector<std::string>& unasked) {
  std::cout << "\nparked keys: " << parked.size() << "\n";
  if (!parked.empty()) {
    std::vector<std::vector<std::string>> rows{
        {"node", "service/partition", "key", "held", "attempts", "error", "head"}};
    for (auto& k : parked) {
      std::string key = k["key"].is_string() ? k["key"].get<std::string>()
                        : k.value("null_key", false)
                            ? "(null)"
                            : "base64:" + k.value("key_base64", "");
      auto error = k.value("error", "");
      if (error.size() > 60) error = error.substr(0, 57) + "...";
      auto& h = k["head"];
      rows.push_back(
          {k.value("node", ""),
           k.value("service", "") + "/" + std::to_string(k.value("partition", 0)), key,
           std::to_string(k.value("held", 0)),
           std::to_string(k.value("attempts", 0)) +
               (k.value("releasing", false) ? " (releasing)" : ""),
           error,
           h.value("topic", "") + "[" + std::to_string(h.value("partition", 0)) + "]@" +
               std::to_string(h.value("offset", int64_t{-1}))});
    }
    print_table(rows);
  }
  for (auto& id : unasked)
    std::cout << "node " << id
              << " did not answer GET /parked: its keys are not listed\n";
}

int run(const options& o) {
  auto seen = read_cluster_topic(o);
  if (!seen) {
    std::cerr << "weft-cluster: " << seen.error().message() << "\n";
    return 1;
  }
  // The leader first: its view is the freshest about who is connected.
  std::vector<std::string> order;
  if (seen->assignment && seen->members.count(seen->assignment->leader))
    order.push_back(seen->assignment->leader);
  for (auto& [id, m] : seen->members)
    if (order.empty() || id != order.front()) order.push_back(id);
  std::map<std::string, std::string> probes; // node -> what its endpoint did
  std::optional<json> view;
  std::string view_from;
  std::vector<std::string> tried;
  for (auto& id : order) {
    auto& m = seen->members.at(id);
    if (m.http.empty()) {
      probes[id] = "no http endpoint";
      continue;
    }
    view = fetch_json(m.http, "/cluster");
    if (view) {
      probes[id] = "answered";
      view_from = id;
      break;
    }
    probes[id] = "no answer";
    tried.push_back(id + " at " + m.http);
  }
  std::string no_answer;
  if (!view && order.empty()) {
    no_answer = "no member is announced: no node to ask for lags";
  } else if (!view) {
    std::string list;
    for (auto& t : tried)
      list += (list.empty() ? "" : ", ") + t;
    no_answer = "no node answered GET /cluster (" +
                (list.empty() ? "no member has an HTTP endpoint: see http.port"
                              : "tried " + list) +
                "): the assignment without lags";
  }
  auto merged = merge(o, *seen, view, view_from, probes);
  // Parked keys live with the task that parked them: ask every node.
  json parked = json::array();
  std::vector<std::string> unasked;
  if (o.parked)
    for (auto& [id, m] : seen->members) {
      auto p = m.http.empty() ? std::nullopt : fetch_json(m.http, "/parked");
      if (!p || !p->contains("parked") || !(*p)["parked"].is_array()) {
        unasked.push_back(id);
        continue;
      }
      for (auto& k : (*p)["parked"]) {
        k["node"] = id;
        parked.push_back(k);
      }
    }
  if (o.as_json) {
    if (!view) merged["lags_missing"] = no_answer;
    if (o.parked) {
      merged["parked"] = parked;
      merged["parked_unanswered"] = unasked;
    }
    std::cout << merged.dump(2) << "\n";
  } else {
    print_text(merged, view.has_value(), no_answer);
    if (o.parked) print_parked(parked, unasked);
  }
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  (void)weft::log::setup("error"); // stderr, and quiet: failures are reported below
  auto o = parse_args(argc, argv);
  if (!o) {
    std::cerr << "weft-cluster: " << o.error().message() << "\n" << usage_text;
    return 1;
  }
  if (o->help) {
    std::cout << usage_text;
    return 0;
  }
  try {
    return run(*o);
  } catch (const std::exception& e) { // a malformed answer we did not foresee
    std::cerr << "weft-cluster: " << e.what() << "\n";
    return 1;
  }
}
