#pragma once
// What the receiving node checks of each message from another node, as the
// fuzz targets of peer messages (peer_message, peer_types) assert it: see
// peer_message.fuzz.cpp for the properties.

#include <caf/all.hpp>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_check.hpp"
#include "weft/cluster/peer_bounds.hpp"
#include "weft/cluster/scan_merge.hpp"
#include "weft/cluster/wire_types.hpp"
#include "weft/protocol.hpp"

namespace weft::fuzz {

using namespace weft::cluster;

inline constexpr size_t units = 16; ///< the application's units in this harness

template <class Atom, class... Ts>
inline bool is(const caf::message& m) {
  return m.match_elements<caf::atom_value, Ts...>() &&
         m.get_as<caf::atom_value>(0) == Atom::value;
}

inline void check_status(const node_status& s) {
  if (!peer_status_violation(s, units).empty()) return;
  WEFT_FUZZ_CHECK(!s.node.empty() && s.node.size() <= max_peer_text, "node id passed");
  WEFT_FUZZ_CHECK(std::is_sorted(s.holding.begin(), s.holding.end()), "unsorted passed");
  for (auto u : s.holding)
    WEFT_FUZZ_CHECK(u < units, "unit %u passed", u);
  for (auto& m : {s.standby_lag, s.active_lag})
    for (auto& [u, lag] : m)
      WEFT_FUZZ_CHECK(u < units, "lag of unit %u passed", u);
  for (unit_id u = 0; u < units; ++u) {
    bool held = std::find(s.holding.begin(), s.holding.end(), u) != s.holding.end();
    WEFT_FUZZ_CHECK(s.clear_of(u, s.applied) == !held, "clear_of(%u) is wrong", u);
  }
}

inline void check_record(const member_record& m) {
  if (!peer_record_violation(m).empty()) return;
  for (auto* f : {&m.id, &m.host, &m.http, &m.topology})
    WEFT_FUZZ_CHECK(f->size() <= max_peer_text, "a long field passed");
  WEFT_FUZZ_CHECK(!m.id.empty(), "an empty id passed");
}

inline void check_scan_answer(scan_answer a, uint32_t limit) {
  auto piece = piece_of(std::move(a), limit);
  if (!piece) {
    WEFT_FUZZ_CHECK(!piece.error().message().empty() &&
                        piece.error().message().size() <= 1100,
                    "an error without a reason, or a peer's whole text");
    return;
  }
  WEFT_FUZZ_CHECK(piece->rows.size() <= limit, "more rows than asked for passed");
  // Merged with a piece of another node, as the router does.
  scan_piece other;
  other.rows = {{"m", "1"}, {"n", "2"}};
  other.more = true;
  std::vector<scan_piece> pieces{std::move(*piece), other};
  auto page = merge_scan(std::move(pieces), limit);
  WEFT_FUZZ_CHECK(page.rows.size() <= limit, "a page over its limit");
  for (size_t i = 1; i < page.rows.size(); ++i)
    WEFT_FUZZ_CHECK(page.rows[i - 1].first < page.rows[i].first, "a page out of order");
  for (auto& r : page.rows)
    WEFT_FUZZ_CHECK(r.first <= "n", "a page beyond a bounded piece");
}

inline void dispatch(const caf::message& m) {
  if (is<status_atom, node_status, uint64_t>(m)) {
    check_status(m.get_as<node_status>(1));
  } else if (is<hello_atom, member_record, query_server_actor>(m)) {
    check_record(m.get_as<member_record>(1));
  } else if (m.match_elements<member_record, query_server_actor>()) {
    check_record(m.get_as<member_record>(0)); // a handshake's answer
  } else if (is<leaving_atom, std::string>(m)) {
    auto why = peer_id_violation(m.get_as<std::string>(1));
    WEFT_FUZZ_CHECK(!why.empty() || m.get_as<std::string>(1).size() <= max_peer_text,
                    "a long id passed");
  } else if (is<query_atom, std::string, std::string, int64_t>(m)) {
    auto why = peer_query_violation(m.get_as<std::string>(1), m.get_as<std::string>(2),
                                    m.get_as<int64_t>(3));
    WEFT_FUZZ_CHECK(!why.empty() || m.get_as<int64_t>(3) >= -1, "a bad lag passed");
  } else if (is<scan_atom, std::string, std::vector<int32_t>, std::string, std::string,
                uint32_t>(m)) {
    auto limit = m.get_as<uint32_t>(5);
    auto why = peer_scan_violation(
        m.get_as<std::string>(1), m.get_as<std::vector<int32_t>>(2).size(),
        m.get_as<std::string>(3), m.get_as<std::string>(4), limit);
    WEFT_FUZZ_CHECK(!why.empty() || (limit >= 1 && limit <= max_scan_rows),
                    "a bad limit passed");
  } else if (is<park_atom, std::string, int32_t, std::string, std::string>(m)) {
    const auto& action = m.get_as<std::string>(4);
    auto why = peer_park_violation(m.get_as<std::string>(1), m.get_as<int32_t>(2),
                                   m.get_as<std::string>(3), action);
    WEFT_FUZZ_CHECK(!why.empty() || action == "retry" || action == "skip" ||
                        action == "drop",
                    "a park call with another action passed");
  } else if (m.match_elements<query_answer>()) {
    auto r = result_of(m.get_as<query_answer>(0));
    if (!r) {
      auto code = static_cast<int>(r.error().code());
      WEFT_FUZZ_CHECK(code > 0 && code <= static_cast<int>(weft::errc::internal),
                      "error code %d is not a weft::errc", code);
      WEFT_FUZZ_CHECK(!r.error().message().empty() && r.error().message().size() <= 1100,
                      "an error without a reason, or a peer's whole text");
    }
  } else if (m.match_elements<scan_answer>()) {
    check_scan_answer(m.get_as<scan_answer>(0), 100);
  }
}

} // namespace weft::fuzz
