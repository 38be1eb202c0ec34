#pragma once
// Input and reference results for the time tests (time.test.cpp): the four
// operators of weft-time-node (time_node.cpp) fed with generated records,
// and what Kafka Streams' semantics say they must write when each task takes
// its records in timestamp order.
//
// Every generator returns the records of all its topics sorted by timestamp
// (ties: a table before a stream, the left input before the right, the
// order of generation), which is also the order they are produced in, so
// each partition holds its records in timestamp order; the reference
// replays that order per partition, as a task does. Two layouts:
//   preloaded   table (or left/first) records all older than the others
//   interleaved the timestamps of both inputs interleave
// Both are written before the node starts: a backlog, where fetch timing
// would decide the order if weft did not.
//
// Expected results are per output topic and key, in the order the key's
// results must appear in its partition (nullopt: a tombstone).

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "weft/services/partitioner.hpp"

namespace weft::test::time {

enum class layout { preloaded, interleaved };

inline constexpr int32_t partitions = 6;

/// Event time starts here: four hours before the test run, on a multiple of
/// 1,000,000 ms. Not 0 (the producer would stamp the current time instead),
/// and not years ago: window stores' changelogs are compact,delete with a
/// retention of a day past the windows' (as Kafka Streams'), so the broker
/// deletes changelog records of old event time, and a failover, restoring
/// from the changelog, would find no windows.
inline const int64_t t0 = [] {
  auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  return (now - 4 * 3'600'000) / 1'000'000 * 1'000'000;
}();

/// One input record.
struct input {
  std::string topic;
  int rank = 0; ///< the order among inputs on equal timestamps (lower first)
  std::string key;
  std::optional<std::string> value;
  int64_t ts = 0;
};

using per_key = std::map<std::string, std::vector<std::optional<std::string>>>;

struct scenario {
  std::vector<input> records;              ///< sorted, the order to produce
  std::map<std::string, per_key> expected; ///< output topic -> key -> results
  std::set<std::string> topics;            ///< inputs and outputs

  size_t expected_count(const std::string& topic) const {
    size_t n = 0;
    auto i = expected.find(topic);
    if (i != expected.end())
      for (auto& [k, v] : i->second)
        n += v.size();
    return n;
  }
  /// Adds `other`'s records (merged in timestamp order) and results.
  void merge(scenario other) {
    for (auto& r : other.records)
      records.push_back(std::move(r));
    sort_records();
    for (auto& [t, m] : other.expected)
      expected[t] = std::move(m);
    topics.insert(other.topics.begin(), other.topics.end());
  }
  /// Moves every record to event time t0 + its timestamp.
  void from_t0() {
    for (auto& r : records)
      r.ts += t0;
  }
  void sort_records() {
    std::stable_sort(records.begin(), records.end(), [](const input& a, const input& b) {
      return std::tie(a.ts, a.rank) < std::tie(b.ts, b.rank);
    });
  }
};

inline int32_t partition_of(const std::string& key) {
  return partition_for(key, partitions);
}

/// Stream-table inner join (service "join"): `customers` customers with
/// several versions each, `orders` orders keyed by customer id. An order
/// joins the version of its customer as of its timestamp; an order older
/// than its customer's first version joins nothing.
inline scenario stream_table(const std::string& p, size_t customers, size_t orders,
                             layout l, unsigned seed) {
  scenario s;
  std::mt19937_64 rng{seed};
  const std::string ct = p + "-customers", ot = p + "-orders", out = p + "-joined";
  s.topics = {ct, ot, out};
  const int64_t span = 10'000'000; // ms of event time
  // Customers: version 0 of each (older than every order when preloaded),
  // then (interleaved) later versions among the orders.
  std::uniform_int_distribution<int64_t> any_time{0, span};
  for (size_t c = 0; c < customers; ++c) {
    auto key = "c" + std::to_string(c);
    int64_t first = l == layout::preloaded ? static_cast<int64_t>(c) : any_time(rng);
    s.records.push_back({ct, 0, key, key + "v0", first});
    if (l == layout::interleaved)
      for (int v = 1; v < 3; ++v)
        s.records.push_back(
            {ct, 0, key, key + "v" + std::to_string(v), std::max(first, any_time(rng))});
  }
  const int64_t order_from = l == layout::preloaded ? static_cast<int64_t>(customers) : 0;
  std::uniform_int_distribution<int64_t> order_time{order_from, order_from + span};
  std::uniform_int_distribution<size_t> who{0, customers - 1};
  for (size_t o = 0; o < orders; ++o)
    s.records.push_back({ot, 1, "c" + std::to_string(who(rng)), "o" + std::to_string(o),
                         order_time(rng)});
  s.sort_records();
  s.from_t0();
  std::map<std::string, std::string> table;
  auto& exp = s.expected[out];
  for (auto& r : s.records) {
    if (r.topic == ct) {
      table[r.key] = *r.value;
    } else if (auto row = table.find(r.key); row != table.end()) {
      exp[r.key].push_back(*r.value + "|" + row->second);
    }
  }
  return s;
}

/// Table-table inner join (service "table-join"): `updates` updates (a tenth
/// of them deletes) of `keys` keys, spread over the left and right tables.
/// Preloaded: the left table's records are all older.
inline scenario table_table(const std::string& p, size_t keys, size_t updates, layout l,
                            unsigned seed) {
  scenario s;
  std::mt19937_64 rng{seed};
  const std::string lt = p + "-left-t", rt = p + "-right-t", out = p + "-tt-out";
  s.topics = {lt, rt, out};
  std::uniform_int_distribution<size_t> which{0, keys - 1};
  std::uniform_int_distribution<int> coin{0, 9};
  for (size_t u = 0; u < updates; ++u) {
    bool left = l == layout::preloaded ? u < updates / 2 : coin(rng) < 5;
    auto key = "k" + std::to_string(which(rng));
    std::optional<std::string> v;
    if (coin(rng) != 0) v = (left ? "L" : "R") + std::to_string(u);
    s.records.push_back({left ? lt : rt, left ? 0 : 1, key, v, static_cast<int64_t>(u)});
  }
  s.sort_records();
  s.from_t0();
  std::map<std::string, std::string> lv, rv;
  auto& exp = s.expected[out];
  for (auto& r : s.records) {
    bool left = r.topic == lt;
    auto& mine = left ? lv : rv;
    auto& other = left ? rv : lv;
    bool had = mine.count(r.key) > 0;
    if (!had && !r.value) continue; // deleting nothing changes nothing
    if (r.value)
      mine[r.key] = *r.value;
    else
      mine.erase(r.key);
    auto o = other.find(r.key);
    if (o == other.end()) continue;
    if (r.value)
      exp[r.key].push_back(left ? *r.value + "|" + o->second
                                : o->second + "|" + *r.value);
    else
      exp[r.key].push_back(std::nullopt);
  }
  return s;
}

/// Windowed stream-stream inner join (service "stream-join", window
/// +-`window` ms, no grace): `n` records over `keys` keys, each on the left
/// or the right. Preloaded: the left input is written first in time, the
/// right input starts where the left one ends minus two windows, so the
/// first right records join the last left ones. Without timestamp order a
/// task that ran through the left backlog first would drop the right
/// records as late.
inline scenario stream_stream(const std::string& p, size_t keys, size_t n, int64_t window,
                              layout l, unsigned seed) {
  scenario s;
  std::mt19937_64 rng{seed};
  const std::string lt = p + "-left-s", rt = p + "-right-s", out = p + "-ss-out";
  s.topics = {lt, rt, out};
  std::uniform_int_distribution<size_t> which{0, keys - 1};
  std::uniform_int_distribution<int> coin{0, 1};
  // About four records of a key per window and side.
  const auto span = static_cast<int64_t>(n / keys) * window / 4 + 1;
  std::uniform_int_distribution<int64_t> when{0, span};
  for (size_t i = 0; i < n; ++i) {
    bool left = l == layout::preloaded ? i < n / 2 : coin(rng) == 1;
    int64_t ts = when(rng);
    if (l == layout::preloaded && !left) ts += span - 2 * window;
    s.records.push_back({left ? lt : rt, left ? 0 : 1, "k" + std::to_string(which(rng)),
                         (left ? "l" : "r") + std::to_string(i), ts});
  }
  s.sort_records();
  s.from_t0();
  // Per partition: stream time and, per key, the buffered records of both
  // sides in arrival order.
  struct side_buffer {
    std::vector<std::pair<int64_t, std::string>> rec;
  };
  std::map<std::string, side_buffer> buf[2];
  std::map<int32_t, int64_t> stream_time;
  auto& exp = s.expected[out];
  for (auto& r : s.records) {
    int side = r.topic == lt ? 0 : 1;
    auto& st = stream_time[partition_of(r.key)];
    st = std::max(st, r.ts);
    if (r.ts + window < st) continue; // late (cannot happen in timestamp order)
    // The other side's records of the key in [ts - window, ts + window], in
    // time order (a window store: by time, then as they came).
    std::vector<std::pair<int64_t, std::string>> partners;
    for (auto& [t, v] : buf[1 - side][r.key].rec)
      if (t >= std::max<int64_t>(0, r.ts - window) && t <= r.ts + window)
        partners.emplace_back(t, v);
    std::stable_sort(partners.begin(), partners.end(),
                     [](auto& a, auto& b) { return a.first < b.first; });
    for (auto& [t, v] : partners)
      exp[r.key].push_back(side == 0 ? *r.value + "|" + v : v + "|" + *r.value);
    buf[side][r.key].rec.emplace_back(r.ts, *r.value);
  }
  return s;
}

/// The stream-time gate (service "gate", timeout `timeout` ms): `keys` keys,
/// each with an a and, for most, a b that comes up to 1.5 timeouts later (so
/// some time out), some parts twice. Preloaded: every a is older than every
/// b but the first b's.
inline scenario gate(const std::string& p, size_t keys, int64_t timeout, layout l,
                     unsigned seed) {
  scenario s;
  std::mt19937_64 rng{seed};
  const std::string at = p + "-gate-a", bt = p + "-gate-b", out = p + "-gate-out";
  s.topics = {at, bt, out};
  const auto span = static_cast<int64_t>(keys) * 10;
  std::uniform_int_distribution<int64_t> when{0, span};
  std::uniform_int_distribution<int64_t> later{0, timeout + timeout / 2};
  std::uniform_int_distribution<int> coin{0, 9};
  for (size_t k = 0; k < keys; ++k) {
    auto key = "g" + std::to_string(k);
    int64_t ta = l == layout::preloaded ? static_cast<int64_t>(k) : when(rng);
    s.records.push_back({at, 0, key, "a" + std::to_string(k), ta});
    if (coin(rng) == 0)
      s.records.push_back({at, 0, key, "A" + std::to_string(k), ta + 1});
    if (coin(rng) < 8) {
      int64_t tb = l == layout::preloaded ? static_cast<int64_t>(keys) + later(rng)
                                          : ta + later(rng);
      s.records.push_back({bt, 1, key, "b" + std::to_string(k), tb});
    }
  }
  s.sort_records();
  s.from_t0();
  // gate.hpp per partition: deadlines checked before each event, at
  // max(stream time, the event's time); done correlations ignore events.
  struct entry {
    int64_t deadline = 0;
    bool done = false;
    std::optional<std::string> a, b;
  };
  std::map<int32_t, int64_t> stream_time;
  std::map<int32_t, std::map<std::pair<int64_t, std::string>, bool>> deadlines;
  std::map<std::string, entry> open;
  auto& exp = s.expected[out];
  for (auto& r : s.records) {
    auto part = partition_of(r.key);
    auto& now = stream_time[part];
    now = std::max(now, r.ts);
    auto& due = deadlines[part];
    while (!due.empty() && due.begin()->first.first <= now) {
      auto key = due.begin()->first.second;
      due.erase(due.begin());
      auto e = open.find(key);
      if (e == open.end()) continue;
      if (!e->second.done)
        exp[key].push_back("timeout:" + e->second.a.value_or("-") + "+" +
                           e->second.b.value_or("-"));
      open.erase(e);
    }
    auto [it, fresh] = open.try_emplace(r.key);
    auto& e = it->second;
    if (fresh) {
      e.deadline = now + timeout;
      due[{e.deadline, r.key}] = true;
    } else if (e.done) {
      continue;
    }
    (r.topic == at ? e.a : e.b) = *r.value;
    if (e.a && e.b) {
      exp[r.key].push_back("ready:" + *e.a + "+" + *e.b);
      e.done = true;
    }
  }
  return s;
}

} // namespace weft::test::time
