#pragma once
// The node's HTTP endpoint (http.port): interactive queries, the cluster
// view and metrics, on a thread pool of its own (cpp-httplib).
//
//   GET /          the live map (map.html, /map.js, /map.css, built in from
//                  weft/map): the topology with live figures, polling
//                  /topology, /metrics and /cluster from the browser
//   GET /state/<store>/<key>[?max_lag=N]  the value's bytes (200); 404 with a
//       reason for an unknown key or store; 503 + Retry-After while the key's
//       partition restores or moves (retriable); 400 for a store that is not
//       a key-value store. max_lag: a standby at most N changelog records
//       behind may answer.
//   GET /cluster   the cluster view (JSON)
//   GET /metrics   the node's metrics in Prometheus' text format; with
//                  "Accept: application/json" (and no text/plain) the JSON
//                  counters, as GET /metrics.json
//   GET /topology[?format=json|dot|mermaid|text]  node::describe() (JSON by
//                  default): what a map page draws
//   GET /trace?key=K  following key K (bytes, percent-encoded): the topics
//       its records may be in, the services, and each gate's partial state
//       for K (trace_view.hpp); 400 without key
//   GET /parked    the parked keys of this node's tasks (JSON,
//       bad.record.policy=park)
//   POST /parked/<service>/<key>?action=retry|skip|drop[&partition=N]
//   POST /parked/<service>?null_key=true&partition=N&action=...
//       an operator's release of a parked key, routed to the node where its
//       partition is active: 202 (retry, skip: its held records are
//       replayed in order), 200 (drop); 400 for a bad action or partition,
//       404 for an unknown service or a key that is not parked, 409 while
//       the key is being released already, 503 + Retry-After while the
//       partition restores or moves. The answer's JSON names the service,
//       partition, key, action, held records and the node that carried the
//       call out ("node": the owner, also when another node forwarded it).
// Keys in the path are the key's serialized bytes, percent-encoded.
//
// It serves on weft::http::server, which bounds what a client can make it do
// (request size and time, waiting connections) and, with http.auth.token
// set, answers 401 to a request without that bearer token
// (weft/http/server.hpp).

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "weft/http/server.hpp"
#include "weft/services/describe.hpp"
#include "weft/status.hpp"

namespace weft::detail {

class http_endpoint {
 public:
  struct handlers {
    std::function<result<std::optional<std::string>>(
        const std::string& store, const std::string& key, int64_t max_lag)>
        get;
    std::function<std::string()> cluster;
    std::function<std::string()> metrics;      ///< Prometheus text
    std::function<std::string()> metrics_json; ///< the JSON counters
    std::function<result<std::string>(describe_format)> topology;
    std::function<std::string()> parked;
    /// key bytes -> the JSON of GET /trace (trace_view.hpp).
    std::function<std::string(const std::string&)> trace;
    /// (service, key or nullopt for the null key, partition or -1 to hash
    /// the key, action) -> (HTTP status, JSON body).
    std::function<std::pair<int, std::string>(const std::string&,
                                              const std::optional<std::string>&, int64_t,
                                              const std::string&)>
        park;
  };

  /// Binds host:port (0: any free port) and serves on a thread of its own,
  /// within `bounds` (http::limits_from(cfg) for a node's http.* keys).
  static result<std::unique_ptr<http_endpoint>>
  start(const std::string& host, int port, handlers h, http::limits bounds = {});

  /// What the server refused so far.
  const http::refusals& refused() const;
  ~http_endpoint(); ///< stops serving

  int port() const { return port_; }

  struct impl;

 private:
  http_endpoint() = default;
  std::unique_ptr<impl> impl_;
  int port_ = 0;
};

} // namespace weft::detail
