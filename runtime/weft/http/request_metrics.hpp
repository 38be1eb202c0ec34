#pragma once
// Counts an HTTP API's requests per route and status code and times them,
// for the Prometheus page (weft_http_requests_total and
// weft_http_request_duration_seconds, labelled server, route, method, code).
//
//   weft::http::request_metrics m{"orders-rest"};
//   auto route = m.route("POST", "/v1/orders");          // before serving
//   ... in the handler:  auto t = m.start(); ...; m.done(route, t, res.status);
//   ... on a scrape:     m.write(page, &server.refused());
//
// Routes are fixed before the server serves (their label set stays bounded
// whatever clients send): call route() before any done(). write() may run
// on any thread at any time (a scrape while routes are being added); done()
// is two relaxed fetch_adds and a histogram observation.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "weft/metrics/exposition.hpp"

namespace weft::http {

struct refusals;

class request_metrics {
 public:
  using clock = std::chrono::steady_clock;

  explicit request_metrics(std::string server) : server_(std::move(server)) {}

  /// Registers a route (its label is the pattern as a reader writes it,
  /// e.g. "/v1/orders/{id}"); returns its index for done().
  size_t route(std::string method, std::string pattern);

  clock::time_point start() const { return clock::now(); }
  /// Counts one request of route `r` answered with `status`.
  void done(size_t r, clock::time_point started, int status);

  /// Writes both families, and weft_http_refused_total from `refused` (the
  /// requests the server answered itself: limits, tokens) when given.
  void write(metrics::exposition& page, const refusals* refused = nullptr) const;

 private:
  struct route_cells {
    std::string method;
    std::string pattern;
    std::array<std::atomic<uint64_t>, 500> by_status{}; ///< status 100..599
    metrics::histogram latency{metrics::histogram::latency_bounds()};
  };
  std::string server_;
  mutable std::mutex mu_; ///< route() against write()
  std::vector<std::unique_ptr<route_cells>> routes_;
};

} // namespace weft::http
