#include "weft/services/test_driver.hpp"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <exception>
#include <utility>

#include "weft/state/memory_store.hpp"

namespace weft {

namespace {

[[noreturn]] void fail(errc code, std::string message) {
  throw weft_error{status{code, std::move(message)}};
}

template <class Map>
auto& find_store(Map& stores, std::string_view name, const char* kind) {
  auto i = stores.find(name);
  if (i == stores.end())
    fail(errc::not_found,
         std::string{"no "} + kind + " store '" + std::string{name} + "'");
  return *i->second;
}

/// Floor division: stream times before 0 still fall in the right interval.
int64_t floor_div(int64_t a, int64_t b) {
  auto q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/// The librdkafka headers a record_view points to, owned for one call.
class owned_headers {
 public:
  explicit owned_headers(const std::vector<header>& hs) {
    if (hs.empty()) return;
    ptr_ = rd_kafka_headers_new(hs.size());
    for (auto& h : hs)
      rd_kafka_header_add(ptr_, h.key.data(), static_cast<ssize_t>(h.key.size()),
                          h.value.data(), static_cast<ssize_t>(h.value.size()));
  }
  ~owned_headers() {
    if (ptr_) rd_kafka_headers_destroy(ptr_);
  }
  owned_headers(const owned_headers&) = delete;
  owned_headers& operator=(const owned_headers&) = delete;
  const void* get() const { return ptr_; }

 private:
  rd_kafka_headers_t* ptr_ = nullptr;
};

constexpr timestamp_ms unknown_time = -1;

} // namespace

struct test_driver::task {
  partition_id partition;
  std::unique_ptr<service_base> service;
  std::map<std::string, std::unique_ptr<state::kv_store>, std::less<>> kv;
  std::map<std::string, std::unique_ptr<state::window_store>, std::less<>> window;
  std::map<std::string, std::unique_ptr<state::session_store>, std::less<>> session;
  timestamp_ms stream_time = unknown_time;
  /// The multiple of the punctuation interval stream time was last in.
  std::optional<int64_t> stream_interval;
  /// Over the timer store, when the service enabled timers.
  std::unique_ptr<state::timer_index> timers;
};

/// The context of one handler call: reads the task's stores, collects the
/// outputs so the driver can keep or discard them as a whole.
class test_driver::task_context final : public context {
 public:
  task_context(test_driver& d, task& t, const record_view& current)
    : driver_(d), task_(t), current_(current) {}

  const record_view& current() const override { return current_; }
  const std::string& application_id() const override { return driver_.app_; }

  state::kv_store& kv_store(std::string_view name) override {
    return find_store(task_.kv, name, "kv");
  }
  state::window_store& window_store(std::string_view name) override {
    return find_store(task_.window, name, "window");
  }
  state::session_store& session_store(std::string_view name) override {
    return find_store(task_.session, name, "session");
  }
  const state::kv_store& global_store(std::string_view name) override {
    return find_store(driver_.globals_, name, "global");
  }

  timestamp_ms stream_time() const override { return task_.stream_time; }
  timestamp_ms wall_time() const override { return driver_.wall_time_; }
  state::timer_index* timers() override { return task_.timers.get(); }

  void emit_bytes(size_t output_index, std::optional<std::string> key,
                  std::optional<std::string> value, int32_t partition, timestamp_ms ts,
                  std::vector<header> headers) override {
    auto& outs = task_.service->outputs();
    if (output_index >= outs.size())
      fail(errc::invalid_argument,
           task_.service->name() + ": no output #" + std::to_string(output_index));
    auto& decl = outs[output_index];
    record r;
    r.topic = decl.kind == output_kind::repartition
                  ? repartition_topic(driver_.app_, decl.name)
                  : decl.name;
    if (partition >= 0) {
      r.partition = partition;
    } else if (key) {
      // Windowed keys: the plain key's partition (the producer does the same).
      std::string_view hashed{*key};
      if (decl.key_suffix > 0 && hashed.size() >= decl.key_suffix)
        hashed.remove_suffix(decl.key_suffix);
      r.partition = partition_for(hashed, driver_.partitions_);
      r.key_suffix = decl.key_suffix;
    }
    r.key = std::move(key);
    r.value = std::move(value);
    r.timestamp = ts != 0 ? ts : current_.timestamp;
    r.headers = std::move(headers);
    pending_.push_back(std::move(r));
  }

  /// Hands the collected outputs to the driver.
  void commit() {
    for (auto& r : pending_)
      driver_.outputs_[r.topic].push_back(std::move(r));
    pending_.clear();
  }

 private:
  test_driver& driver_;
  task& task_;
  const record_view& current_;
  std::vector<record> pending_;
};

test_driver::test_driver(service_factory factory, int32_t partitions,
                         std::string application_id, timestamp_ms wall_clock_ms)
  : app_(std::move(application_id)), partitions_(partitions), wall_time_(wall_clock_ms) {
  if (partitions_ <= 0)
    fail(errc::invalid_argument,
         "test_driver: partitions must be > 0, got " + std::to_string(partitions_));
  if (!factory) fail(errc::invalid_argument, "test_driver: empty service factory");
  for (int32_t p = 0; p < partitions_; ++p) {
    auto t = std::make_unique<task>();
    t->partition = partition_id{p};
    t->service = factory();
    if (!t->service)
      fail(errc::invalid_argument, "test_driver: the factory made no service");
    for (auto& s : t->service->stores()) {
      if (t->kv.count(s.name) || t->window.count(s.name) || t->session.count(s.name))
        fail(errc::invalid_argument,
             t->service->name() + ": two stores named '" + s.name + "'");
      switch (s.type) {
      case store_decl::kind::kv:
        t->kv[s.name] = state::make_memory_kv(s.name);
        break;
      case store_decl::kind::window: {
        auto w = state::make_memory_window(s.name, s.retention_ms);
        if (!w) throw weft_error{w.error()};
        t->window[s.name] = std::move(w).value();
        break;
      }
      case store_decl::kind::session: {
        auto w = state::make_memory_session(s.name, s.retention_ms);
        if (!w) throw weft_error{w.error()};
        t->session[s.name] = std::move(w).value();
        break;
      }
      }
    }
    for (auto& tbl : t->service->tables())
      if (tbl.global && !globals_.count(tbl.store))
        globals_[tbl.store] = state::make_memory_kv(tbl.store);
    if (t->service->timers_enabled())
      t->timers = std::make_unique<state::timer_index>(
          *t->kv.at(service_base::timer_store(t->service->name())));
    t->service->init(t->partition);
    tasks_.push_back(std::move(t));
  }
  if (auto every = tasks_.front()->service->punctuate_interval_ms(); every > 0)
    next_wall_punctuation_ = (floor_div(wall_time_, every) + 1) * every;
}

test_driver::~test_driver() = default;

void test_driver::pipe(std::string_view topic, std::optional<std::string> key,
                       std::optional<std::string> value, timestamp_ms timestamp,
                       std::vector<header> headers) {
  int32_t p = key ? partition_for(*key, partitions_) : 0;
  deliver(topic, p, std::move(key), std::move(value), timestamp, std::move(headers));
}

void test_driver::pipe_to(std::string_view topic, partition_id p,
                          std::optional<std::string> key,
                          std::optional<std::string> value, timestamp_ms timestamp,
                          std::vector<header> headers) {
  task_at(p); // checks the partition
  deliver(topic, p.value(), std::move(key), std::move(value), timestamp,
          std::move(headers));
}

void test_driver::pipe_records(const std::vector<record>& records) {
  for (auto& r : records) {
    if (r.partition >= 0 && r.partition < partitions_)
      pipe_to(r.topic, partition_id{r.partition}, r.key, r.value, r.timestamp, r.headers);
    else
      pipe(r.topic, r.key, r.value, r.timestamp, r.headers);
  }
}

void test_driver::deliver(std::string_view topic, int32_t partition,
                          std::optional<std::string> key,
                          std::optional<std::string> value, timestamp_ms timestamp,
                          std::vector<header> headers) {
  auto& t = *tasks_[static_cast<size_t>(partition)];
  auto& svc = *t.service;

  bool is_input = false;
  for (auto& in : svc.inputs())
    if ((in.internal ? repartition_topic(app_, in.name) : in.name) == topic)
      is_input = true;
  const table_decl* table = nullptr;
  std::vector<const table_decl*> globals;
  for (auto& tbl : svc.tables()) {
    if (tbl.topic != topic) continue;
    if (tbl.global)
      globals.push_back(&tbl);
    else
      table = &tbl;
  }
  if (!is_input && !table && globals.empty())
    fail(errc::not_found,
         "service '" + svc.name() + "' reads no topic '" + std::string{topic} + "'");

  auto& next = offsets_[std::string{topic} + "/" + std::to_string(partition)];
  const weft::offset off{next++};

  // A global table is the node's, not a task's: it only updates the store.
  for (auto* g : globals) {
    if (!key) continue;
    auto& store = *globals_.at(g->store);
    auto st = value ? store.put(*key, *value) : store.remove(*key);
    if (!st.ok()) throw weft_error{st};
  }
  if (!is_input && !table) return;

  t.stream_time = std::max(t.stream_time, timestamp);
  owned_headers hdrs{headers};
  record_view view;
  view.topic = topic;
  view.partition = partition_id{partition};
  view.offset = off;
  view.timestamp = timestamp;
  if (key) view.key = std::string_view{*key};
  if (value) view.value = std::string_view{*value};
  view.headers_ = hdrs.get();

  task_context ctx{*this, t, view};
  auto where = [&] {
    return svc.name() + " on " + std::string{topic} + "/" + std::to_string(partition) +
           "@" + std::to_string(off.value()) + ": ";
  };
  try {
    if (table) {
      if (key) {
        auto& store = find_store(t.kv, table->store, "kv");
        auto old = store.get(*key);
        if (!old) throw weft_error{old.error()};
        auto st = value ? store.put(*key, *value) : store.remove(*key);
        if (!st.ok()) throw weft_error{st};
        std::optional<std::string_view> old_view;
        if (*old) old_view = std::string_view{**old};
        svc.on_table_update(view, old_view, ctx);
      }
    }
    if (is_input) svc.on_record(view, ctx);
  } catch (const weft_error& e) {
    fail(e.error().code(), where() + e.error().message());
  } catch (const std::exception& e) {
    fail(errc::bad_record, where() + e.what());
  } catch (...) {
    fail(errc::bad_record, where() + "unknown exception");
  }
  ctx.commit();

  if (auto every = svc.punctuate_interval_ms(); every > 0) {
    auto interval = floor_div(t.stream_time, every);
    if (!t.stream_interval) {
      t.stream_interval = interval;
    } else if (interval > *t.stream_interval) {
      t.stream_interval = interval;
      punctuate(t, t.stream_time);
    }
  }
  fire_timers(t, timer_clock::event_time, t.stream_time);
}

void test_driver::fire_timers(task& t, timer_clock clock, timestamp_ms now) {
  if (!t.timers) return;
  while (t.timers->maybe_due(clock, now)) {
    auto due = t.timers->take_due(clock, now, 1000);
    if (!due) throw weft_error{due.error()};
    if (due->empty()) return;
    for (auto& tm : *due) {
      record_view view;
      view.partition = t.partition;
      view.offset = weft::offset{-1};
      view.key = std::string_view{tm.key};
      view.timestamp = clock == timer_clock::event_time ? tm.time : now;
      task_context ctx{*this, t, view};
      try {
        t.service->on_timer(tm, ctx);
      } catch (const weft_error& e) {
        fail(e.error().code(),
             t.service->name() + " on timer '" + tm.name + "': " + e.error().message());
      } catch (const std::exception& e) {
        fail(errc::bad_record,
             t.service->name() + " on timer '" + tm.name + "': " + e.what());
      }
      ctx.commit();
      auto st = t.timers->remove_taken(tm);
      if (!st) throw weft_error{st};
    }
  }
}

void test_driver::punctuate(task& t, timestamp_ms at) {
  record_view view;
  view.partition = t.partition;
  view.offset = weft::offset{-1};
  view.timestamp = at;
  task_context ctx{*this, t, view};
  try {
    t.service->on_punctuate(ctx);
  } catch (const weft_error& e) {
    fail(e.error().code(), t.service->name() + " punctuating: " + e.error().message());
  } catch (const std::exception& e) {
    fail(errc::bad_record, t.service->name() + " punctuating: " + e.what());
  }
  ctx.commit();
}

void test_driver::advance_wall_clock(timestamp_ms ms) {
  if (ms < 0)
    fail(errc::invalid_argument,
         "advance_wall_clock: time only moves forward, got " + std::to_string(ms));
  wall_time_ += ms;
  for (auto& t : tasks_)
    fire_timers(*t, timer_clock::wall_clock, wall_time_);
  auto every = tasks_.front()->service->punctuate_interval_ms();
  if (every <= 0 || wall_time_ < next_wall_punctuation_) return;
  next_wall_punctuation_ = (floor_div(wall_time_, every) + 1) * every;
  for (auto& t : tasks_)
    punctuate(*t, wall_time_);
}

timestamp_ms test_driver::stream_time(partition_id p) const {
  return task_at(p).stream_time;
}

std::vector<record> test_driver::read_output(std::string_view topic) {
  auto i = outputs_.find(topic);
  if (i == outputs_.end()) return {};
  auto out = std::move(i->second);
  outputs_.erase(i);
  return out;
}

size_t test_driver::output_size(std::string_view topic) const {
  auto i = outputs_.find(topic);
  return i == outputs_.end() ? 0 : i->second.size();
}

std::vector<std::string> test_driver::output_topics() const {
  std::vector<std::string> out;
  for (auto& [topic, records] : outputs_)
    if (!records.empty()) out.push_back(topic);
  return out;
}

state::kv_store& test_driver::kv(std::string_view name, partition_id p) {
  return find_store(task_at(p).kv, name, "kv");
}

state::window_store& test_driver::window(std::string_view name, partition_id p) {
  return find_store(task_at(p).window, name, "window");
}

state::session_store& test_driver::session(std::string_view name, partition_id p) {
  return find_store(task_at(p).session, name, "session");
}

state::kv_store& test_driver::global(std::string_view name) {
  return find_store(globals_, name, "global");
}

service_base& test_driver::service(partition_id p) {
  return *task_at(p).service;
}

test_driver::task& test_driver::task_at(partition_id p) {
  if (p.value() < 0 || p.value() >= partitions_)
    fail(errc::invalid_argument, "test_driver: no partition " +
                                     std::to_string(p.value()) + " (" +
                                     std::to_string(partitions_) + " partitions)");
  return *tasks_[static_cast<size_t>(p.value())];
}

const test_driver::task& test_driver::task_at(partition_id p) const {
  return const_cast<test_driver*>(this)->task_at(p);
}

} // namespace weft
