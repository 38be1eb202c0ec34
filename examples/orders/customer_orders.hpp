#pragma once
// The customer-orders view. Pattern: stateful processor building a view
// inside its own bounded context: orders re-keyed by customer (the
// repartition "orders-by-customer") fold into customer id -> {order id ->
// latest order}, in "customer-orders-store", which GET
// /v1/customers/{id}/orders reads.
//
// A customer's view is one store value, and one changelog record: it must
// stay below what Kafka takes (1 MB), or a client placing orders for one
// customer long enough would stop the service. So it holds at most
// max_view_bytes of orders: past that, closed orders (SHIPPED, FAILED,
// CANCELLED) leave it, smallest id first, and an order that still does not
// fit is left out (and logged); every open order fits unless one customer
// has thousands open at once.

#include <map>

#include <weft/log.hpp>
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

  /// Bound on a view's JSON size by default (see the top of this file).
  static constexpr size_t max_view_bytes = 768 * 1024;

  explicit customer_orders_view(size_t max_bytes = max_view_bytes)
    : stateful_processor("customer-orders", weft::repartitioned("orders-by-customer")),
      max_bytes_(max_bytes) {
    treat_nulls_as_bad();
  }

  void process(const std::string& customer, const order& o,
               std::optional<customer_orders>& view, weft::context&) override {
    if (!view) view = customer_orders{};
    view->by_id[o.id] = o;
    // Orders are a few hundred bytes: only a long view can be too large.
    if (view->by_id.size() * 256 < max_bytes_) return;
    size_t bytes = 2;
    for (auto& [id, each] : view->by_id)
      bytes += id.size() + nlohmann::json(each).dump().size() + 4;
    for (auto i = view->by_id.begin(); bytes > max_bytes_ && i != view->by_id.end();) {
      if (i->first != o.id && final_state(i->second.state)) {
        bytes -= i->first.size() + nlohmann::json(i->second).dump().size() + 4;
        i = view->by_id.erase(i);
      } else {
        ++i;
      }
    }
    if (bytes > max_bytes_) {
      view->by_id.erase(o.id);
      weft::log::warn(
          "customer-orders: the view of customer {} is full ({} open orders); "
          "order {} is not listed",
          customer.substr(0, 64), view->by_id.size(), o.id.substr(0, 64));
    }
  }

 private:
  size_t max_bytes_;
};

} // namespace orders
