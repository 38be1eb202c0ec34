#include "table_service.hpp"

#include <algorithm>
#include <chrono>
#include <thread>

#include <weft/cluster/scan_merge.hpp>
#include <weft/log.hpp>

namespace sidecar {

namespace {

/// A service that only materialises tables: weft applies each record of a
/// table input to its store before calling the (empty) handlers.
class materializer : public weft::service_base {
 public:
  materializer(std::string name, std::vector<std::pair<std::string, std::string>> tables,
               std::vector<std::pair<std::string, std::string>> global_tables)
    : service_base(std::move(name)) {
    for (auto& [topic, store] : tables)
      add_table(topic, store);
    for (auto& [topic, store] : global_tables)
      add_global_table(topic, store);
    describe_as(weft::service_pattern::sidecar, "tables for an application beside it");
  }
  void on_record(const weft::record_view&, weft::context&) override {}
};

} // namespace

std::string table_service_name(const std::string& table) {
  return "table-" + table;
}

std::string requests_topic(const std::string& application_id) {
  return application_id + "-sidecar-requests";
}

void add_table_services(weft::node& n, const sidecar_config& c,
                        const std::string& application_id) {
  std::vector<std::pair<std::string, std::string>> globals;
  for (auto& [name, t] : c.tables) {
    if (t.global) {
      globals.emplace_back(t.topic, name);
      continue;
    }
    n.add(weft::service_factory{[svc = table_service_name(name), topic = t.topic,
                                 store = name] {
      return std::make_unique<materializer>(
          svc, std::vector<std::pair<std::string, std::string>>{{topic, store}},
          std::vector<std::pair<std::string, std::string>>{});
    }});
  }
  n.add(weft::service_factory{[topic = requests_topic(application_id), globals] {
    return std::make_unique<materializer>(
        requests_store, std::vector<std::pair<std::string, std::string>>{{topic, requests_store}},
        globals);
  }});
}

weft::result<std::optional<std::string>> table_reader::get(const std::string& table,
                                                           const std::string& key) const {
  if (!cfg_.tables.count(table) && table != requests_store)
    return weft::make_error(weft::errc::not_found, "no table '" + table + "'");
  return node_.get(table, key);
}

weft::result<table_reader::page> table_reader::scan(const std::string& table,
                                                    const range& r, size_t limit) const {
  if (!cfg_.tables.count(table))
    return weft::make_error(weft::errc::not_found, "no table '" + table + "'");
  auto b = weft::cluster::bounds_of(r.prefix, r.from, r.to, r.after);
  if (b.empty) return page{};
  // weft merges the partitions in key order, from their owners on a cluster.
  auto got = node_.scan(table, b.from, b.to, limit);
  if (!got) return got.error();
  page p;
  p.more = got->more;
  p.partition_count = got->partition_count;
  p.partitions = std::move(got->partitions);
  p.rows.reserve(got->rows.size());
  for (auto& [k, v] : got->rows)
    p.rows.push_back({std::move(k), std::move(v)});
  return p;
}

std::vector<std::string> table_reader::not_ready() const {
  std::vector<std::string> out;
  for (auto& [name, t] : cfg_.tables)
    if (!node_.store_ready(name)) out.push_back(name);
  if (!node_.store_ready(requests_store)) out.push_back(requests_store);
  if (out.empty() && tracker_)
    for (auto& name : tracker_->behind())
      out.push_back(name + " (reading its topic up to its end at start-up)");
  return out;
}

weft::result<std::unique_ptr<catch_up_tracker>>
catch_up_tracker::create(std::map<std::string, std::string> props,
                         const std::string& application_id,
                         const std::map<std::string, std::string>& tables, int timeout_ms) {
  std::unique_ptr<catch_up_tracker> t{new catch_up_tracker};
  // Only asks for the application group's committed offsets; never joins it.
  auto reader_props = props;
  props["group.id"] = application_id;
  auto c = weft::kafka::consumer::create(std::move(props));
  if (!c) return c.error();
  t->consumer_ = std::move(*c);
  // The end of each partition is its last record a read_committed reader
  // sees, plus one: what the application commits once it handled it. The
  // high watermark is not it on a transactional topic (a commit marker ends
  // it, an aborted transaction may), so the tail is read (1,000 offsets at
  // most per partition; an aborted tail longer than that needs no wait).
  reader_props["group.id"] = application_id + "-sidecar-ends";
  reader_props["isolation.level"] = "read_committed";
  reader_props["enable.partition.eof"] = "false";
  auto tail = weft::kafka::consumer::create(std::move(reader_props));
  if (!tail) return tail.error();
  std::vector<std::pair<weft::topic_partition, weft::offset>> start;
  std::map<weft::topic_partition, int64_t> high, last;
  for (auto& [table, topic] : tables) {
    auto n = t->consumer_->partition_count(topic, timeout_ms);
    if (!n) return n.error();
    for (int p = 0; p < *n; ++p) {
      weft::topic_partition tp{topic, weft::partition_id{p}};
      // A topic created a moment ago may have no leader yet: retry (bounded).
      const auto until =
          std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
      auto w = t->consumer_->watermarks(tp, timeout_ms);
      while (!w && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        w = t->consumer_->watermarks(tp, timeout_ms);
      }
      if (!w) return w.error();
      if (w->second <= w->first) continue; // empty: nothing to read
      high[tp] = w->second;
      last[tp] = -1;
      start.emplace_back(tp, weft::offset{std::max(w->first, w->second - 1000)});
    }
  }
  if (!start.empty()) {
    if (auto st = (*tail)->assign_at(start); !st) return st;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    auto* rk = (*tail)->handle();
    for (;;) {
      bool all = true;
      for (auto& [tp, hi] : high)
        all = all && (last[tp] + 1 >= hi || (*tail)->position(tp) >= hi);
      if (all) break;
      if (std::chrono::steady_clock::now() > deadline)
        return weft::make_error(weft::errc::timed_out,
                                "reading the tables' topics' last records took longer than " +
                                    std::to_string(timeout_ms) + " ms");
      auto* m = rd_kafka_consumer_poll(rk, 100);
      if (!m) continue;
      if (!m->err) {
        weft::topic_partition tp{rd_kafka_topic_name(m->rkt), weft::partition_id{m->partition}};
        last[tp] = std::max(last[tp], m->offset);
      }
      rd_kafka_message_destroy(m);
    }
  }
  for (auto& [table, topic] : tables) {
    auto n = t->consumer_->partition_count(topic, timeout_ms);
    if (!n) return n.error();
    std::vector<int64_t> ends;
    bool empty = true;
    for (int p = 0; p < *n; ++p) {
      auto i = last.find({topic, weft::partition_id{p}});
      ends.push_back(i == last.end() || i->second < 0 ? -1 : i->second + 1);
      empty = empty && ends.back() < 0;
    }
    t->ends_[table] = {topic, std::move(ends)};
    t->done_[table] = empty;
  }
  return t;
}

void catch_up_tracker::refresh() {
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now().time_since_epoch())
                       .count();
  if (now - last_refresh_ms_ < 200) return;
  last_refresh_ms_ = now;
  for (auto& [table, e] : ends_) {
    if (done_[table]) continue;
    std::vector<weft::topic_partition> tps;
    for (size_t p = 0; p < e.second.size(); ++p)
      tps.push_back({e.first, weft::partition_id{static_cast<int32_t>(p)}});
    auto committed = consumer_->committed(tps, 2000);
    if (!committed) {
      weft::log::warn("sidecar: committed offsets of {}: {}", e.first,
                      committed.error().message());
      continue;
    }
    bool all = true;
    for (size_t p = 0; p < e.second.size(); ++p)
      all = all && (e.second[p] < 0 || (*committed)[p] >= e.second[p]);
    if (all) {
      weft::log::info("sidecar: table {} has read {} up to its end at start-up", table, e.first);
      done_[table] = true;
    }
  }
}

bool catch_up_tracker::caught_up(const std::string& table) {
  std::lock_guard<std::mutex> lock{mu_};
  auto i = done_.find(table);
  if (i == done_.end() || i->second) return true;
  refresh();
  return done_[table];
}

std::vector<std::string> catch_up_tracker::behind() {
  std::lock_guard<std::mutex> lock{mu_};
  refresh();
  std::vector<std::string> out;
  for (auto& [table, done] : done_)
    if (!done) out.push_back(table);
  return out;
}

} // namespace sidecar
