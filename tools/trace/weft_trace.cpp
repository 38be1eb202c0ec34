// weft-trace: follows one key through a weft application — every record with
// that key in the application's topics, the records they caused (or were
// caused by) under other keys, in causal order, and the partial state each
// gate holds for the key. tools/trace/README.md tells how and why.
//
//   weft-trace --application.id=APP --node=HOST:PORT [--bootstrap.servers=B]
//              [--json] [--timeout.ms=MS] [--max.records=N] KEY
//
// 1. GET /trace?key=KEY on a node's HTTP endpoint (http.port): the topics of
//    the application (its declarations: facts, intermediate, repartition and
//    dead-letter topics; not changelogs), the services, and each gate's state
//    for the key. The node checks it is APP.
// 2. One pass over every partition of those topics, from its start to the end
//    offset it had when the pass began (read_committed: aborted records never
//    show), keeping the records with the key and, of every record, only its
//    weft.cause edge (a few dozen bytes).
// 3. The closure over those edges from the key's records — what they caused,
//    what caused them, transitively, up to --max.records — then one more
//    pass over only the partitions and offset ranges that hold the records
//    of other keys found so.
// 4. Prints them in causal order (a record after its cause; else by
//    timestamp), each with the service that produced it and the record that
//    caused it, then the gates.
//
// Every Kafka and HTTP wait is bounded by --timeout.ms. Exit status 0 when it
// printed the trace (also when the key has no record), 1 on errors (a message
// on stderr), bad usage included.

#include <httplib.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <queue>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "weft/kafka/consumer.hpp"
#include "weft/serde.hpp"
#include "weft/trace/cause.hpp"
#include "weft/trace_view.hpp"

namespace {

using json = nlohmann::json;
using namespace weft;
using steady = std::chrono::steady_clock;

constexpr const char* usage_text =
    "usage: weft-trace --application.id=APP --node=HOST:PORT [--bootstrap.servers=B]\n"
    "                  [--json] [--timeout.ms=MS] [--max.records=N] KEY\n"
    "Lists every record with KEY in APP's topics and, following their weft.cause\n"
    "headers, the records they caused or were caused by under other keys, in causal\n"
    "order, and what each gate holds for KEY.\n"
    "  --application.id     the application's id (required)\n"
    "  --node               a node's HTTP endpoint (its http.port), for the topics and\n"
    "                       the gates' state (required; weft-cluster lists them)\n"
    "  --bootstrap.servers  Kafka brokers (default 127.0.0.1:9092)\n"
    "  --json               print the trace as one JSON object\n"
    "  --timeout.ms         limit of each Kafka or HTTP wait (default 10000)\n"
    "  --max.records        most records followed (default 1000)\n"
    "  --http.auth.token    the node's token (prefer WEFT_HTTP_AUTH_TOKEN)\n"
    "KEY is the key's bytes (a UTF-8 string for the order system).\n";

struct options {
  std::string app;
  std::string node;
  std::string bootstrap = "127.0.0.1:9092";
  std::string token;
  std::optional<std::string> key;
  bool as_json = false;
  int timeout_ms = 10000;
  size_t max_records = 1000;
  bool help = false;
};

result<int64_t> positive(const std::string& key, const std::string& value) {
  try {
    size_t used = 0;
    auto v = std::stoll(value, &used);
    if (used == value.size() && v > 0 && v <= 100'000'000) return v;
  } catch (const std::exception&) {
  }
  return make_error(errc::invalid_argument,
                    key + " must be a positive number, not '" + value + "'");
}

result<options> parse_args(int argc, char** argv) {
  options o;
  if (const char* t = std::getenv("WEFT_HTTP_AUTH_TOKEN")) o.token = t;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      o.help = true;
      continue;
    }
    if (arg == "--json") {
      o.as_json = true;
      continue;
    }
    if (arg.rfind("--", 0) != 0) {
      if (o.key) return make_error(errc::invalid_argument, "name one key, not two");
      o.key = arg;
      continue;
    }
    if (arg == "--") { // what follows is the key, even if it starts with --
      if (i + 1 >= argc || o.key)
        return make_error(errc::invalid_argument, "name one key after --");
      o.key = argv[++i];
      continue;
    }
    auto eq = arg.find('=');
    std::string key = arg.substr(0, eq);
    std::string value;
    if (eq != std::string::npos)
      value = arg.substr(eq + 1);
    else if (i + 1 < argc)
      value = argv[++i];
    else
      return make_error(errc::invalid_argument, key + " needs a value");
    if (key == "--application.id") {
      o.app = value;
    } else if (key == "--node") {
      o.node = value;
    } else if (key == "--bootstrap.servers") {
      o.bootstrap = value;
    } else if (key == "--http.auth.token") {
      o.token = value;
    } else if (key == "--timeout.ms") {
      auto v = positive(key, value);
      if (!v) return v.error();
      o.timeout_ms = static_cast<int>(std::min<int64_t>(*v, 3'600'000));
    } else if (key == "--max.records") {
      auto v = positive(key, value);
      if (!v) return v.error();
      o.max_records = static_cast<size_t>(*v);
    } else {
      return make_error(errc::invalid_argument, "unknown option '" + arg + "'");
    }
  }
  if (o.help) return o;
  if (o.app.empty())
    return make_error(errc::invalid_argument, "--application.id is required");
  if (o.node.empty())
    return make_error(errc::invalid_argument,
                      "--node=HOST:PORT is required: a node's HTTP endpoint (http.port) "
                      "names the application's topics and serves its gates' state "
                      "(weft-cluster --application.id=" +
                          o.app + " lists the nodes' endpoints)");
  if (o.bootstrap.empty())
    return make_error(errc::invalid_argument, "--bootstrap.servers must not be empty");
  if (!o.key) return make_error(errc::invalid_argument, "name the key to follow");
  return o;
}

std::string percent_encode(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  return out;
}

/// GET /trace?key=... on the node: its JSON, or an error that says what failed.
result<json> ask_node(const options& o) {
  auto colon = o.node.rfind(':');
  int port = 0;
  if (colon != std::string::npos && colon > 0) {
    try {
      port = std::stoi(o.node.substr(colon + 1));
    } catch (const std::exception&) {
    }
  }
  if (port <= 0 || port > 65535)
    return make_error(errc::invalid_argument,
                      "--node must be HOST:PORT, not '" + o.node + "'");
  std::string host = o.node.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  httplib::Client client{host, port};
  const time_t secs = o.timeout_ms / 1000;
  const time_t usecs = (o.timeout_ms % 1000) * 1000;
  client.set_connection_timeout(secs, usecs);
  client.set_read_timeout(secs, usecs);
  client.set_write_timeout(secs, usecs);
  httplib::Headers headers;
  if (!o.token.empty()) headers.emplace("Authorization", "Bearer " + o.token);
  auto res = client.Get("/trace?key=" + percent_encode(*o.key), headers);
  if (!res)
    return make_error(errc::io, "cannot reach the node endpoint " + o.node + ": " +
                                    httplib::to_string(res.error()) +
                                    " (is --node a node's http.port?)");
  if (res->status == 401)
    return make_error(
        errc::invalid_argument,
        "the node endpoint " + o.node +
            " wants a token: set WEFT_HTTP_AUTH_TOKEN (or --http.auth.token)");
  if (res->status == 404)
    return make_error(errc::not_found, "the endpoint " + o.node +
                                           " has no GET /trace: a weft node older than "
                                           "weft-trace, or not a weft node");
  auto j = json::parse(res->body, nullptr, false);
  if (res->status != 200 || j.is_discarded() || !j.is_object())
    return make_error(errc::io, "the node endpoint " + o.node + " answered " +
                                    std::to_string(res->status) + ": " +
                                    res->body.substr(0, 300));
  auto app = j.value("application", "");
  if (app != o.app)
    return make_error(errc::invalid_argument,
                      "the node at " + o.node + " runs application '" + app + "', not '" +
                          o.app + "': check --application.id and --node");
  return j;
}

/// A record's place: (topic index, partition, offset).
struct rid {
  uint32_t topic = 0;
  int32_t partition = 0;
  int64_t offset = 0;
  bool operator==(const rid& o) const {
    return topic == o.topic && partition == o.partition && offset == o.offset;
  }
  bool operator<(const rid& o) const {
    return std::tie(topic, partition, offset) < std::tie(o.topic, o.partition, o.offset);
  }
};
struct rid_hash {
  size_t operator()(const rid& r) const {
    return std::hash<int64_t>{}(r.offset) ^ (size_t{r.topic} << 40) ^
           (static_cast<size_t>(r.partition) << 20);
  }
};

/// A record kept whole.
struct kept {
  rid id;
  timestamp_ms timestamp = 0;
  std::optional<std::string> key, value;
  std::optional<trace::cause> cause; ///< decoded weft.cause, if any
  std::string cause_error;           ///< a malformed weft.cause's reason
};

class tracer {
 public:
  explicit tracer(const options& o) : o_(o) {}

  std::vector<std::string> warnings;
  std::vector<std::string> topics; ///< by topic index
  size_t scanned = 0;              ///< records read in the first pass
  size_t partitions_read = 0;
  std::vector<std::string> missing; ///< topics of the application not created yet
  std::map<rid, kept> records;      ///< the trace
  size_t malformed = 0;

  status open() {
    auto c = kafka::consumer::create(
        {{"bootstrap.servers", o_.bootstrap},
         {"client.id", "weft-trace"},
         // Never used for commits or subscriptions: unique only to stay apart.
         {"group.id", o_.app + "-trace-" + std::to_string(::getpid())},
         {"isolation.level", "read_committed"},
         {"fetch.wait.max.ms", "50"},
         {"log_level", "2"}},
        [this](const status& s) {
          auto& m = s.message();
          auto open = m.find(" (");
          client_error_ = open != std::string::npos && m.back() == ')'
                              ? m.substr(open + 2, m.size() - open - 3)
                              : m;
        });
    if (!c) return c.error();
    consumer_ = std::move(*c);
    return {};
  }

  uint32_t topic_index(const std::string& t) {
    auto i = std::find(topics.begin(), topics.end(), t);
    if (i != topics.end()) return static_cast<uint32_t>(i - topics.begin());
    topics.push_back(t);
    return static_cast<uint32_t>(topics.size() - 1);
  }

  /// Pass 1 over every partition of `names`; keeps the key's records and
  /// every cause edge.
  status first_pass(const std::vector<std::string>& names) {
    std::map<topic_partition, std::pair<int64_t, int64_t>> ranges;
    for (auto& t : names) {
      auto n = consumer_->partition_count(t, o_.timeout_ms);
      if (!n) {
        if (n.error().code() == errc::not_found) {
          missing.push_back(t);
          continue;
        }
        return failed("cannot look up the topic " + t, n.error());
      }
      topic_index(t);
      for (int p = 0; p < *n; ++p) {
        topic_partition tp{t, partition_id{p}};
        auto w = consumer_->watermarks(tp, o_.timeout_ms);
        if (!w) return failed("cannot read the end of " + to_string(tp), w.error());
        if (w->second > w->first) ranges[tp] = *w;
        ++partitions_read;
      }
    }
    if (missing.size() == names.size() && !names.empty())
      return make_error(errc::not_found, "none of application " + o_.app +
                                             "'s topics exists on " + o_.bootstrap +
                                             " (is it the application's Kafka?)");
    return scan(ranges, [this](const record_view& v, const rid& id) {
      ++scanned;
      std::optional<trace::cause> cause;
      std::string error;
      if (auto h = v.header_value(trace::cause_header)) {
        auto c = trace::decode_cause(*h);
        if (c) {
          cause = std::move(*c);
          if (cause->has_input()) {
            rid from{topic_index(cause->topic), cause->partition, cause->offset};
            cause_of_.emplace(id, from);
            caused_.emplace(from, id);
          }
        } else {
          error = c.error().message();
          note_malformed(id, error);
        }
      }
      if (v.key && *v.key == *o_.key) keep(v, id, std::move(cause), std::move(error));
    });
  }

  /// The closure from the key's records over the cause edges, then a pass
  /// that reads the records of other keys it reached.
  status follow() {
    std::set<rid> in{};
    std::queue<rid> todo;
    for (auto& [id, r] : records) {
      in.insert(id);
      todo.push(id);
    }
    bool capped = false;
    while (!todo.empty()) {
      auto id = todo.front();
      todo.pop();
      std::vector<rid> next;
      if (auto c = cause_of_.find(id); c != cause_of_.end()) next.push_back(c->second);
      auto [b, e] = caused_.equal_range(id);
      for (auto i = b; i != e; ++i)
        next.push_back(i->second);
      for (auto& n : next) {
        if (in.count(n)) continue;
        if (in.size() >= o_.max_records) {
          capped = true;
          break;
        }
        in.insert(n);
        todo.push(n);
      }
    }
    if (capped)
      warnings.push_back("stopped following at --max.records=" +
                         std::to_string(o_.max_records) + " records");
    std::map<topic_partition, std::pair<int64_t, int64_t>> ranges;
    std::set<rid> wanted;
    for (auto& id : in) {
      if (records.count(id)) continue;
      wanted.insert(id);
      topic_partition tp{topics[id.topic], partition_id{id.partition}};
      auto r = ranges.find(tp);
      if (r == ranges.end())
        ranges[tp] = {id.offset, id.offset + 1};
      else
        r->second = {std::min(r->second.first, id.offset),
                     std::max(r->second.second, id.offset + 1)};
    }
    if (wanted.empty()) return {};
    auto st = scan(ranges, [&](const record_view& v, const rid& id) {
      if (!wanted.count(id)) return;
      std::optional<trace::cause> cause;
      std::string error;
      if (auto h = v.header_value(trace::cause_header)) {
        auto c = trace::decode_cause(*h);
        if (c)
          cause = std::move(*c);
        else
          error = c.error().message();
      }
      keep(v, id, std::move(cause), std::move(error));
      wanted.erase(id);
    });
    if (!st) return st;
    for (auto& id : wanted)
      warnings.push_back("the cause " + topics[id.topic] + "/" +
                         std::to_string(id.partition) + "@" + std::to_string(id.offset) +
                         " is gone (retention, compaction, an aborted transaction, or "
                         "another application's topic)");
    return {};
  }

  /// The trace in causal order: a record after the record that caused it;
  /// among records free to go, the earliest timestamp first.
  std::vector<const kept*> causal_order() const {
    std::map<rid, int> waiting; // records whose cause is in the trace and not yet out
    std::multimap<rid, rid> children;
    for (auto& [id, r] : records) {
      auto c = cause_of(r);
      if (c && records.count(*c) && !(*c == id)) {
        waiting[id] = 1;
        children.emplace(*c, id);
      }
    }
    auto later = [this](const rid& a, const rid& b) {
      auto& ra = records.at(a);
      auto& rb = records.at(b);
      return std::tie(ra.timestamp, a) > std::tie(rb.timestamp, b);
    };
    std::priority_queue<rid, std::vector<rid>, decltype(later)> ready{later};
    for (auto& [id, r] : records)
      if (!waiting.count(id)) ready.push(id);
    std::vector<const kept*> out;
    while (!ready.empty()) {
      auto id = ready.top();
      ready.pop();
      out.push_back(&records.at(id));
      auto [b, e] = children.equal_range(id);
      for (auto i = b; i != e; ++i)
        if (--waiting[i->second] == 0) ready.push(i->second);
    }
    return out;
  }

  std::optional<rid> cause_of(const kept& r) const {
    if (!r.cause || !r.cause->has_input()) return std::nullopt;
    auto i = std::find(topics.begin(), topics.end(), r.cause->topic);
    if (i == topics.end()) return std::nullopt;
    return rid{static_cast<uint32_t>(i - topics.begin()), r.cause->partition,
               r.cause->offset};
  }

  std::string where(const rid& id) const {
    return topics[id.topic] + "/" + std::to_string(id.partition) + "@" +
           std::to_string(id.offset);
  }

 private:
  using visitor = std::function<void(const record_view&, const rid&)>;

  void keep(const record_view& v, const rid& id, std::optional<trace::cause> cause,
            std::string error) {
    kept k;
    k.id = id;
    k.timestamp = v.timestamp;
    if (v.key) k.key = std::string{*v.key};
    if (v.value) k.value = std::string{*v.value};
    k.cause = std::move(cause);
    k.cause_error = std::move(error);
    records[id] = std::move(k);
  }

  void note_malformed(const rid& id, const std::string& why) {
    if (malformed++ < 3)
      warnings.push_back("ignored a malformed header at " + where(id) + ": " + why);
  }

  status failed(const std::string& what, const status& s) {
    consumer_->poll_events(0);
    return make_error(s.code(), what + " (Kafka at " + o_.bootstrap +
                                    "): " + s.message() +
                                    (client_error_.empty() ? "" : "; " + client_error_));
  }

  /// Reads each partition of `ranges` from its first offset up to (not
  /// including) its second, calling `fn` per record. A partition is done at
  /// that end (read_committed: its position also passes transaction markers
  /// and aborted records), or at its end on the broker. Gives up, with a
  /// warning, when nothing moves for --timeout.ms.
  status scan(const std::map<topic_partition, std::pair<int64_t, int64_t>>& ranges,
              const visitor& fn) {
    if (ranges.empty()) return {};
    struct part {
      topic_partition tp;
      uint32_t topic;
      int64_t end;
      std::unique_ptr<kafka::partition_queue> queue;
      bool done = false;
    };
    std::mutex mu;
    std::condition_variable cv;
    bool woken = false;
    std::vector<part> parts;
    std::vector<std::pair<topic_partition, weft::offset>> start;
    for (auto& [tp, r] : ranges) {
      auto q = consumer_->take_queue(tp);
      if (!q) return make_error(errc::internal, "no fetch queue for " + to_string(tp));
      q->on_ready([&] {
        std::lock_guard<std::mutex> g{mu};
        woken = true;
        cv.notify_one();
      });
      parts.push_back({tp, topic_index(tp.topic), r.second, std::move(q)});
      start.emplace_back(tp, weft::offset{r.first});
    }
    if (auto s = consumer_->assign_at(start); !s) return failed("cannot read", s);
    auto stop_queues = [&] {
      for (auto& p : parts)
        p.queue->on_ready({});
      (void)consumer_->assign_at({});
    };
    size_t open = parts.size();
    auto last_progress = steady::now();
    while (open > 0) {
      bool moved = false;
      for (auto& p : parts) {
        if (p.done) continue;
        kafka::message_batch batch;
        status fetch_error;
        p.queue->drain(batch, 1000, &fetch_error);
        for (size_t i = 0; i < batch.size(); ++i) {
          auto v = batch.view(i);
          if (v.offset.value() >= p.end) continue;
          fn(v, rid{p.topic, v.partition.value(), v.offset.value()});
        }
        if (!batch.empty()) moved = true;
        if (consumer_->position(p.tp) >= p.end ||
            (p.queue->at_end() && p.queue->size() == 0 && batch.empty() &&
             consumer_->position(p.tp) >= 0)) {
          p.done = true;
          --open;
          moved = true;
        }
      }
      consumer_->poll_events(0);
      if (moved) {
        last_progress = steady::now();
        continue;
      }
      if (steady::now() - last_progress > std::chrono::milliseconds(o_.timeout_ms)) {
        std::string left;
        for (auto& p : parts)
          if (!p.done)
            left += (left.empty() ? "" : ", ") + to_string(p.tp) + " at " +
                    std::to_string(consumer_->position(p.tp)) + " of " +
                    std::to_string(p.end);
        stop_queues();
        if (scanned == 0 && records.empty())
          return failed("nothing arrived within --timeout.ms=" +
                            std::to_string(o_.timeout_ms),
                        make_error(errc::timed_out, "stopped at " + left));
        warnings.push_back("stopped reading after --timeout.ms without progress: " +
                           left + " (an open transaction?); the trace may miss records");
        return {};
      }
      std::unique_lock<std::mutex> lock{mu};
      cv.wait_for(lock, std::chrono::milliseconds(100), [&] { return woken; });
      woken = false;
    }
    stop_queues();
    return {};
  }

  const options& o_;
  std::unique_ptr<kafka::consumer> consumer_;
  std::string client_error_;
  std::unordered_map<rid, rid, rid_hash> cause_of_;
  std::unordered_multimap<rid, rid, rid_hash> caused_;
};

std::string shown(const std::optional<std::string>& bytes, size_t max) {
  if (!bytes) return "null";
  if (!string_serde::deserialize(*bytes)) return "base64:" + detail::base64(*bytes);
  if (bytes->size() <= max) return *bytes;
  return bytes->substr(0, max) + "… (" + std::to_string(bytes->size()) + " bytes)";
}

json bytes_json(const std::optional<std::string>& bytes) {
  if (!bytes) return nullptr;
  if (string_serde::deserialize(*bytes)) return *bytes;
  return json{{"base64", detail::base64(*bytes)}};
}

std::string format_time(timestamp_ms t) {
  std::time_t s = static_cast<std::time_t>(t / 1000);
  std::tm tm{};
  gmtime_r(&s, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03d", buf, static_cast<int>(t % 1000));
  return out;
}

int run(const options& o) {
  auto node = ask_node(o);
  if (!node) {
    std::cerr << "weft-trace: " << node.error().message() << "\n";
    return 1;
  }
  std::vector<std::string> names;
  for (auto& t : (*node)["topics"])
    names.push_back(t.value("name", ""));
  if (names.empty()) {
    std::cerr << "weft-trace: the node at " << o.node
              << " names no topics (its topology could not be described; see its log)\n";
    return 1;
  }
  tracer tr{o};
  auto started = steady::now();
  status st = tr.open();
  if (st) st = tr.first_pass(names);
  if (st) st = tr.follow();
  if (!st) {
    std::cerr << "weft-trace: " << st.message() << "\n";
    return 1;
  }
  auto secs = std::chrono::duration<double>(steady::now() - started).count();
  if (tr.malformed > 3)
    tr.warnings.push_back(std::to_string(tr.malformed) +
                          " malformed weft.cause headers ignored in all");
  if (!tr.missing.empty()) {
    std::string m;
    for (auto& t : tr.missing)
      m += (m.empty() ? "" : ", ") + t;
    tr.warnings.push_back("not created yet: " + m);
  }
  auto order = tr.causal_order();
  std::map<rid, size_t> number;
  for (size_t i = 0; i < order.size(); ++i)
    number[order[i]->id] = i + 1;

  if (o.as_json) {
    json recs = json::array();
    for (size_t i = 0; i < order.size(); ++i) {
      auto& r = *order[i];
      json j{{"n", i + 1},
             {"topic", tr.topics[r.id.topic]},
             {"partition", r.id.partition},
             {"offset", r.id.offset},
             {"timestamp", r.timestamp},
             {"key", bytes_json(r.key)},
             {"value", bytes_json(r.value)},
             {"same_key", r.key && *r.key == *o.key}};
      if (r.cause) {
        j["service"] = r.cause->service;
        if (r.cause->has_input())
          j["cause"] = {{"topic", r.cause->topic},
                        {"partition", r.cause->partition},
                        {"offset", r.cause->offset}};
        if (auto c = tr.cause_of(r); c && number.count(*c)) j["caused_by"] = number[*c];
      } else {
        j["service"] = nullptr; // written from outside weft (or trace.headers=false)
      }
      if (!r.cause_error.empty()) j["cause_error"] = r.cause_error;
      recs.push_back(std::move(j));
    }
    json out{{"application", o.app},
             {"key", (*node)["key"]},
             {"key_base64", (*node)["key_base64"]},
             {"node", (*node)["node"]},
             {"read",
              {{"topics", names.size() - tr.missing.size()},
               {"partitions", tr.partitions_read},
               {"records", tr.scanned},
               {"seconds", secs}}},
             {"records", std::move(recs)},
             {"gates", (*node)["gates"]},
             {"warnings", tr.warnings}};
    std::cout << out.dump(2) << "\n";
    return 0;
  }

  std::cout << "application " << o.app << ", key " << shown(*o.key, 200) << " (node "
            << (*node).value("node", "?") << " at " << o.node << ")\n";
  char line[200];
  std::snprintf(line, sizeof line,
                "read %zu topics, %zu partitions, %zu records (read_committed, to their "
                "ends at start) in %.2f s\n",
                names.size() - tr.missing.size(), tr.partitions_read, tr.scanned, secs);
  std::cout << line;
  if (order.empty())
    std::cout << "\nno record has this key\n";
  else
    std::cout
        << "\n  #  time (UTC)    record (topic/partition@offset)                       "
           "    key          service            caused by\n";
  for (size_t i = 0; i < order.size(); ++i) {
    auto& r = *order[i];
    std::string by = "-";
    if (auto c = tr.cause_of(r))
      by = number.count(*c) ? "#" + std::to_string(number[*c]) : tr.where(*c);
    else if (r.cause)
      by = "(a timer)";
    std::string service = r.cause ? r.cause->service : "(outside weft)";
    std::snprintf(line, sizeof line, "%3zu  %s  %-60s %-12s %-18s %s\n", i + 1,
                  format_time(r.timestamp).c_str(), tr.where(r.id).c_str(),
                  shown(r.key, 12).c_str(), service.c_str(), by.c_str());
    std::cout << line << "       " << shown(r.value, 160) << "\n";
    if (!r.cause_error.empty()) std::cout << "       (" << r.cause_error << ")\n";
  }
  auto gates = (*node)["gates"];
  if (!gates.empty()) std::cout << "\ngates\n";
  for (auto& g : gates) {
    std::cout << "  " << g.value("service", "?");
    if (g.contains("partition")) std::cout << " (partition " << g["partition"] << ")";
    auto state = g.value("state", "?");
    if (state == "none") {
      std::cout << ": nothing held for this key\n";
      continue;
    }
    if (state == "unavailable") {
      std::cout << ": unavailable now (" << g.value("error", "") << ")\n";
      continue;
    }
    std::cout << ": " << state;
    if (g.contains("timeout_at_ms")) {
      auto t = g["timeout_at_ms"].get<int64_t>();
      std::cout << ", times out at " << format_time(t) << " UTC ("
                << g.value("timeout_clock", "") << ")";
    }
    std::cout << "\n";
    if (g.contains("parts")) {
      for (auto& p : g["parts"])
        std::cout << "    arrived: " << p.value("part", "") << " = "
                  << (p.contains("value") ? p["value"].dump() : "?") << "\n";
      for (auto& w : g["waiting_for"])
        std::cout << "    waiting for: " << w.get<std::string>() << "\n";
    } else if (g.contains("value")) {
      std::cout << "    holds: " << g["value"].dump() << "\n";
    }
  }
  for (auto& w : tr.warnings)
    std::cout << "warning: " << w << "\n";
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  auto o = parse_args(argc, argv);
  if (!o) {
    std::cerr << "weft-trace: " << o.error().message() << "\n" << usage_text;
    return 1;
  }
  if (o->help) {
    std::cout << usage_text;
    return 0;
  }
  return run(*o);
}
