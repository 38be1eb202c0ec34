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
// and "validation-gate-deadlines" (deadline + order id, to find due entries
// without a scan). Once decided, an entry ignores everything (duplicate
// answers, stragglers) until its deadline, when it is deleted.

#include <algorithm>
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
    add_store({deadlines_, weft::store_decl::kind::kv});
    out_ = to<str, command_serde>(t.commands);
    // A timeout fires at most one check interval late.
    set_punctuate_interval(std::clamp<weft::timestamp_ms>(timeout / 10, 20, 1000));
  }

  void on_record(const weft::record_view& r, weft::context& ctx) override {
    const int input = input_index(r, ctx);
    if (input < 0) return;
    if (!r.key) return drop_null_key(r);
    if (!r.value) return drop_null_value(r);
    const auto now = ctx.wall_time();
    expire(ctx, now);
    const auto id = decode_or_throw<str>(r.key, "key");
    if (input == 0) {
      // An order opens its correlation, so a check that never answers
      // still ends in a timeout. Later states need nothing from us.
      auto o = decode_or_throw<order_serde>(r.value, "value");
      if (o.state == created && !entries_.get(ctx, id))
        entries_.put(ctx, id, open(id, now, ctx));
      return;
    }
    auto v = decode_or_throw<validation_serde>(r.value, "value");
    auto e = entries_.get(ctx, id);
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

  void on_punctuate(weft::context& ctx) override { expire(ctx, ctx.wall_time()); }

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
    weft::detail::throw_if_error(
        ctx.kv_store(deadlines_)
            .put(weft::detail::sortable_time(e.deadline) + id, std::string_view{}));
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

  /// Ends every entry due at `now`: undecided ones FAIL with a timeout.
  void expire(weft::context& ctx, weft::timestamp_ms now) {
    auto& deadlines = ctx.kv_store(deadlines_);
    std::vector<std::string> due;
    weft::detail::throw_if_error(
        deadlines.range({}, weft::detail::sortable_time(now + 1),
                        [&](std::string_view k, std::string_view) {
                          due.emplace_back(k);
                          return true;
                        }));
    for (auto& d : due) {
      auto id = d.substr(8);
      if (auto e = entries_.get(ctx, id)) {
        if (!e->decided) decide(ctx, id, failed, "validation timeout", now);
        entries_.remove(ctx, id);
      }
      weft::detail::throw_if_error(deadlines.remove(d));
    }
  }

  weft::timestamp_ms timeout_;
  weft::kv_handle<str, weft::json_serde<validation_entry>> entries_{
      "validation-gate-store"};
  std::string deadlines_ = "validation-gate-deadlines";
  weft::output<str, command_serde> out_;
};

} // namespace orders
