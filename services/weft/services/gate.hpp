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
//   later event of the key opens a new correlation. Deadlines are checked
//   before each event and on every punctuation (every check_interval_ms of
//   wall time, and as stream time advances), so a timeout fires at most a
//   check interval late.
// - Events without key or value are dropped (drops()); a value the part's
//   serde cannot decode is a bad record.
//
// State: kv store "<name>-store" (key -> parts, times, done flag; cereal
// binary) and "<name>-deadlines" (deadline + key, to find due correlations
// without scanning every key).

#include <cstdint>
#include <functional>
#include <limits>
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
  /// first event, checked every `check_interval_ms` of wall time.
  gate(std::string name, timestamp_ms timeout, gate_clock clock = gate_clock::wall,
       timestamp_ms check_interval_ms = 1000)
    : operator_base(std::move(name)), timeout_(timeout), clock_(clock) {
    describe_as(service_pattern::gate);
    if (timeout <= 0 || check_interval_ms <= 0)
      throw weft_error{status{errc::invalid_argument,
                              this->name() + ": timeout and check interval must be > 0"}};
    state_ = this->name() + "-store";
    deadlines_ = this->name() + "-deadlines";
    add_store({state_, store_decl::kind::kv});
    add_store({deadlines_, store_decl::kind::kv});
    set_punctuate_interval(check_interval_ms);
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
    expire(ctx, now);

    auto& store = ctx.kv_store(state_);
    const std::string key{*r.key};
    auto stored = detail::value_or_throw(store.get(key));
    detail::gate_entry e;
    if (stored) {
      e = detail::decode_stored<entry_serde>(*stored, state_);
      if (e.done) return; // fired already: duplicates and stragglers change nothing
    } else {
      e.started = now;
      e.deadline = now + timeout_;
      scan_from_ = std::min(scan_from_, e.deadline);
      detail::throw_if_error(
          ctx.kv_store(deadlines_)
              .put(detail::sortable_time(e.deadline) + key, std::string_view{}));
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

  void on_punctuate(context& ctx) final {
    expire(ctx, clock_ == gate_clock::wall ? ctx.wall_time() : ctx.stream_time());
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

  /// Ends every correlation whose deadline is at or before `now`.
  void expire(context& ctx, timestamp_ms now) {
    if (now < scan_from_) return; // nothing can be due
    auto& deadlines = ctx.kv_store(deadlines_);
    std::vector<std::string> due;
    // Keys are deadline + key bytes, so [start, now + 1) is every deadline <=
    // now. Those before scan_from_ were removed by an earlier call: starting
    // after them spares the scan the store's deletion markers (from the
    // store's start it grew with every expired correlation).
    const auto from = scan_from_ == std::numeric_limits<timestamp_ms>::min()
                          ? std::string{}
                          : detail::sortable_time(scan_from_);
    detail::throw_if_error(deadlines.range(from, detail::sortable_time(now + 1),
                                           [&](std::string_view k, std::string_view) {
                                             due.emplace_back(k);
                                             return true;
                                           }));
    auto& store = ctx.kv_store(state_);
    for (auto& d : due) {
      std::string key = d.substr(8);
      auto stored = detail::value_or_throw(store.get(key));
      if (stored) {
        auto e = detail::decode_stored<entry_serde>(*stored, state_);
        if (!e.done) {
          auto k = detail::decode_stored<KS>(key, state_);
          on_timeout(k, correlation{e}, ctx);
        }
        detail::throw_if_error(store.remove(key));
      }
      detail::throw_if_error(deadlines.remove(d));
    }
    scan_from_ = now + 1;
  }

  timestamp_ms timeout_;
  gate_clock clock_;
  /// No deadline before this is left (lowered when one is set before it);
  /// the lowest possible after a restart.
  timestamp_ms scan_from_ = std::numeric_limits<timestamp_ms>::min();
  std::string state_;
  std::string deadlines_;
  std::vector<part_decl> parts_;
};

} // namespace weft
