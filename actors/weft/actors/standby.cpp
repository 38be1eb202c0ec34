#include "weft/actors/standby.hpp"

#include <algorithm>
#include <limits>

#include "weft/actors/node_context.hpp"
#include "weft/kafka/consumer.hpp"
#include "weft/log.hpp"
#include "weft/state/shard.hpp"

namespace weft::detail {

namespace {

/// Changes per RocksDB batch while tailing (the restorer's).
constexpr size_t restore_batch = 10000;

/// How often a standby that restored something makes it durable: restores
/// skip the WAL (rocksdb_store.hpp), and a standby never writes otherwise.
constexpr auto flush_every = std::chrono::seconds(5);

std::chrono::milliseconds backoff(int failures) {
  auto ms = std::chrono::milliseconds(500) * (1 << std::min(failures, 6));
  return std::min<std::chrono::milliseconds>(ms, std::chrono::seconds(30));
}

int64_t checkpoint_of(state::shard& sh, const state::store_spec& spec) {
  switch (spec.type) {
  case state::store_spec::kind::kv:
    return sh.kv(spec.name)->checkpoint();
  case state::store_spec::kind::window:
    return sh.window(spec.name)->checkpoint();
  case state::store_spec::kind::session:
    return sh.session(spec.name)->checkpoint();
  }
  return -1;
}

} // namespace

standby_manager::standby_manager(node_context* ctx,
                                 std::map<std::string, std::string> props, int timeout_ms,
                                 int poll_ms)
  : ctx_(ctx), props_(std::move(props)), timeout_ms_(timeout_ms), poll_ms_(poll_ms) {
  thread_ = std::thread{[this] { run(); }};
}

standby_manager::~standby_manager() {
  {
    std::lock_guard<std::mutex> guard{mu_};
    stop_ = true;
    interrupt_.store(true, std::memory_order_release);
  }
  cv_.notify_all();
  thread_.join();
}

void standby_manager::set(const std::vector<task_key>& keys) {
  std::set<task_key> wanted;
  for (auto& k : keys)
    if (k.first < ctx_->services.size() && !ctx_->services[k.first].stores.empty())
      wanted.insert(k);
  std::unique_lock<std::mutex> lock{mu_};
  wanted_ = std::move(wanted);
  request(lock);
}

void standby_manager::release(const task_key& key) {
  std::unique_lock<std::mutex> lock{mu_};
  // Not wanted and nothing pending: the thread holds no shard of it.
  if (wanted_.erase(key) == 0 && applied_ >= requested_) return;
  request(lock);
}

void standby_manager::request(std::unique_lock<std::mutex>& lock) {
  auto ticket = ++requested_;
  interrupt_.store(true, std::memory_order_release);
  cv_.notify_all();
  cv_.wait(lock, [&] { return applied_ >= ticket; });
}

std::map<task_key, int64_t> standby_manager::lags() const {
  std::shared_lock<std::shared_mutex> lock{view_mu_};
  std::map<task_key, int64_t> out;
  for (auto& [key, s] : standbys_)
    out[key] = s.lag;
  return out;
}

std::map<task_key, status> standby_manager::errors() const {
  std::shared_lock<std::shared_mutex> lock{view_mu_};
  std::map<task_key, status> out;
  for (auto& [key, s] : standbys_)
    if (!s.error.ok()) out[key] = s.error;
  return out;
}

result<std::optional<std::string>> standby_manager::get(const std::string& store,
                                                        int32_t partition,
                                                        std::string_view key,
                                                        int64_t max_lag) const {
  std::optional<size_t> service;
  for (size_t i = 0; i < ctx_->services.size() && !service; ++i)
    for (auto& spec : ctx_->services[i].stores)
      if (spec.name == store) service = i;
  if (!service) return make_error(errc::not_found, "no store '" + store + "'");
  auto what =
      "the standby of store '" + store + "' partition " + std::to_string(partition);
  std::shared_lock<std::shared_mutex> lock{view_mu_};
  auto i = standbys_.find({*service, partition});
  if (i == standbys_.end())
    return make_error(errc::not_found, what + " is not on this node");
  auto& s = i->second;
  if (!s.shard)
    return make_error(errc::not_found,
                      what + " could not be opened on this node: " + s.error.to_string());
  if (s.lag < 0)
    return make_error(errc::state_not_ready,
                      what + " has not caught up yet" +
                          (s.error.ok() ? "" : " (" + s.error.to_string() + ")"));
  if (s.lag > max_lag)
    return make_error(errc::state_not_ready, what + " is " + std::to_string(s.lag) +
                                                 " changes behind (at most " +
                                                 std::to_string(max_lag) + " allowed)");
  auto* kv = s.shard->kv(store);
  if (!kv)
    return make_error(errc::invalid_argument, "store '" + store + "' is not a kv store");
  return kv->get(key);
}

void standby_manager::run() {
  while (true) {
    std::set<task_key> wanted;
    uint64_t ticket;
    {
      std::lock_guard<std::mutex> guard{mu_};
      if (stop_) break;
      wanted = wanted_;
      ticket = requested_;
      interrupt_.store(false, std::memory_order_release);
    }
    reconcile(wanted);
    {
      std::lock_guard<std::mutex> guard{mu_};
      applied_ = ticket;
    }
    cv_.notify_all();
    open_missing();
    round();
    std::unique_lock<std::mutex> lock{mu_};
    cv_.wait_for(lock, std::chrono::milliseconds(poll_ms_),
                 [&] { return stop_ || requested_ != applied_; });
  }
  std::map<task_key, standby> closing;
  {
    std::unique_lock<std::shared_mutex> lock{view_mu_};
    closing.swap(standbys_);
  }
  closing.clear();
  reader_.reset();
  {
    std::lock_guard<std::mutex> guard{mu_};
    applied_ = std::numeric_limits<uint64_t>::max(); // no caller waits forever
  }
  cv_.notify_all();
}

void standby_manager::reconcile(const std::set<task_key>& wanted) {
  // Closed first, and before set() returns: a task may be waiting for the
  // folders. Destroying a shard makes its restored data durable.
  std::vector<std::pair<task_key, standby>> closing;
  {
    std::unique_lock<std::shared_mutex> lock{view_mu_};
    for (auto i = standbys_.begin(); i != standbys_.end();) {
      if (wanted.count(i->first)) {
        ++i;
        continue;
      }
      closing.emplace_back(i->first, std::move(i->second));
      i = standbys_.erase(i);
    }
    for (auto& k : wanted)
      standbys_.try_emplace(k);
  }
  for (auto& [key, s] : closing) {
    s.shard.reset();
    log::debug("{}: closed", describe(key));
  }
}

void standby_manager::open_missing() {
  auto now = clock::now();
  for (auto& [key, s] : standbys_) {
    // A set() waits: its change goes first.
    if (interrupt_.load(std::memory_order_acquire)) return;
    if (s.shard || now < s.retry_at) continue;
    auto& svc = ctx_->services[key.first];
    auto sh = state::shard::open(*ctx_->stores, ctx_->state_dir, ctx_->application_id,
                                 key.second, svc.stores, nullptr, false);
    if (!sh) {
      fail(key, s, sh.error());
      continue;
    }
    std::unique_lock<std::shared_mutex> lock{view_mu_};
    s.shard = std::move(*sh);
    s.flushed_at = now;
    log::debug("{}: opened", describe(key));
  }
}

void standby_manager::round() {
  if (!reader_) {
    auto c = kafka::consumer::create(props_);
    if (!c) {
      for (auto& [key, s] : standbys_)
        if (s.shard) fail(key, s, c.error());
      return;
    }
    reader_ = std::move(*c);
  }
  auto now = clock::now();
  std::map<task_key, std::vector<mark>> marks;
  std::vector<task_key> behind;
  for (auto& [key, s] : standbys_) {
    if (interrupt_.load(std::memory_order_acquire)) return;
    if (!s.shard || now < s.retry_at) continue;
    std::vector<mark> m;
    if (auto st = read_marks(key, s, m); !st) {
      fail(key, s, st);
      continue;
    }
    auto lag = lag_of(s, m);
    if (lag == 0) {
      succeed(key, s, 0);
      continue;
    }
    {
      // Published now: a long catch-up must not look caught up meanwhile.
      std::unique_lock<std::shared_mutex> lock{view_mu_};
      s.lag = lag;
    }
    behind.push_back(key);
    marks[key] = std::move(m);
  }
  if (!behind.empty()) restore(behind, marks);
  for (auto& [key, s] : standbys_) {
    if (!s.shard || s.unflushed == 0 || now - s.flushed_at < flush_every) continue;
    if (auto st = s.shard->flush(); !st) {
      fail(key, s, st);
      continue;
    }
    s.unflushed = 0;
    s.flushed_at = clock::now();
  }
}

status standby_manager::read_marks(const task_key& key, standby& s,
                                   std::vector<mark>& marks) {
  auto p = key.second;
  for (auto& spec : s.shard->specs()) {
    auto topic = state::changelog_topic(ctx_->application_id, spec.name);
    if (!s.checked) {
      // Once per standby: a missing changelog would otherwise look like a
      // slow broker (watermarks time out) to every round.
      auto n = reader_->partition_count(topic, timeout_ms_);
      if (!n && n.error().code() == errc::not_found)
        return make_error(errc::not_found, "changelog topic '" + topic + "' of store '" +
                                               spec.name + "' does not exist");
      if (!n) return n.error();
      if (p >= *n)
        return make_error(errc::not_found, "changelog topic '" + topic + "' has " +
                                               std::to_string(*n) + " partitions, no " +
                                               std::to_string(p));
    }
    auto w = reader_->watermarks({topic, partition_id{p}}, timeout_ms_);
    if (!w) return w.error();
    marks.push_back({w->first, w->second});
  }
  s.checked = true;
  return {};
}

void standby_manager::restore(const std::vector<task_key>& keys,
                              std::map<task_key, std::vector<mark>>& marks) {
  std::vector<state::shard*> shards;
  for (auto& k : keys)
    shards.push_back(standbys_.at(k).shard.get());
  auto n = state::shard::restore_all(shards, *reader_, restore_batch, timeout_ms_,
                                     &interrupt_);
  if (n) {
    for (size_t i = 0; i < keys.size(); ++i) {
      auto& s = standbys_.at(keys[i]);
      s.unflushed += n->at(i);
      succeed(keys[i], s, lag_of(s, marks[keys[i]]));
    }
    return;
  }
  // Stop fetching what the failed restore had assigned.
  (void)reader_->assign_at({});
  // Interrupted: the caller's change goes first; what was read is kept.
  if (interrupt_.load(std::memory_order_acquire)) return;
  if (keys.size() == 1) {
    fail(keys[0], standbys_.at(keys[0]), n.error());
    return;
  }
  // One by one, so that one broken changelog does not hold up the others.
  for (auto& k : keys)
    restore({k}, marks);
}

int64_t standby_manager::lag_of(const standby& s, const std::vector<mark>& marks) const {
  int64_t lag = 0;
  auto& specs = s.shard->specs();
  for (size_t i = 0; i < specs.size() && i < marks.size(); ++i) {
    // Where restore_all starts: the checkpoint, or the log start when
    // compaction or retention removed what came before.
    auto from = std::max(checkpoint_of(*s.shard, specs[i]), marks[i].low);
    lag += std::max<int64_t>(0, marks[i].high - from);
  }
  return lag;
}

void standby_manager::fail(const task_key& key, standby& s, status error) {
  auto delay = backoff(s.failures);
  bool fresh = s.error.message() != error.message();
  {
    std::unique_lock<std::shared_mutex> lock{view_mu_};
    s.error = std::move(error);
    s.lag = -1;
    ++s.failures;
    s.retry_at = clock::now() + delay;
  }
  if (fresh)
    log::warn("{}: {} (retrying in {} ms)", describe(key), s.error.to_string(),
              delay.count());
}

void standby_manager::succeed(const task_key& key, standby& s, int64_t lag) {
  bool recovered = !s.error.ok();
  {
    std::unique_lock<std::shared_mutex> lock{view_mu_};
    s.lag = lag;
    s.error = {};
    s.failures = 0;
    s.retry_at = {};
  }
  if (recovered) log::info("{}: reads its changelogs again", describe(key));
}

std::string standby_manager::describe(const task_key& key) const {
  return "standby of service '" + ctx_->services[key.first].name + "' partition " +
         std::to_string(key.second);
}

} // namespace weft::detail
