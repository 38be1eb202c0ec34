#pragma once
// Durable per-key timers, typed: "do X for this order 30 s from now".
//
//   struct shipping : weft::operator_base {
//     weft::timer_handle<str> ship = add_timer<str>("ship",
//     weft::timer_clock::wall_clock);
//     ...
//     void on_record(const weft::record_view& r, weft::context& ctx) override {
//       ship.set(ctx, order_id, ctx.wall_time() + 30'000);   // or replace it
//       ship.cancel(ctx, other_id);
//     }
//     void on_timer(const weft::timer& t, weft::context& ctx) override {
//       if (ship.is(t)) out.emit(ctx, ship.key_of(t), "ship it");
//     }
//   };
//
// A timer is named per key: setting (key, name) again replaces it. It lives
// in the task's shard (store "<service>-timers", see state/timer_index.hpp),
// indexed by fire time, changelogged, restored and replicated to standbys
// with the rest of the state, so a restart or a failover fires what was
// pending. It fires once its clock reaches its time, never earlier: an
// event-time timer after the record that moved the task's stream time
// there, a wall-clock one at the task's next clock tick (every
// commit.interval.ms, so at most about that late on an idle task). Due
// timers fire in bounded rounds (1,000 a round) between input batches, so a
// burst of them does not hold input back for long. Exactly once under
// exactly_once (the timer's removal commits in the epoch of its handler's
// effects), at least once under at_least_once.
//
// The handle holds no pointer: one handle serves every task, like
// kv_handle (store_handle.hpp). Errors throw weft_error (see context).

#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "weft/services/service.hpp"
#include "weft/services/store_handle.hpp"

namespace weft {

/// Timer `name` of each key (serde KS) on one clock.
template <class KS>
class timer_handle {
 public:
  static_assert(detail::store_serde_v<KS>,
                "timer_handle<KS>: KS must be a non-nullable weft serde");
  using key_type = typename KS::value_type;

  timer_handle() = default;
  timer_handle(std::string name, timer_clock clock)
    : name_(std::move(name)), clock_(clock) {}

  const std::string& name() const { return name_; }
  timer_clock clock() const { return clock_; }

  /// Schedules (or replaces) the timer of `key` at `time`, with `payload`
  /// (at most max_timer_payload_bytes) handed back to on_timer.
  void set(context& ctx, const key_type& key, timestamp_ms time,
           std::string_view payload = {}) const {
    ctx.set_timer(KS::serialize(key), name_, clock_, time, payload);
  }
  /// Cancels the timer of `key`; true if one was pending.
  bool cancel(context& ctx, const key_type& key) const {
    return ctx.cancel_timer(KS::serialize(key), name_);
  }
  /// The pending timer of `key`, or nullopt.
  std::optional<timer> get(context& ctx, const key_type& key) const {
    return ctx.find_timer(KS::serialize(key), name_);
  }
  /// Whether `t` (in on_timer) is one of this handle's.
  bool is(const timer& t) const { return t.name == name_; }
  /// The key of `t`, decoded (a key that no longer decodes throws weft_error).
  key_type key_of(const timer& t) const {
    return detail::decode_stored<KS>(t.key, "timer " + name_);
  }

 private:
  std::string name_;
  timer_clock clock_ = timer_clock::event_time;
};

} // namespace weft
