#pragma once
// customer-check: the bad-record policy of the customers GlobalKTable.
//
// order-details, fraud and notification-join read `customers` as a global
// table, which weft loads as bytes, without a serde or a bad-record policy:
// a record nobody can read would sit in the table and be seen by no
// dead-letter topic. This service reads the same topic as a stream and
// checks every record as the readers will: a key that is a customer id, a
// value that is a customer of that id with a known level, or null (a
// tombstone deletes the customer, which is legal). Anything else is a bad
// record, so it lands in this service's dead-letter topic with the error;
// the readers treat such a row as an unreadable customer (customer_lookup.hpp).
// It writes nothing else.

#include <string>

#include <weft/services/stateless.hpp>

#include "serdes.hpp"

namespace orders {

class customer_check : public weft::stateless<str, weft::optional_serde<customer_serde>> {
 public:
  explicit customer_check(const topic_names& t)
    : stateless("customer-check", t.customers) {
    describe_as(weft::service_pattern::stateless, "dead-letters unreadable customers");
  }

  void process(const std::string& key, const std::optional<customer>& c,
               weft::context&) override {
    if (!c) return; // a tombstone
    if (std::to_string(c->id) != key)
      throw weft::weft_error{weft::status{weft::errc::bad_record,
                                          "value: customer id " + std::to_string(c->id) +
                                              " under key '" + key.substr(0, 64) + "'"}};
    if (!fraud_limit(c->level))
      throw weft::weft_error{
          weft::status{weft::errc::bad_record,
                       "value: unknown level '" + c->level.substr(0, 64) + "'"}};
  }
};

} // namespace orders
