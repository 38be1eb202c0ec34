#pragma once
// Node configuration, Kafka-Streams style: each key is declared once (name,
// default, validation, doc) in config.cpp, and values come from, in rising
// precedence, the defaults, a properties file (--config FILE), environment
// variables (WEFT_ + the key upper-cased with '.' as '_', e.g.
// WEFT_APPLICATION_ID) and the command line (--key=value or --key value).
//
// Validation happens once, in load(): an unknown key, a missing required key or
// a malformed value fails with errc::invalid_config and a message naming the
// key and the fix. librdkafka properties pass through under the prefixes
// `kafka.` (every client), `consumer.`, `producer.` and `admin.` (one kind,
// overriding `kafka.`); they are checked by librdkafka when clients are made.
//
// A config is an immutable value after load(); any thread may read it.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "weft/status.hpp"

namespace weft {

/// The declaration of one configuration key.
struct config_key {
  enum class kind { string, integer, boolean, choice };
  std::string name;
  kind type = kind::string;
  std::string default_value; ///< empty and required=true: must be set
  std::string doc;
  bool required = false;
  int64_t min = 0;                  ///< integer keys: inclusive bounds
  int64_t max = INT64_MAX;          ///<
  std::vector<std::string> choices; ///< choice keys: the allowed values
};

/// What a program adds to weft's keys. Its own keys come from the same
/// sources as weft's (defaults, --config file, WEFT_<KEY>, command line),
/// are validated the same way (errors name the key and the fix), are listed
/// by --help under weft's, and are read with config::app_string / app_int /
/// app_bool.
struct app_schema {
  /// The program's keys. A name weft uses fails at load() unless `renamed`
  /// moves weft's key away; prefixes weft reserves (kafka., consumer.,
  /// producer., admin., service.) fail too.
  std::vector<config_key> keys;
  /// weft keys this program names differently (weft's name -> the name here,
  /// in every source and in --help); the program reads them by weft's name.
  /// So a program keeps a key it had before weft had one of that name: the
  /// order system's REST API owns http.port, and weft's http.port is
  /// node.http.port there.
  std::map<std::string, std::string> renamed;
  /// Defaults the program chooses for weft keys (by weft's name), above
  /// weft's own defaults and below every source; --help shows them.
  std::map<std::string, std::string> defaults;
};

/// Which librdkafka client a property set is for.
enum class client_kind { consumer, producer, admin };

class config {
 public:
  /// The keys weft declares, in documentation order.
  static const std::vector<config_key>& keys();

  /// Parses the command line (and the file and environment it points to).
  /// `--help` sets help_requested() and skips the required-key check.
  /// `app` adds the program's own keys (see app_schema); a schema that
  /// collides with weft's keys fails here, naming the key.
  static result<config> load(int argc, const char* const* argv,
                             const app_schema& app = {});

  /// Builds a config from explicit key/value pairs (tests, embedding), keys
  /// named as in `app`. The environment is not read.
  static result<config> from_map(const std::map<std::string, std::string>& values,
                                 const app_schema& app = {});

  /// Reads a Java-style properties file: key=value or key: value lines, '#'
  /// and '!' comments. Errors name the file and line. A file larger than
  /// max_properties_bytes is refused (a config file is small; this bounds
  /// what e.g. --config=/dev/zero can make a node read).
  static result<std::map<std::string, std::string>>
  read_properties(const std::string& path);

  /// Parses properties text as read_properties does; errors name `source`
  /// and the line.
  static result<std::map<std::string, std::string>>
  parse_properties(std::string_view text, const std::string& source);

  static constexpr size_t max_properties_bytes = 1 << 20;

  /// The --help text: usage, every key with its default and doc, and the
  /// pass-through prefixes.
  static std::string help_text(std::string_view program, const app_schema& app = {});

  bool help_requested() const { return help_; }
  /// `--version`: the program prints weft's version (weft/version.hpp) and
  /// exits; like --help it skips the required-key check.
  bool version_requested() const { return version_; }
  /// `--describe[=FORMAT]` (text, dot, mermaid or json; text when no
  /// format is given): the program prints its topology and exits
  /// (node::run does). Empty when not asked. Like --help it skips the
  /// required-key check.
  const std::string& describe_format() const { return describe_; }

  /// weft's keys, by weft's names (whatever app_schema::renamed calls them).
  const std::string& get_string(std::string_view key) const;
  int64_t get_int(std::string_view key) const;
  bool get_bool(std::string_view key) const;
  /// Whether a source (file, environment, command line, from_map's values)
  /// set weft key `key`, rather than a default.
  bool was_set(std::string_view key) const;

  /// The program's own keys (app_schema::keys); empty for an undeclared one.
  const std::string& app_string(std::string_view key) const;
  int64_t app_int(std::string_view key) const;
  bool app_bool(std::string_view key) const;

  /// librdkafka properties for one kind of client: `kafka.*` then the kind's
  /// own prefix, prefixes stripped; bootstrap.servers included, and for
  /// producers partitioner=murmur2_random (Java's partitioning) unless set.
  std::map<std::string, std::string> kafka_properties(client_kind kind) const;

  /// Keys of the form service.<name>.<key>, for per-service overrides:
  /// returns the value for `service` if set, else the node-wide `key`.
  const std::string& service_value(std::string_view service, std::string_view key) const;

  /// Names of services mentioned by service.<name>.* keys (to reject typos).
  std::vector<std::string> mentioned_services() const;

  /// Returns a copy with weft key `key` (weft's name) set (validated).
  result<config> with(const std::string& key, const std::string& value) const;
  /// Returns a copy with the program's key `key` set (validated).
  result<config> with_app(const std::string& key, const std::string& value) const;

  /// Every weft key and value, for logging at start-up.
  const std::map<std::string, std::string, std::less<>>& values() const {
    return values_;
  }

 private:
  static status validate(const std::map<std::string, std::string, std::less<>>& raw,
                         bool check_required);
  struct sources;
  static result<config> build(const sources& from, const app_schema& app,
                              bool check_required);
  std::map<std::string, std::string, std::less<>> values_;
  std::map<std::string, std::string, std::less<>> app_values_;
  std::vector<std::string> set_keys_; ///< weft keys a source set, sorted
  std::shared_ptr<const app_schema> app_;
  bool help_ = false;
  bool version_ = false;
  std::string describe_;
};

} // namespace weft
