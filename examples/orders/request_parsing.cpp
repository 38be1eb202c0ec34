#include "request_parsing.hpp"

#include <charconv>

#include <nlohmann/json.hpp>

namespace orders::rest {

namespace {

using json = nlohmann::json;

const json& field(const json& body, const char* name) {
  auto i = body.find(name);
  if (i == body.end() || i->is_null())
    throw bad_request{std::string{"missing field '"} + name + "'"};
  return *i;
}

std::string string_field(const json& body, const char* name, bool non_empty = true,
                         size_t max_length = max_text_length) {
  auto& v = field(body, name);
  if (!v.is_string())
    throw bad_request{std::string{"field '"} + name + "' must be a string"};
  auto s = v.get<std::string>();
  if (non_empty && s.empty())
    throw bad_request{std::string{"field '"} + name + "' must not be empty"};
  if (s.size() > max_length)
    throw bad_request{std::string{"field '"} + name + "' is longer than " +
                      std::to_string(max_length) + " bytes"};
  return s;
}

int64_t integer_field(const json& body, const char* name) {
  auto& v = field(body, name);
  if (v.is_number_integer() && !v.is_number_unsigned()) return v.get<int64_t>();
  if (v.is_number_unsigned() && v.get<uint64_t>() <= uint64_t(INT64_MAX))
    return static_cast<int64_t>(v.get<uint64_t>());
  throw bad_request{std::string{"field '"} + name + "' must be an integer"};
}

double number_field(const json& body, const char* name) {
  auto& v = field(body, name);
  if (!v.is_number())
    throw bad_request{std::string{"field '"} + name + "' must be a number"};
  return v.get<double>();
}

/// `text` with every byte outside printable ASCII written as \xNN: a reason
/// may quote the client's bytes (nlohmann's "last read", an id from the
/// path), and a reason goes back as JSON, which needs valid UTF-8.
std::string printable(std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (c >= 0x20 && c < 0x7F) {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 0xF];
    }
  }
  return out;
}

json parse_object(std::string_view text) {
  json body;
  try {
    body = json::parse(text.begin(), text.end());
  } catch (const std::exception& e) {
    throw bad_request{"malformed JSON: " + printable(e.what())};
  }
  if (!body.is_object()) throw bad_request{"the body must be a JSON object"};
  return body;
}

/// A decimal int64 (an optional '-', then digits only), or nullopt.
std::optional<int64_t> decimal(std::string_view s) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
  return v;
}

} // namespace

void check_id(const std::string& id, const char* name) {
  if (id.empty())
    throw bad_request{std::string{"field '"} + name + "' must not be empty"};
  if (id.size() > max_id_length)
    throw bad_request{std::string{"field '"} + name + "' is longer than " +
                      std::to_string(max_id_length) + " characters"};
  for (unsigned char c : id)
    if (!(std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == ':' || c == '~'))
      throw bad_request{std::string{"field '"} + name +
                        "' may only hold letters, digits and - _ . : ~"};
}

order parse_order(std::string_view text) {
  auto body = parse_object(text);
  order o;
  o.id = string_field(body, "id");
  check_id(o.id, "id");
  o.customer_id = integer_field(body, "customerId");
  o.product = string_field(body, "product", false);
  o.quantity = integer_field(body, "quantity");
  o.price = number_field(body, "price");
  o.currency = string_field(body, "currency", true, max_currency_length);
  if (auto i = body.find("state"); i != body.end() && !i->is_null()) {
    if (!i->is_string() || i->get<std::string>() != created)
      throw bad_request{"field 'state' must be absent or \"CREATED\""};
  }
  return o;
}

payment parse_payment(std::string_view text) {
  auto body = parse_object(text);
  payment p;
  p.id = string_field(body, "id");
  p.order_id = string_field(body, "orderId");
  p.currency = string_field(body, "currency", true, max_currency_length);
  p.amount = number_field(body, "amount");
  return p;
}

stock_adjustment parse_stock_adjustment(std::string_view text) {
  auto body = parse_object(text);
  return stock_adjustment{string_field(body, "product"), integer_field(body, "delta")};
}

customer parse_customer(std::string_view text, int64_t path_id) {
  auto body = parse_object(text);
  customer c;
  c.id = integer_field(body, "id");
  if (c.id != path_id)
    throw bad_request{"field 'id' (" + std::to_string(c.id) +
                      ") does not match the path (" + std::to_string(path_id) + ")"};
  c.first_name = string_field(body, "firstName", false);
  c.last_name = string_field(body, "lastName", false);
  c.email = string_field(body, "email");
  c.address = string_field(body, "address", false, max_address_length);
  c.level = string_field(body, "level");
  if (!fraud_limit(c.level))
    throw bad_request{"field 'level' must be bronze, silver, gold or platinum"};
  return c;
}

int64_t parse_customer_id(std::string_view text) {
  auto v = decimal(text);
  if (!v)
    throw bad_request{"customer id '" + printable(text.substr(0, 64)) +
                      "' must be an integer"};
  return *v;
}

std::chrono::milliseconds parse_timeout(const std::optional<std::string>& value,
                                        int64_t fallback) {
  if (!value) return std::chrono::milliseconds{fallback};
  auto v = decimal(*value);
  if (!v || *v < 0 || *v > 300000)
    throw bad_request{"query parameter 'timeout' must be milliseconds from 0 to 300000"};
  return std::chrono::milliseconds{*v};
}

} // namespace orders::rest
