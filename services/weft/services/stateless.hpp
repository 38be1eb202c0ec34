#pragma once
// The stateless processor pattern: consume, transform, produce. Derive from
// weft::stateless<KeySerde, ValueSerde>, declare outputs as members and write
// process(); or use the ready-made variants below (filter, map, flat_map,
// branch, rekey) with a lambda.
//
//   struct shout : weft::stateless<weft::string_serde, weft::string_serde> {
//     weft::output<weft::string_serde, weft::string_serde> out = to<weft::string_serde,
//                                                                 weft::string_serde>("loud");
//     shout() : stateless("shout", "words") {}
//     void process(const std::string& k, const std::string& v, weft::context& ctx)
//     override {
//       out.emit(ctx, k, upper(v));
//     }
//   };
//
// Decoding failures and exceptions from process() are bad records: the
// service's bad.record.policy decides (fail, skip, dead_letter).

#include <utility>
#include <vector>

#include "weft/services/service.hpp"

namespace weft {

/// Names an input: a user topic ("orders") or another service's repartition
/// topic (repartitioned("by-product")).
struct input_ref {
  input_ref(const char* topic) : name(topic) {}
  input_ref(std::string topic) : name(std::move(topic)) {}
  std::string name;
  bool internal = false;
};

/// An input that is the repartition topic `name` written by some service's
/// repartition<...>("name") output.
inline input_ref repartitioned(std::string name) {
  input_ref r{std::move(name)};
  r.internal = true;
  return r;
}

template <class KeySerde, class ValueSerde>
class stateless : public service_base {
 public:
  static_assert(is_serde_v<KeySerde> && is_serde_v<ValueSerde>,
                "stateless<K, V>: both parameters must be weft serdes (see serde.hpp)");
  using key_type = typename KeySerde::value_type;
  using value_type = typename ValueSerde::value_type;

  stateless(std::string name, input_ref input) : service_base(std::move(name)) {
    add(std::move(input));
  }
  stateless(std::string name, std::vector<input_ref> inputs)
    : service_base(std::move(name)) {
    for (auto& i : inputs)
      add(std::move(i));
  }

  /// Handles one decoded record.
  virtual void process(const key_type& key, const value_type& value, context& ctx) = 0;

  void on_record(const record_view& r, context& ctx) final {
    auto k = decode<KeySerde>(r.key);
    if (!k) throw weft_error{status{errc::bad_record, "key: " + k.error().message()}};
    auto v = decode<ValueSerde>(r.value);
    if (!v) throw weft_error{status{errc::bad_record, "value: " + v.error().message()}};
    process(*k, *v, ctx);
  }

 protected:
  /// Declares an output topic the user owns.
  template <class KS, class VS>
  output<KS, VS> to(std::string topic) {
    return output<KS, VS>{
        add_output(std::move(topic), output_kind::external, partition_key_suffix_v<KS>)};
  }
  /// Declares an internal repartition topic (see repartition_topic()).
  template <class KS, class VS>
  output<KS, VS> repartition(std::string name) {
    return output<KS, VS>{add_output(std::move(name), output_kind::repartition,
                                     partition_key_suffix_v<KS>)};
  }

 private:
  void add(input_ref i) {
    if (i.internal)
      add_internal_input(std::move(i.name));
    else
      add_input(std::move(i.name));
  }
};

namespace detail {

template <class KS, class VS, class Fn>
class filter_service final : public stateless<KS, VS> {
 public:
  filter_service(std::string name, input_ref in, std::string out, Fn fn)
    : stateless<KS, VS>(std::move(name), std::move(in)), fn_(std::move(fn)) {
    out_ = this->template to<KS, VS>(std::move(out));
  }
  void process(const typename KS::value_type& k, const typename VS::value_type& v,
               context& ctx) override {
    if (fn_(k, v)) out_.emit(ctx, k, v);
  }

 private:
  Fn fn_;
  output<KS, VS> out_;
};

template <class KS, class VS, class KS2, class VS2, class Fn>
class flat_map_service final : public stateless<KS, VS> {
 public:
  flat_map_service(std::string name, input_ref in, std::string out, Fn fn, bool one)
    : stateless<KS, VS>(std::move(name), std::move(in)), fn_(std::move(fn)), one_(one) {
    out_ = this->template to<KS2, VS2>(std::move(out));
  }
  void process(const typename KS::value_type& k, const typename VS::value_type& v,
               context& ctx) override {
    if constexpr (std::is_same_v<
                      decltype(fn_(k, v)),
                      std::pair<typename KS2::value_type, typename VS2::value_type>>) {
      auto kv = fn_(k, v);
      out_.emit(ctx, kv.first, kv.second);
    } else {
      for (auto& kv : fn_(k, v))
        out_.emit(ctx, kv.first, kv.second);
    }
  }

 private:
  Fn fn_;
  bool one_;
  output<KS2, VS2> out_;
};

template <class KS, class VS>
class branch_service final : public stateless<KS, VS> {
 public:
  using predicate =
      std::function<bool(const typename KS::value_type&, const typename VS::value_type&)>;
  branch_service(std::string name, input_ref in,
                 std::vector<std::pair<std::string, predicate>> branches)
    : stateless<KS, VS>(std::move(name), std::move(in)) {
    for (auto& [topic, pred] : branches)
      branches_.emplace_back(this->template to<KS, VS>(topic), pred);
  }
  void process(const typename KS::value_type& k, const typename VS::value_type& v,
               context& ctx) override {
    for (auto& [out, pred] : branches_)
      if (pred(k, v)) {
        out.emit(ctx, k, v);
        return;
      }
  }

 private:
  std::vector<std::pair<output<KS, VS>, predicate>> branches_;
};

template <class KS, class VS, class KS2, class Fn>
class rekey_service final : public stateless<KS, VS> {
 public:
  rekey_service(std::string name, input_ref in, std::string repartition_name, Fn fn)
    : stateless<KS, VS>(std::move(name), std::move(in)), fn_(std::move(fn)) {
    this->describe_as(service_pattern::stateless, "re-key");
    out_ = this->template repartition<KS2, VS>(std::move(repartition_name));
  }
  void process(const typename KS::value_type& k, const typename VS::value_type& v,
               context& ctx) override {
    out_.emit(ctx, fn_(k, v), v);
  }

 private:
  Fn fn_;
  output<KS2, VS> out_;
};

} // namespace detail

/// Forwards the records for which pred(key, value) holds to `out`.
template <class KS, class VS, class Fn>
service_factory filter(std::string name, input_ref in, std::string out, Fn pred) {
  return [=] {
    return std::make_unique<detail::filter_service<KS, VS, Fn>>(name, in, out, pred);
  };
}

/// Writes fn(key, value) -> std::pair<K2, V2> to `out`.
template <class KS, class VS, class KS2, class VS2, class Fn>
service_factory map(std::string name, input_ref in, std::string out, Fn fn) {
  return [=] {
    return std::make_unique<detail::flat_map_service<KS, VS, KS2, VS2, Fn>>(name, in, out,
                                                                            fn, true);
  };
}

/// Writes every pair of fn(key, value) -> std::vector<std::pair<K2, V2>> to `out`.
template <class KS, class VS, class KS2, class VS2, class Fn>
service_factory flat_map(std::string name, input_ref in, std::string out, Fn fn) {
  return [=] {
    return std::make_unique<detail::flat_map_service<KS, VS, KS2, VS2, Fn>>(name, in, out,
                                                                            fn, false);
  };
}

/// Sends each record to the first branch whose predicate holds (others drop it).
template <class KS, class VS>
service_factory
branch(std::string name, input_ref in,
       std::vector<
           std::pair<std::string, typename detail::branch_service<KS, VS>::predicate>>
           branches) {
  return [=] {
    return std::make_unique<detail::branch_service<KS, VS>>(name, in, branches);
  };
}

/// Re-keys each record by fn(key, value) -> K2 into the repartition topic
/// `repartition_name`, so that a downstream service reading
/// repartitioned(repartition_name) sees all records of a new key in one task.
template <class KS, class VS, class KS2, class Fn>
service_factory rekey(std::string name, input_ref in, std::string repartition_name,
                      Fn fn) {
  return [=] {
    return std::make_unique<detail::rekey_service<KS, VS, KS2, Fn>>(name, in,
                                                                    repartition_name, fn);
  };
}

} // namespace weft
