#pragma once
// The sidecar's local HTTP API, for the application beside it (bound to
// 127.0.0.1 by default; sidecar.http.auth.token adds a bearer token). Every
// answer is JSON; every refusal is {"error": reason}, a 4xx naming the field
// or the limit, 404 for an unknown table, topic or subscription, 503 +
// Retry-After for what a retry will fix.
//
//   GET  /v1/health                      200 while the process serves
//   GET  /v1/ready                       200 once every table restored, else 503
//   GET  /v1/metrics                     the node's, the writer's and each subscription's
//                                        counters; parked_keys, parked_records
//   GET  /v1/tables/{table}/{key}        200 {"key","value"}; 404; 503 while the
//                                        key's partition restores or moves (cluster:
//                                        answered by the node that owns the key)
//   GET  /v1/tables/{table}?prefix=&after=&limit=   a page of rows in key order:
//                                        {"rows": [{"key","value"}], "next": key|null}
//   POST /v1/topics/{topic}              {"id"?, "records": [{"key","value","headers"?,
//                                        "partition"?, "timestamp"?}]} or one record's
//                                        fields at the top: 201 once Kafka acknowledged
//                                        ({"offsets": [...]}), 200 for a retried id
//   GET  /v1/subscriptions/{name}/events pull: server-sent events, one per record
//   POST /v1/subscriptions/{name}/commit pull: {"offsets": [{"partition","offset"}]}
//   GET  /v1/parked                      the parked keys of this sidecar's push
//                                        subscriptions (bad.record.policy=park), as the
//                                        node endpoint's GET /parked lists a node's
//   POST /v1/parked/{subscription}/{key}?action=retry|skip|drop[&partition=N]
//   POST /v1/parked/{subscription}?null_key=true&action=…
//                                        an operator's release (push_parking.hpp):
//                                        202 (retry, skip), 200 (drop done); 400 a bad
//                                        action or partition, 404 unknown or not parked
//                                        here, 409 being released already
//
// Keys in paths are the key's bytes, percent-encoded (string and json keys:
// the text; bytes keys: base64). Values use the topic's serde (record_codec.hpp).
//
// Threads: the server runs on a pool of its own (sidecar.http.threads); an
// open event stream holds one thread. Nothing here runs on CAF's scheduler.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <weft/status.hpp>

#include "sidecar_config.hpp"

namespace weft {
class node;
}

namespace sidecar {

class table_reader;
class topic_writer;
class push_delivery;
class pull_subscription;

class http_api {
 public:
  /// Everything is borrowed and must outlive the API. `writer` may be null
  /// (no writable topic). `node_id` names this sidecar in GET /v1/parked.
  http_api(const sidecar_config& cfg, const weft::node& node, const table_reader& reader,
           topic_writer* writer,
           const std::vector<std::unique_ptr<push_delivery>>& pushes,
           std::map<std::string, std::unique_ptr<pull_subscription>>& pulls,
           size_t max_record_bytes, std::string node_id);
  ~http_api();
  http_api(const http_api&) = delete;
  http_api& operator=(const http_api&) = delete;

  /// Binds sidecar.http.host:port (0: any) and serves on a thread of its own.
  weft::status start();
  int port() const;
  /// Stops serving (ends open event streams) and joins. Idempotent.
  void stop();

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

} // namespace sidecar
