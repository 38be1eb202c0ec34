// Benchmark (not a test) of the order system (examples/orders) in one
// process against one broker: every service on one node, the REST API, and
// the load generator's clients placing orders (POST, long-poll until
// validated, pay) with `clients` orders in flight. After a warm-up it
// reports, per processing guarantee, orders/s sustained over the measured
// run and the POST -> VALIDATED latency p50/p99 (as a REST client sees it:
// from sending the POST to /validated answering).
//
//   weft-bench-orders [--bootstrap=127.0.0.1:9092] [--orders=5000]
//                     [--warmup=500] [--clients=64]
//                     [--guarantee=at_least_once|exactly_once|both]
//                     [--commit.interval.ms=100] [--consumer.X=v ...]
// bench/run.sh starts the local broker and runs the benchmarks.

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <unistd.h>

#include <weft/kafka/admin.hpp>
#include <weft/node.hpp>

#include "load.hpp"
#include "rest_api.hpp"
#include "settings.hpp"
#include "system.hpp"

using namespace std::chrono;

namespace {

std::string bootstrap = "127.0.0.1:9092";
size_t orders_n = 5000, warmup = 500;
int clients = 64;
std::string commit_interval = "100";
std::map<std::string, std::string> extra; ///< --kafka.* / --consumer.* / --producer.*

void die(const std::string& what) {
  std::fprintf(stderr, "bench: %s\n", what.c_str());
  std::exit(1);
}

void run(const std::string& guarantee) {
  const auto tag = "bench-" + std::to_string(::getpid()) + "-" + guarantee;
  orders::settings s;
  s.topic_prefix = tag + "-";
  s.partitions = 4;
  s.shipping_delay_ms = 1000;
  const std::string state_dir = "/tmp/weft-" + tag;
  auto values = extra;
  values.insert({{"application.id", tag},
                 {"bootstrap.servers", bootstrap},
                 {"processing.guarantee", guarantee},
                 {"state.dir", state_dir},
                 {"commit.interval.ms", commit_interval},
                 {"log.level", "warn"}});
  auto cfg = weft::config::from_map(values);
  if (cfg) cfg = orders::with_bad_record_policies(*cfg, s);
  if (!cfg) die(cfg.error().message());
  auto admin = weft::kafka::admin::create({{"bootstrap.servers", bootstrap}});
  if (!admin) die(admin.error().message());
  if (auto st = orders::create_topics(**admin, s); !st) die(st.message());
  {
    weft::node node{*cfg};
    orders::add_services(node, s);
    if (auto st = node.start(); !st) die(st.message());
    orders::local_state_reader reader{node};
    orders::rest_api api{reader, orders::topic_names::with_prefix(s.topic_prefix),
                         cfg->kafka_properties(weft::client_kind::producer),
                         clients + 16};
    if (auto st = api.start("127.0.0.1", 0); !st) die(st.message());

    orders::load_options load;
    load.port = api.port();
    load.clients = clients;
    load.customers = 1000;
    // Happy path only: every order valid, validated and paid. Customers'
    // spending stays under their limits (about 3 orders each per run).
    load.mix = false;
    try {
      orders::seed_reference_data(load);
    } catch (const std::exception& e) {
      die(e.what());
    }
    auto t = orders::topic_names::with_prefix(s.topic_prefix);
    for (auto until = steady_clock::now() + seconds(60);;) {
      auto c = node.get(t.customers, std::to_string(load.customers));
      auto p = node.get(orders::store_names::stock, "product-19");
      if (c && *c && p && *p) break;
      if (steady_clock::now() > until) die("seed data did not arrive");
      std::this_thread::sleep_for(milliseconds(50));
    }
    orders::load_progress warm_progress, progress;
    load.orders = warmup;
    load.id_prefix = "warm-";
    auto warm = orders::run_load(load, warm_progress);
    for (auto& e : warm.errors)
      std::printf("  warm-up error: %s\n", e.c_str());
    load.orders = orders_n;
    load.id_prefix = "run-";
    auto report = orders::run_load(load, progress);
    std::string outcome;
    for (auto& [state, n] : report.outcome)
      outcome += " " + state + "=" + std::to_string(n);
    std::printf("%-14s %6zu orders, %3d clients: %7.0f orders/s sustained; "
                "POST->VALIDATED p50 %6.1f ms  p99 %7.1f ms  (%s; errors %llu)\n",
                guarantee.c_str(), report.validated_ms.size(), clients,
                static_cast<double>(report.validated_ms.size()) / report.seconds,
                report.percentile(50), report.percentile(99), outcome.c_str() + 1,
                static_cast<unsigned long long>(progress.errors.load()));
    for (auto& e : report.errors)
      std::printf("  error: %s\n", e.c_str());
    std::fflush(stdout);
    api.stop();
    node.request_stop();
    (void)node.wait();
  }
  (void)orders::delete_topics(**admin, s, tag);
  std::error_code ec;
  std::filesystem::remove_all(state_dir, ec);
}

} // namespace

int main(int argc, char** argv) {
  weft::block_stop_signals();
  std::string guarantee = "both";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char* p) { return a.substr(std::strlen(p)); };
    if (a.rfind("--bootstrap=", 0) == 0)
      bootstrap = value("--bootstrap=");
    else if (a.rfind("--orders=", 0) == 0)
      orders_n = std::stoul(value("--orders="));
    else if (a.rfind("--warmup=", 0) == 0)
      warmup = std::stoul(value("--warmup="));
    else if (a.rfind("--clients=", 0) == 0)
      clients = std::stoi(value("--clients="));
    else if (a.rfind("--commit.interval.ms=", 0) == 0)
      commit_interval = value("--commit.interval.ms=");
    else if (a.rfind("--guarantee=", 0) == 0)
      guarantee = value("--guarantee=");
    else if (a.rfind("--kafka.", 0) == 0 || a.rfind("--consumer.", 0) == 0 ||
             a.rfind("--producer.", 0) == 0)
      extra[a.substr(2, a.find('=') - 2)] = a.substr(a.find('=') + 1);
    else
      die("unknown option " + a);
  }
  std::printf("order system: %zu orders after %zu warm-up, %d concurrent REST clients, "
              "one node, 4 partitions per topic\n",
              orders_n, warmup, clients);
  if (guarantee == "both" || guarantee == "at_least_once") run("at_least_once");
  if (guarantee == "both" || guarantee == "exactly_once") run("exactly_once");
  return 0;
}
