#pragma once
// Typed handles on a task's state stores.
//
// Stores hold bytes (weft/state/store.hpp); a handle names a store and the
// serdes of its keys and values, and does the encoding. A service declares
// the store once (service_base::add_store, or the add_*_store helpers of
// stateful_processor) and keeps the handle as a member; the handle holds no
// pointer, so one handle serves every task: each call looks the store up in
// the context of the record being handled.
//
//   weft::kv_handle<weft::string_serde, weft::int64_serde> totals{"totals"};
//   auto n = totals.get(ctx, "eu").value_or(0);
//   totals.put(ctx, "eu", n + 1);
//
// Errors. A handle is used inside a handler, where an exception is how weft
// unwinds (see weft_error): a store failure (errc::io, state_not_ready) or a
// stored value the serde cannot decode throws weft_error with that status,
// and the runtime treats the record as failed. Keys and values of stores use
// non-nullable serdes: "absent" is std::nullopt, not a null value.

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "weft/services/service.hpp"

namespace weft {

namespace detail {

inline void throw_if_error(const status& s) {
  if (!s.ok()) throw weft_error{s};
}

template <class T>
T value_or_throw(result<T> r) {
  if (!r) throw weft_error{r.error()};
  return std::move(r).value();
}

/// Decodes bytes read from a store; a failure says which store.
template <class S>
typename S::value_type decode_stored(std::string_view bytes, const std::string& store) {
  auto v = S::deserialize(bytes);
  if (!v)
    throw weft_error{
        status{v.error().code(), "store '" + store + "': " + v.error().message()}};
  return std::move(v).value();
}

template <class S>
inline constexpr bool store_serde_v = is_serde_v<S> && !is_nullable_serde_v<S>;

} // namespace detail

/// A typed view of the kv store `name`.
template <class KS, class VS>
class kv_handle {
 public:
  static_assert(detail::store_serde_v<KS> && detail::store_serde_v<VS>,
                "kv_handle<K, V>: both must be non-nullable weft serdes");
  using key_type = typename KS::value_type;
  using value_type = typename VS::value_type;

  kv_handle() = default;
  explicit kv_handle(std::string name) : name_(std::move(name)) {}
  const std::string& name() const { return name_; }

  /// The value of `key`, or nullopt if the store has none.
  std::optional<value_type> get(context& ctx, const key_type& key) const {
    auto v = detail::value_or_throw(ctx.kv_store(name_).get(KS::serialize(key)));
    if (!v) return std::nullopt;
    return detail::decode_stored<VS>(*v, name_);
  }
  void put(context& ctx, const key_type& key, const value_type& value) const {
    detail::throw_if_error(
        ctx.kv_store(name_).put(KS::serialize(key), VS::serialize(value)));
  }
  void remove(context& ctx, const key_type& key) const {
    detail::throw_if_error(ctx.kv_store(name_).remove(KS::serialize(key)));
  }
  /// Calls fn(key, value) for every entry in key byte order; fn returns false
  /// to stop. Do not write to the store from fn: collect, then write.
  template <class Fn>
  void for_each(context& ctx, Fn fn) const {
    detail::throw_if_error(ctx.kv_store(name_).all([&](std::string_view k,
                                                       std::string_view v) {
      return fn(detail::decode_stored<KS>(k, name_), detail::decode_stored<VS>(v, name_));
    }));
  }

 private:
  std::string name_;
};

/// A typed view of the window store `name`: values per (key, window start).
template <class KS, class VS>
class window_handle {
 public:
  static_assert(detail::store_serde_v<KS> && detail::store_serde_v<VS>,
                "window_handle<K, V>: both must be non-nullable weft serdes");
  using key_type = typename KS::value_type;
  using value_type = typename VS::value_type;

  window_handle() = default;
  explicit window_handle(std::string name) : name_(std::move(name)) {}
  const std::string& name() const { return name_; }

  std::optional<value_type> get(context& ctx, const key_type& key,
                                timestamp_ms start) const {
    auto v =
        detail::value_or_throw(ctx.window_store(name_).fetch(KS::serialize(key), start));
    if (!v) return std::nullopt;
    return detail::decode_stored<VS>(*v, name_);
  }
  void put(context& ctx, const key_type& key, timestamp_ms start,
           const value_type& value) const {
    auto bytes = VS::serialize(value);
    detail::throw_if_error(ctx.window_store(name_).put(
        KS::serialize(key), start, std::optional<std::string_view>{bytes}));
  }
  void remove(context& ctx, const key_type& key, timestamp_ms start) const {
    detail::throw_if_error(
        ctx.window_store(name_).put(KS::serialize(key), start, std::nullopt));
  }
  /// The windows of `key` starting in [from, to], oldest first.
  std::vector<std::pair<timestamp_ms, value_type>>
  fetch(context& ctx, const key_type& key, timestamp_ms from, timestamp_ms to) const {
    std::vector<std::pair<timestamp_ms, value_type>> out;
    detail::throw_if_error(ctx.window_store(name_).fetch(
        KS::serialize(key), from, to, [&](timestamp_ms start, std::string_view v) {
          out.emplace_back(start, detail::decode_stored<VS>(v, name_));
          return true;
        }));
    return out;
  }

 private:
  std::string name_;
};

/// A typed view of the session store `name`: values per (key, session).
template <class KS, class VS>
class session_handle {
 public:
  static_assert(detail::store_serde_v<KS> && detail::store_serde_v<VS>,
                "session_handle<K, V>: both must be non-nullable weft serdes");
  using key_type = typename KS::value_type;
  using value_type = typename VS::value_type;

  session_handle() = default;
  explicit session_handle(std::string name) : name_(std::move(name)) {}
  const std::string& name() const { return name_; }

  /// Sessions of `key` ending at or after `earliest_end` and starting at or
  /// before `latest_start`.
  std::vector<std::pair<state::session_window, value_type>>
  find(context& ctx, const key_type& key, timestamp_ms earliest_end,
       timestamp_ms latest_start) const {
    std::vector<std::pair<state::session_window, value_type>> out;
    detail::throw_if_error(ctx.session_store(name_).find_sessions(
        KS::serialize(key), earliest_end, latest_start,
        [&](state::session_window w, std::string_view v) {
          out.emplace_back(w, detail::decode_stored<VS>(v, name_));
          return true;
        }));
    return out;
  }
  void put(context& ctx, const key_type& key, state::session_window w,
           const value_type& value) const {
    auto bytes = VS::serialize(value);
    detail::throw_if_error(ctx.session_store(name_).put(
        KS::serialize(key), w, std::optional<std::string_view>{bytes}));
  }
  void remove(context& ctx, const key_type& key, state::session_window w) const {
    detail::throw_if_error(
        ctx.session_store(name_).put(KS::serialize(key), w, std::nullopt));
  }

 private:
  std::string name_;
};

} // namespace weft
