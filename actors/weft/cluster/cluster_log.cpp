#include "weft/cluster/cluster_log.hpp"

#include <nlohmann/json.hpp>

#include <chrono>

#include "weft/kafka/consumer.hpp"
#include "weft/log.hpp"

namespace weft::cluster {

namespace {

using json = nlohmann::json;

status bad_member(const std::string& what) {
  return make_error(errc::invalid_argument, "invalid member record: " + what);
}

topic_partition log_partition(const std::string& topic) {
  return {topic, partition_id{0}};
}

} // namespace

std::string cluster_log_topic(const std::string& application_id) {
  return application_id + "-cluster";
}

std::string member_key(const std::string& node_id) {
  return std::string{member_key_prefix} + node_id;
}

std::string encode_member(const member_record& m) {
  return json{{"id", m.id},
              {"host", m.host},
              {"port", m.port},
              {"http", m.http},
              {"incarnation", m.incarnation},
              {"topology", m.topology}}
      .dump();
}

result<member_record> decode_member(std::string_view text) {
  auto j = json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded()) return bad_member("not JSON");
  if (!j.is_object()) return bad_member("not a JSON object");
  member_record m;
  auto str = [&](const char* key, std::string& out, bool required) -> status {
    auto i = j.find(key);
    if (i == j.end())
      return required ? bad_member(std::string{"'"} + key + "' is missing") : status{};
    if (!i->is_string()) return bad_member(std::string{"'"} + key + "' is not a string");
    out = i->get<std::string>();
    return {};
  };
  if (auto s = str("id", m.id, true); !s) return s;
  if (auto s = str("host", m.host, true); !s) return s;
  if (auto s = str("http", m.http, false); !s) return s;
  if (auto s = str("topology", m.topology, false); !s) return s;
  auto port = j.find("port");
  if (port == j.end() || !port->is_number_unsigned() || port->get<uint64_t>() == 0 ||
      port->get<uint64_t>() > 65535)
    return bad_member("'port' must be a number in 1..65535");
  m.port = static_cast<uint16_t>(port->get<uint64_t>());
  auto inc = j.find("incarnation");
  if (inc != j.end()) {
    if (!inc->is_number_integer()) return bad_member("'incarnation' is not an integer");
    m.incarnation = inc->get<int64_t>();
  }
  if (m.id.empty()) return bad_member("'id' is empty");
  if (m.host.empty()) return bad_member("'host' is empty");
  return m;
}

void apply_record(log_state& state, std::string_view key,
                  std::optional<std::string_view> value, int64_t offset,
                  std::vector<assignment>* fresh) {
  if (key == assignment_key) {
    if (!value) return;
    auto a = assignment_from_json(*value);
    if (!a) {
      state.warnings.push_back("unreadable assignment at offset " +
                               std::to_string(offset) + ": " + a.error().message());
      return;
    }
    if (state.latest && a->generation <= state.latest->generation) return;
    state.latest = *a;
    if (fresh) fresh->push_back(std::move(*a));
  } else if (key.substr(0, member_key_prefix.size()) == member_key_prefix) {
    std::string id{key.substr(member_key_prefix.size())};
    if (!value) {
      state.announced.erase(id);
      return;
    }
    auto m = decode_member(*value);
    if (!m) {
      state.warnings.push_back("unreadable announcement of " + id + " at offset " +
                               std::to_string(offset) + ": " + m.error().message());
      return;
    }
    state.announced[id] = std::move(*m);
  }
}

// -- reader ----------------------------------------------------------------------

result<std::unique_ptr<cluster_log_reader>>
cluster_log_reader::start(std::map<std::string, std::string> props, std::string topic,
                          update_fn on_update, int stall_ms) {
  props["isolation.level"] = "read_committed";
  props.emplace("fetch.wait.max.ms", "10");
  auto c = kafka::consumer::create(std::move(props));
  if (!c) return c.error();
  std::unique_ptr<cluster_log_reader> r{new cluster_log_reader};
  r->topic_ = std::move(topic);
  r->on_update_ = std::move(on_update);
  r->stall_ms_ = stall_ms > 0 ? stall_ms : 5000;
  r->consumer_ = std::move(*c);
  auto tp = log_partition(r->topic_);
  r->queue_ = r->consumer_->take_queue(tp);
  if (!r->queue_)
    return make_error(errc::internal, "no fetch queue for " + to_string(tp));
  auto* self = r.get();
  r->queue_->on_ready([self] {
    std::lock_guard<std::mutex> guard{self->mu_};
    self->ready_ = true;
    self->cv_.notify_all();
  });
  if (auto s = r->consumer_->assign_at({{tp, weft::offset{RD_KAFKA_OFFSET_BEGINNING}}});
      !s)
    return s;
  r->thread_ = std::thread{[self] { self->run(); }};
  return r;
}

cluster_log_reader::~cluster_log_reader() {
  {
    std::lock_guard<std::mutex> guard{mu_};
    stop_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
  if (queue_) queue_->on_ready({});
  queue_.reset();
  if (consumer_) (void)consumer_->close();
}

void cluster_log_reader::run() {
  auto tp = log_partition(topic_);
  std::vector<assignment> fresh;
  using clock = std::chrono::steady_clock;
  auto stall = std::chrono::milliseconds(stall_ms_);
  auto progressed = clock::now(); // the last time the position moved
  auto checked = progressed;      // the last stall check
  while (true) {
    {
      std::unique_lock<std::mutex> lock{mu_};
      // Bounded: the position also moves past transaction markers, which
      // wake nobody.
      cv_.wait_for(lock, std::chrono::milliseconds(50), [&] { return stop_ || ready_; });
      if (stop_) return;
      ready_ = false;
    }
    bool changed = false;
    while (true) {
      kafka::message_batch b;
      queue_->drain(b, 1000);
      for (size_t i = 0; i < b.size(); ++i) {
        auto v = b.view(i);
        if (!v.key) continue;
        auto before = state_.announced;
        apply_record(state_, *v.key, v.value, v.offset.value(), &fresh);
        changed |= before != state_.announced;
      }
      if (b.size() < 1000) break;
    }
    for (auto& w : state_.warnings)
      log::warn("cluster log {}: {}", topic_, w);
    state_.warnings.clear();
    if (!fresh.empty()) {
      std::lock_guard<std::mutex> guard{latest_mu_};
      latest_ = std::make_shared<const assignment>(fresh.back());
    }
    auto pos = consumer_->position(tp);
    bool moved = pos >= 0 && pos > position_.load(std::memory_order_relaxed);
    if (moved) {
      std::lock_guard<std::mutex> guard{mu_};
      position_.store(pos, std::memory_order_release);
      position_cv_.notify_all();
    }
    if (changed || !fresh.empty() || moved) {
      on_update_(state_.announced, fresh, position_.load());
      fresh.clear();
    }
    auto now = clock::now();
    if (moved) progressed = now;
    if (now - progressed < stall || now - checked < stall) continue;
    checked = now;
    // Nothing read for a while: fine at the log's end (read_committed: its
    // end is the last stable offset), a stuck fetch otherwise.
    auto end = end_offset(stall_ms_);
    auto at = position_.load(std::memory_order_acquire);
    if (!end || *end <= at) continue;
    refetches_.fetch_add(1, std::memory_order_relaxed);
    log::warn(
        "cluster log {}: read nothing for {} ms at offset {} while the log ends at "
        "{}; fetching again from {}",
        topic_,
        std::chrono::duration_cast<std::chrono::milliseconds>(now - progressed).count(),
        at, *end, at);
    if (auto s = consumer_->assign_at({{tp, weft::offset{at}}}); !s)
      log::warn("cluster log {}: fetching again failed: {}", topic_, s.message());
  }
}

result<int64_t> cluster_log_reader::end_offset(int timeout_ms) {
  auto marks = consumer_->watermarks(log_partition(topic_), timeout_ms);
  if (!marks) return marks.error();
  return marks->second;
}

status cluster_log_reader::sync(int timeout_ms) {
  auto high = end_offset(timeout_ms);
  if (!high) return high.error();
  std::unique_lock<std::mutex> lock{mu_};
  if (!position_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] {
        return position_.load(std::memory_order_acquire) >= *high;
      }))
    return make_error(errc::timed_out, "reading the cluster log " + topic_ +
                                           " to offset " + std::to_string(*high) +
                                           " (at " + std::to_string(position_.load()) +
                                           " after " + std::to_string(timeout_ms) +
                                           " ms)");
  return {};
}

std::shared_ptr<const assignment> cluster_log_reader::latest() const {
  std::lock_guard<std::mutex> guard{latest_mu_};
  return latest_;
}

// -- one-shot read -------------------------------------------------------------

result<log_state> read_cluster_log(std::map<std::string, std::string> props,
                                   const std::string& topic, int timeout_ms) {
  props["isolation.level"] = "read_committed";
  props.emplace("fetch.wait.max.ms", "10");
  auto c = kafka::consumer::create(std::move(props));
  if (!c) return c.error();
  auto& consumer = **c;
  auto parts = consumer.partition_count(topic, timeout_ms);
  if (!parts) return parts.error();
  auto tp = log_partition(topic);
  auto marks = consumer.watermarks(tp, timeout_ms);
  if (!marks) return marks.error();
  auto [low, high] = *marks;
  log_state out;
  if (high <= low) return out;
  auto queue = consumer.take_queue(tp);
  if (!queue) return make_error(errc::internal, "no fetch queue for " + to_string(tp));
  std::mutex mu;
  std::condition_variable cv;
  bool ready = false;
  queue->on_ready([&] {
    std::lock_guard<std::mutex> guard{mu};
    ready = true;
    cv.notify_all();
  });
  if (auto s = consumer.assign_at({{tp, weft::offset{RD_KAFKA_OFFSET_BEGINNING}}}); !s)
    return s;
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  status fetch_error;
  while (consumer.position(tp) < high) {
    kafka::message_batch batch;
    queue->drain(batch, 1000, &fetch_error);
    for (size_t i = 0; i < batch.size(); ++i) {
      auto v = batch.view(i);
      if (v.key) apply_record(out, *v.key, v.value, v.offset.value());
    }
    if (consumer.position(tp) >= high) break;
    if (std::chrono::steady_clock::now() > deadline) {
      queue->on_ready({});
      if (!fetch_error.ok()) return fetch_error;
      out.warnings.push_back("stopped reading " + topic + " at offset " +
                             std::to_string(consumer.position(tp)) + " of " +
                             std::to_string(high) + " after " +
                             std::to_string(timeout_ms) +
                             " ms (an open transaction?); the view may be behind");
      return out;
    }
    consumer.poll_events(0);
    if (batch.empty()) {
      std::unique_lock<std::mutex> lock{mu};
      cv.wait_for(lock, std::chrono::milliseconds(20), [&] { return ready; });
      ready = false;
    }
  }
  queue->on_ready({});
  return out;
}

} // namespace weft::cluster
