#pragma once
// The order system's facts: the records of its topics, with the JSON shapes
// of the contract (README, "The order system"), and the rules every service
// shares (legal order transitions, fraud limits, the order details check).
//
// Topics are keyed by UTF-8 strings and carry JSON values. Field names here
// are the contract's and must not change: other programs read and write them.

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace orders {

// -- order states -------------------------------------------------------------

inline constexpr const char* created = "CREATED";
inline constexpr const char* validated = "VALIDATED";
inline constexpr const char* failed = "FAILED";
inline constexpr const char* paid = "PAID";
inline constexpr const char* shipped = "SHIPPED";
inline constexpr const char* cancelled = "CANCELLED";

/// Whether an order may go from state `from` to state `to`. The orders
/// service applies nothing else, so `orders` only ever shows these steps:
/// CREATED -> VALIDATED | FAILED | CANCELLED, VALIDATED -> PAID | CANCELLED,
/// PAID -> SHIPPED | CANCELLED. FAILED, SHIPPED and CANCELLED are final.
bool legal_transition(const std::string& from, const std::string& to);

/// FAILED, SHIPPED or CANCELLED: nothing happens to the order any more.
bool final_state(const std::string& state);

// -- records ------------------------------------------------------------------

/// A record of `orders` (key: id). `reason` is written for FAILED only.
struct order {
  std::string id;
  int64_t customer_id = 0;
  std::string state = created;
  std::string product;
  int64_t quantity = 0;
  double price = 0;
  std::string currency;
  std::string reason;

  /// quantity x price: what a payment must cover, and what fraud adds up.
  double total() const { return static_cast<double>(quantity) * price; }
  /// Same order as placed (id, customer, product, quantity, price, currency);
  /// state and reason are not compared.
  bool same_request(const order& o) const;
};
void to_json(nlohmann::json& j, const order& o);
void from_json(const nlohmann::json& j, order& o);

/// A record of `order-validations` (key: order id).
struct validation {
  std::string order_id;
  std::string check_type; ///< INVENTORY_CHECK, FRAUD_CHECK, ORDER_DETAILS_CHECK
  std::string result;     ///< PASS or FAIL
  std::string reason;
};
void to_json(nlohmann::json& j, const validation& v);
void from_json(const nlohmann::json& j, validation& v);

inline constexpr const char* inventory_check = "INVENTORY_CHECK";
inline constexpr const char* fraud_check = "FRAUD_CHECK";
inline constexpr const char* order_details_check = "ORDER_DETAILS_CHECK";
inline constexpr const char* pass = "PASS";
inline constexpr const char* fail = "FAIL";

/// A record of `payments` (key: payment id).
struct payment {
  std::string id;
  std::string order_id;
  std::string currency;
  double amount = 0;
};
void to_json(nlohmann::json& j, const payment& p);
void from_json(const nlohmann::json& j, payment& p);

/// A record of `customers` (key: the id as decimal text).
struct customer {
  int64_t id = 0;
  std::string first_name;
  std::string last_name;
  std::string email;
  std::string address;
  std::string level; ///< bronze, silver, gold, platinum
};
void to_json(nlohmann::json& j, const customer& c);
void from_json(const nlohmann::json& j, customer& c);

/// The fraud limit of a customer level (session total >= limit fails), or
/// nullopt for a level that is not one of the four.
std::optional<double> fraud_limit(const std::string& level);

/// A record of `stock-adjustments` (key: product). On-hand stock is the sum
/// of a product's deltas (minus what shipped, see inventory.hpp).
struct stock_adjustment {
  std::string product;
  int64_t delta = 0;
};
void to_json(nlohmann::json& j, const stock_adjustment& s);
void from_json(const nlohmann::json& j, stock_adjustment& s);

/// A record of `notifications` (key: order id).
struct notification {
  std::string order_id;
  std::string email;
  std::string text;
};
void to_json(nlohmann::json& j, const notification& n);
void from_json(const nlohmann::json& j, notification& n);

/// A record of `order-commands` (key: order id), the orders service's only
/// input: what the REST API asks for (CREATE, CANCEL) and what the gates and
/// shipping decide (VALIDATED, FAILED, PAID, SHIPPED). The orders service
/// turns each into a legal transition or ignores it.
struct order_command {
  std::string type;
  std::optional<order> placed;      ///< CREATE: the order as posted
  std::string reason;               ///< FAILED: why
  std::optional<payment> paid_with; ///< PAID: the payment that covered it
};
void to_json(nlohmann::json& j, const order_command& c);
void from_json(const nlohmann::json& j, order_command& c);

inline constexpr const char* cmd_create = "CREATE";
inline constexpr const char* cmd_cancel = "CANCEL";

/// A record of `payment-reports` (key: order id): a payment that did not pay
/// its order (short, wrong currency, order already paid or closed).
struct payment_report {
  std::string payment_id;
  std::string order_id;
  std::string reason;
};
void to_json(nlohmann::json& j, const payment_report& r);
void from_json(const nlohmann::json& j, payment_report& r);

/// Why an order fails the order details check, or "" when it passes the
/// checks that need no lookup (quantity >= 1, price >= 0, a product). The
/// inventory and fraud checks give the same reason for such orders, so the
/// validation gate reports the same first FAIL whichever check answers first.
std::string invalid_order_reason(const order& o);

/// The reason for an order of an unknown customer (shared for the same cause).
std::string unknown_customer_reason(int64_t customer_id);

/// The reason for an order whose customer's record cannot be read (shared).
std::string unreadable_customer_reason(int64_t customer_id);

// -- topic names ------------------------------------------------------------------

/// The topics of one order system. Names are the contract's, behind an
/// optional prefix so that tests can run systems side by side on one broker.
struct topic_names {
  std::string orders = "orders";
  std::string validations = "order-validations";
  std::string payments = "payments";
  std::string customers = "customers";
  std::string stock = "stock-adjustments";
  std::string notifications = "notifications";
  std::string commands = "order-commands";
  std::string payment_reports = "payment-reports";

  static topic_names with_prefix(const std::string& prefix);
  /// Every topic, for creating them.
  std::vector<std::string> all() const;
};

} // namespace orders
