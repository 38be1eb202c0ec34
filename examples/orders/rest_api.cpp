#include "rest_api.hpp"

#include <chrono>
#include <future>
#include <mutex>
#include <thread>

#include <httplib.h>

#include <weft/kafka/producer.hpp>
#include <weft/node.hpp>

#include "inventory.hpp"
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
/// Retry-After (seconds), as every 503 does.
void reply_error(httplib::Response& res, int code, const std::string& reason) {
  res.status = code;
  if (code == 503) res.set_header("Retry-After", "1");
  res.set_content(json{{"error", reason}}.dump(), "application/json");
}

void reply(httplib::Response& res, int code, const json& body) {
  res.status = code;
  res.set_content(body.dump(), "application/json");
}

/// A request body that is not what the contract says; the message names the
/// field.
struct bad_request {
  std::string reason;
};

const json& field(const json& body, const char* name) {
  auto i = body.find(name);
  if (i == body.end() || i->is_null())
    throw bad_request{std::string{"missing field '"} + name + "'"};
  return *i;
}

std::string string_field(const json& body, const char* name, bool non_empty = true) {
  auto& v = field(body, name);
  if (!v.is_string())
    throw bad_request{std::string{"field '"} + name + "' must be a string"};
  auto s = v.get<std::string>();
  if (non_empty && s.empty())
    throw bad_request{std::string{"field '"} + name + "' must not be empty"};
  return s;
}

int64_t integer_field(const json& body, const char* name) {
  auto& v = field(body, name);
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_unsigned() && v.get<uint64_t>() <= uint64_t(INT64_MAX))
    return static_cast<int64_t>(v.get<uint64_t>());
  throw bad_request{std::string{"field '"} + name + "' must be an integer"};
}

double number_field(const json& body, const char* name) {
  auto& v = field(body, name);
  if (!v.is_number())
    throw bad_request{std::string{"field '"} + name + "' must be a number"};
  return v.get<double>();
}

json parse_object(const std::string& text) {
  json body;
  try {
    body = json::parse(text);
  } catch (const std::exception& e) {
    throw bad_request{std::string{"malformed JSON: "} + e.what()};
  }
  if (!body.is_object()) throw bad_request{"the body must be a JSON object"};
  return body;
}

/// Ids travel in URL paths, so they are limited to characters that need no
/// escaping.
void check_id(const std::string& id, const char* name) {
  if (id.size() > 200)
    throw bad_request{std::string{"field '"} + name + "' is longer than 200 characters"};
  for (unsigned char c : id)
    if (!(std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == ':' || c == '~'))
      throw bad_request{std::string{"field '"} + name +
                        "' may only hold letters, digits and - _ . : ~"};
}

order parse_order(const std::string& text) {
  auto body = parse_object(text);
  order o;
  o.id = string_field(body, "id");
  check_id(o.id, "id");
  o.customer_id = integer_field(body, "customerId");
  o.product = string_field(body, "product", false);
  o.quantity = integer_field(body, "quantity");
  o.price = number_field(body, "price");
  o.currency = string_field(body, "currency");
  if (auto i = body.find("state"); i != body.end() && !i->is_null()) {
    if (!i->is_string() || i->get<std::string>() != created)
      throw bad_request{"field 'state' must be absent or \"CREATED\""};
  }
  return o;
}

payment parse_payment(const std::string& text) {
  auto body = parse_object(text);
  payment p;
  p.id = string_field(body, "id");
  p.order_id = string_field(body, "orderId");
  p.currency = string_field(body, "currency");
  p.amount = number_field(body, "amount");
  return p;
}

/// ?timeout=ms: absent gives `fallback`; anything but 0..300000 is a 400.
std::chrono::milliseconds timeout_param(const httplib::Request& req, int64_t fallback) {
  if (!req.has_param("timeout")) return std::chrono::milliseconds{fallback};
  auto s = req.get_param_value("timeout");
  char* end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || v < 0 || v > 300000)
    throw bad_request{"query parameter 'timeout' must be milliseconds from 0 to 300000"};
  return std::chrono::milliseconds{v};
}

int64_t customer_id_param(const std::string& s) {
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || errno != 0)
    throw bad_request{"customer id '" + s + "' must be an integer"};
  return v;
}

} // namespace

struct rest_api::impl {
  const state_reader& reader;
  topic_names topics;
  std::map<std::string, std::string> producer_props;
  int threads;
  std::unique_ptr<weft::kafka::producer> producer;
  httplib::Server server;
  std::thread server_thread;
  int bound_port = 0;

  // Orders this node posted whose CREATE the orders service may not have
  // applied yet: a second POST of the same id in that window must still
  // get 200 or 409. Entries go once the store has the order, or after a
  // minute.
  std::mutex pending_mu;
  std::map<std::string, std::pair<order, clock_type::time_point>> pending;

  impl(const state_reader& r, topic_names t, std::map<std::string, std::string> props,
       int n)
    : reader(r), topics(std::move(t)), producer_props(std::move(props)), threads(n) {}

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
    auto o = parse_order(req.body);
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
    auto limit = timeout_param(req, 0);
    auto o = wait_order(id, limit, [](const std::optional<order>& o) { return bool(o); });
    if (!o) return reply_error(res, 503, o.error().message());
    if (!*o) return reply_error(res, 404, "no order " + id);
    reply(res, 200, **o);
  }

  void get_validated(const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1];
    auto limit = timeout_param(req, 10000);
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
    auto limit = timeout_param(req, 10000);
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
    auto p = parse_payment(req.body);
    if (auto st = produce(topics.payments, p.id, payment_serde::serialize(p)); !st)
      return reply_error(res, 503, "could not record the payment: " + st.message());
    reply(res, 202, p);
  }

  void post_stock(const httplib::Request& req, httplib::Response& res) {
    auto body = parse_object(req.body);
    stock_adjustment a{string_field(body, "product"), integer_field(body, "delta")};
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
    const auto id = customer_id_param(req.matches[1]);
    auto body = parse_object(req.body);
    customer c;
    c.id = integer_field(body, "id");
    if (c.id != id)
      throw bad_request{"field 'id' (" + std::to_string(c.id) +
                        ") does not match the path (" + std::to_string(id) + ")"};
    c.first_name = string_field(body, "firstName", false);
    c.last_name = string_field(body, "lastName", false);
    c.email = string_field(body, "email");
    c.address = string_field(body, "address", false);
    c.level = string_field(body, "level");
    if (!fraud_limit(c.level))
      throw bad_request{"field 'level' must be bronze, silver, gold or platinum"};
    if (auto st =
            produce(topics.customers, std::to_string(id), customer_serde::serialize(c));
        !st)
      return reply_error(res, 503, "could not record the customer: " + st.message());
    reply(res, 202, c);
  }

  void get_customer_orders(const httplib::Request& req, httplib::Response& res) {
    const auto id = customer_id_param(req.matches[1]);
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

  /// Wraps a handler: a bad_request becomes a 400 naming what is wrong.
  template <class Fn>
  httplib::Server::Handler wrap(Fn fn) {
    return [this, fn](const httplib::Request& req, httplib::Response& res) {
      try {
        (this->*fn)(req, res);
      } catch (const bad_request& e) {
        reply_error(res, 400, e.reason);
      } catch (const std::exception& e) {
        reply_error(res, 500, e.what());
      }
    };
  }
};

rest_api::rest_api(const state_reader& reader, topic_names topics,
                   std::map<std::string, std::string> producer_props, int threads)
  : impl_(std::make_unique<impl>(reader, std::move(topics), std::move(producer_props),
                                 threads)) {}

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
  const int threads = m.threads;
  s.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  // Clients keep their connection for many requests (httplib's default
  // closes it after 5, which races with a client's next request).
  s.set_keep_alive_max_count(100000);
  s.set_keep_alive_timeout(30);
  // Answers go out in several writes; Nagle would hold the last one back.
  s.set_tcp_nodelay(true);
  s.Post("/v1/orders", m.wrap(&impl::post_order));
  s.Get(R"(/v1/orders/([^/]+))", m.wrap(&impl::get_order));
  s.Get(R"(/v1/orders/([^/]+)/validated)", m.wrap(&impl::get_validated));
  s.Post(R"(/v1/orders/([^/]+)/cancel)", m.wrap(&impl::cancel_order));
  s.Post("/v1/payments", m.wrap(&impl::post_payment));
  s.Post("/v1/stock", m.wrap(&impl::post_stock));
  s.Get(R"(/v1/stock/([^/]+))", m.wrap(&impl::get_stock));
  s.Put(R"(/v1/customers/([^/]+))", m.wrap(&impl::put_customer));
  s.Get(R"(/v1/customers/([^/]+)/orders)", m.wrap(&impl::get_customer_orders));

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
