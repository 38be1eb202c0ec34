#pragma once
// Internal: a scan of a store with pending writes laid over it, shared by the
// write-back cache (its dirty entries) and the epoch buffer (an exactly-once
// epoch's writes). The caller copies the overlay's entries in [from, to)
// under its lock; the scan then runs without any lock held, so the visitor
// may write to the store it scans.

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "weft/state/store.hpp"

namespace weft::state::detail {

/// Pending writes in key order: nullopt = deleted.
using overlay_entries = std::vector<std::pair<std::string, std::optional<std::string>>>;

/// Visits inner's entries in [from, to) merged with `o`: an overlay entry
/// replaces (or, deleted, hides) inner's entry of the same key; overlay-only
/// keys appear in order. Stops when `fn` returns false.
inline status overlay_scan(const overlay_entries& o, const kv_store& inner,
                           std::string_view from, std::string_view to,
                           const visitor& fn) {
  size_t next = 0;
  bool stopped = false;
  // Emits the overlay entries before `k` (all of them for nullopt).
  auto drain = [&](std::optional<std::string_view> k) {
    for (; next < o.size() && (!k || std::string_view{o[next].first} < *k); ++next) {
      auto& [ok, ov] = o[next];
      if (ov && !fn(ok, *ov)) {
        stopped = true;
        return false;
      }
    }
    return true;
  };
  auto st = inner.range(from, to, [&](std::string_view k, std::string_view v) {
    if (!drain(k)) return false;
    if (next < o.size() && o[next].first == k) {
      auto& ov = o[next++].second;
      if (ov && !fn(k, *ov)) {
        stopped = true;
        return false;
      }
      return true; // replaced or deleted in the overlay
    }
    if (!fn(k, v)) {
      stopped = true;
      return false;
    }
    return true;
  });
  if (!st.ok() || stopped) return st;
  drain(std::nullopt);
  return {};
}

} // namespace weft::state::detail
