#pragma once
// The validation gate. Pattern: gate (correlate by key, act once, time out).
// For each order it waits for the three checks in `order-validations` and
// tells the orders service, through `order-commands`, exactly one of:
// VALIDATED (all three PASS) or FAILED with the reason of the first FAIL, or
// FAILED "validation timeout" when the three are not all in within
// validation.timeout.ms (wall clock) of the gate first hearing of the order.
//
// weft::gate keeps one value per input topic; here three answers share one
// topic, hence this small gate of its own with weft::gate's bookkeeping:
// "validation-gate-store" (order id -> answers so far, deadline, decided)
// and a durable wall-clock timer per order at its deadline
// (weft/services/timers.hpp, store "validation-gate-timers"). Once decided,
// an entry ignores everything (duplicate answers, stragglers) until its
// deadline, when it is deleted.

#include <map>

#include <weft/services/operator_base.hpp>
#include <weft/services/store_handle.hpp>

#include "serdes.hpp"

namespace orders {

struct validation_entry {
  int64_t deadline = 0;
  bool decided = false;
  std::map<std::string, std::string> answers; ///< check type -> PASS/FAIL
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(validation_entry, deadline, decided, answers)

class validation_gate : public weft::operator_base {
 public:
  validation_gate(const topic_names& t, weft::timestamp_ms timeout)
    : operator_base("validation-gate"), timeout_(timeout) {
    describe_as(weft::service_pattern::gate, "three checks, then VALIDATED or FAILED");
    treat_nulls_as_bad();
    add_input_ref(t.orders);
    add_input_ref(t.validations);
    add_store({entries_.name(), weft::store_decl::kind::kv});
    deadline_ = add_timer<str>("deadline", weft::timer_clock::wall_clock);
    out_ = to<str, command_serde>(t.commands);
  }

  void on_record(const weft::record_view& r, weft::context& ctx) override {
    const int input = input_index(r, ctx);
    if (input < 0) return;
    if (!r.key) return drop_null_key(r);
    if (!r.value) return drop_null_value(r);
    const auto now = ctx.wall_time();
    const auto id = decode_or_throw<str>(r.key, "key");
    auto e = entries_.get(ctx, id);
    if (e && e->deadline <= now) {
      // Due, its timer not fired yet: it ends first.
      expire(ctx, id, *e, now);
      e.reset();
    }
    if (input == 0) {
      // An order opens its correlation, so a check that never answers
      // still ends in a timeout. Later states need nothing from us.
      auto o = decode_or_throw<order_serde>(r.value, "value");
      if (o.state == created && !e) entries_.put(ctx, id, open(id, now, ctx));
      return;
    }
    auto v = decode_or_throw<validation_serde>(r.value, "value");
    if (!e) e = open(id, now, ctx);
    if (e->decided) return;
    if (!e->answers.emplace(v.check_type, v.result).second) return; // a duplicate
    if (v.result == fail) {
      decide(ctx, id, failed, v.reason.empty() ? v.check_type + " failed" : v.reason, 0);
      e->decided = true;
    } else if (all_passed(*e)) {
      decide(ctx, id, validated, {}, 0);
      e->decided = true;
    }
    entries_.put(ctx, id, *e);
  }

  void on_timer(const weft::timer& t, weft::context& ctx) override {
    if (!deadline_.is(t)) return;
    const auto id = deadline_.key_of(t);
    if (auto e = entries_.get(ctx, id); e && e->deadline <= t.time)
      expire(ctx, id, *e, 0); // stamped with the wall time it fired
  }

 private:
  static bool all_passed(const validation_entry& e) {
    for (auto* check : {inventory_check, fraud_check, order_details_check}) {
      auto i = e.answers.find(check);
      if (i == e.answers.end() || i->second != pass) return false;
    }
    return true;
  }

  validation_entry open(const std::string& id, weft::timestamp_ms now,
                        weft::context& ctx) {
    validation_entry e;
    e.deadline = now + timeout_;
    deadline_.set(ctx, id, e.deadline);
    return e;
  }

  void decide(weft::context& ctx, const std::string& id, const char* state,
              std::string reason, weft::timestamp_ms ts) {
    order_command c;
    c.type = state;
    c.reason = std::move(reason);
    if (ts > 0)
      emit_at(ctx, out_, id, c, ts);
    else
      out_.emit(ctx, id, c);
  }

  /// Ends entry `e` of order `id` at its deadline: undecided, it FAILs with
  /// a timeout (stamped `ts`; 0: the current record's or timer's time).
  void expire(weft::context& ctx, const std::string& id, const validation_entry& e,
              weft::timestamp_ms ts) {
    if (!e.decided) decide(ctx, id, failed, "validation timeout", ts);
    entries_.remove(ctx, id);
  }

  weft::timestamp_ms timeout_;
  weft::kv_handle<str, weft::json_serde<validation_entry>> entries_{
      "validation-gate-store"};
  weft::timer_handle<str> deadline_;
  weft::output<str, command_serde> out_;
};

} // namespace orders
