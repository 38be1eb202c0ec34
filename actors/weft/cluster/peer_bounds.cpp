#include "weft/cluster/peer_bounds.hpp"

#include <algorithm>

#include "weft/cluster/scan_merge.hpp"

namespace weft::cluster {

namespace {

std::string too_long(const char* field, size_t size, size_t limit) {
  return std::string{field} + " is " + std::to_string(size) + " bytes, more than " +
         std::to_string(limit);
}

template <class Map>
std::string units_violation(const Map& m, const char* field, size_t max_units) {
  if (m.size() > max_units)
    return std::string{field} + " names " + std::to_string(m.size()) +
           " units, more than the application's " + std::to_string(max_units);
  for (auto& [u, lag] : m)
    if (u >= max_units)
      return std::string{field} + " names unit " + std::to_string(u) +
             ", beyond the application's " + std::to_string(max_units);
  return {};
}

} // namespace

std::string peer_id_violation(const std::string& id) {
  if (id.empty()) return "the node id is empty";
  if (id.size() > max_peer_text) return too_long("the node id", id.size(), max_peer_text);
  return {};
}

std::string peer_record_violation(const member_record& m) {
  if (auto why = peer_id_violation(m.id); !why.empty()) return why;
  if (m.host.size() > max_peer_text)
    return too_long("the host", m.host.size(), max_peer_text);
  if (m.http.size() > max_peer_text)
    return too_long("the HTTP address", m.http.size(), max_peer_text);
  if (m.topology.size() > max_peer_text)
    return too_long("the topology fingerprint", m.topology.size(), max_peer_text);
  return {};
}

std::string peer_status_violation(const node_status& s, size_t max_units) {
  if (auto why = peer_id_violation(s.node); !why.empty()) return why;
  if (!std::is_sorted(s.holding.begin(), s.holding.end()) ||
      std::adjacent_find(s.holding.begin(), s.holding.end()) != s.holding.end())
    return "the units it holds are not sorted, or repeat";
  if (max_units == 0) return {};
  if (s.holding.size() > max_units)
    return "it holds " + std::to_string(s.holding.size()) +
           " units, more than the application's " + std::to_string(max_units);
  if (!s.holding.empty() && s.holding.back() >= max_units)
    return "it holds unit " + std::to_string(s.holding.back()) +
           ", beyond the application's " + std::to_string(max_units);
  if (auto why = units_violation(s.standby_lag, "its standby lags", max_units);
      !why.empty())
    return why;
  return units_violation(s.active_lag, "its active lags", max_units);
}

std::string peer_query_violation(const std::string& store, const std::string& key,
                                 int64_t max_standby_lag) {
  if (store.size() > max_peer_text)
    return too_long("the store name", store.size(), max_peer_text);
  if (key.size() > max_peer_key) return too_long("the key", key.size(), max_peer_key);
  if (max_standby_lag < -1)
    return "the standby lag bound is " + std::to_string(max_standby_lag) +
           " (-1 or more)";
  return {};
}

std::string peer_scan_violation(const std::string& store, size_t partitions,
                                const std::string& from, const std::string& to,
                                uint32_t limit) {
  if (store.size() > max_peer_text)
    return too_long("the store name", store.size(), max_peer_text);
  if (from.size() > max_peer_key)
    return too_long("the lower bound", from.size(), max_peer_key);
  if (to.size() > max_peer_key)
    return too_long("the upper bound", to.size(), max_peer_key);
  if (partitions > 65536)
    return "it names " + std::to_string(partitions) + " partitions, more than 65536";
  if (limit == 0 || limit > max_scan_rows)
    return "the row limit is " + std::to_string(limit) + " (1 to " +
           std::to_string(max_scan_rows) + ")";
  return {};
}

std::string peer_park_violation(const std::string& service, int32_t partition,
                                const std::string& key_id, const std::string& action) {
  if (service.size() > max_peer_text)
    return too_long("the service name", service.size(), max_peer_text);
  if (partition < 0 || partition > 65535)
    return "the partition is " + std::to_string(partition) + " (0 to 65535)";
  if (key_id.size() > max_peer_key + 5)
    return too_long("the key", key_id.size(), max_peer_key + 5);
  if (action != "retry" && action != "skip" && action != "drop")
    return "the action is " + std::to_string(action.size()) +
           " bytes that are not retry, skip or drop";
  return {};
}

} // namespace weft::cluster
