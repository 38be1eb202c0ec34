#pragma once
// The stateful processor pattern: a service that keeps state per key and
// updates it with every event — a view built inside the service's bounded
// context, sharded by key, changelogged and restored by the runtime.
//
// Derive from stateful_processor<KS, VS, SS> (key, value and state serdes)
// and write process(): it gets the key's state (nullopt the first time) by
// reference, and whatever the state holds afterwards is stored (nullopt
// deletes it). Average order amount per region:
//
//   struct avg { double sum = 0; int64_t n = 0; };            // + cereal serialize()
//   struct average_by_region
//     : weft::stateful_processor<str, weft::double_serde, weft::cereal_binary_serde<avg>>
//     { weft::output<str, weft::double_serde> out = to<str,
//     weft::double_serde>("avg-by-region"); average_by_region()
//       : stateful_processor("avg-by-region", weft::repartitioned("orders-by-region")) {}
//     void process(const std::string& region, const double& amount,
//                  std::optional<avg>& state, weft::context& ctx) override {
//       if (!state) state = avg{};
//       state->sum += amount;
//       state->n += 1;
//       out.emit(ctx, region, state->sum / state->n);
//     }
//   };
//
// The input must be partitioned by the state's key (here: region), hence the
// repartition input written by a group_by (aggregate.hpp). The state lives
// in kv store "<name>-store", readable by tests (test_driver::kv_get) and
// interactive queries; state_store() is its typed handle, for reads of other
// keys. More stores: add_kv_store / add_window_store / add_session_store in
// the constructor. Records without key, or without value when VS is not
// nullable, are dropped (drops()); decoding failures are bad records.

#include <optional>
#include <string>
#include <utility>

#include "weft/services/operator_base.hpp"
#include "weft/services/store_handle.hpp"

namespace weft {

template <class KS, class VS, class SS>
class stateful_processor : public operator_base {
 public:
  static_assert(
      detail::store_serde_v<KS> && detail::store_serde_v<SS>,
      "stateful_processor<KS, VS, SS>: KS and SS must be non-nullable weft serdes");
  static_assert(is_serde_v<VS>,
                "stateful_processor<KS, VS, SS>: VS must be a weft serde");
  using key_type = typename KS::value_type;
  using value_type = typename VS::value_type;
  using state_type = typename SS::value_type;

  stateful_processor(std::string name, input_ref input)
    : operator_base(std::move(name)), state_(this->name() + "-store") {
    describe_as(service_pattern::stateful, "processor");
    add_input_ref(std::move(input));
    add_store({state_.name(), store_decl::kind::kv});
  }

  /// Handles one record with its key's state; see the top of this file.
  virtual void process(const key_type& key, const value_type& value,
                       std::optional<state_type>& state, context& ctx) = 0;

  void on_record(const record_view& r, context& ctx) final {
    if (!r.key) return drop_null_key(r);
    if (!r.value && !is_nullable_serde_v<VS>) return drop_null_value(r);
    auto k = decode_or_throw<KS>(r.key, "key");
    auto v = decode_or_throw<VS>(r.value, "value");
    auto& store = ctx.kv_store(state_.name());
    const std::string key = KS::serialize(k);
    auto before = detail::value_or_throw(store.get(key));
    std::optional<state_type> s;
    if (before) s = detail::decode_stored<SS>(*before, state_.name());
    process(k, v, s, ctx);
    if (s) {
      auto after = SS::serialize(*s);
      // Unchanged state writes nothing, so it costs no changelog record.
      if (!before || *before != after) detail::throw_if_error(store.put(key, after));
    } else if (before) {
      detail::throw_if_error(store.remove(key));
    }
  }

  /// The per-key state store.
  const kv_handle<KS, SS>& state_store() const { return state_; }

 protected:
  /// Declares another kv store and returns its handle.
  template <class SKS, class SVS>
  kv_handle<SKS, SVS> add_kv_store(std::string name) {
    add_store({name, store_decl::kind::kv});
    return kv_handle<SKS, SVS>{std::move(name)};
  }
  /// Declares a window store keeping windows `retention_ms` (> 0) behind
  /// the newest window start.
  template <class SKS, class SVS>
  window_handle<SKS, SVS> add_window_store(std::string name, timestamp_ms retention_ms,
                                           timestamp_ms window_size_ms) {
    add_store({name, store_decl::kind::window, retention_ms, window_size_ms});
    return window_handle<SKS, SVS>{std::move(name)};
  }
  /// Declares a session store keeping sessions `retention_ms` (> 0) behind
  /// the newest session end.
  template <class SKS, class SVS>
  session_handle<SKS, SVS> add_session_store(std::string name,
                                             timestamp_ms retention_ms) {
    add_store({name, store_decl::kind::session, retention_ms, 0});
    return session_handle<SKS, SVS>{std::move(name)};
  }

 private:
  kv_handle<KS, SS> state_;
};

} // namespace weft
