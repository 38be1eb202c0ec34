#include "weft/http/request_metrics.hpp"

#include "weft/http/server.hpp"

namespace weft::http {

size_t request_metrics::route(std::string method, std::string pattern) {
  auto r = std::make_unique<route_cells>();
  r->method = std::move(method);
  r->pattern = std::move(pattern);
  std::lock_guard<std::mutex> guard{mu_};
  routes_.push_back(std::move(r));
  return routes_.size() - 1;
}

void request_metrics::done(size_t r, clock::time_point started, int status) {
  if (r >= routes_.size()) return;
  auto& cells = *routes_[r];
  if (status >= 100 && status < 600)
    cells.by_status[static_cast<size_t>(status - 100)].fetch_add(
        1, std::memory_order_relaxed);
  cells.latency.observe_us(static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(clock::now() - started)
          .count()));
}

void request_metrics::write(metrics::exposition& page, const refusals* refused) const {
  using metrics::metric_type;
  std::lock_guard<std::mutex> guard{mu_};
  page.family("weft_http_requests_total", metric_type::counter,
              "HTTP requests answered by a handler, by route, method and status code.");
  for (auto& r : routes_)
    for (size_t i = 0; i < r->by_status.size(); ++i) {
      auto n = r->by_status[i].load(std::memory_order_relaxed);
      if (n == 0) continue;
      auto code = std::to_string(i + 100);
      page.sample({{"server", server_},
                   {"route", r->pattern},
                   {"method", r->method},
                   {"code", code}},
                  static_cast<double>(n));
    }
  page.family("weft_http_request_duration_seconds", metric_type::histogram,
              "Time from a request read whole to its answer, by route (long polls "
              "included).");
  for (auto& r : routes_)
    page.sample({{"server", server_}, {"route", r->pattern}, {"method", r->method}},
                r->latency);
  if (!refused) return;
  page.family("weft_http_refused_total", metric_type::counter,
              "HTTP requests the server refused before any handler, by reason.");
  auto one = [&](const char* reason, const std::atomic<uint64_t>& n) {
    page.sample({{"server", server_}, {"reason", reason}},
                static_cast<double>(n.load(std::memory_order_relaxed)));
  };
  one("headers_too_large", refused->headers_too_large);
  one("body_too_large", refused->body_too_large);
  one("timed_out", refused->timed_out);
  one("busy", refused->busy);
  one("unauthorized", refused->unauthorized);
}

} // namespace weft::http
