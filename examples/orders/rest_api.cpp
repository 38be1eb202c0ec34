#include "rest_api.hpp"

#include <weft/http/request_metrics.hpp>

#include <chrono>
#include <future>
#include <mutex>
#include <thread>

#include <httplib.h>

#include <weft/http/json_api.hpp>
#include <weft/kafka/producer.hpp>
#include <weft/node.hpp>

#include "inventory.hpp"
#include "request_parsing.hpp"
#include "system.hpp"

namespace orders {

using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;

state_reader::~state_reader() = default;

weft::result<std::optional<std::string>>
local_state_reader::get(std::string_view store, std::string_view key) const {
  return node_.get(store, key);
}

namespace {

/// A 4xx/5xx answer: {"error": reason}. A 503 says "try again": a read
/// whose shard restores or moves between nodes (errc::state_not_ready), an
/// owner that does not answer, a write Kafka did not take; it carries
/// Retry-After (seconds), as every 503 does. A reason may quote the client's
/// bytes (an id from the path, nlohmann's "last read" of a malformed body):
/// invalid UTF-8 there is replaced, never a reason to fail.
using weft::http::reply_error;
constexpr auto reply = weft::http::reply_json;

using rest::bad_request;

/// ?name=value, or nullopt when absent.
std::optional<std::string> param(const httplib::Request& req, const char* name) {
  if (!req.has_param(name)) return std::nullopt;
  return req.get_param_value(name);
}

} // namespace

struct rest_api::impl {
  const state_reader& reader;
  topic_names topics;
  std::map<std::string, std::string> producer_props;
  std::unique_ptr<weft::kafka::producer> producer;
  weft::http::server server;
  weft::http::request_metrics requests{"orders-rest"};
  std::thread server_thread;
  int bound_port = 0;

  // Orders this node posted whose CREATE the orders service may not have
  // applied yet: a second POST of the same id in that window must still
  // get 200 or 409. Entries go once the store has the order, or after a
  // minute.
  std::mutex pending_mu;
  std::map<std::string, std::pair<order, clock_type::time_point>> pending;

  impl(const state_reader& r, topic_names t, std::map<std::string, std::string> props,
       weft::http::limits bounds)
    : reader(r), topics(std::move(t)), producer_props(std::move(props)),
      server(std::move(bounds)) {}

  /// Writes one record and waits for Kafka's acknowledgement (10 s at most).
  weft::status produce(const std::string& topic, const std::string& key,
                       const std::string& value) {
    auto done = std::make_shared<std::promise<weft::status>>();
    auto result = done->get_future();
    auto* opaque = new std::shared_ptr<std::promise<weft::status>>(done);
    const auto deadline = clock_type::now() + std::chrono::seconds(10);
    for (;;) {
      auto st = producer->send(topic, -1, key, value, 0, nullptr, opaque);
      if (st.ok()) break;
      if (st.code() != weft::errc::queue_full || clock_type::now() > deadline) {
        delete opaque;
        return st;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (result.wait_until(deadline) != std::future_status::ready)
      return weft::make_error(weft::errc::timed_out, "Kafka did not acknowledge in 10 s");
    return result.get();
  }

  /// The order as the orders service stores it.
  weft::result<std::optional<order>> read_order(const std::string& id) {
    auto raw = reader.get(store_names::orders, id);
    if (!raw) return raw.error();
    if (!*raw) return std::optional<order>{};
    auto o = order_serde::deserialize(**raw);
    if (!o) return o.error();
    return std::optional<order>{std::move(*o)};
  }

  /// Polls the order until done(order-or-null) holds or `limit` passes;
  /// returns the last read. An error is returned only if it persists.
  template <class Done>
  weft::result<std::optional<order>>
  wait_order(const std::string& id, std::chrono::milliseconds limit, Done done) {
    // Polls with a growing pause (0.5 ms up to 10 ms): quick answers stay
    // quick, and a hundred waiting clients do not spin on the stores.
    const auto deadline = clock_type::now() + limit;
    auto pause = std::chrono::microseconds(500);
    for (;;) {
      auto o = read_order(id);
      if (o && done(*o)) return o;
      const auto now = clock_type::now();
      if (now >= deadline) return o;
      std::this_thread::sleep_for(std::min<clock_type::duration>(pause, deadline - now));
      pause = std::min<std::chrono::microseconds>(pause * 3 / 2,
                                                  std::chrono::milliseconds(10));
    }
  }

  void post_order(const httplib::Request& req, httplib::Response& res) {
    auto o = rest::parse_order(req.body);
    const std::string location = "/v1/orders/" + o.id;
    auto existing = read_order(o.id);
    if (!existing && existing.error().code() == weft::errc::state_not_ready) {
      // The order's partition is moving between nodes: its state cannot be
      // read, but the command can be recorded. The orders service creates an
      // order once and ignores a CREATE with another body, so the request is
      // accepted (202) and its outcome read later (GET, /validated) — the
      // client is not refused while a node fails over.
      order_command c;
      c.type = cmd_create;
      c.placed = o;
      if (auto st = produce(topics.commands, o.id, command_serde::serialize(c)); !st)
        return reply_error(res, 503, "could not record the order: " + st.message());
      res.set_header("Location", location);
      return reply(res, 202, o);
    }
    if (!existing) return reply_error(res, 503, existing.error().message());
    {
      std::lock_guard<std::mutex> lock{pending_mu};
      if (*existing) {
        pending.erase(o.id);
      } else if (auto i = pending.find(o.id); i != pending.end()) {
        existing = std::optional<order>{i->second.first};
      }
      if (!*existing) {
        prune_pending();
        pending[o.id] = {o, clock_type::now()};
      }
    }
    if (*existing) {
      if (!(*existing)->same_request(o))
        return reply_error(res, 409, "order " + o.id + " exists with a different body");
      res.set_header("Location", location);
      return reply(res, 200, **existing);
    }
    order_command c;
    c.type = cmd_create;
    c.placed = o;
    if (auto st = produce(topics.commands, o.id, command_serde::serialize(c)); !st) {
      std::lock_guard<std::mutex> lock{pending_mu};
      pending.erase(o.id);
      return reply_error(res, 503, "could not record the order: " + st.message());
    }
    res.set_header("Location", location);
    reply(res, 201, o);
  }

  void prune_pending() {
    if (pending.size() < 10000) return;
    const auto old = clock_type::now() - std::chrono::minutes(1);
    for (auto i = pending.begin(); i != pending.end();)
      i = i->second.second < old ? pending.erase(i) : std::next(i);
  }

  void get_order(const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1];
    auto limit = rest::parse_timeout(param(req, "timeout"), 0);
    auto o = wait_order(id, limit, [](const std::optional<order>& o) { return bool(o); });
    if (!o) return reply_error(res, 503, o.error().message());
    if (!*o) return reply_error(res, 404, "no order " + id);
    reply(res, 200, **o);
  }

  void get_validated(const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1];
    auto limit = rest::parse_timeout(param(req, "timeout"), 10000);
    auto o = wait_order(id, limit, [](const std::optional<order>& o) {
      return o && o->state != created;
    });
    if (o && *o && (*o)->state != created) return reply(res, 200, **o);
    // Still unreadable at the deadline (its shard moving): retry, not "late".
    if (!o) return reply_error(res, 503, o.error().message());
    reply_error(res, 504,
                "order " + id + " was not past validation within " +
                    std::to_string(limit.count()) + " ms" +
                    (*o ? "" : " (no such order)"));
  }

  void cancel_order(const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1];
    auto limit = rest::parse_timeout(param(req, "timeout"), 10000);
    auto o = read_order(id);
    if (!o) return reply_error(res, 503, o.error().message());
    if (!*o) return reply_error(res, 404, "no order " + id);
    auto refuse = [&](const order& o) {
      reply_error(res, 409,
                  "order " + id + " is " + o.state + " and cannot be cancelled");
    };
    if ((*o)->state == cancelled) return reply(res, 200, **o);
    if ((*o)->state == shipped || (*o)->state == failed) return refuse(**o);
    order_command c;
    c.type = cmd_cancel;
    if (auto st = produce(topics.commands, id, command_serde::serialize(c)); !st)
      return reply_error(res, 503, "could not record the cancel: " + st.message());
    // Shipping may win the race; the orders service decides and we report.
    o = wait_order(id, limit, [](const std::optional<order>& o) {
      return o && final_state(o->state);
    });
    // The cancel is recorded; a retry asks again and finds its outcome.
    if (!o)
      return reply_error(res, 503,
                         "the cancel of " + id +
                             " is recorded; reading its outcome: " + o.error().message());
    if (!*o || !final_state((*o)->state))
      return reply_error(res, 504,
                         "order " + id + " was not cancelled within " +
                             std::to_string(limit.count()) + " ms");
    if ((*o)->state != cancelled) return refuse(**o);
    reply(res, 200, **o);
  }

  void post_payment(const httplib::Request& req, httplib::Response& res) {
    auto p = rest::parse_payment(req.body);
    if (auto st = produce(topics.payments, p.id, payment_serde::serialize(p)); !st)
      return reply_error(res, 503, "could not record the payment: " + st.message());
    reply(res, 202, p);
  }

  void post_stock(const httplib::Request& req, httplib::Response& res) {
    auto a = rest::parse_stock_adjustment(req.body);
    if (auto st = produce(topics.stock, a.product, stock_serde::serialize(a)); !st)
      return reply_error(res, 503, "could not record the adjustment: " + st.message());
    reply(res, 202, a);
  }

  void get_stock(const httplib::Request& req, httplib::Response& res) {
    const std::string product = req.matches[1];
    auto raw = reader.get(store_names::stock, product);
    if (!raw) return reply_error(res, 503, raw.error().message());
    if (!*raw) return reply_error(res, 404, "no stock record for product " + product);
    auto level = weft::json_serde<stock_level>::deserialize(**raw);
    if (!level) return reply_error(res, 500, level.error().message());
    reply(res, 200, *level);
  }

  void put_customer(const httplib::Request& req, httplib::Response& res) {
    const auto id = rest::parse_customer_id(req.matches[1].str());
    auto c = rest::parse_customer(req.body, id);
    if (auto st =
            produce(topics.customers, std::to_string(id), customer_serde::serialize(c));
        !st)
      return reply_error(res, 503, "could not record the customer: " + st.message());
    reply(res, 202, c);
  }

  void get_customer_orders(const httplib::Request& req, httplib::Response& res) {
    const auto id = rest::parse_customer_id(req.matches[1].str());
    auto raw = reader.get(store_names::customer_orders, std::to_string(id));
    if (!raw) return reply_error(res, 503, raw.error().message());
    json list = json::array();
    if (*raw) {
      auto view = json::parse(**raw, nullptr, false);
      if (view.is_discarded()) return reply_error(res, 500, "corrupt customer view");
      for (auto& [order_id, o] : view.items())
        list.push_back(o);
    }
    reply(res, 200, list);
  }

  /// Serves `fn` through weft::http::guarded (a bad_request becomes a 400
  /// naming what is wrong), counted and timed as `method route`
  /// (request_metrics).
  httplib::Server::Handler counted(const char* method, const char* route,
                                   void (impl::*fn)(const httplib::Request&,
                                                    httplib::Response&)) {
    auto r = requests.route(method, route);
    auto handler = weft::http::guarded(this, fn);
    return [this, handler, r](const httplib::Request& req, httplib::Response& res) {
      auto started = requests.start();
      handler(req, res);
      requests.done(r, started, res.status);
    };
  }
};

namespace {

weft::http::limits with_threads(weft::http::limits l, int threads) {
  l.threads = static_cast<size_t>(std::max(1, threads));
  // Room for a burst of clients connecting at once beyond the busy threads.
  l.max_waiting_connections = std::max<size_t>(l.max_waiting_connections, 4 * l.threads);
  // Clients keep their connection for many requests.
  l.idle_timeout = std::chrono::seconds(30);
  return l;
}

} // namespace

rest_api::rest_api(const state_reader& reader, topic_names topics,
                   std::map<std::string, std::string> producer_props, int threads,
                   weft::http::limits bounds)
  : impl_(std::make_unique<impl>(reader, std::move(topics), std::move(producer_props),
                                 with_threads(std::move(bounds), threads))) {}

const weft::http::refusals& rest_api::refused() const {
  return impl_->server.refused();
}

void rest_api::write_metrics(weft::metrics::exposition& page) const {
  impl_->requests.write(page, &impl_->server.refused());
}

rest_api::~rest_api() {
  stop();
}

weft::status rest_api::start(const std::string& host, int port) {
  auto& m = *impl_;
  auto props = m.producer_props;
  // A REST write waits for its record: send it at once rather than batch.
  props.try_emplace("linger.ms", "1");
  // Partition keys as weft's nodes and Kafka's Java client do (murmur2):
  // node::get looks a key up in the shard that partitioner gives it.
  props["partitioner"] = "murmur2_random";
  auto p = weft::kafka::producer::create(
      props, [](void* opaque, const weft::status& st, int64_t) {
        auto* done = static_cast<std::shared_ptr<std::promise<weft::status>>*>(opaque);
        if (!done) return;
        (*done)->set_value(st);
        delete done;
      });
  if (!p) return p.error();
  m.producer = std::move(*p);

  auto& s = m.server;
  // Answers go out in several writes; Nagle would hold the last one back.
  s.set_tcp_nodelay(true);
  s.set_error_fallback([](const httplib::Request& req, httplib::Response& res) {
    if (res.status == 404)
      reply_error(res, 404,
                  "no such endpoint: " + req.method + " " + req.path.substr(0, 200) +
                      " (the API is under /v1: orders, payments, stock, customers)");
  });
  s.Post("/v1/orders", m.counted("POST", "/v1/orders", &impl::post_order));
  s.Get(R"(/v1/orders/([^/]+))", m.counted("GET", "/v1/orders/{id}", &impl::get_order));
  s.Get(R"(/v1/orders/([^/]+)/validated)",
        m.counted("GET", "/v1/orders/{id}/validated", &impl::get_validated));
  s.Post(R"(/v1/orders/([^/]+)/cancel)",
         m.counted("POST", "/v1/orders/{id}/cancel", &impl::cancel_order));
  s.Post("/v1/payments", m.counted("POST", "/v1/payments", &impl::post_payment));
  s.Post("/v1/stock", m.counted("POST", "/v1/stock", &impl::post_stock));
  s.Get(R"(/v1/stock/([^/]+))",
        m.counted("GET", "/v1/stock/{product}", &impl::get_stock));
  s.Put(R"(/v1/customers/([^/]+))",
        m.counted("PUT", "/v1/customers/{id}", &impl::put_customer));
  s.Get(R"(/v1/customers/([^/]+)/orders)",
        m.counted("GET", "/v1/customers/{id}/orders", &impl::get_customer_orders));

  if (port == 0) {
    m.bound_port = s.bind_to_any_port(host);
    if (m.bound_port < 0)
      return weft::make_error(weft::errc::invalid_config, "cannot bind " + host);
  } else {
    if (!s.bind_to_port(host, port))
      return weft::make_error(weft::errc::invalid_config,
                              "cannot bind " + host + ":" + std::to_string(port) +
                                  " (in use? set --http.port)");
    m.bound_port = port;
  }
  m.server_thread = std::thread{[&s] { s.listen_after_bind(); }};
  return {};
}

int rest_api::port() const {
  return impl_->bound_port;
}

void rest_api::stop() {
  auto& m = *impl_;
  if (m.server_thread.joinable()) {
    m.server.stop();
    m.server_thread.join();
  }
  if (m.producer) (void)m.producer->flush(5000);
}

} // namespace orders
