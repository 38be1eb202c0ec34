#include "weft/actors/http_endpoint.hpp"

#include "weft/map/embedded.hpp"
#include "weft/metrics/exposition.hpp"

#include <httplib.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>
#include <thread>

namespace weft::detail {

struct http_endpoint::impl {
  explicit impl(http::limits l) : server(std::move(l)) {}
  http::server server;
  std::thread thread;
};

namespace {

void error(httplib::Response& res, int code, const std::string& why) {
  http::reply_error(res, code, why);
}

} // namespace

const http::refusals& http_endpoint::refused() const {
  return impl_->server.refused();
}

result<std::unique_ptr<http_endpoint>>
http_endpoint::start(const std::string& host, int port, handlers h, http::limits bounds) {
  std::unique_ptr<http_endpoint> ep{new http_endpoint};
  ep->impl_ = std::make_unique<impl>(std::move(bounds));
  auto& srv = ep->impl_->server;
  srv.Get(R"(/state/([^/]+)/(.+))",
          [h](const httplib::Request& req, httplib::Response& res) {
            auto store = req.matches[1].str();
            auto key = req.matches[2].str();
            int64_t max_lag = -1;
            if (req.has_param("max_lag")) {
              try {
                max_lag = std::stoll(req.get_param_value("max_lag"));
              } catch (const std::exception&) {
                return error(res, 400, "max_lag must be a number of records");
              }
            }
            auto r = h.get(store, key, max_lag);
            if (!r) {
              switch (r.error().code()) {
              case errc::not_found:
                return error(res, 404, r.error().message());
              case errc::state_not_ready:
              case errc::timed_out:
                res.set_header("Retry-After", "1");
                return error(res, 503, r.error().message());
              case errc::invalid_argument:
                return error(res, 400, r.error().message());
              default:
                return error(res, 500, r.error().message());
              }
            }
            if (!*r)
              return error(res, 404, "no value for key '" + key + "' in '" + store + "'");
            res.set_content(**r, "application/octet-stream");
          });
  // The live map (weft/map): a page built into the binary that draws
  // /topology and polls /metrics and /cluster. Nothing from elsewhere: the
  // policy keeps the page to this node.
  auto page = [](const char* file, const char* type) {
    return [file, type](const httplib::Request&, httplib::Response& res) {
      auto* f = embedded::find_map_file(file);
      if (!f)
        return error(res, 500, std::string{"the map's "} + file + " is not built in");
      res.set_header("Cache-Control", "no-cache");
      res.set_header("X-Content-Type-Options", "nosniff");
      res.set_header("Content-Security-Policy", "default-src 'self'");
      res.set_content(f->body.data(), f->body.size(), type);
    };
  };
  srv.Get("/", page("map.html", "text/html; charset=utf-8"));
  srv.Get("/map.js", page("map.js", "text/javascript; charset=utf-8"));
  srv.Get("/map.css", page("map.css", "text/css; charset=utf-8"));
  srv.Get("/cluster", [h](const httplib::Request&, httplib::Response& res) {
    res.set_content(h.cluster(), "application/json");
  });
  srv.Get("/metrics", [h](const httplib::Request& req, httplib::Response& res) {
    // The node's clock at the scrape: the map's rates divide by it, not by
    // when the browser's polls happened to return.
    res.set_header("X-Weft-Time-Ms",
                   std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                      std::chrono::system_clock::now().time_since_epoch())
                                      .count()));
    // Prometheus asks for text/plain (or openmetrics); a JSON client may say
    // so and keep getting what /metrics served before it was Prometheus'.
    auto accept = req.get_header_value("Accept");
    if (accept.find("application/json") != std::string::npos &&
        accept.find("text/plain") == std::string::npos)
      return res.set_content(h.metrics_json(), "application/json");
    res.set_content(h.metrics(), metrics::exposition::content_type);
  });
  srv.Get("/metrics.json", [h](const httplib::Request&, httplib::Response& res) {
    res.set_content(h.metrics_json(), "application/json");
  });
  srv.Get("/topology", [h](const httplib::Request& req, httplib::Response& res) {
    auto name = req.has_param("format") ? req.get_param_value("format") : "json";
    auto f = parse_describe_format(name);
    if (!f) return error(res, 400, f.error().message());
    auto text = h.topology(*f);
    if (!text) return error(res, 500, text.error().message());
    res.set_content(*text, *f == describe_format::json  ? "application/json"
                           : *f == describe_format::dot ? "text/vnd.graphviz"
                                                        : "text/plain; charset=utf-8");
  });
  if (h.trace)
    srv.Get("/trace", [h](const httplib::Request& req, httplib::Response& res) {
      if (!req.has_param("key"))
        return error(res, 400,
                     "name the key: GET /trace?key=<key bytes, percent-encoded>");
      res.set_content(h.trace(req.get_param_value("key")), "application/json");
    });
  if (h.parked)
    srv.Get("/parked", [h](const httplib::Request&, httplib::Response& res) {
      res.set_content(h.parked(), "application/json");
    });
  if (h.park) {
    auto release = [h](const httplib::Request& req, httplib::Response& res,
                       const std::optional<std::string>& key) {
      if (!req.has_param("action"))
        return error(res, 400, "say what to do: ?action=retry, skip or drop");
      int64_t partition = -1;
      if (req.has_param("partition")) {
        auto v = req.get_param_value("partition");
        char* end = nullptr;
        partition = std::strtoll(v.c_str(), &end, 10);
        if (v.empty() || *end != '\0' || partition < 0)
          return error(res, 400,
                       "partition must be a partition number, not '" + v.substr(0, 100) +
                           "'");
      }
      auto [code, body] =
          h.park(req.matches[1].str(), key, partition, req.get_param_value("action"));
      if (code == 503) res.set_header("Retry-After", "1");
      res.status = code;
      res.set_content(body, "application/json");
    };
    srv.Post(R"(/parked/([^/]+)/(.+))",
             [release](const httplib::Request& req, httplib::Response& res) {
               release(req, res, req.matches[2].str());
             });
    srv.Post(R"(/parked/([^/]+))",
             [release](const httplib::Request& req, httplib::Response& res) {
               if (req.get_param_value("null_key") != "true")
                 return error(res, 400,
                              "name the key: POST /parked/<service>/<key>, or "
                              "?null_key=true&partition=N for the null key");
               release(req, res, std::nullopt);
             });
  }
  srv.set_error_fallback([](const httplib::Request& req, httplib::Response& res) {
    if (res.status == 404 && res.body.empty())
      error(res, 404,
            "no such endpoint: " + req.path.substr(0, 200) +
                " (try / for the live map, /state/<store>/<key>, /cluster, /metrics, "
                "/metrics.json, /topology, /trace?key=K or /parked)");
  });
  int bound =
      port == 0 ? srv.bind_to_any_port(host) : (srv.bind_to_port(host, port) ? port : -1);
  if (bound <= 0)
    return make_error(errc::invalid_config,
                      "http.port: cannot listen on " + host + ":" + std::to_string(port) +
                          "; pick a free port, 0 for any, or -1 for no HTTP endpoint");
  ep->port_ = bound;
  auto* s = &srv;
  ep->impl_->thread = std::thread{[s] { s->listen_after_bind(); }};
  return ep;
}

http_endpoint::~http_endpoint() {
  if (!impl_) return;
  impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

} // namespace weft::detail
