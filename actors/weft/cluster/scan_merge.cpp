#include "weft/cluster/scan_merge.hpp"

#include <algorithm>
#include <optional>

namespace weft::cluster {

bool scan_collector::operator()(std::string_view key, std::string_view value) {
  auto size = key.size() + value.size();
  if (piece_.rows.size() >= limit_ ||
      (!piece_.rows.empty() && bytes_ + size > max_bytes_)) {
    piece_.more = true;
    return false;
  }
  bytes_ += size;
  piece_.rows.emplace_back(std::string{key}, std::string{value});
  return true;
}

scan_piece merge_scan(std::vector<scan_piece> pieces, size_t limit, size_t max_bytes) {
  // Keys past the smallest last key of a piece with more rows are not known
  // to be the next ones: the page ends there.
  std::optional<std::string> bound;
  bool cut = false;
  for (auto& p : pieces)
    if (p.more && !p.rows.empty() && (!bound || p.rows.back().first < *bound))
      bound = p.rows.back().first;
  std::vector<std::pair<std::string, std::string>> all;
  for (auto& p : pieces) {
    cut = cut || (p.more && p.rows.empty());
    for (auto& row : p.rows)
      if (!bound || row.first <= *bound)
        all.push_back(std::move(row));
      else
        cut = true;
  }
  std::stable_sort(all.begin(), all.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  scan_piece out;
  out.more = cut || bound.has_value();
  size_t bytes = 0;
  for (auto& row : all) {
    // A key lives in one partition: a second piece with it (a peer's error)
    // does not repeat it in the page; the first piece's row stands.
    if (!out.rows.empty() && out.rows.back().first == row.first) continue;
    auto size = row.first.size() + row.second.size();
    if (out.rows.size() >= limit || (!out.rows.empty() && bytes + size > max_bytes)) {
      out.more = true;
      break;
    }
    bytes += size;
    out.rows.push_back(std::move(row));
  }
  return out;
}

std::string prefix_end(std::string prefix) {
  while (!prefix.empty()) {
    auto& c = prefix.back();
    if (static_cast<unsigned char>(c) != 0xff) {
      c = static_cast<char>(static_cast<unsigned char>(c) + 1);
      return prefix;
    }
    prefix.pop_back();
  }
  return {};
}

scan_bounds bounds_of(const std::string& prefix, const std::string& lower,
                      const std::string& upper, const std::string& after) {
  scan_bounds b;
  b.from = std::max(prefix, lower);
  if (!after.empty() && after >= b.from) b.from = after + std::string(1, '\0');
  b.to = prefix_end(prefix);
  if (!upper.empty() && (b.to.empty() || upper < b.to)) b.to = upper;
  b.empty = !b.to.empty() && b.from >= b.to;
  return b;
}

} // namespace weft::cluster
