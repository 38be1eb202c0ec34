#pragma once
// The pieces of a range scan over a store spread across partitions (and, on
// a cluster, across nodes): each shard visits its keys in order; a
// scan_collector keeps the first rows of one such ordered run within a row
// and byte budget; merge_scan joins the pieces into one page in key order.
// Pieces compose: a node merges its own partitions into one piece, and the
// node the query came to merges the nodes' pieces.
//
// The position between pages is the last key of a page: keys do not move
// between partitions, so a page after that key is right whoever owns which
// partition by then (a move between two pages skips nothing and repeats
// nothing).
//
// Pure: no CAF, no Kafka; any thread.

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace weft::cluster {

/// Rows of a scan page at most (a request above is refused).
inline constexpr size_t max_scan_rows = 100000;
/// Bytes of keys and values in one piece or page at most: a page stops
/// early (more = true) rather than cross it; a single larger row still
/// comes, alone, so a scan always moves on.
inline constexpr size_t max_scan_bytes = 4 << 20;

/// Rows in key order (bytewise) from some partitions, and whether keys
/// beyond the last one (in the scan's range) exist there.
struct scan_piece {
  std::vector<std::pair<std::string, std::string>> rows;
  bool more = false;
};

/// A visitor (state::visitor's shape) for one ordered run of keys: keeps
/// the first `limit` rows within `max_bytes`, then stops the run (returns
/// false) and notes `more`.
class scan_collector {
 public:
  scan_collector(size_t limit, size_t max_bytes = max_scan_bytes)
    : limit_(limit), max_bytes_(max_bytes) {}
  bool operator()(std::string_view key, std::string_view value);
  scan_piece take() { return std::move(piece_); }

 private:
  size_t limit_, max_bytes_, bytes_ = 0;
  scan_piece piece_;
};

/// The first `limit` rows (within `max_bytes`) of the union of `pieces`, in
/// key order, each key once (a key two pieces hold keeps the first
/// piece's row). A piece with more rows bounds the page at its last key: keys
/// after it may sit in that piece's partitions, unseen. `more`: the scan
/// goes on after the page's last row.
scan_piece merge_scan(std::vector<scan_piece> pieces, size_t limit,
                      size_t max_bytes = max_scan_bytes);

/// The first key after every key that starts with `prefix` ("" when there
/// is none: a prefix of 0xff bytes only, or empty).
std::string prefix_end(std::string prefix);

/// The half-open key range [from, to) (empty `to`: no upper bound) of a
/// scan for keys starting with `prefix`, in [lower, upper), after the key
/// `after` (the last one of the previous page; empty: from the start).
/// `empty` is true when the range holds no key.
struct scan_bounds {
  std::string from, to;
  bool empty = false;
};
scan_bounds bounds_of(const std::string& prefix, const std::string& lower,
                      const std::string& upper, const std::string& after);

} // namespace weft::cluster
