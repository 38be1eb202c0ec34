#pragma once
// What the REST API (rest_api.hpp) accepts from a client: request bodies and
// path or query parameters turned into the order system's records, or a
// bad_request that names the field and what is wrong with it (the API
// answers it with 400).
//
// Pure functions of their input, with no I/O: the REST handlers call them,
// and so does the fuzz target tests/fuzz/rest_request.fuzz.cpp. Each one
// throws bad_request and nothing else for any input, however malformed.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <weft/http/bad_request.hpp>

#include "model.hpp"

namespace orders::rest {

/// A request that is not what the contract says; `reason` names the field.
using bad_request = weft::http::bad_request;

/// The longest id (order, payment) the API takes: ids travel in URL paths.
inline constexpr size_t max_id_length = 200;
/// Bounds on the other text fields, in bytes: an order stays a few hundred
/// bytes, so views that hold many of them stay far below what Kafka takes
/// (customer_orders.hpp).
inline constexpr size_t max_text_length = 200; ///< product, names, email, ids
inline constexpr size_t max_currency_length = 16;
inline constexpr size_t max_address_length = 1000;

/// Checks an id that will travel in URL paths: 1 to max_id_length letters,
/// digits and - _ . : ~ (`name` is the field, for the reason).
void check_id(const std::string& id, const char* name);

/// POST /v1/orders: an order as placed (state absent or "CREATED").
order parse_order(std::string_view body);

/// POST /v1/payments.
payment parse_payment(std::string_view body);

/// POST /v1/stock: {product, delta}.
stock_adjustment parse_stock_adjustment(std::string_view body);

/// PUT /v1/customers/{id}: the body's id must be `path_id`.
customer parse_customer(std::string_view body, int64_t path_id);

/// A customer id in a path: decimal int64.
int64_t parse_customer_id(std::string_view text);

/// ?timeout=ms: nullopt (absent) gives `fallback`; otherwise 0..300000.
std::chrono::milliseconds parse_timeout(const std::optional<std::string>& value,
                                        int64_t fallback);

} // namespace orders::rest
