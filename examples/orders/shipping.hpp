#pragma once
// Shipping. Pattern: stateful with a timer: a PAID order is scheduled for
// shipping.delay.ms later (wall clock) and then a SHIPPED command goes to
// the orders service, which applies it unless the order was cancelled in
// the meantime. The schedule is state ("shipping-schedule": due time +
// order id; "shipping-store": order id -> due time, so a repeated PAID does
// not schedule twice), so a restart ships what was due.

#include <algorithm>

#include <weft/services/operator_base.hpp>
#include <weft/services/store_handle.hpp>

#include "serdes.hpp"

namespace orders {

class shipping_service : public weft::operator_base {
 public:
  shipping_service(const topic_names& t, weft::timestamp_ms delay)
    : operator_base("shipping"), delay_(delay) {
    describe_as(weft::service_pattern::stateful, "timer: SHIPPED after a delay");
    treat_nulls_as_bad();
    add_input_ref(t.orders);
    add_store({scheduled_.name(), weft::store_decl::kind::kv});
    add_store({schedule_, weft::store_decl::kind::kv});
    out_ = to<str, command_serde>(t.commands);
    set_punctuate_interval(std::clamp<weft::timestamp_ms>(delay / 4, 20, 1000));
  }

  void on_record(const weft::record_view& r, weft::context& ctx) override {
    if (!r.key) return drop_null_key(r);
    if (!r.value) return drop_null_value(r);
    (void)decode_or_throw<str>(r.key, "key"); // UTF-8, or a bad record
    auto o = decode_or_throw<order_serde>(r.value, "value");
    const auto now = ctx.wall_time();
    ship_due(ctx, now);
    if (o.state == shipped || o.state == cancelled) {
      // Done with it (a cancel leaves the due entry, which then sends a
      // SHIPPED command the orders service ignores: harmless, and cheaper
      // than finding the entry).
      scheduled_.remove(ctx, o.id);
      return;
    }
    if (o.state != paid || scheduled_.get(ctx, o.id)) return;
    const auto due = now + delay_;
    scheduled_.put(ctx, o.id, due);
    weft::detail::throw_if_error(ctx.kv_store(schedule_).put(
        weft::detail::sortable_time(due) + o.id, std::string_view{}));
    if (delay_ == 0) ship_due(ctx, now);
  }

  void on_punctuate(weft::context& ctx) override { ship_due(ctx, ctx.wall_time()); }

 private:
  void ship_due(weft::context& ctx, weft::timestamp_ms now) {
    auto& schedule = ctx.kv_store(schedule_);
    std::vector<std::string> due;
    weft::detail::throw_if_error(
        schedule.range({}, weft::detail::sortable_time(now + 1),
                       [&](std::string_view k, std::string_view) {
                         due.emplace_back(k);
                         return true;
                       }));
    for (auto& d : due) {
      order_command c;
      c.type = shipped;
      emit_at(ctx, out_, d.substr(8), c, now);
      weft::detail::throw_if_error(schedule.remove(d));
    }
  }

  weft::timestamp_ms delay_;
  weft::kv_handle<str, weft::int64_serde> scheduled_{"shipping-store"};
  std::string schedule_ = "shipping-schedule";
  weft::output<str, command_serde> out_;
};

} // namespace orders
