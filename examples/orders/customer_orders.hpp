#pragma once
// The customer-orders view. Pattern: stateful processor building a view
// inside its own bounded context: orders re-keyed by customer (the
// repartition "orders-by-customer") fold into customer id -> {order id ->
// latest order}, in "customer-orders-store", which GET
// /v1/customers/{id}/orders reads.

#include <map>

#include <weft/services/stateful_processor.hpp>

#include "serdes.hpp"

namespace orders {

struct customer_orders {
  std::map<std::string, order> by_id;
};
inline void to_json(nlohmann::json& j, const customer_orders& c) {
  j = c.by_id;
}
inline void from_json(const nlohmann::json& j, customer_orders& c) {
  j.get_to(c.by_id);
}

class customer_orders_view
  : public weft::stateful_processor<str, order_serde, weft::json_serde<customer_orders>> {
 public:
  static constexpr const char* store_name = "customer-orders-store";

  customer_orders_view()
    : stateful_processor("customer-orders", weft::repartitioned("orders-by-customer")) {
    treat_nulls_as_bad();
  }

  void process(const std::string&, const order& o, std::optional<customer_orders>& view,
               weft::context&) override {
    if (!view) view = customer_orders{};
    view->by_id[o.id] = o;
  }
};

} // namespace orders
