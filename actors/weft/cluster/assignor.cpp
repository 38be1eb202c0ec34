#include "weft/cluster/assignor.hpp"

#include <algorithm>
#include <limits>
#include <optional>
#include <string_view>
#include <tuple>

#include <nlohmann/json.hpp>

namespace weft::cluster {

namespace {

constexpr int64_t unknown_lag = std::numeric_limits<int64_t>::max();

assignment empty_assignment(std::vector<std::string> members, size_t units) {
  assignment a;
  a.members = std::move(members);
  a.active.assign(units, "");
  a.standbys.assign(units, {});
  a.warmup.assign(units, "");
  a.previous.assign(units, "");
  return a;
}

bool contains(const std::vector<std::string>& nodes, const std::string& node) {
  return std::find(nodes.begin(), nodes.end(), node) != nodes.end();
}

// What one assign() call works from: the members as a sorted set and the
// previous assignment padded to the current unit count (empty if unusable).
struct context {
  const assignor_input& in;
  std::vector<std::string> members;
  assignment prev;

  explicit context(const assignor_input& input) : in(input) {
    for (auto& m : in.members)
      if (!m.empty()) members.push_back(m);
    std::sort(members.begin(), members.end());
    members.erase(std::unique(members.begin(), members.end()), members.end());
    size_t n = in.stateful.size();
    if (in.previous && in.previous->active.size() == n)
      prev = *in.previous;
    else
      prev = empty_assignment({}, n);
    prev.standbys.resize(n);
    prev.warmup.resize(n);
  }

  size_t units() const { return in.stateful.size(); }
  bool is_member(const std::string& node) const {
    return std::binary_search(members.begin(), members.end(), node);
  }
  int64_t lag(size_t unit, const std::string& node) const {
    auto it = in.standby_lag.find({unit, node});
    return it == in.standby_lag.end() ? unknown_lag : it->second;
  }
  bool caught_up(size_t unit, const std::string& node) const {
    auto l = lag(unit, node);
    return l != unknown_lag && l <= in.acceptable_lag;
  }
};

// Rule 3, failover: a unit without a live active goes at once to the member
// holding a standby of it with the smallest lag (then the least loaded, then
// the smallest id); with no such member, to the least loaded member.
void place_orphans(const context& c, assignment& out) {
  std::map<std::string, int> actives;
  for (auto& m : c.members)
    actives[m] = 0;
  for (auto& node : out.active)
    if (!node.empty()) ++actives[node];
  for (size_t u = 0; u < c.units(); ++u) {
    if (!out.active[u].empty()) continue;
    auto rank = [&](const std::string& node) {
      return std::make_tuple(c.lag(u, node), actives[node], std::string_view(node));
    };
    const std::string* best = nullptr;
    if (c.in.stateful[u])
      for (auto& s : c.prev.standbys[u])
        if (c.is_member(s) && (!best || rank(s) < rank(*best))) best = &s;
    if (!best)
      for (auto& m : c.members) // sorted: ties keep the smallest id
        if (!best || actives[m] < actives[*best]) best = &m;
    out.active[u] = *best;
    ++actives[*best];
  }
}

// How costly moving unit u to node b is; lower is preferred. Only costs 0 and
// 1 move at once, the others start (or keep) a warm-up.
int move_cost(const context& c, size_t u, const std::string& b) {
  if (!c.in.stateful[u]) return 0;
  if (c.caught_up(u, b)) return 1;
  if (c.prev.warmup[u] == b) return 2;           // keep warm-ups stable
  if (contains(c.prev.standbys[u], b)) return 3; // b has part of the state
  return 4;
}

// Rule 4, in two passes over planned active counts (a warm-up counts for its
// target). First the moves that can happen now (stateless units, caught-up
// standbys) between any two nodes at least 2 apart; then warm-ups from the
// fullest to the emptiest node until all are within 1. Each step takes the
// cheapest move; ties go to the widest gap, the smaller lag, unit and node.
// Every step lowers the sum of squared counts, so both passes end. Warm-ups
// leave the actives as the first pass left them, so a later call with the same
// lags finds no new move and keeps its warm-ups (cost 2) until they catch up.
// Nodes are indices into c.members here: the loop runs O(units) times.
// Only the units of the kind `stateful` move; the counts are of those units,
// or with `count_all` of every unit (a warm-up counts for its target).
void balance(const context& c, assignment& out, bool stateful, bool count_all) {
  size_t n = c.units(), m = c.members.size();
  std::vector<size_t> owner(n);
  std::vector<int> planned(m, 0), cost(n * m);
  std::vector<int64_t> lag(n * m);
  std::vector<bool> warming(n, false);
  auto index = [&](const std::string& node) {
    return static_cast<size_t>(
        std::lower_bound(c.members.begin(), c.members.end(), node) - c.members.begin());
  };
  for (size_t u = 0; u < n; ++u) {
    owner[u] = index(out.active[u]);
    bool mine = c.in.stateful[u] == stateful;
    // Units of the other kind stay, and warm-ups already planned stay.
    warming[u] = !mine || !out.warmup[u].empty();
    if (mine || count_all)
      ++planned[out.warmup[u].empty() ? owner[u] : index(out.warmup[u])];
    for (size_t b = 0; b < m; ++b) {
      cost[u * m + b] = move_cost(c, u, c.members[b]);
      lag[u * m + b] = c.lag(u, c.members[b]);
    }
  }
  for (bool warmups : {false, true}) {
    for (;;) {
      auto [lo, hi] = std::minmax_element(planned.begin(), planned.end());
      int min = *lo, max = *hi;
      if (max - min <= 1) return;
      std::optional<std::tuple<int, int, int64_t, size_t, size_t>> best;
      for (size_t u = 0; u < n; ++u) {
        int from = planned[owner[u]];
        if (warming[u] || (warmups && from != max)) continue;
        for (size_t b = 0; b < m; ++b) {
          int k = cost[u * m + b], gap = from - planned[b];
          if (warmups ? k <= 1 || planned[b] != min : k > 1 || gap < 2) continue;
          auto move = std::make_tuple(k, -gap, lag[u * m + b], u, b);
          if (!best || move < *best) best = move;
        }
      }
      if (!best) break;
      size_t u = std::get<3>(*best), b = std::get<4>(*best);
      --planned[owner[u]];
      ++planned[b];
      if (warmups) {
        warming[u] = true;
        out.warmup[u] = c.members[b];
      } else {
        owner[u] = b;
        out.active[u] = c.members[b];
      }
    }
  }
}

// Rule 5: warm-ups first (on top of the regular standbys); then, up to a fair
// share per node, the valid previous standbys and the node that just handed
// the unit off (they hold the state; the handoff's source and the least
// lagging first); then the members with the fewest standbys for the rest.
void place_standbys(const context& c, assignment& out) {
  size_t wanted =
      std::min(static_cast<size_t>(std::max(c.in.num_standbys, 0)), c.members.size() - 1);
  std::map<std::string, int> count;
  for (auto& m : c.members)
    count[m] = 0;
  auto add = [&](size_t u, const std::string& node) {
    out.standbys[u].push_back(node);
    ++count[node];
  };
  auto regular = [&](size_t u) {
    return out.standbys[u].size() - (out.warmup[u].empty() ? 0 : 1);
  };
  size_t slots = 0;
  for (size_t u = 0; u < c.units(); ++u) {
    if (!c.in.stateful[u]) continue;
    bool warm = !out.warmup[u].empty();
    if (warm) add(u, out.warmup[u]);
    slots += warm + std::min(wanted, c.members.size() - 1 - warm);
  }
  // Without a cap, a node that handed off many units would keep them all.
  int fair_share = static_cast<int>((slots + c.members.size() - 1) / c.members.size());
  for (size_t u = 0; u < c.units(); ++u) {
    if (!c.in.stateful[u]) continue;
    std::vector<std::string> keep = c.prev.standbys[u];
    keep.push_back(out.previous[u]);
    keep.erase(std::remove_if(keep.begin(), keep.end(),
                              [&](auto& s) {
                                return !c.is_member(s) || s == out.active[u] ||
                                       s == out.warmup[u];
                              }),
               keep.end());
    auto rank = [&](const std::string& s) {
      return std::make_tuple(s != out.previous[u], c.lag(u, s), std::string_view(s));
    };
    std::sort(keep.begin(), keep.end(),
              [&](auto& a, auto& b) { return rank(a) < rank(b); });
    keep.erase(std::unique(keep.begin(), keep.end()), keep.end());
    for (auto& s : keep)
      if (regular(u) < wanted && count[s] < fair_share) add(u, s);
  }
  for (size_t u = 0; u < c.units(); ++u) {
    if (!c.in.stateful[u]) continue;
    while (regular(u) < wanted) {
      const std::string* best = nullptr;
      for (auto& m : c.members)
        if (m != out.active[u] && !contains(out.standbys[u], m) &&
            (!best || count[m] < count[*best]))
          best = &m;
      if (!best) break; // two members and a warm-up: it is the only copy
      add(u, *best);
    }
  }
  for (auto& s : out.standbys)
    std::sort(s.begin(), s.end());
}

} // namespace

bool assignment::operator==(const assignment& o) const {
  return members == o.members && incarnations == o.incarnations && active == o.active &&
         standbys == o.standbys && warmup == o.warmup && previous == o.previous;
}

int64_t assignment::incarnation_of(const std::string& node) const {
  auto i = std::lower_bound(members.begin(), members.end(), node);
  if (i == members.end() || *i != node) return -1;
  auto k = static_cast<size_t>(i - members.begin());
  return k < incarnations.size() ? incarnations[k] : 0;
}

assignment assign(const assignor_input& in) {
  context c(in);
  assignment out = empty_assignment(c.members, c.units());
  for (auto& m : c.members) {
    auto i = in.incarnations.find(m);
    out.incarnations.push_back(i == in.incarnations.end() ? 0 : i->second);
  }
  if (c.members.empty()) return out;
  for (size_t u = 0; u < c.units(); ++u)
    if (c.is_member(c.prev.active[u])) out.active[u] = c.prev.active[u];
  place_orphans(c, out);
  // Stateful units are balanced on their own (restores, standbys and a
  // failover's work spread evenly), then stateless ones even out the totals.
  balance(c, out, true, false);
  balance(c, out, false, true);
  // Rule 6: a handoff between live nodes; a new unit or a failover has none.
  for (size_t u = 0; u < c.units(); ++u)
    if (c.is_member(c.prev.active[u]) && c.prev.active[u] != out.active[u])
      out.previous[u] = c.prev.active[u];
  place_standbys(c, out);
  return out;
}

// -- JSON ------------------------------------------------------------------------

std::string to_json(const assignment& a) {
  nlohmann::ordered_json j;
  j["generation"] = a.generation;
  j["leader"] = a.leader;
  j["members"] = a.members;
  j["incarnations"] = a.incarnations;
  j["active"] = a.active;
  j["standbys"] = a.standbys;
  j["warmup"] = a.warmup;
  j["previous"] = a.previous;
  return j.dump();
}

namespace {

bool is_strings(const nlohmann::json& j) {
  return j.is_array() &&
         std::all_of(j.begin(), j.end(), [](auto& s) { return s.is_string(); });
}

status bad_json(const std::string& what) {
  return make_error(errc::invalid_argument, "invalid assignment JSON: " + what);
}

} // namespace

result<assignment> assignment_from_json(std::string_view text) {
  using nlohmann::json;
  json j;
  try {
    j = json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    // parse_error names the position and what was expected there; a number
    // too large for a double (1e999) is an out_of_range, not a parse_error.
    return bad_json(e.what());
  }
  if (!j.is_object()) return bad_json("expected an object, got " + j.dump());
  auto field = [&](const char* key, auto valid, const char* expected) -> status {
    auto it = j.find(key);
    if (it == j.end()) return bad_json(std::string("'") + key + "' is missing");
    if (!valid(*it))
      return bad_json(std::string("'") + key + "' must be " + expected + ", got " +
                      it->dump());
    return {};
  };
  auto is_integer = [](const json& v) { return v.is_number_integer(); };
  auto is_string = [](const json& v) { return v.is_string(); };
  auto is_string_arrays = [](const json& v) {
    return v.is_array() && std::all_of(v.begin(), v.end(), is_strings);
  };
  for (auto s : {field("generation", is_integer, "an integer"),
                 field("leader", is_string, "a string"),
                 field("members", is_strings, "an array of strings"),
                 field("active", is_strings, "an array of strings"),
                 field("standbys", is_string_arrays, "an array of arrays of strings"),
                 field("warmup", is_strings, "an array of strings"),
                 field("previous", is_strings, "an array of strings")})
    if (!s.ok()) return s;
  assignment a;
  a.generation = j["generation"].get<int64_t>();
  a.leader = j["leader"].get<std::string>();
  a.members = j["members"].get<std::vector<std::string>>();
  // Optional (older generations have none): 0 for every member.
  if (auto inc = j.find("incarnations"); inc != j.end() && !inc->empty()) {
    if (!inc->is_array() || inc->size() != a.members.size() ||
        !std::all_of(inc->begin(), inc->end(),
                     [](auto& v) { return v.is_number_integer(); }))
      return bad_json(
          "'incarnations' must be an array of integers, one per member, got " +
          inc->dump());
    a.incarnations = inc->get<std::vector<int64_t>>();
  } else {
    a.incarnations.assign(a.members.size(), 0);
  }
  a.active = j["active"].get<std::vector<std::string>>();
  a.standbys = j["standbys"].get<std::vector<std::vector<std::string>>>();
  a.warmup = j["warmup"].get<std::vector<std::string>>();
  a.previous = j["previous"].get<std::vector<std::string>>();
  for (auto [key, size] :
       {std::pair{"standbys", a.standbys.size()}, std::pair{"warmup", a.warmup.size()},
        std::pair{"previous", a.previous.size()}})
    if (size != a.active.size())
      return bad_json(std::string("'") + key + "' has " + std::to_string(size) +
                      " entries but 'active' has " + std::to_string(a.active.size()) +
                      " (one per unit)");
  return a;
}

std::map<std::string, std::pair<int, int>> load(const assignment& a) {
  std::map<std::string, std::pair<int, int>> out;
  for (auto& m : a.members)
    out[m] = {0, 0};
  for (auto& node : a.active)
    if (!node.empty()) ++out[node].first;
  for (auto& nodes : a.standbys)
    for (auto& node : nodes)
      ++out[node].second;
  return out;
}

} // namespace weft::cluster
