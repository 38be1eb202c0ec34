#include "weft/trace_view.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>

#include "weft/serde.hpp"
#include "weft/services/gate.hpp"
#include "weft/services/partitioner.hpp"
#include "weft/state/timer_index.hpp"
#include "weft/trace/cause.hpp"

namespace weft::detail {

using json = nlohmann::json;

std::string base64(std::string_view in) {
  static const char* abc =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint32_t(uint8_t(in[i])) << 16) | (uint32_t(uint8_t(in[i + 1])) << 8) |
                 uint32_t(uint8_t(in[i + 2]));
    for (int s = 18; s >= 0; s -= 6)
      out.push_back(abc[(v >> s) & 63]);
  }
  if (i < in.size()) {
    uint32_t v = uint32_t(uint8_t(in[i])) << 16;
    if (i + 1 < in.size()) v |= uint32_t(uint8_t(in[i + 1])) << 8;
    out.push_back(abc[(v >> 18) & 63]);
    out.push_back(abc[(v >> 12) & 63]);
    out.push_back(i + 1 < in.size() ? abc[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

namespace {

/// Bytes as JSON: the JSON they hold, else UTF-8 text, else base64 under
/// `<field>_base64`.
void put_bytes(json& j, const char* field, const std::string& bytes) {
  auto parsed = json::parse(bytes, nullptr, false);
  if (!parsed.is_discarded() && (parsed.is_object() || parsed.is_array())) {
    j[field] = std::move(parsed);
  } else if (string_serde::deserialize(bytes)) {
    j[field] = bytes;
  } else {
    j[field] = nullptr;
    j[std::string{field} + "_base64"] = base64(bytes);
  }
}

bool has_store(const topology_description::service& s, const std::string& name) {
  return std::find(s.stores.begin(), s.stores.end(), name) != s.stores.end();
}

/// Whether a gate part (weft::gate names a part by its input as declared)
/// is input topic `topic`: the name itself, or its repartition topic.
bool part_is(const std::string& part, const std::string& topic, const std::string& app) {
  return part == topic || app + "-" + part + "-repartition" == topic;
}

json gate_state(const topology_description::service& s, const std::string& key,
                const trace_sources& src) {
  json g{{"service", s.name}};
  const auto store = s.name + "-store";
  g["store"] = store;
  if (int n = src.partitions ? src.partitions(s.name) : 0; n > 0)
    g["partition"] = partition_for(key, n);
  auto v = src.get(store, key);
  if (!v) {
    g["state"] = "unavailable";
    g["error"] = v.error().message();
    return g;
  }
  if (!*v) {
    g["state"] = "none"; // no correlation open for the key
    return g;
  }
  const auto& bytes = **v;
  // JSON first: a gate of its own (the order system's) keeps JSON; then
  // weft::gate's entry (cereal binary), whose first bytes are never JSON.
  auto parsed = json::parse(bytes, nullptr, false);
  if (!parsed.is_discarded() && parsed.is_object()) {
    g["state"] = "open";
    g["value"] = std::move(parsed);
  } else if (auto e = cereal_binary_serde<gate_entry>::deserialize(bytes)) {
    g["state"] = e->done ? "decided" : "open";
    g["started_ms"] = e->started;
    g["deadline_ms"] = e->deadline;
    g["done"] = e->done;
    json parts = json::array();
    for (auto& [name, value] : e->parts) {
      json p{{"part", name}, {"bytes", value.size()}};
      put_bytes(p, "value", value);
      parts.push_back(std::move(p));
    }
    g["parts"] = std::move(parts);
    json waiting = json::array();
    for (auto& in : s.inputs)
      if (std::none_of(e->parts.begin(), e->parts.end(),
                       [&](auto& p) { return part_is(p.first, in, src.application); }))
        waiting.push_back(in);
    g["waiting_for"] = std::move(waiting);
  } else {
    g["state"] = "open";
    put_bytes(g, "value", bytes);
  }
  // When it times out: the gate pattern's timer "deadline" of the key.
  const auto timers = s.name + "-timers";
  if (has_store(s, timers)) {
    auto t = src.find(timers, state::timer_index::by_key(key, "deadline"));
    if (t && *t) {
      if (auto due = state::timer_index::decode_by_key_value(**t)) {
        g["timeout_at_ms"] = due->second;
        g["timeout_clock"] =
            due->first == timer_clock::wall_clock ? "wall_clock" : "event_time";
      }
    }
  }
  return g;
}

} // namespace

std::string trace_json(const std::string& key, const trace_sources& src) {
  json j{{"application", src.application},
         {"node", src.node_id},
         {"header", std::string{trace::cause_header}},
         {"trace_headers", src.trace_headers}};
  if (string_serde::deserialize(key))
    j["key"] = key;
  else
    j["key"] = nullptr;
  j["key_base64"] = base64(key);
  json topics = json::array(), services = json::array(), gates = json::array();
  if (src.topology) {
    for (auto& t : src.topology->topics)
      if (t.kind != topic_kind::changelog)
        topics.push_back({{"name", t.name}, {"kind", to_string(t.kind)}});
    for (auto& s : src.topology->services) {
      services.push_back({{"name", s.name},
                          {"pattern", to_string(s.pattern)},
                          {"inputs", s.inputs},
                          {"outputs", s.outputs}});
      if (s.pattern == service_pattern::gate && has_store(s, s.name + "-store"))
        gates.push_back(gate_state(s, key, src));
    }
  }
  j["topics"] = std::move(topics);
  j["services"] = std::move(services);
  j["gates"] = std::move(gates);
  return j.dump();
}

} // namespace weft::detail
