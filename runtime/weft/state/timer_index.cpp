#include "weft/state/timer_index.hpp"

#include <algorithm>
#include <limits>

#include "weft/serde.hpp"

namespace weft::state {

namespace {

using weft::detail::load_big_endian;
using weft::detail::store_big_endian;

constexpr char by_key_prefix = 'K';
constexpr char index_prefix = 'T';
constexpr size_t index_head = 1 + 1 + 8; ///< prefix, clock, time

constexpr timestamp_ms min_time = std::numeric_limits<timestamp_ms>::min();
constexpr timestamp_ms max_time = std::numeric_limits<timestamp_ms>::max();

/// An int64 as 8 bytes whose byte order is the numeric order.
void put_time(std::string& out, timestamp_ms t) {
  char buf[8];
  store_big_endian(buf, static_cast<uint64_t>(t) ^ 0x8000000000000000ULL);
  out.append(buf, 8);
}

timestamp_ms get_time(const char* p) {
  return static_cast<timestamp_ms>(load_big_endian<uint64_t>(p) ^ 0x8000000000000000ULL);
}

void put_key_name(std::string& out, std::string_view key, std::string_view name) {
  char buf[4];
  store_big_endian(buf, static_cast<uint32_t>(key.size()));
  out.append(buf, 4);
  out.append(key);
  out.append(name);
}

/// The first index key of `clock` (at the earliest time).
std::string clock_start(timer_clock clock) {
  std::string k{index_prefix};
  k += static_cast<char>(clock);
  return k;
}

/// The index key before which every entry of `clock` has time <= `t`.
std::string clock_bound(timer_clock clock, timestamp_ms t) {
  if (t == max_time) {
    std::string k{index_prefix};
    k += static_cast<char>(static_cast<uint8_t>(clock) + 1);
    return k;
  }
  auto k = clock_start(clock);
  put_time(k, t + 1);
  return k;
}

size_t slot(timer_clock clock) {
  return clock == timer_clock::wall_clock ? 1 : 0;
}

status check_parts(const timer& t) {
  if (t.clock != timer_clock::event_time && t.clock != timer_clock::wall_clock)
    return make_error(errc::invalid_argument, "timer: unknown clock");
  if (t.name.size() > max_timer_name_bytes)
    return make_error(errc::invalid_argument,
                      "timer name of " + std::to_string(t.name.size()) +
                          " bytes; at most " + std::to_string(max_timer_name_bytes));
  if (t.key.size() > max_timer_key_bytes)
    return make_error(errc::invalid_argument,
                      "timer key of " + std::to_string(t.key.size()) +
                          " bytes; at most " + std::to_string(max_timer_key_bytes));
  if (t.payload.size() > max_timer_payload_bytes)
    return make_error(errc::invalid_argument,
                      "timer payload of " + std::to_string(t.payload.size()) +
                          " bytes; at most " + std::to_string(max_timer_payload_bytes) +
                          " (keep large data in a store and the timer small)");
  return {};
}

/// Decodes a by-key value: clock and time.
bool decode_due(std::string_view v, timer_clock& clock, timestamp_ms& time) {
  if (v.size() != 9 || (v[0] != 0 && v[0] != 1)) return false;
  clock = static_cast<timer_clock>(v[0]);
  time = get_time(v.data() + 1);
  return true;
}

status corrupt(std::string_view what) {
  return make_error(errc::io, "timer store: a malformed " + std::string{what} + " entry");
}

} // namespace

timer_index::timer_index(kv_store& store) : store_(store) {
  for (auto c : {timer_clock::event_time, timer_clock::wall_clock}) {
    cursor_[slot(c)] = clock_start(c);
    next_[slot(c)] = min_time; // unknown until the first look
  }
}

std::string timer_index::index_key(timer_clock clock, timestamp_ms time,
                                   std::string_view key, std::string_view name) {
  auto k = clock_start(clock);
  k.reserve(index_head + 4 + key.size() + name.size());
  put_time(k, time);
  put_key_name(k, key, name);
  return k;
}

std::string timer_index::by_key(std::string_view key, std::string_view name) {
  std::string k{by_key_prefix};
  k.reserve(1 + 4 + key.size() + name.size());
  put_key_name(k, key, name);
  return k;
}

std::optional<std::pair<timer_clock, timestamp_ms>>
timer_index::decode_by_key_value(std::string_view v) {
  timer_clock clock;
  timestamp_ms time = 0;
  if (!decode_due(v, clock, time)) return std::nullopt;
  return std::pair{clock, time};
}

std::optional<timer> timer_index::decode_index(std::string_view k,
                                               std::string_view payload) {
  if (k.size() < index_head + 4 || k[0] != index_prefix || (k[1] != 0 && k[1] != 1))
    return std::nullopt;
  auto key_len = load_big_endian<uint32_t>(k.data() + index_head);
  if (k.size() - index_head - 4 < key_len) return std::nullopt;
  timer t;
  t.clock = static_cast<timer_clock>(k[1]);
  t.time = get_time(k.data() + 2);
  t.key.assign(k.substr(index_head + 4, key_len));
  t.name.assign(k.substr(index_head + 4 + key_len));
  t.payload.assign(payload);
  return t;
}

void timer_index::note_pending(timer_clock clock, const std::string& ik,
                               timestamp_ms time) {
  auto s = slot(clock);
  if (time < next_[s]) next_[s] = time;
  if (ik < cursor_[s]) cursor_[s] = ik;
}

status timer_index::set(const timer& t) {
  if (auto st = check_parts(t); !st) return st;
  auto bk = by_key(t.key, t.name);
  auto old = store_.get(bk);
  if (!old) return old.error();
  auto ik = index_key(t.clock, t.time, t.key, t.name);
  if (*old) {
    timer_clock clock;
    timestamp_ms time;
    if (!decode_due(**old, clock, time)) return corrupt("by-key");
    auto old_ik = index_key(clock, time, t.key, t.name);
    untake(old_ik);
    if (old_ik != ik)
      if (auto st = store_.remove(old_ik); !st) return st;
  }
  std::string due;
  due += static_cast<char>(t.clock);
  put_time(due, t.time);
  if (!*old || **old != due)
    if (auto st = store_.put(bk, due); !st) return st;
  if (auto st = store_.put(ik, t.payload); !st) return st;
  note_pending(t.clock, ik, t.time);
  return {};
}

result<bool> timer_index::cancel(std::string_view key, std::string_view name) {
  auto bk = by_key(key, name);
  auto old = store_.get(bk);
  if (!old) return old.error();
  if (!*old) return false;
  timer_clock clock;
  timestamp_ms time;
  if (!decode_due(**old, clock, time)) return corrupt("by-key");
  auto ik = index_key(clock, time, key, name);
  untake(ik);
  if (auto st = store_.remove(ik); !st) return st;
  if (auto st = store_.remove(bk); !st) return st;
  return true;
}

result<std::optional<timer>> timer_index::get(std::string_view key,
                                              std::string_view name) const {
  auto v = store_.get(by_key(key, name));
  if (!v) return v.error();
  if (!*v) return std::optional<timer>{};
  timer t;
  if (!decode_due(**v, t.clock, t.time)) return corrupt("by-key");
  auto payload = store_.get(index_key(t.clock, t.time, key, name));
  if (!payload) return payload.error();
  if (!*payload) return corrupt("index"); // the two key spaces disagree
  t.key.assign(key);
  t.name.assign(name);
  t.payload = std::move(**payload);
  return std::optional<timer>{std::move(t)};
}

bool timer_index::maybe_due(timer_clock clock, timestamp_ms now) const {
  return next_[slot(clock)] <= now;
}

result<std::vector<timer>> timer_index::take_due(timer_clock clock, timestamp_ms now,
                                                 size_t max) {
  std::vector<timer> out;
  auto s = slot(clock);
  if (max == 0 || next_[s] > now) return out;
  const auto bound = clock_bound(clock, now);
  std::string last;
  bool corrupted = false;
  // From the cursor: entries before it were taken (or removed), so the scan
  // skips the deletion markers fired timers leave behind. A cursor past the
  // bound (the wall clock stepped back) leaves nothing to scan.
  auto st =
      cursor_[s] >= bound
          ? status{}
          : store_.range(cursor_[s], bound, [&](std::string_view k, std::string_view v) {
              last.assign(k);
              if (taken_.count(last))
                return true; // set below the cursor, then taken again
              auto t = decode_index(k, v);
              if (!t) {
                corrupted = true;
                return false;
              }
              taken_.insert(last);
              out.push_back(std::move(*t));
              return out.size() < max;
            });
  if (!st) return st;
  if (corrupted) return corrupt("index");
  if (out.size() == max) {
    // More may be due: go on after the last one taken.
    cursor_[s] = last;
    cursor_[s] += '\0';
    next_[s] = out.back().time;
    return out;
  }
  // Every due timer is taken: the next not taken is the first at or after
  // the bound (later ones set before it lower the cursor again).
  cursor_[s] = std::max(cursor_[s], bound);
  next_[s] = max_time;
  st = store_.range(cursor_[s], clock_bound(clock, max_time),
                    [&](std::string_view k, std::string_view) {
                      if (k.size() >= index_head) next_[s] = get_time(k.data() + 2);
                      return false;
                    });
  if (!st) return st;
  return out;
}

status timer_index::remove_taken(const timer& t) {
  auto ik = index_key(t.clock, t.time, t.key, t.name);
  auto i = taken_.find(ik);
  if (i == taken_.end()) return {};
  taken_.erase(i);
  if (auto st = store_.remove(ik); !st) return st;
  return store_.remove(by_key(t.key, t.name));
}

} // namespace weft::state
