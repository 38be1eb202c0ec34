#pragma once
// The order system's own configuration keys, declared to weft's config
// (weft::app_schema): they come from the same --config file, WEFT_<KEY>
// environment variables and command line as weft's, are checked the same
// way and are listed by --help under weft's.
//
// The order system's http.* keys are its REST API's, older than weft's node
// endpoint: weft's http.port, http.auth.token, http.max.body.bytes,
// http.max.header.bytes and http.request.timeout.ms are node.http.* here
// (app_schema::renamed). http.host is weft's key, and the REST API binds it
// too.

#include <map>
#include <string>
#include <vector>

#include <weft/config.hpp>
#include <weft/http/server.hpp>
#include <weft/status.hpp>

namespace orders {

/// The order system's keys (topic prefix and partitions,
/// validation.timeout.ms, shipping.delay.ms, the REST API's port, bounds and
/// token, the notification outbox, services to skip) and weft's http.* keys
/// renamed node.http.*.
weft::app_schema order_system_schema();

/// What the services need of the configuration, read once.
struct settings {
  std::string topic_prefix;
  int partitions = 4;
  int64_t validation_timeout_ms = 30000;
  int64_t shipping_delay_ms = 1000;
  std::string http_host = "127.0.0.1";
  int http_port = 7070;
  int node_http_port = -1; ///< weft's http.port: the node's own endpoint, -1 off
  /// The REST API's bounds and token (http.auth.token, http.max.body.bytes,
  /// http.request.timeout.ms); its threads are rest_api's.
  weft::http::limits rest_limits;
  std::string outbox; ///< file the notification sender appends to ("" none)
  /// Services not to run on this node, by name (tests leave a check out to
  /// see the validation timeout; a deployment could split services).
  std::vector<std::string> skip;

  static settings from(const weft::config& c);
};

} // namespace orders
