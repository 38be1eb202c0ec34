#pragma once
// The payment gate. Pattern: gate: "when a VALIDATED order and a payment
// covering it, then PAID". Inputs: `orders` and the repartition
// "payments-by-order" (payments re-keyed by order id), co-partitioned, so
// one task sees an order and all its payments.
//
// Per order ("payment-gate-store"): the VALIDATED order once seen, the
// payments so far (by payment id: a repeated id is ignored), how many of
// them were judged, and whether the order is paid or closed. A payment
// that arrives first waits for the order's validation. Each payment is
// judged once, in arrival order, against a VALIDATED order: the first in the
// order's currency with amount >= quantity x price makes it PAID (a PAID
// command with that payment); others are reported to `payment-reports`
// (short, wrong currency, order already paid, order failed or cancelled) and
// leave the order as it is.

#include <vector>

#include <weft/log.hpp>
#include <weft/services/operator_base.hpp>
#include <weft/services/store_handle.hpp>

#include "serdes.hpp"

namespace orders {

struct payment_entry {
  std::optional<order> validated_order;
  std::vector<payment> payments;
  size_t judged = 0;
  bool paid = false;
  std::string closed; ///< FAILED or CANCELLED once the order ended unpaid
};
void to_json(nlohmann::json& j, const payment_entry& e);
void from_json(const nlohmann::json& j, payment_entry& e);

class payment_gate : public weft::operator_base {
 public:
  static constexpr const char* repartition_name = "payments-by-order";

  explicit payment_gate(const topic_names& t) : operator_base("payment-gate") {
    describe_as(weft::service_pattern::gate, "order and payment, then PAID");
    treat_nulls_as_bad();
    add_input_ref(t.orders);
    add_input_ref(weft::repartitioned(repartition_name));
    add_store({entries_.name(), weft::store_decl::kind::kv});
    commands_ = to<str, command_serde>(t.commands);
    reports_ = to<str, report_serde>(t.payment_reports);
  }

  void on_record(const weft::record_view& r, weft::context& ctx) override {
    const int input = input_index(r, ctx);
    if (input < 0) return;
    if (!r.key) return drop_null_key(r);
    if (!r.value) return drop_null_value(r);
    const auto id = decode_or_throw<str>(r.key, "key");
    auto e = entries_.get(ctx, id);
    if (input == 0) {
      auto o = decode_or_throw<order_serde>(r.value, "value");
      if (o.state != validated && o.state != paid && o.state != shipped &&
          o.state != failed && o.state != cancelled)
        return;
      if (!e) e = payment_entry{};
      if (o.state == validated) e->validated_order = o;
      // Kept after shipping too, so a late payment is reported, not parked.
      if (o.state == paid || o.state == shipped) e->paid = true;
      if (o.state == failed || o.state == cancelled) e->closed = o.state;
    } else {
      auto p = decode_or_throw<payment_serde>(r.value, "value");
      if (!e) e = payment_entry{};
      for (auto& q : e->payments)
        if (q.id == p.id) return; // a duplicate payment id changes nothing
      e->payments.push_back(p);
    }
    judge(ctx, id, *e);
    entries_.put(ctx, id, *e);
  }

 private:
  void judge(weft::context& ctx, const std::string& id, payment_entry& e) {
    while (e.judged < e.payments.size()) {
      const auto& p = e.payments[e.judged];
      std::string problem;
      if (e.paid) {
        problem = "order already paid";
      } else if (!e.closed.empty()) {
        problem = "order is " + e.closed;
      } else if (!e.validated_order) {
        return; // waits for the order's validation
      } else if (p.currency != e.validated_order->currency) {
        problem = "currency " + p.currency + " does not match the order's " +
                  e.validated_order->currency;
      } else if (p.amount + 1e-9 < e.validated_order->total()) {
        problem = "short payment: " + std::to_string(p.amount) + " < " +
                  std::to_string(e.validated_order->total());
      }
      ++e.judged;
      if (problem.empty()) {
        order_command c;
        c.type = paid;
        c.paid_with = p;
        commands_.emit(ctx, id, c);
        e.paid = true;
      } else {
        weft::log::info("payment-gate: payment {} of order {} not applied: {}", p.id, id,
                        problem);
        reports_.emit(ctx, id, payment_report{p.id, id, problem});
      }
    }
  }

  weft::kv_handle<str, weft::json_serde<payment_entry>> entries_{"payment-gate-store"};
  weft::output<str, command_serde> commands_;
  weft::output<str, report_serde> reports_;
};

inline void to_json(nlohmann::json& j, const payment_entry& e) {
  j = nlohmann::json{{"payments", e.payments},
                     {"judged", e.judged},
                     {"paid", e.paid},
                     {"closed", e.closed}};
  if (e.validated_order) j["order"] = *e.validated_order;
}

inline void from_json(const nlohmann::json& j, payment_entry& e) {
  if (j.contains("order")) e.validated_order = j.at("order").get<order>();
  j.at("payments").get_to(e.payments);
  j.at("judged").get_to(e.judged);
  j.at("paid").get_to(e.paid);
  j.at("closed").get_to(e.closed);
}

} // namespace orders
