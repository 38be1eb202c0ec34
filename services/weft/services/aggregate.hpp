#pragma once
// Aggregations by key: count, reduce and aggregate, over all time or per
// window. Each is a service, made by a factory like the variants of
// stateless.hpp, that reads one input, keeps its aggregates in a state store
// named "<service name>-store" and writes results to one output topic.
//
//   // clicks per page, forever: page -> int64
//   n.add(weft::count<str, str>("page-views", "clicks", "views-per-page"));
//
//   // order total per customer in 1-minute windows, final values only
//   n.add(weft::aggregate<str, json_serde<order>, weft::double_serde>(
//       "spend", "orders", "spend-per-minute",
//       weft::tumbling_window{60'000, 5'000},
//       [] { return 0.0; },
//       [](auto& customer, auto& o, double sum) { return sum + o.amount; },
//       weft::emit::on_window_close));
//
// Keys. Records without a key are dropped (drops().null_key), as are records
// without a value unless the value serde is nullable. An input must be
// partitioned by the aggregation key; to aggregate by something else, re-key
// first (group-by):
//
//   // service 1: orders keyed by id -> repartition topic keyed by region
//   n.add(weft::group_by<str, json_serde<order>, str>(
//       "orders-by-region", "orders", "by-region",
//       [](auto& id, auto& o) { return o.region; }));
//   // service 2: reads <application.id>-by-region-repartition
//   n.add(weft::count<str, json_serde<order>>(
//       "orders-per-region", weft::repartitioned("by-region"), "region-counts"));
//
// Results.
// - Over all time: every record emits the key's new aggregate (key -> value,
//   the input record's timestamp). The store holds key -> aggregate.
// - Time windows (tumbling_window, hopping_window): the key is the windowed
//   key of windows.hpp (Kafka's TimeWindowedSerde: key bytes + window start),
//   the value the aggregate. emit::on_update writes each change with the
//   record's timestamp; emit::on_window_close writes each window once, when
//   stream time reaches its end + grace, with timestamp end - 1 (the last
//   instant inside the window), and then removes it from the store. The
//   store holds (key, window start) -> aggregate, retained size + grace.
// - Session windows: the key is Kafka's SessionWindowedSerde (key bytes +
//   end + start), timestamps are the session end. A record within
//   inactivity_gap of sessions merges them; on_update then writes a tombstone
//   for each merged-away session (one whose window changed) and the merged
//   result. A session closes when stream time passes end + gap + grace
//   (Kafka 3.x: a record could extend it until then); on_window_close writes
//   it then, once. Sessions need a merger (aggregate's `merger`). The store
//   retains sessions 2 * gap + grace behind the newest session end.
// - Partitions: a result goes to the partition of its plain key, windowed
//   or not (murmur2 of the key bytes without the window, as Kafka Streams'
//   WindowedStreamPartitioner), so it is co-partitioned with the input.
// - Late: a record whose window closed (time: end <= stream time - grace;
//   session: merged end < stream time - grace - gap) is dropped and counted
//   in drops().late. Timestamps below 0 are dropped (drops().negative_timestamp).
//
// Function shapes, as Kafka Streams' Initializer/Aggregator/Reducer/Merger:
//   init()                         -> A
//   adder(const K&, const V&, const A&) -> A
//   reducer(const V& agg, const V& v) -> V
//   merger(const K&, const A&, const A&) -> A

#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "weft/services/operator_base.hpp"
#include "weft/services/store_handle.hpp"
#include "weft/services/windows.hpp"

namespace weft {

namespace detail {

template <class KS, class VS, class AS>
struct aggregate_fns {
  using key_type = typename KS::value_type;
  using value_type = typename VS::value_type;
  using agg_type = typename AS::value_type;
  /// Empty for reductions: their first value is the aggregate.
  std::function<agg_type()> init;
  std::function<agg_type(const key_type&, const value_type&, const agg_type&)> adder;
  /// Reductions only: the aggregate of a key's first value.
  std::function<agg_type(const key_type&, const value_type&)> first;
  /// Session windows only: combines two sessions' aggregates.
  std::function<agg_type(const key_type&, const agg_type&, const agg_type&)> merger;

  agg_type add(const key_type& k, const value_type& v,
               const std::optional<agg_type>& old) const {
    if (old) return adder(k, v, *old);
    if (init) return adder(k, v, init());
    return first(k, v);
  }
};

/// Shared by the three shapes: input checks and decoding.
template <class KS, class VS>
class keyed_operator : public operator_base {
 public:
  using key_type = typename KS::value_type;
  using value_type = typename VS::value_type;
  explicit keyed_operator(std::string name) : operator_base(std::move(name)) {}

 protected:
  /// Decodes a record, or drops it (returns false) when it has no key, or
  /// no value while VS cannot take one, or (for windows) a negative timestamp.
  bool accept(const record_view& r, bool windowed, key_type& k, value_type& v) {
    if (!r.key && !is_nullable_serde_v<KS>) {
      drop_null_key(r);
      return false;
    }
    if (!r.value && !is_nullable_serde_v<VS>) {
      drop_null_value(r);
      return false;
    }
    if (windowed && r.timestamp < 0) {
      drop_negative_timestamp(r);
      return false;
    }
    k = decode_or_throw<KS>(r.key, "key");
    v = decode_or_throw<VS>(r.value, "value");
    return true;
  }
  static std::string store_name(const std::string& service) { return service + "-store"; }
};

template <class KS, class VS, class AS>
class kv_aggregate_service final : public keyed_operator<KS, VS> {
 public:
  kv_aggregate_service(std::string name, input_ref in, std::string out,
                       aggregate_fns<KS, VS, AS> fns)
    : keyed_operator<KS, VS>(std::move(name)), fns_(std::move(fns)) {
    this->describe_as(service_pattern::stateful, "aggregate");
    this->add_input_ref(std::move(in));
    out_ = this->template to<KS, AS>(std::move(out));
    store_ = kv_handle<KS, AS>{this->store_name(this->name())};
    this->add_store({store_.name(), store_decl::kind::kv});
  }

  void on_record(const record_view& r, context& ctx) override {
    typename KS::value_type k{};
    typename VS::value_type v{};
    if (!this->accept(r, false, k, v)) return;
    auto agg = fns_.add(k, v, store_.get(ctx, k));
    store_.put(ctx, k, agg);
    out_.emit(ctx, k, agg);
  }

 private:
  aggregate_fns<KS, VS, AS> fns_;
  output<KS, AS> out_;
  kv_handle<KS, AS> store_;
};

template <class KS, class VS, class AS>
class time_aggregate_service final : public keyed_operator<KS, VS> {
 public:
  time_aggregate_service(std::string name, input_ref in, std::string out, time_windows w,
                         aggregate_fns<KS, VS, AS> fns, emit mode)
    : keyed_operator<KS, VS>(std::move(name)), w_(w), fns_(std::move(fns)), mode_(mode) {
    this->describe_as(service_pattern::stateful, "windowed aggregate");
    if (w_.size <= 0 || w_.advance <= 0 || w_.advance > w_.size || w_.grace < 0)
      throw weft_error{status{errc::invalid_argument,
                              this->name() + ": windows need 0 < advance <= size and "
                                             "grace >= 0"}};
    this->add_input_ref(std::move(in));
    out_ = this->template to<time_windowed_serde<KS>, AS>(std::move(out));
    store_ = window_handle<KS, AS>{this->store_name(this->name())};
    this->add_store(
        {store_.name(), store_decl::kind::window, w_.size + w_.grace, w_.size});
  }

  void on_record(const record_view& r, context& ctx) override {
    typename KS::value_type k{};
    typename VS::value_type v{};
    if (!this->accept(r, true, k, v)) return;
    auto stream_time = std::max(ctx.stream_time(), r.timestamp);
    // Closed windows go out before this record touches the store: the store
    // may drop them (retention) once a newer window is written, and this
    // record cannot change them anyway (it would be late for them).
    if (mode_ == emit::on_window_close) emit_closed(ctx, stream_time);
    const auto close_time = stream_time - w_.grace;
    for (auto& win : windows_for(r.timestamp, w_)) {
      if (win.end <= close_time) {
        this->drop_late(r, "window [" + std::to_string(win.start) + "," +
                               std::to_string(win.end) + ") closed at stream time " +
                               std::to_string(stream_time));
        continue;
      }
      auto agg = fns_.add(k, v, store_.get(ctx, k, win.start));
      store_.put(ctx, k, win.start, agg);
      if (mode_ == emit::on_update)
        out_.emit(ctx, windowed<typename KS::value_type>{k, win.start, win.end}, agg);
    }
  }

  void on_punctuate(context& ctx) override {
    if (mode_ == emit::on_window_close) emit_closed(ctx, ctx.stream_time());
  }

 private:
  /// Writes and removes every window with end + grace <= stream time.
  void emit_closed(context& ctx, timestamp_ms stream_time) {
    const timestamp_ms last_start = stream_time - w_.grace - w_.size;
    if (last_start < next_start_) return;
    struct closed {
      std::string key;
      timestamp_ms start;
      std::string value;
    };
    std::vector<closed> out;
    auto& store = ctx.window_store(store_.name());
    detail::throw_if_error(
        store.fetch_all(next_start_, last_start,
                        [&](std::string_view k, timestamp_ms start, std::string_view v) {
                          out.push_back({std::string{k}, start, std::string{v}});
                          return true;
                        }));
    for (auto& c : out) {
      // The stored key and aggregate bytes are already the output's
      // encoding: time_windowed_serde<KS> is the key bytes + the start.
      std::string key = c.key;
      char buf[8];
      store_big_endian(buf, static_cast<uint64_t>(c.start));
      key.append(buf, 8);
      ctx.emit_bytes(out_.index(), std::move(key), std::move(c.value), -1,
                     c.start + w_.size - 1);
      detail::throw_if_error(store.put(c.key, c.start, std::nullopt));
    }
    // Windows up to last_start are gone and can never come back (a record
    // for them is late), so the next scan starts after them.
    next_start_ = last_start + 1;
  }

  time_windows w_;
  aggregate_fns<KS, VS, AS> fns_;
  emit mode_;
  output<time_windowed_serde<KS>, AS> out_;
  window_handle<KS, AS> store_;
  timestamp_ms next_start_ = 0; ///< no unemitted closed window starts before this
};

template <class KS, class VS, class AS>
class session_aggregate_service final : public keyed_operator<KS, VS> {
 public:
  using key_type = typename KS::value_type;
  using agg_type = typename AS::value_type;

  session_aggregate_service(std::string name, input_ref in, std::string out,
                            session_window_spec s, aggregate_fns<KS, VS, AS> fns,
                            emit mode)
    : keyed_operator<KS, VS>(std::move(name)), s_(s), fns_(std::move(fns)), mode_(mode) {
    this->describe_as(service_pattern::stateful, "session windows");
    if (s_.inactivity_gap <= 0 || s_.grace < 0)
      throw weft_error{
          status{errc::invalid_argument,
                 this->name() + ": sessions need inactivity_gap > 0 and grace >= 0"}};
    this->add_input_ref(std::move(in));
    out_ = this->template to<session_windowed_serde<KS>, AS>(std::move(out));
    store_ = session_handle<KS, AS>{this->store_name(this->name())};
    // A record within grace may bridge to a session ending up to two gaps
    // before the newest one; retention keeps those.
    this->add_store(
        {store_.name(), store_decl::kind::session, 2 * s_.inactivity_gap + s_.grace, 0});
    if (mode_ == emit::on_window_close) {
      // The session store finds sessions per key only; closing needs them by
      // end time across keys, so an index of open sessions sits beside it.
      ends_ = store_.name() + "-ends";
      this->add_store({ends_, store_decl::kind::kv});
    }
  }

  void on_record(const record_view& r, context& ctx) override {
    key_type k{};
    typename VS::value_type v{};
    if (!this->accept(r, true, k, v)) return;
    const auto ts = r.timestamp;
    const auto stream_time = std::max(ctx.stream_time(), ts);
    const auto close_time = stream_time - s_.grace - s_.inactivity_gap;
    if (mode_ == emit::on_window_close) emit_closed(ctx, close_time);

    auto found = store_.find(ctx, k, ts - s_.inactivity_gap, ts + s_.inactivity_gap);
    state::session_window merged{ts, ts};
    std::optional<agg_type> agg;
    if (fns_.init) agg = fns_.init();
    for (auto& [w, a] : found) {
      agg = agg ? fns_.merger(k, *agg, a) : a;
      merged.start = std::min(merged.start, w.start);
      merged.end = std::max(merged.end, w.end);
    }
    if (merged.end < close_time) {
      this->drop_late(r, "session [" + std::to_string(merged.start) + "," +
                             std::to_string(merged.end) + "] closed at stream time " +
                             std::to_string(stream_time));
      return;
    }
    for (auto& [w, a] : found) {
      if (w.start == merged.start && w.end == merged.end) continue; // overwritten below
      store_.remove(ctx, k, w);
      unindex(ctx, k, w);
      if (mode_ == emit::on_update)
        this->emit_tombstone_at(ctx, out_, windowed<key_type>{k, w.start, w.end}, w.end);
    }
    auto result = fns_.add(k, v, agg);
    store_.put(ctx, k, merged, result);
    index(ctx, k, merged);
    if (mode_ == emit::on_update)
      this->emit_at(ctx, out_, windowed<key_type>{k, merged.start, merged.end}, result,
                    merged.end);
  }

  void on_punctuate(context& ctx) override {
    if (mode_ == emit::on_window_close)
      emit_closed(ctx, ctx.stream_time() - s_.grace - s_.inactivity_gap);
  }

 private:
  // Index key: end (sortable) + start (sortable) + key bytes.
  static std::string index_key(const std::string& key, state::session_window w) {
    return detail::sortable_time(w.end) + detail::sortable_time(w.start) + key;
  }
  void index(context& ctx, const key_type& k, state::session_window w) {
    if (ends_.empty()) return;
    closed_below_ = std::min(closed_below_, w.end);
    detail::throw_if_error(
        ctx.kv_store(ends_).put(index_key(KS::serialize(k), w), std::string_view{}));
  }
  void unindex(context& ctx, const key_type& k, state::session_window w) {
    if (ends_.empty()) return;
    detail::throw_if_error(ctx.kv_store(ends_).remove(index_key(KS::serialize(k), w)));
  }

  /// Writes and removes every session that ends before `close_time`.
  void emit_closed(context& ctx, timestamp_ms close_time) {
    if (close_time <= closed_below_) return;
    auto& index = ctx.kv_store(ends_);
    std::vector<std::string> due;
    // Sessions ending before closed_below_ went out before: starting after
    // them spares the scan the index's deletion markers.
    const auto from = closed_below_ == std::numeric_limits<timestamp_ms>::min()
                          ? std::string{}
                          : detail::sortable_time(closed_below_);
    detail::throw_if_error(index.range(from, detail::sortable_time(close_time),
                                       [&](std::string_view k, std::string_view) {
                                         due.emplace_back(k);
                                         return true;
                                       }));
    auto& sessions = ctx.session_store(store_.name());
    for (auto& entry : due) {
      state::session_window w{detail::from_sortable_time(entry.substr(8, 8)),
                              detail::from_sortable_time(entry.substr(0, 8))};
      std::string key = entry.substr(16);
      std::optional<std::string> value;
      detail::throw_if_error(sessions.find_sessions(
          key, w.end, w.start, [&](state::session_window f, std::string_view v) {
            if (f.start != w.start || f.end != w.end) return true;
            value = std::string{v};
            return false;
          }));
      if (value) {
        char buf[16];
        store_big_endian(buf, static_cast<uint64_t>(w.end));
        store_big_endian(buf + 8, static_cast<uint64_t>(w.start));
        ctx.emit_bytes(out_.index(), key + std::string(buf, 16), std::move(value), -1,
                       w.end);
        detail::throw_if_error(sessions.put(key, w, std::nullopt));
      }
      detail::throw_if_error(index.remove(entry));
    }
    closed_below_ = close_time;
  }

  session_window_spec s_;
  aggregate_fns<KS, VS, AS> fns_;
  emit mode_;
  output<session_windowed_serde<KS>, AS> out_;
  session_handle<KS, AS> store_;
  std::string ends_; ///< index store of open sessions (on_window_close only)
  /// No indexed session ends before this (lowered by an earlier end).
  timestamp_ms closed_below_ = std::numeric_limits<timestamp_ms>::min();
};

template <class KS, class VS>
aggregate_fns<KS, VS, int64_serde> count_fns() {
  aggregate_fns<KS, VS, int64_serde> f;
  f.init = [] { return int64_t{0}; };
  f.adder = [](auto&, auto&, int64_t n) { return n + 1; };
  f.merger = [](auto&, int64_t a, int64_t b) { return a + b; };
  return f;
}

template <class KS, class VS, class Reducer>
aggregate_fns<KS, VS, VS> reduce_fns(Reducer reducer) {
  aggregate_fns<KS, VS, VS> f;
  f.adder = [reducer](auto&, auto& v, auto& agg) { return reducer(agg, v); };
  f.first = [](auto&, auto& v) { return v; };
  f.merger = [reducer](auto&, auto& a, auto& b) { return reducer(a, b); };
  return f;
}

template <class KS, class VS, class AS>
service_factory kv_factory(std::string name, input_ref in, std::string out,
                           aggregate_fns<KS, VS, AS> f) {
  return [=]() -> std::unique_ptr<service_base> {
    return std::make_unique<kv_aggregate_service<KS, VS, AS>>(name, in, out, f);
  };
}

template <class KS, class VS, class AS>
service_factory time_factory(std::string name, input_ref in, std::string out,
                             time_windows w, aggregate_fns<KS, VS, AS> f, emit mode) {
  return [=]() -> std::unique_ptr<service_base> {
    return std::make_unique<time_aggregate_service<KS, VS, AS>>(name, in, out, w, f,
                                                                mode);
  };
}

template <class KS, class VS, class AS>
service_factory session_factory(std::string name, input_ref in, std::string out,
                                session_window_spec s, aggregate_fns<KS, VS, AS> f,
                                emit mode) {
  return [=]() -> std::unique_ptr<service_base> {
    return std::make_unique<session_aggregate_service<KS, VS, AS>>(name, in, out, s, f,
                                                                   mode);
  };
}

} // namespace detail

// -- over all time ---------------------------------------------------------------

/// Aggregates each key's values: agg = adder(key, value, agg), starting from
/// init(); writes key -> agg to `out` on every update.
template <class KS, class VS, class AS, class Init, class Adder>
service_factory aggregate(std::string name, input_ref in, std::string out, Init init,
                          Adder adder) {
  detail::aggregate_fns<KS, VS, AS> f;
  f.init = std::move(init);
  f.adder = std::move(adder);
  return detail::kv_factory(std::move(name), std::move(in), std::move(out), std::move(f));
}

/// Counts records per key: key -> int64 (Kafka's LongSerde).
template <class KS, class VS>
service_factory count(std::string name, input_ref in, std::string out) {
  return detail::kv_factory(std::move(name), std::move(in), std::move(out),
                            detail::count_fns<KS, VS>());
}

/// Combines each key's values with reducer(agg, value) -> V; a key's first
/// value is its aggregate as it is.
template <class KS, class VS, class Reducer>
service_factory reduce(std::string name, input_ref in, std::string out, Reducer reducer) {
  return detail::kv_factory(std::move(name), std::move(in), std::move(out),
                            detail::reduce_fns<KS, VS>(std::move(reducer)));
}

// -- time windows (tumbling, hopping) -------------------------------------------

/// aggregate() per key and time window; `w` is a tumbling_window or a
/// hopping_window.
template <class KS, class VS, class AS, class Init, class Adder>
service_factory aggregate(std::string name, input_ref in, std::string out, time_windows w,
                          Init init, Adder adder, emit mode = emit::on_update) {
  detail::aggregate_fns<KS, VS, AS> f;
  f.init = std::move(init);
  f.adder = std::move(adder);
  return detail::time_factory(std::move(name), std::move(in), std::move(out), w,
                              std::move(f), mode);
}

/// count() per key and time window.
template <class KS, class VS>
service_factory count(std::string name, input_ref in, std::string out, time_windows w,
                      emit mode = emit::on_update) {
  return detail::time_factory(std::move(name), std::move(in), std::move(out), w,
                              detail::count_fns<KS, VS>(), mode);
}

/// reduce() per key and time window.
template <class KS, class VS, class Reducer>
service_factory reduce(std::string name, input_ref in, std::string out, time_windows w,
                       Reducer reducer, emit mode = emit::on_update) {
  return detail::time_factory(std::move(name), std::move(in), std::move(out), w,
                              detail::reduce_fns<KS, VS>(std::move(reducer)), mode);
}

// -- session windows ------------------------------------------------------------

/// aggregate() per key and session; merger(key, a, b) combines the
/// aggregates of sessions that a record bridges.
template <class KS, class VS, class AS, class Init, class Adder, class Merger>
service_factory aggregate(std::string name, input_ref in, std::string out,
                          session_window_spec s, Init init, Adder adder, Merger merger,
                          emit mode = emit::on_update) {
  detail::aggregate_fns<KS, VS, AS> f;
  f.init = std::move(init);
  f.adder = std::move(adder);
  f.merger = std::move(merger);
  return detail::session_factory(std::move(name), std::move(in), std::move(out), s,
                                 std::move(f), mode);
}

/// count() per key and session.
template <class KS, class VS>
service_factory count(std::string name, input_ref in, std::string out,
                      session_window_spec s, emit mode = emit::on_update) {
  return detail::session_factory(std::move(name), std::move(in), std::move(out), s,
                                 detail::count_fns<KS, VS>(), mode);
}

/// reduce() per key and session; the reducer also merges sessions.
template <class KS, class VS, class Reducer>
service_factory reduce(std::string name, input_ref in, std::string out,
                       session_window_spec s, Reducer reducer,
                       emit mode = emit::on_update) {
  return detail::session_factory(std::move(name), std::move(in), std::move(out), s,
                                 detail::reduce_fns<KS, VS>(std::move(reducer)), mode);
}

// -- group-by --------------------------------------------------------------------

/// Re-keys `in` by key_fn(key, value) -> K2 into the repartition topic
/// `repartition_name`, so that an aggregation reading
/// repartitioned(repartition_name) sees every record of a new key in one task
/// (Kafka Streams' groupBy + its repartition topic). See the top of this file.
template <class KS, class VS, class KS2, class Fn>
service_factory group_by(std::string name, input_ref in, std::string repartition_name,
                         Fn key_fn) {
  return rekey<KS, VS, KS2>(std::move(name), std::move(in), std::move(repartition_name),
                            std::move(key_fn));
}

} // namespace weft
