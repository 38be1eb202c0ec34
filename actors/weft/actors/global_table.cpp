#include "weft/actors/global_table.hpp"

#include <chrono>

#include "weft/kafka/consumer.hpp"
#include "weft/log.hpp"
#include "weft/state/store.hpp"

namespace weft::detail {

global_table::global_table(std::string topic, state::kv_store* store)
  : topic_(std::move(topic)), store_(store) {}

global_table::~global_table() {
  {
    std::lock_guard<std::mutex> guard{mu_};
    stop_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
  for (auto& q : queues_)
    q->on_ready({});
  queues_.clear();
  consumer_.reset();
}

status global_table::apply_available(size_t max, size_t& n) {
  n = 0;
  for (auto& q : queues_) {
    kafka::message_batch b;
    q->drain(b, max);
    for (size_t i = 0; i < b.size(); ++i) {
      auto v = b.view(i);
      if (!v.key) continue; // a table record needs a key
      auto s = v.value ? store_->put(*v.key, *v.value) : store_->remove(*v.key);
      if (!s) return s;
    }
    n += b.size();
  }
  applied_.fetch_add(n, std::memory_order_relaxed);
  return {};
}

status global_table::start(std::map<std::string, std::string> props, int timeout_ms) {
  props["group.id"] = "weft-global-" + topic_;
  auto c = kafka::consumer::create(std::move(props));
  if (!c) return c.error();
  consumer_ = std::move(*c);
  auto n = consumer_->partition_count(topic_, timeout_ms);
  if (!n) {
    if (n.error().code() == errc::not_found)
      return make_error(errc::invalid_config,
                        "global table topic '" + topic_ + "' does not exist; create it");
    return n.error();
  }
  std::vector<std::pair<topic_partition, weft::offset>> start;
  for (int p = 0; p < *n; ++p) {
    topic_partition tp{topic_, partition_id{p}};
    auto w = consumer_->watermarks(tp, timeout_ms);
    if (!w) return w.error();
    // An empty partition (end at or below the low watermark) is loaded already.
    ends_.push_back(w->second > w->first ? w->second : -1);
    queues_.push_back(consumer_->take_queue(tp));
    // librdkafka says when records arrive: the reader waits on that, not on
    // a polling loop.
    queues_.back()->on_ready([this] {
      std::lock_guard<std::mutex> guard{mu_};
      ready_ = true;
      cv_.notify_all();
    });
    start.emplace_back(tp, weft::offset{RD_KAFKA_OFFSET_BEGINNING});
  }
  if (auto s = consumer_->assign_at(start); !s) return s;
  // Catch up: read until every partition reached its end at start.
  auto last_progress = std::chrono::steady_clock::now();
  auto caught_up = [&] {
    for (size_t p = 0; p < queues_.size(); ++p) {
      if (ends_[p] < 0) continue;
      auto pos = consumer_->position({topic_, partition_id{static_cast<int32_t>(p)}});
      if (pos < ends_[p]) return false;
    }
    return true;
  };
  while (!caught_up()) {
    size_t got = 0;
    if (auto s = apply_available(10000, got); !s) return s;
    if (got > 0) {
      last_progress = std::chrono::steady_clock::now();
    } else {
      if (std::chrono::steady_clock::now() - last_progress >
          std::chrono::milliseconds(timeout_ms))
        return make_error(errc::timed_out,
                          "global table '" + topic_ + "': no progress loading the topic");
      wait_for_records(std::chrono::milliseconds(20));
    }
  }
  if (auto s = store_->flush(); !s) return s;
  log::info("global table '{}' loaded: {} records", topic_, applied());
  thread_ = std::thread{[this] {
    int failures = 0;
    while (!stop_.load(std::memory_order_relaxed)) {
      size_t got = 0;
      if (auto s = apply_available(1000, got); !s) {
        // The table goes stale, not dead: try again after a growing pause.
        ++failures;
        auto pause =
            std::chrono::milliseconds(std::min(100 << std::min(failures, 5), 5000));
        log::warn("global table '{}': {} (attempt {}); retrying in {} ms", topic_,
                  s.message(), failures, pause.count());
        wait_for_records(pause);
        continue;
      }
      failures = 0;
      if (got == 0)
        wait_for_records(std::chrono::milliseconds(100));
      else
        (void)store_->flush();
    }
  }};
  return {};
}

void global_table::wait_for_records(std::chrono::milliseconds bound) {
  std::unique_lock<std::mutex> lock{mu_};
  cv_.wait_for(lock, bound, [this] { return ready_ || stop_.load(); });
  ready_ = false;
}

} // namespace weft::detail
