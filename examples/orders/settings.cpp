#include "settings.hpp"

#include <cstdlib>
#include <sstream>

namespace orders {

namespace {

using kind = weft::config_key::kind;

std::string env_name(const std::string& key) {
  std::string s = "WEFT_";
  for (char c : key)
    s += c == '.' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

weft::status check(const weft::config_key& k, const std::string& v) {
  auto bad = [&](const std::string& what) {
    return weft::make_error(weft::errc::invalid_config,
                            "config key '" + k.name + "': " + what + " (" + k.doc + ")");
  };
  if (k.type == kind::integer) {
    char* end = nullptr;
    errno = 0;
    long long n = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || errno != 0 || *end != '\0')
      return bad("'" + v + "' is not an integer; set e.g. " + k.name + "=" +
                 k.default_value);
    if (n < k.min || n > k.max)
      return bad(v + " is out of range; use a value from " + std::to_string(k.min) +
                 " to " + std::to_string(k.max));
  } else if (k.type == kind::boolean && v != "true" && v != "false") {
    return bad("'" + v + "' is not a boolean; use true or false");
  }
  return {};
}

} // namespace

app_config::app_config(std::vector<weft::config_key> keys) : keys_(std::move(keys)) {
  for (auto& k : keys_)
    values_[k.name] = k.default_value;
}

const weft::config_key* app_config::find(const std::string& name) const {
  for (auto& k : keys_)
    if (k.name == name) return &k;
  return nullptr;
}

weft::status app_config::set(const std::string& key, const std::string& value) {
  auto* k = find(key);
  if (!k)
    return weft::make_error(weft::errc::invalid_config,
                            "unknown config key '" + key + "'");
  if (auto st = check(*k, value); !st) return st;
  values_[key] = value;
  return {};
}

weft::result<std::vector<std::string>> app_config::parse(int argc,
                                                         const char* const* argv) {
  for (auto& k : keys_)
    if (auto* v = std::getenv(env_name(k.name).c_str()))
      if (auto st = set(k.name, v); !st) return st;
  std::vector<std::string> rest;
  if (argc > 0) rest.emplace_back(argv[0]);
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) == 0) {
      auto eq = a.find('=');
      auto name = a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
      if (find(name)) {
        std::string value;
        if (eq != std::string::npos)
          value = a.substr(eq + 1);
        else if (i + 1 < argc)
          value = argv[++i];
        else
          return weft::make_error(weft::errc::invalid_config, "option --" + name +
                                                                  " needs a value: --" +
                                                                  name + "=<value>");
        if (auto st = set(name, value); !st) return st;
        continue;
      }
    }
    rest.push_back(a);
  }
  return rest;
}

const std::string& app_config::get_string(const std::string& key) const {
  static const std::string none;
  auto i = values_.find(key);
  return i == values_.end() ? none : i->second;
}

int64_t app_config::get_int(const std::string& key) const {
  return std::strtoll(get_string(key).c_str(), nullptr, 10);
}

bool app_config::get_bool(const std::string& key) const {
  return get_string(key) == "true";
}

std::string app_config::help_text() const {
  std::ostringstream os;
  os << "\nApplication keys (also WEFT_<KEY> in the environment):\n";
  for (auto& k : keys_)
    os << "  --" << k.name
       << "  (default: " << (k.default_value.empty() ? "\"\"" : k.default_value)
       << ")\n      " << k.doc << "\n";
  return os.str();
}

std::vector<weft::config_key> order_system_keys() {
  std::vector<weft::config_key> k;
  k.push_back({"orders.topic.prefix", kind::string, "",
               "Prefix of every topic of the order system (empty: the contract's "
               "names orders, payments, ...); lets systems share a broker."});
  k.push_back({"orders.partitions", kind::integer, "4",
               "Partitions of the topics the order system creates.", false, 1, 256});
  k.push_back({"validation.timeout.ms", kind::integer, "30000",
               "An order whose three checks are not all in by then FAILs with "
               "\"validation timeout\".",
               false, 1, 86400000});
  k.push_back({"shipping.delay.ms", kind::integer, "1000",
               "How long after PAID an order is SHIPPED.", false, 0, 86400000});
  k.push_back({"http.host", kind::string, "127.0.0.1",
               "Address the REST API (and the node's HTTP endpoint) binds."});
  k.push_back({"http.port", kind::integer, "7070",
               "Port of the REST API; 0 picks a free one. (weft's own http.port, "
               "listed above, is node.http.port here.)",
               false, 0, 65535});
  k.push_back({"http.auth.token", kind::string, "",
               "Non-empty: every REST request needs 'Authorization: Bearer <token>' "
               "(401 without it). Prefer WEFT_HTTP_AUTH_TOKEN to the command line."});
  k.push_back({"http.max.body.bytes", kind::integer, "65536",
               "Largest REST request body (413 beyond): every record the API "
               "writes comes from one.",
               false, 1024, 1 << 30});
  k.push_back({"http.request.timeout.ms", kind::integer, "10000",
               "How long a REST client may take to send a whole request once it "
               "started (408 beyond).",
               false, 100, 3600000});
  k.push_back({"node.http.auth.token", kind::string, "",
               "Bearer token of the node's HTTP endpoint (weft's http.auth.token); "
               "empty: none."});
  k.push_back({"node.http.port", kind::integer, "-1",
               "Port of the weft node's own HTTP endpoint (weft's http.port: "
               "the live map at /, /cluster, /metrics, /state/<store>/<key>; on "
               "every node, clustered or not); 0 picks a free one, -1 turns it "
               "off. http.port is the REST API's.",
               false, -1, 65535});
  k.push_back({"notifications.outbox", kind::string, "",
               "File the notification sender appends each sent notification to; "
               "empty: count and log them only."});
  k.push_back({"orders.services.skip", kind::string, "",
               "Comma-separated services not to run on this node (e.g. fraud)."});
  return k;
}

std::vector<std::string> weft_arguments(const app_config& app,
                                        std::vector<std::string> rest) {
  // Appended: the command line is weft's highest source, above a
  // WEFT_HTTP_PORT meant for the REST API.
  rest.push_back("--http.host=" + app.get_string("http.host"));
  rest.push_back("--http.port=" + app.get_string("node.http.port"));
  rest.push_back("--http.auth.token=" + app.get_string("node.http.auth.token"));
  return rest;
}

settings settings::from(const app_config& c) {
  settings s;
  s.topic_prefix = c.get_string("orders.topic.prefix");
  s.partitions = static_cast<int>(c.get_int("orders.partitions"));
  s.validation_timeout_ms = c.get_int("validation.timeout.ms");
  s.shipping_delay_ms = c.get_int("shipping.delay.ms");
  s.http_host = c.get_string("http.host");
  s.http_port = static_cast<int>(c.get_int("http.port"));
  s.node_http_port = static_cast<int>(c.get_int("node.http.port"));
  s.rest_limits.bearer_token = c.get_string("http.auth.token");
  s.rest_limits.max_body_bytes = static_cast<size_t>(c.get_int("http.max.body.bytes"));
  s.rest_limits.request_timeout =
      std::chrono::milliseconds(c.get_int("http.request.timeout.ms"));
  s.outbox = c.get_string("notifications.outbox");
  std::stringstream skip{c.get_string("orders.services.skip")};
  for (std::string name; std::getline(skip, name, ',');)
    if (!name.empty()) s.skip.push_back(name);
  return s;
}

} // namespace orders
