#pragma once
// The sidecar's tables: each table.<name> is a weft service that
// materialises its topic into the store <name> (latest value per key,
// tombstones delete) — RocksDB shards with a changelog and standbys like any
// weft store (co-partitioned), or a GlobalKTable on every node (global).
// The internal table of write ids (topic_writer.hpp) is one more, and carries
// the global tables (weft hangs a GlobalKTable off a service).
//
// table_reader answers the HTTP API's reads through the node: a key from the
// owner of its partition (forwarded on a cluster, node::get), a prefix or
// range scan from the owners of every partition, merged in key order
// (node::scan). Its calls may block briefly (a forwarded read); call them
// from the HTTP server's threads, any number at once.

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <weft/kafka/consumer.hpp>
#include <weft/node.hpp>

#include "sidecar_config.hpp"

namespace sidecar {

/// Name of the weft service that materialises table `name`.
std::string table_service_name(const std::string& table);

/// The internal store (and table service) of write ids.
inline constexpr const char* requests_store = "sidecar-requests";
/// <application.id>-sidecar-requests: the topic it materialises.
std::string requests_topic(const std::string& application_id);

/// Adds the services of every table, and of the write ids, to `n`.
void add_table_services(weft::node& n, const sidecar_config& c,
                        const std::string& application_id);

/// Whether a table has read its topic up to where the topic ended when the
/// sidecar started: the weft application's committed offsets (its group,
/// <application.id>) against the end offsets taken at start-up. A restored
/// shard may still be behind its topic (the records after the last commit
/// before a kill): until it caught up, a row or a write id may be missing
/// that is in Kafka. Global tables load to the end before anything starts.
///
/// Threads: any; asks Kafka at most every 200 ms (bounded by 2 s), and
/// once a table caught up it stays so.
class catch_up_tracker {
 public:
  /// `tables`: table (store) name -> its topic. Takes the end offsets now
  /// (bounded by `timeout_ms`).
  static weft::result<std::unique_ptr<catch_up_tracker>>
  create(std::map<std::string, std::string> consumer_props, const std::string& application_id,
         const std::map<std::string, std::string>& tables, int timeout_ms);

  /// True once `table` caught up (true for a table not tracked).
  bool caught_up(const std::string& table);
  /// The tracked tables still behind.
  std::vector<std::string> behind();

 private:
  catch_up_tracker() = default;
  void refresh(); ///< with mu_ held
  std::mutex mu_;
  std::unique_ptr<weft::kafka::consumer> consumer_;
  /// table -> (partitions of its topic, end offset per partition at start)
  std::map<std::string, std::pair<std::string, std::vector<int64_t>>> ends_;
  std::map<std::string, bool> done_;
  int64_t last_refresh_ms_ = 0;
};

class table_reader {
 public:
  /// `tracker` may be null (every table taken as caught up once restored).
  table_reader(const weft::node& n, const sidecar_config& c, catch_up_tracker* tracker)
    : node_(n), cfg_(c), tracker_(tracker) {}

  /// The table's row for `key` (the key's serialized bytes): nullopt when
  /// absent; errc::state_not_ready while the partition restores or moves
  /// (retry), errc::not_found for an unknown table.
  weft::result<std::optional<std::string>> get(const std::string& table,
                                               const std::string& key) const;

  struct row {
    std::string key, value;
  };
  struct page {
    std::vector<row> rows; ///< in key order (bytewise)
    bool more = false;     ///< rows after the last one exist
    int32_t partition_count = 0; ///< of the table (0: global)
    /// Which node answered for which partitions.
    std::map<std::string, std::vector<int32_t>> partitions;
  };

  /// What a scan covers: keys starting with `prefix`, in [from, to) (empty
  /// `to`: no upper bound), greater than `after` (the last key of the
  /// previous page; empty: from the first).
  struct range {
    std::string prefix, from, to, after;
  };

  /// Up to `limit` rows of `r`, in key order, from every partition of the
  /// table (on a cluster from each partition's owner); errc::state_not_ready
  /// while a partition has no owner, moves or restores (retry).
  weft::result<page> scan(const std::string& table, const range& r, size_t limit) const;

  /// Tables whose local shards have not restored yet, or that have not read
  /// their topic up to its end at start-up (empty: ready).
  std::vector<std::string> not_ready() const;

  /// Whether a "no such key" from `table` can be trusted (it caught up).
  bool caught_up(const std::string& table) const {
    return !tracker_ || tracker_->caught_up(table);
  }

 private:
  const weft::node& node_;
  const sidecar_config& cfg_;
  catch_up_tracker* tracker_;
};

} // namespace sidecar
