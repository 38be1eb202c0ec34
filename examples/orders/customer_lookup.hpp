#pragma once
// Reading a customer from the customers GlobalKTable (order-details, fraud,
// notification-join). weft's global tables hold a topic's bytes as they are,
// readable or not, so a row may not decode (a stranger wrote garbage to
// `customers`; customer-check dead-letters that record). Such a row counts
// as no customer, with a reason of its own: the order fails its checks at
// once with that reason, instead of the order becoming a bad record that
// waits for the validation timeout.

#include <optional>
#include <string>

#include <weft/services/service.hpp>
#include <weft/services/store_handle.hpp>

#include "serdes.hpp"

namespace orders {

struct customer_row {
  std::optional<customer> found; ///< nullopt: absent or unreadable
  bool unreadable = false;       ///< present, but not a customer record
};

/// The customer under `key` in the global table `store`. A store error (not
/// a decoding one) still throws: that is the node's problem, not the data's.
inline customer_row read_customer(weft::context& ctx, const std::string& store,
                                  const std::string& key) {
  customer_row row;
  auto raw = weft::detail::value_or_throw(ctx.global_store(store).get(key));
  if (!raw) return row;
  auto c = customer_serde::deserialize(*raw);
  if (c && std::to_string(c->id) == key)
    row.found = std::move(*c);
  else
    row.unreadable = true;
  return row;
}

} // namespace orders
