#pragma once
// The order system's REST API (the contract in README, "The order system").
//
// Writes go to topics: POST /v1/orders and /cancel become CREATE and CANCEL
// commands for the orders service (the only writer of `orders`); payments,
// stock adjustments and customers go to their topics. A write answers once
// Kafka acknowledged the record. Reads ask the node's state stores through
// a state_reader, never a topic, and long-poll for conditions (?timeout=ms).
//
// Threads: the HTTP server runs on threads of its own (a pool of
// `threads`), which may block; nothing here runs on CAF's scheduler.

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <weft/status.hpp>

#include "model.hpp"

namespace weft {
class node;
}

namespace orders {

/// Where the REST API reads state. The seam for clustering: today every key
/// is read from this node's stores; once tasks are spread over nodes, an
/// implementation forwards a key whose task another node owns to that node
/// (any node then answers for any order).
class state_reader {
 public:
  virtual ~state_reader();
  /// The value of `key` in kv store `store`: nullopt when absent,
  /// errc::state_not_ready while the owning shard restores.
  virtual weft::result<std::optional<std::string>> get(std::string_view store,
                                                       std::string_view key) const = 0;
};

/// Reads this node's stores (node::get). Valid while the node lives.
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
  /// with (bootstrap.servers at least).
  rest_api(const state_reader& reader, topic_names topics,
           std::map<std::string, std::string> producer_props, int threads = 64);
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
