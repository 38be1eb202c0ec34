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

  /// A bad record under the policy. False: the subscription stops.
  bool bad_record(const weft::record_view& r, const std::string& reason) {
    const auto where = spec.topic + "/" + std::to_string(r.partition.value()) + "@" +
                       std::to_string(r.offset.value());
    switch (spec.policy) {
    case record_policy::fail: {
      auto st = weft::make_error(weft::errc::bad_record,
                                 "subscription " + spec.name + ": record " + where + ": " +
                                     weft::detail::cap_error(reason) +
                                     " (bad.record.policy=fail; it is delivered again after "
                                     "a restart)");
      weft::log::error("{}", st.message());
      failed = true;
      if (on_fail) on_fail(st);
      return false;
    }
    case record_policy::skip:
      weft::log::warn("subscription {}: skipping record {}: {}", spec.name, where,
                      weft::detail::cap_error(reason));
      ++counters.skipped;
      source->mark(r.partition.value(), r.offset.value());
      return true;
    case record_policy::dead_letter: {
      auto rec = weft::detail::dead_letter_record(r, reason, service, spec.dead_letter_topic,
                                                  max_dlq_bytes);
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
        if (st) break;
        weft::log::warn("subscription {}: dead-lettering {} to {}: {}; retrying", spec.name,
                        where, spec.dead_letter_topic, st.message());
        if (!pause(backoff)) return false;
        backoff = std::min(backoff * 2, std::chrono::milliseconds(spec.retry_backoff_max_ms));
      }
      weft::log::warn("subscription {}: record {} dead-lettered to {}: {}", spec.name, where,
                      spec.dead_letter_topic, weft::detail::cap_error(reason));
      ++counters.dead_lettered;
      source->mark(r.partition.value(), r.offset.value());
      return true;
    }
    }
    return false;
  }

  /// POSTs `items` (rendered records `views`) until the application takes
  /// them or refuses them max.attempts times. False: the subscription stops.
  bool post(std::vector<json>& items, std::vector<weft::record_view>& views) {
    if (items.empty()) return true;
    const std::string body =
        spec.batch_max == 1 ? items.front().dump() : json(std::move(items)).dump();
    items.clear();
    auto backoff = std::chrono::milliseconds(spec.retry_backoff_ms);
    int refusals = 0;
    auto away_since = clock_type::time_point{};
    auto last_log = clock_type::time_point{};
    for (;;) {
      if (stop_requested()) return false;
      ++counters.posts;
      auto res = client->Post(path.c_str(), body, "application/json");
      if (res && res->status >= 200 && res->status < 300) {
        if (away_since != clock_type::time_point{})
          weft::log::info("subscription {}: the application at {} answers again", spec.name,
                          spec.url);
        for (auto& v : views)
          source->mark(v.partition.value(), v.offset.value());
        counters.delivered += views.size();
        views.clear();
        return true;
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
                          views.size());
        }
      } else {
        ++counters.refused;
        ++refusals;
        const std::string reason = "the application answered HTTP " +
                                   std::to_string(res->status) + ": " +
                                   res->body.substr(0, 300);
        weft::log::warn("subscription {}: {} (attempt {} of {})", spec.name, reason,
                        refusals, spec.max_attempts);
        if (refusals >= spec.max_attempts) {
          for (auto& v : views)
            if (!bad_record(v, reason)) return false;
          views.clear();
          return true;
        }
      }
      if (!pause(backoff)) return false;
      backoff = std::min(backoff * 2, std::chrono::milliseconds(spec.retry_backoff_max_ms));
    }
  }

  /// Delivers one polled batch in order. False: the subscription stops.
  bool deliver(weft::kafka::message_batch& batch) {
    std::vector<json> items;
    std::vector<weft::record_view> views;
    for (size_t i = 0; i < batch.size(); ++i) {
      auto v = batch.view(i);
      auto j = record_to_api(v, topic);
      if (!j) {
        // Records before it go first: marks only move forward in order.
        if (!post(items, views)) return false;
        if (!bad_record(v, j.error().message())) return false;
        continue;
      }
      (*j)["subscription"] = spec.name;
      items.push_back(std::move(*j));
      views.push_back(v);
    }
    return post(items, views);
  }

  void run() {
    weft::log::info("subscription {}: pushing {} to {} (group {})", spec.name, spec.topic,
                    spec.url, source->group());
    while (!stop_requested()) {
      weft::kafka::message_batch batch;
      source->poll(batch, static_cast<size_t>(spec.batch_max), 100);
      if (!batch.empty() && !deliver(batch)) break;
      source->commit(commit_interval_ms);
    }
    if (!failed) source->commit(0, true);
    // The source's destructor commits what was marked (bounded) and leaves.
    source.reset();
  }
};

weft::result<std::unique_ptr<push_delivery>>
push_delivery::start(const subscription_spec& s, const topic_spec& t, const weft::config& cfg,
                     const std::string& static_member_id,
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
  if (s.policy == record_policy::dead_letter) {
    auto admin = weft::kafka::admin::create(cfg.kafka_properties(weft::client_kind::admin));
    if (!admin) return admin.error();
    auto parts = (*admin)->partition_count(s.topic, 10000);
    if (!parts) return parts.error();
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

} // namespace sidecar
