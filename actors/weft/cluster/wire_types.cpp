#include "weft/cluster/wire_types.hpp"

#include <caf/all.hpp>

#include "weft/cluster/scan_merge.hpp"
#include "weft/protocol.hpp"

namespace weft::cluster {

namespace {

/// A peer's error as this node reports it: its text capped at 1 KiB, never
/// empty (a reason-less 503 tells a client nothing; found by the peer_message
/// fuzz target), under a code that is a weft::errc.
status error_of(int32_t code, std::string error) {
  if (error.size() > 1024) error.resize(1024);
  if (code <= 0 || code > static_cast<int32_t>(errc::internal))
    return make_error(errc::internal, "another node answered with error code " +
                                          std::to_string(code) + ": " + error);
  auto c = static_cast<errc>(code);
  if (error.empty())
    error = std::string{"another node answered '"} + to_string(c) + "' with no reason";
  return make_error(c, std::move(error));
}

} // namespace

result<std::optional<std::string>> result_of(query_answer a) {
  if (a.code != 0) return error_of(a.code, std::move(a.error));
  if (!a.found) return std::optional<std::string>{};
  return std::optional<std::string>{std::move(a.value)};
}

result<scan_piece> piece_of(scan_answer a, size_t limit) {
  if (a.code != 0) return error_of(a.code, std::move(a.error));
  if (a.keys.size() != a.values.size())
    return make_error(errc::internal, "another node answered a scan with " +
                                          std::to_string(a.keys.size()) + " keys and " +
                                          std::to_string(a.values.size()) + " values");
  if (a.keys.size() > limit)
    return make_error(errc::internal, "another node answered a scan of at most " +
                                          std::to_string(limit) + " rows with " +
                                          std::to_string(a.keys.size()));
  for (size_t i = 1; i < a.keys.size(); ++i)
    if (!(a.keys[i - 1] < a.keys[i]))
      return make_error(errc::internal,
                        "another node answered a scan with keys out of order "
                        "(row " +
                            std::to_string(i) + ")");
  scan_piece p;
  p.more = a.more;
  p.rows.reserve(a.keys.size());
  for (size_t i = 0; i < a.keys.size(); ++i)
    p.rows.emplace_back(std::move(a.keys[i]), std::move(a.values[i]));
  return p;
}

void add_wire_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<member_record>("weft.member_record");
  cfg.add_message_type<node_status>("weft.node_status");
  cfg.add_message_type<query_answer>("weft.query_answer");
  cfg.add_message_type<scan_answer>("weft.scan_answer");
  cfg.add_message_type<query_server_actor>("weft.query_server");
  cfg.add_message_type<std::vector<unit_id>>("weft.units");
  cfg.add_message_type<std::map<unit_id, int64_t>>("weft.unit_lags");
  cfg.add_message_type<std::vector<int32_t>>("weft.partitions");
}

} // namespace weft::cluster
