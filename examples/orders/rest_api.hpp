#pragma once
// The order system's REST API (the contract in README, "The order system").
//
// Writes go to topics: POST /v1/orders and /cancel become CREATE and CANCEL
// commands for the orders service (the only writer of `orders`); payments,
// stock adjustments and customers go to their topics. A write answers once
// Kafka acknowledged the record. Reads ask the node's state stores through
// a state_reader, never a topic, and long-poll for conditions (?timeout=ms).
//
// Clustered nodes (cluster.enabled=true): every node serves the whole API.
// Writes work anywhere (Kafka partitions them). Every read is a point
// lookup of one key — an order id, a product, a customer id (the customer's
// orders are one value of the customer-orders view) — and node::get answers
// it from the node that owns the key's partition, so any node gives the same
// answer. No endpoint scans a store (node::all/range would only see the
// shards active on this node). While a key's partition moves between nodes
// or restores, a read answers 503 with Retry-After: 1 (a long poll keeps
// trying until its timeout first); never another node's stale copy.
//
// One thing stays per node: the duplicate check of POST /v1/orders in the
// moment before the orders service has stored a new order. The same id
// posted again to the same node in that moment gets 200 or 409; posted to
// another node it gets 201 again. The orders service keeps the first body
// either way (a CREATE with another body is ignored), and reads show it.
//
// Bounds (weft/http/server.hpp): a body over http.max.body.bytes is a 413 (so
// no record the API writes is larger), oversized headers a 431, a request
// not sent whole within http.request.timeout.ms a 408, a connection beyond
// the waiting room a 503; with http.auth.token set, a request without the
// bearer token is a 401.
//
// Threads: the HTTP server runs on threads of its own (a pool of
// `threads`), which may block; nothing here runs on CAF's scheduler.

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <weft/http/server.hpp>
#include <weft/metrics/exposition.hpp>
#include <weft/status.hpp>

#include "model.hpp"

namespace weft {
class node;
}

namespace orders {

/// Where the REST API reads state: one key of one kv store at a time. Called
/// from the server's threads, concurrently.
class state_reader {
 public:
  virtual ~state_reader();
  /// The value of `key` in kv store `store`: nullopt when absent,
  /// errc::state_not_ready (retriable) while the owning shard restores or
  /// moves, or its owner does not answer.
  virtual weft::result<std::optional<std::string>> get(std::string_view store,
                                                       std::string_view key) const = 0;
};

/// Reads through the node in this process (node::get): its own stores, and
/// on a clustered node the owner's, wherever the key's partition is active
/// (forwarded over the cluster connection). Valid while the node lives.
class local_state_reader : public state_reader {
 public:
  explicit local_state_reader(const weft::node& n) : node_(n) {}
  weft::result<std::optional<std::string>> get(std::string_view store,
                                               std::string_view key) const override;

 private:
  const weft::node& node_;
};

class rest_api {
 public:
  /// `producer_props`: librdkafka properties of the producer the API writes
  /// with (bootstrap.servers at least). `threads` serve requests at once (a
  /// long poll holds one); `bounds` limit what a client can make the API do
  /// (body and header size, time to send a request, waiting connections,
  /// the bearer token; settings::rest_limits from the configuration); its
  /// thread count is `threads`.
  rest_api(const state_reader& reader, topic_names topics,
           std::map<std::string, std::string> producer_props, int threads = 64,
           weft::http::limits bounds = {});

  /// What the API refused so far (flood and size tests, metrics).
  const weft::http::refusals& refused() const;
  /// Its requests per route and status, their latencies and its refusals,
  /// for the node's Prometheus page (node::add_metrics); any thread, also
  /// before start().
  void write_metrics(weft::metrics::exposition& page) const;
  ~rest_api();
  rest_api(const rest_api&) = delete;
  rest_api& operator=(const rest_api&) = delete;

  /// Binds host:port (port 0: any free port) and serves on a thread of its
  /// own; returns once listening, or the error (cannot bind, no producer).
  weft::status start(const std::string& host, int port);
  /// The port it listens on (after start()).
  int port() const;
  /// Stops serving and joins the server thread. Idempotent.
  void stop();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace orders
