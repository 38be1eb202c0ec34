#pragma once
// The order system's own configuration keys, beside weft's.
//
// weft's config (weft/config.hpp) rejects keys it does not know, so an
// application that needs keys of its own declares them here, with the same
// declaration type (weft::config_key: name, default, doc, bounds) and the
// same sources: defaults, then WEFT_<KEY> in the environment, then
// --key=value on the command line. app_config::parse takes its keys out of
// the command line and hands the rest to weft::config::load, and its help
// text lists them under weft's. (Keys in a --config file are weft's only.)

#include <map>
#include <string>
#include <vector>

#include <weft/config.hpp>
#include <weft/http/server.hpp>
#include <weft/status.hpp>

namespace orders {

/// An application's extra keys and their values after parsing.
class app_config {
 public:
  explicit app_config(std::vector<weft::config_key> keys);

  /// Reads the declared keys from the environment and argv (validated) and
  /// returns the arguments left for weft::config::load (argv[0] first).
  weft::result<std::vector<std::string>> parse(int argc, const char* const* argv);

  /// Sets a key (validated), e.g. a default that a program chooses.
  weft::status set(const std::string& key, const std::string& value);

  const std::string& get_string(const std::string& key) const;
  int64_t get_int(const std::string& key) const;
  bool get_bool(const std::string& key) const;

  /// The declared keys with defaults and docs, for --help.
  std::string help_text() const;

 private:
  const weft::config_key* find(const std::string& name) const;
  std::vector<weft::config_key> keys_;
  std::map<std::string, std::string> values_;
};

/// The order system's keys: topic prefix and partitions, validation.timeout.ms,
/// shipping.delay.ms, the REST address, bounds and token, the node's HTTP
/// port and token, and the notification outbox.
std::vector<weft::config_key> order_system_keys();

/// The arguments for weft::config::load: `rest` (what app_config::parse
/// left, argv[0] first) and weft's http.host and http.port. The order
/// system's keys http.host and http.port (the REST API's, older than weft's
/// node endpoint) shadow weft's keys of the same names, on the command line
/// and as WEFT_HTTP_PORT in the environment; so weft's http.port is always
/// set here from node.http.port (default -1: off) and its http.host from
/// http.host, and its http.auth.token from node.http.auth.token (the order
/// system's http.auth.token is the REST API's). Every node, clustered or
/// not, then serves the live map (/), /cluster, /metrics and
/// /state/<store>/<key> on node.http.port beside the REST API.
std::vector<std::string> weft_arguments(const app_config& app,
                                        std::vector<std::string> rest);

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

  static settings from(const app_config& c);
};

} // namespace orders
