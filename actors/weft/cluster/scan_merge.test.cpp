// Range scans across partitions (scan_merge.hpp): pages put together are
// every key once in key order, whatever the limit, the byte budget and the
// spread of keys over pieces, checked against a std::map of the same keys.

#include "weft/cluster/scan_merge.hpp"

#include <catch2/catch.hpp>

#include <map>
#include <random>
#include <string>
#include <vector>

using namespace weft::cluster;

namespace {

/// Pages through `parts` (each a partition: an ordered map), as node::scan
/// does: each partition collected, the pieces merged (some first merged per
/// "node", as a node merges its own partitions), then the next page from
/// just after the last key.
std::vector<std::string>
page_through(const std::vector<std::map<std::string, std::string>>& parts, size_t limit,
             size_t max_bytes, size_t nodes, size_t* pages = nullptr) {
  std::vector<std::string> keys;
  std::string from;
  for (size_t n = 0; n < 100000; ++n) {
    std::vector<std::vector<scan_piece>> per_node(nodes);
    for (size_t p = 0; p < parts.size(); ++p) {
      scan_collector c{limit, max_bytes};
      for (auto i = parts[p].lower_bound(from); i != parts[p].end(); ++i)
        if (!c(i->first, i->second)) break;
      per_node[p % nodes].push_back(c.take());
    }
    std::vector<scan_piece> pieces;
    for (auto& v : per_node)
      pieces.push_back(merge_scan(std::move(v), limit, max_bytes));
    auto page = merge_scan(std::move(pieces), limit, max_bytes);
    REQUIRE(page.rows.size() <= limit);
    for (auto& r : page.rows)
      keys.push_back(r.first);
    if (pages) ++*pages;
    if (!page.more) return keys;
    REQUIRE(!page.rows.empty()); // a page with more always moves on
    from = page.rows.back().first + std::string(1, '\0');
  }
  FAIL("no end of the scan");
  return keys;
}

} // namespace

TEST_CASE("scan pages merged across partitions and nodes give every key once, in order") {
  std::mt19937 rng{42};
  for (int round = 0; round < 200; ++round) {
    const size_t n_parts = 1 + rng() % 8, n_keys = rng() % 300;
    std::vector<std::map<std::string, std::string>> parts(n_parts);
    std::map<std::string, std::string> reference;
    for (size_t i = 0; i < n_keys; ++i) {
      std::string k(1 + rng() % 6, 'a');
      for (auto& c : k)
        c = static_cast<char>(rng() % 256); // any byte, 0x00 and 0xff included
      if (reference.count(k)) continue;     // a key lives in one partition
      std::string v(rng() % 50, 'v');
      parts[rng() % n_parts][k] = v;
      reference[k] = v;
    }
    std::vector<std::string> want;
    for (auto& [k, v] : reference)
      want.push_back(k);
    const size_t limit = 1 + rng() % 40, max_bytes = 1 + rng() % 400,
                 nodes = 1 + rng() % 3;
    INFO("round " << round << ": " << n_parts << " partitions, limit " << limit
                  << ", max bytes " << max_bytes << ", nodes " << nodes);
    CHECK(page_through(parts, limit, max_bytes, nodes) == want);
  }
}

TEST_CASE("a scan page stops at the row limit and the byte budget, but always takes one "
          "row") {
  std::vector<std::map<std::string, std::string>> parts{
      {{"a", "1"}, {"c", "3"}, {"e", "5"}}, {{"b", "2"}, {"d", "4"}}};
  size_t pages = 0;
  CHECK(page_through(parts, 2, max_scan_bytes, 1, &pages) ==
        std::vector<std::string>{"a", "b", "c", "d", "e"});
  CHECK(pages == 3);
  // Rows of 1,000 bytes against a budget of 10: one row a page.
  std::vector<std::map<std::string, std::string>> big{
      {{"a", std::string(1000, 'x')}, {"b", std::string(1000, 'y')}}};
  pages = 0;
  CHECK(page_through(big, 100, 10, 1, &pages) == std::vector<std::string>{"a", "b"});
  CHECK(pages == 2);
}

TEST_CASE("a key two pieces both hold (a peer's error) is in the merged page once, "
          "the first piece's row") {
  scan_piece a, b;
  a.rows = {{"c1", "from a"}, {"m", "from a"}};
  b.rows = {{"m", "from b"}, {"z", "from b"}};
  auto page = merge_scan({a, b}, 10);
  REQUIRE(page.rows.size() == 3);
  CHECK(page.rows[0].first == "c1");
  CHECK(page.rows[1] == std::make_pair(std::string{"m"}, std::string{"from a"}));
  CHECK(page.rows[2].first == "z");
}

TEST_CASE("scan bounds: a prefix, a range and the position after a page") {
  CHECK(prefix_end("c1") == "c2");
  CHECK(prefix_end(std::string{"a\xff"}) == "b");
  CHECK(prefix_end(std::string{"\xff\xff"}).empty());
  auto b = bounds_of("c1", "", "", "");
  CHECK(b.from == "c1");
  CHECK(b.to == "c2");
  b = bounds_of("c1", "c15", "c17", "c150");
  CHECK(b.from == std::string{"c150\0", 5});
  CHECK(b.to == "c17");
  CHECK(!b.empty);
  CHECK(bounds_of("c", "d", "", "").empty);
}
