#pragma once
// The types weft sends between nodes, as CAF must know them: each under a
// fixed name, the same on every node (a type another node does not know
// arrives as an empty message, with no error at the sender). The node
// registers them when clustered; the peer links' tests and the fuzz targets
// of peer messages (tests/fuzz/peer_*.fuzz.cpp) register the same, so they
// decode exactly what a node decodes.
//
// Internal to weft.

#include <caf/fwd.hpp>

#include <cstddef>
#include <optional>
#include <string>

#include "weft/status.hpp"

namespace weft::cluster {

struct query_answer; // protocol.hpp
struct scan_answer;  // protocol.hpp
struct scan_piece;   // scan_merge.hpp

/// Registers every type that crosses between nodes with `cfg` (before the
/// actor system is made from it).
void add_wire_types(caf::actor_system_config& cfg);

/// What another node's answer to a query means: its value (nullopt: no such
/// key), or its error. An error code that is not a weft::errc becomes
/// errc::internal, naming the code.
result<std::optional<std::string>> result_of(query_answer a);

/// Another node's piece of a scan asked for at most `limit` rows, or its
/// error. A malformed piece (keys and values of different counts, more rows
/// than asked for, keys not strictly ascending) is errc::internal naming
/// what is wrong: merged, it could hide or repeat keys.
result<scan_piece> piece_of(scan_answer a, size_t limit);

} // namespace weft::cluster
