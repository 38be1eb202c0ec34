// weft-orders-demo: the quick start's main job (tools/dev.sh run). Against
// the local broker it creates the order system's topics (deleting those of
// an earlier run), starts every service on one node with the REST API,
// seeds customers and stock over REST, places --orders orders with payments
// from --clients concurrent clients, prints progress every second and a
// summary: orders per state, throughput, POST -> VALIDATED latency
// percentiles, notifications sent, and whether stock matches what the
// orders imply, ending with the URLs of the REST API and of the node's own
// endpoint (metrics, topology). Ends by itself unless --serve keeps the node
// and REST API up (Ctrl-C stops it). One node only: it refuses
// cluster.enabled=true.
//
// The console is for the progress and the summary: the log goes to a file
// (log.file, by default <state.dir>/<application.id>.log), and only
// warnings and errors reach the console as well.
//
//   weft-orders-demo [--orders=3000] [--clients=64] [--serve]
//                    [--processing.guarantee=exactly_once|at_least_once]
//                    [--describe=text|dot|mermaid|json]
//                    [weft keys, order system keys: --help]
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <thread>

#include <weft/kafka/admin.hpp>
#include <weft/log.hpp>
#include <weft/node.hpp>
#include <weft/version.hpp>

#include "inventory.hpp"
#include "load.hpp"
#include "rest_api.hpp"
#include "serdes.hpp"
#include "settings.hpp"
#include "system.hpp"

using namespace std::chrono;

namespace {

int fail(const std::string& what) {
  std::fprintf(stderr, "weft-orders-demo: %s\n", what.c_str());
  return 1;
}

/// Counts orders per state and sums quantities per (product, state) from
/// the orders service's store (every shard: the demo's node runs alone).
struct tally {
  std::map<std::string, uint64_t> states;
  std::map<std::string, std::map<std::string, int64_t>>
      units; ///< product -> state -> qty
  uint64_t total = 0;
};

tally count_orders(const weft::node& n) {
  tally t;
  (void)n.all(orders::store_names::orders, [&](std::string_view, std::string_view v) {
    auto o = orders::order_serde::deserialize(v);
    if (!o) return true;
    ++t.states[o->state];
    if (o->quantity > 0) t.units[o->product][o->state] += o->quantity;
    ++t.total;
    return true;
  });
  return t;
}

std::string states_line(const tally& t) {
  std::string s;
  for (auto* st : {orders::created, orders::validated, orders::failed, orders::paid,
                   orders::shipped, orders::cancelled}) {
    auto i = t.states.find(st);
    s += std::string{st} + " " + std::to_string(i == t.states.end() ? 0 : i->second) +
         "  ";
  }
  return s;
}

} // namespace

int main(int argc, char** argv) {
  weft::block_stop_signals(); // before any thread exists
  orders::load_options load;
  bool serve = false;
  std::vector<std::string> rest_args{argv[0]};
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--orders=", 9) == 0)
      load.orders = std::stoul(argv[i] + 9);
    else if (std::strncmp(argv[i], "--clients=", 10) == 0)
      load.clients = std::max(1, std::stoi(argv[i] + 10));
    else if (std::strcmp(argv[i], "--serve") == 0)
      serve = true;
    else
      rest_args.emplace_back(argv[i]);
  }
  // The demo's own defaults for weft keys: a source still beats them.
  auto schema = orders::order_system_schema();
  schema.defaults["application.id"] = "orders-demo";
  schema.defaults["processing.guarantee"] = "exactly_once";
  schema.defaults["http.port"] = "0"; // the node's endpoint, on a free port
  std::vector<const char*> args;
  for (auto& a : rest_args)
    args.push_back(a.c_str());
  auto cfg = weft::config::load(static_cast<int>(args.size()), args.data(), schema);
  if (!cfg) return fail(cfg.error().message());
  if (cfg->help_requested()) {
    std::printf("usage: %s [--orders=N] [--clients=N] [--serve] [keys]\n\n%s", argv[0],
                weft::config::help_text(argv[0], schema).c_str());
    return 0;
  }
  if (cfg->version_requested()) {
    std::printf("weft-orders-demo (weft %s)\n", weft::version);
    return 0;
  }
  // The demo is one node: it wipes the system's topics and state at start,
  // and its progress and summary scan the orders store with node::all, which
  // on a clustered node covers only the shards active there. A cluster runs
  // weft-orders processes (main.cpp).
  if (cfg->get_bool("cluster.enabled"))
    return fail("the demo runs one node; for a cluster start weft-orders processes "
                "with --cluster.enabled=true (see examples/orders/main.cpp)");
  auto s = orders::settings::from(*cfg);
  cfg = orders::with_bad_record_policies(*cfg, s);
  if (!cfg) return fail(cfg.error().message());
  if (!cfg->describe_format().empty()) { // the picture only: no broker, no wipe
    weft::node node{*cfg};
    orders::add_services(node, s);
    return node.run();
  }
  const auto app_id = cfg->get_string("application.id");
  const auto servers = cfg->get_string("bootstrap.servers");
  // The console is the progress's: the log goes to a file unless told.
  if (!cfg->was_set("log.file"))
    if (auto l =
            cfg->with("log.file", cfg->get_string("state.dir") + "/" + app_id + ".log"))
      cfg = std::move(l);
  if (auto st =
          weft::log::setup(cfg->get_string("log.level"), cfg->get_string("log.file"));
      !st)
    return fail(st.message());
  weft::log::info("weft-orders-demo starting: {} orders from {} clients", load.orders,
                  load.clients);

  auto admin =
      weft::kafka::admin::create(cfg->kafka_properties(weft::client_kind::admin));
  if (!admin) return fail(admin.error().message());
  if (auto st = (*admin)->wait_for_brokers(10000); !st)
    return fail("no Kafka at " + servers + ": " + st.message() +
                " (tools/weft-broker start starts the local one)");
  std::printf("== weft order system demo ==\n"
              "application %s, %s, %d partitions per topic, broker %s\n",
              app_id.c_str(), cfg->get_string("processing.guarantee").c_str(),
              s.partitions, servers.c_str());

  // A clean slate: the topics and state of an earlier run would replay into
  // this one.
  (void)orders::delete_topics(**admin, s, app_id);
  std::error_code ec;
  std::filesystem::remove_all(
      std::filesystem::path{cfg->get_string("state.dir")} / app_id, ec);
  weft::status created;
  for (int attempt = 0; attempt < 20; ++attempt) {
    // Kafka deletes topics asynchronously: creating one that is still being
    // deleted fails for a moment.
    std::this_thread::sleep_for(milliseconds(500));
    if ((created = orders::create_topics(**admin, s))) break;
  }
  if (!created) return fail("creating topics: " + created.message());

  auto box = orders::make_outbox(s);
  weft::node node{*cfg};
  orders::add_services(node, s, box);
  std::printf("services: orders, order-details, orders-by-product, inventory, "
              "orders-by-customer, fraud, customer-orders, validation-gate, "
              "payments-by-order, payment-gate, shipping, notification-join, "
              "notification-sender, customer-check (--describe draws them)\n");
  if (!cfg->get_string("log.file").empty())
    std::printf("log: %s (warnings and errors also here)\n",
                cfg->get_string("log.file").c_str());
  orders::local_state_reader reader{node};
  orders::rest_api api{reader, orders::topic_names::with_prefix(s.topic_prefix),
                       cfg->kafka_properties(weft::client_kind::producer),
                       load.clients + 16, s.rest_limits};
  node.add_metrics([&api](weft::metrics::exposition& page) { api.write_metrics(page); });
  if (auto st = node.start(); !st) return fail(st.message());
  if (auto st = api.start(s.http_host, s.http_port); !st) return fail(st.message());
  const std::string url =
      "http://" + s.http_host + ":" + std::to_string(api.port()) + "/v1";
  std::printf("REST API: %s (e.g. curl %s/orders/order-0)\n", url.c_str(), url.c_str());

  load.host = s.http_host;
  load.port = api.port();
  std::printf("seeding %d customers and %d products over REST...\n", load.customers,
              load.products);
  std::map<std::string, int64_t> seeded;
  try {
    seeded = orders::seed_reference_data(load);
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  // Orders must find their customer and stock: wait until both are in.
  auto t = orders::topic_names::with_prefix(s.topic_prefix);
  auto visible = [&] {
    auto c = node.get(t.customers, std::to_string(load.customers));
    auto p = node.get(orders::store_names::stock, "product-00");
    auto q = node.get(orders::store_names::stock,
                      "product-" + std::string(load.products - 1 < 10 ? "0" : "") +
                          std::to_string(load.products - 1));
    return c && *c && p && *p && q && *q;
  };
  for (auto until = steady_clock::now() + seconds(60); !visible();) {
    if (steady_clock::now() > until) return fail("seed data did not arrive in 60 s");
    std::this_thread::sleep_for(milliseconds(50));
  }

  std::printf("placing %zu orders from %d clients (POST order, wait for validation, "
              "pay or cancel)...\n",
              load.orders, load.clients);
  orders::load_progress progress;
  orders::load_report report;
  std::thread runner{[&] { report = orders::run_load(load, progress); }};
  const auto start = steady_clock::now();
  std::atomic<bool> load_done{false};
  std::thread watcher{[&] {
    runner.join();
    load_done = true;
  }};
  // Orders that reached a final state (SHIPPED, FAILED, CANCELLED), for the
  // rate: how fast the system settles orders, not how fast clients post.
  uint64_t last_settled = 0;
  auto last_at = start;
  auto print_progress = [&] {
    auto c = count_orders(node);
    auto now = steady_clock::now();
    uint64_t settled = c.states[orders::shipped] + c.states[orders::failed] +
                       c.states[orders::cancelled];
    double secs = std::max(1e-3, duration<double>(now - last_at).count());
    double rate = static_cast<double>(settled - std::min(settled, last_settled)) / secs;
    last_settled = settled;
    last_at = now;
    std::printf("  %5.1f s  posted %6llu  %s notified %llu  | %5.0f orders/s settled\n",
                duration<double>(now - start).count(),
                static_cast<unsigned long long>(progress.posted.load()),
                states_line(c).c_str(),
                static_cast<unsigned long long>(orders::sent_notifications(*box)), rate);
    std::fflush(stdout);
    return c;
  };
  while (!load_done) {
    std::this_thread::sleep_for(milliseconds(1000));
    print_progress();
  }
  watcher.join();
  // Paid orders ship after shipping.delay.ms: wait for the flow to settle.
  tally final_tally;
  // Settled: nothing CREATED or PAID, and VALIDATED ones (left by a failed
  // payment request) no longer change.
  int unchanged = 0;
  final_tally = count_orders(node); // the loop above just printed it
  for (auto until = steady_clock::now() + seconds(60);;) {
    const bool settled = final_tally.states[orders::created] == 0 &&
                         final_tally.states[orders::paid] == 0 &&
                         (final_tally.states[orders::validated] == 0 || unchanged >= 3);
    if (settled || steady_clock::now() > until) break;
    std::this_thread::sleep_for(milliseconds(1000));
    auto before = final_tally.states;
    final_tally = print_progress();
    unchanged = final_tally.states == before ? unchanged + 1 : 0;
  }

  // Stock must match the orders: on hand = seeded - shipped, reserved =
  // what VALIDATED and PAID orders hold.
  // Inventory hears of the last shipments a hop after the orders service:
  // compare until they agree, for 30 s at most.
  size_t products_ok = 0;
  std::vector<std::string> mismatches;
  for (auto until = steady_clock::now() + seconds(30);;) {
    products_ok = 0;
    mismatches.clear();
    for (auto& [product, units] : seeded) {
      auto raw = node.get(orders::store_names::stock, product);
      auto& by_state = final_tally.units[product];
      int64_t want_on_hand = units - by_state[orders::shipped];
      int64_t want_reserved = by_state[orders::validated] + by_state[orders::paid];
      if (raw && *raw) {
        auto level = weft::json_serde<orders::stock_level>::deserialize(**raw);
        if (level && level->on_hand == want_on_hand && level->reserved == want_reserved) {
          ++products_ok;
          continue;
        }
        if (level)
          mismatches.push_back(product + ": onHand " + std::to_string(level->on_hand) +
                               " (want " + std::to_string(want_on_hand) + "), reserved " +
                               std::to_string(level->reserved) + " (want " +
                               std::to_string(want_reserved) + ")");
      } else {
        mismatches.push_back(product + ": no stock record");
      }
    }
    if (mismatches.empty() || steady_clock::now() > until) break;
    std::this_thread::sleep_for(milliseconds(200));
  }

  std::printf("\n== summary ==\n");
  std::printf("orders:      %llu placed, %llu requests failed\n",
              static_cast<unsigned long long>(progress.posted.load()),
              static_cast<unsigned long long>(progress.errors.load()));
  std::printf("final state: %s\n", states_line(final_tally).c_str());
  std::printf(
      "throughput:  %.0f orders/s through REST (%zu orders in %.2f s, %d clients)\n",
      static_cast<double>(report.validated_ms.size()) / report.seconds,
      report.validated_ms.size(), report.seconds, load.clients);
  std::printf("POST -> VALIDATED/FAILED latency: p50 %.1f ms  p90 %.1f ms  p99 %.1f ms  "
              "max %.1f ms\n",
              report.percentile(50), report.percentile(90), report.percentile(99),
              report.percentile(100));
  std::printf("notifications sent: %llu%s\n",
              static_cast<unsigned long long>(orders::sent_notifications(*box)),
              s.outbox.empty() ? "" : (" (outbox " + s.outbox + ")").c_str());
  std::printf("stock: %zu of %zu products match the orders (on hand = seeded - shipped, "
              "reserved = VALIDATED + PAID)\n",
              products_ok, seeded.size());
  for (auto& m : mismatches)
    std::printf("  mismatch %s\n", m.c_str());
  for (auto& e : report.errors)
    std::printf("  error: %s\n", e.c_str());
  if (!cfg->get_string("log.file").empty())
    std::printf("log:         %s\n", cfg->get_string("log.file").c_str());
  std::printf("REST API:    %s  (try: curl %s/orders/order-0 ; curl %s/stock/product-00 "
              "; curl %s/customers/1/orders)\n",
              url.c_str(), url.c_str(), url.c_str(), url.c_str());
  if (node.http_port() > 0) {
    const auto node_url =
        "http://" + cfg->get_string("http.host") + ":" + std::to_string(node.http_port());
    std::printf("node:        %s/  (the live map: open it in a browser ; metrics: "
                "curl %s/metrics ; topology: curl %s/topology?format=text ; cluster "
                "view: %s/cluster)\n",
                node_url.c_str(), node_url.c_str(), node_url.c_str(), node_url.c_str());
  }

  const bool ok = mismatches.empty() && progress.errors == 0 &&
                  final_tally.states[orders::created] == 0;
  if (serve) {
    std::printf("serving until Ctrl-C...\n");
    std::fflush(stdout);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    int sig = 0;
    sigwait(&set, &sig);
  }
  api.stop();
  node.request_stop();
  if (auto st = node.wait(); !st) return fail(st.message());
  return ok ? 0 : 1;
}
