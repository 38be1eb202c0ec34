#include "push_parking.hpp"

#include <algorithm>
#include <chrono>
#include <set>
#include <thread>
#include <unordered_map>

#include <weft/actors/dead_letter.hpp>
#include <weft/kafka/admin.hpp>
#include <weft/kafka/consumer.hpp>
#include <weft/kafka/producer.hpp>
#include <weft/log.hpp>
#include <weft/serde.hpp>
#include <weft/state/layered_store.hpp>
#include <weft/state/rocksdb_env.hpp>
#include <weft/state/rocksdb_store.hpp>

#include "record_codec.hpp"

namespace sidecar {

using weft::detail::parked_entry;
using weft::detail::parked_keys;

namespace {

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

} // namespace

std::string shown_key(const std::string& id) {
  auto k = parked_keys::key_of(id);
  if (!k) return "(null key)";
  if (k->size() <= 200 && weft::string_serde::deserialize(*k)) return "'" + *k + "'";
  return "(" + std::to_string(k->size()) + " bytes)";
}

std::string parked_topic(const std::string& application_id, const std::string& name) {
  return application_id + "-sub-" + name + "-parked";
}

/// Writes that librdkafka gave up on: any one means the parked topic no
/// longer matches the store.
struct push_parking::write_errors {
  std::mutex mu;
  uint64_t failed = 0;
  std::string first;
  void add(const std::string& why) {
    std::lock_guard<std::mutex> lock{mu};
    if (failed++ == 0) first = why;
  }
};

/// One assigned partition: its parked keys on a RocksDB store whose every
/// change goes to the parked topic's partition of the same number.
struct push_parking::partition_store final : weft::state::changelog_sink {
  push_parking* owner = nullptr;
  int32_t partition = 0;
  std::string dir;
  std::unique_ptr<weft::state::kv_store> store;
  parked_keys keys;
  /// The offset of each parked key's last held record: a record polled
  /// again at or below it is held already.
  std::unordered_map<std::string, int64_t> tail;

  void log_change(std::string_view, std::string_view key,
                  std::optional<std::string_view> value, weft::timestamp_ms) override {
    for (int tries = 0;; ++tries) {
      auto st = owner->producer_->send(owner->topic_name_, partition, key, value);
      if (st) return;
      if (st.code() == weft::errc::queue_full && tries < 600) {
        (void)owner->producer_->flush(100); // librdkafka's queue is full: let it drain
        continue;
      }
      owner->errors_->add(st.message());
      return;
    }
  }
};

weft::result<std::unique_ptr<push_parking>>
push_parking::create(const subscription_spec& s, const topic_spec& t,
                     const weft::config& cfg, int partitions, std::string node_id) {
  std::unique_ptr<push_parking> p{new push_parking};
  p->spec_ = s;
  p->topic_ = t;
  p->app_ = cfg.get_string("application.id");
  p->node_id_ = std::move(node_id);
  p->topic_name_ = parked_topic(p->app_, s.name);
  p->state_dir_ =
      cfg.get_string("state.dir") + "/" + p->app_ + "/sidecar-parked/" + s.name;
  p->consumer_props_ = cfg.kafka_properties(weft::client_kind::consumer);
  p->restore_timeout_ms_ = static_cast<int>(cfg.get_int("startup.timeout.ms"));
  p->max_bytes_ = weft::detail::max_message_bytes(cfg);

  auto admin = weft::kafka::admin::create(cfg.kafka_properties(weft::client_kind::admin));
  if (!admin) return admin.error();
  auto existing = (*admin)->partition_count(p->topic_name_, p->restore_timeout_ms_);
  if (existing && *existing != partitions)
    return weft::make_error(
        weft::errc::invalid_config,
        "subscription " + s.name + ": its parked store's topic " + p->topic_name_ +
            " has " + std::to_string(*existing) + " partitions, its topic " + s.topic +
            " has " + std::to_string(partitions) +
            " (they must match: release its parked keys and delete " + p->topic_name_ +
            ", or give the subscription another name)");
  if (!existing)
    if (auto st =
            (*admin)->ensure_topics({{p->topic_name_,
                                      partitions,
                                      static_cast<int>(cfg.get_int("replication.factor")),
                                      {{"cleanup.policy", "compact"}}}},
                                    p->restore_timeout_ms_);
        !st)
      return weft::make_error(st.code(),
                              "creating " + p->topic_name_ + ": " + st.message());

  p->errors_ = std::make_shared<write_errors>();
  auto producer = weft::kafka::producer::create(
      cfg.kafka_properties(weft::client_kind::producer),
      [errors = p->errors_, topic = p->topic_name_](void*, const weft::status& st,
                                                    int64_t) {
        if (!st) errors->add("writing to " + topic + ": " + st.message());
      });
  if (!producer) return producer.error();
  p->producer_ = std::move(*producer);

  // A small env of its own: held records are few and cold (read when an
  // operator releases their key).
  weft::state::rocksdb_env_config env;
  env.block_cache_bytes = size_t{8} << 20;
  env.write_buffer_bytes = size_t{4} << 20;
  env.store_write_buffer_bytes = size_t{2} << 20;
  env.max_open_files = 16;
  env.background_jobs = 1;
  p->env_ = std::make_unique<weft::state::rocksdb_env>(env);
  return p;
}

push_parking::~push_parking() {
  parts_.clear();
  if (producer_) (void)producer_->flush(5000);
}

push_parking::partition_store* push_parking::store_of(int32_t partition) {
  auto i = parts_.find(partition);
  return i == parts_.end() ? nullptr : i->second.get();
}

weft::status push_parking::load(int32_t partition) {
  auto ps = std::make_unique<partition_store>();
  ps->owner = this;
  ps->partition = partition;
  ps->dir = state_dir_ + "/" + std::to_string(partition);
  // The topic is the truth: whatever an earlier owner left on disk goes.
  if (auto st = weft::state::destroy_rocksdb_store(*env_, ps->dir); !st) return st;
  auto base = weft::state::open_rocksdb_kv(*env_, ps->dir, "parked");
  if (!base) return base.error();
  ps->store = weft::state::make_changelogging_kv(std::move(*base), *ps);

  auto props = consumer_props_;
  props["group.id"] = app_ + "-sub-" + spec_.name + "-parked-restore";
  props["enable.auto.commit"] = "false";
  props["fetch.wait.max.ms"] = "10";
  auto c = weft::kafka::consumer::create(std::move(props));
  if (!c) return c.error();
  weft::topic_partition tp{topic_name_, weft::partition_id{partition}};
  auto w = (*c)->watermarks(tp, restore_timeout_ms_);
  if (!w) return w.error();
  uint64_t changes = 0;
  if (w->second > w->first) {
    if (auto st = (*c)->assign_at({{tp, weft::offset{w->first}}}); !st) return st;
    std::vector<weft::state::change> batch;
    int64_t next = w->first;
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(restore_timeout_ms_);
    while (next < w->second) {
      if (std::chrono::steady_clock::now() > deadline)
        return weft::make_error(
            weft::errc::timed_out,
            "reading " + topic_name_ + "[" + std::to_string(partition) +
                "] back: at offset " + std::to_string(next) + " of " +
                std::to_string(w->second) + " after " +
                std::to_string(restore_timeout_ms_) + " ms (startup.timeout.ms)");
      auto* m = rd_kafka_consumer_poll((*c)->handle(), 100);
      if (!m) continue;
      if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
          weft::log::warn("subscription {}: reading {}: {}", spec_.name, topic_name_,
                          rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        continue;
      }
      weft::state::change ch;
      ch.key.assign(static_cast<const char*>(m->key), m->key_len);
      if (m->payload)
        ch.value = std::string{static_cast<const char*>(m->payload), m->len};
      next = m->offset + 1;
      rd_kafka_message_destroy(m);
      batch.push_back(std::move(ch));
      ++changes;
      if (batch.size() >= 4096) {
        if (auto st = ps->store->restore(batch, next); !st) return st;
        batch.clear();
      }
    }
    if (auto st = ps->store->restore(batch, next); !st) return st;
  }
  (void)(*c)->close();
  if (auto st = ps->keys.load(ps->store.get()); !st) return st;
  for (auto& [id, e] : ps->keys.entries()) {
    auto t = ps->keys.tail(id, e);
    if (!t) return t.error();
    ps->tail[id] = t->offset;
  }
  auto* loaded = ps.get();
  parts_[partition] = std::move(ps);
  for (auto& [id, e] : loaded->keys.entries())
    publish(partition, id);
  if (!loaded->keys.empty())
    weft::log::info(
        "subscription {}: partition {}: {} parked keys, {} held records (read "
        "back from {}, {} changes)",
        spec_.name, partition, loaded->keys.size(), loaded->keys.held(), topic_name_,
        changes);
  return {};
}

weft::status push_parking::assign(const std::vector<int32_t>& assigned) {
  std::set<int32_t> now(assigned.begin(), assigned.end());
  bool changed = false;
  for (auto i = parts_.begin(); i != parts_.end();) {
    if (now.count(i->first)) {
      ++i;
      continue;
    }
    // Given up in a rebalance: its writes were flushed before the poll that
    // gave it up; the next owner reads them back.
    auto p = i->first;
    auto dir = i->second->dir;
    i = parts_.erase(i);
    (void)weft::state::destroy_rocksdb_store(*env_, dir);
    replaying_.erase(std::remove_if(replaying_.begin(), replaying_.end(),
                                    [p](auto& r) { return r.first == p; }),
                     replaying_.end());
    std::lock_guard<std::mutex> lock{mu_};
    for (auto k = listed_.begin(); k != listed_.end();)
      k = k->first.first == p ? listed_.erase(k) : std::next(k);
    changed = true;
  }
  for (auto p : now) {
    if (parts_.count(p)) continue;
    changed = true;
    auto backoff = std::chrono::milliseconds(250);
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(restore_timeout_ms_);
    for (;;) {
      auto st = load(p);
      if (st) break;
      if (std::chrono::steady_clock::now() + backoff > deadline)
        return weft::make_error(st.code(), "subscription " + spec_.name +
                                               ": loading the parked keys of partition " +
                                               std::to_string(p) + ": " + st.message());
      weft::log::warn("subscription {}: loading the parked keys of partition {}: {}; "
                      "retrying in {} ms",
                      spec_.name, p, st.message(), backoff.count());
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(4000));
    }
  }
  if (changed) {
    std::lock_guard<std::mutex> lock{mu_};
    listed_parts_.assign(now.begin(), now.end());
  }
  return {};
}

bool push_parking::fits(const weft::record_view& r) const {
  return parked_keys::fits(r, max_bytes_);
}

weft::result<push_parking::hold_outcome>
push_parking::hold_if_parked(const weft::record_view& r) {
  auto* ps = store_of(r.partition.value());
  if (!ps || ps->keys.empty()) return hold_outcome::not_parked;
  std::string id;
  parked_keys::key_id_into(id, r.key);
  auto* e = ps->keys.find(id);
  if (!e) return hold_outcome::not_parked;
  auto t = ps->tail.find(id);
  if (t != ps->tail.end() && r.offset.value() <= t->second)
    return hold_outcome::held_before;
  if (!fits(r))
    return weft::make_error(weft::errc::invalid_argument,
                            "too large to hold behind parked key " + shown_key(id) +
                                " (message.max.bytes " + std::to_string(max_bytes_) +
                                ")");
  if (auto st = ps->keys.hold(id, *e, r); !st) return st;
  ps->tail[id] = r.offset.value();
  publish(r.partition.value(), id);
  return hold_outcome::held;
}

weft::status push_parking::park(const weft::record_view& r, const std::string& error) {
  const auto p = r.partition.value();
  auto* ps = store_of(p);
  if (!ps)
    return weft::make_error(weft::errc::internal, "subscription " + spec_.name +
                                                      ": partition " + std::to_string(p) +
                                                      " is not assigned here");
  auto id = parked_keys::key_id(r.key);
  const bool fresh = ps->keys.find(id) == nullptr;
  // No automatic retries here (retriable false): the subscription's
  // max.attempts with back-off came first; now it is an operator's turn.
  auto e = ps->keys.park(id, r, error, false, wall_ms());
  if (!e) return e.error();
  if (fresh) {
    ps->tail[id] = r.offset.value();
  } else {
    (*e)->replaying = false;
    replaying_.erase(
        std::remove(replaying_.begin(), replaying_.end(), std::make_pair(p, id)),
        replaying_.end());
  }
  publish(p, id);
  return {};
}

std::vector<push_parking::call> push_parking::take_calls() {
  std::lock_guard<std::mutex> lock{mu_};
  std::vector<call> out;
  out.swap(calls_);
  return out;
}

void push_parking::answer(uint64_t ticket, int http_status, const std::string& result) {
  std::lock_guard<std::mutex> lock{mu_};
  if (!waiting_.count(ticket)) return; // its request answered "queued" already
  answers_[ticket] = {http_status, result};
  answered_.notify_all();
}

parked_entry* push_parking::find(int32_t partition, const std::string& id) {
  auto* ps = store_of(partition);
  return ps ? ps->keys.find(id) : nullptr;
}

weft::result<weft::detail::held_record> push_parking::head(int32_t partition,
                                                           const std::string& id) {
  auto* ps = store_of(partition);
  auto* e = ps ? ps->keys.find(id) : nullptr;
  if (!e)
    return weft::make_error(weft::errc::not_found,
                            "key " + shown_key(id) + " is not parked");
  return ps->keys.head(id, *e);
}

weft::result<bool> push_parking::pop_head(int32_t partition, const std::string& id) {
  auto* ps = store_of(partition);
  if (!ps) return false;
  auto more = ps->keys.pop_head(id, nullptr);
  if (!more) return more;
  if (*more) {
    publish(partition, id);
    return true;
  }
  ps->tail.erase(id);
  replaying_.erase(
      std::remove(replaying_.begin(), replaying_.end(), std::make_pair(partition, id)),
      replaying_.end());
  unpublish(partition, id);
  return false;
}

weft::result<uint64_t> push_parking::drop(int32_t partition, const std::string& id) {
  auto* ps = store_of(partition);
  if (!ps) return uint64_t{0};
  auto n = ps->keys.drop(id, nullptr);
  if (!n) return n;
  ps->tail.erase(id);
  replaying_.erase(
      std::remove(replaying_.begin(), replaying_.end(), std::make_pair(partition, id)),
      replaying_.end());
  unpublish(partition, id);
  return n;
}

void push_parking::set_replaying(int32_t partition, const std::string& id, bool on) {
  auto* e = find(partition, id);
  if (!e) return;
  e->replaying = on;
  auto key = std::make_pair(partition, id);
  auto i = std::find(replaying_.begin(), replaying_.end(), key);
  if (on && i == replaying_.end()) replaying_.push_back(std::move(key));
  if (!on && i != replaying_.end()) replaying_.erase(i);
  publish(partition, id);
}

std::optional<std::pair<int32_t, std::string>> push_parking::next_replaying() const {
  if (replaying_.empty()) return std::nullopt;
  return replaying_.front();
}

weft::status push_parking::flush(int timeout_ms) {
  // rd_kafka_flush wakes every broker thread even with nothing to send:
  // with batch.max=1 that cost a third of the delivery rate. outstanding()
  // counts delivery reports not yet served too, so 0 means every write's
  // outcome is known.
  weft::status st;
  if (producer_->outstanding() > 0) st = producer_->flush(timeout_ms);
  {
    std::lock_guard<std::mutex> lock{errors_->mu};
    if (errors_->failed > 0)
      return weft::make_error(
          weft::errc::kafka,
          "subscription " + spec_.name + ": " + std::to_string(errors_->failed) +
              " write(s) of its parked store failed, first: " + errors_->first);
  }
  return st;
}

bool push_parking::unflushed() const {
  return producer_->outstanding() > 0;
}

void push_parking::publish(int32_t partition, const std::string& id) {
  auto* ps = store_of(partition);
  auto* e = ps ? ps->keys.find(id) : nullptr;
  if (!e) return unpublish(partition, id);
  parked_key_info i;
  i.partition = partition;
  i.id = id;
  i.held = e->seqs.size();
  i.error = e->error;
  i.since = e->since;
  i.attempts = e->attempts;
  i.head_topic = e->head_topic;
  i.head_partition = e->head_partition;
  i.head_offset = e->head_offset;
  i.releasing = e->replaying;
  std::lock_guard<std::mutex> lock{mu_};
  for (auto& c : calls_)
    if (c.partition == partition && c.id == id) i.releasing = true;
  listed_[{partition, id}] = std::move(i);
}

void push_parking::unpublish(int32_t partition, const std::string& id) {
  std::lock_guard<std::mutex> lock{mu_};
  listed_.erase({partition, id});
}

nlohmann::json push_parking::key_json(const parked_key_info& p) const {
  auto key = parked_keys::key_of(p.id);
  json k{{"service", spec_.name},
         {"subscription", spec_.name},
         {"partition", p.partition},
         {"null_key", !key},
         {"key", nullptr},
         {"key_base64", key ? base64_encode(*key) : ""},
         {"held", p.held},
         {"error", p.error},
         {"parked_at_ms", p.since},
         {"attempts", p.attempts},
         {"retry_at_ms", 0},
         {"releasing", p.releasing},
         {"head",
          {{"topic", p.head_topic},
           {"partition", p.head_partition},
           {"offset", p.head_offset}}}};
  if (key)
    if (auto shown_key = to_api(topic_.key, *key)) k["key"] = std::move(*shown_key);
  return k;
}

nlohmann::json push_parking::list() const {
  std::lock_guard<std::mutex> lock{mu_};
  json out = json::array();
  for (auto& [k, info] : listed_)
    out.push_back(key_json(info));
  return out;
}

std::pair<uint64_t, uint64_t> push_parking::totals() const {
  std::lock_guard<std::mutex> lock{mu_};
  uint64_t held = 0;
  for (auto& [k, info] : listed_)
    held += info.held;
  return {listed_.size(), held};
}

std::vector<int32_t> push_parking::partitions() const {
  std::lock_guard<std::mutex> lock{mu_};
  return listed_parts_;
}

std::pair<int, nlohmann::json>
push_parking::request(const std::optional<std::string>& key, int64_t partition,
                      const std::string& action, std::chrono::milliseconds wait) {
  auto refuse = [](int code, const std::string& why) {
    return std::make_pair(code, json{{"error", why}});
  };
  if (action != "retry" && action != "skip" && action != "drop")
    return refuse(400, "action must be retry, skip or drop, not '" +
                           action.substr(0, 100) + "'");
  const auto id =
      parked_keys::key_id(key ? std::optional<std::string_view>{*key} : std::nullopt);
  std::unique_lock<std::mutex> lock{mu_};
  std::vector<parked_key_info*> found;
  for (auto& [k, info] : listed_)
    if (k.second == id && (partition < 0 || k.first == partition)) found.push_back(&info);
  if (found.empty()) {
    std::string here;
    for (auto p : listed_parts_)
      here += (here.empty() ? "" : ", ") + std::to_string(p);
    return refuse(
        404, "key " + shown_key(id) + " is not parked in subscription " + spec_.name +
                 (partition >= 0 ? " partition " + std::to_string(partition) : "") +
                 " on this sidecar (it delivers partitions " +
                 (here.empty() ? "none yet" : here) +
                 "; GET /v1/parked lists its parked keys)");
  }
  if (found.size() > 1) {
    std::string parts;
    for (auto* f : found)
      parts += (parts.empty() ? "" : ", ") + std::to_string(f->partition);
    return refuse(400, "key " + shown_key(id) + " is parked in partitions " + parts +
                           ": add ?partition=N");
  }
  auto& info = *found.front();
  if (info.releasing && action != "drop")
    return refuse(409,
                  "key " + shown_key(id) +
                      " is being released already; GET /v1/parked shows how it ends");
  const auto ticket = next_ticket_++;
  calls_.push_back({info.partition, id, action, ticket});
  info.releasing = true;
  json j = key_json(info);
  json out{{"service", spec_.name},
           {"subscription", spec_.name},
           {"partition", info.partition},
           {"key", j["key"]},
           {"key_base64", j["key_base64"]},
           {"null_key", j["null_key"]},
           {"action", action},
           {"held", info.held},
           {"node", node_id_}};
  waiting_.insert(ticket);
  bool done = answered_.wait_for(lock, wait, [&] { return answers_.count(ticket) > 0; });
  waiting_.erase(ticket);
  if (!done) {
    out["result"] = "queued: carried out once the subscription is between two deliveries "
                    "(it may be waiting for the application)";
    return {202, out};
  }
  auto [code, text] = answers_[ticket];
  answers_.erase(ticket);
  out[code >= 400 ? "error" : "result"] = text;
  return {code, out};
}

} // namespace sidecar
