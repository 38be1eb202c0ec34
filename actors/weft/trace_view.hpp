#pragma once
// What a node serves at GET /trace?key=K for following a key (weft-trace,
// the map page): the application's topics a key's records may be in (every
// topic of the topology but changelogs, whose records are state, not
// narrative), its services, and the partial state each gate holds for the
// key — the gate's "<service>-store" value (parts arrived, started, done)
// and its "deadline" timer in "<service>-timers" (when it times out).
//
// The node does not read the topics itself: a scan of every topic is a
// client's job (bounded by what it asked for, on its own threads), not the
// node endpoint's, whose threads serve queries and metrics. weft-trace reads
// them with what this answer names.
//
// No CAF here; the node passes its query path in. Thread: any (the
// endpoint's); `get` must be safe to call from it.

#include <functional>
#include <optional>
#include <string>

#include "weft/services/describe.hpp"
#include "weft/status.hpp"

namespace weft::detail {

struct trace_sources {
  std::string application;
  std::string node_id;
  bool trace_headers = true; ///< trace.headers on this node
  const topology_description* topology = nullptr;
  /// (store, key bytes) -> the value, nullopt when the key has none, or an
  /// error (errc::state_not_ready while its partition restores or moves).
  std::function<result<std::optional<std::string>>(const std::string& store,
                                                   const std::string& key)>
      get;
  /// (store, key bytes) -> the value in whichever partition holds the key:
  /// for keys the store does not partition by (a timer store's entries live
  /// in the partition of the timer's key, not of the entry's bytes).
  std::function<result<std::optional<std::string>>(const std::string& store,
                                                   const std::string& key)>
      find;
  /// The partition count of a service's inputs (0 when unknown).
  std::function<int(const std::string& service)> partitions;
};

/// The JSON answer for key bytes `key` (README, "Follow a key").
std::string trace_json(const std::string& key, const trace_sources& src);

/// Standard base64 (RFC 4648, padded).
std::string base64(std::string_view in);

} // namespace weft::detail
