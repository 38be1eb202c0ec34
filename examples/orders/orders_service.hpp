#pragma once
// The orders service: the owner of order state and the only writer of
// `orders`. Pattern: stateful processor keyed by order id.
//
// Its input is `order-commands`: CREATE and CANCEL from the REST API,
// VALIDATED / FAILED from the validation gate, PAID from the payment gate,
// SHIPPED from shipping. Each command becomes a legal transition of the
// order (legal_transition in model.hpp), written to `orders` and kept in the
// store "orders-store" (order id -> order JSON, the shape of `orders`), which
// the REST API reads; anything else is ignored. So every service may ask for
// anything at any time (a timeout racing a late PASS, a cancel racing
// shipping) and the order still moves along the contract's state machine.
//
// At-least-once: a crash may leave a state change stored (its changelog
// acknowledged) while the record it wrote to `orders` was lost. A command
// that repeats the order's current state therefore writes the order again,
// so replaying it heals the gap; readers of `orders` treat a repeated state
// as no change. Under exactly_once, state and output commit together and
// repeats write nothing.

#include <string>

#include <weft/log.hpp>
#include <weft/services/stateful_processor.hpp>

#include "serdes.hpp"

namespace orders {

class orders_service : public weft::stateful_processor<str, command_serde, order_serde> {
 public:
  static constexpr const char* store_name = "orders-store";

  orders_service(const topic_names& t, bool rewrite_repeats)
    : stateful_processor("orders", t.commands), rewrite_repeats_(rewrite_repeats) {
    treat_nulls_as_bad();
    out_ = to<str, order_serde>(t.orders);
  }

  void process(const std::string& id, const order_command& cmd,
               std::optional<order>& state, weft::context& ctx) override {
    if (cmd.type == cmd_create) {
      if (!cmd.placed)
        throw weft::weft_error{
            weft::status{weft::errc::bad_record, "CREATE without an order"}};
      order o = *cmd.placed;
      o.id = id;
      o.state = created;
      o.reason.clear();
      if (!state) {
        state = o;
        out_.emit(ctx, id, o);
      } else if (state->same_request(o) && state->state == created && rewrite_repeats_) {
        out_.emit(ctx, id, *state);
      } else if (!state->same_request(o)) {
        weft::log::debug("orders: ignored CREATE of {} with a different body", id);
      }
      return;
    }
    if (!state) {
      weft::log::debug("orders: ignored {} for unknown order {}", cmd.type, id);
      return;
    }
    const std::string target = cmd.type == cmd_cancel ? std::string{cancelled} : cmd.type;
    if (state->state == target) {
      if (rewrite_repeats_) out_.emit(ctx, id, *state);
      return;
    }
    if (!legal_transition(state->state, target)) {
      weft::log::debug("orders: ignored {} of order {} in state {}", cmd.type, id,
                       state->state);
      return;
    }
    state->state = target;
    state->reason = target == failed ? cmd.reason : std::string{};
    out_.emit(ctx, id, *state);
  }

 private:
  bool rewrite_repeats_;
  weft::output<str, order_serde> out_;
};

} // namespace orders
