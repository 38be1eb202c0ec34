#include "sidecar_config.hpp"

#include <cerrno>
#include <cstdlib>
#include <sstream>

namespace sidecar {

namespace {

using kind = weft::config_key::kind;

weft::status bad(const std::string& key, const std::string& why) {
  return weft::make_error(weft::errc::invalid_config,
                          "config key '" + key + "': " + why);
}

std::string env_name(const std::string& key) {
  std::string s = "WEFT_";
  for (char c : key)
    s += c == '.' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

weft::result<int64_t> integer(const std::string& key, const std::string& v, int64_t min,
                              int64_t max) {
  char* end = nullptr;
  errno = 0;
  long long n = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || errno != 0 || *end != '\0')
    return bad(key, "'" + v + "' is not an integer");
  if (n < min || n > max)
    return bad(key, v + " is out of range; use a value from " + std::to_string(min) +
                        " to " + std::to_string(max));
  return static_cast<int64_t>(n);
}

weft::result<bool> boolean(const std::string& key, const std::string& v) {
  if (v == "true") return true;
  if (v == "false") return false;
  return bad(key, "'" + v + "' is not a boolean; use true or false");
}

weft::result<serde_kind> serde(const std::string& key, const std::string& v) {
  if (auto k = serde_from_string(v)) return *k;
  return bad(key, "'" + v + "' is not a serde; use json, string or bytes");
}

/// Names of tables, subscriptions and topics: what Kafka allows in a topic
/// name (letters, digits, '.', '_', '-'), at most 200 bytes.
bool valid_name(const std::string& n) {
  if (n.empty() || n.size() > 200) return false;
  for (char c : n)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-')
      return false;
  return true;
}

/// Splits "<prefix><name>.<field>" where field is one of `fields` (fields may
/// hold dots, names too: the longest field that ends the key wins).
bool split(const std::string& key, const std::string& prefix,
           const std::vector<std::string>& fields, std::string& name, std::string& field) {
  if (key.rfind(prefix, 0) != 0) return false;
  const std::string rest = key.substr(prefix.size());
  size_t best = 0;
  for (auto& f : fields) {
    const std::string tail = "." + f;
    if (rest.size() > tail.size() &&
        rest.compare(rest.size() - tail.size(), tail.size(), tail) == 0 &&
        f.size() > best) {
      best = f.size();
      field = f;
      name = rest.substr(0, rest.size() - tail.size());
    }
  }
  return best > 0;
}

const std::vector<std::string> table_fields{"topic", "global"};
const std::vector<std::string> topic_fields{"key.serde", "value.serde", "writable",
                                            "partitions"};
const std::vector<std::string> subscription_fields{
    "topic",         "mode",           "url",
    "batch.max",     "timeout.ms",     "retry.backoff.ms",
    "retry.backoff.max.ms", "max.attempts", "bad.record.policy",
    "dead.letter.topic",    "start"};

bool is_sidecar_key(const std::string& k) {
  return k.rfind("sidecar.", 0) == 0 || k.rfind("table.", 0) == 0 ||
         k.rfind("topic.", 0) == 0 || k.rfind("subscription.", 0) == 0;
}

weft::status set_key(sidecar_config& c, const std::string& key, const std::string& v) {
  std::string name, field;
  if (key.rfind("sidecar.", 0) == 0) {
    auto& h = c.http;
    if (key == "sidecar.http.host") {
      if (v.empty()) return bad(key, "empty; set an address such as 127.0.0.1");
      h.host = v;
    } else if (key == "sidecar.http.port") {
      auto n = integer(key, v, 0, 65535);
      if (!n) return n.error();
      h.port = static_cast<int>(*n);
    } else if (key == "sidecar.http.auth.token") {
      h.auth_token = v;
    } else if (key == "sidecar.http.threads") {
      auto n = integer(key, v, 2, 1024);
      if (!n) return n.error();
      h.threads = static_cast<int>(*n);
    } else if (key == "sidecar.http.max.body.bytes") {
      auto n = integer(key, v, 1024, 64 << 20);
      if (!n) return n.error();
      h.max_body_bytes = *n;
    } else if (key == "sidecar.http.request.timeout.ms") {
      auto n = integer(key, v, 100, 3600000);
      if (!n) return n.error();
      h.request_timeout_ms = *n;
    } else if (key == "sidecar.write.timeout.ms") {
      auto n = integer(key, v, 100, 600000);
      if (!n) return n.error();
      c.write_timeout_ms = *n;
    } else if (key == "sidecar.idempotency.partitions") {
      auto n = integer(key, v, 1, 1000);
      if (!n) return n.error();
      c.idempotency_partitions = static_cast<int>(*n);
    } else if (key == "sidecar.idempotency.retention.ms") {
      auto n = integer(key, v, 60000, INT64_MAX);
      if (!n) return n.error();
      c.idempotency_retention_ms = *n;
    } else {
      return bad(key, "unknown sidecar key; the sidecar's keys are listed by --help");
    }
    return {};
  }
  if (key.rfind("table.", 0) == 0) {
    if (!split(key, "table.", table_fields, name, field))
      return bad(key, "unknown table key; use table.<name>.topic or table.<name>.global");
    if (!valid_name(name))
      return bad(key, "table name '" + name + "' must be letters, digits, '.', '_', '-'");
    auto& t = c.tables[name];
    t.name = name;
    if (field == "topic") {
      if (!valid_name(v)) return bad(key, "'" + v + "' is not a topic name");
      t.topic = v;
    } else {
      auto b = boolean(key, v);
      if (!b) return b.error();
      t.global = *b;
    }
    return {};
  }
  if (key.rfind("topic.", 0) == 0) {
    if (!split(key, "topic.", topic_fields, name, field))
      return bad(key, "unknown topic key; use topic.<topic>.key.serde, "
                      "topic.<topic>.value.serde, topic.<topic>.writable or "
                      "topic.<topic>.partitions");
    if (!valid_name(name)) return bad(key, "'" + name + "' is not a topic name");
    auto& t = c.topics[name];
    t.name = name;
    if (field == "writable") {
      auto b = boolean(key, v);
      if (!b) return b.error();
      t.writable = *b;
    } else if (field == "partitions") {
      auto n = integer(key, v, 1, 10000);
      if (!n) return n.error();
      t.partitions = static_cast<int>(*n);
    } else {
      auto s = serde(key, v);
      if (!s) return s.error();
      (field == "key.serde" ? t.key : t.value) = *s;
    }
    return {};
  }
  if (!split(key, "subscription.", subscription_fields, name, field))
    return bad(key, "unknown subscription key; subscription.<name>.topic, .mode, .url, "
                    ".batch.max, .timeout.ms, .retry.backoff.ms, .retry.backoff.max.ms, "
                    ".max.attempts, .bad.record.policy, .dead.letter.topic, .start");
  if (!valid_name(name))
    return bad(key, "subscription name '" + name +
                        "' must be letters, digits, '.', '_', '-'");
  auto& s = c.subscriptions[name];
  s.name = name;
  if (field == "topic") {
    if (!valid_name(v)) return bad(key, "'" + v + "' is not a topic name");
    s.topic = v;
  } else if (field == "mode") {
    if (v == "push")
      s.mode = delivery_mode::push;
    else if (v == "pull")
      s.mode = delivery_mode::pull;
    else
      return bad(key, "'" + v + "' is not a mode; use push or pull");
  } else if (field == "url") {
    // http://host:port/path: the application beside the sidecar (no TLS).
    if (v.rfind("http://", 0) != 0 || v.size() <= 7 || v[7] == '/')
      return bad(key, "'" + v + "' is not an http:// URL, e.g. http://127.0.0.1:8090/events");
    s.url = v;
  } else if (field == "batch.max") {
    auto n = integer(key, v, 1, 10000);
    if (!n) return n.error();
    s.batch_max = static_cast<int>(*n);
  } else if (field == "timeout.ms") {
    auto n = integer(key, v, 10, 600000);
    if (!n) return n.error();
    s.timeout_ms = *n;
  } else if (field == "retry.backoff.ms") {
    auto n = integer(key, v, 1, 600000);
    if (!n) return n.error();
    s.retry_backoff_ms = *n;
  } else if (field == "retry.backoff.max.ms") {
    auto n = integer(key, v, 1, 600000);
    if (!n) return n.error();
    s.retry_backoff_max_ms = *n;
  } else if (field == "max.attempts") {
    auto n = integer(key, v, 1, 1000000);
    if (!n) return n.error();
    s.max_attempts = static_cast<int>(*n);
  } else if (field == "bad.record.policy") {
    if (v == "fail")
      s.policy = record_policy::fail;
    else if (v == "skip")
      s.policy = record_policy::skip;
    else if (v == "dead_letter")
      s.policy = record_policy::dead_letter;
    else if (v == "park")
      s.policy = record_policy::park;
    else
      return bad(key, "'" + v + "' is not a policy; use fail, skip, dead_letter or park");
    s.policy_set = true;
  } else if (field == "dead.letter.topic") {
    if (!valid_name(v)) return bad(key, "'" + v + "' is not a topic name");
    s.dead_letter_topic = v;
  } else {
    if (v != "earliest" && v != "latest")
      return bad(key, "'" + v + "' is not a start; use earliest or latest");
    s.start = v;
  }
  return {};
}

/// Checks what single keys cannot: required keys, references.
weft::status check(sidecar_config& c) {
  for (auto& [n, t] : c.tables) {
    if (t.topic.empty())
      return bad("table." + n + ".topic", "required: the topic the table materialises");
    c.topics.try_emplace(t.topic, topic_spec{t.topic});
  }
  for (auto& [n, s] : c.subscriptions) {
    if (s.topic.empty())
      return bad("subscription." + n + ".topic", "required: the topic to deliver");
    if (s.mode == delivery_mode::push && s.url.empty())
      return bad("subscription." + n + ".url",
                 "required for mode=push: where to POST the records, e.g. "
                 "http://127.0.0.1:8090/events");
    if (s.mode == delivery_mode::pull && !s.url.empty())
      return bad("subscription." + n + ".url",
                 "set for mode=pull; pull subscriptions are read from "
                 "GET /v1/subscriptions/" + n + "/events, remove the url or use mode=push");
    if (s.retry_backoff_max_ms < s.retry_backoff_ms)
      return bad("subscription." + n + ".retry.backoff.max.ms",
                 "smaller than retry.backoff.ms (" + std::to_string(s.retry_backoff_ms) +
                     ")");
    c.topics.try_emplace(s.topic, topic_spec{s.topic});
  }
  return {};
}

} // namespace

const char* to_string(serde_kind k) {
  switch (k) {
  case serde_kind::json: return "json";
  case serde_kind::string: return "string";
  case serde_kind::bytes: return "bytes";
  }
  return "?";
}

std::optional<serde_kind> serde_from_string(const std::string& s) {
  if (s == "json") return serde_kind::json;
  if (s == "string") return serde_kind::string;
  if (s == "bytes") return serde_kind::bytes;
  return std::nullopt;
}

const topic_spec& sidecar_config::topic(const std::string& name) const {
  static const topic_spec defaults{};
  auto i = topics.find(name);
  return i == topics.end() ? defaults : i->second;
}

const std::vector<weft::config_key>& sidecar_keys() {
  static const std::vector<weft::config_key> keys{
      {"sidecar.http.host", kind::string, "127.0.0.1",
       "address of the sidecar's HTTP API (keep it local unless a token is set)"},
      {"sidecar.http.port", kind::integer, "7080", "port of the HTTP API; 0 picks one"},
      {"sidecar.http.auth.token", kind::string, "",
       "non-empty: every request needs Authorization: Bearer <token> (prefer "
       "WEFT_SIDECAR_HTTP_AUTH_TOKEN)"},
      {"sidecar.http.threads", kind::integer, "16",
       "requests served at once (an open event stream holds one)"},
      {"sidecar.http.max.body.bytes", kind::integer, "1048576", "largest request body"},
      {"sidecar.http.request.timeout.ms", kind::integer, "10000",
       "time to send a whole request"},
      {"sidecar.write.timeout.ms", kind::integer, "10000",
       "bound on a write's wait for Kafka (then 503)"},
      {"sidecar.idempotency.partitions", kind::integer, "4",
       "partitions of <application.id>-sidecar-requests (write ids)"},
      {"sidecar.idempotency.retention.ms", kind::integer, "604800000",
       "how long Kafka keeps a write id's record"},
  };
  return keys;
}

std::string help_text() {
  std::ostringstream o;
  o << "\nweft-sidecar keys:\n";
  for (auto& k : sidecar_keys())
    o << "  --" << k.name << " (default '" << k.default_value << "')\n      " << k.doc
      << "\n";
  o << "  --table.<name>.topic             topic materialised as table <name> "
       "(required)\n"
       "  --table.<name>.global            true: a GlobalKTable on every node (false)\n"
       "  --topic.<topic>.key.serde        json | string | bytes (string)\n"
       "  --topic.<topic>.value.serde      json | string | bytes (json)\n"
       "  --topic.<topic>.writable         POST /v1/topics/<topic> allowed (false)\n"
       "  --topic.<topic>.partitions       create the topic with N partitions if "
       "missing\n"
       "  --subscription.<name>.topic      topic delivered to the application "
       "(required)\n"
       "  --subscription.<name>.mode       push (POST to url) | pull (event stream)\n"
       "  --subscription.<name>.url        push: http://host:port/path\n"
       "  --subscription.<name>.batch.max  push: records per POST, >1 sends arrays (1)\n"
       "  --subscription.<name>.timeout.ms push: bound on one POST (10000)\n"
       "  --subscription.<name>.retry.backoff.ms / .retry.backoff.max.ms (100 / 10000)\n"
       "  --subscription.<name>.max.attempts  refusals before bad.record.policy (10)\n"
       "  --subscription.<name>.bad.record.policy  fail | skip | dead_letter | park "
       "(weft's)\n"
       "  --subscription.<name>.dead.letter.topic  (<application.id>-<name>-dlq)\n"
       "  --subscription.<name>.start      earliest | latest, with no committed offset\n";
  return o.str();
}

weft::result<sidecar_config> from_map(const std::map<std::string, std::string>& kv) {
  sidecar_config c;
  for (auto& [k, v] : kv) {
    if (!is_sidecar_key(k)) return bad(k, "not a sidecar key");
    if (auto st = set_key(c, k, v); !st) return st;
  }
  if (auto st = check(c); !st) return st;
  return c;
}

weft::result<parsed_arguments> parse(int argc, const char* const* argv) {
  parsed_arguments out;
  std::map<std::string, std::string> mine;
  std::vector<std::string> weft_from_file;
  std::vector<std::string> rest;
  std::string file;
  if (auto* f = std::getenv("WEFT_CONFIG")) file = f;
  for (auto& k : sidecar_keys())
    if (auto* v = std::getenv(env_name(k.name).c_str())) mine[k.name] = v;
  std::map<std::string, std::string> from_cli;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      out.help = true;
      rest.push_back(a);
      continue;
    }
    if (a.rfind("--", 0) != 0) {
      rest.push_back(a);
      continue;
    }
    auto eq = a.find('=');
    std::string name = a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    auto value = [&]() -> weft::result<std::string> {
      if (eq != std::string::npos) return a.substr(eq + 1);
      if (i + 1 < argc) return std::string{argv[++i]};
      return bad(name, "--" + name + " needs a value");
    };
    if (name == "config") {
      auto v = value();
      if (!v) return v.error();
      file = *v;
    } else if (is_sidecar_key(name)) {
      auto v = value();
      if (!v) return v.error();
      from_cli[name] = *v;
    } else {
      rest.push_back(a);
    }
  }
  if (!file.empty()) {
    auto props = weft::config::read_properties(file);
    if (!props) return props.error();
    for (auto& [k, v] : *props) {
      if (is_sidecar_key(k)) {
        mine[k] = v; // the file is below the command line; env below the file
      } else if (!std::getenv(env_name(k).c_str())) {
        weft_from_file.push_back("--" + k + "=" + v);
      }
    }
  }
  for (auto& [k, v] : from_cli)
    mine[k] = v;
  for (auto& [k, v] : mine)
    if (auto st = set_key(out.sidecar, k, v); !st) return st;
  if (auto st = check(out.sidecar); !st) return st;
  out.weft_args.push_back(argc > 0 ? argv[0] : "weft-sidecar");
  for (auto& a : weft_from_file)
    out.weft_args.push_back(a);
  for (auto& a : rest)
    out.weft_args.push_back(a);
  return out;
}

weft::status apply_defaults(sidecar_config& c, const weft::config& cfg) {
  const auto& policy = cfg.get_string("bad.record.policy");
  const auto& app = cfg.get_string("application.id");
  for (auto& [n, s] : c.subscriptions) {
    if (!s.policy_set)
      s.policy = policy == "skip"          ? record_policy::skip
                 : policy == "dead_letter" ? record_policy::dead_letter
                 : policy == "park"        ? record_policy::park
                                           : record_policy::fail;
    if (s.dead_letter_topic.empty()) s.dead_letter_topic = app + "-" + n + "-dlq";
  }
  bool writes = false;
  for (auto& [n, t] : c.topics)
    writes = writes || t.writable;
  if (c.tables.empty() && c.subscriptions.empty() && !writes)
    return weft::make_error(
        weft::errc::invalid_config,
        "the sidecar has nothing to do: declare a table (table.<name>.topic), a "
        "subscription (subscription.<name>.topic) or a writable topic "
        "(topic.<topic>.writable=true)");
  return {};
}

} // namespace sidecar
