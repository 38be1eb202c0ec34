#include "weft/config.hpp"

#include "weft/version.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace weft {

namespace {

using kind = config_key::kind;

std::vector<config_key> make_keys() {
  std::vector<config_key> k;
  k.push_back({"application.id", kind::string, "",
               "Names the application: the consumer group id, and the prefix of "
               "internal topics (repartition, dead-letter, changelog) and "
               "transactional ids. Nodes sharing it form one cluster.",
               true});
  k.push_back({"bootstrap.servers", kind::string, "127.0.0.1:9092",
               "Kafka brokers to connect to. The default is the local broker that "
               "tools/weft-broker starts."});
  k.push_back({"num.stream.threads", kind::integer, "2",
               "CAF scheduler threads that run partition and task actors "
               "(blocking Kafka and RocksDB calls run on their own threads).",
               false, 1, 256});
  k.push_back({"commit.interval.ms", kind::integer, "100",
               "How often processed input offsets are committed (after the "
               "outputs they produced are acknowledged by Kafka); under "
               "exactly_once, the length of an epoch (one transaction).",
               false, 1, 3600000});
  k.push_back({"processing.guarantee",
               kind::choice,
               "at_least_once",
               "at_least_once: a crash may repeat outputs of records processed "
               "since the last commit, never lose one. exactly_once: every "
               "commit.interval.ms one Kafka transaction per node commits the "
               "outputs, changelog records and input offsets of an epoch "
               "together, and state reaches RocksDB only after it; downstream "
               "readers use isolation.level=read_committed.",
               false,
               0,
               0,
               {"at_least_once", "exactly_once"}});
  k.push_back({"epoch.timeout.ms", kind::integer, "30000",
               "exactly_once: how long the supervisor waits for every task to "
               "reach an epoch's snapshot marker before it aborts the epoch.",
               false, 100, 3600000});
  k.push_back({"epoch.work.ahead.bytes", kind::integer, "4194304",
               "exactly_once: how much output (records and their bytes) a task may "
               "hold while it works on into the next epoch during its epoch's commit; "
               "past it the task waits for the commit. 0: it always waits (input "
               "is held from the markers until the commit).",
               false, 0, 1073741824});
  k.push_back({"max.task.idle.ms", kind::integer, "0",
               "A task reading several partitions (streams, tables, repartitions) "
               "takes the buffered record with the smallest timestamp next. When one "
               "of them has nothing buffered: if it has records on the broker not "
               "fetched yet, the task waits for them; if it is at its end, the task "
               "waits up to this long for new records before it processes ahead of "
               "it (as Kafka Streams). 0: wait only for records already on the "
               "broker; -1: never wait (process what is buffered, out-of-order "
               "results possible).",
               false, -1, INT64_MAX});
  k.push_back({"buffered.records.per.partition", kind::integer, "1000",
               "Flow control: records of one input partition in flight to its "
               "tasks at most; past it the partition is paused.",
               false, 1, 1000000});
  k.push_back({"fetch.buffer.max.bytes", kind::integer, "33554432",
               "Records librdkafka may prefetch for this node, shared by all its "
               "input partitions (each gets at least 1 MiB). More is faster with "
               "few partitions and costs memory with many.",
               false, 1048576, INT64_MAX});
  k.push_back({"bad.record.policy",
               kind::choice,
               "fail",
               "What to do with a record that cannot be decoded or whose handler "
               "throws: fail (stop the task with the error), skip (log and "
               "continue), dead_letter (send it with the error in headers to the "
               "dead-letter topic and continue), park (hold that record and every "
               "later record of its key in the task's shard, keep the other keys "
               "flowing, and wait for an operator's retry, skip or drop on the node "
               "endpoint's /parked). Per service: service.<name>.bad.record.policy.",
               false,
               0,
               0,
               {"fail", "skip", "dead_letter", "park"}});
  k.push_back({"bad.record.retries", kind::integer, "0",
               "bad.record.policy=park: times a parked key's handler is retried "
               "automatically, with back-off, after the failure that parked it "
               "(a record that cannot be decoded is never retried); then it waits "
               "for an operator. Per service: service.<name>.bad.record.retries.",
               false, 0, 1000});
  k.push_back({"bad.record.retry.backoff.ms", kind::integer, "1000",
               "bad.record.policy=park: wait before the first automatic retry of a "
               "parked key; each further retry waits twice as long. Per service: "
               "service.<name>.bad.record.retry.backoff.ms.",
               false, 1, 86400000});
  k.push_back({"bad.record.retry.backoff.max.ms", kind::integer, "60000",
               "bad.record.policy=park: the longest wait between two automatic "
               "retries. Per service: service.<name>.bad.record.retry.backoff.max.ms.",
               false, 1, 86400000});
  k.push_back({"dead.letter.topic", kind::string, "",
               "Dead-letter topic; empty means <application.id>-<service>-dlq. Per "
               "service: service.<name>.dead.letter.topic."});
  k.push_back({"replication.factor", kind::integer, "1",
               "Replication factor of the internal topics weft creates.", false, 1, 32});
  k.push_back(
      {"state.dir", kind::string, ".weft/state", "Folder for this node's local state."});
  k.push_back({"statestore.cache.max.bytes", kind::integer, "67108864",
               "RocksDB block cache shared by every state store of the node "
               "(bytes); with the write buffer below it bounds state memory.",
               false, 1048576, INT64_MAX});
  k.push_back({"statestore.value.cache.max.bytes", kind::integer, "16777216",
               "Clean values (read or already written down) the key-value stores' "
               "caches keep in memory, shared by every store of the node (bytes): a "
               "key read again skips RocksDB. 0 keeps none.",
               false, 0, INT64_MAX});
  k.push_back({"rocksdb.write.buffer.max.bytes", kind::integer, "33554432",
               "Memtable budget shared by every state store of the node (bytes), "
               "charged to the block cache.",
               false, 1048576, INT64_MAX});
  k.push_back({"node.id", kind::string, "",
               "This node's id in the cluster; empty means <hostname>-<pid>, or under "
               "exactly_once an id kept in <state.dir>/<application.id>/node.id "
               "(the transactional.id is <application.id>-<node.id>: a restarted "
               "node must keep it to fence its previous incarnation at once)."});
  k.push_back({"cluster.enabled", kind::boolean, "false",
               "Share the work with every node of the same application.id (leader "
               "election, assignment, standbys and failover through the "
               "<application.id>-cluster topic). false: this node runs every task "
               "alone and must be the application's only node."});
  k.push_back({"cluster.host", kind::string, "127.0.0.1",
               "Address this node listens on for the other nodes (CAF) and "
               "announces to them."});
  k.push_back({"cluster.port", kind::integer, "0",
               "TCP port for the other nodes (CAF middleman); 0 picks a free one.", false,
               0, 65535});
  k.push_back({"cluster.heartbeat.ms", kind::integer, "250",
               "Heartbeat between nodes; a node silent for cluster.timeout.ms is "
               "taken for dead (its tasks move to their standbys).",
               false, 10, 60000});
  k.push_back({"cluster.timeout.ms", kind::integer, "1000",
               "How long a node may stay silent (or a connection attempt take) "
               "before the others take it for dead.",
               false, 50, 600000});
  k.push_back({"cluster.query.max.in.flight", kind::integer, "64",
               "Queries this node forwards to other nodes (node::get, GET "
               "/state/...) at once at most; more are refused at once as "
               "retriable (state_not_ready, HTTP 503). Each waits at most "
               "2 x cluster.timeout.ms for its answer.",
               false, 1, 100000});
  k.push_back({"cluster.tls.enabled", kind::boolean, "false",
               "Nodes talk to each other over TLS (CAF's openssl module), and only "
               "nodes whose certificate the application's CA signed may connect: "
               "needs cluster.tls.certificate, cluster.tls.key and cluster.tls.ca "
               "(tools/weft-certs makes them). false: plain TCP, anyone who reaches "
               "cluster.port can join."});
  k.push_back({"cluster.tls.certificate", kind::string, "",
               "PEM file: this node's certificate, signed by the CA in cluster.tls.ca "
               "(intermediate CAs may follow it in the file)."});
  k.push_back({"cluster.tls.key", kind::string, "",
               "PEM file: the private key of cluster.tls.certificate."});
  k.push_back({"cluster.tls.key.password", kind::string, "",
               "Password of an encrypted cluster.tls.key; prefer "
               "WEFT_CLUSTER_TLS_KEY_PASSWORD or a --config file to the command line."});
  k.push_back({"cluster.tls.ca", kind::string, "",
               "PEM file: the application's CA certificate, the only one trusted: a "
               "node accepts (and connects to) only nodes whose certificate it signed."});
  k.push_back({"num.standby.replicas", kind::integer, "1",
               "Hot standby copies of every state shard, each on another node.", false, 0,
               16});
  k.push_back({"acceptable.recovery.lag", kind::integer, "10000",
               "A standby at most this many changelog records behind counts as "
               "caught up: a task moves there at once; otherwise it warms up first.",
               false, 0, INT64_MAX});
  k.push_back({"http.port", kind::integer, "-1",
               "Port of the node's HTTP endpoint, on every node, clustered or not "
               "(/ the live map, /state/<store>/<key>, /cluster, /metrics, "
               "/topology); 0 picks a free one, -1 turns it off.",
               false, -1, 65535});
  k.push_back(
      {"http.host", kind::string, "127.0.0.1", "Address the HTTP endpoint listens on."});
  k.push_back({"http.auth.token", kind::string, "",
               "Non-empty: every request to the HTTP endpoint needs the header "
               "'Authorization: Bearer <token>' (401 without it). Prefer "
               "WEFT_HTTP_AUTH_TOKEN or a --config file to the command line, "
               "which other local users can read."});
  k.push_back({"http.max.body.bytes", kind::integer, "65536",
               "Largest request body the HTTP endpoint reads (413 beyond).", false, 0,
               1 << 30});
  k.push_back({"http.max.header.bytes", kind::integer, "65536",
               "Largest request line and headers the HTTP endpoint reads, together "
               "(431 beyond).",
               false, 1024, 1 << 30});
  k.push_back({"http.request.timeout.ms", kind::integer, "10000",
               "How long a client may take to send a whole request to the HTTP "
               "endpoint once it started (408 beyond).",
               false, 100, 3600000});
  k.push_back({"shutdown.timeout.ms", kind::integer, "30000",
               "On SIGINT/SIGTERM, how long to drain in-flight records and "
               "commit before giving up.",
               false, 0, 3600000});
  k.push_back({"startup.timeout.ms", kind::integer, "30000",
               "How long to wait for the brokers and topic metadata at start-up.", false,
               100, 3600000});
  k.push_back({"trace.headers", kind::boolean, "false",
               "Stamp every record a service produces with the header weft.cause "
               "(the service, and the input record's topic/partition/offset), which "
               "weft-trace follows across keys. Off by default: librdkafka 2.0.2's "
               "per-record header handling costs a light service about a third more "
               "CPU (README, Follow a key)."});
  k.push_back({"log.level",
               kind::choice,
               "info",
               "Log verbosity.",
               false,
               0,
               0,
               {"error", "warn", "info", "debug"}});
  k.push_back({"log.file", kind::string, "",
               "Write the log to this file (appended, created with its folder if "
               "missing); the console (stderr) then gets warnings and errors only. "
               "Empty: everything goes to the console. Checked at start-up."});
  return k;
}

const char* const passthrough_prefixes[] = {"kafka.", "consumer.", "producer.", "admin."};

bool starts_with(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.compare(0, p.size(), p) == 0;
}

bool is_passthrough(std::string_view key) {
  for (auto* p : passthrough_prefixes)
    if (starts_with(key, p) && key.size() > std::string_view{p}.size()) return true;
  return false;
}

const config_key* find_key(std::string_view name) {
  for (auto& k : config::keys())
    if (k.name == name) return &k;
  return nullptr;
}

// Keys a user may override per service: service.<name>.<key>.
const char* const per_service_keys[] = {
    "bad.record.policy", "dead.letter.topic", "bad.record.retries",
    "bad.record.retry.backoff.ms", "bad.record.retry.backoff.max.ms"};

// Splits service.<name>.<key>; returns false when `key` is not of that form.
bool split_service_key(std::string_view key, std::string_view& service,
                       std::string_view& rest) {
  if (!starts_with(key, "service.")) return false;
  auto tail = key.substr(8);
  for (auto* k : per_service_keys) {
    std::string_view ks{k};
    if (tail.size() > ks.size() + 1 && tail.substr(tail.size() - ks.size()) == ks &&
        tail[tail.size() - ks.size() - 1] == '.') {
      service = tail.substr(0, tail.size() - ks.size() - 1);
      rest = ks;
      return true;
    }
  }
  return false;
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j)
    row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t prev = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cur = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] != b[j - 1])});
      prev = cur;
    }
  }
  return row[b.size()];
}

std::string unknown_key_message(std::string_view key,
                                const std::vector<std::string>& declared) {
  std::string best;
  size_t best_d = 4;
  // A key far longer than any declared one is no typo of one (and the edit
  // distance costs its length times theirs).
  for (auto& name : declared) {
    if (key.size() > 100) break;
    auto d = edit_distance(key, name);
    if (d < best_d) best_d = d, best = name;
  }
  std::string msg = "unknown config key '" + std::string{key.substr(0, 200)} +
                    (key.size() > 200 ? "...'" : "'");
  if (!best.empty()) msg += " (did you mean '" + best + "'?)";
  msg += "; librdkafka properties go under kafka., consumer., producer. or admin.; "
         "run with --help for the list of keys";
  return msg;
}

status check_value(const config_key& k, const std::string& v) {
  auto fail = [&](const std::string& what) {
    return make_error(errc::invalid_config,
                      "config key '" + k.name + "': " + what + " (" + k.doc + ")");
  };
  switch (k.type) {
  case kind::string:
    if (k.required && v.empty()) return fail("must not be empty");
    return {};
  case kind::integer: {
    if (v.empty()) return fail("expected an integer, got an empty value");
    char* end = nullptr;
    errno = 0;
    long long n = std::strtoll(v.c_str(), &end, 10);
    if (errno != 0 || end == v.c_str() || *end != '\0')
      return fail("'" + v + "' is not an integer; set e.g. " + k.name + "=" +
                  k.default_value);
    if (n < k.min || n > k.max)
      return fail(v + " is out of range; use a value from " + std::to_string(k.min) +
                  " to " + std::to_string(k.max));
    return {};
  }
  case kind::boolean:
    if (v != "true" && v != "false")
      return fail("'" + v + "' is not a boolean; use true or false");
    return {};
  case kind::choice: {
    if (std::find(k.choices.begin(), k.choices.end(), v) != k.choices.end()) return {};
    std::string all;
    for (auto& c : k.choices)
      all += (all.empty() ? "" : ", ") + c;
    return fail("'" + v + "' is not allowed; use one of: " + all);
  }
  }
  return {};
}

std::string env_name(const std::string& key) {
  std::string s = "WEFT_";
  for (char c : key)
    s += c == '.' ? '_' : static_cast<char>(std::toupper(c));
  return s;
}

std::string trim(std::string s) {
  auto issp = [](unsigned char c) { return std::isspace(c); };
  while (!s.empty() && issp(s.back()))
    s.pop_back();
  size_t i = 0;
  while (i < s.size() && issp(s[i]))
    ++i;
  return s.substr(i);
}

// cluster.tls.enabled=true needs its three files, readable (their contents
// are checked when the node starts, actors/weft/cluster/tls.cpp).
status check_tls_files(const std::map<std::string, std::string, std::less<>>& raw) {
  auto on = raw.find("cluster.tls.enabled");
  if (on == raw.end() || on->second != "true") return {};
  for (auto* key : {"cluster.tls.certificate", "cluster.tls.key", "cluster.tls.ca"}) {
    auto i = raw.find(key);
    std::string path = i == raw.end() ? "" : i->second;
    std::string fix = "; tools/weft-certs makes a CA and node certificates (see "
                      "README, Security), or set cluster.tls.enabled=false";
    if (path.empty())
      return make_error(errc::invalid_config, std::string{"config key '"} + key +
                                                  "' must be set when "
                                                  "cluster.tls.enabled=true (a PEM "
                                                  "file)" +
                                                  fix);
    std::ifstream f{path, std::ios::binary};
    if (!f)
      return make_error(errc::invalid_config, std::string{"config key '"} + key +
                                                  "': cannot read '" + path + "' (" +
                                                  std::strerror(errno) + ")" + fix);
  }
  return {};
}

/// The names keys have in one program: weft's keys under their own names
/// or app_schema::renamed's, and the program's own keys.
class naming {
 public:
  enum class owner { none, weft, app };

  static result<naming> make(const app_schema& app) {
    naming n;
    for (auto& [weft_name, name] : app.renamed) {
      if (!find_key(weft_name))
        return make_error(errc::invalid_config,
                          "app_schema renames '" + weft_name +
                              "', which is no weft key; see config::keys()");
      n.external_[weft_name] = name;
    }
    for (auto& k : config::keys()) {
      auto name = n.external(k.name);
      if (auto st = n.claim(name, "weft's key '" + k.name + "'"); !st) return st;
      n.weft_by_name_[name] = k.name;
    }
    for (auto& k : app.keys) {
      if (k.name.empty() || is_passthrough(k.name) || starts_with(k.name, "service."))
        return make_error(errc::invalid_config,
                          "application key '" + k.name +
                              "': empty, or under a prefix weft reserves (kafka., "
                              "consumer., producer., admin., service.); rename it");
      if (auto st = n.claim(k.name, "the application's key '" + k.name + "'"); !st)
        return st;
      n.app_by_name_[k.name] = &k;
    }
    for (auto& [weft_name, value] : app.defaults) {
      auto* k = find_key(weft_name);
      if (!k)
        return make_error(errc::invalid_config,
                          "app_schema sets a default for '" + weft_name +
                              "', which is no weft key; see config::keys()");
      if (auto st = check_value(*k, value); !st) return n.rename(st);
    }
    return n;
  }

  /// The name weft key `weft_name` has in this program.
  std::string external(const std::string& weft_name) const {
    auto i = external_.find(weft_name);
    return i == external_.end() ? weft_name : i->second;
  }

  /// Who owns the key a source calls `name`, and its name there.
  owner resolve(const std::string& name, std::string& internal) const {
    if (auto i = app_by_name_.find(name); i != app_by_name_.end()) {
      internal = name;
      return owner::app;
    }
    if (auto i = weft_by_name_.find(name); i != weft_by_name_.end()) {
      internal = i->second;
      return owner::weft;
    }
    return owner::none;
  }

  /// Every name a source may use (for the environment and for typos).
  std::vector<std::string> all() const {
    std::vector<std::string> out;
    for (auto& [name, w] : weft_by_name_)
      out.push_back(name);
    for (auto& [name, k] : app_by_name_)
      out.push_back(name);
    return out;
  }

  /// A weft validation error with weft's key names put as this program
  /// names them.
  status rename(const status& st) const {
    if (st || external_.empty()) return st;
    auto msg = st.message();
    for (auto& [weft_name, name] : external_)
      for (auto [from, to] : {std::pair{"'" + weft_name + "'", "'" + name + "'"},
                              std::pair{"--" + weft_name + "=", "--" + name + "="},
                              std::pair{env_name(weft_name) + ",", env_name(name) + ","}})
        for (auto at = msg.find(from); at != std::string::npos;
             at = msg.find(from, at + to.size()))
          msg.replace(at, from.size(), to);
    return make_error(st.code(), msg);
  }

 private:
  status claim(const std::string& name, const std::string& who) {
    auto [i, fresh] = owners_.emplace(name, who);
    if (fresh) return {};
    return make_error(errc::invalid_config,
                      "config key '" + name + "' is declared twice: " + i->second +
                          " and " + who +
                          "; rename the application's key, or give weft's key "
                          "another name with app_schema::renamed");
  }

  std::map<std::string, std::string> external_;          ///< weft name -> name here
  std::map<std::string, std::string> weft_by_name_;      ///< name here -> weft name
  std::map<std::string, const config_key*> app_by_name_; ///< the program's keys
  std::map<std::string, std::string> owners_;            ///< name -> who declared it
};

} // namespace

/// The values of every source, by the names the sources use, in rising
/// precedence.
struct config::sources {
  std::vector<std::map<std::string, std::string>> layers;
};

const std::vector<config_key>& config::keys() {
  static const std::vector<config_key> all = make_keys();
  return all;
}

status config::validate(const std::map<std::string, std::string, std::less<>>& raw,
                        bool check_required) {
  for (auto& [key, value] : raw) {
    if (is_passthrough(key)) continue;
    std::string_view svc, rest;
    if (split_service_key(key, svc, rest)) {
      if (auto st = check_value(*find_key(rest), value); !st) {
        // Name the key as the user wrote it.
        auto msg = st.message();
        auto named = "config key '" + std::string{rest} + "'";
        if (msg.compare(0, named.size(), named) == 0)
          msg = "config key '" + key + "'" + msg.substr(named.size());
        return make_error(errc::invalid_config, msg);
      }
      continue;
    }
    auto* k = find_key(key);
    if (!k) {
      std::vector<std::string> names;
      for (auto& d : keys())
        names.push_back(d.name);
      return make_error(errc::invalid_config, unknown_key_message(key, names));
    }
    if (auto st = check_value(*k, value); !st) return st;
  }
  if (check_required)
    if (auto st = check_tls_files(raw); !st) return st;
  if (check_required)
    for (auto& k : keys())
      if (k.required && raw.find(k.name) == raw.end())
        return make_error(errc::invalid_config,
                          "config key '" + k.name + "' is required: pass --" + k.name +
                              "=<value>, set " + env_name(k.name) +
                              ", or put it in the --config file (" + k.doc + ")");
  return {};
}

result<std::map<std::string, std::string>>
config::read_properties(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  if (!in)
    return make_error(errc::invalid_config,
                      "cannot read config file '" + path + "': check the --config path");
  std::string text(max_properties_bytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > max_properties_bytes)
    return make_error(errc::invalid_config,
                      "config file '" + path + "' is larger than " +
                          std::to_string(max_properties_bytes) +
                          " bytes: is --config pointing at the right file?");
  return parse_properties(text, path);
}

result<std::map<std::string, std::string>>
config::parse_properties(std::string_view text, const std::string& source) {
  std::map<std::string, std::string> out;
  int n = 0;
  while (!text.empty()) {
    auto eol = text.find('\n');
    std::string line{text.substr(0, eol)};
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    ++n;
    auto t = trim(line);
    if (t.empty() || t[0] == '#' || t[0] == '!') continue;
    auto pos = t.find_first_of("=:");
    if (pos == std::string::npos || pos == 0)
      return make_error(errc::invalid_config, source + ":" + std::to_string(n) +
                                                  ": expected key=value, got '" + t +
                                                  "'");
    out[trim(t.substr(0, pos))] = trim(t.substr(pos + 1));
  }
  return out;
}

result<config> config::build(const sources& from, const app_schema& app,
                             bool check_required) {
  auto names = naming::make(app);
  if (!names) return names.error();
  std::map<std::string, std::string, std::less<>> raw, app_raw;
  for (auto& k : keys())
    if (!k.default_value.empty()) raw[k.name] = k.default_value;
  for (auto& [k, v] : app.defaults)
    raw[k] = v;
  for (auto& k : app.keys)
    app_raw[k.name] = k.default_value;
  std::vector<std::string> set_keys;
  std::map<std::string, bool> app_set;
  for (auto& layer : from.layers)
    for (auto& [name, value] : layer) {
      std::string internal;
      if (is_passthrough(name) || starts_with(name, "service.")) {
        raw[name] = value;
        set_keys.push_back(name);
        continue;
      }
      switch (names->resolve(name, internal)) {
      case naming::owner::weft:
        raw[internal] = value;
        set_keys.push_back(internal);
        break;
      case naming::owner::app:
        app_raw[internal] = value;
        app_set[internal] = true;
        break;
      case naming::owner::none:
        return make_error(errc::invalid_config, unknown_key_message(name, names->all()));
      }
    }
  if (auto st = names->rename(validate(raw, check_required)); !st) return st;
  for (auto& k : app.keys) {
    if (app_set[k.name] || !k.default_value.empty()) {
      if (auto st = check_value(k, app_raw[k.name]); !st) return st;
    } else if (check_required && k.required)
      return make_error(errc::invalid_config,
                        "config key '" + k.name + "' is required: pass --" + k.name +
                            "=<value>, set " + env_name(k.name) +
                            ", or put it in the --config file (" + k.doc + ")");
  }
  std::sort(set_keys.begin(), set_keys.end());
  set_keys.erase(std::unique(set_keys.begin(), set_keys.end()), set_keys.end());
  config c;
  c.values_ = std::move(raw);
  c.app_values_ = std::move(app_raw);
  c.set_keys_ = std::move(set_keys);
  c.app_ = std::make_shared<const app_schema>(app);
  return c;
}

result<config> config::from_map(const std::map<std::string, std::string>& values,
                                const app_schema& app) {
  return build(sources{{values}}, app, true);
}

result<config> config::load(int argc, const char* const* argv, const app_schema& app) {
  auto names = naming::make(app);
  if (!names) return names.error();
  std::map<std::string, std::string> file_values, env_values, cli_values;
  std::string file;
  bool help = false, version = false;
  std::string describe;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      help = true;
      continue;
    }
    if (a == "--version") {
      version = true;
      continue;
    }
    if (starts_with(a, "--describe")) {
      describe = a.size() > 11 && a[10] == '=' ? a.substr(11) : "text";
      if (describe != "text" && describe != "dot" && describe != "mermaid" &&
          describe != "json")
        return make_error(errc::invalid_config,
                          "--describe=" + describe +
                              ": the picture's format is text, dot, mermaid or json");
      continue;
    }
    if (!starts_with(a, "--"))
      return make_error(errc::invalid_config,
                        "unexpected argument '" + a + "': options look like --key=value");
    a = a.substr(2);
    std::string key, value;
    if (auto eq = a.find('='); eq != std::string::npos) {
      key = a.substr(0, eq);
      value = a.substr(eq + 1);
    } else if (i + 1 < argc) {
      key = a;
      value = argv[++i];
    } else {
      return make_error(errc::invalid_config,
                        "option --" + a + " needs a value: --" + a + "=<value>");
    }
    if (key == "config")
      file = value;
    else
      cli_values[key] = value;
  }
  if (file.empty())
    if (auto* f = std::getenv("WEFT_CONFIG")) file = f;
  if (!file.empty()) {
    auto props = read_properties(file);
    if (!props) return props.error();
    file_values = std::move(*props);
  }
  for (auto& name : names->all())
    if (auto* v = std::getenv(env_name(name).c_str())) env_values[name] = v;
  auto c = build(sources{{file_values, env_values, cli_values}}, app,
                 !help && !version && describe.empty());
  if (!c) return c;
  c->help_ = help;
  c->version_ = version;
  c->describe_ = std::move(describe);
  return c;
}

result<config> config::with(const std::string& key, const std::string& value) const {
  auto raw = values_;
  raw[key] = value;
  static const app_schema none;
  auto names = naming::make(app_ ? *app_ : none);
  if (!names) return names.error();
  if (auto st = names->rename(validate(raw, !help_ && !version_ && describe_.empty()));
      !st)
    return st;
  config c = *this;
  c.values_ = std::move(raw);
  if (!std::binary_search(c.set_keys_.begin(), c.set_keys_.end(), key))
    c.set_keys_.insert(std::upper_bound(c.set_keys_.begin(), c.set_keys_.end(), key),
                       key);
  return c;
}

result<config> config::with_app(const std::string& key, const std::string& value) const {
  const config_key* k = nullptr;
  if (app_)
    for (auto& d : app_->keys)
      if (d.name == key) k = &d;
  if (!k)
    return make_error(errc::invalid_config,
                      "config key '" + key + "' is no key of the application's");
  if (auto st = check_value(*k, value); !st) return st;
  config c = *this;
  c.app_values_[key] = value;
  return c;
}

std::string config::help_text(std::string_view program, const app_schema& app) {
  auto names = naming::make(app);
  if (!names) return names.error().message() + "\n";
  auto entry = [](std::ostream& os, const std::string& name, const config_key& k,
                  const std::string& default_value) {
    os << "  --" << name;
    if (k.required && default_value.empty())
      os << "  (required)";
    else
      os << "  (default: " << (default_value.empty() ? "\"\"" : default_value) << ")";
    os << "\n      " << k.doc << "\n";
  };
  std::ostringstream os;
  os << program << ", built on weft " << version << "\n"
     << "usage: " << program << " [--config FILE] [--key=value ...]\n"
     << "       " << program
     << " --describe[=text|dot|mermaid|json] [--key=value ...]   print the "
        "topology and exit\n\n"
     << "Keys (also WEFT_<KEY> in the environment, e.g. WEFT_APPLICATION_ID):\n";
  for (auto& k : keys()) {
    auto d = app.defaults.find(k.name);
    entry(os, names->external(k.name), k,
          d == app.defaults.end() ? k.default_value : d->second);
  }
  os << "\nlibrdkafka properties pass through: kafka.<property> (every client),\n"
        "consumer.<property>, producer.<property>, admin.<property>.\n"
        "Per-service overrides: service.<name>.bad.record.policy, "
        "service.<name>.dead.letter.topic, service.<name>.bad.record.retries,\n"
        "service.<name>.bad.record.retry.backoff.ms, "
        "service.<name>.bad.record.retry.backoff.max.ms.\n";
  if (!app.keys.empty()) {
    os << "\nKeys of " << program
       << " (from the same file, environment and command line):\n";
    for (auto& k : app.keys)
      entry(os, k.name, k, k.default_value);
  }
  return os.str();
}

static const std::string empty_string;

const std::string& config::get_string(std::string_view key) const {
  auto i = values_.find(key);
  return i == values_.end() ? empty_string : i->second;
}

int64_t config::get_int(std::string_view key) const {
  return std::strtoll(get_string(key).c_str(), nullptr, 10);
}

bool config::get_bool(std::string_view key) const {
  return get_string(key) == "true";
}

bool config::was_set(std::string_view key) const {
  return std::binary_search(set_keys_.begin(), set_keys_.end(), key);
}

const std::string& config::app_string(std::string_view key) const {
  auto i = app_values_.find(key);
  return i == app_values_.end() ? empty_string : i->second;
}

int64_t config::app_int(std::string_view key) const {
  return std::strtoll(app_string(key).c_str(), nullptr, 10);
}

bool config::app_bool(std::string_view key) const {
  return app_string(key) == "true";
}

std::map<std::string, std::string> config::kafka_properties(client_kind kind) const {
  std::map<std::string, std::string> out;
  out["bootstrap.servers"] = get_string("bootstrap.servers");
  // Keys go to partitions as Kafka's Java client sends them, so every
  // producer made from a weft config agrees with weft's own (and with
  // node::get, which looks a key up in the partition murmur2 gives it).
  if (kind == client_kind::producer) out["partitioner"] = "murmur2_random";
  const char* own = kind == client_kind::consumer   ? "consumer."
                    : kind == client_kind::producer ? "producer."
                                                    : "admin.";
  for (auto& [k, v] : values_)
    if (starts_with(k, "kafka.")) out[k.substr(6)] = v;
  std::string_view ownv{own};
  for (auto& [k, v] : values_)
    if (starts_with(k, ownv)) out[k.substr(ownv.size())] = v;
  return out;
}

const std::string& config::service_value(std::string_view service,
                                         std::string_view key) const {
  std::string k = "service.";
  k.append(service).append(".").append(key);
  auto i = values_.find(k);
  return i != values_.end() ? i->second : get_string(key);
}

std::vector<std::string> config::mentioned_services() const {
  std::vector<std::string> out;
  for (auto& [k, v] : values_) {
    std::string_view svc, rest;
    if (split_service_key(k, svc, rest) &&
        std::find(out.begin(), out.end(), svc) == out.end())
      out.emplace_back(svc);
  }
  return out;
}

} // namespace weft
