#include "weft/state/layered_store.hpp"
#include "weft/state/detail/overlay_scan.hpp"

#include <algorithm>
#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "weft/state/detail/admission_filter.hpp"
#include "weft/state/detail/byte_store.hpp"
#include "weft/state/key_encoding.hpp"
#include "weft/state/value_cache.hpp"

namespace weft::state {

timestamp_hook::~timestamp_hook() = default;
discard_hook::~discard_hook() = default;

namespace {

template <class Store>
timestamp_hook* hook_of(Store* s) {
  return dynamic_cast<timestamp_hook*>(s);
}

template <class Store>
void set_ts(Store& store, timestamp_ms ts) {
  if (auto* h = hook_of(&store)) h->set_timestamp(ts);
}

// -- caching -------------------------------------------------------------------

class caching_kv final : public kv_store, public timestamp_hook, public discard_hook {
 public:
  caching_kv(std::unique_ptr<kv_store> inner, size_t max_dirty,
             std::shared_ptr<value_cache_budget> budget)
    : inner_(std::move(inner)), inner_hook_(hook_of(inner_.get())),
      inner_batch_(dynamic_cast<detail::batch_writer*>(inner_.get())),
      max_dirty_(max_dirty == 0 ? 1 : max_dirty), budget_(std::move(budget)),
      admission_(0) {
    if (budget_) {
      budget_->join();
      admission_.resize(admission_window());
    }
  }

  ~caching_kv() override {
    if (budget_) {
      budget_->give(clean_bytes_);
      budget_->leave();
    }
  }

  const std::string& name() const override { return inner_->name(); }

  result<std::optional<std::string>> get(std::string_view key) const override {
    uint64_t generation = 0;
    {
      std::shared_lock lock{mtx_};
      auto i = dirty_.find(key);
      if (i != dirty_.end()) return i->second.value;
      if (budget_) {
        auto c = clean_index_.find(key);
        if (c != clean_index_.end()) return c->second->value;
      }
      generation = generation_;
    }
    // Not dirty here: a concurrent flush writes below before it erases here,
    // so the value is in inner_ by now.
    auto v = inner_->get(key);
    if (budget_ && v.ok()) {
      // Kept only if no flush or discard came between the read below and
      // now: one that did may have kept a newer value, which this older one
      // must not replace.
      std::unique_lock lock{mtx_};
      if (generation == generation_ && admit(key)) keep(key, *v);
    }
    return v;
  }

  status put(std::string_view key, std::string_view value) override {
    return write(key, std::optional<std::string_view>{value});
  }

  status remove(std::string_view key) override { return write(key, std::nullopt); }

  status range(std::string_view from, std::string_view to,
               const visitor& fn) const override {
    detail::overlay_entries d;
    {
      std::shared_lock lock{mtx_};
      auto i = dirty_.lower_bound(from);
      auto end = to.empty() ? dirty_.end() : dirty_.lower_bound(to);
      for (; i != end; ++i)
        d.emplace_back(i->first, i->second.value);
    }
    return detail::overlay_scan(d, *inner_, from, to, fn);
  }

  uint64_t approximate_size() const override {
    size_t dirty;
    {
      std::shared_lock lock{mtx_};
      dirty = dirty_.size();
    }
    return inner_->approximate_size() + dirty; // an estimate: may count a key twice
  }

  status flush() override {
    if (auto st = spill(); !st.ok()) return st;
    return inner_->flush();
  }

  status restore(const std::vector<change>& batch, int64_t next_offset) override {
    if (!dirty_.empty())
      return make_error(errc::internal,
                        "store '" + name() + "': restore while the cache holds " +
                            std::to_string(dirty_.size()) + " unflushed writes");
    forget_values(); // the restore writes below, past the clean values
    return inner_->restore(batch, next_offset);
  }

  int64_t checkpoint() const override { return inner_->checkpoint(); }
  status write_checkpoint(int64_t next_offset) override {
    return inner_->write_checkpoint(next_offset);
  }

  void set_timestamp(timestamp_ms ts) override {
    ts_ = ts;
    if (inner_hook_) inner_hook_->set_timestamp(ts);
  }

  /// Also forgets the clean values: some were flushed in this epoch, which
  /// the epoch buffer below drops with it.
  void discard() override {
    std::unique_lock lock{mtx_};
    dirty_.clear();
    forget_values_locked();
  }

 private:
  struct entry {
    std::optional<std::string> value; ///< nullopt: a pending remove
    timestamp_ms ts = 0;              ///< of the record that wrote it
  };
  struct clean_entry {
    std::string key;
    std::optional<std::string> value; ///< nullopt: known absent below
  };

  status write(std::string_view key, std::optional<std::string_view> value) {
    size_t n;
    {
      std::unique_lock lock{mtx_};
      auto i = dirty_.find(key);
      if (i == dirty_.end()) i = dirty_.emplace(std::string{key}, entry{}).first;
      if (value)
        i->second.value.emplace(*value);
      else
        i->second.value.reset();
      i->second.ts = ts_;
      n = dirty_.size();
    }
    return n > max_dirty_ ? spill() : status{};
  }

  /// Writes every dirty entry down, in key order, then forgets them: in
  /// batches when the layer below takes batches (one RocksDB WriteBatch per
  /// batch), else one by one. Only the writer changes dirty_, so it may read
  /// it here without the lock; readers see an entry in the cache until it is
  /// in inner_.
  status spill() {
    if (dirty_.empty()) return {};
    if (!inner_batch_) return spill_one_by_one();
    std::vector<change> batch;
    std::vector<timestamp_ms> stamps;
    batch.reserve(std::min(dirty_.size(), spill_batch));
    stamps.reserve(batch.capacity());
    while (!dirty_.empty()) {
      batch.clear();
      stamps.clear();
      auto end = dirty_.begin();
      for (; end != dirty_.end() && batch.size() < spill_batch; ++end) {
        batch.push_back(change{end->first, end->second.value});
        stamps.push_back(end->second.ts);
      }
      if (auto st = inner_batch_->write_batch(batch, stamps); !st.ok()) return st;
      std::unique_lock lock{mtx_};
      keep_values(dirty_.begin(), end);
      dirty_.erase(dirty_.begin(), end);
    }
    return {};
  }

  /// Under the lock, after [from, to) reached inner_: the clean values kept
  /// of them take the values written (none is added: admission is by reads),
  /// and reads that started before must not keep what they read
  /// (generation_).
  template <class It>
  void keep_values(It from, It to) {
    if (!budget_) return;
    if (!clean_index_.empty())
      for (auto i = from; i != to; ++i) {
        auto c = clean_index_.find(std::string_view{i->first});
        if (c == clean_index_.end()) continue;
        auto& v = i->second.value;
        update(*c->second, v ? std::optional<std::string_view>{*v} : std::nullopt);
      }
    ++generation_;
  }

  /// Under the unique lock: whether a value read from below for `key` is
  /// kept — on the key's second miss within the admission window, which
  /// follows this layer's share of the budget.
  bool admit(std::string_view key) const {
    auto window = admission_window();
    if (window != admission_.window()) admission_.resize(window);
    return admission_.seen_before(std::hash<std::string_view>{}(key));
  }

  /// The clean entries this layer's share of the budget holds, at the mean
  /// charge of those it keeps.
  size_t admission_window() const {
    size_t mean = clean_.empty() ? 128 : clean_bytes_ / clean_.size();
    // Rounded to a power of two, so that values' sizes drifting a little
    // do not start the window over.
    size_t want = budget_->max_bytes() / std::max<size_t>(mean, 1) / budget_->users();
    size_t window = 1;
    while (window < want)
      window <<= 1;
    return window;
  }

  /// Bytes a clean entry is charged: its index node and deque slot, and
  /// what its strings hold on the heap.
  static size_t charge(const clean_entry& e) {
    constexpr size_t node = 128, sso = 15;
    return node + (e.key.size() > sso ? e.key.capacity() : 0) +
           (e.value && e.value->size() > sso ? e.value->capacity() : 0);
  }

  /// Under the unique lock: keeps `value` (nullopt: known absent) for `key`,
  /// in place if kept already, else as the newest entry after evicting the
  /// oldest ones while the node is over budget.
  void keep(std::string_view key, std::optional<std::string_view> value) const {
    auto c = clean_index_.find(key);
    if (c != clean_index_.end()) return update(*c->second, value);
    clean_entry fresh{std::string{key},
                      value ? std::optional<std::string>{*value} : std::nullopt};
    auto need = charge(fresh);
    while (!budget_->fits(need) && !clean_.empty())
      evict_oldest();
    if (!budget_->fits(need)) return; // nothing of ours left to give back
    clean_.push_back(std::move(fresh));
    auto& e = clean_.back();
    clean_index_.emplace(std::string_view{e.key}, &e);
    budget_->take(need);
    clean_bytes_ += need;
  }

  /// Under the unique lock: kept entry `e` takes `value`.
  void update(clean_entry& e, std::optional<std::string_view> value) const {
    auto before = charge(e);
    if (value)
      e.value.emplace(*value);
    else
      e.value.reset();
    auto after = charge(e);
    budget_->take(after);
    budget_->give(before);
    clean_bytes_ += after - before;
    // A larger value may have spent the budget: give back our oldest (the
    // entry just updated among them, if it is the oldest).
    while (!budget_->fits(0) && !clean_.empty())
      evict_oldest();
  }

  void evict_oldest() const {
    auto& e = clean_.front();
    auto n = charge(e);
    clean_index_.erase(std::string_view{e.key});
    clean_.pop_front();
    budget_->give(n);
    clean_bytes_ -= n;
  }

  void forget_values() {
    std::unique_lock lock{mtx_};
    forget_values_locked();
  }

  /// Drops every clean entry (their values may be gone below).
  void forget_values_locked() {
    if (!budget_) return;
    clean_index_.clear();
    clean_.clear();
    budget_->give(clean_bytes_);
    clean_bytes_ = 0;
    ++generation_;
  }

  status spill_one_by_one() {
    status st;
    auto done = dirty_.begin();
    for (; done != dirty_.end(); ++done) {
      if (inner_hook_) inner_hook_->set_timestamp(done->second.ts);
      auto& v = done->second.value;
      st = v ? inner_->put(done->first, *v) : inner_->remove(done->first);
      if (!st.ok()) break;
    }
    if (inner_hook_) inner_hook_->set_timestamp(ts_);
    std::unique_lock lock{mtx_};
    keep_values(dirty_.begin(), done);
    dirty_.erase(dirty_.begin(), done);
    return st;
  }

  static constexpr size_t spill_batch = 4096;

  std::unique_ptr<kv_store> inner_;
  timestamp_hook* inner_hook_;
  detail::batch_writer* inner_batch_; ///< null: inner_ takes one write at a time
  size_t max_dirty_;
  std::shared_ptr<value_cache_budget> budget_; ///< null: no clean values kept
  mutable std::shared_mutex mtx_;
  std::map<std::string, entry, std::less<>> dirty_;
  /// Clean values (value_cache.hpp), under mtx_: oldest first, and by key
  /// (views of the entries' own keys; a deque keeps elements in place).
  mutable std::deque<clean_entry> clean_;
  mutable std::unordered_map<std::string_view, clean_entry*> clean_index_;
  mutable size_t clean_bytes_ = 0;
  /// Under mtx_: counts the changes to what the clean values should hold
  /// (flushes, forgets); a get that read below compares it before keeping
  /// its value.
  uint64_t generation_ = 0;
  /// Under the unique lock: which keys read from below are kept.
  mutable detail::admission_filter admission_;
  timestamp_ms ts_ = 0;
};

// -- changelogging ---------------------------------------------------------------

/// The timestamp and forwarding shared by the three changelogging layers.
template <class Store>
class logging_base : public timestamp_hook {
 public:
  logging_base(std::unique_ptr<Store> inner, changelog_sink& sink)
    : inner_(std::move(inner)), inner_hook_(hook_of(inner_.get())), sink_(sink) {}

  void set_timestamp(timestamp_ms ts) override {
    ts_ = ts;
    if (inner_hook_) inner_hook_->set_timestamp(ts);
  }

 protected:
  void log(std::string_view key, std::optional<std::string_view> value) {
    sink_.log_change(inner_->name(), key, value, ts_);
  }

  std::unique_ptr<Store> inner_;
  timestamp_hook* inner_hook_;
  changelog_sink& sink_;
  timestamp_ms ts_ = 0;
};

class changelogging_kv final : public kv_store,
                               public logging_base<kv_store>,
                               public detail::batch_writer {
 public:
  changelogging_kv(std::unique_ptr<kv_store> inner, changelog_sink& sink)
    : logging_base(std::move(inner), sink),
      inner_batch_(dynamic_cast<detail::batch_writer*>(inner_.get())) {}

  /// Writes the batch below (atomically if it can), then logs each change
  /// with its own timestamp.
  status write_batch(const std::vector<change>& batch,
                     const std::vector<timestamp_ms>& stamps) override {
    if (inner_batch_) {
      if (auto st = inner_batch_->write_batch(batch, stamps); !st.ok()) return st;
    } else {
      for (auto& c : batch) {
        auto st = c.value ? inner_->put(c.key, *c.value) : inner_->remove(c.key);
        if (!st.ok()) return st;
      }
    }
    for (size_t i = 0; i < batch.size(); ++i) {
      auto& v = batch[i].value;
      sink_.log_change(inner_->name(), batch[i].key,
                       v ? std::optional<std::string_view>{*v} : std::nullopt,
                       i < stamps.size() ? stamps[i] : ts_);
    }
    return {};
  }

  const std::string& name() const override { return inner_->name(); }
  result<std::optional<std::string>> get(std::string_view key) const override {
    return inner_->get(key);
  }
  status put(std::string_view key, std::string_view value) override {
    auto st = inner_->put(key, value);
    if (st.ok()) log(key, value);
    return st;
  }
  status remove(std::string_view key) override {
    auto st = inner_->remove(key);
    if (st.ok()) log(key, std::nullopt);
    return st;
  }
  status range(std::string_view from, std::string_view to,
               const visitor& fn) const override {
    return inner_->range(from, to, fn);
  }
  uint64_t approximate_size() const override { return inner_->approximate_size(); }
  status flush() override { return inner_->flush(); }
  status restore(const std::vector<change>& batch, int64_t next_offset) override {
    return inner_->restore(batch, next_offset);
  }
  int64_t checkpoint() const override { return inner_->checkpoint(); }
  status write_checkpoint(int64_t next_offset) override {
    return inner_->write_checkpoint(next_offset);
  }

 private:
  detail::batch_writer* inner_batch_;
};

class changelogging_window final : public window_store,
                                   public logging_base<window_store> {
 public:
  using logging_base::logging_base;

  const std::string& name() const override { return inner_->name(); }
  status put(std::string_view key, timestamp_ms start,
             std::optional<std::string_view> value) override {
    auto st = inner_->put(key, start, value);
    if (st.ok()) log(encode_window_key(key, start), value);
    return st;
  }
  result<std::optional<std::string>> fetch(std::string_view key,
                                           timestamp_ms start) const override {
    return inner_->fetch(key, start);
  }
  status
  fetch(std::string_view key, timestamp_ms from, timestamp_ms to,
        const std::function<bool(timestamp_ms, std::string_view)>& fn) const override {
    return inner_->fetch(key, from, to, fn);
  }
  status fetch_all(timestamp_ms from, timestamp_ms to,
                   const std::function<bool(std::string_view, timestamp_ms,
                                            std::string_view)>& fn) const override {
    return inner_->fetch_all(from, to, fn);
  }
  status flush() override { return inner_->flush(); }
  status restore(const std::vector<change>& batch, int64_t next_offset) override {
    return inner_->restore(batch, next_offset);
  }
  int64_t checkpoint() const override { return inner_->checkpoint(); }
  status write_checkpoint(int64_t next_offset) override {
    return inner_->write_checkpoint(next_offset);
  }
};

class changelogging_session final : public session_store,
                                    public logging_base<session_store> {
 public:
  using logging_base::logging_base;

  const std::string& name() const override { return inner_->name(); }
  status put(std::string_view key, session_window w,
             std::optional<std::string_view> value) override {
    auto st = inner_->put(key, w, value);
    if (st.ok()) log(encode_session_key(key, w), value);
    return st;
  }
  status find_sessions(
      std::string_view key, timestamp_ms earliest_end, timestamp_ms latest_start,
      const std::function<bool(session_window, std::string_view)>& fn) const override {
    return inner_->find_sessions(key, earliest_end, latest_start, fn);
  }
  status flush() override { return inner_->flush(); }
  status restore(const std::vector<change>& batch, int64_t next_offset) override {
    return inner_->restore(batch, next_offset);
  }
  int64_t checkpoint() const override { return inner_->checkpoint(); }
  status write_checkpoint(int64_t next_offset) override {
    return inner_->write_checkpoint(next_offset);
  }
};

// -- metering --------------------------------------------------------------------

/// Times one call and adds it to a count and a latency total.
template <class F>
auto timed(std::atomic<uint64_t>& count, std::atomic<uint64_t>& ns,
           std::atomic<uint64_t>& errors, F&& f) {
  auto t0 = std::chrono::steady_clock::now();
  auto r = f();
  auto dt = std::chrono::steady_clock::now() - t0;
  count.fetch_add(1, std::memory_order_relaxed);
  ns.fetch_add(static_cast<uint64_t>(
                   std::chrono::duration_cast<std::chrono::nanoseconds>(dt).count()),
               std::memory_order_relaxed);
  if (!r.ok()) errors.fetch_add(1, std::memory_order_relaxed);
  return r;
}

} // namespace

void set_record_timestamp(kv_store& store, timestamp_ms ts) {
  set_ts(store, ts);
}
void set_record_timestamp(window_store& store, timestamp_ms ts) {
  set_ts(store, ts);
}
void set_record_timestamp(session_store& store, timestamp_ms ts) {
  set_ts(store, ts);
}

void discard_unflushed(kv_store& store) {
  if (auto* d = dynamic_cast<discard_hook*>(&store)) d->discard();
}

std::unique_ptr<kv_store> make_caching_kv(std::unique_ptr<kv_store> inner,
                                          size_t max_dirty_entries,
                                          std::shared_ptr<value_cache_budget> values) {
  return std::make_unique<caching_kv>(std::move(inner), max_dirty_entries,
                                      std::move(values));
}

std::unique_ptr<kv_store> make_changelogging_kv(std::unique_ptr<kv_store> inner,
                                                changelog_sink& sink) {
  return std::make_unique<changelogging_kv>(std::move(inner), sink);
}

std::unique_ptr<window_store>
make_changelogging_window(std::unique_ptr<window_store> inner, changelog_sink& sink) {
  return std::make_unique<changelogging_window>(std::move(inner), sink);
}

std::unique_ptr<session_store>
make_changelogging_session(std::unique_ptr<session_store> inner, changelog_sink& sink) {
  return std::make_unique<changelogging_session>(std::move(inner), sink);
}

store_metrics detail::meter::read() const {
  auto r = [](const std::atomic<uint64_t>& a) {
    return a.load(std::memory_order_relaxed);
  };
  store_metrics m;
  m.gets = r(gets);
  m.puts = r(puts);
  m.removes = r(removes);
  m.scans = r(scans);
  m.flushes = r(flushes);
  m.restores = r(restores);
  m.errors = r(errors);
  m.get_ns = r(get_ns);
  m.put_ns = r(put_ns);
  m.remove_ns = r(remove_ns);
  m.scan_ns = r(scan_ns);
  m.flush_ns = r(flush_ns);
  m.restore_ns = r(restore_ns);
  return m;
}

// metered_kv_store

metered_kv_store::metered_kv_store(std::unique_ptr<kv_store> inner)
  : inner_(std::move(inner)), inner_hook_(hook_of(inner_.get())),
    inner_discard_(dynamic_cast<discard_hook*>(inner_.get())) {}

const std::string& metered_kv_store::name() const {
  return inner_->name();
}

result<std::optional<std::string>> metered_kv_store::get(std::string_view key) const {
  return timed(meter_.gets, meter_.get_ns, meter_.errors,
               [&] { return inner_->get(key); });
}

status metered_kv_store::put(std::string_view key, std::string_view value) {
  return timed(meter_.puts, meter_.put_ns, meter_.errors,
               [&] { return inner_->put(key, value); });
}

status metered_kv_store::remove(std::string_view key) {
  return timed(meter_.removes, meter_.remove_ns, meter_.errors,
               [&] { return inner_->remove(key); });
}

status metered_kv_store::range(std::string_view from, std::string_view to,
                               const visitor& fn) const {
  return timed(meter_.scans, meter_.scan_ns, meter_.errors,
               [&] { return inner_->range(from, to, fn); });
}

uint64_t metered_kv_store::approximate_size() const {
  return inner_->approximate_size();
}

status metered_kv_store::flush() {
  return timed(meter_.flushes, meter_.flush_ns, meter_.errors,
               [&] { return inner_->flush(); });
}

status metered_kv_store::restore(const std::vector<change>& batch, int64_t next_offset) {
  return timed(meter_.restores, meter_.restore_ns, meter_.errors,
               [&] { return inner_->restore(batch, next_offset); });
}

int64_t metered_kv_store::checkpoint() const {
  return inner_->checkpoint();
}

status metered_kv_store::write_checkpoint(int64_t next_offset) {
  return inner_->write_checkpoint(next_offset);
}

void metered_kv_store::set_timestamp(timestamp_ms ts) {
  if (inner_hook_) inner_hook_->set_timestamp(ts);
}

void metered_kv_store::discard() {
  if (inner_discard_) inner_discard_->discard();
}

// metered_window_store

metered_window_store::metered_window_store(std::unique_ptr<window_store> inner)
  : inner_(std::move(inner)), inner_hook_(hook_of(inner_.get())) {}

const std::string& metered_window_store::name() const {
  return inner_->name();
}

status metered_window_store::put(std::string_view key, timestamp_ms start,
                                 std::optional<std::string_view> value) {
  auto& count = value ? meter_.puts : meter_.removes;
  auto& ns = value ? meter_.put_ns : meter_.remove_ns;
  return timed(count, ns, meter_.errors, [&] { return inner_->put(key, start, value); });
}

result<std::optional<std::string>> metered_window_store::fetch(std::string_view key,
                                                               timestamp_ms start) const {
  return timed(meter_.gets, meter_.get_ns, meter_.errors,
               [&] { return inner_->fetch(key, start); });
}

status metered_window_store::fetch(
    std::string_view key, timestamp_ms from, timestamp_ms to,
    const std::function<bool(timestamp_ms, std::string_view)>& fn) const {
  return timed(meter_.scans, meter_.scan_ns, meter_.errors,
               [&] { return inner_->fetch(key, from, to, fn); });
}

status metered_window_store::fetch_all(
    timestamp_ms from, timestamp_ms to,
    const std::function<bool(std::string_view, timestamp_ms, std::string_view)>& fn)
    const {
  return timed(meter_.scans, meter_.scan_ns, meter_.errors,
               [&] { return inner_->fetch_all(from, to, fn); });
}

status metered_window_store::flush() {
  return timed(meter_.flushes, meter_.flush_ns, meter_.errors,
               [&] { return inner_->flush(); });
}

status metered_window_store::restore(const std::vector<change>& batch,
                                     int64_t next_offset) {
  return timed(meter_.restores, meter_.restore_ns, meter_.errors,
               [&] { return inner_->restore(batch, next_offset); });
}

int64_t metered_window_store::checkpoint() const {
  return inner_->checkpoint();
}

status metered_window_store::write_checkpoint(int64_t next_offset) {
  return inner_->write_checkpoint(next_offset);
}

void metered_window_store::set_timestamp(timestamp_ms ts) {
  if (inner_hook_) inner_hook_->set_timestamp(ts);
}

// metered_session_store

metered_session_store::metered_session_store(std::unique_ptr<session_store> inner)
  : inner_(std::move(inner)), inner_hook_(hook_of(inner_.get())) {}

const std::string& metered_session_store::name() const {
  return inner_->name();
}

status metered_session_store::put(std::string_view key, session_window w,
                                  std::optional<std::string_view> value) {
  auto& count = value ? meter_.puts : meter_.removes;
  auto& ns = value ? meter_.put_ns : meter_.remove_ns;
  return timed(count, ns, meter_.errors, [&] { return inner_->put(key, w, value); });
}

status metered_session_store::find_sessions(
    std::string_view key, timestamp_ms earliest_end, timestamp_ms latest_start,
    const std::function<bool(session_window, std::string_view)>& fn) const {
  return timed(meter_.scans, meter_.scan_ns, meter_.errors, [&] {
    return inner_->find_sessions(key, earliest_end, latest_start, fn);
  });
}

status metered_session_store::flush() {
  return timed(meter_.flushes, meter_.flush_ns, meter_.errors,
               [&] { return inner_->flush(); });
}

status metered_session_store::restore(const std::vector<change>& batch,
                                      int64_t next_offset) {
  return timed(meter_.restores, meter_.restore_ns, meter_.errors,
               [&] { return inner_->restore(batch, next_offset); });
}

int64_t metered_session_store::checkpoint() const {
  return inner_->checkpoint();
}

status metered_session_store::write_checkpoint(int64_t next_offset) {
  return inner_->write_checkpoint(next_offset);
}

void metered_session_store::set_timestamp(timestamp_ms ts) {
  if (inner_hook_) inner_hook_->set_timestamp(ts);
}

// stacks

std::unique_ptr<metered_kv_store> make_kv_stack(std::unique_ptr<kv_store> base,
                                                changelog_sink* sink,
                                                kv_stack_options options) {
  if (sink) base = make_changelogging_kv(std::move(base), *sink);
  if (options.caching)
    base = make_caching_kv(std::move(base), options.max_dirty_entries, options.values);
  return std::make_unique<metered_kv_store>(std::move(base));
}

std::unique_ptr<metered_window_store>
make_window_stack(std::unique_ptr<window_store> base, changelog_sink* sink) {
  if (sink) base = make_changelogging_window(std::move(base), *sink);
  return std::make_unique<metered_window_store>(std::move(base));
}

std::unique_ptr<metered_session_store>
make_session_stack(std::unique_ptr<session_store> base, changelog_sink* sink) {
  if (sink) base = make_changelogging_session(std::move(base), *sink);
  return std::make_unique<metered_session_store>(std::move(base));
}

} // namespace weft::state
