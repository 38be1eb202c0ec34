#pragma once
// Shipping. Pattern: stateful with a timer: a PAID order gets a durable
// wall-clock timer (weft/services/timers.hpp) shipping.delay.ms later; when
// it fires a SHIPPED command goes to the orders service. A SHIPPED or
// CANCELLED order cancels its timer. "shipping-store" (order id -> due
// time) remembers that an order was scheduled, so a repeated PAID does not
// schedule it twice; the timers live in "shipping-timers", so a restart or
// a failover ships what was due, once under exactly_once.

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
    ship_ = add_timer<str>("ship", weft::timer_clock::wall_clock);
    out_ = to<str, command_serde>(t.commands);
  }

  void on_record(const weft::record_view& r, weft::context& ctx) override {
    if (!r.key) return drop_null_key(r);
    if (!r.value) return drop_null_value(r);
    (void)decode_or_throw<str>(r.key, "key"); // UTF-8, or a bad record
    auto o = decode_or_throw<order_serde>(r.value, "value");
    if (o.state == shipped || o.state == cancelled) {
      scheduled_.remove(ctx, o.id); // done with it
      ship_.cancel(ctx, o.id);
      return;
    }
    if (o.state != paid || scheduled_.get(ctx, o.id)) return;
    const auto due = ctx.wall_time() + delay_;
    scheduled_.put(ctx, o.id, due);
    ship_.set(ctx, o.id, due);
  }

  void on_timer(const weft::timer& t, weft::context& ctx) override {
    if (!ship_.is(t)) return;
    order_command c;
    c.type = shipped;
    out_.emit(ctx, ship_.key_of(t), c); // stamped with the wall time it fired
  }

 private:
  weft::timestamp_ms delay_;
  weft::kv_handle<str, weft::int64_serde> scheduled_{"shipping-store"};
  weft::timer_handle<str> ship_;
  weft::output<str, command_serde> out_;
};

} // namespace orders
