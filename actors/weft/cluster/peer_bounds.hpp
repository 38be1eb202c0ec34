#pragma once
// What this node takes from another node, checked before it goes on. CAF
// 0.17.6 bounds no message a peer sends (its BASP layer reads whatever
// length a header announces), and TLS only keeps strangers out: a node with
// a valid certificate, or a bug in one, can still send a status naming four
// billion units or a 100 MB node id. The peer links and the query server
// run every message from a peer through these checks and drop (and log)
// what fails them; the fuzz targets (tests/fuzz/peer_*.fuzz.cpp) hold them
// against every byte string CAF decodes into these types.
//
// Pure functions: no CAF, no Kafka; any thread.

#include <cstddef>
#include <cstdint>
#include <string>

#include "weft/cluster/cluster_types.hpp"

namespace weft::cluster {

/// Longest id, host, HTTP address or topology fingerprint taken from a peer.
inline constexpr size_t max_peer_text = 1024;

/// Longest key of a forwarded query (a key of a Kafka record fits in a
/// producer's message.max.bytes, 1,000,000 by default).
inline constexpr size_t max_peer_key = 1 << 20;

/// Why a peer's announcement (a handshake, or its answer) is refused: a
/// field longer than max_peer_text, an empty id. Empty when it is within
/// bounds.
std::string peer_record_violation(const member_record& m);

/// Why a peer's status is refused: a node id that is empty or longer than
/// max_peer_text; with `max_units` > 0 (the application's units), a unit
/// number not below it or more entries than it in any list; `holding` not
/// sorted and free of repeats (node_status::clear_of searches it). Empty when
/// it is within bounds.
std::string peer_status_violation(const node_status& s, size_t max_units);

/// Why a query forwarded by a peer is refused: a store name longer than
/// max_peer_text or a key longer than max_peer_key, a negative standby lag
/// other than -1. Empty when it is within bounds.
std::string peer_query_violation(const std::string& store, const std::string& key,
                                 int64_t max_standby_lag);

/// Why a scan forwarded by a peer is refused: a store name or a bound over
/// the limits above, more partitions than 65,536, a limit of 0 or over
/// scan_merge.hpp's max_scan_rows. Empty when it is within bounds.
std::string peer_scan_violation(const std::string& store, size_t partitions,
                                const std::string& from, const std::string& to,
                                uint32_t limit);

/// Why an operator's call on a parked key forwarded by a peer
/// (query_router::park) is refused: a service name longer than
/// max_peer_text, a negative partition or one beyond 65,535, a key id longer
/// than max_peer_key plus its 5-byte prefix (parked_keys::key_id), an action
/// other than retry, skip or drop (the forwarding node checked it already).
/// Empty when it is within bounds.
std::string peer_park_violation(const std::string& service, int32_t partition,
                                const std::string& key_id, const std::string& action);

/// Why a peer's leave notice is refused (an id as in a record).
std::string peer_id_violation(const std::string& id);

} // namespace weft::cluster
