// weft-sidecar: a weft node configured, not coded, beside an application in
// any language (README, "The sidecar pattern"; sidecar/README.md).
//
//   build/sidecar/weft-sidecar --config=sidecar.properties
//
// Start-up: the configuration (sidecar_config), the internal topic of write
// ids, the node with one table service per table (table_service), the
// writer (topic_writer), the HTTP API (http_api), the push deliveries
// (push_delivery) and pull subscriptions (pull_subscription); then the node
// runs until SIGINT/SIGTERM, or until a push subscription's
// bad.record.policy=fail (or a parked store it cannot write) stops it
// (exit 1). Stop order: the API, the
// deliveries (each commits what the application took), the writer, the node.
#include <unistd.h>

#include <atomic>
#include <cstdio>

#include <weft/actors/dead_letter.hpp>
#include <weft/kafka/admin.hpp>
#include <weft/log.hpp>
#include <weft/node.hpp>
#include <weft/version.hpp>

#include "http_api.hpp"
#include "pull_subscription.hpp"
#include "push_delivery.hpp"
#include "sidecar_config.hpp"
#include "table_service.hpp"
#include "topic_writer.hpp"

namespace {

int fail(const std::string& what) {
  std::fprintf(stderr, "weft-sidecar: %s\n", what.c_str());
  return 2;
}

std::string default_node_id() {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  return std::string{host} + "-" + std::to_string(getpid());
}

} // namespace

int main(int argc, char** argv) {
  weft::block_stop_signals(); // before the HTTP and delivery threads exist
  auto parsed = sidecar::parse(argc, argv);
  if (!parsed) return fail(parsed.error().message());
  std::vector<const char*> args;
  for (auto& a : parsed->weft_args)
    args.push_back(a.c_str());
  auto cfg = weft::config::load(static_cast<int>(args.size()), args.data());
  if (!cfg) return fail(cfg.error().message());
  if (cfg->help_requested()) {
    std::printf("%s%s", weft::config::help_text(argv[0]).c_str(),
                sidecar::help_text().c_str());
    return 0;
  }
  if (cfg->version_requested()) {
    std::printf("weft-sidecar (weft %s)\n", weft::version);
    return 0;
  }
  auto& sc = parsed->sidecar;
  if (auto st = sidecar::apply_defaults(sc, *cfg); !st) return fail(st.message());
  const auto& app = cfg->get_string("application.id");
  const auto& configured_id = cfg->get_string("node.id");
  const std::string node_id = configured_id.empty() ? default_node_id() : configured_id;
  const int timeout_ms = static_cast<int>(cfg->get_int("startup.timeout.ms"));

  // Topics: those with topic.<t>.partitions and the write ids' topic are
  // created; every other one the keys name must exist (named by its key
  // when not).
  auto admin =
      weft::kafka::admin::create(cfg->kafka_properties(weft::client_kind::admin));
  if (!admin) return fail(admin.error().message());
  if (auto st = (*admin)->wait_for_brokers(timeout_ms); !st) return fail(st.message());
  for (auto& [n, t] : sc.topics)
    if (t.partitions > 0)
      if (auto st = (*admin)->ensure_topics(
              {{n,
                t.partitions,
                static_cast<int>(cfg->get_int("replication.factor")),
                {}}},
              timeout_ms);
          !st)
        return fail("config key 'topic." + n + ".partitions': " + st.message());
  auto must_exist = [&](const std::string& topic,
                        const std::string& key) -> weft::status {
    auto n = (*admin)->partition_count(topic, timeout_ms);
    if (n) return {};
    return weft::make_error(weft::errc::invalid_config,
                            "config key '" + key + "': topic '" + topic +
                                "' does not exist (" + n.error().message() +
                                "); create it first");
  };
  for (auto& [n, t] : sc.tables)
    if (auto st = must_exist(t.topic, "table." + n + ".topic"); !st)
      return fail(st.message());
  for (auto& [n, s] : sc.subscriptions)
    if (auto st = must_exist(s.topic, "subscription." + n + ".topic"); !st)
      return fail(st.message());
  bool writes = false;
  for (auto& [n, t] : sc.topics)
    if (t.writable) {
      writes = true;
      if (auto st = must_exist(n, "topic." + n + ".writable"); !st)
        return fail(st.message());
    }
  if (auto st = (*admin)->ensure_topics(
          {{sidecar::requests_topic(app),
            sc.idempotency_partitions,
            static_cast<int>(cfg->get_int("replication.factor")),
            {{"cleanup.policy", "compact,delete"},
             {"retention.ms", std::to_string(sc.idempotency_retention_ms)}}}},
          timeout_ms);
      !st)
    return fail("creating " + sidecar::requests_topic(app) + ": " + st.message());

  weft::node node{*cfg};
  sidecar::add_table_services(node, sc, app);
  // The tables' ends at start-up, to tell when they caught up (readiness,
  // and trusting "no such write id").
  std::map<std::string, std::string> tracked{
      {sidecar::requests_store, sidecar::requests_topic(app)}};
  for (auto& [n, t] : sc.tables)
    if (!t.global) tracked[n] = t.topic;
  auto tracker = sidecar::catch_up_tracker::create(
      cfg->kafka_properties(weft::client_kind::consumer), app, tracked, timeout_ms);
  if (!tracker)
    return fail("reading the tables' end offsets: " + tracker.error().message());
  sidecar::table_reader reader{node, sc, tracker->get()};

  std::unique_ptr<sidecar::topic_writer> writer;
  if (writes) {
    auto w =
        sidecar::topic_writer::create(cfg->kafka_properties(weft::client_kind::producer),
                                      app, node_id, reader, sc.write_timeout_ms);
    if (!w) return fail("writer: " + w.error().message());
    writer = std::move(*w);
  }

  std::atomic<bool> failed{false};
  std::vector<std::unique_ptr<sidecar::push_delivery>> pushes;
  std::map<std::string, std::unique_ptr<sidecar::pull_subscription>> pulls;
  // A static group member only with a node.id the operator chose: two
  // processes with one generated id cannot exist, a fixed one survives restarts.
  const std::string member = configured_id;
  for (auto& [n, s] : sc.subscriptions) {
    if (s.mode == sidecar::delivery_mode::pull) {
      pulls.emplace(n, std::make_unique<sidecar::pull_subscription>(s, sc.topic(s.topic),
                                                                    *cfg, member));
      continue;
    }
    auto p = sidecar::push_delivery::start(s, sc.topic(s.topic), *cfg, member, node_id,
                                           [&](const weft::status&) {
                                             failed = true;
                                             node.request_stop();
                                           });
    if (!p) return fail("subscription " + n + ": " + p.error().message());
    pushes.push_back(std::move(*p));
  }

  sidecar::http_api api{sc,
                        node,
                        reader,
                        writer.get(),
                        pushes,
                        pulls,
                        weft::detail::max_message_bytes(*cfg),
                        node_id};
  if (auto st = api.start(); !st) return fail(st.message());
  weft::log::info("weft-sidecar: API on http://{}:{}/v1 ({} tables, {} push and {} pull "
                  "subscriptions, writes {})",
                  sc.http.host, api.port(), sc.tables.size(), pushes.size(), pulls.size(),
                  writes ? "on" : "off");
  // Tests and scripts read the port from here when sidecar.http.port=0.
  std::printf("weft-sidecar listening on %s:%d\n", sc.http.host.c_str(), api.port());
  std::fflush(stdout);

  int code = node.run();
  api.stop();
  pushes.clear();
  pulls.clear();
  writer.reset();
  if (failed) {
    weft::log::error(
        "weft-sidecar: stopped by a subscription (bad.record.policy=fail, or "
        "a parked store it could not write; see above)");
    return 1;
  }
  return code;
}
