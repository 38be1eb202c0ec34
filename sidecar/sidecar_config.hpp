#pragma once
// weft-sidecar's configuration: which topics it materialises as tables,
// which the application subscribes to (push or pull), which it may write,
// and with which serdes — all from keys, no code.
//
//   table.<name>.topic=customers          # a table: latest value per key
//   table.<name>.global=false             # true: every node keeps all of it
//   topic.<topic>.key.serde=string        # string | json | bytes
//   topic.<topic>.value.serde=json        # string | json | bytes
//   topic.<topic>.writable=true           # POST /v1/topics/<topic> allowed
//   topic.<topic>.partitions=4            # created at start-up when missing
//   subscription.<name>.topic=orders
//   subscription.<name>.mode=push         # push | pull
//   subscription.<name>.url=http://127.0.0.1:8090/events   # push only
//   subscription.<name>.…                 # batch, timeouts, back-off, policy
//   sidecar.http.port=7080 …              # the local API (sidecar_keys())
//
// The keys sit in one properties file (--config FILE) beside weft's own
// keys, or on the command line (--table.customers.topic=customers). Every
// other key is weft's and goes to weft::config::load, which rejects what it
// does not know. parse() fails on the first bad key with its name and the fix.
//
// A parsed sidecar_config is an immutable value; any thread may read it.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <weft/config.hpp>
#include <weft/status.hpp>

namespace sidecar {

/// How a topic's keys or values turn into JSON on the HTTP API and back.
///   json   the bytes are JSON text; the API carries the JSON value itself
///   string UTF-8 text; the API carries a JSON string
///   bytes  anything; the API carries it base64-encoded (RFC 4648, padded)
enum class serde_kind { json, string, bytes };

const char* to_string(serde_kind k);
std::optional<serde_kind> serde_from_string(const std::string& s);

struct topic_spec {
  std::string name;
  serde_kind key = serde_kind::string;
  serde_kind value = serde_kind::json;
  bool writable = false;
  int partitions = 0; ///< >0: created with this many partitions when missing
};

struct table_spec {
  std::string name; ///< also the weft store name
  std::string topic;
  bool global = false;
};

enum class delivery_mode { push, pull };

/// What happens to a record the application keeps refusing (push), or that
/// cannot be rendered with its topic's serdes: weft's bad.record.policy
/// (park: push_parking.hpp).
enum class record_policy { fail, skip, dead_letter, park };

struct subscription_spec {
  std::string name;
  std::string topic;
  delivery_mode mode = delivery_mode::push;
  // push
  std::string url;                   ///< http://host:port/path the records go to
  int batch_max = 1;                 ///< >1: POST a JSON array of up to this many
  int64_t timeout_ms = 10000;        ///< one POST
  int64_t retry_backoff_ms = 100;    ///< first pause after a failed POST, doubling
  int64_t retry_backoff_max_ms = 10000;
  int max_attempts = 10;             ///< refusals (non-2xx) before the policy
  record_policy policy = record_policy::fail;
  bool policy_set = false;           ///< false: weft's bad.record.policy applies
  std::string dead_letter_topic;     ///< "" -> <application.id>-<name>-dlq
  std::string start = "earliest";    ///< where a new subscription starts
};

struct http_settings {
  std::string host = "127.0.0.1";
  int port = 7080;
  std::string auth_token;
  int threads = 16;
  int64_t max_body_bytes = 1 << 20;
  int64_t request_timeout_ms = 10000;
};

struct sidecar_config {
  http_settings http;
  int64_t write_timeout_ms = 10000;     ///< bound on one POST /v1/topics answer
  int idempotency_partitions = 4;       ///< of <application.id>-sidecar-requests
  int64_t idempotency_retention_ms = 7LL * 24 * 3600 * 1000;
  std::map<std::string, topic_spec> topics; ///< every topic named anywhere
  std::map<std::string, table_spec> tables;
  std::map<std::string, subscription_spec> subscriptions;

  /// The serdes of `topic` (defaults when it has no topic.* keys).
  const topic_spec& topic(const std::string& name) const;
};

/// The sidecar's fixed keys (sidecar.*) with defaults and docs, for --help.
const std::vector<weft::config_key>& sidecar_keys();

/// The --help text of the sidecar's keys, fixed and per table/topic/subscription.
std::string help_text();

/// What parse() makes of a command line.
struct parsed_arguments {
  sidecar_config sidecar;
  /// argv[0], then weft's keys from the --config file (as --key=value, those
  /// set in the environment left out so the environment still wins), then
  /// the command line's other arguments: for weft::config::load.
  std::vector<std::string> weft_args;
  bool help = false;
};

/// Splits the command line and the --config file (or WEFT_CONFIG) into the
/// sidecar's keys and weft's. sidecar.* keys may also come from the
/// environment (WEFT_SIDECAR_HTTP_AUTH_TOKEN, …). Then load weft's config
/// from weft_args and call apply_defaults.
weft::result<parsed_arguments> parse(int argc, const char* const* argv);

/// Builds the sidecar's part from key/value pairs (tests, embedding): keys
/// that are not the sidecar's are an error.
weft::result<sidecar_config> from_map(const std::map<std::string, std::string>& kv);

/// Fills what depends on weft's keys: each subscription's policy (weft's
/// bad.record.policy unless set) and dead-letter topic; checks that the
/// sidecar has something to do.
weft::status apply_defaults(sidecar_config& c, const weft::config& cfg);

} // namespace sidecar
