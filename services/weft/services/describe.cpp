#include "weft/services/describe.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include "weft/state/shard.hpp"

namespace weft {

const char* to_string(topic_kind k) {
  switch (k) {
  case topic_kind::fact:
    return "fact";
  case topic_kind::intermediate:
    return "intermediate";
  case topic_kind::repartition:
    return "repartition";
  case topic_kind::changelog:
    return "changelog";
  case topic_kind::dead_letter:
    return "dead-letter";
  }
  return "fact";
}

std::string dead_letter_topic_of(const config& cfg, const std::string& application,
                                 const std::string& service) {
  // park dead-letters a record too large to hold behind its parked key.
  auto policy = cfg.service_value(service, "bad.record.policy");
  if (policy != "dead_letter" && policy != "park") return {};
  auto t = cfg.service_value(service, "dead.letter.topic");
  return t.empty() ? application + "-" + service + "-dlq" : t;
}

const topology_description::topic*
topology_description::find_topic(const std::string& name) const {
  for (auto& t : topics)
    if (t.name == name) return &t;
  return nullptr;
}

result<describe_format> parse_describe_format(std::string_view s) {
  if (s == "text") return describe_format::text;
  if (s == "dot") return describe_format::dot;
  if (s == "mermaid") return describe_format::mermaid;
  if (s == "json") return describe_format::json;
  return make_error(errc::invalid_argument, "describe format '" + std::string{s} +
                                                "': use text, dot, mermaid or json");
}

result<topology_description>
describe_topology(const std::vector<service_factory>& factories, const config& cfg,
                  const describe_extras& extras) {
  topology_description d;
  d.application = cfg.get_string("application.id");
  if (d.application.empty()) d.application = "<application.id>";
  const auto& app = d.application;
  std::map<std::string, topic_kind> topics;
  auto add_topic = [&](const std::string& name, topic_kind k) {
    auto i = topics.find(name);
    // weft's own kinds win over a user topic's default.
    if (i == topics.end() || i->second == topic_kind::fact) topics[name] = k;
  };
  std::set<std::string> intermediate(extras.intermediate_topics.begin(),
                                     extras.intermediate_topics.end());
  auto user_kind = [&](const std::string& t) {
    return intermediate.count(t) ? topic_kind::intermediate : topic_kind::fact;
  };
  std::set<std::string> global_stores;
  for (auto& f : factories) {
    std::unique_ptr<service_base> p;
    try {
      p = f();
    } catch (const std::exception& e) {
      return make_error(errc::invalid_argument,
                        std::string{"a service could not be made: "} + e.what());
    }
    if (!p) return make_error(errc::invalid_argument, "a service factory returned null");
    topology_description::service s;
    s.name = p->name();
    s.pattern = p->pattern();
    s.detail = p->pattern_detail();
    for (auto& in : p->inputs()) {
      auto t = in.internal ? repartition_topic(app, in.name) : in.name;
      add_topic(t, in.internal ? topic_kind::repartition : user_kind(t));
      s.inputs.push_back(t);
    }
    for (auto& o : p->outputs()) {
      auto t =
          o.kind == output_kind::repartition ? repartition_topic(app, o.name) : o.name;
      add_topic(t, o.kind == output_kind::repartition ? topic_kind::repartition
                                                      : user_kind(t));
      s.outputs.push_back(t);
    }
    for (auto& t : p->tables()) {
      add_topic(t.topic, user_kind(t.topic));
      if (t.global) {
        s.global_tables.push_back(t.topic);
        if (global_stores.insert(t.store).second)
          d.stores.push_back({t.store, "global", "", "", false, t.topic});
      } else {
        s.tables.push_back(t.topic);
      }
    }
    for (auto& st : p->stores()) {
      auto changelog = state::changelog_topic(app, st.name);
      add_topic(changelog, topic_kind::changelog);
      const char* type = st.type == store_decl::kind::kv       ? "kv"
                         : st.type == store_decl::kind::window ? "window"
                                                               : "session";
      d.stores.push_back({st.name, type, s.name, changelog, st.internal, ""});
      s.stores.push_back(st.name);
    }
    s.bad_record_policy = cfg.service_value(s.name, "bad.record.policy");
    if (s.bad_record_policy == "park") {
      // weft adds the parked store to the task's shard (changelogged, with
      // standbys) even for an otherwise stateless service.
      auto name = service_base::parked_store(s.name);
      auto changelog = state::changelog_topic(app, name);
      add_topic(changelog, topic_kind::changelog);
      d.stores.push_back({name, "kv", s.name, changelog, false, ""});
      s.stores.push_back(name);
    }
    s.dead_letter_topic = dead_letter_topic_of(cfg, app, s.name);
    if (!s.dead_letter_topic.empty())
      add_topic(s.dead_letter_topic, topic_kind::dead_letter);
    d.services.push_back(std::move(s));
  }
  for (auto& c : extras.clients)
    for (auto& t : c.writes)
      add_topic(t, user_kind(t));
  d.clients = extras.clients;
  std::set<std::string> plumbing; // changelogs of weft's own stores
  for (auto& st : d.stores)
    if (st.internal) plumbing.insert(st.changelog);
  for (auto& [name, kind] : topics)
    d.topics.push_back({name, kind, plumbing.count(name) > 0});
  std::stable_sort(d.topics.begin(), d.topics.end(), [](auto& a, auto& b) {
    return static_cast<int>(a.kind) < static_cast<int>(b.kind);
  });
  std::stable_sort(d.stores.begin(), d.stores.end(),
                   [](auto& a, auto& b) { return a.name < b.name; });
  return d;
}

namespace {

/// The edges every rendering draws, in a fixed order.
struct edge {
  std::string from, to; ///< "service:x", "topic:x", "store:x", "client:x"
  /// reads, table (topic -> service), global (topic -> global store), lookup
  /// (global store -> service), writes, owns (service - store), changelog
  /// (store -> topic), dead-letter (service -> topic), queries (client -> store)
  std::string kind;
};

bool drawn(const topology_description& d, const std::string& store) {
  for (auto& s : d.stores)
    if (s.name == store) return !s.internal;
  return true;
}

std::vector<edge> edges_of(const topology_description& d) {
  std::vector<edge> out;
  for (auto& c : d.clients) {
    for (auto& t : c.writes)
      out.push_back({"client:" + c.name, "topic:" + t, "writes"});
    for (auto& st : c.queries)
      out.push_back({"client:" + c.name, "store:" + st, "queries"});
  }
  for (auto& s : d.services) {
    for (auto& t : s.inputs)
      out.push_back({"topic:" + t, "service:" + s.name, "reads"});
    for (auto& t : s.tables)
      out.push_back({"topic:" + t, "service:" + s.name, "table"});
    for (auto& t : s.global_tables)
      for (auto& st : d.stores)
        if (st.type == "global" && st.topic == t)
          out.push_back({"store:" + st.name, "service:" + s.name, "lookup"});
    for (auto& t : s.outputs)
      out.push_back({"service:" + s.name, "topic:" + t, "writes"});
    for (auto& st : s.stores)
      if (drawn(d, st)) out.push_back({"service:" + s.name, "store:" + st, "owns"});
    if (!s.dead_letter_topic.empty())
      out.push_back({"service:" + s.name, "topic:" + s.dead_letter_topic, "dead-letter"});
  }
  for (auto& st : d.stores) {
    if (st.type == "global")
      out.push_back({"topic:" + st.topic, "store:" + st.name, "global"});
    if (!st.changelog.empty() && !st.internal)
      out.push_back({"store:" + st.name, "topic:" + st.changelog, "changelog"});
  }
  return out;
}

std::string pattern_label(const topology_description::service& s) {
  std::string p = to_string(s.pattern);
  if (!s.detail.empty()) p += ": " + s.detail;
  return p;
}

// -- text ---------------------------------------------------------------------------

std::string text_of(const topology_description& d) {
  std::ostringstream os;
  size_t internal_stores = 0;
  for (auto& st : d.stores)
    internal_stores += st.internal;
  os << "application " << d.application << ": " << d.services.size() << " services, "
     << d.topics.size() << " topics, " << d.stores.size() << " stores ("
     << internal_stores << " of them weft's stream-time stores)\n";
  auto kind_of = [&](const std::string& t) {
    auto* x = d.find_topic(t);
    return x ? to_string(x->kind) : "fact";
  };
  for (auto& c : d.clients) {
    os << "\nclient " << c.name << " (" << c.kind << ")\n";
    for (auto& t : c.writes)
      os << "  writes   " << t << " (" << kind_of(t) << ")\n";
    for (auto& s : c.queries)
      os << "  queries  " << s << "\n";
  }
  for (auto& s : d.services) {
    os << "\nservice " << s.name << " [" << pattern_label(s) << "]\n";
    for (auto& t : s.inputs)
      os << "  reads    " << t << " (" << kind_of(t) << ")\n";
    for (auto& t : s.tables)
      os << "  table    " << t << " (" << kind_of(t) << ")\n";
    for (auto& t : s.global_tables)
      os << "  global   " << t << " (" << kind_of(t) << ")\n";
    for (auto& t : s.outputs)
      os << "  writes   " << t << " (" << kind_of(t) << ")\n";
    for (auto& name : s.stores)
      for (auto& st : d.stores)
        if (st.name == name)
          os << "  store    " << st.name << " (" << st.type
             << (st.internal ? ", weft's stream time" : "") << ") -> " << st.changelog
             << "\n";
    os << "  bad records: " << s.bad_record_policy;
    if (!s.dead_letter_topic.empty()) os << " -> " << s.dead_letter_topic;
    os << "\n";
  }
  for (auto kind : {topic_kind::fact, topic_kind::intermediate, topic_kind::repartition,
                    topic_kind::changelog, topic_kind::dead_letter}) {
    std::vector<std::string> names;
    for (auto& t : d.topics)
      if (t.kind == kind) names.push_back(t.name);
    if (names.empty()) continue;
    os << "\n" << to_string(kind) << " topics (" << names.size() << ")\n";
    for (auto& n : names)
      os << "  " << n << "\n";
  }
  return os.str();
}

// -- dot ----------------------------------------------------------------------------

std::string quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

const char* fill_of(service_pattern p) {
  switch (p) {
  case service_pattern::stateless:
    return "#e3f2e1";
  case service_pattern::enricher:
    return "#fff1cc";
  case service_pattern::gate:
    return "#fbdcdc";
  case service_pattern::stateful:
    return "#dbe7f7";
  case service_pattern::stream_aside:
    return "#eadcf5";
  case service_pattern::sidecar:
    return "#e8e8e8";
  }
  return "#ffffff";
}

std::string dot_of(const topology_description& d) {
  std::ostringstream os;
  os << "digraph " << quote(d.application) << " {\n"
     << "  graph [rankdir=LR, fontname=\"Helvetica\", fontsize=12, nodesep=0.2, "
        "ranksep=0.9, newrank=true, label="
     << quote("application " + d.application) << ", labelloc=t];\n"
     << "  node [fontname=\"Helvetica\", fontsize=10];\n"
     << "  edge [fontname=\"Helvetica\", fontsize=8, color=\"#555555\"];\n";
  for (auto& c : d.clients)
    os << "  " << quote("client:" + c.name)
       << " [shape=component, style=filled, fillcolor=\"#ffffff\", label="
       << quote(c.name + "\n" + c.kind) << "];\n";
  for (auto& s : d.services)
    os << "  " << quote("service:" + s.name)
       << " [shape=box, style=\"rounded,filled\", fillcolor=\"" << fill_of(s.pattern)
       << "\", label=" << quote(s.name + "\n«" + pattern_label(s) + "»") << "];\n";
  for (auto& st : d.stores)
    if (!st.internal)
      os << "  " << quote("store:" + st.name)
         << " [shape=cylinder, style=filled, fillcolor=\"#f6f6f6\", label="
         << quote(st.name + "\n(" + st.type + ")") << "];\n";
  struct group {
    topic_kind kind;
    const char* id;
    const char* label;
    const char* fill;
  };
  const group groups[] = {
      {topic_kind::fact, "facts", "facts: the shared narrative", "#eaf2ff"},
      {topic_kind::intermediate, "intermediate", "intermediate topics", "#f4f4f4"},
      {topic_kind::repartition, "repartition", "internal: repartition", "#f7f7f7"},
      {topic_kind::changelog, "changelog", "internal: changelogs", "#f7f7f7"},
      {topic_kind::dead_letter, "dead_letter", "internal: dead letters", "#fdf0f0"}};
  for (auto& g : groups) {
    bool any = std::any_of(d.topics.begin(), d.topics.end(),
                           [&](auto& t) { return t.kind == g.kind && !t.internal; });
    if (!any) continue;
    os << "  subgraph cluster_" << g.id << " {\n"
       << "    label=" << quote(g.label) << "; style=\"rounded,filled\"; fillcolor=\""
       << g.fill << "\"; color=\"#999999\"; fontsize=10;\n";
    for (auto& t : d.topics)
      if (t.kind == g.kind && !t.internal)
        os << "    " << quote("topic:" + t.name) << " [shape=box, style=filled, "
           << "fillcolor=\"#ffffff\", "
           << (g.kind == topic_kind::fact ? "penwidth=1.5, " : "color=\"#888888\", ")
           << "label=" << quote(t.name) << "];\n";
    os << "  }\n";
  }
  for (auto& e : edges_of(d)) {
    os << "  " << quote(e.from) << " -> " << quote(e.to);
    if (e.kind == "owns")
      os << " [style=dashed, arrowhead=none]";
    else if (e.kind == "changelog")
      os << " [style=dotted, color=\"#999999\"]";
    else if (e.kind == "dead-letter")
      os << " [style=dashed, color=\"#c04040\"]";
    else if (e.kind == "table" || e.kind == "global")
      os << " [style=bold, label=" << quote(e.kind) << "]";
    else if (e.kind == "queries" || e.kind == "lookup")
      os << " [style=dashed, color=\"#4060a0\", label=" << quote(e.kind) << "]";
    os << ";\n";
  }
  os << "}\n";
  return os.str();
}

// -- mermaid ------------------------------------------------------------------------

std::string mermaid_text(const std::string& s) {
  std::string out;
  for (char c : s)
    out += c == '"' ? std::string{"#quot;"} : std::string(1, c);
  return out;
}

std::string mermaid_of(const topology_description& d) {
  std::map<std::string, std::string> ids; // "kind:name" -> short id
  auto id = [&](const std::string& key) {
    auto i = ids.find(key);
    if (i != ids.end()) return i->second;
    auto made = "n" + std::to_string(ids.size());
    ids[key] = made;
    return made;
  };
  std::ostringstream os;
  os << "flowchart LR\n";
  for (auto& c : d.clients)
    os << "  " << id("client:" + c.name) << "[[\"" << mermaid_text(c.name) << "<br/>"
       << mermaid_text(c.kind) << "\"]]\n";
  for (auto& s : d.services)
    os << "  " << id("service:" + s.name) << "(\"" << mermaid_text(s.name) << "<br/><i>"
       << mermaid_text(pattern_label(s)) << "</i>\")\n";
  for (auto& st : d.stores)
    if (!st.internal)
      os << "  " << id("store:" + st.name) << "[(\"" << mermaid_text(st.name) << "<br/>"
         << st.type << "\")]\n";
  const std::pair<topic_kind, const char*> groups[] = {
      {topic_kind::fact, "facts: the shared narrative"},
      {topic_kind::intermediate, "intermediate topics"},
      {topic_kind::repartition, "internal: repartition"},
      {topic_kind::changelog, "internal: changelogs"},
      {topic_kind::dead_letter, "internal: dead letters"}};
  int g = 0;
  for (auto& [kind, label] : groups) {
    bool any = std::any_of(d.topics.begin(), d.topics.end(),
                           [&, k = kind](auto& t) { return t.kind == k && !t.internal; });
    if (!any) continue;
    os << "  subgraph g" << g++ << "[\"" << label << "\"]\n";
    for (auto& t : d.topics)
      if (t.kind == kind && !t.internal)
        os << "    " << id("topic:" + t.name) << "[\"" << mermaid_text(t.name) << "\"]\n";
    os << "  end\n";
  }
  for (auto& e : edges_of(d)) {
    os << "  " << id(e.from);
    if (e.kind == "owns")
      os << " --- ";
    else if (e.kind == "changelog" || e.kind == "dead-letter" || e.kind == "queries" ||
             e.kind == "lookup")
      os << " -.->|" << e.kind << "| ";
    else if (e.kind == "table" || e.kind == "global")
      os << " ==>|" << e.kind << "| ";
    else
      os << " --> ";
    os << id(e.to) << "\n";
  }
  for (auto p : {service_pattern::stateless, service_pattern::enricher,
                 service_pattern::gate, service_pattern::stateful,
                 service_pattern::stream_aside, service_pattern::sidecar}) {
    std::string members;
    for (auto& s : d.services)
      if (s.pattern == p)
        members += (members.empty() ? "" : ",") + id("service:" + s.name);
    if (members.empty()) continue;
    std::string cls = to_string(p);
    std::replace(cls.begin(), cls.end(), '-', '_');
    os << "  classDef " << cls << " fill:" << fill_of(p) << ",stroke:#555\n";
    os << "  class " << members << " " << cls << "\n";
  }
  return os.str();
}

// -- json ---------------------------------------------------------------------------

std::string json_of(const topology_description& d) {
  using nlohmann::json;
  json services = json::array();
  for (auto& s : d.services)
    services.push_back({{"name", s.name},
                        {"pattern", to_string(s.pattern)},
                        {"detail", s.detail},
                        {"inputs", s.inputs},
                        {"tables", s.tables},
                        {"globalTables", s.global_tables},
                        {"outputs", s.outputs},
                        {"stores", s.stores},
                        {"badRecordPolicy", s.bad_record_policy},
                        {"deadLetterTopic", s.dead_letter_topic}});
  json topics = json::array();
  for (auto& t : d.topics)
    topics.push_back(
        {{"name", t.name}, {"kind", to_string(t.kind)}, {"internal", t.internal}});
  json stores = json::array();
  for (auto& st : d.stores)
    stores.push_back({{"name", st.name},
                      {"type", st.type},
                      {"service", st.service},
                      {"changelog", st.changelog},
                      {"topic", st.topic},
                      {"internal", st.internal}});
  json clients = json::array();
  for (auto& c : d.clients)
    clients.push_back({{"name", c.name},
                       {"kind", c.kind},
                       {"writes", c.writes},
                       {"queries", c.queries}});
  json edges = json::array();
  for (auto& e : edges_of(d))
    edges.push_back({{"from", e.from}, {"to", e.to}, {"kind", e.kind}});
  return json{{"application", d.application},
              {"services", services},
              {"topics", topics},
              {"stores", stores},
              {"clients", clients},
              {"edges", edges}}
             .dump(2) +
         "\n";
}

} // namespace

std::string render(const topology_description& d, describe_format f) {
  switch (f) {
  case describe_format::text:
    return text_of(d);
  case describe_format::dot:
    return dot_of(d);
  case describe_format::mermaid:
    return mermaid_of(d);
  case describe_format::json:
    return json_of(d);
  }
  return text_of(d);
}

} // namespace weft
