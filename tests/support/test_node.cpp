// weft-test-node: a node process for integration tests. Test options come as
// --test.<name>=<value> and are removed before weft parses the rest:
//   --test.service=map|slow|json   which service to run
//   --test.in=TOPIC --test.out=TOPIC
//   --test.delay.us=N              slow: busy time per record
//   --test.service=pipeline        the exactly-once chaos pipeline: events on
//       --test.in (key = event id, value = "<key>:A" or "<key>:B") are split
//       by type and re-keyed by <key> into <out>-a / <out>-b (stateless);
//       a counter reads both and emits each new count per key to
//       <out>-counts (stateful, two sources); a gate emits "ready" to
//       <out>-gated once a key has both an A and a B (weft::gate).
//   --test.poison=EVENT            pipeline: the counter throws on that event
//       after it wrote its state and emitted (exactly-once must undo both)
//   --test.http.port=N             GET /counts, /global?key=, /metrics.json
//   --test.service=sequence        bad.record.policy=park tests: values are
//       JSON {"n": N, "tag": T}; each record's output is "<count>:<n>", count
//       being the key's records so far (kv store "seq"). A value that is not
//       that JSON cannot be decoded. While the file --test.fail.file exists,
//       tag "poison" throws before anything happens and tag "poison-late"
//       after it wrote its count and emitted (a downstream that is away).
#include <weft/node.hpp>
#include <weft/services/gate.hpp>
#include <weft/services/stateless.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

namespace {

struct payload {
  int64_t n = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(payload, n)

using str = weft::string_serde;

/// Appends ":mapped" to each value; optionally spends `delay` per record.
struct mapper : weft::stateless<str, str> {
  weft::output<str, str> out;
  std::chrono::microseconds delay;
  mapper(std::string in, std::string out_topic, std::chrono::microseconds d)
    : stateless("mapper", in), delay(d) {
    out = to<str, str>(out_topic);
  }
  void process(const std::string& k, const std::string& v, weft::context& ctx) override {
    if (delay.count() > 0) std::this_thread::sleep_for(delay);
    out.emit(ctx, k, v + ":mapped");
  }
};

/// Doubles the `n` of JSON values; anything else is a bad record.
struct doubler : weft::stateless<str, weft::json_serde<payload>> {
  weft::output<str, weft::json_serde<payload>> out;
  doubler(std::string in, std::string out_topic) : stateless("doubler", in) {
    out = to<str, weft::json_serde<payload>>(out_topic);
  }
  void process(const std::string& k, const payload& p, weft::context& ctx) override {
    out.emit(ctx, k, payload{p.n * 2});
  }
};

/// Counts records per key in the kv store "counts" and emits every new count
/// (a KTable's changelog stream), so the latest output per key is its count.
struct counter : weft::service_base {
  weft::output<str, weft::int64_serde> out;
  counter(std::string in, std::string out_topic) : service_base("counter") {
    add_input(in);
    add_store({"counts", weft::store_decl::kind::kv});
    out = weft::output<str, weft::int64_serde>{
        add_output(out_topic, weft::output_kind::external)};
  }
  void on_record(const weft::record_view& r, weft::context& ctx) override {
    auto key = weft::decode<str>(r.key);
    if (!key) throw weft::weft_error{key.error()};
    auto& store = ctx.kv_store("counts");
    auto old = store.get(*key);
    if (!old) throw weft::weft_error{old.error()};
    int64_t n = 1;
    if (*old) n += *weft::int64_serde::deserialize(**old);
    if (auto st = store.put(*key, weft::int64_serde::serialize(n)); !st)
      throw weft::weft_error{st};
    out.emit(ctx, *key, n);
  }
};

struct item {
  int64_t n = 0;
  std::string tag;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(item, n, tag)

/// Numbers each key's records (see --test.service=sequence above).
struct sequencer : weft::service_base {
  weft::output<str, str> out;
  std::string fail_file;
  sequencer(std::string in, std::string out_topic, std::string fail)
    : service_base("sequencer"), fail_file(std::move(fail)) {
    add_input(in);
    add_store({"seq", weft::store_decl::kind::kv});
    out = weft::output<str, str>{add_output(out_topic, weft::output_kind::external)};
  }
  bool failing() const { return !fail_file.empty() && std::ifstream{fail_file}.good(); }
  void on_record(const weft::record_view& r, weft::context& ctx) override {
    auto key = weft::decode<str>(r.key);
    if (!key) throw weft::weft_error{key.error()};
    auto v = weft::decode<weft::json_serde<item>>(r.value);
    if (!v) throw weft::weft_error{v.error()};
    if (v->tag == "poison" && failing())
      throw std::runtime_error("downstream unavailable for " + *key);
    auto& store = ctx.kv_store("seq");
    auto old = store.get(*key);
    if (!old) throw weft::weft_error{old.error()};
    int64_t count = 1;
    if (*old) count += *weft::int64_serde::deserialize(**old);
    if (auto st = store.put(*key, weft::int64_serde::serialize(count)); !st)
      throw weft::weft_error{st};
    out.emit(ctx, *key, std::to_string(count) + ":" + std::to_string(v->n));
    if (v->tag == "poison-late" && failing())
      throw std::runtime_error("downstream unavailable after the output for " + *key);
  }
};

/// Enriches each record with its key's entry in a global table: the output
/// value is "<value>|<table value>" or "<value>|MISSING".
struct enricher : weft::service_base {
  weft::output<str, str> out;
  enricher(std::string in, std::string table, std::string out_topic)
    : service_base("enricher") {
    add_input(in);
    add_global_table(table, "customers");
    out = weft::output<str, str>{add_output(out_topic, weft::output_kind::external)};
  }
  void on_record(const weft::record_view& r, weft::context& ctx) override {
    auto hit = ctx.global_store("customers").get(*r.key);
    std::string v{r.value ? *r.value : ""};
    v += "|";
    v += hit.ok() && *hit ? **hit : std::string{"MISSING"};
    out.emit(ctx, std::string{*r.key}, v);
  }
};

/// Pipeline stage 1: split by event type and re-key by the event's key.
struct splitter : weft::stateless<str, str> {
  weft::output<str, str> a, b;
  splitter(const std::string& in, const std::string& out) : stateless("splitter", in) {
    a = to<str, str>(out + "-a");
    b = to<str, str>(out + "-b");
  }
  void process(const std::string& id, const std::string& v, weft::context& ctx) override {
    auto colon = v.rfind(':');
    if (colon == std::string::npos) throw std::runtime_error("no type in '" + v + "'");
    auto key = v.substr(0, colon);
    (v.substr(colon + 1) == "A" ? a : b).emit(ctx, key, id);
  }
};

/// Pipeline stage 2: counts both kinds of event per key (two inputs).
struct pair_counter : weft::service_base {
  weft::output<str, weft::int64_serde> out;
  std::string poison;
  pair_counter(const std::string& prefix, std::string poison_event)
    : service_base("pair-counter"), poison(std::move(poison_event)) {
    add_input(prefix + "-a");
    add_input(prefix + "-b");
    add_store({"counts", weft::store_decl::kind::kv});
    out = weft::output<str, weft::int64_serde>{
        add_output(prefix + "-counts", weft::output_kind::external)};
  }
  void on_record(const weft::record_view& r, weft::context& ctx) override {
    auto key = weft::decode<str>(r.key);
    if (!key) throw weft::weft_error{key.error()};
    auto& store = ctx.kv_store("counts");
    auto old = store.get(*key);
    if (!old) throw weft::weft_error{old.error()};
    int64_t n = 1;
    if (*old) n += *weft::int64_serde::deserialize(**old);
    if (auto st = store.put(*key, weft::int64_serde::serialize(n)); !st)
      throw weft::weft_error{st};
    out.emit(ctx, *key, n);
    if (!poison.empty() && r.value && *r.value == poison)
      throw std::runtime_error("poisoned event " + poison);
  }
};

/// Pipeline stage 3: "ready" once a key has had an A and a B.
struct pair_gate : weft::gate<str> {
  part<str> seen_a, seen_b;
  weft::output<str, str> out;
  explicit pair_gate(const std::string& prefix) : gate("pair-gate", 3'600'000) {
    seen_a = when<str>(prefix + "-a");
    seen_b = when<str>(prefix + "-b");
    out = to<str, str>(prefix + "-gated");
  }
  void on_ready(const std::string& key, const correlation&, weft::context& ctx) override {
    out.emit(ctx, key, "ready");
  }
};

} // namespace

int main(int argc, char** argv) {
  weft::block_stop_signals(); // before the HTTP thread exists
  std::map<std::string, std::string> test;
  std::vector<char*> rest{argv[0]};
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--test.", 7) == 0) {
      std::string a = argv[i] + 7;
      auto eq = a.find('=');
      test[a.substr(0, eq)] = eq == std::string::npos ? "" : a.substr(eq + 1);
    } else {
      rest.push_back(argv[i]);
    }
  }
  auto service = test["service"];
  auto in = test["in"], out = test["out"];
  auto delay = std::chrono::microseconds(
      test.count("delay.us") ? std::stoll(test["delay.us"]) : 0);
  auto cfg = weft::config::load(static_cast<int>(rest.size()), rest.data());
  if (!cfg) {
    std::fprintf(stderr, "%s\n", cfg.error().message().c_str());
    return 2;
  }
  weft::node n{*cfg};
  if (service == "json")
    n.add<doubler>(in, out);
  else if (service == "count")
    n.add<counter>(in, out);
  else if (service == "sequence")
    n.add<sequencer>(in, out, test["fail.file"]);
  else if (service == "enrich")
    n.add<enricher>(in, test["table"], out);
  else if (service == "pipeline") {
    n.add<splitter>(in, out);
    n.add<pair_counter>(out, test["poison"]);
    n.add<pair_gate>(out);
  } else
    n.add<mapper>(in, out, service == "slow" ? delay : std::chrono::microseconds{0});
  // --test.http.port=N: serve GET /counts with every entry of the "counts"
  // store as key<TAB>count lines, through the node's query API (503 while a
  // shard restores).
  httplib::Server http;
  std::thread http_thread;
  if (test.count("http.port")) {
    http.Get("/counts", [&n](const httplib::Request&, httplib::Response& res) {
      std::string body;
      auto st = n.all("counts", [&](std::string_view k, std::string_view v) {
        body.append(k).append("\t");
        body += std::to_string(*weft::int64_serde::deserialize(v));
        body += "\n";
        return true;
      });
      if (!st) {
        res.status = st.code() == weft::errc::state_not_ready ? 503 : 404;
        res.set_content(st.message(), "text/plain");
        return;
      }
      res.set_content(body, "text/plain");
    });
    http.Get("/global", [&n](const httplib::Request& req, httplib::Response& res) {
      auto v = n.get("customers", req.get_param_value("key"));
      if (!v) {
        res.status = 503;
        res.set_content(v.error().message(), "text/plain");
      } else if (!*v) {
        res.status = 404;
      } else {
        res.set_content(**v, "text/plain");
      }
    });
    // The JSON counters, at the path the node's own endpoint serves them.
    http.Get("/metrics.json", [&n](const httplib::Request&, httplib::Response& res) {
      auto m = n.metrics();
      nlohmann::json j{{"processed", m.processed},
                       {"produced", m.produced},
                       {"bad_records", m.bad_records},
                       {"epochs_committed", m.epochs_committed},
                       {"epochs_aborted", m.epochs_aborted},
                       {"commit_latency_us_total", m.commit_latency_us_total},
                       {"commit_latency_us_max", m.commit_latency_us_max},
                       {"aligned_us_total", m.aligned_us_total},
                       {"records_ahead", m.records_ahead}};
      res.set_content(j.dump(), "application/json");
    });
    auto port = std::stoi(test["http.port"]);
    http_thread = std::thread{[&http, port] { http.listen("127.0.0.1", port); }};
  }
  auto code = n.run();
  if (http_thread.joinable()) {
    http.stop();
    http_thread.join();
  }
  return code;
}
