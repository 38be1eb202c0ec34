#pragma once
// The inventory check. Pattern: stateful service, re-keyed by product: the
// orders it sees come through the repartition "orders-by-product", beside
// `stock-adjustments` (keyed by product too), so one task owns all of a
// product's stock and reservations and needs no locks or remote reads.
//
// Per product ("inventory-store", product -> {product, onHand, reserved,
// available}): onHand is the sum of the product's deltas minus what shipped;
// reserved the sum of open reservations; available = onHand - reserved.
// Per order ("inventory-reservations", order id -> reservation): what the
// check answered and whether the reservation is held, released or shipped.
//
// - CREATED: quantity <= available reserves it and PASSes; otherwise FAIL
//   "insufficient stock"; no stock record FAILs too. Once per order: an order
//   seen again gets its first answer again (a repeat is harmless to the
//   validation gate and heals a lost answer after a crash), never a second
//   reservation.
// - FAILED or CANCELLED: the reservation is released (once).
// - SHIPPED: the reserved quantity leaves on-hand stock (once). Doing both
//   halves in one step keeps available stock exact; were shipping written
//   back as a negative adjustment, stock would look available between the
//   release and the adjustment.

#include <weft/services/operator_base.hpp>
#include <weft/services/store_handle.hpp>

#include "serdes.hpp"

namespace orders {

/// A product's stock, as stored and as GET /v1/stock/{product} returns it.
struct stock_level {
  std::string product;
  int64_t on_hand = 0;
  int64_t reserved = 0;
  int64_t available() const { return on_hand - reserved; }
};
void to_json(nlohmann::json& j, const stock_level& s);
void from_json(const nlohmann::json& j, stock_level& s);

/// What the inventory did for one order.
struct reservation {
  std::string product;
  int64_t quantity = 0;
  std::string status; ///< held, released, shipped, rejected
  std::string result; ///< the check's answer: PASS or FAIL
  std::string reason;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(reservation, product, quantity, status, result, reason)

class inventory_service : public weft::operator_base {
 public:
  static constexpr const char* store_name = "inventory-store";
  static constexpr const char* repartition_name = "orders-by-product";

  explicit inventory_service(const topic_names& t) : operator_base("inventory") {
    describe_as(weft::service_pattern::stateful, "stock reservations by product");
    treat_nulls_as_bad();
    add_input_ref(t.stock);
    add_input_ref(weft::repartitioned(repartition_name));
    add_store({stock_.name(), weft::store_decl::kind::kv});
    add_store({reservations_.name(), weft::store_decl::kind::kv});
    out_ = to<str, validation_serde>(t.validations);
  }

  void on_record(const weft::record_view& r, weft::context& ctx) override {
    const int input = input_index(r, ctx);
    if (input < 0) return;
    if (!r.key) return drop_null_key(r);
    if (!r.value) return drop_null_value(r);
    // Keys are UTF-8 on every topic: one that is not marks a bad record,
    // even where the value alone says what to do.
    auto key = decode_or_throw<str>(r.key, "key");
    if (input == 0)
      adjust(key, decode_or_throw<stock_serde>(r.value, "value"), ctx);
    else
      on_order(decode_or_throw<order_serde>(r.value, "value"), ctx);
  }

 private:
  void adjust(const std::string& product, const stock_adjustment& a, weft::context& ctx) {
    auto level = stock_.get(ctx, product).value_or(stock_level{product, 0, 0});
    level.on_hand += a.delta;
    stock_.put(ctx, product, level);
  }

  void on_order(const order& o, weft::context& ctx) {
    auto res = reservations_.get(ctx, o.id);
    if (o.state == created) {
      if (!res) res = reserve(o, ctx);
      out_.emit(ctx, o.id, validation{o.id, inventory_check, res->result, res->reason});
      return;
    }
    const bool release = o.state == failed || o.state == cancelled;
    const bool ship = o.state == shipped;
    if (!release && !ship) return;
    if (!res) {
      // Closed before we saw it created: remember, so it never reserves.
      reservations_.put(ctx, o.id, reservation{o.product, 0, "released", fail, "closed"});
      return;
    }
    if (res->status != "held") return;
    auto level = stock_.get(ctx, res->product).value_or(stock_level{res->product, 0, 0});
    level.reserved -= res->quantity;
    if (ship) level.on_hand -= res->quantity;
    stock_.put(ctx, res->product, level);
    res->status = ship ? "shipped" : "released";
    reservations_.put(ctx, o.id, *res);
  }

  reservation reserve(const order& o, weft::context& ctx) {
    reservation res{o.product, o.quantity, "rejected", fail, invalid_order_reason(o)};
    if (res.reason.empty()) {
      auto level = stock_.get(ctx, o.product);
      if (!level) {
        res.reason = "no stock record for product " + o.product;
      } else if (o.quantity > level->available()) {
        res.reason = "insufficient stock";
      } else {
        level->reserved += o.quantity;
        stock_.put(ctx, o.product, *level);
        res.status = "held";
        res.result = pass;
      }
    }
    reservations_.put(ctx, o.id, res);
    return res;
  }

  weft::kv_handle<str, weft::json_serde<stock_level>> stock_{store_name};
  weft::kv_handle<str, weft::json_serde<reservation>> reservations_{
      "inventory-reservations"};
  weft::output<str, validation_serde> out_;
};

inline void to_json(nlohmann::json& j, const stock_level& s) {
  j = nlohmann::json{{"product", s.product},
                     {"onHand", s.on_hand},
                     {"reserved", s.reserved},
                     {"available", s.available()}};
}

inline void from_json(const nlohmann::json& j, stock_level& s) {
  j.at("product").get_to(s.product);
  j.at("onHand").get_to(s.on_hand);
  j.at("reserved").get_to(s.reserved);
}

} // namespace orders
