#include "http_api.hpp"

#include <atomic>
#include <chrono>
#include <thread>

#include <weft/http/json_api.hpp>
#include <weft/http/server.hpp>
#include <weft/log.hpp>
#include <weft/node.hpp>

#include "pull_subscription.hpp"
#include "push_delivery.hpp"
#include "push_parking.hpp"
#include "record_codec.hpp"
#include "table_service.hpp"
#include "topic_writer.hpp"

namespace sidecar {

using clock_type = std::chrono::steady_clock;

namespace {

using weft::http::bad_request;
using weft::http::reply_error;
constexpr auto reply = weft::http::reply_json;

/// A failed read or write as an answer: 503 (retry) for what passes.
void reply_status(httplib::Response& res, const weft::status& st) {
  switch (st.code()) {
  case weft::errc::not_found: return reply_error(res, 404, st.message());
  case weft::errc::invalid_argument: return reply_error(res, 400, st.message());
  default: return reply_error(res, 503, st.message());
  }
}

weft::http::limits limits_of(const http_settings& h) {
  weft::http::limits l;
  l.threads = static_cast<size_t>(h.threads);
  l.max_waiting_connections = std::max<size_t>(64, 4 * l.threads);
  l.max_body_bytes = static_cast<size_t>(h.max_body_bytes);
  l.request_timeout = std::chrono::milliseconds(h.request_timeout_ms);
  l.bearer_token = h.auth_token;
  return l;
}

constexpr size_t max_records_per_write = 10000;
constexpr size_t max_id_bytes = 200;

} // namespace

struct http_api::impl {
  const sidecar_config& cfg;
  const weft::node& node;
  const table_reader& reader;
  topic_writer* writer;
  const std::vector<std::unique_ptr<push_delivery>>& pushes;
  std::map<std::string, std::unique_ptr<pull_subscription>>& pulls;
  size_t max_record_bytes;
  std::string node_id;
  weft::http::server server;
  std::thread thread;
  int bound_port = 0;
  std::atomic<bool> stopping{false};

  impl(const sidecar_config& c, const weft::node& n, const table_reader& r,
       topic_writer* w, const std::vector<std::unique_ptr<push_delivery>>& p,
       std::map<std::string, std::unique_ptr<pull_subscription>>& pl, size_t max_bytes,
       std::string id)
    : cfg(c), node(n), reader(r), writer(w), pushes(p), pulls(pl),
      max_record_bytes(max_bytes), node_id(std::move(id)), server(limits_of(c.http)) {}

  // -- tables ----------------------------------------------------------------

  void get_row(const httplib::Request& req, httplib::Response& res) {
    const std::string table = req.matches[1], key = req.matches[2];
    auto t = cfg.tables.find(table);
    if (t == cfg.tables.end())
      return reply_error(res, 404, "no table '" + table + "' (declare table." + table +
                                       ".topic)");
    const auto& serdes = cfg.topic(t->second.topic);
    std::string key_bytes = key;
    if (serdes.key == serde_kind::bytes) {
      auto b = base64_decode(key);
      if (!b) return reply_error(res, 400, "key: not base64 (the table's key serde is bytes)");
      key_bytes = std::move(*b);
    }
    auto row = reader.get(table, key_bytes);
    if (!row) return reply_status(res, row.error());
    if (!*row && !reader.caught_up(table))
      return reply_error(res, 503, "table '" + table +
                                       "' is still reading its topic up to where it ended "
                                       "at start-up; retry");
    if (!*row) return reply_error(res, 404, "no key '" + key + "' in table '" + table + "'");
    auto value = to_api(serdes.value, **row);
    if (!value)
      return reply_error(res, 500, "the row of '" + key + "' " + value.error().message());
    auto k = to_api(serdes.key, key_bytes);
    reply(res, 200, json{{"key", k ? *k : json(key)}, {"value", std::move(*value)}});
  }

  void scan(const httplib::Request& req, httplib::Response& res) {
    const std::string table = req.matches[1];
    auto t = cfg.tables.find(table);
    if (t == cfg.tables.end())
      return reply_error(res, 404, "no table '" + table + "' (declare table." + table +
                                       ".topic)");
    const auto& serdes = cfg.topic(t->second.topic);
    size_t limit = 100;
    if (req.has_param("limit")) {
      const auto v = req.get_param_value("limit");
      char* end = nullptr;
      errno = 0;
      auto n = std::strtoll(v.c_str(), &end, 10);
      if (v.empty() || *end || errno || n < 1 || n > 10000)
        return reply_error(res, 400, "limit: must be an integer from 1 to 10000");
      limit = static_cast<size_t>(n);
    }
    auto bytes_param = [&](const char* name) -> std::string {
      if (!req.has_param(name)) return {};
      auto v = req.get_param_value(name);
      if (serdes.key != serde_kind::bytes) return v;
      auto b = base64_decode(v);
      if (!b)
        throw bad_request{std::string{name} + ": not base64 (the table's key serde is bytes)"};
      return *b;
    };
    table_reader::range range{bytes_param("prefix"), bytes_param("from"), bytes_param("to"),
                              bytes_param("after")};
    auto page = reader.scan(table, range, limit);
    if (!page) return reply_status(res, page.error());
    if (!reader.caught_up(table))
      return reply_error(res, 503,
                         "table '" + table +
                             "' is still reading its topic up to where it ended "
                             "at start-up; retry");
    json rows = json::array();
    for (auto& r : page->rows) {
      auto k = to_api(serdes.key, r.key);
      auto v = to_api(serdes.value, r.value);
      json row{{"key", k ? *k : json(base64_encode(r.key))}};
      if (v)
        row["value"] = std::move(*v);
      else
        row["error"] = "value " + v.error().message();
      rows.push_back(std::move(row));
    }
    json next = nullptr;
    if (page->more && !page->rows.empty()) {
      const auto& last = page->rows.back().key;
      next = serdes.key == serde_kind::bytes ? json(base64_encode(last)) : json(last);
    }
    json by_node = json::object();
    for (auto& [node_id, parts] : page->partitions)
      by_node[node_id] = parts;
    reply(res, 200,
          json{{"rows", std::move(rows)},
               {"next", std::move(next)},
               {"partitions",
                {{"count", page->partition_count}, {"by_node", std::move(by_node)}}}});
  }

  // -- writes ----------------------------------------------------------------

  /// One record of a write, checked against the topic's serdes.
  weft::record parse_record(const json& j, const std::string& field, const topic_spec& t) {
    if (!j.is_object()) throw bad_request{field + ": must be an object {\"key\", \"value\"}"};
    weft::record r;
    r.topic = t.name;
    for (auto& [name, v] : j.items()) {
      const std::string f = field.empty() ? name : field + "." + name;
      if (name == "key" || name == "value") {
        auto bytes = from_api(name == "key" ? t.key : t.value, v, f);
        if (!bytes) throw bad_request{bytes.error().message()};
        (name == "key" ? r.key : r.value) = std::move(*bytes);
      } else if (name == "headers") {
        if (!v.is_object()) throw bad_request{f + ": must be an object of strings"};
        for (auto& [hk, hv] : v.items()) {
          if (!hv.is_string()) throw bad_request{f + "." + hk + ": must be a string"};
          r.headers.push_back({hk, hv.get<std::string>()});
        }
      } else if (name == "partition") {
        if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > 100000)
          throw bad_request{f + ": must be a partition number (an integer from 0)"};
        r.partition = static_cast<int32_t>(v.get<int64_t>());
      } else if (name == "timestamp") {
        if (!v.is_number_integer() || v.get<int64_t>() < 0)
          throw bad_request{f + ": must be milliseconds since the epoch (an integer >= 0)"};
        r.timestamp = v.get<int64_t>();
      } else if (!(field.empty() && (name == "id" || name == "records"))) {
        throw bad_request{f + ": unknown field; a record has key, value, headers, "
                              "partition and timestamp"};
      }
    }
    if (!j.contains("value"))
      throw bad_request{(field.empty() ? "" : field + ".") +
                        "value: required (null writes a tombstone)"};
    size_t size = (r.key ? r.key->size() : 0) + (r.value ? r.value->size() : 0);
    for (auto& h : r.headers)
      size += h.key.size() + h.value.size();
    if (size > max_record_bytes)
      throw bad_request{(field.empty() ? std::string{"record"} : field) + ": " +
                        std::to_string(size) + " bytes, more than the producer takes (" +
                        std::to_string(max_record_bytes) + ")"};
    return r;
  }

  void post_records(const httplib::Request& req, httplib::Response& res) {
    const std::string topic = req.matches[1];
    auto t = cfg.topics.find(topic);
    if (t == cfg.topics.end() || !t->second.writable)
      return reply_error(res, 404, "topic '" + topic +
                                       "' is not writable through this sidecar (set topic." +
                                       topic + ".writable=true)");
    if (!writer) return reply_error(res, 503, "the writer is not running");
    auto body = json::parse(req.body, nullptr, false);
    if (body.is_discarded()) return reply_error(res, 400, "body: not JSON");
    if (!body.is_object())
      return reply_error(res, 400, "body: must be an object with records (or key and value)");
    write_request w;
    w.topic = topic;
    if (body.contains("id")) {
      const auto& id = body["id"];
      if (!id.is_string() || id.get_ref<const std::string&>().empty() ||
          id.get_ref<const std::string&>().size() > max_id_bytes)
        return reply_error(res, 400, "id: must be a string of 1 to 200 bytes");
      w.id = id.get<std::string>();
    } else if (req.has_header("Idempotency-Key")) {
      w.id = req.get_header_value("Idempotency-Key");
      if (w.id.empty() || w.id.size() > max_id_bytes)
        return reply_error(res, 400, "Idempotency-Key: must be 1 to 200 bytes");
    }
    json canonical = json::array();
    if (body.contains("records")) {
      const auto& recs = body["records"];
      if (!recs.is_array() || recs.empty() || recs.size() > max_records_per_write)
        return reply_error(res, 400, "records: must be an array of 1 to " +
                                         std::to_string(max_records_per_write) + " records");
      for (auto& [name, v] : body.items())
        if (name != "id" && name != "records")
          return reply_error(res, 400, name + ": unknown field; with records, a write has "
                                              "only id and records");
      for (size_t i = 0; i < recs.size(); ++i) {
        w.records.push_back(parse_record(recs[i], "records[" + std::to_string(i) + "]",
                                         t->second));
        canonical.push_back(recs[i]);
      }
    } else {
      w.records.push_back(parse_record(body, "", t->second));
      json one = body;
      one.erase("id");
      canonical.push_back(std::move(one));
    }
    w.digest = digest_of(json{{"topic", topic}, {"records", canonical}}.dump());
    auto out = writer->write(std::move(w));
    if (!out) return reply_status(res, out.error());
    reply(res, out->http_status, out->body);
  }

  // -- subscriptions ---------------------------------------------------------

  void events(const httplib::Request& req, httplib::Response& res) {
    const std::string name = req.matches[1];
    auto s = pulls.find(name);
    if (s == pulls.end()) {
      if (cfg.subscriptions.count(name))
        return reply_error(res, 400, "subscription '" + name +
                                         "' is a push subscription; its records are POSTed "
                                         "to its url");
      return reply_error(res, 404, "no subscription '" + name + "'");
    }
    auto* sub = s->second.get();
    if (auto st = sub->open(); !st) return reply_error(res, 409, st.message());
    res.status = 200;
    res.set_header("Cache-Control", "no-cache");
    auto last_write = std::make_shared<clock_type::time_point>(clock_type::now());
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, sub, last_write](size_t, httplib::DataSink& sink) {
          if (stopping) {
            sink.done();
            return true;
          }
          auto recs = sub->next(500);
          if (!recs) {
            sink.done();
            return true;
          }
          std::string out;
          for (auto& r : *recs)
            out += "id: " + std::to_string(r["partition"].get<int32_t>()) + "-" +
                   std::to_string(r["offset"].get<int64_t>()) + "\nevent: record\ndata: " +
                   r.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
          const auto now = clock_type::now();
          // A comment each second: finds a client that left (the write fails).
          if (out.empty() && now - *last_write < std::chrono::seconds(1)) return true;
          if (out.empty()) out = ": keep-alive\n\n";
          *last_write = now;
          return sink.write(out.data(), out.size());
        },
        [sub](bool) { sub->close(); });
  }

  void commit(const httplib::Request& req, httplib::Response& res) {
    const std::string name = req.matches[1];
    auto s = pulls.find(name);
    if (s == pulls.end()) return reply_error(res, 404, "no pull subscription '" + name + "'");
    auto body = json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object())
      return reply_error(res, 400, "body: must be a JSON object {\"offsets\": [...]}");
    if (!body.contains("offsets"))
      return reply_error(res, 400, "offsets: required, [{\"partition\", \"offset\"}]");
    auto st = s->second->commit(body["offsets"]);
    if (!st) {
      if (st.code() == weft::errc::not_found) return reply_error(res, 409, st.message());
      return reply_status(res, st);
    }
    reply(res, 200, json{{"committed", body["offsets"]}});
  }

  // -- parked keys (push subscriptions with bad.record.policy=park) ----------

  push_parking* parking_of(const std::string& name) const {
    for (auto& p : pushes)
      if (p->spec().name == name) return p->parking();
    return nullptr;
  }

  void parked(const httplib::Request&, httplib::Response& res) {
    json keys = json::array();
    json parts = json::object();
    uint64_t held = 0;
    for (auto& p : pushes) {
      auto* parking = p->parking();
      if (!parking) continue;
      for (auto& k : parking->list()) {
        held += k["held"].get<uint64_t>();
        keys.push_back(std::move(k));
      }
      parts[p->spec().name] = parking->partitions();
    }
    reply(res, 200,
          json{{"node", node_id},
               {"keys", keys.size()},
               {"held", held},
               {"parked", keys},
               {"partitions", parts}});
  }

  void release(const httplib::Request& req, httplib::Response& res,
               const std::optional<std::string>& path_key) {
    const std::string name = req.matches[1];
    if (!cfg.subscriptions.count(name))
      return reply_error(res, 404, "no subscription '" + name.substr(0, 200) + "'");
    auto* parking = parking_of(name);
    if (!parking)
      return reply_error(res, 404,
                         "subscription '" + name +
                             "' does not park keys (set subscription." + name +
                             ".bad.record.policy=park; pull subscriptions never do)");
    if (!req.has_param("action"))
      return reply_error(res, 400, "action: say what to do: ?action=retry, skip or drop");
    int64_t partition = -1;
    if (req.has_param("partition")) {
      const auto v = req.get_param_value("partition");
      char* end = nullptr;
      errno = 0;
      partition = std::strtoll(v.c_str(), &end, 10);
      if (v.empty() || *end || errno || partition < 0 || partition > 65535)
        return reply_error(res, 400,
                           "partition: must be a partition number, not '" +
                               v.substr(0, 100) + "'");
    }
    std::optional<std::string> key = path_key;
    if (key && cfg.topic(cfg.subscriptions.at(name).topic).key == serde_kind::bytes) {
      auto b = base64_decode(*key);
      if (!b)
        return reply_error(res, 400,
                           "key: not base64 (the subscription's key serde is bytes)");
      key = std::move(*b);
    }
    auto [code, body] = parking->request(key, partition, req.get_param_value("action"),
                                         std::chrono::seconds(2));
    if (code == 503) res.set_header("Retry-After", "1");
    reply(res, code, body);
  }

  void release_key(const httplib::Request& req, httplib::Response& res) {
    release(req, res, req.matches[2].str());
  }

  void release_null(const httplib::Request& req, httplib::Response& res) {
    if (req.get_param_value("null_key") != "true")
      return reply_error(res, 400,
                         "name the key: POST /v1/parked/<subscription>/<key>, or "
                         "?null_key=true for the null key");
    release(req, res, std::nullopt);
  }

  // -- health and metrics ----------------------------------------------------

  void ready(const httplib::Request&, httplib::Response& res) {
    auto waiting = reader.not_ready();
    if (waiting.empty()) return reply(res, 200, json{{"ready", true}});
    std::string names;
    for (auto& n : waiting)
      names += (names.empty() ? "" : ", ") + n;
    reply_error(res, 503, "tables not restored yet: " + names);
  }

  void metrics(const httplib::Request&, httplib::Response& res) {
    auto m = node.metrics();
    json out{{"node",
              {{"processed", m.processed},
               {"produced", m.produced},
               {"bad_records", m.bad_records},
               {"commits", m.commits},
               {"pauses", m.pauses},
               {"epochs_committed", m.epochs_committed},
               {"epochs_aborted", m.epochs_aborted}}}};
    if (writer) {
      auto w = writer->counters();
      out["writes"] = {{"requests", w.requests},         {"records", w.records},
                       {"replayed", w.replayed},         {"conflicts", w.conflicts},
                       {"transactions", w.transactions}, {"aborted", w.aborted}};
    }
    json subs = json::object();
    uint64_t parked_keys = 0, parked_records = 0;
    for (auto& p : pushes) {
      auto& c = p->counters();
      subs[p->spec().name] = {{"mode", "push"},
                              {"delivered", c.delivered.load()},
                              {"posts", c.posts.load()},
                              {"unavailable", c.unavailable.load()},
                              {"refused", c.refused.load()},
                              {"skipped", c.skipped.load()},
                              {"dead_lettered", c.dead_lettered.load()}};
      if (auto* parking = p->parking()) {
        auto [keys, held] = parking->totals();
        auto& m = subs[p->spec().name];
        m["parked_keys"] = keys;
        m["parked_records"] = held;
        m["parked"] = c.parked.load();
        m["replayed"] = c.replayed.load();
        m["dropped"] = c.dropped.load();
        parked_keys += keys;
        parked_records += held;
      }
    }
    // The node endpoint's names: this sidecar's parked keys and held records.
    out["parked_keys"] = parked_keys;
    out["parked_records"] = parked_records;
    for (auto& [name, p] : pulls)
      subs[name] = {{"mode", "pull"}, {"delivered", p->delivered()}};
    out["subscriptions"] = std::move(subs);
    auto& r = server.refused();
    out["http_refused"] = {{"headers_too_large", r.headers_too_large.load()},
                           {"body_too_large", r.body_too_large.load()},
                           {"timed_out", r.timed_out.load()},
                           {"busy", r.busy.load()},
                           {"unauthorized", r.unauthorized.load()}};
    reply(res, 200, out);
  }
};

http_api::http_api(const sidecar_config& cfg, const weft::node& node,
                   const table_reader& reader, topic_writer* writer,
                   const std::vector<std::unique_ptr<push_delivery>>& pushes,
                   std::map<std::string, std::unique_ptr<pull_subscription>>& pulls,
                   size_t max_record_bytes, std::string node_id)
  : impl_(std::make_unique<impl>(cfg, node, reader, writer, pushes, pulls,
                                 max_record_bytes, std::move(node_id))) {}

http_api::~http_api() {
  stop();
}

weft::status http_api::start() {
  auto& m = *impl_;
  auto& s = m.server;
  s.set_tcp_nodelay(true);
  s.set_error_fallback([](const httplib::Request& req, httplib::Response& res) {
    if (res.status == 404)
      reply_error(res, 404,
                  "no such endpoint: " + req.method + " " + req.path.substr(0, 200) +
                      " (the API is under /v1: tables, topics, subscriptions, parked, "
                      "health, ready, metrics)");
  });
  s.Get("/v1/health", [](const httplib::Request&, httplib::Response& res) {
    reply(res, 200, json{{"status", "up"}});
  });
  s.Get("/v1/ready", weft::http::guarded(&m, &impl::ready));
  s.Get("/v1/metrics", weft::http::guarded(&m, &impl::metrics));
  s.Get(R"(/v1/tables/([^/]+)/(.+))", weft::http::guarded(&m, &impl::get_row));
  s.Get(R"(/v1/tables/([^/]+)/?)", weft::http::guarded(&m, &impl::scan));
  s.Post(R"(/v1/topics/([^/]+))", weft::http::guarded(&m, &impl::post_records));
  s.Get(R"(/v1/subscriptions/([^/]+)/events)", weft::http::guarded(&m, &impl::events));
  s.Post(R"(/v1/subscriptions/([^/]+)/commit)", weft::http::guarded(&m, &impl::commit));
  s.Get("/v1/parked", weft::http::guarded(&m, &impl::parked));
  s.Post(R"(/v1/parked/([^/]+)/(.+))", weft::http::guarded(&m, &impl::release_key));
  s.Post(R"(/v1/parked/([^/]+)/?)", weft::http::guarded(&m, &impl::release_null));
  const auto& h = m.cfg.http;
  if (h.port == 0) {
    m.bound_port = s.bind_to_any_port(h.host);
    if (m.bound_port < 0)
      return weft::make_error(weft::errc::invalid_config,
                              "sidecar.http.host: cannot bind " + h.host);
  } else {
    if (!s.bind_to_port(h.host, h.port))
      return weft::make_error(weft::errc::invalid_config,
                              "sidecar.http.port: cannot bind " + h.host + ":" +
                                  std::to_string(h.port) + " (in use? set another port)");
    m.bound_port = h.port;
  }
  m.thread = std::thread{[&s] { s.listen_after_bind(); }};
  return {};
}

int http_api::port() const {
  return impl_->bound_port;
}

void http_api::stop() {
  auto& m = *impl_;
  m.stopping = true;
  if (m.thread.joinable()) {
    m.server.stop();
    m.thread.join();
  }
}

} // namespace sidecar
