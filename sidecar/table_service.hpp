#pragma once
// The sidecar's tables: each table.<name> is a weft service that
// materialises its topic into the store <name> (latest value per key,
// tombstones delete) — RocksDB shards with a changelog and standbys like any
// weft store (co-partitioned), or a GlobalKTable on every node (global).
// The internal table of write ids (topic_writer.hpp) is one more, and carries
// the global tables (weft hangs a GlobalKTable off a service).
//
// table_reader answers the HTTP API's reads through the node: a key from the
// owner of its partition (forwarded on a cluster, node::get), a prefix scan
// from the shards this node holds. Its calls may block briefly (a forwarded
// read); call them from the HTTP server's threads, any number at once.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

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

class table_reader {
 public:
  table_reader(const weft::node& n, const sidecar_config& c, bool clustered)
    : node_(n), cfg_(c), clustered_(clustered) {}

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
  };

  /// Up to `limit` rows whose keys start with `prefix` and are greater than
  /// `after` (empty: from the first), in key order. On a clustered node a
  /// co-partitioned table is spread over the nodes: errc::invalid_argument
  /// (only global tables can be scanned there).
  weft::result<page> scan(const std::string& table, const std::string& prefix,
                          const std::string& after, size_t limit) const;

  /// Tables whose local shards have not restored yet (empty: ready).
  std::vector<std::string> not_ready() const;

 private:
  const weft::node& node_;
  const sidecar_config& cfg_;
  bool clustered_;
};

} // namespace sidecar
