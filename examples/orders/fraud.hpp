#pragma once
// The fraud check. Pattern: stateful, windowed: session windows per
// customer over order timestamps (event time), with a 1 hour inactivity gap.
// Orders come through the repartition "orders-by-customer"; the customer's
// level (hence the limit) comes from the customers GlobalKTable.
//
// For a new order, the session it falls in (merging any sessions it
// bridges) gets its quantity x price added; total >= the level's limit
// (bronze 2000, silver 5000, gold 10000, platinum 20000) FAILs, else PASS.
// Each order counts once: the answer is kept per order id
// ("fraud-results"), and an order seen again gets that answer again.
// Orders that fail the details check (bad quantity or price, unknown
// customer) FAIL here with the same reason and add nothing.

#include <algorithm>
#include <cstdio>

#include <weft/services/operator_base.hpp>
#include <weft/services/store_handle.hpp>

#include "customer_lookup.hpp"
#include "serdes.hpp"

namespace orders {

class fraud_service : public weft::operator_base {
 public:
  static constexpr const char* repartition_name = "orders-by-customer";
  static constexpr weft::timestamp_ms gap_ms = 60 * 60 * 1000;

  explicit fraud_service(const topic_names& t)
    : operator_base("fraud"), customers_(t.customers) {
    describe_as(weft::service_pattern::stateful, "session windows per customer");
    treat_nulls_as_bad();
    add_input_ref(weft::repartitioned(repartition_name));
    // Reads the customers GlobalKTable that order_details_service declares:
    // the node opens one store per declaration, and two declarations of one
    // topic collide on its RocksDB lock (see the runtime note in README).
    add_store({sessions_.name(), weft::store_decl::kind::session, 2 * gap_ms, 0});
    add_store({results_.name(), weft::store_decl::kind::kv});
    out_ = to<str, validation_serde>(t.validations);
  }

  void on_record(const weft::record_view& r, weft::context& ctx) override {
    if (!r.key) return drop_null_key(r);
    if (!r.value) return drop_null_value(r);
    auto customer_key = decode_or_throw<str>(r.key, "key");
    auto o = decode_or_throw<order_serde>(r.value, "value");
    if (o.state != created) return;
    auto answer = results_.get(ctx, o.id);
    if (!answer) {
      answer = check(customer_key, o, r.timestamp, ctx);
      results_.put(ctx, o.id, *answer);
    }
    out_.emit(ctx, o.id, *answer);
  }

 private:
  validation check(const std::string& customer_key, const order& o, weft::timestamp_ms ts,
                   weft::context& ctx) {
    validation v{o.id, fraud_check, fail, invalid_order_reason(o)};
    if (!v.reason.empty()) return v;
    auto row = read_customer(ctx, customers_, customer_key);
    if (!row.found) {
      v.reason = row.unreadable ? unreadable_customer_reason(o.customer_id)
                                : unknown_customer_reason(o.customer_id);
      return v;
    }
    auto& c = row.found;
    auto limit = fraud_limit(c->level);
    if (!limit) {
      v.reason = "customer " + customer_key + " has an unknown level '" + c->level + "'";
      return v;
    }
    // The sessions this order touches: those ending within a gap before it
    // or starting within a gap after it (out-of-order timestamps).
    auto touched = sessions_.find(ctx, customer_key, ts - gap_ms, ts + gap_ms);
    weft::state::session_window merged{ts, ts};
    double total = o.total();
    for (auto& [w, sum] : touched) {
      merged.start = std::min(merged.start, w.start);
      merged.end = std::max(merged.end, w.end);
      total += sum;
      sessions_.remove(ctx, customer_key, w);
    }
    sessions_.put(ctx, customer_key, merged, total);
    if (total >= *limit) {
      char buf[160];
      std::snprintf(buf, sizeof buf, "fraud limit: session total %.2f >= %.0f (%s)",
                    total, *limit, c->level.c_str());
      v.reason = buf;
      return v;
    }
    v.result = pass;
    return v;
  }

  std::string customers_;
  weft::session_handle<str, weft::double_serde> sessions_{"fraud-sessions"};
  weft::kv_handle<str, validation_serde> results_{"fraud-results"};
  weft::output<str, validation_serde> out_;
};

} // namespace orders
