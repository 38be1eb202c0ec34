#pragma once
// The gate pattern: correlate several kinds of event by key and act once
// when a condition over them holds — "when an Order and its Payment have
// both arrived, release the shipment" — or give up after a timeout.
//
//   struct release : weft::gate<str> {
//     part<json_serde<order>> ordered = when<json_serde<order>>("orders");
//     part<json_serde<payment>> paid = when<json_serde<payment>>("payments");
//     weft::output<str, json_serde<shipment>> ship =
//         to<str, json_serde<shipment>>("shipments");
//     weft::output<str, str> expired = to<str, str>("unpaid-orders");
//
//     release() : gate("release", /*timeout*/ 15 * 60'000) {}
//
//     void on_ready(const std::string& id, const correlation& c,
//                   weft::context& ctx) override {
//       ship.emit(ctx, id, shipment{*c.get(ordered), *c.get(paid)});
//     }
//     void on_timeout(const std::string& id, const correlation& c,
//                     weft::context& ctx) override {
//       if (c.has(ordered)) expired.emit(ctx, id, "no payment in 15 minutes");
//     }
//   };
//
// Semantics, per key:
// - The first event of a key opens a correlation with a deadline: its time +
//   timeout. Time is wall-clock time by default (gate_clock::wall: the
//   node's clock, the test driver's settable one) or stream time
//   (gate_clock::stream: record timestamps).
// - Each event is stored as its part's latest value (a second Order replaces
//   the first). After each event, ready() is asked; the default holds once
//   every declared part arrived. Override it for other conditions.
// - When ready() first holds, on_ready() runs: once per correlation. Events
//   of the key after that, until the deadline, are ignored (duplicates and
//   retries do not fire again).
// - At the deadline (time >= deadline), a correlation that never became
//   ready gets on_timeout(); either way its state is then deleted, and a
//   later event of the key opens a new correlation. Each correlation has a
//   durable timer at its deadline (timers.hpp): an event-time one fires
//   after the record that moved stream time to the deadline, a wall-clock
//   one at the task's next clock tick (commit.interval.ms); an event of a
//   key whose deadline passed but whose timer has not fired yet ends the
//   old correlation first. Deadlines survive restarts and failovers with
//   the rest of the state, and firing costs the due correlations only.
// - Events without key or value are dropped (drops()); a value the part's
//   serde cannot decode is a bad record.
//
// State: kv store "<name>-store" (key -> parts, times, done flag; cereal
// binary) and the timer store "<name>-timers" (one timer "deadline" per
// key). Upgrading: correlations written by a weft whose gates kept their
// deadlines in "<name>-deadlines" have no timer; they end when their key's
// next event comes after the deadline.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <cereal/types/map.hpp>
#include <cereal/types/string.hpp>

#include "weft/services/operator_base.hpp"
#include "weft/services/store_handle.hpp"

namespace weft {

/// Which clock a gate's timeouts run on.
enum class gate_clock {
  wall,   ///< wall-clock time: timeouts fire even when no events arrive
  stream, ///< stream time (record timestamps): deterministic on replay
};

namespace detail {

/// What a gate keeps per key.
struct gate_entry {
  int64_t started = 0;
  int64_t deadline = 0;
  bool done = false;
  std::map<std::string, std::string> parts; ///< part name -> value bytes

  template <class Archive>
  void serialize(Archive& ar) {
    ar(started, deadline, done, parts);
  }
};

} // namespace detail

template <class KS>
class gate : public operator_base {
 public:
  static_assert(detail::store_serde_v<KS>,
                "gate<KS>: KS must be a non-nullable weft serde");
  using key_type = typename KS::value_type;

  /// One kind of event the gate waits for: the records of one input, with
  /// values in serde VS. Made by when().
  template <class VS>
  class part {
   public:
    part() = default;
    const std::string& name() const { return name_; }

   private:
    friend class gate;
    explicit part(std::string name) : name_(std::move(name)) {}
    std::string name_;
  };

  /// The events of one key so far.
  class correlation {
   public:
    template <class VS>
    bool has(const part<VS>& p) const {
      return entry_->parts.count(p.name()) > 0;
    }
    /// The latest value of part `p`, or nullopt if none arrived.
    template <class VS>
    std::optional<typename VS::value_type> get(const part<VS>& p) const {
      auto i = entry_->parts.find(p.name());
      if (i == entry_->parts.end()) return std::nullopt;
      return detail::decode_stored<VS>(i->second, p.name());
    }
    /// How many distinct parts arrived.
    size_t size() const { return entry_->parts.size(); }
    timestamp_ms started() const { return entry_->started; }
    timestamp_ms deadline() const { return entry_->deadline; }

   private:
    friend class gate;
    explicit correlation(const detail::gate_entry& e) : entry_(&e) {}
    const detail::gate_entry* entry_;
  };

  /// A gate `name` whose correlations time out `timeout` ms after their
  /// first event. `check_interval_ms` (> 0) is no longer used — deadlines
  /// are durable timers that fire on time — and is kept for source
  /// compatibility.
  gate(std::string name, timestamp_ms timeout, gate_clock clock = gate_clock::wall,
       timestamp_ms check_interval_ms = 1000)
    : operator_base(std::move(name)), timeout_(timeout), clock_(clock) {
    describe_as(service_pattern::gate);
    if (timeout <= 0 || check_interval_ms <= 0)
      throw weft_error{status{errc::invalid_argument,
                              this->name() + ": timeout and check interval must be > 0"}};
    state_ = this->name() + "-store";
    add_store({state_, store_decl::kind::kv});
    deadline_ =
        add_timer<KS>("deadline", clock == gate_clock::wall ? timer_clock::wall_clock
                                                            : timer_clock::event_time);
  }

  /// Runs once per correlation, when ready() first holds.
  virtual void on_ready(const key_type& key, const correlation& c, context& ctx) = 0;

  /// Runs for a correlation that reached its deadline without being ready.
  virtual void on_timeout(const key_type& key, const correlation& c, context& ctx) {}

  /// The condition; by default: every declared part arrived.
  virtual bool ready(const correlation& c) const { return c.size() == parts_.size(); }

  void on_record(const record_view& r, context& ctx) final {
    const int index = input_index(r, ctx);
    if (index < 0) return;
    if (!r.key) return drop_null_key(r);
    if (!r.value) return drop_null_value(r);
    auto k = decode_or_throw<KS>(r.key, "key");
    const auto& p = parts_[static_cast<size_t>(index)];
    if (auto st = p.check(*r.value); !st.ok())
      throw weft_error{status{errc::bad_record, "value: " + st.message()}};

    const auto now = clock_ == gate_clock::wall
                         ? ctx.wall_time()
                         : std::max(ctx.stream_time(), r.timestamp);

    auto& store = ctx.kv_store(state_);
    const std::string key{*r.key};
    auto stored = detail::value_or_throw(store.get(key));
    detail::gate_entry e;
    if (stored) {
      e = detail::decode_stored<entry_serde>(*stored, state_);
      if (e.deadline <= now) {
        // Due, its timer not fired yet: the old correlation ends first (the
        // new one's timer replaces its timer).
        end(ctx, k, key, e);
        stored.reset();
      } else if (e.done) {
        return; // fired already: duplicates and stragglers change nothing
      }
    }
    if (!stored) {
      e = detail::gate_entry{};
      e.started = now;
      e.deadline = now + timeout_;
      ctx.set_timer(key, deadline_.name(), deadline_.clock(), e.deadline);
    }
    e.parts[p.name] = std::string{*r.value};
    correlation c{e};
    if (ready(c)) {
      // The callback first: if it throws, the record fails and a retry
      // finds the correlation not done and fires again.
      on_ready(k, c, ctx);
      e.done = true;
    }
    detail::throw_if_error(store.put(key, entry_serde::serialize(e)));
  }

  void on_timer(const timer& t, context& ctx) final {
    if (!deadline_.is(t)) return;
    auto stored = detail::value_or_throw(ctx.kv_store(state_).get(t.key));
    if (!stored) return;
    auto e = detail::decode_stored<entry_serde>(*stored, state_);
    if (e.deadline > t.time) return; // a later correlation's (not expected)
    end(ctx, deadline_.key_of(t), t.key, e);
  }

  timestamp_ms timeout() const { return timeout_; }

 protected:
  /// Declares the part of records from `input`, with values in serde VS.
  template <class VS>
  part<VS> when(input_ref input) {
    static_assert(is_serde_v<VS>, "gate::when<VS>: VS must be a weft serde");
    for (auto& p : parts_)
      if (p.name == input.name)
        throw weft_error{status{errc::invalid_argument,
                                this->name() + ": two parts read '" + input.name + "'"}};
    parts_.push_back({input.name, [](std::string_view bytes) {
                        auto v = VS::deserialize(bytes);
                        return v ? status{} : v.error();
                      }});
    add_input_ref(input);
    return part<VS>{input.name};
  }

 private:
  using entry_serde = cereal_binary_serde<detail::gate_entry>;

  struct part_decl {
    std::string name;
    std::function<status(std::string_view)> check;
  };

  /// Ends correlation `e` of `key` (bytes `key_bytes`) at its deadline.
  void end(context& ctx, const key_type& key, const std::string& key_bytes,
           const detail::gate_entry& e) {
    if (!e.done) on_timeout(key, correlation{e}, ctx);
    detail::throw_if_error(ctx.kv_store(state_).remove(key_bytes));
  }

  timestamp_ms timeout_;
  gate_clock clock_;
  std::string state_;
  timer_handle<KS> deadline_;
  std::vector<part_decl> parts_;
};

} // namespace weft
