#pragma once
// Durable per-key timers: the index a task keeps in one kv store of its
// shard, so timers are changelogged, restored and replicated to standbys
// like the rest of its state.
//
// A timer is (key, name) -> (clock, time, payload); setting a timer of the
// same key and name replaces it. The store holds two key spaces:
//
//   'K' be32(|key|) key name                     -> clock(1) sortable(time)(8)
//   'T' clock(1) sortable(time)(8) be32(|key|) key name -> payload
//
// The first answers get/cancel/replace by (key, name); the second is sorted
// by fire time per clock, so finding the due timers is one seek and a read of
// just those (never a scan of every key). Both change together in every
// call, so a changelog replay rebuilds both.
//
// Firing is the task's: take_due() hands out due timers in (time, key, name)
// order and remembers them as taken (in memory) so that the next call does
// not hand them out again; remove_taken() deletes one from the store once
// its handler's effects are safe — in the same exactly-once epoch as those
// effects, or under at-least-once once its outputs were acknowledged (until
// then a crash leaves it in the store, and it fires again). A timer set or
// cancelled after it was taken is no longer taken: remove_taken() leaves
// the new one alone.
//
// Threads: one writer, the task's actor (every call). Not copyable; borrows
// the store, which must outlive it.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "weft/state/store.hpp"
#include "weft/status.hpp"
#include "weft/types.hpp"

namespace weft {

/// Which clock a timer waits for.
enum class timer_clock : uint8_t {
  event_time =
      0, ///< the task's stream time (record timestamps): due once it reaches `time`
  wall_clock = 1, ///< the node's clock: due once the wall time reaches `time`
};

/// A timer: what a service scheduled, and what its on_timer() gets back.
struct timer {
  std::string key;  ///< the key bytes (as the service's key serde wrote them)
  std::string name; ///< one timer per (key, name)
  timer_clock clock = timer_clock::event_time;
  timestamp_ms time = 0; ///< due when the clock reaches it (never earlier)
  std::string payload;   ///< small bytes the handler gets back
};

/// Bounds on a timer's parts (a timer lives in a changelog record).
inline constexpr size_t max_timer_name_bytes = 255;
inline constexpr size_t max_timer_payload_bytes = 64 * 1024;
inline constexpr size_t max_timer_key_bytes = 64 * 1024;

} // namespace weft

namespace weft::state {

class timer_index {
 public:
  /// Over `store` (the task's timer store, restored): nothing is read yet;
  /// the first take_due() of each clock seeks its first timer.
  explicit timer_index(kv_store& store);
  timer_index(const timer_index&) = delete;
  timer_index& operator=(const timer_index&) = delete;

  /// Schedules `t`, replacing the timer of the same key and name if any.
  /// errc::invalid_argument when a part is over its bound; errc::io from
  /// the store.
  status set(const timer& t);

  /// Removes the timer (key, name); true if there was one.
  result<bool> cancel(std::string_view key, std::string_view name);

  /// The pending timer (key, name), or nullopt. A taken timer is still
  /// pending until remove_taken().
  result<std::optional<timer>> get(std::string_view key, std::string_view name) const;

  /// False when certainly no timer of `clock` is due at `now` (no store read:
  /// the task asks this after every record); true when one may be.
  bool maybe_due(timer_clock clock, timestamp_ms now) const;

  /// Up to `max` timers of `clock` with time <= `now` not taken before, in
  /// (time, key, name) order; each is taken (see the top of this file).
  result<std::vector<timer>> take_due(timer_clock clock, timestamp_ms now, size_t max);

  /// Deletes taken timer `t` from the store and forgets it was taken;
  /// nothing if it is not taken any more (set or cancelled since).
  status remove_taken(const timer& t);

  /// Timers taken and not yet removed.
  size_t taken() const { return taken_.size(); }

  // -- the byte layout, for tests and tools --------------------------------
  static std::string index_key(timer_clock clock, timestamp_ms time, std::string_view key,
                               std::string_view name);
  static std::string by_key(std::string_view key, std::string_view name);
  /// Decodes an index entry; nullopt if `k` is not one.
  static std::optional<timer> decode_index(std::string_view k, std::string_view payload);
  /// Decodes the value stored at by_key(): (clock, due time); nullopt if
  /// `v` is not one.
  static std::optional<std::pair<timer_clock, timestamp_ms>>
  decode_by_key_value(std::string_view v);

 private:
  /// Forgets that the timer whose index entry is `ik` was taken.
  void untake(const std::string& ik) { taken_.erase(ik); }
  /// A new or moved index entry of `clock` at `ik`, time `time`.
  void note_pending(timer_clock clock, const std::string& ik, timestamp_ms time);

  kv_store& store_;
  /// Per clock: the index key the next take_due() starts from; every entry
  /// before it was taken (or removed).
  std::string cursor_[2];
  /// Per clock: no timer not yet taken is due before this (a lower bound).
  timestamp_ms next_[2];
  std::unordered_set<std::string> taken_; ///< index keys
};

} // namespace weft::state
