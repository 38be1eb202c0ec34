#pragma once
// Writes from the application (POST /v1/topics/<topic>), answered once Kafka
// acknowledged them, and written once per client-supplied id.
//
// One writer thread owns a transactional producer and writes what the HTTP
// threads queued, many requests per transaction: their records, then one
// record per request id to <application.id>-sidecar-requests (key: the id,
// value: the request's digest and offsets) — committed together, so a
// request whose records are in Kafka also has its id there, and an aborted
// one has neither. The table sidecar-requests materialises that topic (a
// weft store, so on a cluster any node finds an id through node::get).
//
// A request with an id:
//   - id known (the table, or this process's recent writes): 200 with the
//     first write's offsets and "replayed": true; another body under the
//     same id: 409;
//   - the same id in flight on this node: waits for it, then as above;
//   - otherwise written: 201.
// Two nodes of a cluster given the same new id at the same moment may both
// write it (each checks the table before the other's commit is in it).
//
// transactional.id is <application.id>-sidecar-<node.id>: a restarted
// sidecar with the same node.id aborts its predecessor's open transaction at
// once; with another id, that transaction holds read_committed readers of
// its partitions back until transaction.timeout.ms (10 s here).
//
// Threads: write() from any number of threads; it blocks its caller up to
// the write timeout. Nothing here runs on CAF's scheduler.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <weft/record.hpp>
#include <weft/status.hpp>

#include "table_service.hpp"

namespace sidecar {

struct write_request {
  std::string topic;
  std::vector<weft::record> records; ///< topic set; partition -1 hashes the key
  std::string id;                    ///< "" : not idempotent
  std::string digest;                ///< of the request's content, to tell a retry
                                     ///< from another request under the same id
};

struct write_outcome {
  int http_status = 201; ///< 201 written, 200 replayed, 409 the id names another request
  nlohmann::json body;   ///< {"topic", "offsets": [{"partition","offset"}], ...}
};

struct writer_counters {
  uint64_t requests = 0, records = 0, replayed = 0, conflicts = 0, transactions = 0,
           aborted = 0;
};

class topic_writer {
 public:
  /// Creates the producer (transactional), runs init_transactions (bounded by
  /// `timeout_ms`) and starts the writer thread.
  static weft::result<std::unique_ptr<topic_writer>>
  create(std::map<std::string, std::string> producer_props,
         const std::string& application_id, const std::string& node_id,
         const table_reader& reader, int64_t timeout_ms);
  ~topic_writer(); ///< stops the thread; queued requests fail with shutting_down
  topic_writer(const topic_writer&) = delete;
  topic_writer& operator=(const topic_writer&) = delete;

  /// Writes the request and waits for its outcome (up to the timeout):
  /// errc::invalid_argument (400: a partition the topic does not have),
  /// errc::timed_out / kafka / state_not_ready (503: retry with the same id).
  weft::result<write_outcome> write(write_request r);

  writer_counters counters() const;

  struct impl;

 private:
  topic_writer() = default;
  std::unique_ptr<impl> impl_;
};

/// FNV-1a 64 of `bytes`, as hex: the digest of a request's canonical JSON.
std::string digest_of(const std::string& bytes);

} // namespace sidecar
