#pragma once
// The order details check. Pattern: stateless, data-enabled (enricher): each
// new order is checked against the customers GlobalKTable, which every node
// holds whole, so the check needs no re-partitioning and no remote call.
//
// FAIL: quantity < 1, price < 0, empty product, unknown customer (or one
// whose record cannot be read); else PASS.

#include <weft/services/enricher.hpp>

#include "customer_lookup.hpp"
#include "serdes.hpp"

namespace orders {

class order_details_service
  : public weft::enricher<str, order_serde, str, customer_serde> {
 public:
  explicit order_details_service(const topic_names& t)
    : enricher("order-details", t.orders, t.customers), customers_(t.customers) {
    treat_nulls_as_bad();
    out_ = to<str, validation_serde>(t.validations);
  }

  /// The row is read in enrich(): a lookup here would make an unreadable
  /// customer row a bad record of the order (customer_lookup.hpp).
  std::optional<std::string> lookup_key(const std::string&, const order&) override {
    return std::nullopt;
  }

  void enrich(const std::string& id, const order& o, const std::optional<customer>&,
              weft::context& ctx) override {
    if (o.state != created) return;
    std::string reason = invalid_order_reason(o);
    if (reason.empty()) {
      auto row = read_customer(ctx, customers_, std::to_string(o.customer_id));
      if (!row.found)
        reason = row.unreadable ? unreadable_customer_reason(o.customer_id)
                                : unknown_customer_reason(o.customer_id);
    }
    out_.emit(ctx, id,
              validation{id, order_details_check, reason.empty() ? pass : fail, reason});
  }

 private:
  std::string customers_;
  weft::output<str, validation_serde> out_;
};

} // namespace orders
