// GET /trace's answer (trace_view.hpp) from a real topology and a store
// lookup standing in for the node's query path: the topics (no changelogs),
// a weft::gate's partial state (parts arrived, waiting for, deadline from its
// timer), a gate keeping JSON, an unreadable value, a key with no
// correlation, and a partition that restores.

#include "weft/trace_view.hpp"

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <map>
#include <set>

#include "weft/services/gate.hpp"
#include "weft/services/partitioner.hpp"
#include "weft/services/stateless.hpp"
#include "weft/state/memory_store.hpp"
#include "weft/state/timer_index.hpp"

using str = weft::string_serde;
using json = nlohmann::json;

namespace {

struct release : weft::gate<str> {
  part<str> ordered = when<str>("orders");
  part<str> paid = when<str>("payments");
  weft::output<str, str> ship = to<str, str>("shipments");
  release() : gate("release", 60000) {}
  void on_ready(const std::string&, const correlation&, weft::context&) override {}
};

struct upper : weft::stateless<str, str> {
  weft::output<str, str> out = to<str, str>("loud");
  upper() : stateless("upper", "words") {}
  void process(const std::string&, const std::string&, weft::context&) override {}
};

/// The timer store's value for a wall-clock timer due at `t`.
std::string due_value(weft::timestamp_ms t) {
  // Set a timer in a memory store and read back what the index wrote.
  auto store = weft::state::make_memory_kv("release-timers");
  weft::state::timer_index idx{*store};
  REQUIRE(idx.set({"o1", "deadline", weft::timer_clock::wall_clock, t, ""}));
  auto v = store->get(weft::state::timer_index::by_key("o1", "deadline"));
  REQUIRE(v);
  REQUIRE(*v);
  return **v;
}

struct fixture {
  std::map<std::pair<std::string, std::string>, std::string> values;
  bool restoring = false;
  weft::topology_description topo;
  weft::detail::trace_sources src;

  fixture() {
    std::vector<weft::service_factory> f{[] { return std::make_unique<release>(); },
                                         [] { return std::make_unique<upper>(); }};
    auto cfg = weft::config::from_map({{"application.id", "app"}});
    REQUIRE(cfg);
    auto d = weft::describe_topology(f, *cfg);
    REQUIRE(d);
    topo = std::move(*d);
    src.application = "app";
    src.node_id = "n1";
    src.topology = &topo;
    src.get = [this](const std::string& store,
                     const std::string& key) -> weft::result<std::optional<std::string>> {
      if (restoring)
        return weft::make_error(weft::errc::state_not_ready, "store restoring");
      auto i = values.find({store, key});
      if (i == values.end()) return std::optional<std::string>{};
      return std::optional<std::string>{i->second};
    };
    src.find = src.get;
    src.partitions = [](const std::string&) { return 4; };
  }
  json answer(const std::string& key) { return json::parse(trace_json(key, src)); }
};

} // namespace

TEST_CASE("GET /trace names the topics and a weft::gate's partial state",
          "[unit][trace]") {
  fixture fx;
  weft::detail::gate_entry e;
  e.started = 1000;
  e.deadline = 61000;
  e.parts["orders"] = R"({"id":"o1"})";
  fx.values[{"release-store", "o1"}] =
      weft::cereal_binary_serde<weft::detail::gate_entry>::serialize(e);
  fx.values[{"release-timers", weft::state::timer_index::by_key("o1", "deadline")}] =
      due_value(61000);

  auto j = fx.answer("o1");
  CHECK(j["application"] == "app");
  CHECK(j["key"] == "o1");
  CHECK(j["header"] == "weft.cause");
  std::set<std::string> topics;
  for (auto& t : j["topics"]) {
    topics.insert(t["name"].get<std::string>());
    CHECK(t["kind"] != "changelog");
  }
  CHECK(topics ==
        std::set<std::string>{"orders", "payments", "shipments", "words", "loud"});
  REQUIRE(j["gates"].size() == 1);
  auto g = j["gates"][0];
  CHECK(g["service"] == "release");
  CHECK(g["partition"] == weft::partition_for("o1", 4));
  CHECK(g["state"] == "open");
  CHECK(g["started_ms"] == 1000);
  CHECK(g["deadline_ms"] == 61000);
  CHECK(g["timeout_at_ms"] == 61000);
  CHECK(g["timeout_clock"] == "wall_clock");
  REQUIRE(g["parts"].size() == 1);
  CHECK(g["parts"][0]["part"] == "orders");
  CHECK(g["parts"][0]["value"]["id"] == "o1");
  CHECK(g["waiting_for"] == json::array({"payments"}));
}

TEST_CASE("GET /trace shows other gates' values, no correlation, and restoring state",
          "[unit][trace]") {
  fixture fx;
  fx.values[{"release-store", "j"}] = R"({"deadline":5,"answers":{"FRAUD":"PASS"}})";
  fx.values[{"release-store", "b"}] = std::string{"\xff\x00\x01", 3};
  auto j = fx.answer("j");
  CHECK(j["gates"][0]["state"] == "open");
  CHECK(j["gates"][0]["value"]["answers"]["FRAUD"] == "PASS");
  CHECK_FALSE(j["gates"][0].contains("timeout_at_ms"));

  j = fx.answer("b");
  CHECK(j["gates"][0]["value"].is_null());
  CHECK(j["gates"][0]["value_base64"] == "/wAB");

  j = fx.answer("nobody");
  CHECK(j["gates"][0]["state"] == "none");

  fx.restoring = true;
  j = fx.answer("o1");
  CHECK(j["gates"][0]["state"] == "unavailable");
  CHECK(j["gates"][0]["error"] == "store restoring");

  // A key that is not UTF-8 is named by its bytes.
  j = fx.answer(std::string{"\xc3\x28", 2});
  CHECK(j["key"].is_null());
  CHECK(j["key_base64"] == "wyg=");
}
