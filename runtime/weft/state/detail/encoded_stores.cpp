#include "weft/state/detail/encoded_stores.hpp"

#include <algorithm>
#include <atomic>
#include <limits>

#include "weft/state/detail/epoch_buffer.hpp"
#include "weft/state/key_encoding.hpp"

namespace weft::state::detail {

namespace {

constexpr int64_t none = std::numeric_limits<int64_t>::min();
constexpr int64_t max_time = std::numeric_limits<int64_t>::max();
constexpr size_t purge_batch = 10'000;
constexpr const char* retention_meta_key = "retention";

int64_t saturating_add(int64_t a, int64_t b) {
  if (b > 0 && a > max_time - b) return max_time;
  return a + b;
}

/// Event-time bookkeeping of a store with retention. The newest time seen is
/// atomic because readers filter with it; the rest is the writer's.
///
/// Purging scans the whole store, so it runs only when the cutoff moved by a
/// quarter of the retention since the last purge: the store holds at most
/// about 1.25 × retention of data, and a scan costs O(store) once per
/// retention/4 of event time. Reads hide expired entries in between.
class retention_clock {
 public:
  explicit retention_clock(timestamp_ms retention)
    : retention_(retention), interval_(std::max<int64_t>(1, retention / 4)) {}

  int64_t cutoff() const {
    auto m = newest_.load(std::memory_order_acquire);
    return m == none ? none : m - retention_;
  }
  bool expired(timestamp_ms t) const { return t < cutoff(); }

  void observe(timestamp_ms t) {
    if (t > newest_.load(std::memory_order_relaxed)) {
      newest_.store(t, std::memory_order_release);
      meta_dirty_ = true;
    }
  }
  /// The newest time among `t` and the current one, without observing it.
  int64_t newest() const { return newest_.load(std::memory_order_relaxed); }

  bool purge_due() const {
    auto c = cutoff();
    if (c <= 0) return false; // all times are >= 0: nothing can be expired
    return purged_to_ == none || c >= saturating_add(purged_to_, interval_);
  }
  void purged(int64_t cutoff) {
    purged_to_ = cutoff;
    meta_dirty_ = true;
  }
  bool meta_dirty() const { return meta_dirty_; }
  void meta_saved() { meta_dirty_ = false; }

  meta_entry meta(int64_t newest) const {
    meta_entry e{retention_meta_key, {}};
    append_be64(e.value, newest);
    append_be64(e.value, purged_to_);
    return e;
  }
  meta_entry meta() const { return meta(newest()); }

  status load(const byte_store& base) {
    auto m = base.read_meta(retention_meta_key);
    if (!m) return m.error();
    if (*m && (*m)->size() == 16) {
      newest_.store(read_be64(**m), std::memory_order_release);
      purged_to_ = read_be64(std::string_view{**m}.substr(8));
    }
    return {};
  }

  /// Back to the marks saved in `base` (none if it has none), forgetting the
  /// newer ones: after an aborted epoch, whose records will be processed
  /// again, the clock must not run ahead of the data it describes (a replayed
  /// write would be dropped as expired). On a read error the clock stays.
  void reload(const byte_store& base) {
    auto m = base.read_meta(retention_meta_key);
    if (!m) return;
    bool saved = *m && (*m)->size() == 16;
    newest_.store(saved ? read_be64(**m) : none, std::memory_order_release);
    purged_to_ = saved ? read_be64(std::string_view{**m}.substr(8)) : none;
    meta_dirty_ = false;
  }

 private:
  timestamp_ms retention_;
  int64_t interval_;
  std::atomic<int64_t> newest_{none};
  int64_t purged_to_ = none;
  bool meta_dirty_ = false;
};

status bad_time(const std::string& store, const char* what) {
  return make_error(errc::invalid_argument, "store '" + store + "': " + what +
                                                " must be >= 0 (big-endian key order)");
}

/// Deletes every entry whose decoded time is below `cutoff`, in batches.
template <class TimeOf>
status purge(byte_store& base, retention_clock& clock, int64_t cutoff, TimeOf time_of) {
  std::vector<change> deletes;
  status st;
  auto write = [&] {
    st = base.write(deletes, {});
    deletes.clear();
    return st.ok();
  };
  auto scan = base.all([&](std::string_view k, std::string_view) {
    auto t = time_of(k);
    if (t && *t < cutoff) {
      deletes.push_back(change{std::string{k}, std::nullopt});
      if (deletes.size() >= purge_batch && !write()) return false;
    }
    return true;
  });
  if (!st.ok()) return st;
  if (!scan.ok()) return scan;
  clock.purged(cutoff);
  auto last = base.write(deletes, {clock.meta()});
  if (last.ok()) clock.meta_saved();
  return last;
}

/// The changes of `batch` that are not expired at `cutoff`; `batch` itself
/// (no copy) when none is. Fails on a key too short to decode.
template <class TimeOf>
status filter_expired(const std::string& store, const std::vector<change>& batch,
                      int64_t cutoff, TimeOf time_of, std::vector<change>& kept,
                      bool& copied) {
  copied = false;
  for (size_t i = 0; i < batch.size(); ++i) {
    auto t = time_of(batch[i].key);
    if (!t)
      return make_error(errc::invalid_argument, "store '" + store +
                                                    "': changelog key of " +
                                                    std::to_string(batch[i].key.size()) +
                                                    " bytes has no time suffix");
    if (*t < cutoff && !copied) {
      copied = true;
      kept.assign(batch.begin(), batch.begin() + static_cast<ptrdiff_t>(i));
    } else if (*t >= cutoff && copied) {
      kept.push_back(batch[i]);
    }
  }
  return {};
}

// -- window store ------------------------------------------------------------

std::optional<int64_t> window_time(std::string_view k) {
  auto d = decode_window_key(k);
  if (!d) return std::nullopt;
  return d->start;
}

class window_over_bytes final : public window_store {
 public:
  window_over_bytes(std::unique_ptr<byte_store> base, timestamp_ms retention)
    : base_(std::move(base)), retention_(retention), clock_(retention) {}

  status load() { return clock_.load(*base_); }

  /// Transactional stores: the event-time clock follows the epoch buffer
  /// below back to the last commit when an epoch is aborted.
  void follow_epochs() {
    if (auto* eb = dynamic_cast<epoch_buffer*>(base_.get()))
      eb->on_abort([this] { clock_.reload(*base_); });
  }

  const std::string& name() const override { return base_->name(); }

  status put(std::string_view key, timestamp_ms start,
             std::optional<std::string_view> value) override {
    if (start < 0) return bad_time(name(), "window start");
    clock_.observe(start);
    if (clock_.expired(start)) return {}; // late write to a dropped window
    auto k = encode_window_key(key, start);
    auto st = value ? base_->put(k, *value) : base_->remove(k);
    if (!st.ok()) return st;
    return clock_.purge_due() ? purge(*base_, clock_, clock_.cutoff(), window_time)
                              : status{};
  }

  result<std::optional<std::string>> fetch(std::string_view key,
                                           timestamp_ms start) const override {
    if (start < 0 || clock_.expired(start)) return std::optional<std::string>{};
    return base_->get(encode_window_key(key, start));
  }

  status
  fetch(std::string_view key, timestamp_ms from, timestamp_ms to,
        const std::function<bool(timestamp_ms, std::string_view)>& fn) const override {
    from = std::max<int64_t>({from, clock_.cutoff(), 0});
    if (from > to) return {};
    auto lo = encode_window_key(key, from);
    auto hi = encode_window_key(key, to);
    hi.push_back('\0'); // the smallest key after key+to
    auto want = key.size() + window_suffix_size;
    return base_->range(lo, hi, [&](std::string_view k, std::string_view v) {
      if (k.size() != want) return true; // a longer user key sorting in between
      return fn(read_be64(k.substr(key.size())), v);
    });
  }

  status fetch_all(timestamp_ms from, timestamp_ms to,
                   const std::function<bool(std::string_view, timestamp_ms,
                                            std::string_view)>& fn) const override {
    from = std::max<int64_t>({from, clock_.cutoff(), 0});
    if (from > to) return {};
    return base_->all([&](std::string_view k, std::string_view v) {
      auto d = decode_window_key(k);
      if (!d || d->start < from || d->start > to) return true;
      return fn(d->key, d->start, v);
    });
  }

  status flush() override {
    if (clock_.purge_due()) {
      auto st = purge(*base_, clock_, clock_.cutoff(), window_time);
      if (!st.ok()) return st;
    }
    if (clock_.meta_dirty()) {
      auto st = base_->write({}, {clock_.meta()});
      if (!st.ok()) return st;
      clock_.meta_saved();
    }
    return base_->flush();
  }

  status restore(const std::vector<change>& batch, int64_t next_offset) override {
    int64_t newest = clock_.newest();
    for (auto& c : batch)
      if (auto t = window_time(c.key)) newest = std::max(newest, *t);
    int64_t cutoff = newest == none ? none : newest - retention_;
    std::vector<change> kept;
    bool copied = false;
    auto st = filter_expired(name(), batch, cutoff, window_time, kept, copied);
    if (!st.ok()) return st;
    st = base_->restore(copied ? kept : batch, next_offset, {clock_.meta(newest)});
    if (!st.ok()) return st;
    clock_.observe(newest);
    clock_.meta_saved();
    return {};
  }

  int64_t checkpoint() const override { return base_->checkpoint(); }
  status write_checkpoint(int64_t next_offset) override {
    return base_->write_checkpoint(next_offset);
  }

 private:
  std::unique_ptr<byte_store> base_;
  timestamp_ms retention_;
  retention_clock clock_;
};

// -- session store -----------------------------------------------------------

std::optional<int64_t> session_end(std::string_view k) {
  auto d = decode_session_key(k);
  if (!d) return std::nullopt;
  return d->window.end;
}

class session_over_bytes final : public session_store {
 public:
  session_over_bytes(std::unique_ptr<byte_store> base, timestamp_ms retention)
    : base_(std::move(base)), retention_(retention), clock_(retention) {}

  status load() { return clock_.load(*base_); }

  /// Transactional stores: the event-time clock follows the epoch buffer
  /// below back to the last commit when an epoch is aborted.
  void follow_epochs() {
    if (auto* eb = dynamic_cast<epoch_buffer*>(base_.get()))
      eb->on_abort([this] { clock_.reload(*base_); });
  }

  const std::string& name() const override { return base_->name(); }

  status put(std::string_view key, session_window w,
             std::optional<std::string_view> value) override {
    if (w.start < 0) return bad_time(name(), "session start");
    if (w.end < w.start)
      return make_error(errc::invalid_argument,
                        "store '" + name() + "': session end before its start");
    clock_.observe(w.end);
    if (clock_.expired(w.end)) return {};
    auto k = encode_session_key(key, w);
    auto st = value ? base_->put(k, *value) : base_->remove(k);
    if (!st.ok()) return st;
    return clock_.purge_due() ? purge(*base_, clock_, clock_.cutoff(), session_end)
                              : status{};
  }

  status find_sessions(
      std::string_view key, timestamp_ms earliest_end, timestamp_ms latest_start,
      const std::function<bool(session_window, std::string_view)>& fn) const override {
    earliest_end = std::max<int64_t>({earliest_end, clock_.cutoff(), 0});
    if (latest_start < 0) return {};
    auto lo = encode_session_key(key, {0, earliest_end});
    auto hi = encode_session_key(key, {max_time, max_time});
    hi.push_back('\0');
    auto want = key.size() + session_suffix_size;
    // Sorted by end: every session of `key` ending late enough is visited;
    // those starting after `latest_start` are skipped (not a stop condition:
    // the store does not assume a key's sessions never overlap).
    return base_->range(lo, hi, [&](std::string_view k, std::string_view v) {
      if (k.size() != want) return true;
      auto d = decode_session_key(k);
      if (d->window.start > latest_start) return true;
      return fn(d->window, v);
    });
  }

  status flush() override {
    if (clock_.purge_due()) {
      auto st = purge(*base_, clock_, clock_.cutoff(), session_end);
      if (!st.ok()) return st;
    }
    if (clock_.meta_dirty()) {
      auto st = base_->write({}, {clock_.meta()});
      if (!st.ok()) return st;
      clock_.meta_saved();
    }
    return base_->flush();
  }

  status restore(const std::vector<change>& batch, int64_t next_offset) override {
    int64_t newest = clock_.newest();
    for (auto& c : batch)
      if (auto t = session_end(c.key)) newest = std::max(newest, *t);
    int64_t cutoff = newest == none ? none : newest - retention_;
    std::vector<change> kept;
    bool copied = false;
    auto st = filter_expired(name(), batch, cutoff, session_end, kept, copied);
    if (!st.ok()) return st;
    st = base_->restore(copied ? kept : batch, next_offset, {clock_.meta(newest)});
    if (!st.ok()) return st;
    clock_.observe(newest);
    clock_.meta_saved();
    return {};
  }

  int64_t checkpoint() const override { return base_->checkpoint(); }
  status write_checkpoint(int64_t next_offset) override {
    return base_->write_checkpoint(next_offset);
  }

 private:
  std::unique_ptr<byte_store> base_;
  timestamp_ms retention_;
  retention_clock clock_;
};

status bad_retention(timestamp_ms retention_ms) {
  return make_error(errc::invalid_argument,
                    "retention_ms must be > 0, got " + std::to_string(retention_ms));
}

} // namespace

result<std::unique_ptr<window_store>> make_window_store(std::unique_ptr<byte_store> base,
                                                        timestamp_ms retention_ms) {
  if (retention_ms <= 0) return bad_retention(retention_ms);
  auto s = std::make_unique<window_over_bytes>(std::move(base), retention_ms);
  if (auto st = s->load(); !st.ok()) return st;
  s->follow_epochs();
  return std::unique_ptr<window_store>{std::move(s)};
}

result<std::unique_ptr<session_store>>
make_session_store(std::unique_ptr<byte_store> base, timestamp_ms retention_ms) {
  if (retention_ms <= 0) return bad_retention(retention_ms);
  auto s = std::make_unique<session_over_bytes>(std::move(base), retention_ms);
  if (auto st = s->load(); !st.ok()) return st;
  s->follow_epochs();
  return std::unique_ptr<session_store>{std::move(s)};
}

} // namespace weft::state::detail
