#include "table_service.hpp"

#include <algorithm>

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
  }
  void on_record(const weft::record_view&, weft::context&) override {}
};

/// The first key after every key that starts with `prefix` ("" when none is:
/// a prefix of 0xff bytes only).
std::string prefix_end(std::string prefix) {
  while (!prefix.empty()) {
    auto& c = prefix.back();
    if (static_cast<unsigned char>(c) != 0xff) {
      c = static_cast<char>(static_cast<unsigned char>(c) + 1);
      return prefix;
    }
    prefix.pop_back();
  }
  return {};
}

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
                                                    const std::string& prefix,
                                                    const std::string& after,
                                                    size_t limit) const {
  auto t = cfg_.tables.find(table);
  if (t == cfg_.tables.end())
    return weft::make_error(weft::errc::not_found, "no table '" + table + "'");
  if (clustered_ && !t->second.global)
    return weft::make_error(
        weft::errc::invalid_argument,
        "table '" + table +
            "' is spread over the cluster's nodes; scan a global table "
            "(table." + table + ".global=true) or read keys one at a time");
  std::string from = prefix;
  if (!after.empty() && after >= from) from = after + std::string(1, '\0');
  const std::string to = prefix_end(prefix);
  if (!to.empty() && from >= to) return page{};
  // Each shard visits its keys in order; keep the first limit+1 of each run
  // (a run ends when a key is not above the previous one: the next shard),
  // then merge: the page is the limit smallest.
  std::vector<row> rows;
  size_t in_run = 0;
  std::string last;
  bool first = true;
  auto st = node_.range(table, from, to, [&](std::string_view k, std::string_view v) {
    if (!first && k <= std::string_view{last}) in_run = 0;
    first = false;
    last.assign(k);
    rows.push_back({std::string{k}, std::string{v}});
    return ++in_run <= limit; // a shard's run past limit+1 cannot be on the page
  });
  if (!st) return st;
  std::sort(rows.begin(), rows.end(), [](const row& a, const row& b) { return a.key < b.key; });
  page p;
  p.more = rows.size() > limit;
  if (p.more) rows.resize(limit);
  p.rows = std::move(rows);
  return p;
}

std::vector<std::string> table_reader::not_ready() const {
  std::vector<std::string> out;
  for (auto& [name, t] : cfg_.tables)
    if (!node_.store_ready(name)) out.push_back(name);
  if (!node_.store_ready(requests_store)) out.push_back(requests_store);
  return out;
}

} // namespace sidecar
