#include "model.hpp"

#include <vector>

#include <weft/serde.hpp>

namespace orders {

bool legal_transition(const std::string& from, const std::string& to) {
  if (from == created) return to == validated || to == failed || to == cancelled;
  if (from == validated) return to == paid || to == cancelled;
  if (from == paid) return to == shipped || to == cancelled;
  return false;
}

bool final_state(const std::string& state) {
  return state == failed || state == shipped || state == cancelled;
}

bool order::same_request(const order& o) const {
  return id == o.id && customer_id == o.customer_id && product == o.product &&
         quantity == o.quantity && price == o.price && currency == o.currency;
}

void to_json(nlohmann::json& j, const order& o) {
  j = nlohmann::json{{"id", o.id},
                     {"customerId", o.customer_id},
                     {"state", o.state},
                     {"product", o.product},
                     {"quantity", o.quantity},
                     {"price", o.price},
                     {"currency", o.currency}};
  if (o.state == failed || !o.reason.empty()) j["reason"] = o.reason;
}

void from_json(const nlohmann::json& j, order& o) {
  j.at("id").get_to(o.id);
  weft::json_get_integer(j, "customerId", o.customer_id);
  o.state = j.value("state", std::string{created});
  j.at("product").get_to(o.product);
  weft::json_get_integer(j, "quantity", o.quantity);
  j.at("price").get_to(o.price);
  j.at("currency").get_to(o.currency);
  o.reason = j.value("reason", std::string{});
}

void to_json(nlohmann::json& j, const validation& v) {
  j = nlohmann::json{{"orderId", v.order_id},
                     {"checkType", v.check_type},
                     {"result", v.result},
                     {"reason", v.reason}};
}

void from_json(const nlohmann::json& j, validation& v) {
  j.at("orderId").get_to(v.order_id);
  j.at("checkType").get_to(v.check_type);
  j.at("result").get_to(v.result);
  v.reason = j.value("reason", std::string{});
}

void to_json(nlohmann::json& j, const payment& p) {
  j = nlohmann::json{{"id", p.id},
                     {"orderId", p.order_id},
                     {"currency", p.currency},
                     {"amount", p.amount}};
}

void from_json(const nlohmann::json& j, payment& p) {
  j.at("id").get_to(p.id);
  j.at("orderId").get_to(p.order_id);
  j.at("currency").get_to(p.currency);
  j.at("amount").get_to(p.amount);
}

void to_json(nlohmann::json& j, const customer& c) {
  j = nlohmann::json{
      {"id", c.id},       {"firstName", c.first_name}, {"lastName", c.last_name},
      {"email", c.email}, {"address", c.address},      {"level", c.level}};
}

void from_json(const nlohmann::json& j, customer& c) {
  weft::json_get_integer(j, "id", c.id);
  c.first_name = j.value("firstName", std::string{});
  c.last_name = j.value("lastName", std::string{});
  j.at("email").get_to(c.email);
  c.address = j.value("address", std::string{});
  j.at("level").get_to(c.level);
}

std::optional<double> fraud_limit(const std::string& level) {
  if (level == "bronze") return 2000.0;
  if (level == "silver") return 5000.0;
  if (level == "gold") return 10000.0;
  if (level == "platinum") return 20000.0;
  return std::nullopt;
}

void to_json(nlohmann::json& j, const stock_adjustment& s) {
  j = nlohmann::json{{"product", s.product}, {"delta", s.delta}};
}

void from_json(const nlohmann::json& j, stock_adjustment& s) {
  j.at("product").get_to(s.product);
  weft::json_get_integer(j, "delta", s.delta);
}

void to_json(nlohmann::json& j, const notification& n) {
  j = nlohmann::json{{"orderId", n.order_id}, {"email", n.email}, {"text", n.text}};
}

void from_json(const nlohmann::json& j, notification& n) {
  j.at("orderId").get_to(n.order_id);
  j.at("email").get_to(n.email);
  j.at("text").get_to(n.text);
}

void to_json(nlohmann::json& j, const order_command& c) {
  j = nlohmann::json{{"type", c.type}};
  if (c.placed) j["order"] = *c.placed;
  if (!c.reason.empty()) j["reason"] = c.reason;
  if (c.paid_with) j["payment"] = *c.paid_with;
}

void from_json(const nlohmann::json& j, order_command& c) {
  j.at("type").get_to(c.type);
  if (j.contains("order")) c.placed = j.at("order").get<order>();
  c.reason = j.value("reason", std::string{});
  if (j.contains("payment")) c.paid_with = j.at("payment").get<payment>();
}

void to_json(nlohmann::json& j, const payment_report& r) {
  j = nlohmann::json{
      {"paymentId", r.payment_id}, {"orderId", r.order_id}, {"reason", r.reason}};
}

void from_json(const nlohmann::json& j, payment_report& r) {
  j.at("paymentId").get_to(r.payment_id);
  j.at("orderId").get_to(r.order_id);
  j.at("reason").get_to(r.reason);
}

std::string invalid_order_reason(const order& o) {
  if (o.quantity < 1) return "quantity must be at least 1";
  if (o.price < 0) return "price must not be negative";
  if (o.product.empty()) return "product must not be empty";
  return {};
}

std::string unknown_customer_reason(int64_t customer_id) {
  return "unknown customer " + std::to_string(customer_id);
}

std::string unreadable_customer_reason(int64_t customer_id) {
  return "the record of customer " + std::to_string(customer_id) + " cannot be read";
}

topic_names topic_names::with_prefix(const std::string& prefix) {
  topic_names t;
  for (auto* s : {&t.orders, &t.validations, &t.payments, &t.customers, &t.stock,
                  &t.notifications, &t.commands, &t.payment_reports})
    *s = prefix + *s;
  return t;
}

std::vector<std::string> topic_names::all() const {
  return {orders, validations,   payments, customers,
          stock,  notifications, commands, payment_reports};
}

} // namespace orders
