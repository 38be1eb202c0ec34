#pragma once
// The exactly-once test pipeline run by weft-test-node --test.service=pipeline
// (stateless split + re-key, stateful count per key over two inputs, gate):
// its topics, its input, the reference results and the output checks. Shared
// by the exactly-once and cluster tests.

#include <catch2/catch.hpp>

#include <httplib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "test_cluster.hpp"
#include "weft/serde.hpp"

namespace weft::test::pipeline {

using namespace std::chrono_literals;

inline constexpr int partitions = 4;

/// The pipeline's topics, named after one prefix.
struct pipeline_topics {
  std::string in, out;
  std::string a() const { return out + "-a"; }
  std::string b() const { return out + "-b"; }
  std::string counts() const { return out + "-counts"; }
  std::string gated() const { return out + "-gated"; }
};

inline pipeline_topics make_topics(const std::string& name, int parts = partitions) {
  pipeline_topics t{test::unique_name(name + "-in"), test::unique_name(name)};
  test::create_topics({t.in, t.a(), t.b(), t.counts(), t.gated()}, parts);
  return t;
}

/// Event i: id "e<i>", key "k<i % keys>"; keys divisible by 5 only ever get
/// A events, the others alternate A and B.
inline std::pair<std::string, std::string> event(size_t i, size_t keys) {
  auto k = i % keys;
  auto round = i / keys;
  const char* type = (k % 5 == 0 || round % 2 == 0) ? "A" : "B";
  return {"e" + std::to_string(i), "k" + std::to_string(k) + ":" + type};
}

/// What the pipeline must produce for events [0, n).
struct reference {
  std::map<std::string, int64_t> counts; ///< per key
  std::set<std::string> gated;           ///< keys with an A and a B
  size_t events = 0;
};

inline reference expected(size_t n, size_t keys,
                          const std::set<std::string>& skipped = {}) {
  reference r;
  std::map<std::string, std::set<char>> types;
  for (size_t i = 0; i < n; ++i) {
    auto [id, v] = event(i, keys);
    auto key = v.substr(0, v.find(':'));
    types[key].insert(v.back());
    if (skipped.count(id)) continue;
    ++r.counts[key];
  }
  for (auto& [k, t] : types)
    if (t.size() == 2) r.gated.insert(k);
  r.events = n;
  return r;
}

/// Checks the committed outputs against `ref`: every event re-keyed once,
/// every key's counts exactly 1, 2, ..., n in order, each gated key once.
inline void check_outputs(const pipeline_topics& t, const reference& ref,
                          const std::set<std::string>& skipped = {}) {
  size_t total_counts = 0;
  for (auto& [k, n] : ref.counts)
    total_counts += static_cast<size_t>(n);

  auto a = test::consume_all(t.a(), 0, 60s, 2s);
  auto b = test::consume_all(t.b(), 0, 60s, 2s);
  std::map<std::string, int> seen;
  for (auto* part : {&a, &b})
    for (auto& r : *part)
      ++seen[*r.value];
  CHECK(a.size() + b.size() == ref.events);
  size_t dup = 0;
  for (auto& [id, n] : seen)
    if (n != 1) ++dup;
  CHECK(dup == 0);

  auto counts = test::consume_all(t.counts(), total_counts, 120s, 2s);
  CHECK(counts.size() == total_counts);
  std::map<std::string, std::vector<int64_t>> per_key;
  for (auto& r : counts) // in offset order per partition; a key has one partition
    per_key[*r.key].push_back(*int64_serde::deserialize(*r.value));
  size_t bad_keys = 0;
  std::string example;
  for (auto& [k, n] : ref.counts) {
    std::vector<int64_t> want(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i)
      want[static_cast<size_t>(i)] = i + 1;
    if (per_key[k] != want) {
      if (example.empty()) {
        example = k + ":";
        for (auto v : per_key[k])
          example += " " + std::to_string(v);
      }
      ++bad_keys;
    }
  }
  INFO("first key whose counts are not exactly 1..n: " << example);
  CHECK(bad_keys == 0);
  CHECK(per_key.size() == ref.counts.size());

  auto gated = test::consume_all(t.gated(), ref.gated.size(), 60s, 2s);
  std::map<std::string, int> fired;
  for (auto& r : gated)
    ++fired[*r.key];
  CHECK(gated.size() == ref.gated.size());
  size_t wrong = 0;
  for (auto& [k, n] : fired)
    if (n != 1 || !ref.gated.count(k)) ++wrong;
  CHECK(wrong == 0);
}

/// Records in the outputs that only a read_uncommitted reader sees: written
/// by epochs that were aborted (by a kill, a throw or fencing).
inline int64_t aborted_records(const pipeline_topics& t, size_t committed) {
  int64_t all = 0;
  for (auto& topic : {t.a(), t.b(), t.counts(), t.gated()})
    all += test::end_offsets(topic);
  // Every committed transaction also leaves one marker per partition it
  // wrote to, so this is an upper bound on aborted records.
  return all - static_cast<int64_t>(committed);
}

inline std::optional<nlohmann::json> metrics(int port) {
  httplib::Client c{"127.0.0.1", port};
  c.set_connection_timeout(1);
  c.set_read_timeout(10);
  // The JSON counters (the node's /metrics is Prometheus' text).
  auto res = c.Get("/metrics.json");
  if (!res || res->status != 200) return std::nullopt;
  return nlohmann::json::parse(res->body);
}

inline std::optional<std::map<std::string, int64_t>> fetch_counts(int port) {
  httplib::Client c{"127.0.0.1", port};
  c.set_connection_timeout(1);
  c.set_read_timeout(30);
  auto res = c.Get("/counts");
  if (!res || res->status != 200) return std::nullopt;
  std::map<std::string, int64_t> out;
  std::istringstream in{res->body};
  std::string key;
  int64_t n;
  while (in >> key >> n)
    out[key] = n;
  return out;
}

inline std::string slurp(const std::string& path) {
  std::ifstream f{path};
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline std::vector<std::string> node_args(const pipeline_topics& t,
                                          const std::string& app,
                                          const std::string& state_dir, int port) {
  return {"--test.service=pipeline",  "--test.in=" + t.in,
          "--test.out=" + t.out,      "--test.http.port=" + std::to_string(port),
          "--application.id=" + app,  "--bootstrap.servers=" + test::bootstrap(),
          "--state.dir=" + state_dir, "--processing.guarantee=exactly_once"};
}

inline int test_port(int offset) {
  return 20000 + (::getpid() % 500) * 10 + offset;
}

/// GET `path` from 127.0.0.1:`port` (1 s to connect, 5 s to read): its JSON
/// body, or nullopt unless it answered 200 with JSON.
inline std::optional<nlohmann::json> get_json(int port, const std::string& path) {
  httplib::Client c{"127.0.0.1", port};
  c.set_connection_timeout(1);
  c.set_read_timeout(5);
  auto res = c.Get(path.c_str());
  if (!res || res->status != 200) return std::nullopt;
  auto j = nlohmann::json::parse(res->body, nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

/// Starts clustered pipeline node `id` (weft-test-node) of `app`: the node's
/// own HTTP endpoint on `http_port` (it serves what the tests ask), state in
/// `state_dir`, then `extra` keys; WEFT_TEST_NODE_LOG_LEVEL=debug makes the
/// nodes' logs tell more. Its log (with how it ended) goes to `log`.
inline std::unique_ptr<child_process>
start_cluster_node(const pipeline_topics& t, const std::string& app,
                   const std::string& id, const std::string& state_dir, int http_port,
                   const std::vector<std::string>& extra, const std::string& log) {
  auto args = node_args(t, app, state_dir, 0);
  args.erase(std::remove_if(args.begin(), args.end(),
                            [](const std::string& a) {
                              return a.rfind("--test.http.port=", 0) == 0;
                            }),
             args.end());
  args.push_back("--cluster.enabled=true");
  args.push_back("--node.id=" + id);
  args.push_back("--http.port=" + std::to_string(http_port));
  for (auto& e : extra)
    args.push_back(e);
  if (auto* level = std::getenv("WEFT_TEST_NODE_LOG_LEVEL"))
    args.push_back(std::string{"--log.level="} + level);
  auto proc = std::make_unique<child_process>(built("tests/weft-test-node"), args, log);
  proc->note_end_in_log();
  return proc;
}

} // namespace weft::test::pipeline
