#pragma once
// The data-enabled processor pattern: enrich a stream with reference data
// that every node holds whole (a GlobalKTable), so the stream needs no
// re-partitioning by the lookup key and no remote call per event.
//
// Derive from enricher<KS, VS, GKS, GVS> (stream key/value serdes, table
// key/value serdes), say which table row a record needs, and handle the
// record with that row:
//
//   struct order_enricher
//     : weft::enricher<str, json_serde<order>, str, json_serde<customer>> {
//     weft::output<str, json_serde<enriched_order>> out =
//         to<str, json_serde<enriched_order>>("orders-enriched");
//     order_enricher() : enricher("enrich-orders", "orders", "customers") {}
//     std::optional<std::string> lookup_key(const std::string&, const order& o) override
//     {
//       return o.customer_id;
//     }
//     void enrich(const std::string& id, const order& o,
//                 const std::optional<customer>& c, weft::context& ctx) override {
//       if (c) out.emit(ctx, id, enriched_order{o, c->name, c->tier});
//       // else: customer unknown (yet) — drop, park, or emit as is
//     }
//   };
//
// For a plain join use global_table_join / global_table_left_join (join.hpp),
// which are enrichers with a joiner.
//
// The global table is read into a store named after its topic (services that
// name the same topic share the node's copy). It is read-only here: only the
// runtime's global table actor writes it, from the topic, before any task
// starts. Stream records without a value are dropped (drops().null_value),
// as are records without a key when KS is not nullable.

#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "weft/services/operator_base.hpp"
#include "weft/services/store_handle.hpp"

namespace weft {

template <class KS, class VS, class GKS, class GVS>
class enricher : public operator_base {
 public:
  static_assert(is_serde_v<KS> && is_serde_v<VS>,
                "enricher<KS, VS, GKS, GVS>: KS and VS must be weft serdes");
  static_assert(
      detail::store_serde_v<GKS> && detail::store_serde_v<GVS>,
      "enricher<KS, VS, GKS, GVS>: GKS and GVS must be non-nullable weft serdes");
  using key_type = typename KS::value_type;
  using value_type = typename VS::value_type;
  using table_key_type = typename GKS::value_type;
  using row_type = typename GVS::value_type;

  /// A service `name` enriching `stream` from the global table `global_topic`.
  enricher(std::string name, input_ref stream, std::string global_topic)
    : operator_base(std::move(name)), table_(global_topic) {
    add_input_ref(std::move(stream));
    add_global_table(std::move(global_topic), table_);
    describe_as(service_pattern::enricher);
  }

  /// The table key the record needs, or nullopt to look nothing up (enrich
  /// then sees no row).
  virtual std::optional<table_key_type> lookup_key(const key_type& key,
                                                   const value_type& value) = 0;

  /// Handles a record with its row (nullopt: the table has no such key).
  virtual void enrich(const key_type& key, const value_type& value,
                      const std::optional<row_type>& row, context& ctx) = 0;

  void on_record(const record_view& r, context& ctx) final {
    if (!r.key && !is_nullable_serde_v<KS>) return drop_null_key(r);
    if (!r.value && !is_nullable_serde_v<VS>) return drop_null_value(r);
    auto k = decode_or_throw<KS>(r.key, "key");
    auto v = decode_or_throw<VS>(r.value, "value");
    std::optional<row_type> row;
    if (auto gk = lookup_key(k, v)) row = lookup(ctx, *gk);
    enrich(k, v, row, ctx);
  }

  /// Name of the global table's store.
  const std::string& table_store() const { return table_; }

 protected:
  /// The row of `key` in the global table: for lookups beyond lookup_key's.
  std::optional<row_type> lookup(context& ctx, const table_key_type& key) const {
    auto v = detail::value_or_throw(ctx.global_store(table_).get(GKS::serialize(key)));
    if (!v) return std::nullopt;
    return detail::decode_stored<GVS>(*v, table_);
  }

 private:
  std::string table_;
};

} // namespace weft
