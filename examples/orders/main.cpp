// weft-orders: one node of the order system: every service, and the REST
// API on http.host:http.port. Creates the system's topics if missing.
//
//   build/examples/orders/weft-orders --application.id=orders [--http.port=7070]
//
// Several processes with the same application.id and --cluster.enabled=true
// share the work (weft's clustering); each needs its own state.dir, node.id
// and ports, and every one serves the whole REST API (reads of keys another
// node owns are forwarded by node::get):
//
//   weft-orders --application.id=orders --cluster.enabled=true --node.id=n1
//               --state.dir=/var/lib/orders-n1 --http.port=7071
//               --node.http.port=7171
//
// node.http.port is weft's http.port (the node's /cluster, /metrics and
// /state endpoint): the REST API's http.port has the name here (settings.hpp).
// --help lists weft's keys and the order system's own.
#include <cstdio>

#include <weft/kafka/admin.hpp>
#include <weft/log.hpp>
#include <weft/node.hpp>
#include <weft/version.hpp>

#include "rest_api.hpp"
#include "settings.hpp"
#include "system.hpp"

int main(int argc, char** argv) {
  weft::block_stop_signals(); // before the HTTP threads exist
  const auto schema = orders::order_system_schema();
  auto cfg = weft::config::load(argc, argv, schema);
  if (!cfg) {
    std::fprintf(stderr, "weft-orders: %s\n", cfg.error().message().c_str());
    return 2;
  }
  if (cfg->help_requested()) {
    std::printf("%s", weft::config::help_text(argv[0], schema).c_str());
    return 0;
  }
  if (cfg->version_requested()) {
    std::printf("weft-orders (weft %s)\n", weft::version);
    return 0;
  }
  auto s = orders::settings::from(*cfg);
  // Bad input never stops the order system: each service's policy (README).
  cfg = orders::with_bad_record_policies(*cfg, s);
  if (!cfg) {
    std::fprintf(stderr, "weft-orders: %s\n", cfg.error().message().c_str());
    return 2;
  }
  if (!cfg->describe_format().empty()) { // print the picture; no broker needed
    weft::node node{*cfg};
    orders::add_services(node, s);
    return node.run();
  }
  auto admin =
      weft::kafka::admin::create(cfg->kafka_properties(weft::client_kind::admin));
  if (!admin) {
    std::fprintf(stderr, "weft-orders: %s\n", admin.error().message().c_str());
    return 1;
  }
  if (auto st = orders::create_topics(**admin, s); !st) {
    std::fprintf(stderr, "weft-orders: creating topics: %s\n", st.message().c_str());
    return 1;
  }
  weft::node node{*cfg};
  orders::add_services(node, s);
  orders::local_state_reader reader{node};
  orders::rest_api api{reader, orders::topic_names::with_prefix(s.topic_prefix),
                       cfg->kafka_properties(weft::client_kind::producer), 64,
                       s.rest_limits};
  node.add_metrics([&api](weft::metrics::exposition& page) { api.write_metrics(page); });
  if (auto st = api.start(s.http_host, s.http_port); !st) {
    std::fprintf(stderr, "weft-orders: REST API: %s\n", st.message().c_str());
    return 1;
  }
  weft::log::info("REST API on http://{}:{}/v1/orders{}", s.http_host, api.port(),
                  cfg->get_bool("cluster.enabled")
                      ? " (clustered: reads are routed to the owning node)"
                      : "");
  int code = node.run();
  api.stop();
  return code;
}
