#pragma once
// Joins, with Kafka Streams' semantics, as services made by factories.
//
//   stream-table        stream_table_join, stream_table_left_join
//   stream-global table global_table_join, global_table_left_join
//   table-table         table_table_join, table_table_left_join, table_table_outer_join
//   stream-stream       stream_stream_join, stream_stream_left_join,
//                       stream_stream_outer_join (windowed)
//
// Joiners take the two values; a side that may be missing is a std::optional:
//   inner: joiner(const L&, const R&) -> VR
//   left:  joiner(const L&, const std::optional<R>&) -> VR
//   outer: joiner(const std::optional<L>&, const std::optional<R>&) -> VR
// Results are keyed by the (left) record's key, serialized with KS, and go to
// one output topic.
//
// Example: orders joined with the customers table (both keyed by customer id):
//
//   n.add(weft::stream_table_left_join<str, json_serde<order>,
//                                      json_serde<customer>, json_serde<enriched>>(
//       "orders-with-customer", "orders", "customers", "orders-enriched",
//       [](const order& o, const std::optional<customer>& c) {
//         return enriched{o, c ? c->name : "unknown"};
//       }));
//
// Co-partitioning. Except for the global table, both sides must be keyed the
// same way (same key bytes) and have the same number of partitions: the
// runtime checks the counts at start-up; re-key with group_by/rekey first
// when they are not.
//
// Stream-table. Each stream record looks its key up in the table as the
// table is at that moment; table updates emit nothing. The table side is a
// table input of the same service (store "<name>-table"). Stream records
// without key or value are dropped (drops()). Inner: no row, no result.
// Left: no row gives joiner(value, nullopt).
//
// Stream-global table. key_fn(key, value) picks the table key (returning K2
// or std::optional<K2>; nullopt looks nothing up); see enricher.hpp. Inner:
// no row, no result. Left: joiner(value, nullopt).
//
// Table-table. Both sides are table inputs (stores "<name>-left",
// "<name>-right"); every update of either side that changes the result emits
// it, with the updating record's timestamp:
//   inner: both rows present -> joiner(l, r); a side deleted while the other
//          is present -> tombstone; nothing while the other side is absent.
//   left:  left present -> joiner(l, r or nullopt); left deleted ->
//          tombstone; right updates emit only while the left row exists.
//   outer: any row present -> joiner(l?, r?); both gone -> tombstone.
// (Kafka Streams forwards the same results; it keeps a result timestamp of
// max(left, right) where weft uses the update's.)
//
// Stream-stream. Records of both inputs are buffered in window stores
// ("<name>-left", "<name>-right", retained before + after + grace). A left
// record at time t joins every right record of its key with time in
// [t - before, t + after]; a right record at t' joins left records in
// [t' - after, t' + before]; each pair emits joiner(l, r) once, timestamped
// max(t, t'), whichever side came second. Left and outer joins (Kafka 3.x,
// no spurious results): a record with no partner yet waits in "<name>-outer"
// and, if none arrives, emits joiner(l, nullopt) (or joiner(nullopt, r) for
// an outer join's right side) with its own timestamp once stream time has
// passed the end of its join window plus grace (t + after + grace for a left
// record, t' + before + grace for a right one); a partner arriving before
// then cancels that. A record arriving after its own window closed that way
// is late: dropped and counted (drops().late). Records without key or value,
// or with a negative timestamp, are dropped. Both inputs must be different
// topics (no self-joins).
//
// Output timestamps of 0 mean "the current record's" to the runtime, so a
// null-side result of a record with timestamp 0 carries the timestamp of the
// record that closed its window.

#include <algorithm>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "weft/services/enricher.hpp"
#include "weft/services/operator_base.hpp"
#include "weft/services/store_handle.hpp"

namespace weft {

enum class join_type { inner, left, outer };

/// The join window of a stream-stream join: a right record joins a left
/// record at t if its time is in [t - before, t + after]; records are
/// accepted until stream time passes their window's end by `grace`.
struct join_window {
  timestamp_ms before = 0;
  timestamp_ms after = 0;
  timestamp_ms grace = 0;
  /// Symmetric: |t_left - t_right| <= difference (JoinWindows.ofTimeDifferenceAndGrace).
  static join_window of(timestamp_ms difference, timestamp_ms grace = 0) {
    return {difference, difference, grace};
  }
};

namespace detail {

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};

/// Calls a joiner with the argument shapes of its join type.
template <join_type J, class Joiner, class L, class R>
auto call_joiner(Joiner& j, const std::optional<L>& l, const std::optional<R>& r) {
  if constexpr (J == join_type::inner)
    return j(*l, *r);
  else if constexpr (J == join_type::left)
    return j(*l, r);
  else
    return j(l, r);
}

/// Buffered values of one (key, timestamp): length-prefixed, concatenated,
/// because several records may share both.
inline void append_value(std::string& list, std::string_view v) {
  char len[4];
  store_big_endian(len, static_cast<uint32_t>(v.size()));
  list.append(len, 4);
  list.append(v.data(), v.size());
}

inline std::vector<std::string_view> split_values(std::string_view list) {
  std::vector<std::string_view> out;
  while (list.size() >= 4) {
    auto n = load_big_endian<uint32_t>(list.data());
    if (list.size() - 4 < n) break; // our own format: cannot happen
    out.push_back(list.substr(4, n));
    list.remove_prefix(4 + n);
  }
  return out;
}

// -- stream-table -----------------------------------------------------------------

template <join_type J, class KS, class VS, class TVS, class VRS, class Joiner>
class stream_table_join_service final : public operator_base {
  static_assert(J != join_type::outer,
                "stream-table joins are inner or left, as in Kafka Streams");

 public:
  stream_table_join_service(std::string name, input_ref stream, std::string table_topic,
                            std::string out, Joiner joiner)
    : operator_base(std::move(name)), joiner_(std::move(joiner)) {
    describe_as(service_pattern::stateful, "stream-table join");
    add_input_ref(std::move(stream));
    table_ = kv_handle<KS, TVS>{this->name() + "-table"};
    add_table(std::move(table_topic), table_.name());
    out_ = to<KS, VRS>(std::move(out));
  }

  void on_record(const record_view& r, context& ctx) override {
    if (!r.key) return drop_null_key(r);
    if (!r.value) return drop_null_value(r);
    auto k = decode_or_throw<KS>(r.key, "key");
    std::optional<typename VS::value_type> v = decode_or_throw<VS>(r.value, "value");
    auto row = table_.get(ctx, k);
    if (J == join_type::inner && !row) return;
    out_.emit(ctx, k, call_joiner<J>(joiner_, v, row));
  }

 private:
  Joiner joiner_;
  kv_handle<KS, TVS> table_;
  output<KS, VRS> out_;
};

// -- stream-global table ------------------------------------------------------------

template <join_type J, class KS, class VS, class GKS, class GVS, class VRS, class KeyFn,
          class Joiner>
class global_join_service final : public enricher<KS, VS, GKS, GVS> {
  static_assert(J != join_type::outer,
                "stream-global table joins are inner or left, as in Kafka Streams");
  using base = enricher<KS, VS, GKS, GVS>;

 public:
  global_join_service(std::string name, input_ref stream, std::string global_topic,
                      std::string out, KeyFn key_fn, Joiner joiner)
    : base(std::move(name), std::move(stream), std::move(global_topic)),
      key_fn_(std::move(key_fn)), joiner_(std::move(joiner)) {
    out_ = this->template to<KS, VRS>(std::move(out));
  }

  std::optional<typename base::table_key_type>
  lookup_key(const typename base::key_type& k,
             const typename base::value_type& v) override {
    if constexpr (is_optional<std::decay_t<decltype(key_fn_(k, v))>>::value)
      return key_fn_(k, v);
    else
      return std::optional<typename base::table_key_type>{key_fn_(k, v)};
  }

  void enrich(const typename base::key_type& k, const typename base::value_type& v,
              const std::optional<typename base::row_type>& row, context& ctx) override {
    if (J == join_type::inner && !row) return;
    std::optional<typename base::value_type> lv{v};
    out_.emit(ctx, k, call_joiner<J>(joiner_, lv, row));
  }

 private:
  KeyFn key_fn_;
  Joiner joiner_;
  output<KS, VRS> out_;
};

// -- table-table ------------------------------------------------------------------

template <join_type J, class KS, class LVS, class RVS, class VRS, class Joiner>
class table_table_join_service final : public operator_base {
 public:
  table_table_join_service(std::string name, std::string left_topic,
                           std::string right_topic, std::string out, Joiner joiner)
    : operator_base(std::move(name)), joiner_(std::move(joiner)),
      left_topic_(left_topic) {
    describe_as(service_pattern::stateful, "table-table join");
    if (left_topic == right_topic)
      throw weft_error{status{errc::invalid_argument,
                              this->name() + ": a table cannot be joined with itself"}};
    left_ = kv_handle<KS, LVS>{this->name() + "-left"};
    right_ = kv_handle<KS, RVS>{this->name() + "-right"};
    add_table(std::move(left_topic), left_.name());
    add_table(std::move(right_topic), right_.name());
    out_ = to<KS, VRS>(std::move(out));
  }

  /// Table-table joins have no stream inputs.
  void on_record(const record_view&, context&) override {}

  void on_table_update(const record_view& r, std::optional<std::string_view> old,
                       context& ctx) override {
    if (!r.key) return;
    if (!old && !r.value) return; // deleting a row that was not there changes nothing
    const bool left_side = r.topic == left_topic_;
    auto k = decode_or_throw<KS>(r.key, "key");
    auto l = left_.get(ctx, k);
    auto rr = right_.get(ctx, k);
    const bool other = left_side ? rr.has_value() : l.has_value();
    if constexpr (J == join_type::inner) {
      if (!other) return;
      if (l && rr)
        out_.emit(ctx, k, joiner_(*l, *rr));
      else
        out_.emit_tombstone(ctx, k);
    } else if constexpr (J == join_type::left) {
      if (l)
        out_.emit(ctx, k, joiner_(*l, rr));
      else if (left_side)
        out_.emit_tombstone(ctx, k);
    } else {
      if (l || rr)
        out_.emit(ctx, k, joiner_(l, rr));
      else
        out_.emit_tombstone(ctx, k);
    }
  }

 private:
  Joiner joiner_;
  std::string left_topic_;
  kv_handle<KS, LVS> left_;
  kv_handle<KS, RVS> right_;
  output<KS, VRS> out_;
};

// -- stream-stream ----------------------------------------------------------------

template <join_type J, class KS, class LVS, class RVS, class VRS, class Joiner>
class stream_stream_join_service final : public operator_base {
 public:
  using left_type = typename LVS::value_type;
  using right_type = typename RVS::value_type;

  stream_stream_join_service(std::string name, input_ref left, input_ref right,
                             std::string out, join_window w, Joiner joiner)
    : operator_base(std::move(name)), w_(w), joiner_(std::move(joiner)) {
    describe_as(service_pattern::stateful, "windowed stream-stream join");
    if (w_.before < 0 || w_.after < 0 || w_.grace < 0)
      throw weft_error{status{errc::invalid_argument,
                              this->name() + ": join window bounds must be >= 0"}};
    if (left.name == right.name && left.internal == right.internal)
      throw weft_error{status{errc::invalid_argument,
                              this->name() + ": self-joins are not supported"}};
    add_input_ref(std::move(left));
    add_input_ref(std::move(right));
    const auto retention = std::max<timestamp_ms>(1, w_.before + w_.after + w_.grace);
    stores_[0] = this->name() + "-left";
    stores_[1] = this->name() + "-right";
    add_store({stores_[0], store_decl::kind::window, retention, 0});
    add_store({stores_[1], store_decl::kind::window, retention, 0});
    if constexpr (J != join_type::inner) {
      outer_ = this->name() + "-outer";
      add_store({outer_, store_decl::kind::kv});
    }
    out_ = to<KS, VRS>(std::move(out));
  }

  void on_record(const record_view& r, context& ctx) override {
    const int side = input_index(r, ctx);
    if (side < 0) return;
    if (!r.key) return drop_null_key(r);
    if (!r.value) return drop_null_value(r);
    if (r.timestamp < 0) return drop_negative_timestamp(r);
    decode_or_throw<KS>(r.key, "key"); // validates; the key bytes are used as they are
    std::optional<left_type> lv;
    std::optional<right_type> rv;
    if (side == 0)
      lv = decode_or_throw<LVS>(r.value, "value");
    else
      rv = decode_or_throw<RVS>(r.value, "value");

    const auto ts = r.timestamp;
    const auto stream_time = std::max(ctx.stream_time(), ts);
    const auto ahead = look_ahead(side);
    const auto behind = look_ahead(1 - side);
    if (ts + ahead + w_.grace < stream_time) {
      drop_late(r, "join window [" + std::to_string(ts - behind) + "," +
                       std::to_string(ts + ahead) + "] closed at stream time " +
                       std::to_string(stream_time));
      return;
    }
    if constexpr (J != join_type::inner) emit_expired(ctx, stream_time);

    const std::string key{*r.key};
    const int other = 1 - side;
    std::vector<std::pair<timestamp_ms, std::string>> partners;
    detail::throw_if_error(ctx.window_store(stores_[other])
                               .fetch(key, std::max<timestamp_ms>(0, ts - behind),
                                      ts + ahead,
                                      [&](timestamp_ms t, std::string_view v) {
                                        partners.emplace_back(t, std::string{v});
                                        return true;
                                      }));
    for (auto& [t, list] : partners) {
      for (auto bytes : split_values(list)) {
        std::optional<std::string_view> b{bytes};
        if (side == 0) {
          std::optional<right_type> o = decode_or_throw<RVS>(b, "buffered value");
          emit_result(ctx, key, call_joiner<J>(joiner_, lv, o), std::max(ts, t));
        } else {
          std::optional<left_type> o = decode_or_throw<LVS>(b, "buffered value");
          emit_result(ctx, key, call_joiner<J>(joiner_, o, rv), std::max(ts, t));
        }
      }
      // The partner found a match: it no longer waits for a null-side result.
      if (outer_side(other))
        detail::throw_if_error(ctx.kv_store(outer_).remove(outer_key(t, other, key)));
    }

    append(ctx.window_store(stores_[side]), key, ts, *r.value);
    if (partners.empty() && outer_side(side)) {
      auto& outer = ctx.kv_store(outer_);
      auto okey = outer_key(ts, side, key);
      expired_below_ = std::min(expired_below_, ts);
      auto list = detail::value_or_throw(outer.get(okey)).value_or(std::string{});
      append_value(list, *r.value);
      detail::throw_if_error(outer.put(okey, list));
    }
  }

  void on_punctuate(context& ctx) override {
    if constexpr (J != join_type::inner) emit_expired(ctx, ctx.stream_time());
  }

 private:
  using VRS_value = typename VRS::value_type;

  /// How far into the future a record of `side` finds partners.
  timestamp_ms look_ahead(int side) const { return side == 0 ? w_.after : w_.before; }
  static bool outer_side(int side) {
    return J == join_type::outer || (J == join_type::left && side == 0);
  }
  /// Time first, so a scan meets the oldest waiting records first.
  static std::string outer_key(timestamp_ms ts, int side, const std::string& key) {
    return detail::sortable_time(ts) + static_cast<char>(side) + key;
  }

  void emit_result(context& ctx, const std::string& key, const VRS_value& v,
                   timestamp_ms ts) {
    ctx.emit_bytes(out_.index(), key, encode<VRS>(v), -1, ts);
  }

  static void append(state::window_store& store, const std::string& key, timestamp_ms ts,
                     std::string_view value) {
    auto list = detail::value_or_throw(store.fetch(key, ts)).value_or(std::string{});
    append_value(list, value);
    detail::throw_if_error(store.put(key, ts, std::optional<std::string_view>{list}));
  }

  /// Emits the null-side results of every waiting record whose window
  /// closed: t + look_ahead(side) + grace < stream time.
  void emit_expired(context& ctx, timestamp_ms stream_time) {
    const auto bound = stream_time - w_.grace - std::min(w_.before, w_.after);
    if (bound <= expired_below_) return;
    auto& outer = ctx.kv_store(outer_);
    std::vector<std::pair<std::string, std::string>> due;
    // Records waiting since before expired_below_ went out before: starting
    // after them spares the scan the store's deletion markers.
    const auto from = expired_below_ == std::numeric_limits<timestamp_ms>::min()
                          ? std::string{}
                          : detail::sortable_time(expired_below_);
    detail::throw_if_error(outer.range(
        from, detail::sortable_time(bound), [&](std::string_view k, std::string_view v) {
          auto t = detail::from_sortable_time(k.substr(0, 8));
          int side = static_cast<unsigned char>(k[8]);
          if (t + look_ahead(side) + w_.grace < stream_time)
            due.emplace_back(std::string{k}, std::string{v});
          return true;
        }));
    for (auto& [k, list] : due) {
      auto t = detail::from_sortable_time(std::string_view{k}.substr(0, 8));
      int side = static_cast<unsigned char>(k[8]);
      std::string key = k.substr(9);
      for (auto bytes : split_values(list)) {
        std::optional<std::string_view> b{bytes};
        if (side == 0) {
          std::optional<left_type> l = decode_or_throw<LVS>(b, "buffered value");
          std::optional<right_type> none;
          emit_result(ctx, key, call_joiner<J>(joiner_, l, none), t);
        } else if constexpr (J == join_type::outer) {
          std::optional<right_type> rr = decode_or_throw<RVS>(b, "buffered value");
          std::optional<left_type> none;
          emit_result(ctx, key, joiner_(none, rr), t);
        }
      }
      detail::throw_if_error(outer.remove(k));
    }
    // Waiting records older than this were due on both sides: all gone.
    expired_below_ =
        std::max(expired_below_, stream_time - w_.grace - std::max(w_.before, w_.after));
  }

  join_window w_;
  Joiner joiner_;
  std::string stores_[2];
  std::string outer_;
  /// No record waits in outer_ since before this (lowered by an older one).
  timestamp_ms expired_below_ = std::numeric_limits<timestamp_ms>::min();
  output<KS, VRS> out_;
};

template <class Service, class... Args>
service_factory make_factory(Args... args) {
  return [=]() -> std::unique_ptr<service_base> {
    return std::make_unique<Service>(args...);
  };
}

} // namespace detail

// -- stream-table -------------------------------------------------------------------

/// Inner stream-table join: joiner(const V&, const TV&) -> VR.
template <class KS, class VS, class TVS, class VRS, class Joiner>
service_factory stream_table_join(std::string name, input_ref stream,
                                  std::string table_topic, std::string out,
                                  Joiner joiner) {
  return detail::make_factory<
      detail::stream_table_join_service<join_type::inner, KS, VS, TVS, VRS, Joiner>>(
      std::move(name), std::move(stream), std::move(table_topic), std::move(out),
      std::move(joiner));
}

/// Left stream-table join: joiner(const V&, const std::optional<TV>&) -> VR.
template <class KS, class VS, class TVS, class VRS, class Joiner>
service_factory stream_table_left_join(std::string name, input_ref stream,
                                       std::string table_topic, std::string out,
                                       Joiner joiner) {
  return detail::make_factory<
      detail::stream_table_join_service<join_type::left, KS, VS, TVS, VRS, Joiner>>(
      std::move(name), std::move(stream), std::move(table_topic), std::move(out),
      std::move(joiner));
}

// -- stream-global table ---------------------------------------------------------------

/// Inner stream-global table join: key_fn(const K&, const V&) -> GK (or
/// std::optional<GK>), joiner(const V&, const GV&) -> VR.
template <class KS, class VS, class GKS, class GVS, class VRS, class KeyFn, class Joiner>
service_factory global_table_join(std::string name, input_ref stream,
                                  std::string global_topic, std::string out, KeyFn key_fn,
                                  Joiner joiner) {
  return detail::make_factory<detail::global_join_service<join_type::inner, KS, VS, GKS,
                                                          GVS, VRS, KeyFn, Joiner>>(
      std::move(name), std::move(stream), std::move(global_topic), std::move(out),
      std::move(key_fn), std::move(joiner));
}

/// Left stream-global table join: joiner(const V&, const std::optional<GV>&) -> VR.
template <class KS, class VS, class GKS, class GVS, class VRS, class KeyFn, class Joiner>
service_factory global_table_left_join(std::string name, input_ref stream,
                                       std::string global_topic, std::string out,
                                       KeyFn key_fn, Joiner joiner) {
  return detail::make_factory<
      detail::global_join_service<join_type::left, KS, VS, GKS, GVS, VRS, KeyFn, Joiner>>(
      std::move(name), std::move(stream), std::move(global_topic), std::move(out),
      std::move(key_fn), std::move(joiner));
}

// -- table-table ------------------------------------------------------------------

/// Inner table-table join: joiner(const L&, const R&) -> VR.
template <class KS, class LVS, class RVS, class VRS, class Joiner>
service_factory table_table_join(std::string name, std::string left_topic,
                                 std::string right_topic, std::string out,
                                 Joiner joiner) {
  return detail::make_factory<
      detail::table_table_join_service<join_type::inner, KS, LVS, RVS, VRS, Joiner>>(
      std::move(name), std::move(left_topic), std::move(right_topic), std::move(out),
      std::move(joiner));
}

/// Left table-table join: joiner(const L&, const std::optional<R>&) -> VR.
template <class KS, class LVS, class RVS, class VRS, class Joiner>
service_factory table_table_left_join(std::string name, std::string left_topic,
                                      std::string right_topic, std::string out,
                                      Joiner joiner) {
  return detail::make_factory<
      detail::table_table_join_service<join_type::left, KS, LVS, RVS, VRS, Joiner>>(
      std::move(name), std::move(left_topic), std::move(right_topic), std::move(out),
      std::move(joiner));
}

/// Outer table-table join:
/// joiner(const std::optional<L>&, const std::optional<R>&) -> VR.
template <class KS, class LVS, class RVS, class VRS, class Joiner>
service_factory table_table_outer_join(std::string name, std::string left_topic,
                                       std::string right_topic, std::string out,
                                       Joiner joiner) {
  return detail::make_factory<
      detail::table_table_join_service<join_type::outer, KS, LVS, RVS, VRS, Joiner>>(
      std::move(name), std::move(left_topic), std::move(right_topic), std::move(out),
      std::move(joiner));
}

// -- stream-stream ----------------------------------------------------------------

/// Inner windowed stream-stream join: joiner(const L&, const R&) -> VR.
template <class KS, class LVS, class RVS, class VRS, class Joiner>
service_factory stream_stream_join(std::string name, input_ref left, input_ref right,
                                   std::string out, join_window w, Joiner joiner) {
  return detail::make_factory<
      detail::stream_stream_join_service<join_type::inner, KS, LVS, RVS, VRS, Joiner>>(
      std::move(name), std::move(left), std::move(right), std::move(out), w,
      std::move(joiner));
}

/// Left windowed stream-stream join:
/// joiner(const L&, const std::optional<R>&) -> VR.
template <class KS, class LVS, class RVS, class VRS, class Joiner>
service_factory stream_stream_left_join(std::string name, input_ref left, input_ref right,
                                        std::string out, join_window w, Joiner joiner) {
  return detail::make_factory<
      detail::stream_stream_join_service<join_type::left, KS, LVS, RVS, VRS, Joiner>>(
      std::move(name), std::move(left), std::move(right), std::move(out), w,
      std::move(joiner));
}

/// Outer windowed stream-stream join:
/// joiner(const std::optional<L>&, const std::optional<R>&) -> VR.
template <class KS, class LVS, class RVS, class VRS, class Joiner>
service_factory stream_stream_outer_join(std::string name, input_ref left,
                                         input_ref right, std::string out, join_window w,
                                         Joiner joiner) {
  return detail::make_factory<
      detail::stream_stream_join_service<join_type::outer, KS, LVS, RVS, VRS, Joiner>>(
      std::move(name), std::move(left), std::move(right), std::move(out), w,
      std::move(joiner));
}

} // namespace weft
