#include "push_delivery.hpp"

#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include <httplib.h>

#include <weft/actors/dead_letter.hpp>
#include <weft/kafka/admin.hpp>
#include <weft/kafka/producer.hpp>
#include <weft/log.hpp>

#include "push_parking.hpp"
#include "record_codec.hpp"
#include "subscription_source.hpp"

namespace sidecar {

using clock_type = std::chrono::steady_clock;

namespace {

/// "http://host:port/path" -> ("http://host:port", "/path").
std::pair<std::string, std::string> split_url(const std::string& url) {
  auto slash = url.find('/', 7);
  if (slash == std::string::npos) return {url, "/"};
  return {url.substr(0, slash), url.substr(slash)};
}

bool unavailable_status(int s) {
  return s == 429 || s == 502 || s == 503 || s == 504;
}

} // namespace

struct push_delivery::impl {
  subscription_spec spec;
  topic_spec topic;
  std::string service; ///< sub-<name>: weft.service of dead letters
  std::unique_ptr<subscription_source> source;
  std::unique_ptr<httplib::Client> client;
  std::string path;
  std::unique_ptr<weft::kafka::producer> dlq;
  std::unique_ptr<push_parking> parking; ///< bad.record.policy=park
  size_t max_dlq_bytes = 1000000;
  int64_t commit_interval_ms = 100;
  std::function<void(const weft::status&)> on_fail;
  delivery_counters counters;

  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  bool failed = false;
  std::thread thread;

  /// Waits `d` unless the subscription stops first; false when stopping.
  bool pause(std::chrono::milliseconds d) {
    std::unique_lock<std::mutex> lock{mu};
    return !cv.wait_for(lock, d, [&] { return stopping; });
  }
  bool stop_requested() {
    std::lock_guard<std::mutex> lock{mu};
    return stopping;
  }

  /// Stops the subscription: `on_fail` (the sidecar exits 1), nothing
  /// committed from here on. Returns false.
  bool stop_failed(const weft::status& st) {
    weft::log::error("{}", st.message());
    failed = true;
    if (on_fail) on_fail(st);
    return false;
  }

  /// Writes `rec` to the dead-letter topic, retrying with back-off until
  /// Kafka acknowledged it. False: the subscription stops first.
  bool dead_letter(const weft::record& rec, const std::string& where) {
    auto backoff = std::chrono::milliseconds(spec.retry_backoff_ms);
    for (;;) {
      auto done = std::make_shared<std::promise<weft::status>>();
      auto fut = done->get_future();
      auto* opaque = new std::shared_ptr<std::promise<weft::status>>(done);
      auto st = dlq->send(rec, opaque);
      if (!st) {
        delete opaque;
      } else if (fut.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
        st = weft::make_error(weft::errc::timed_out, "no acknowledgement in 30 s");
      } else {
        st = fut.get();
      }
      if (st) return true;
      weft::log::warn("subscription {}: dead-lettering {} to {}: {}; retrying", spec.name,
                      where, spec.dead_letter_topic, st.message());
      if (!pause(backoff)) return false;
      backoff =
          std::min(backoff * 2, std::chrono::milliseconds(spec.retry_backoff_max_ms));
    }
  }

  static std::string where_of(const subscription_spec& s, const weft::record_view& r) {
    return s.topic + "/" + std::to_string(r.partition.value()) + "@" +
           std::to_string(r.offset.value());
  }

  /// A record that cannot wait behind its parked key (too large for the
  /// parked topic) goes to the dead-letter topic, out of its key's order,
  /// which its weft.parked header and the log say. False: stopping.
  bool dead_letter_unholdable(const weft::record_view& r, const std::string& why) {
    auto rec = weft::detail::dead_letter_record(r, why, service, spec.dead_letter_topic,
                                                max_dlq_bytes);
    rec.headers.push_back({"weft.parked", "too large to hold behind its parked key; sent "
                                          "here instead, out of its key's order"});
    if (!dead_letter(rec, where_of(spec, r))) return false;
    weft::log::error("subscription {}: record {} is too large to hold behind its parked "
                     "key; dead-lettered to {} instead, out of its key's order",
                     spec.name, where_of(spec, r), spec.dead_letter_topic);
    ++counters.dead_lettered;
    return true;
  }

  /// A bad record under the policy; marks it handled unless the policy is
  /// fail. False: the subscription stops.
  bool bad_record(const weft::record_view& r, const std::string& reason) {
    const auto where = where_of(spec, r);
    switch (spec.policy) {
    case record_policy::fail:
      return stop_failed(weft::make_error(
          weft::errc::bad_record,
          "subscription " + spec.name + ": record " + where + ": " +
              weft::detail::cap_error(reason) +
              " (bad.record.policy=fail; it is delivered again after a restart)"));
    case record_policy::skip:
      weft::log::warn("subscription {}: skipping record {}: {}", spec.name, where,
                      weft::detail::cap_error(reason));
      ++counters.skipped;
      source->mark(r.partition.value(), r.offset.value());
      return true;
    case record_policy::dead_letter: {
      auto rec = weft::detail::dead_letter_record(r, reason, service, spec.dead_letter_topic,
                                                  max_dlq_bytes);
      if (!dead_letter(rec, where)) return false;
      weft::log::warn("subscription {}: record {} dead-lettered to {}: {}", spec.name, where,
                      spec.dead_letter_topic, weft::detail::cap_error(reason));
      ++counters.dead_lettered;
      source->mark(r.partition.value(), r.offset.value());
      return true;
    }
    case record_policy::park: {
      if (!parking->fits(r)) {
        if (!dead_letter_unholdable(r, reason)) return false;
        source->mark(r.partition.value(), r.offset.value());
        return true;
      }
      if (auto st = parking->park(r, weft::detail::cap_error(reason)); !st)
        return stop_failed(weft::make_error(
            st.code(), "subscription " + spec.name + ": parking the key of record " +
                           where + ": " + st.message()));
      ++counters.parked;
      weft::log::warn(
          "subscription {} parked the key of record {}: {} (its later records "
          "are held; release it with POST /v1/parked/{}/<key>?action=retry|"
          "skip|drop)",
          spec.name, where, weft::detail::cap_error(reason), spec.name);
      source->mark(r.partition.value(), r.offset.value());
      return true;
    }
    }
    return false;
  }

  enum class sent { taken, refused, stopping };

  /// POSTs `body` (`n` records) until the application takes it (2xx), or
  /// refuses it max.attempts times (`reason` says how), or the subscription
  /// stops. An application that is not there is waited for, however long.
  sent send(const std::string& body, size_t n, std::string& reason) {
    auto backoff = std::chrono::milliseconds(spec.retry_backoff_ms);
    int refusals = 0;
    auto away_since = clock_type::time_point{};
    auto last_log = clock_type::time_point{};
    for (;;) {
      if (stop_requested()) return sent::stopping;
      ++counters.posts;
      auto res = client->Post(path.c_str(), body, "application/json");
      if (res && res->status >= 200 && res->status < 300) {
        if (away_since != clock_type::time_point{})
          weft::log::info("subscription {}: the application at {} answers again", spec.name,
                          spec.url);
        return sent::taken;
      }
      const auto now = clock_type::now();
      if (!res || unavailable_status(res->status)) {
        ++counters.unavailable;
        if (away_since == clock_type::time_point{}) away_since = now;
        if (now - last_log > std::chrono::seconds(10)) {
          last_log = now;
          weft::log::warn("subscription {}: the application at {} is not there ({}); "
                          "{} record(s) wait, retrying",
                          spec.name, spec.url,
                          res ? "HTTP " + std::to_string(res->status)
                              : httplib::to_string(res.error()),
                          n);
        }
      } else {
        ++counters.refused;
        ++refusals;
        reason = "the application answered HTTP " + std::to_string(res->status) + ": " +
                 res->body.substr(0, 300);
        weft::log::warn("subscription {}: {} (attempt {} of {})", spec.name, reason,
                        refusals, spec.max_attempts);
        if (refusals >= spec.max_attempts) return sent::refused;
      }
      if (!pause(backoff)) return sent::stopping;
      backoff = std::min(backoff * 2, std::chrono::milliseconds(spec.retry_backoff_max_ms));
    }
  }

  /// A polled record on its way: to POST (`item`), or held behind its
  /// parked key (marked once every record before it is handled).
  struct pending {
    weft::record_view view;
    json item;
    bool held = false;
  };

  std::string body_of(std::vector<json> items) const {
    return spec.batch_max == 1 ? items.front().dump() : json(std::move(items)).dump();
  }

  void mark(const weft::record_view& v) {
    source->mark(v.partition.value(), v.offset.value());
  }

  /// Holds `v` if its key is parked. Returns whether it was held (or held
  /// before, or dead-lettered as too large to hold): then it is not POSTed.
  /// Sets `stop` when the subscription must stop.
  bool held_back(const weft::record_view& v, bool& stop) {
    auto h = parking->hold_if_parked(v);
    if (h) return *h != push_parking::hold_outcome::not_parked;
    if (h.error().code() == weft::errc::invalid_argument) {
      stop = !dead_letter_unholdable(v, h.error().message());
      return true;
    }
    stop = !stop_failed(weft::make_error(
        h.error().code(), "subscription " + spec.name + ": holding record " +
                              where_of(spec, v) + ": " + h.error().message()));
    return true;
  }

  /// POSTs the records of `stretch` that are not held, in order, then marks
  /// the whole stretch. A refused POST goes to bad.record.policy; under park
  /// a refused batch is POSTed again one record at a time, so that only the
  /// keys whose records the application refuses park. False: stopping.
  bool post(std::vector<pending>& stretch) {
    std::vector<json> items;
    for (auto& p : stretch)
      if (!p.held) items.push_back(p.item);
    if (items.empty()) {
      for (auto& p : stretch)
        mark(p.view);
      stretch.clear();
      return true;
    }
    const auto n = items.size();
    std::string reason;
    switch (send(body_of(std::move(items)), n, reason)) {
    case sent::stopping:
      return false;
    case sent::taken:
      for (auto& p : stretch)
        mark(p.view);
      counters.delivered += n;
      stretch.clear();
      return true;
    case sent::refused:
      break;
    }
    if (spec.policy != record_policy::park) {
      for (auto& p : stretch)
        if (!bad_record(p.view, reason)) return false;
      stretch.clear();
      return true;
    }
    if (n == 1) {
      for (auto& p : stretch)
        if (!p.held && !bad_record(p.view, reason)) return false;
      for (auto& p : stretch)
        mark(p.view);
      stretch.clear();
      return true;
    }
    weft::log::warn("subscription {}: the application refused a batch of {} records; "
                    "delivering them one at a time to find the keys it refuses",
                    spec.name, n);
    for (auto& p : stretch) {
      if (!p.held) {
        bool stop = false;
        if (held_back(p.view, stop)) { // parked by a record before it in this batch
          if (stop) return false;
        } else {
          std::string why;
          std::vector<json> one{p.item};
          switch (send(body_of(std::move(one)), 1, why)) {
          case sent::stopping:
            return false;
          case sent::taken:
            ++counters.delivered;
            break;
          case sent::refused:
            if (!bad_record(p.view, why)) return false;
            break;
          }
        }
      }
      mark(p.view);
    }
    stretch.clear();
    return true;
  }

  /// Delivers one polled batch in order. False: the subscription stops.
  bool deliver(weft::kafka::message_batch& batch) {
    std::vector<pending> stretch;
    for (size_t i = 0; i < batch.size(); ++i) {
      auto v = batch.view(i);
      if (parking) {
        // A partition given up in a rebalance inside the poll: its next
        // owner delivers these.
        if (!parking->owns(v.partition.value())) continue;
        bool stop = false;
        if (held_back(v, stop)) {
          if (stop) return false;
          stretch.push_back({v, json{}, true});
          continue;
        }
      }
      auto j = record_to_api(v, topic);
      if (!j) {
        // Records before it go first: marks only move forward in order (and
        // under park, its key's earlier records must not queue behind it).
        if (!post(stretch)) return false;
        if (!bad_record(v, j.error().message())) return false;
        continue;
      }
      (*j)["subscription"] = spec.name;
      stretch.push_back({v, std::move(*j), false});
    }
    return post(stretch);
  }

  // -- bad.record.policy=park: releases ---------------------------------------

  /// Carries out the operators' calls queued since the last turn. False:
  /// the subscription stops.
  bool carry_out_calls() {
    for (auto& c : parking->take_calls()) {
      auto* e = parking->find(c.partition, c.id);
      const auto shown = shown_key(c.id);
      if (!e) {
        parking->answer(c.ticket, 404,
                        "key " + shown + " is no longer parked in partition " +
                            std::to_string(c.partition) + " here");
        continue;
      }
      const auto held = e->seqs.size();
      if (c.action == "retry") {
        weft::log::info(
            "subscription {}: retrying parked key {} of partition {} ({} held "
            "records), by request",
            spec.name, shown, c.partition, held);
        parking->set_replaying(c.partition, c.id, true);
        parking->answer(c.ticket, 202,
                        "released: its held records are delivered again, in "
                        "order");
      } else if (c.action == "drop") {
        auto n = parking->drop(c.partition, c.id);
        if (!n)
          return stop_failed(weft::make_error(
              n.error().code(), "subscription " + spec.name + ": dropping parked key " +
                                    shown + ": " + n.error().message()));
        counters.dropped += *n;
        weft::log::warn(
            "subscription {}: dropped parked key {} of partition {} and its {} "
            "held records, by request",
            spec.name, shown, c.partition, *n);
        parking->answer(c.ticket, 200,
                        "dropped its " + std::to_string(*n) + " held records");
      } else { // skip: the head to the dead-letter topic, then the rest
        auto rec = parking->head(c.partition, c.id);
        if (!rec)
          return stop_failed(weft::make_error(rec.error().code(),
                                              "subscription " + spec.name +
                                                  ": reading the head of parked key " +
                                                  shown + ": " + rec.error().message()));
        weft::detail::held_view head{std::move(*rec)};
        auto dl = weft::detail::dead_letter_record(head.view(), e->error, service,
                                                   spec.dead_letter_topic, max_dlq_bytes);
        if (!dead_letter(dl, where_of(spec, head.view()))) return false;
        ++counters.dead_lettered;
        weft::log::warn(
            "subscription {}: skipped the head record {} of parked key {} to {}, "
            "by request; delivering its other {} held records",
            spec.name, where_of(spec, head.view()), shown, spec.dead_letter_topic,
            held - 1);
        auto more = parking->pop_head(c.partition, c.id);
        if (!more)
          return stop_failed(weft::make_error(more.error().code(),
                                              "subscription " + spec.name +
                                                  ": skipping the head of parked key " +
                                                  shown + ": " + more.error().message()));
        if (*more) parking->set_replaying(c.partition, c.id, true);
        parking->answer(c.ticket, 202,
                        "skipped the head record to " + spec.dead_letter_topic +
                            "; the others are delivered again, in order");
      }
    }
    return true;
  }

  /// Delivers up to `budget` held records of keys being released, each
  /// key's in order; a record refused again parks its key there again.
  /// False: the subscription stops.
  bool replay(int budget) {
    for (; budget > 0; --budget) {
      auto k = parking->next_replaying();
      if (!k) return true;
      auto [p, id] = *k;
      auto rec = parking->head(p, id);
      if (!rec)
        return stop_failed(weft::make_error(
            rec.error().code(), "subscription " + spec.name +
                                    ": reading a held record: " + rec.error().message()));
      weft::detail::held_view held{std::move(*rec)};
      const auto& v = held.view();
      auto j = record_to_api(v, topic);
      std::string reason;
      bool taken = false;
      if (!j) {
        reason = j.error().message();
      } else {
        (*j)["subscription"] = spec.name;
        std::vector<json> one{std::move(*j)};
        switch (send(body_of(std::move(one)), 1, reason)) {
        case sent::stopping:
          return false;
        case sent::taken:
          taken = true;
          break;
        case sent::refused:
          break;
        }
      }
      if (!taken) {
        if (auto st = parking->park(v, weft::detail::cap_error(reason)); !st)
          return stop_failed(weft::make_error(
              st.code(),
              "subscription " + spec.name + ": parking a held record: " + st.message()));
        weft::log::warn(
            "subscription {}: held record {} failed again ({}); its key stays "
            "parked there",
            spec.name, where_of(spec, v), weft::detail::cap_error(reason));
        continue;
      }
      ++counters.delivered;
      ++counters.replayed;
      auto more = parking->pop_head(p, id);
      if (!more)
        return stop_failed(
            weft::make_error(more.error().code(),
                             "subscription " + spec.name +
                                 ": releasing a held record: " + more.error().message()));
      if (!*more)
        weft::log::info("subscription {}: parked key {} of partition {} is released: its "
                        "held records are delivered",
                        spec.name, shown_key(id), p);
    }
    return true;
  }

  /// Makes the parked store's writes durable before anything after them is
  /// committed or a rebalance can hand their partition on. False: a write
  /// failed for good, the subscription stops.
  bool flush_parking() {
    for (int waited = 1;; ++waited) {
      auto st = parking->flush(1000);
      if (st) return true;
      if (st.code() != weft::errc::timed_out) return stop_failed(st);
      if (waited % 10 == 0)
        weft::log::warn(
            "subscription {}: its parked store's writes wait for Kafka ({} s)", spec.name,
            waited);
      if (stop_requested()) return false;
    }
  }

  void run() {
    weft::log::info("subscription {}: pushing {} to {} (group {})", spec.name, spec.topic,
                    spec.url, source->group());
    while (!stop_requested()) {
      int wait_ms = 100;
      if (parking) {
        // Releases between two polls; their writes durable before the poll
        // (a rebalance happens inside it).
        if (!carry_out_calls() || !replay(100) || !flush_parking()) break;
        if (parking->next_replaying()) wait_ms = 0; // more held records to deliver
      }
      weft::kafka::message_batch batch;
      source->poll(batch, static_cast<size_t>(spec.batch_max), wait_ms);
      if (parking) {
        auto assigned = source->assignment();
        source->retain(assigned);
        if (auto st = parking->assign(assigned); !st) {
          stop_failed(st);
          break;
        }
      }
      if (!batch.empty() && !deliver(batch)) break;
      if (parking && !flush_parking()) break;
      source->commit(commit_interval_ms);
    }
    if (parking && (failed || !flush_parking()))
      source->retain({}); // the parked store may not hold what was marked: commit nothing
    else if (!failed)
      source->commit(0, true);
    // The source's destructor commits what was marked (bounded) and leaves.
    source.reset();
  }
};

weft::result<std::unique_ptr<push_delivery>>
push_delivery::start(const subscription_spec& s, const topic_spec& t,
                     const weft::config& cfg, const std::string& static_member_id,
                     const std::string& node_id,
                     std::function<void(const weft::status&)> on_fail) {
  std::unique_ptr<push_delivery> d{new push_delivery};
  d->impl_ = std::make_unique<impl>();
  auto& m = *d->impl_;
  m.spec = s;
  m.topic = t;
  m.service = "sub-" + s.name;
  m.on_fail = std::move(on_fail);
  m.commit_interval_ms = cfg.get_int("commit.interval.ms");
  m.max_dlq_bytes = weft::detail::max_message_bytes(cfg);
  auto [base, path] = split_url(s.url);
  m.path = path;
  m.client = std::make_unique<httplib::Client>(base);
  m.client->set_keep_alive(true);
  m.client->set_tcp_nodelay(true);
  const auto secs = s.timeout_ms / 1000, usecs = (s.timeout_ms % 1000) * 1000;
  m.client->set_connection_timeout(secs, usecs);
  m.client->set_read_timeout(secs, usecs);
  m.client->set_write_timeout(secs, usecs);
  m.client->set_default_headers({{"X-Weft-Subscription", s.name}});
  if (s.policy == record_policy::dead_letter || s.policy == record_policy::park) {
    auto admin = weft::kafka::admin::create(cfg.kafka_properties(weft::client_kind::admin));
    if (!admin) return admin.error();
    auto parts = (*admin)->partition_count(s.topic, 10000);
    if (!parts) return parts.error();
    if (s.policy == record_policy::park) {
      auto parking = push_parking::create(s, t, cfg, *parts, node_id);
      if (!parking) return parking.error();
      m.parking = std::move(*parking);
    }
    if (auto st = (*admin)->ensure_topics(
            {{s.dead_letter_topic, *parts, static_cast<int>(cfg.get_int("replication.factor")),
              {}}},
            10000);
        !st)
      return st;
    auto p = weft::kafka::producer::create(
        cfg.kafka_properties(weft::client_kind::producer),
        [](void* opaque, const weft::status& st, int64_t) {
          auto* done = static_cast<std::shared_ptr<std::promise<weft::status>>*>(opaque);
          if (!done) return;
          (*done)->set_value(st);
          delete done;
        });
    if (!p) return p.error();
    m.dlq = std::move(*p);
  }
  auto src = subscription_source::create(
      s, cfg.kafka_properties(weft::client_kind::consumer), cfg.get_string("application.id"),
      static_member_id);
  if (!src) return src.error();
  m.source = std::move(*src);
  m.thread = std::thread{[&m] { m.run(); }};
  return d;
}

push_delivery::~push_delivery() {
  if (!impl_) return;
  {
    std::lock_guard<std::mutex> lock{impl_->mu};
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
  if (impl_->dlq) (void)impl_->dlq->flush(5000);
}

const delivery_counters& push_delivery::counters() const {
  return impl_->counters;
}

const subscription_spec& push_delivery::spec() const {
  return impl_->spec;
}

push_parking* push_delivery::parking() const {
  return impl_->parking.get();
}

} // namespace sidecar
